//! Small wire-level helpers of the simulated trunk: reason phrases, URI users, the SDP answer and
//! the seeded generator behind the simulated packet loss.

use std::net::{IpAddr, SocketAddr};

use actors::rtp::g711::Codec;
use actors::sip::sdp::{RemoteMedia, SdpSession};
use actors::xorshift::XorShift64Star;

use super::behaviour::CodecChoice;

/// The standard reason phrase of a status code (RFC 3261 §21 and the common extensions).
pub(super) fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        // Codes without a phrase of their own get their class's name (RFC 3261 §21).
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// The user part of a SIP URI or name-addr (`"x" <sip:+155@h;p>;tag=1` → `+155`); empty when
/// there is none.
pub(super) fn uri_user(value: &str) -> String {
    let uri = match (value.find('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value,
    };
    let rest = uri
        .split_once(':')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or_default().to_owned(),
        None => String::new(),
    }
}

/// Destination keys are digits without a leading `+` (DIDWW strips it, reference §4.5).
pub(super) fn normalize_destination(destination: &str) -> String {
    destination.trim().trim_start_matches('+').to_owned()
}

/// The first line of a datagram, for the ladder (lossy UTF-8, at most 200 bytes).
pub(super) fn first_line(datagram: &[u8]) -> String {
    let start = datagram
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(datagram.len());
    let rest = &datagram[start..];
    let end = rest
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(rest.len())
        .min(200);
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

/// The negotiated media of an answered call.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    /// The answer SDP.
    pub sdp: String,
    /// The gateway's media as its offer describes it, with the codec the trunk chose.
    pub remote: RemoteMedia,
}

/// Answers the gateway's `offer` with `choice` (RFC 3264 §6): one audio stream on `ip:port`, the
/// chosen codec under the offer's payload number, the offer's telephone-event if any, ptime 20 and
/// the mirrored direction. `None` when the offer is unusable or lacks a forced codec (the trunk
/// then answers 488).
pub(super) fn answer_offer(
    offer: &str,
    choice: CodecChoice,
    ip: IpAddr,
    port: u16,
    session_id: u64,
) -> Option<Answer> {
    let preferred = match choice {
        CodecChoice::Offer => None,
        CodecChoice::Pcmu => Some(Codec::Pcmu),
        CodecChoice::Pcma => Some(Codec::Pcma),
    };
    let (sdp, remote) = SdpSession::with_session_id(ip, port, session_id)
        .named("DIDWW sandbox")
        .answer_reoffer(offer, preferred)
        .ok()?;
    if preferred.is_some_and(|p| p != remote.codec) {
        return None;
    }
    Some(Answer { sdp, remote })
}

/// Where RTP to the gateway goes: the offer's address, unless it is unusable (port 0, an
/// unspecified address).
pub(super) fn rtp_target(remote: &RemoteMedia) -> Option<SocketAddr> {
    let target = remote.rtp_destination();
    (target.port() != 0 && !target.ip().is_unspecified()).then_some(target)
}

/// The simulated loss: a deterministic generator seeded from the Call-ID, so a call loses the same
/// datagrams on every run.
#[derive(Debug, Clone)]
pub(super) struct Loss {
    rng: XorShift64Star,
    share: f64,
}

impl Loss {
    /// A generator for `share` of losses, seeded with FNV-1a of `seed` and `stream` (so the SIP and
    /// each RTP socket of one call draw independent sequences).
    pub(super) fn new(seed: &str, stream: &str, share: f64) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes().chain([0]).chain(stream.bytes()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self {
            rng: XorShift64Star::new(hash),
            share,
        }
    }

    /// Whether the next datagram is lost.
    pub(super) fn drop_next(&mut self) -> bool {
        if self.share <= 0.0 {
            return false;
        }
        self.rng.unit() < self.share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str =
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=otp-gateway\r\nc=IN IP4 127.0.0.1\r\n\
        t=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

    #[test]
    fn answers_pick_the_offer_order_or_the_forced_codec() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = answer_offer(OFFER, CodecChoice::Offer, ip, 30000, 7).unwrap();
        assert_eq!(a.remote.codec, Codec::Pcmu);
        assert_eq!(a.remote.rtp_destination().to_string(), "127.0.0.1:40000");
        assert!(
            a.sdp.contains("m=audio 30000 RTP/AVP 0 101\r\n"),
            "{}",
            a.sdp
        );
        assert!(a.sdp.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        assert!(a.sdp.contains("c=IN IP4 127.0.0.1\r\n"));
        let parsed = actors::sip::sdp::parse_answer(&a.sdp).unwrap();
        assert_eq!((parsed.port, parsed.codec), (30000, Codec::Pcmu));

        let a = answer_offer(OFFER, CodecChoice::Pcma, ip, 30000, 7).unwrap();
        assert!(a.sdp.contains("m=audio 30000 RTP/AVP 8 101\r\n"));
        let pcmu_only = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 0 101");
        assert!(answer_offer(&pcmu_only, CodecChoice::Pcma, ip, 1, 1).is_none());
        assert!(answer_offer("garbage", CodecChoice::Offer, ip, 1, 1).is_none());
    }

    #[test]
    fn helpers() {
        assert_eq!(
            uri_user("\"Bob\" <sip:+1555@h:5060;user=phone>;tag=1"),
            "+1555"
        );
        assert_eq!(uri_user("sip:15555550123@127.0.0.1:5099"), "15555550123");
        assert_eq!(uri_user("sip:127.0.0.1"), "");
        assert_eq!(uri_user("<sip:1;x=y@h>"), "1");
        assert_eq!(normalize_destination(" +4930 "), "4930");
        assert_eq!(
            first_line(b"\r\nSIP/2.0 200 OK\r\nVia: x"),
            "SIP/2.0 200 OK"
        );
        assert_eq!(first_line(b""), "");
        assert_eq!(reason_phrase(480), "Temporarily Unavailable");
        assert_eq!(reason_phrase(499), "Client Error");
    }

    #[test]
    fn loss_is_deterministic_and_close_to_its_share() {
        let draws = |seed: &str| -> Vec<bool> {
            let mut l = Loss::new(seed, "sip", 0.3);
            (0..10_000).map(|_| l.drop_next()).collect()
        };
        assert_eq!(draws("call-1"), draws("call-1"));
        assert_ne!(draws("call-1"), draws("call-2"));
        let lost = draws("call-1").iter().filter(|d| **d).count();
        assert!((2_700..3_300).contains(&lost), "{lost}");
        let mut none = Loss::new("x", "sip", 0.0);
        assert!(!(0..1000).any(|_| none.drop_next()));
        let mut all = Loss::new("x", "sip", 1.0);
        assert!((0..1000).all(|_| all.drop_next()));
    }
}
