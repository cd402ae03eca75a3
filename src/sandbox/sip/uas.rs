//! The trunk's SIP core, sans-IO: datagrams and timer firings in, [`Action`]s out. It routes each
//! request to its call by Call-ID (creating the call on a first INVITE), answers out-of-dialog
//! OPTIONS and strays itself, and hands responses (to the trunk's own BYE) to their call.
//!
//! The per-call state machine is [`Call`] (`call.rs` for the INVITE and its answer, `dialog.rs`
//! for what happens in the dialog and on timers).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::sip::message::{
    call_does_not_exist, ok, parse_datagram, response_with, Error, Incoming, Method, Request,
    ResponseExtras, ALLOW,
};
use actors::sip::transaction::TimerKind;

use super::call::{Call, SERVER};
use super::media::MediaPlan;
use super::wire::uri_user;
use super::Shared;

/// How many out-of-dialog OPTIONS transactions are remembered to answer retransmissions.
const OPTIONS_MEMORY: usize = 256;

/// What the driver must do.
#[derive(Debug)]
pub(super) enum Action {
    /// Send a datagram.
    Send { to: SocketAddr, bytes: Vec<u8> },
    /// Call [`Uas::on_timer`] with `timer` at `at`.
    Schedule { at: Instant, timer: Timer },
    /// Start a call's RTP tasks.
    StartMedia(MediaPlan),
    /// Stop a call's RTP tasks.
    StopMedia { call_id: String },
}

/// A timer of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Timer {
    pub call_id: String,
    pub kind: CallTimer,
}

/// What a call's timer is for. Stale firings are harmless: each handler checks the call's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallTimer {
    /// `ring_ms` elapsed: send the 200.
    Answer,
    /// Retransmit the final response of this INVITE transaction unless ACKed (RFC 3261 §13.3.1.4
    /// for a 2xx, §17.2.1 Timer G otherwise).
    Retransmit { branch: String },
    /// `hangup_after_ms` elapsed: send BYE.
    Hangup,
    /// A timer of the trunk's BYE client transaction.
    Bye(TimerKind),
    /// 64·T1 after a challenge: if no newer INVITE came, the gateway gave up.
    Abandon { branch: String },
    /// Forget an ended call (after retransmissions can no longer arrive).
    Purge,
}

/// What a call handler needs from the core: the clock, the settings and the action list.
pub(super) struct Ctx<'a> {
    pub now: Instant,
    pub shared: &'a Shared,
    /// The trunk's SIP address (Via, Contact, Record-Route, and the IP of RTP sockets).
    pub local: SocketAddr,
    pub out: &'a mut Vec<Action>,
}

impl Ctx<'_> {
    /// Arms `kind` for `call_id` after `after`.
    pub fn schedule(&mut self, call_id: &str, after: Duration, kind: CallTimer) {
        let at = self.now.checked_add(after).unwrap_or(self.now);
        self.out.push(Action::Schedule {
            at,
            timer: Timer {
                call_id: call_id.to_owned(),
                kind,
            },
        });
    }

    /// 64·T1, the RFC 3261 transaction timeout (Timers B, F, H).
    pub fn timeout(&self) -> Duration {
        self.shared.t1.saturating_mul(64)
    }
}

/// The trunk's SIP core.
pub(super) struct Uas {
    shared: Arc<Shared>,
    local: SocketAddr,
    calls: HashMap<String, Call>,
    /// Recent out-of-dialog OPTIONS: (branch, response), for retransmissions.
    options: VecDeque<(String, Vec<u8>)>,
}

impl Uas {
    pub(super) fn new(shared: Arc<Shared>, local: SocketAddr) -> Self {
        Self {
            shared,
            local,
            calls: HashMap::new(),
            options: VecDeque::new(),
        }
    }

    /// A datagram arrived from `from`.
    pub(super) fn on_datagram(
        &mut self,
        now: Instant,
        data: &[u8],
        from: SocketAddr,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let incoming = match parse_datagram(data) {
            Ok(m) => m,
            // CRLF keepalives (RFC 5626 §4.4.1) are not worth a log line.
            Err(Error::Empty) => return out,
            Err(e) => {
                tracing::debug!(%from, error = %e, "sandbox trunk: unparseable datagram dropped");
                return out;
            }
        };
        let shared = Arc::clone(&self.shared);
        let mut ctx = Ctx {
            now,
            shared: &shared,
            local: self.local,
            out: &mut out,
        };
        match incoming {
            Incoming::Request(request) => self.on_request(&mut ctx, request, data, from),
            Incoming::Response(response) => {
                if let Some(call) = self.calls.get_mut(&response.call_id) {
                    if call.receive(&mut ctx, data) {
                        call.on_response(&mut ctx, &response);
                    }
                } else {
                    tracing::debug!(call_id = %response.call_id, "sandbox trunk: stray response");
                }
            }
        }
        out
    }

    /// A timer armed through [`Action::Schedule`] fired.
    pub(super) fn on_timer(&mut self, now: Instant, timer: Timer) -> Vec<Action> {
        let mut out = Vec::new();
        let shared = Arc::clone(&self.shared);
        let mut ctx = Ctx {
            now,
            shared: &shared,
            local: self.local,
            out: &mut out,
        };
        let Some(call) = self.calls.get_mut(&timer.call_id) else {
            return out;
        };
        if timer.kind == CallTimer::Purge {
            if call.can_purge() {
                self.calls.remove(&timer.call_id);
            } else {
                let after = ctx.timeout();
                ctx.schedule(&timer.call_id, after, CallTimer::Purge);
            }
        } else {
            call.on_timer(&mut ctx, timer.kind);
        }
        out
    }

    fn on_request(&mut self, ctx: &mut Ctx<'_>, request: Request, data: &[u8], from: SocketAddr) {
        if let Some(call) = self.calls.get_mut(&request.call_id) {
            if call.receive(ctx, data) {
                call.on_request(ctx, request, from);
            }
            return;
        }
        let out_of_dialog = request.to_tag.is_none();
        let response = match request.method {
            Method::Invite if out_of_dialog => {
                let behaviour = ctx.shared.behaviour_for(&uri_user(&request.uri));
                let mut call = Call::new(ctx, &request, behaviour);
                // Should no INVITE of this call ever get through (total loss), it still ends.
                let after = ctx.timeout();
                ctx.schedule(
                    &request.call_id,
                    after,
                    CallTimer::Abandon {
                        branch: String::new(),
                    },
                );
                if call.receive(ctx, data) {
                    call.on_request(ctx, request.clone(), from);
                }
                self.calls.insert(request.call_id, call);
                return;
            }
            // An ACK is never answered (RFC 3261 §17).
            Method::Ack => return,
            Method::Options if out_of_dialog => return self.on_options(ctx, &request, from),
            Method::Bye | Method::Cancel => call_does_not_exist(&request, SERVER),
            _ if !out_of_dialog => call_does_not_exist(&request, SERVER),
            _ => response_with(
                &request,
                405,
                "Method Not Allowed",
                SERVER,
                ResponseExtras {
                    headers: &[("Allow", ALLOW)],
                    ..ResponseExtras::default()
                },
            ),
        };
        if let Some(bytes) = response {
            ctx.out.push(Action::Send { to: from, bytes });
        }
    }

    /// The gateway's keepalive (reference §4.9): 200 with Allow/Accept, counted once per
    /// transaction.
    fn on_options(&mut self, ctx: &mut Ctx<'_>, request: &Request, from: SocketAddr) {
        let branch = request.via_branch.clone().unwrap_or_default();
        if let Some((_, bytes)) = self.options.iter().find(|(b, _)| *b == branch) {
            ctx.out.push(Action::Send {
                to: from,
                bytes: bytes.clone(),
            });
            return;
        }
        let Some(bytes) = ok(request, SERVER) else {
            return;
        };
        ctx.shared.store.count_options();
        if self.options.len() >= OPTIONS_MEMORY {
            self.options.pop_front();
        }
        self.options.push_back((branch, bytes.clone()));
        ctx.out.push(Action::Send { to: from, bytes });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use actors::sip::digest::Credentials;

    use super::super::behaviour::VoiceBehaviour;
    use super::super::records::{EndedBy, Store};
    use super::*;

    fn uas(default: VoiceBehaviour) -> Uas {
        let shared = Shared {
            credentials: Credentials {
                username: "u".into(),
                password: "p".into(),
            },
            realm: "out.didww.com".into(),
            t1: Duration::from_millis(10),
            record_audio: true,
            send_rtp: false,
            default_behaviour: Mutex::new(default),
            behaviours: Mutex::new(HashMap::new()),
            store: Arc::new(Store::new(10)),
        };
        Uas::new(Arc::new(shared), "127.0.0.1:5099".parse().unwrap())
    }

    const PEER: &str = "127.0.0.1:5060";

    fn request(method: &str, call_id: &str, to_tag: &str, branch: &str) -> Vec<u8> {
        format!(
            "{method} sip:15555550123@127.0.0.1:5099 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport\r\n\
             From: <sip:15555550100@127.0.0.1>;tag=gw1\r\n\
             To: <sip:15555550123@127.0.0.1>{to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n\
             Contact: <sip:15555550100@127.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    /// The status lines of the datagrams the actions send.
    fn sent(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { bytes, .. } => Some(super::super::wire::first_line(bytes)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn strays_are_answered_by_the_core() {
        let mut uas = uas(VoiceBehaviour::answer());
        let now = Instant::now();
        let peer = PEER.parse().unwrap();
        let info = uas.on_datagram(now, &request("INFO", "c1", "", "z9hG4bK1"), peer);
        assert_eq!(sent(&info), ["SIP/2.0 405 Method Not Allowed"]);
        let bye = uas.on_datagram(now, &request("BYE", "c1", ";tag=x", "z9hG4bK2"), peer);
        assert_eq!(sent(&bye), ["SIP/2.0 481 Call/Transaction Does Not Exist"]);
        let reinvite = uas.on_datagram(now, &request("INVITE", "c1", ";tag=x", "z9hG4bK3"), peer);
        assert_eq!(
            sent(&reinvite),
            ["SIP/2.0 481 Call/Transaction Does Not Exist"]
        );
        assert!(uas
            .on_datagram(now, &request("ACK", "c1", ";tag=x", "z9hG4bK4"), peer)
            .is_empty());
        assert!(uas.on_datagram(now, b"\r\n\r\n", peer).is_empty());
        assert!(uas.on_datagram(now, b"not sip at all", peer).is_empty());
        assert!(uas.calls.is_empty());
    }

    #[test]
    fn invite_without_credentials_is_challenged_and_abandoned_after_64_t1() {
        let mut uas = uas(VoiceBehaviour::answer());
        let now = Instant::now();
        let peer = PEER.parse().unwrap();
        let actions = uas.on_datagram(now, &request("INVITE", "c2", "", "z9hG4bK1"), peer);
        assert_eq!(
            sent(&actions),
            ["SIP/2.0 100 Trying", "SIP/2.0 401 Unauthorized"]
        );
        let abandon = actions
            .iter()
            .find_map(|a| match a {
                Action::Schedule { at, timer }
                    if timer.kind
                        == (CallTimer::Abandon {
                            branch: "z9hG4bK1".into(),
                        }) =>
                {
                    Some((*at, timer.clone()))
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(abandon.0 - now, Duration::from_millis(640));
        let after = uas.on_timer(abandon.0, abandon.1);
        assert!(after.iter().any(|a| matches!(a, Action::StopMedia { .. })));
        let call = uas.shared.store.call("c2").unwrap();
        assert_eq!(call.ended_by, Some(EndedBy::Abandoned));
        assert_eq!(call.final_status, Some(401));
    }
}
