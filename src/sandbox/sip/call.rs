//! One call on the simulated trunk, up to its answer: the INVITE server transactions (100 Trying,
//! the digest challenge, the behaviour's 180/200 or final error), credential checks and the SDP
//! answer that starts the media. What follows in the dialog is in `dialog.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actors::sip::message::{new_tag, response_with, uas_dialog, Dialog, Request, ResponseExtras};
use actors::sip::transaction::NonInviteClientTransaction;

use super::auth::Verifier;
use super::behaviour::{CallOutcome, ChallengeMode, VoiceBehaviour};
use super::media::{MediaPlan, MediaSockets};
use super::records::{EndedBy, SipDirection, SipLogEntry, TrunkCall};
use super::uas::{Action, CallTimer, Ctx};
use super::wire::{answer_offer, first_line, reason_phrase, rtp_target, uri_user, Loss};

/// `Server` / `User-Agent` of everything the trunk sends.
pub(super) const SERVER: &str = "DIDWW sandbox (otp-gateway)";

/// Refused credentials after which the trunk answers 403 instead of challenging again.
const MAX_AUTH_FAILURES: u32 = 3;

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Challenged (or about to be); waiting for an INVITE with credentials.
    Challenging,
    /// Admitted, 180 sent, no final response yet.
    Ringing,
    /// 200 sent, waiting for the ACK.
    Answered,
    /// ACK received: the call is up.
    Confirmed,
    /// Over (the record says how); only retransmissions are absorbed until purged.
    Ended,
}

/// One INVITE server transaction (one Via branch).
#[derive(Debug)]
pub(super) struct InviteTx {
    pub request: Request,
    pub from: SocketAddr,
    /// The last response sent, resent on a retransmitted INVITE.
    pub last: Vec<u8>,
    pub final_status: Option<u16>,
    pub final_at: Option<Instant>,
    pub acked: bool,
    /// Current retransmission interval of the final response.
    pub interval: Duration,
}

/// The trunk's own BYE.
#[derive(Debug)]
pub(super) struct ByeTx {
    pub tx: NonInviteClientTransaction,
    pub branch: String,
    pub to: SocketAddr,
}

/// The state of one call (one Call-ID).
#[derive(Debug)]
pub(super) struct Call {
    pub id: String,
    pub behaviour: VoiceBehaviour,
    pub loss: Loss,
    pub verifier: Verifier,
    /// Our To tag for the dialog (180, 200 and final errors after admission).
    pub local_tag: String,
    /// The gateway's From tag.
    pub remote_tag: Option<String>,
    /// Our side of the dialog: the INVITE's To with our tag (From of the trunk's BYE).
    pub local_party: String,
    pub phase: Phase,
    pub stale_sent: bool,
    pub auth_failures: u32,
    pub invites: HashMap<String, InviteTx>,
    /// Branch of the newest INVITE transaction.
    pub latest_branch: String,
    /// Branch of the admitted INVITE.
    pub admitted: Option<String>,
    /// Responses to non-INVITE requests by (branch, method), for retransmissions.
    pub others: HashMap<(String, String), Vec<u8>>,
    pub dialog: Option<Dialog>,
    pub answer_sdp: Option<String>,
    pub bye: Option<ByeTx>,
}

impl Call {
    /// A call for a first INVITE; its record is created now.
    pub(super) fn new(ctx: &mut Ctx<'_>, invite: &Request, behaviour: VoiceBehaviour) -> Self {
        let mut record = TrunkCall::new(&invite.call_id, behaviour.clone(), ctx.now);
        record.request_uri = invite.uri.clone();
        record.destination = uri_user(&invite.uri);
        record.from_user = uri_user(&invite.from);
        record.p_asserted_identity = invite.p_asserted_identity.clone();
        ctx.shared.store.insert(record);
        let local_tag = new_tag();
        Self {
            id: invite.call_id.clone(),
            loss: Loss::new(&invite.call_id, "sip", behaviour.loss_share()),
            behaviour,
            verifier: Verifier::new(ctx.shared.credentials.clone(), ctx.shared.realm.clone()),
            local_party: format!("{};tag={local_tag}", invite.to),
            local_tag,
            remote_tag: invite.from_tag.clone(),
            phase: Phase::Challenging,
            stale_sent: false,
            auth_failures: 0,
            invites: HashMap::new(),
            latest_branch: String::new(),
            admitted: None,
            others: HashMap::new(),
            dialog: None,
            answer_sdp: None,
            bye: None,
        }
    }

    /// Logs an incoming datagram and decides whether the simulated network lost it.
    pub(super) fn receive(&mut self, ctx: &mut Ctx<'_>, data: &[u8]) -> bool {
        let dropped = self.loss.drop_next();
        self.log(ctx, SipDirection::In, data, dropped);
        !dropped
    }

    /// Sends a datagram of this call through the simulated network.
    pub(super) fn send(&mut self, ctx: &mut Ctx<'_>, to: SocketAddr, bytes: Vec<u8>) {
        let dropped = self.loss.drop_next();
        self.log(ctx, SipDirection::Out, &bytes, dropped);
        if !dropped {
            ctx.out.push(Action::Send { to, bytes });
        }
    }

    fn log(&self, ctx: &Ctx<'_>, direction: SipDirection, data: &[u8], dropped: bool) {
        let entry = SipLogEntry {
            at: ctx.now,
            direction,
            first_line: first_line(data),
            dropped,
        };
        ctx.shared.store.update(&self.id, |c| c.sip.push(entry));
    }

    /// A request of this call (already past the simulated loss).
    pub(super) fn on_request(&mut self, ctx: &mut Ctx<'_>, request: Request, from: SocketAddr) {
        use actors::sip::message::Method;
        match request.method {
            Method::Invite if request.to_tag.is_none() => self.on_invite(ctx, request, from),
            Method::Ack => self.on_ack(ctx, &request),
            Method::Cancel => self.on_cancel(ctx, &request, from),
            _ => self.on_in_dialog(ctx, &request, from),
        }
    }

    fn on_invite(&mut self, ctx: &mut Ctx<'_>, request: Request, from: SocketAddr) {
        ctx.shared
            .store
            .update(&self.id, |c| c.invites_received += 1);
        // RFC 2543 peers send no branch; their CSeq tells transactions apart well enough here.
        let branch = request
            .via_branch
            .clone()
            .unwrap_or_else(|| format!("cseq-{}", request.cseq));
        if let Some(tx) = self.invites.get(&branch) {
            let (to, bytes) = (tx.from, tx.last.clone());
            return self.send(ctx, to, bytes);
        }
        if self.phase != Phase::Challenging {
            // A second INVITE for a call past its challenge: a loop or a merged request (§8.2.2.2).
            if let Some(bytes) = respond(&request, 482, None, &[], None) {
                self.send(ctx, from, bytes);
            }
            return;
        }
        let offer = request.body_text().map(str::to_owned);
        ctx.shared.store.update(&self.id, |c| c.sdp_offer = offer);
        let trying = respond(&request, 100, None, &[], None).unwrap_or_default();
        self.latest_branch = branch.clone();
        self.invites.insert(
            branch.clone(),
            InviteTx {
                request,
                from,
                last: trying.clone(),
                final_status: None,
                final_at: None,
                acked: false,
                interval: ctx.shared.t1,
            },
        );
        self.send(ctx, from, trying);
        self.authenticate(ctx, &branch);
    }

    /// Challenges, refuses or admits the INVITE of `branch` (reference §4.4).
    fn authenticate(&mut self, ctx: &mut Ctx<'_>, branch: &str) {
        let Some(tx) = self.invites.get(branch) else {
            return;
        };
        let headers = match self.behaviour.challenge {
            ChallengeMode::Disabled => return self.admit(ctx, branch),
            ChallengeMode::Www => &tx.request.authorization,
            ChallengeMode::Proxy => &tx.request.proxy_authorization,
        };
        if headers.is_empty() {
            return self.challenge(ctx, branch, false);
        }
        match self.verifier.verify(headers, "INVITE", &tx.request.uri) {
            Ok(()) if self.behaviour.stale_once && !self.stale_sent => {
                self.stale_sent = true;
                self.challenge(ctx, branch, true);
            }
            Ok(()) => self.admit(ctx, branch),
            Err(e) => {
                self.auth_failures += 1;
                let (failures, reason) = (self.auth_failures, e.to_string());
                tracing::debug!(call_id = %self.id, %reason, "sandbox trunk: credentials refused");
                ctx.shared.store.update(&self.id, |c| {
                    c.auth_failures = failures;
                    c.last_auth_error = Some(reason);
                });
                if failures >= MAX_AUTH_FAILURES {
                    self.finish(ctx, branch, 403, EndedBy::Rejected);
                } else {
                    self.challenge(ctx, branch, false);
                }
            }
        }
    }

    /// 401 (or 407) with a fresh nonce, a fresh To tag and DIDWW's two Record-Routes.
    fn challenge(&mut self, ctx: &mut Ctx<'_>, branch: &str, stale: bool) {
        let (status, header) = match self.behaviour.challenge {
            ChallengeMode::Proxy => (407, "Proxy-Authenticate"),
            _ => (401, "WWW-Authenticate"),
        };
        let value = self.verifier.challenge(stale);
        let rr = record_route(ctx.local);
        let headers = [
            ("Record-Route", rr.as_str()),
            ("Record-Route", rr.as_str()),
            (header, value.as_str()),
        ];
        self.respond_in(ctx, branch, status, Some(&new_tag()), &headers, None);
        let after = ctx.timeout();
        ctx.schedule(
            &self.id,
            after,
            CallTimer::Abandon {
                branch: branch.to_owned(),
            },
        );
    }

    /// The INVITE of `branch` passed authentication: apply the behaviour.
    fn admit(&mut self, ctx: &mut Ctx<'_>, branch: &str) {
        ctx.shared.store.update(&self.id, |c| c.authorized = true);
        self.admitted = Some(branch.to_owned());
        match self.behaviour.outcome {
            CallOutcome::Answer { ring_ms, .. } => {
                self.ring(ctx, branch);
                match ring_ms {
                    Some(ms) if ms > 0 => {
                        ctx.schedule(&self.id, Duration::from_millis(ms), CallTimer::Answer)
                    }
                    _ => self.answer(ctx),
                }
            }
            CallOutcome::NoAnswer => self.ring(ctx, branch),
            CallOutcome::Busy => self.finish(ctx, branch, 486, EndedBy::Rejected),
            CallOutcome::Reject { code } => {
                let code = if (300..=699).contains(&code) {
                    code
                } else {
                    500
                };
                self.finish(ctx, branch, code, EndedBy::Rejected);
            }
        }
    }

    fn ring(&mut self, ctx: &mut Ctx<'_>, branch: &str) {
        let (rr, contact) = (record_route(ctx.local), contact(ctx.local));
        let headers = [
            ("Record-Route", rr.as_str()),
            ("Record-Route", rr.as_str()),
            ("Contact", contact.as_str()),
        ];
        let tag = self.local_tag.clone();
        self.respond_in(ctx, branch, 180, Some(&tag), &headers, None);
        self.phase = Phase::Ringing;
    }

    /// Sends the 200 with the SDP answer and starts the media (ring timer or at once).
    pub(super) fn answer(&mut self, ctx: &mut Ctx<'_>) {
        let Some(branch) = self.admitted.clone() else {
            return;
        };
        let Some(tx) = self
            .invites
            .get(&branch)
            .filter(|_| self.phase == Phase::Ringing)
        else {
            return;
        };
        let offer = tx.request.body_text().unwrap_or_default().to_owned();
        let dialog = uas_dialog(&tx.request, &self.local_tag);
        let ip = ctx.local.ip();
        let sockets = match MediaSockets::bind(ip, self.behaviour.rtp_from_other_port) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(call_id = %self.id, error = %e, "sandbox trunk: no RTP socket");
                return self.finish(ctx, &branch, 500, EndedBy::Rejected);
            }
        };
        let ports = sockets.ports();
        let session_id = u64::from_str_radix(&self.local_tag, 16).unwrap_or(1);
        let port = ports.first().copied().unwrap_or_default();
        let Some(answer) = answer_offer(&offer, self.behaviour.codec, ip, port, session_id) else {
            return self.finish(ctx, &branch, 488, EndedBy::Rejected);
        };
        let Ok(dialog) = dialog else {
            // No usable Contact in the INVITE (RFC 3261 §8.1.1.8): nowhere to send a BYE.
            return self.finish(ctx, &branch, 400, EndedBy::Rejected);
        };
        let (rr, contact) = (record_route(ctx.local), contact(ctx.local));
        let headers = [
            ("Record-Route", rr.as_str()),
            ("Record-Route", rr.as_str()),
            ("Contact", contact.as_str()),
        ];
        let tag = self.local_tag.clone();
        let body = ("application/sdp", answer.sdp.as_bytes());
        self.respond_in(ctx, &branch, 200, Some(&tag), &headers, Some(body));
        self.phase = Phase::Answered;
        self.dialog = Some(dialog);
        self.answer_sdp = Some(answer.sdp.clone());
        let target = if ctx.shared.send_rtp {
            rtp_target(&answer.remote)
        } else {
            None
        };
        let now = ctx.now;
        ctx.shared.store.update(&self.id, |c| {
            c.answered_at = Some(now);
            c.codec = Some(answer.remote.codec);
            c.sdp_answer = Some(answer.sdp);
            c.gateway_rtp = Some(answer.remote.rtp_destination());
            c.rtp_ports = ports;
        });
        ctx.out.push(Action::StartMedia(MediaPlan {
            call_id: self.id.clone(),
            sockets,
            target,
            codec: answer.remote.codec,
            loss_share: self.behaviour.loss_share(),
            record_audio: ctx.shared.record_audio,
        }));
    }

    /// A final error to the INVITE of `branch`; the call ends.
    pub(super) fn finish(&mut self, ctx: &mut Ctx<'_>, branch: &str, status: u16, by: EndedBy) {
        let tag = self.local_tag.clone();
        self.respond_in(ctx, branch, status, Some(&tag), &[], None);
        self.end(ctx, by);
    }

    /// Responds to the INVITE of `branch`; a final response is remembered for retransmission and
    /// retransmitted until ACKed.
    fn respond_in(
        &mut self,
        ctx: &mut Ctx<'_>,
        branch: &str,
        status: u16,
        to_tag: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) {
        let Some(tx) = self.invites.get_mut(branch) else {
            return;
        };
        let Some(bytes) = respond(&tx.request, status, to_tag, headers, body) else {
            return;
        };
        tx.last = bytes.clone();
        let to = tx.from;
        if status >= 200 {
            tx.final_status = Some(status);
            tx.final_at = Some(ctx.now);
            tx.interval = ctx.shared.t1;
            ctx.shared
                .store
                .update(&self.id, |c| c.final_status = Some(status));
            let t1 = ctx.shared.t1;
            ctx.schedule(
                &self.id,
                t1,
                CallTimer::Retransmit {
                    branch: branch.to_owned(),
                },
            );
        }
        self.send(ctx, to, bytes);
    }
}

/// A response of the trunk to `request` with the standard reason phrase.
pub(super) fn respond(
    request: &Request,
    status: u16,
    to_tag: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Option<Vec<u8>> {
    let extras = ResponseExtras {
        to_tag,
        headers,
        body,
    };
    response_with(request, status, reason_phrase(status), SERVER, extras)
}

/// DIDWW puts its SBC's address in Record-Route (reference §4.4); the trunk puts its own, so the
/// gateway's in-dialog requests still reach it.
fn record_route(local: SocketAddr) -> String {
    format!("<sip:{local};r2=on;lr>")
}

fn contact(local: SocketAddr) -> String {
    format!("<sip:trunk@{local}>")
}
