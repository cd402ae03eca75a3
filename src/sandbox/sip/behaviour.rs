//! What the simulated trunk does with a call: the [`VoiceBehaviour`] chosen per destination.
//!
//! A behaviour is an outcome ([`CallOutcome`]: answer, busy, no answer, reject) plus modifiers
//! that apply to any outcome (how the trunk challenges, network loss, RTP from another port, the
//! codec it picks). It round-trips through JSON so that the HTTP control routes, when they are
//! added, take exactly what the Rust API takes; unknown fields are ignored (serde cannot deny them
//! next to a flattened enum).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a call ends on the trunk's side. Serialized with an internal `kind` tag in snake case,
/// flattened into [`VoiceBehaviour`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallOutcome {
    /// 100 Trying, 180 Ringing, then 200 OK with an SDP answer; RTP both ways.
    Answer {
        /// Delay between the 180 and the 200 ("answers late"); none: the 200 follows at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ring_ms: Option<u64>,
        /// The trunk hangs up (sends BYE) this long after the ACK; none: it waits for the
        /// gateway's BYE.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hangup_after_ms: Option<u64>,
    },
    /// 100 Trying, then 486 Busy Here.
    Busy,
    /// 100 Trying, 180 Ringing, and never a final response: the gateway's ring timeout must
    /// CANCEL (answered 200, then 487 Request Terminated to the INVITE).
    NoAnswer,
    /// 100 Trying, then this final status with its standard reason phrase (480, 403, 404, 503,
    /// 603, ...). A code outside 300–699 answers 500 Server Internal Error.
    Reject {
        /// The SIP status code.
        code: u16,
    },
}

impl Default for CallOutcome {
    fn default() -> Self {
        CallOutcome::Answer {
            ring_ms: None,
            hangup_after_ms: None,
        }
    }
}

/// How the trunk challenges an INVITE without (valid) credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeMode {
    /// 401 Unauthorized with `WWW-Authenticate`, answered by `Authorization` (what DIDWW does,
    /// reference §4.4).
    #[default]
    Www,
    /// 407 Proxy Authentication Required with `Proxy-Authenticate`, answered by
    /// `Proxy-Authorization` (what a proxy in front of a trunk would do).
    Proxy,
    /// No digest at all (DIDWW's `ip_only` trunks): every INVITE is admitted.
    #[serde(rename = "none")]
    Disabled,
}

/// Which codec the SDP answer picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecChoice {
    /// The first of the offer's formats the trunk supports (PCMU or PCMA), as a carrier honours
    /// the offerer's preference.
    #[default]
    Offer,
    /// G.711 µ-law; 488 Not Acceptable Here when the offer lacks it.
    Pcmu,
    /// G.711 A-law; 488 Not Acceptable Here when the offer lacks it.
    Pcma,
}

/// What the simulated trunk does with a call to a given destination.
///
/// JSON: the outcome's `kind` and fields plus the modifiers, all defaulted, e.g.
/// `{"kind":"answer"}`, `{"kind":"answer","ring_ms":2000,"hangup_after_ms":3000}`,
/// `{"kind":"busy"}`, `{"kind":"no_answer"}`, `{"kind":"reject","code":480}`,
/// `{"kind":"answer","challenge":"proxy","stale_once":true,"packet_loss":0.1,
/// "rtp_from_other_port":true,"codec":"pcma"}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VoiceBehaviour {
    /// The outcome of the call.
    #[serde(flatten)]
    pub outcome: CallOutcome,
    /// How an INVITE without valid credentials is challenged.
    #[serde(default)]
    pub challenge: ChallengeMode,
    /// The first correct credentials are answered with a fresh challenge marked `stale=true`
    /// (RFC 2617 §3.2.1), as when a nonce expires between the challenge and the answer.
    #[serde(default)]
    pub stale_once: bool,
    /// Share in [0, 1] of the call's SIP datagrams dropped in each direction, and of the RTP
    /// packets the trunk receives (counted as lost, not recorded). Drawn from a generator seeded
    /// with the Call-ID, so a call loses the same datagrams every time it is replayed.
    #[serde(default)]
    pub packet_loss: f64,
    /// The SDP answer advertises one RTP port but the trunk sends its RTP from a second socket, to
    /// test symmetric RTP: each received packet records the local port it arrived on.
    #[serde(default)]
    pub rtp_from_other_port: bool,
    /// The codec of the answer.
    #[serde(default)]
    pub codec: CodecChoice,
}

impl VoiceBehaviour {
    /// Answer at once and wait for the gateway's BYE (the default).
    pub fn answer() -> Self {
        Self::default()
    }

    /// 486 Busy Here.
    pub fn busy() -> Self {
        Self::with_outcome(CallOutcome::Busy)
    }

    /// Ring forever (until CANCEL).
    pub fn no_answer() -> Self {
        Self::with_outcome(CallOutcome::NoAnswer)
    }

    /// Reject with `code` (e.g. 480, 603).
    pub fn reject(code: u16) -> Self {
        Self::with_outcome(CallOutcome::Reject { code })
    }

    /// The given outcome with default modifiers.
    pub fn with_outcome(outcome: CallOutcome) -> Self {
        Self {
            outcome,
            ..Self::default()
        }
    }

    /// Answers after ringing for `ring` (only for an `answer` outcome; ignored otherwise).
    pub fn ring_for(mut self, ring: Duration) -> Self {
        if let CallOutcome::Answer { ring_ms, .. } = &mut self.outcome {
            *ring_ms = Some(millis(ring));
        }
        self
    }

    /// Hangs up `after` the ACK (only for an `answer` outcome; ignored otherwise).
    pub fn hangup_after(mut self, after: Duration) -> Self {
        if let CallOutcome::Answer {
            hangup_after_ms, ..
        } = &mut self.outcome
        {
            *hangup_after_ms = Some(millis(after));
        }
        self
    }

    /// Challenges with `mode`.
    pub fn challenge(mut self, mode: ChallengeMode) -> Self {
        self.challenge = mode;
        self
    }

    /// Answers the first correct credentials with a `stale=true` challenge.
    pub fn stale_once(mut self) -> Self {
        self.stale_once = true;
        self
    }

    /// Drops this share of the call's datagrams (clamped to [0, 1]).
    pub fn packet_loss(mut self, share: f64) -> Self {
        self.packet_loss = share;
        self
    }

    /// Sends RTP from a port other than the advertised one.
    pub fn rtp_from_other_port(mut self) -> Self {
        self.rtp_from_other_port = true;
        self
    }

    /// Answers with this codec.
    pub fn codec(mut self, codec: CodecChoice) -> Self {
        self.codec = codec;
        self
    }

    /// The loss share actually used: NaN and out-of-range values are clamped into [0, 1].
    pub fn loss_share(&self) -> f64 {
        if self.packet_loss.is_nan() {
            0.0
        } else {
            self.packet_loss.clamp(0.0, 1.0)
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn roundtrip(b: &VoiceBehaviour) -> Value {
        let v = serde_json::to_value(b).unwrap();
        let back: VoiceBehaviour = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(&back, b);
        v
    }

    #[test]
    fn json_forms() {
        assert_eq!(
            roundtrip(&VoiceBehaviour::answer()),
            json!({"kind":"answer","challenge":"www","stale_once":false,"packet_loss":0.0,
                   "rtp_from_other_port":false,"codec":"offer"})
        );
        let late = VoiceBehaviour::answer()
            .ring_for(Duration::from_millis(2000))
            .hangup_after(Duration::from_secs(3));
        let v = roundtrip(&late);
        assert_eq!(v["ring_ms"], 2000);
        assert_eq!(v["hangup_after_ms"], 3000);
        assert_eq!(roundtrip(&VoiceBehaviour::busy())["kind"], "busy");
        assert_eq!(roundtrip(&VoiceBehaviour::no_answer())["kind"], "no_answer");
        let v = roundtrip(&VoiceBehaviour::reject(480));
        assert_eq!(
            (v["kind"].as_str(), v["code"].as_u64()),
            (Some("reject"), Some(480))
        );
        let v = roundtrip(
            &VoiceBehaviour::answer()
                .challenge(ChallengeMode::Disabled)
                .codec(CodecChoice::Pcma),
        );
        assert_eq!(
            (v["challenge"].as_str(), v["codec"].as_str()),
            (Some("none"), Some("pcma"))
        );
    }

    #[test]
    fn short_json_gets_defaults() {
        let b: VoiceBehaviour = serde_json::from_str(r#"{"kind":"answer"}"#).unwrap();
        assert_eq!(b, VoiceBehaviour::answer());
        let b: VoiceBehaviour = serde_json::from_str(
            r#"{"kind":"answer","ring_ms":10,"challenge":"proxy","stale_once":true,
                "packet_loss":0.25,"rtp_from_other_port":true,"codec":"pcmu"}"#,
        )
        .unwrap();
        assert_eq!(
            b,
            VoiceBehaviour::answer()
                .ring_for(Duration::from_millis(10))
                .challenge(ChallengeMode::Proxy)
                .stale_once()
                .packet_loss(0.25)
                .rtp_from_other_port()
                .codec(CodecChoice::Pcmu)
        );
        assert!(serde_json::from_str::<VoiceBehaviour>(r#"{"kind":"explode"}"#).is_err());
        assert!(serde_json::from_str::<VoiceBehaviour>(r#"{"kind":"reject"}"#).is_err());
        assert!(serde_json::from_str::<VoiceBehaviour>(r#"{"codec":"pcmu"}"#).is_err());
    }

    #[test]
    fn modifiers_only_touch_what_they_apply_to() {
        assert_eq!(
            VoiceBehaviour::busy().ring_for(Duration::from_secs(1)),
            VoiceBehaviour::busy()
        );
        assert_eq!(
            VoiceBehaviour::answer().packet_loss(f64::NAN).loss_share(),
            0.0
        );
        assert_eq!(VoiceBehaviour::answer().packet_loss(7.0).loss_share(), 1.0);
        assert_eq!(VoiceBehaviour::answer().packet_loss(-1.0).loss_share(), 0.0);
    }
}
