//! What the simulated trunk remembers about each call ([`TrunkCall`]) and how tests wait for it.
//!
//! The [`Store`] is shared between the trunk's thread (which writes) and the handle (which reads and
//! waits). Every change bumps a `tokio::sync::watch` version, so waiters wake on events instead of
//! polling, from any runtime: `watch` needs no particular executor.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actors::rtp::g711::Codec;
use tokio::sync::watch;

use super::behaviour::VoiceBehaviour;

/// Who or what ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndedBy {
    /// The gateway sent BYE.
    Gateway,
    /// The trunk sent BYE (`hangup_after_ms`).
    Trunk,
    /// The gateway cancelled the INVITE (200 to the CANCEL, 487 to the INVITE).
    Cancel,
    /// The trunk answered the INVITE with a final error (busy, reject, 403 after failed
    /// credentials, 488 for an unusable offer).
    Rejected,
    /// The gateway never ACKed the 200 within 64·T1: the trunk gave up and sent BYE
    /// (RFC 3261 §13.3.1.4).
    Timeout,
    /// The gateway was challenged and never sent another INVITE within 64·T1 (it gave up, e.g.
    /// after refused credentials).
    Abandoned,
}

/// Direction of a SIP datagram in the ladder, seen from the trunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipDirection {
    /// Gateway → trunk.
    In,
    /// Trunk → gateway.
    Out,
}

/// One SIP datagram of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipLogEntry {
    /// When it was received or sent.
    pub at: Instant,
    /// In or out.
    pub direction: SipDirection,
    /// Its start line (`INVITE sip:… SIP/2.0`, `SIP/2.0 401 Unauthorized`).
    pub first_line: String,
    /// Dropped by the simulated packet loss (an incoming one was never processed, an outgoing one
    /// never sent).
    pub dropped: bool,
}

/// One RTP packet the trunk received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpRecord {
    /// Arrival time, taken right after `recv_from` on the trunk's own thread.
    pub arrived_at: Instant,
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload type.
    pub payload_type: u8,
    /// Where it came from (the gateway's RTP socket).
    pub source: SocketAddr,
    /// The trunk's local port it arrived on (the advertised one, or the second socket of
    /// `rtp_from_other_port`).
    pub local_port: u16,
    /// The payload, when `record_audio` is on; empty otherwise.
    pub payload: Vec<u8>,
}

/// Everything the trunk saw and did for one call (one Call-ID).
#[derive(Clone, Debug)]
pub struct TrunkCall {
    /// Call-ID.
    pub call_id: String,
    /// Request-URI of the first INVITE.
    pub request_uri: String,
    /// The Request-URI's user part (the dialled number).
    pub destination: String,
    /// The From URI's user part (the caller ID DIDWW uses, reference §4.5).
    pub from_user: String,
    /// `P-Asserted-Identity` as received.
    pub p_asserted_identity: Option<String>,
    /// The behaviour applied (chosen at the first INVITE).
    pub behaviour: VoiceBehaviour,
    /// An INVITE was admitted: its credentials were verified, or the behaviour does not challenge.
    pub authorized: bool,
    /// INVITEs received outside a dialog, retransmissions included.
    pub invites_received: u32,
    /// Credentials refused (wrong password, unknown nonce, …); a `stale_once` refusal not included.
    pub auth_failures: u32,
    /// Why the last credentials were refused.
    pub last_auth_error: Option<String>,
    /// The last final status sent to an INVITE (401 before an authenticated 200, …).
    pub final_status: Option<u16>,
    /// When the first INVITE arrived.
    pub created_at: Instant,
    /// When the 200 was first sent.
    pub answered_at: Option<Instant>,
    /// When the ACK of the 200 arrived.
    pub acked_at: Option<Instant>,
    /// When the call ended.
    pub ended_at: Option<Instant>,
    /// Who ended it.
    pub ended_by: Option<EndedBy>,
    /// Status the gateway answered the trunk's BYE with, once it did.
    pub trunk_bye_status: Option<u16>,
    /// The codec of the SDP answer.
    pub codec: Option<Codec>,
    /// The gateway's SDP offer, raw.
    pub sdp_offer: Option<String>,
    /// The trunk's SDP answer, raw.
    pub sdp_answer: Option<String>,
    /// The RTP address of the gateway's offer (where the trunk sends).
    pub gateway_rtp: Option<SocketAddr>,
    /// The trunk's RTP ports: the advertised one first, then the sending one of
    /// `rtp_from_other_port`.
    pub rtp_ports: Vec<u16>,
    /// RTP packets received (not the lost ones).
    pub rtp: Vec<RtpRecord>,
    /// RTP packets dropped by the simulated loss.
    pub rtp_lost: u64,
    /// RTP packets the trunk sent (silence).
    pub rtp_sent: u64,
    /// The SIP ladder.
    pub sip: Vec<SipLogEntry>,
}

impl TrunkCall {
    pub(super) fn new(call_id: &str, behaviour: VoiceBehaviour, now: Instant) -> Self {
        Self {
            call_id: call_id.to_owned(),
            request_uri: String::new(),
            destination: String::new(),
            from_user: String::new(),
            p_asserted_identity: None,
            behaviour,
            authorized: false,
            invites_received: 0,
            auth_failures: 0,
            last_auth_error: None,
            final_status: None,
            created_at: now,
            answered_at: None,
            acked_at: None,
            ended_at: None,
            ended_by: None,
            trunk_bye_status: None,
            codec: None,
            sdp_offer: None,
            sdp_answer: None,
            gateway_rtp: None,
            rtp_ports: Vec::new(),
            rtp: Vec::new(),
            rtp_lost: 0,
            rtp_sent: 0,
            sip: Vec::new(),
        }
    }

    /// The SIP ladder as text, one datagram per line with milliseconds since the first INVITE,
    /// for test failure messages.
    pub fn ladder(&self) -> String {
        let mut out = format!("call {} to {}:\n", self.call_id, self.destination);
        for e in &self.sip {
            let ms = e.at.saturating_duration_since(self.created_at).as_millis();
            let arrow = match e.direction {
                SipDirection::In => "->",
                SipDirection::Out => "<-",
            };
            let dropped = if e.dropped { " (dropped)" } else { "" };
            let _ = writeln!(out, "  {ms:>6} ms {arrow} {}{dropped}", e.first_line);
        }
        out
    }
}

/// Counters that keep counting when records are dropped.
#[derive(Debug, Default)]
struct Totals {
    ended: usize,
    live: usize,
    options: usize,
}

#[derive(Debug)]
struct Records {
    calls: HashMap<String, TrunkCall>,
    /// Call-IDs in creation order, for eviction.
    order: VecDeque<String>,
    max: usize,
    totals: Totals,
}

/// The call records and their change signal.
#[derive(Debug)]
pub(super) struct Store {
    records: Mutex<Records>,
    version: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    pub(super) fn new(max_records: usize) -> Self {
        Self {
            records: Mutex::new(Records {
                calls: HashMap::new(),
                order: VecDeque::new(),
                max: max_records,
                totals: Totals::default(),
            }),
            version: watch::Sender::new(0),
        }
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Adds a new live call; beyond `max_records` the oldest ended record goes (the oldest of all
    /// if none has ended).
    pub(super) fn insert(&self, call: TrunkCall) {
        {
            let mut r = lock(&self.records);
            r.totals.live += 1;
            if r.max > 0 {
                while r.calls.len() >= r.max {
                    let victim = r
                        .order
                        .iter()
                        .position(|id| r.calls.get(id).is_none_or(|c| c.ended_at.is_some()))
                        .unwrap_or(0);
                    match r.order.remove(victim) {
                        Some(id) => r.calls.remove(&id),
                        None => break,
                    };
                }
                r.order.push_back(call.call_id.clone());
                r.calls.insert(call.call_id.clone(), call);
            }
        }
        self.changed();
    }

    /// Applies `f` to a call's record (if still kept) and wakes the waiters.
    pub(super) fn update(&self, call_id: &str, f: impl FnOnce(&mut TrunkCall)) {
        if let Some(call) = lock(&self.records).calls.get_mut(call_id) {
            f(call);
        }
        self.changed();
    }

    /// Like [`Store::update`] without waking anybody: for the per-packet counters of the RTP
    /// sender, which nobody waits on.
    pub(super) fn update_quietly(&self, call_id: &str, f: impl FnOnce(&mut TrunkCall)) {
        if let Some(call) = lock(&self.records).calls.get_mut(call_id) {
            f(call);
        }
    }

    /// Marks a call ended (once) and counts it.
    pub(super) fn end(&self, call_id: &str, by: EndedBy, now: Instant) {
        {
            let mut r = lock(&self.records);
            r.totals.ended += 1;
            r.totals.live = r.totals.live.saturating_sub(1);
            if let Some(call) = r.calls.get_mut(call_id) {
                call.ended_at = Some(now);
                call.ended_by = Some(by);
            }
        }
        self.changed();
    }

    pub(super) fn count_options(&self) {
        lock(&self.records).totals.options += 1;
        self.changed();
    }

    pub(super) fn live(&self) -> usize {
        lock(&self.records).totals.live
    }

    pub(super) fn options(&self) -> usize {
        lock(&self.records).totals.options
    }

    pub(super) fn ended(&self) -> usize {
        lock(&self.records).totals.ended
    }

    /// Every kept call, oldest first.
    pub(super) fn calls(&self) -> Vec<TrunkCall> {
        let r = lock(&self.records);
        r.order
            .iter()
            .filter_map(|id| r.calls.get(id).cloned())
            .collect()
    }

    pub(super) fn call(&self, call_id: &str) -> Option<TrunkCall> {
        lock(&self.records).calls.get(call_id).cloned()
    }

    /// The first kept call (oldest first) for which `pred` holds, cloned.
    pub(super) fn find(&self, mut pred: impl FnMut(&TrunkCall) -> bool) -> Option<TrunkCall> {
        let r = lock(&self.records);
        r.order
            .iter()
            .filter_map(|id| r.calls.get(id))
            .find(|c| pred(c))
            .cloned()
    }

    /// Waits until `check` returns something, re-checking after every change, for at most
    /// `timeout`. On timeout the error names `what` and shows every kept call's ladder.
    pub(super) async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Store) -> Option<T>,
    ) -> Result<T, String> {
        let mut rx = self.version.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                // Mark the current version seen before checking, so a change that lands between
                // the check and `changed()` still wakes us.
                rx.borrow_and_update();
                if let Some(found) = check(self) {
                    return found;
                }
                if rx.changed().await.is_err() {
                    // The sender lives in `self`, so this cannot happen; wait for the timeout.
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        waited.map_err(|_| {
            let mut msg =
                format!("sandbox trunk: timed out after {timeout:?} waiting for {what}\n");
            for call in self.calls() {
                msg.push_str(&call.ladder());
            }
            msg
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str) -> TrunkCall {
        TrunkCall::new(id, VoiceBehaviour::answer(), Instant::now())
    }

    #[test]
    fn eviction_prefers_ended_calls_and_totals_keep_counting() {
        let store = Store::new(2);
        store.insert(call("a"));
        store.insert(call("b"));
        store.end("b", EndedBy::Gateway, Instant::now());
        store.insert(call("c"));
        let ids: Vec<String> = store.calls().into_iter().map(|c| c.call_id).collect();
        assert_eq!(ids, ["a", "c"]);
        store.insert(call("d"));
        let ids: Vec<String> = store.calls().into_iter().map(|c| c.call_id).collect();
        assert_eq!(ids, ["c", "d"]);
        assert_eq!((store.live(), store.ended()), (3, 1));
    }

    #[tokio::test]
    async fn wait_wakes_on_change_and_times_out_with_the_ladder() {
        let store = std::sync::Arc::new(Store::new(10));
        let writer = std::sync::Arc::clone(&store);
        let waiter = tokio::spawn(async move {
            writer
                .wait("call x", Duration::from_secs(5), |s| s.call("x"))
                .await
        });
        tokio::task::yield_now().await;
        store.insert(call("x"));
        assert_eq!(waiter.await.unwrap().unwrap().call_id, "x");

        store.update("x", |c| {
            c.sip.push(SipLogEntry {
                at: c.created_at,
                direction: SipDirection::In,
                first_line: "INVITE sip:1@h SIP/2.0".into(),
                dropped: false,
            })
        });
        let err = store
            .wait("nothing", Duration::from_millis(20), |_| None::<()>)
            .await
            .unwrap_err();
        assert!(err.contains("waiting for nothing"), "{err}");
        assert!(err.contains("-> INVITE sip:1@h SIP/2.0"), "{err}");
    }
}
