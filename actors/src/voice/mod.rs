//! The voice channel: what every call shares ([`VoiceChannel`]: settings, the SIP transport, the
//! RTP port pool, the prompt clips and the media thread), the message a call reports its progress
//! with ([`CallUpdate`]), and the registry of live calls that graceful shutdown hangs up.

pub mod call;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Message, Recipient};
use dashmap::DashMap;
use tokio::sync::watch;

use crate::domain::EventType;
use crate::ids::RequestId;
use crate::rtp::port_pool::PortPool;
use crate::rtp::prompt::{Clips, DigitGap, PromptPart};
use crate::rtp::stream::MediaEngine;
use crate::sip::digest::Credentials;
use crate::sip::message::Endpoint;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::SipTransport;

use call::{CallActor, HangUp};

/// Call settings from the configuration.
#[derive(Debug, Clone)]
pub struct VoiceSettings {
    /// Trunk and local addressing.
    pub endpoint: Endpoint,
    /// Digest credentials of the trunk.
    pub credentials: Credentials,
    /// `DIDWW_CALLER_ID` (digits).
    pub caller_id: String,
    /// `DIDWW_CALLER_ID_US_CANADA` (digits), for +1 destinations.
    pub caller_id_us_canada: Option<String>,
    /// Transaction timers (T1 from `SIP_T1_MS`).
    pub timers: TimerConfig,
    /// `CALL_RING_TIMEOUT_SECS`: from the first provisional response to our CANCEL.
    pub ring_timeout: Duration,
    /// `CALL_MAX_DURATION_SECS`: hard stop from the INVITE.
    pub max_duration: Duration,
    /// `OTP_MESSAGE_TEMPLATE`.
    pub prompt: Vec<PromptPart>,
    /// `OTP_VOICE_SPEED`.
    pub digit_gap: DigitGap,
    /// How long a finished call keeps answering retransmissions of the peer's last request
    /// (T4 by default).
    pub linger: Duration,
}

/// One step of a call, as the call's request actor records it.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct CallUpdate {
    /// Plan index of the voice attempt.
    pub attempt: usize,
    /// SIP Call-ID (stored on the request for CDR matching).
    pub call_id: String,
    /// `calling`, `ringing`, `answered`, `playing`, or a final one: `completed`, `hangup`,
    /// `no_answer`, `busy`, `failed`.
    pub event: EventType,
    /// Whether the code has been played completely at least once.
    pub otp_played: bool,
    /// From the first ringing (or the INVITE, without ringing) to the answer or the end.
    pub ring_duration_ms: Option<u64>,
    /// From the answer to the end.
    pub talk_duration_ms: Option<u64>,
    /// The final SIP status, when one ended the call.
    pub sip_code: Option<u16>,
    /// The SIP reason phrase or our own explanation.
    pub reason: Option<String>,
    /// A stable error code for failures (`capacity_exhausted`, `sip_error`, `timeout`, …).
    pub error: Option<&'static str>,
}

impl CallUpdate {
    /// True for the events that end the attempt.
    pub fn is_final(&self) -> bool {
        matches!(
            self.event,
            EventType::Completed
                | EventType::Hangup
                | EventType::NoAnswer
                | EventType::Busy
                | EventType::Failed
        )
    }

    /// True when the final event means the code reached the callee.
    pub fn is_success(&self) -> bool {
        self.event == EventType::Completed || (self.event == EventType::Hangup && self.otp_played)
    }
}

/// A call to place.
#[derive(Debug)]
pub struct PlaceCall {
    /// The request.
    pub request_id: RequestId,
    /// Plan index of the voice attempt.
    pub attempt: usize,
    /// Destination in E.164 (`+` optional).
    pub phone: String,
    /// The code to read.
    pub code: String,
    /// Where progress goes.
    pub reply_to: Recipient<CallUpdate>,
}

/// Live calls by Call-ID, with a count graceful shutdown can wait on.
#[derive(Debug)]
pub struct LiveCalls {
    calls: DashMap<String, Addr<CallActor>>,
    count: watch::Sender<usize>,
}

impl Default for LiveCalls {
    fn default() -> Self {
        Self {
            calls: DashMap::new(),
            count: watch::channel(0).0,
        }
    }
}

impl LiveCalls {
    pub(crate) fn insert(&self, call_id: String, call: Addr<CallActor>) {
        self.calls.insert(call_id, call);
        self.count.send_replace(self.calls.len());
    }

    pub(crate) fn remove(&self, call_id: &str) {
        self.calls.remove(call_id);
        self.count.send_replace(self.calls.len());
    }

    /// Calls in progress.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when no call is in progress.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

/// Everything calls share.
pub struct VoiceChannel {
    /// Settings.
    pub settings: VoiceSettings,
    /// The SIP socket actor.
    pub transport: Addr<SipTransport>,
    /// RTP ports.
    pub ports: PortPool,
    /// Prompt clips.
    pub clips: Arc<Clips>,
    /// The media thread.
    pub media: MediaEngine,
    /// Calls in progress.
    pub live: LiveCalls,
}

impl VoiceChannel {
    /// Starts a call actor for `call` on the current arbiter.
    pub fn place_call(self: &Arc<Self>, call: PlaceCall) {
        CallActor::new(Arc::clone(self), call).start();
    }

    /// Hangs up every live call (BYE when answered, CANCEL while ringing) and waits until all
    /// are gone or `timeout` passes; returns how many were still live then.
    pub async fn hang_up_all(&self, timeout: Duration) -> usize {
        let calls: Vec<Addr<CallActor>> =
            self.live.calls.iter().map(|e| e.value().clone()).collect();
        for call in calls {
            call.do_send(HangUp);
        }
        let mut count = self.live.count.subscribe();
        let drained = tokio::time::timeout(timeout, count.wait_for(|n| *n == 0)).await;
        match drained {
            Ok(_) => 0,
            Err(_) => self.live.len(),
        }
    }
}
