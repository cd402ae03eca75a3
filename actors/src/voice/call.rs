//! `CallActor`: one outgoing call, one SIP dialog, one RTP stream (DESIGN.md).
//!
//! The call leases an RTP port (an exhausted pool fails it at once with `capacity_exhausted`),
//! sends the INVITE through an RFC 3261 INVITE client transaction, answers a 401/407 digest
//! challenge once (a second challenge means wrong credentials: the call fails with that code, no
//! loop), reports `ringing` on 180/183, CANCELs when the ring timeout passes after a provisional
//! response, ACKs the 2xx along the dialog's route set, plays the prompt on the media thread, and
//! hangs up with BYE when the prompt ends. In the dialog it answers BYE, OPTIONS and re-INVITE
//! (without changing its media). `CALL_MAX_DURATION_SECS` stops any call, ringing or talking.
//!
//! Every step goes to the request actor as a [`CallUpdate`]; exactly one final update (completed,
//! hangup, no_answer, busy or failed) is sent, except on shutdown before the code was played: then
//! the call is hung up without an outcome, and the request resumes it after the restart.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, ContextFutureSpawner, Handler,
    Message, SpawnHandle, StreamHandler, WrapFuture,
};

use super::{CallUpdate, PlaceCall, VoiceChannel};
use crate::domain::EventType;
use crate::ids::RequestId;
use crate::rtp::port_pool::PortLease;
use crate::rtp::prompt::PromptPlan;
use crate::rtp::stream::{Playback, PlaybackEvent, PlaybackHandle};
use crate::sip::digest::{AuthorizationHeader, ChallengeVerdict, DigestSession};
use crate::sip::message::{self, CallParams, Dialog, Incoming, Method, Request, Response};
use crate::sip::sdp::{self, SdpSession};
use crate::sip::timers::TransactionTimers;
use crate::sip::transaction::{
    Action, InviteClientTransaction, InviteState, NonInviteClientTransaction, NonInviteState,
    Reason, TimerKind,
};
use crate::sip::transport::{self, Bind, RouteKey, SipInbound, Transmit, TrunkAddress, Unbind};

/// Ends the call: BYE when answered, CANCEL while ringing (graceful shutdown).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct HangUp;

/// Why we are ending the call ourselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    RingTimeout,
    MaxDuration,
    Shutdown,
}

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Leasing a port, finding the trunk.
    Starting,
    /// INVITE sent, no final response yet.
    Inviting,
    /// 2xx received and ACKed; media flowing.
    Answered,
    /// The outcome is known; waiting for our last transactions, then stopping.
    Ended,
}

/// One INVITE (the first, or one re-sent with credentials).
struct InviteTx {
    cseq: u32,
    machine: InviteClientTransaction,
    timers: TransactionTimers,
}

/// A CANCEL or BYE.
struct NonInviteTx {
    machine: NonInviteClientTransaction,
    timers: TransactionTimers,
    to: SocketAddr,
}

/// Our 2xx to a re-INVITE, sent again until its ACK arrives (RFC 3261 §13.3.1.4): over UDP the
/// ACK is the only sign the peer got it, and the peer never retransmits a re-INVITE after 2xx.
struct UnacknowledgedOk {
    cseq: u32,
    bytes: Vec<u8>,
    to: SocketAddr,
    interval: Duration,
    /// When the next copy is due: each deadline follows from the first send, so a late timer does
    /// not push the later copies back.
    due: Instant,
    give_up_at: Instant,
    timer: SpawnHandle,
}

/// The call actor.
pub struct CallActor {
    voice: Arc<VoiceChannel>,
    request_id: RequestId,
    attempt: usize,
    code: String,
    reply_to: actix::Recipient<CallUpdate>,
    params: Option<CallParams>,
    phone: String,
    lease: Option<PortLease>,
    sdp: Option<SdpSession>,
    offer: String,
    digest: DigestSession,
    auth: Vec<AuthorizationHeader>,
    auth_retries: u32,
    trunk: Option<SocketAddr>,
    phase: Phase,
    /// INVITE transactions by branch; the current one is `current_branch`.
    invites: HashMap<String, InviteTx>,
    current_branch: String,
    /// CANCEL/BYE transactions by (branch, method).
    others: HashMap<(String, &'static str), NonInviteTx>,
    routes: Vec<RouteKey>,
    dialog: Option<Dialog>,
    dialog_hop: Option<SocketAddr>,
    ack: Option<Vec<u8>>,
    playback: Option<PlaybackHandle>,
    codec: Option<crate::rtp::g711::Codec>,
    otp_played: bool,
    provisional_seen: bool,
    ringing_reported: bool,
    ending: Option<Ending>,
    final_sent: bool,
    started_at: Instant,
    ring_started: Option<Instant>,
    answered_at: Option<Instant>,
    ring_timer: Option<SpawnHandle>,
    /// The last response we sent to a peer request, by its branch and method, for retransmissions.
    answered: HashMap<(String, String), Vec<u8>>,
    reinvite_ok: Option<UnacknowledgedOk>,
    stop_scheduled: bool,
}

impl CallActor {
    /// A call; nothing happens until it is started.
    pub fn new(voice: Arc<VoiceChannel>, call: PlaceCall) -> Self {
        let credentials = voice.settings.credentials.clone();
        Self {
            voice,
            request_id: call.request_id,
            attempt: call.attempt,
            code: call.code,
            reply_to: call.reply_to,
            params: None,
            phone: call.phone,
            lease: None,
            sdp: None,
            offer: String::new(),
            digest: DigestSession::new(credentials),
            auth: Vec::new(),
            auth_retries: 0,
            trunk: None,
            phase: Phase::Starting,
            invites: HashMap::new(),
            current_branch: String::new(),
            others: HashMap::new(),
            routes: Vec::new(),
            dialog: None,
            dialog_hop: None,
            ack: None,
            playback: None,
            codec: None,
            otp_played: false,
            provisional_seen: false,
            ringing_reported: false,
            ending: None,
            final_sent: false,
            started_at: Instant::now(),
            ring_started: None,
            answered_at: None,
            ring_timer: None,
            answered: HashMap::new(),
            reinvite_ok: None,
            stop_scheduled: false,
        }
    }

    fn call_id(&self) -> &str {
        self.params.as_ref().map_or("", |p| p.call_id.as_str())
    }

    // -----------------------------------------------------------------------------------------
    // Reporting
    // -----------------------------------------------------------------------------------------

    fn update(&self, event: EventType) -> CallUpdate {
        CallUpdate {
            attempt: self.attempt,
            call_id: self.call_id().to_owned(),
            event,
            otp_played: self.otp_played,
            ring_duration_ms: None,
            talk_duration_ms: None,
            sip_code: None,
            reason: None,
            error: None,
        }
    }

    fn report(&self, update: CallUpdate) {
        self.reply_to.do_send(update);
    }

    fn ring_duration(&self, until: Instant) -> u64 {
        let from = self.ring_started.unwrap_or(self.started_at);
        millis(until.saturating_duration_since(from))
    }

    /// Sends the one final update and moves to `Ended`; later calls do nothing.
    fn conclude(&mut self, mut update: CallUpdate, ctx: &mut Context<Self>) {
        self.phase = Phase::Ended;
        // The media ends with the outcome: the stream stops and the port goes back to the pool
        // while the signalling winds down.
        self.playback = None;
        self.lease = None;
        self.cancel_ring_timer(ctx);
        if !self.final_sent {
            self.final_sent = true;
            let now = Instant::now();
            update.otp_played = self.otp_played;
            match self.answered_at {
                Some(answered) => {
                    update.ring_duration_ms = Some(self.ring_duration(answered));
                    update.talk_duration_ms = Some(millis(now.saturating_duration_since(answered)));
                }
                None => update.ring_duration_ms = Some(self.ring_duration(now)),
            }
            // A shutdown before the code was heard is not the callee's doing: no outcome, the
            // request resumes the call after the restart.
            let silent = self.ending == Some(Ending::Shutdown) && !update.is_success();
            if !silent {
                self.report(update);
            }
        }
        self.stop_when_idle(ctx);
    }

    fn fail(&mut self, error: &'static str, reason: &str, ctx: &mut Context<Self>) {
        let mut update = self.update(EventType::Failed);
        update.error = Some(error);
        update.reason = Some(reason.to_owned());
        self.conclude(update, ctx);
    }

    /// Stops once no transaction of ours still waits for an answer (so BYE/CANCEL
    /// retransmissions and ACKs of retransmitted finals still go out), then lingers a little to
    /// answer the peer's retransmissions. The call leaves the live registry as soon as it is idle.
    fn stop_when_idle(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Ended || self.stop_scheduled {
            return;
        }
        let waiting = self.others.values().any(|t| {
            matches!(
                t.machine.state(),
                NonInviteState::Trying | NonInviteState::Proceeding
            )
        }) || self.invites.values().any(|t| {
            matches!(
                t.machine.state(),
                InviteState::Calling | InviteState::Proceeding
            )
        });
        if waiting {
            return;
        }
        self.stop_scheduled = true;
        if let Some(params) = &self.params {
            self.voice.live.remove(&params.call_id);
        }
        let linger = self.voice.settings.linger;
        ctx.run_later(linger, |_, ctx| ctx.stop());
    }

    // -----------------------------------------------------------------------------------------
    // Sending
    // -----------------------------------------------------------------------------------------

    fn transmit(&self, to: SocketAddr, bytes: Vec<u8>) {
        self.voice.transport.do_send(Transmit { to, bytes });
    }

    fn bind(&mut self, key: RouteKey, ctx: &mut Context<Self>) {
        self.routes.push(key.clone());
        self.voice.transport.do_send(Bind {
            key,
            to: ctx.address().recipient(),
        });
    }

    // -----------------------------------------------------------------------------------------
    // Start
    // -----------------------------------------------------------------------------------------

    fn begin(&mut self, trunk: SocketAddr, ctx: &mut Context<Self>) {
        self.trunk = Some(trunk);
        let settings = &self.voice.settings;
        let caller = message::caller_id_for(
            &self.phone,
            &settings.caller_id,
            settings.caller_id_us_canada.as_deref(),
        );
        let params = match CallParams::new(settings.endpoint.clone(), &self.phone, caller) {
            Ok(params) => params,
            Err(err) => return self.fail("invalid_destination", &err.to_string(), ctx),
        };
        let Some(port) = self.lease.as_ref().map(PortLease::port) else {
            return self.fail("capacity_exhausted", "no RTP port", ctx);
        };
        let mut sdp = SdpSession::new(settings.endpoint.public_ip, port);
        self.offer = sdp.offer();
        self.sdp = Some(sdp);
        self.voice
            .live
            .insert(params.call_id.clone(), ctx.address());
        self.bind(RouteKey::CallId(params.call_id.clone()), ctx);
        self.params = Some(params);
        self.phase = Phase::Inviting;
        self.started_at = Instant::now();
        self.send_invite(1, ctx);
        self.report(self.update(EventType::Calling));
        let max = self.voice.settings.max_duration;
        ctx.run_later(max, |act, ctx| act.max_duration_reached(ctx));
    }

    fn send_invite(&mut self, cseq: u32, ctx: &mut Context<Self>) {
        let (Some(params), Some(trunk)) = (self.params.as_ref(), self.trunk) else {
            return;
        };
        let branch = message::new_branch();
        let bytes = message::invite(params, cseq, &branch, &self.offer, &self.auth);
        self.bind(RouteKey::Branch(branch.clone()), ctx);
        let (machine, actions) =
            InviteClientTransaction::start(bytes, self.voice.settings.timers, Instant::now());
        self.invites.insert(
            branch.clone(),
            InviteTx {
                cseq,
                machine,
                timers: TransactionTimers::default(),
            },
        );
        self.current_branch = branch.clone();
        self.provisional_seen = false;
        self.invite_actions(&branch, actions, None, trunk, ctx);
    }

    // -----------------------------------------------------------------------------------------
    // INVITE transaction
    // -----------------------------------------------------------------------------------------

    fn invite_actions(
        &mut self,
        branch: &str,
        actions: Vec<Action>,
        response: Option<&Response>,
        trunk: SocketAddr,
        ctx: &mut Context<Self>,
    ) {
        for action in actions {
            match action {
                Action::Send(bytes) => self.transmit(trunk, bytes),
                Action::SendAck => {
                    let (Some(params), Some(response), Some(tx)) =
                        (self.params.as_ref(), response, self.invites.get(branch))
                    else {
                        continue;
                    };
                    let ack = message::ack_non_2xx(params, tx.cseq, branch, response);
                    self.transmit(trunk, ack);
                }
                Action::Schedule(kind, at) => {
                    let key = branch.to_owned();
                    if let Some(tx) = self.invites.get_mut(branch) {
                        tx.timers
                            .schedule(ctx, kind, at, move |act: &mut Self, ctx| {
                                act.invite_timer(&key, kind, ctx);
                            });
                    }
                }
                Action::Cancel(kind) => {
                    if let Some(tx) = self.invites.get_mut(branch) {
                        tx.timers.cancel(ctx, kind);
                    }
                }
                Action::Deliver(_) => {
                    if branch == self.current_branch {
                        if let Some(response) = response {
                            self.invite_response(response, ctx);
                        }
                    }
                }
                Action::Terminated(reason) => self.invite_terminated(branch, reason, ctx),
            }
        }
    }

    fn invite_timer(&mut self, branch: &str, kind: TimerKind, ctx: &mut Context<Self>) {
        let Some(trunk) = self.trunk else { return };
        let Some(tx) = self.invites.get_mut(branch) else {
            return;
        };
        tx.timers.fired(kind);
        let actions = tx.machine.on_timer(Instant::now(), kind);
        self.invite_actions(branch, actions, None, trunk, ctx);
    }

    fn invite_terminated(&mut self, branch: &str, reason: Reason, ctx: &mut Context<Self>) {
        if let Some(mut tx) = self.invites.remove(branch) {
            tx.timers.cancel_all(ctx);
        }
        self.unbind(RouteKey::Branch(branch.to_owned()));
        if branch == self.current_branch && self.phase == Phase::Inviting {
            match (reason, self.ending) {
                // No final answer to our CANCEL in 64·T1: the callee never picked up.
                (Reason::Timeout, Some(Ending::RingTimeout)) => {
                    self.conclude(self.update(EventType::NoAnswer), ctx)
                }
                (Reason::Timeout, _) => self.fail("timeout", "no response from the SIP trunk", ctx),
                (Reason::TransportError, _) => {
                    self.fail("transport_error", "the SIP trunk is unreachable", ctx)
                }
                (Reason::Completed, _) => {}
            }
        }
        self.stop_when_idle(ctx);
    }

    /// The transaction user's view of a response to the current INVITE.
    fn invite_response(&mut self, response: &Response, ctx: &mut Context<Self>) {
        match response.status {
            100..=199 => self.provisional(response, ctx),
            200..=299 => self.answered(response, ctx),
            401 | 407 => self.challenged(response, ctx),
            486 | 600 => {
                let mut update = self.update(EventType::Busy);
                update.sip_code = Some(response.status);
                update.reason = Some(response.reason.clone());
                self.conclude(update, ctx);
            }
            408 | 480 | 487 => {
                let mut update = self.update(EventType::NoAnswer);
                update.sip_code = Some(response.status);
                update.reason = Some(response.reason.clone());
                self.conclude(update, ctx);
            }
            status => {
                let mut update = self.update(EventType::Failed);
                update.sip_code = Some(status);
                update.reason = Some(response.reason.clone());
                update.error = Some("sip_error");
                self.conclude(update, ctx);
            }
        }
    }

    fn provisional(&mut self, response: &Response, ctx: &mut Context<Self>) {
        if !self.provisional_seen {
            self.provisional_seen = true;
            // The ring timeout runs from the first provisional answer: before one, Timer B bounds
            // the wait, after one nothing would.
            if self.ring_timer.is_none() {
                let after = self.voice.settings.ring_timeout;
                self.ring_timer = Some(ctx.run_later(after, |act, ctx| {
                    act.ring_timer = None;
                    act.end_call(Ending::RingTimeout, ctx);
                }));
            }
        }
        if matches!(response.status, 180 | 183) && !self.ringing_reported {
            self.ringing_reported = true;
            self.ring_started = Some(Instant::now());
            self.report(self.update(EventType::Ringing));
        }
        if self.ending.is_some() {
            // We decided to end the call before a provisional made CANCEL possible.
            self.send_cancel(ctx);
        }
    }

    fn challenged(&mut self, response: &Response, ctx: &mut Context<Self>) {
        if self.ending.is_some() {
            // Hanging up anyway: do not answer the challenge.
            return self.conclude(self.update(EventType::NoAnswer), ctx);
        }
        let verdict = response.challenges().map(|(kind, values)| {
            self.digest
                .on_challenge(kind, values, self.auth_retries)
                .unwrap_or(ChallengeVerdict::Rejected)
        });
        match verdict {
            Some(ChallengeVerdict::Retry) => {
                self.auth_retries += 1;
                let Some(params) = self.params.as_ref() else {
                    return;
                };
                self.auth = self.digest.authorize("INVITE", &params.request_uri());
                let cseq = self
                    .invites
                    .get(&self.current_branch)
                    .map_or(1, |tx| tx.cseq + 1);
                self.send_invite(cseq, ctx);
            }
            _ => {
                tracing::warn!(request_id = %self.request_id, status = response.status, "SIP trunk refused our credentials");
                let mut update = self.update(EventType::Failed);
                update.sip_code = Some(response.status);
                update.reason = Some(response.reason.clone());
                update.error = Some("authentication_failed");
                self.conclude(update, ctx);
            }
        }
    }

    fn answered(&mut self, response: &Response, ctx: &mut Context<Self>) {
        if self.dialog.is_some() {
            // A retransmitted 2xx: its ACK got lost, send it again (RFC 3261 §13.2.2.4).
            if let (Some(ack), Some(hop)) = (self.ack.clone(), self.dialog_hop) {
                self.transmit(hop, ack);
            }
            return;
        }
        let Some(params) = self.params.as_ref() else {
            return;
        };
        let cseq = self
            .invites
            .get(&self.current_branch)
            .map_or(1, |tx| tx.cseq);
        let dialog = match Dialog::from_2xx(params, cseq, response) {
            Ok(dialog) => dialog,
            Err(err) => {
                // Without a Contact there is nowhere to send ACK or BYE; the trunk's own timers
                // will end its side.
                return self.fail("sip_error", &format!("unusable 2xx: {err}"), ctx);
            }
        };
        let hop = dialog.next_hop().ok().and_then(|hop| {
            hop.host
                .parse()
                .ok()
                .map(|ip| SocketAddr::new(ip, hop.port.unwrap_or(5060)))
        });
        match hop {
            Some(hop) => self.confirm(dialog, hop, response, ctx),
            None => {
                // A host name in the route set: resolve it before anything else happens.
                let target = dialog.next_hop();
                let response = response.clone();
                async move {
                    match target {
                        Ok(target) => transport::resolve(target).await.ok(),
                        Err(_) => None,
                    }
                }
                .into_actor(self)
                .map(move |resolved, act, ctx| match resolved {
                    Some(hop) => act.confirm(dialog, hop, &response, ctx),
                    None => act.fail("sip_error", "the dialog's next hop does not resolve", ctx),
                })
                .wait(ctx);
            }
        }
    }

    /// ACKs the 2xx and starts the media, or hangs up at once when we are ending the call.
    fn confirm(
        &mut self,
        dialog: Dialog,
        hop: SocketAddr,
        response: &Response,
        ctx: &mut Context<Self>,
    ) {
        let Some(params) = self.params.as_ref() else {
            return;
        };
        let ack = message::ack_2xx(params, &dialog, &message::new_branch(), &self.auth);
        self.transmit(hop, ack.clone());
        self.ack = Some(ack);
        self.dialog = Some(dialog);
        self.dialog_hop = Some(hop);
        self.answered_at = Some(Instant::now());
        self.cancel_ring_timer(ctx);
        self.phase = Phase::Answered;
        let mut update = self.update(EventType::Answered);
        update.ring_duration_ms = Some(self.ring_duration(Instant::now()));
        self.report(update);

        // A CANCEL that crossed the 2xx lost the race: the callee picked up, so play — unless we
        // are shutting down or out of time.
        if self.ending == Some(Ending::RingTimeout) {
            self.ending = None;
        }
        if let Some(ending) = self.ending {
            return self.end_call(ending, ctx);
        }
        let media = response
            .body_text()
            .ok_or(sdp::SdpError::Malformed("no SDP answer"))
            .and_then(sdp::parse_answer);
        match media {
            Ok(media) => self.start_playback(media, ctx),
            Err(err) => {
                self.send_bye(ctx);
                self.fail("media_negotiation_failed", &err.to_string(), ctx);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Media
    // -----------------------------------------------------------------------------------------

    fn start_playback(&mut self, media: sdp::RemoteMedia, ctx: &mut Context<Self>) {
        let settings = &self.voice.settings;
        let plan = PromptPlan::build(
            &settings.prompt,
            &self.code,
            &self.voice.clips,
            settings.digit_gap,
        );
        let socket = self.lease.as_ref().map(|lease| lease.socket().try_clone());
        let (plan, socket) = match (plan, socket) {
            (Ok(plan), Some(Ok(socket))) => (plan, socket),
            (Err(err), _) => {
                self.send_bye(ctx);
                return self.fail("prompt_error", &err.to_string(), ctx);
            }
            (_, _) => {
                self.send_bye(ctx);
                return self.fail("media_error", "RTP socket unavailable", ctx);
            }
        };
        self.codec = Some(media.codec);
        let (handle, events) = self.voice.media.play(Playback {
            socket,
            remote: media.rtp_destination(),
            codec: media.codec,
            plan,
        });
        self.playback = Some(handle);
        ctx.add_stream(futures_util::stream::unfold(
            events,
            |mut events| async move { events.recv().await.map(|event| (event, events)) },
        ));
    }

    // -----------------------------------------------------------------------------------------
    // Ending
    // -----------------------------------------------------------------------------------------

    fn cancel_ring_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.ring_timer.take() {
            ctx.cancel_future(handle);
        }
    }

    fn max_duration_reached(&mut self, ctx: &mut Context<Self>) {
        if self.phase == Phase::Ended {
            return;
        }
        tracing::info!(request_id = %self.request_id, "call reached CALL_MAX_DURATION_SECS");
        self.end_call(Ending::MaxDuration, ctx);
    }

    /// Ends the call from our side: CANCEL while inviting (once a provisional allows it), BYE when
    /// answered.
    fn end_call(&mut self, ending: Ending, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Starting => {
                self.ending = Some(ending);
                self.conclude(self.update(EventType::Failed), ctx);
            }
            Phase::Inviting => {
                self.ending = Some(ending);
                if self.provisional_seen {
                    self.send_cancel(ctx);
                }
                if ending == Ending::MaxDuration && !self.provisional_seen {
                    // Nothing to CANCEL yet and no time left: give up on this call.
                    self.fail("timeout", "no answer within CALL_MAX_DURATION_SECS", ctx);
                }
            }
            Phase::Answered => {
                self.ending = Some(ending);
                self.send_bye(ctx);
                if self.otp_played {
                    self.conclude(self.update(EventType::Completed), ctx);
                } else {
                    let reason = match ending {
                        Ending::MaxDuration => {
                            "CALL_MAX_DURATION_SECS reached before the code was played"
                        }
                        _ => "hung up before the code was played",
                    };
                    self.fail("max_duration", reason, ctx);
                }
            }
            Phase::Ended => {}
        }
    }

    fn send_cancel(&mut self, ctx: &mut Context<Self>) {
        let branch = self.current_branch.clone();
        let key = (branch.clone(), "CANCEL");
        if self.others.contains_key(&key) {
            return;
        }
        let (Some(params), Some(trunk)) = (self.params.as_ref(), self.trunk) else {
            return;
        };
        let Some(tx) = self.invites.get_mut(&branch) else {
            return;
        };
        if !tx.machine.can_cancel() {
            return;
        }
        let bytes = message::cancel(params, tx.cseq, &branch);
        let guard = tx.machine.on_cancel_sent(Instant::now());
        self.invite_actions(&branch, guard, None, trunk, ctx);
        self.start_non_invite(key, bytes, trunk, ctx);
    }

    fn send_bye(&mut self, ctx: &mut Context<Self>) {
        let (Some(params), Some(hop)) = (self.params.as_ref(), self.dialog_hop) else {
            return;
        };
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        if self.others.keys().any(|(_, method)| *method == "BYE") {
            return;
        }
        let cseq = dialog.next_cseq();
        let branch = message::new_branch();
        // Fresh credentials for the BYE's own method and Request-URI with the next nonce count
        // (RFC 2617 §3.2.2): the INVITE's would not verify for it.
        let (uri, _) = dialog.request_target();
        let auth = self.digest.authorize("BYE", &uri);
        let bytes = message::bye(params, dialog, cseq, &branch, &auth);
        self.playback = None;
        self.bind(RouteKey::Branch(branch.clone()), ctx);
        self.start_non_invite((branch, "BYE"), bytes, hop, ctx);
    }

    fn start_non_invite(
        &mut self,
        key: (String, &'static str),
        bytes: Vec<u8>,
        to: SocketAddr,
        ctx: &mut Context<Self>,
    ) {
        let (machine, actions) =
            NonInviteClientTransaction::start(bytes, self.voice.settings.timers, Instant::now());
        self.others.insert(
            key.clone(),
            NonInviteTx {
                machine,
                timers: TransactionTimers::default(),
                to,
            },
        );
        self.non_invite_actions(&key, actions, ctx);
    }

    fn non_invite_actions(
        &mut self,
        key: &(String, &'static str),
        actions: Vec<Action>,
        ctx: &mut Context<Self>,
    ) {
        for action in actions {
            let Some(tx) = self.others.get_mut(key) else {
                return;
            };
            match action {
                Action::Send(bytes) => {
                    let to = tx.to;
                    self.transmit(to, bytes);
                }
                Action::Schedule(kind, at) => {
                    let owned = key.clone();
                    tx.timers
                        .schedule(ctx, kind, at, move |act: &mut Self, ctx| {
                            let Some(tx) = act.others.get_mut(&owned) else {
                                return;
                            };
                            tx.timers.fired(kind);
                            let actions = tx.machine.on_timer(Instant::now(), kind);
                            act.non_invite_actions(&owned, actions, ctx);
                            act.stop_when_idle(ctx);
                        });
                }
                Action::Cancel(kind) => tx.timers.cancel(ctx, kind),
                Action::Terminated(_) => {
                    tx.timers.cancel_all(ctx);
                    self.stop_when_idle(ctx);
                }
                Action::Deliver(_) | Action::SendAck => {}
            }
        }
    }

    fn unbind(&mut self, key: RouteKey) {
        self.routes.retain(|k| *k != key);
        self.voice.transport.do_send(Unbind(vec![key]));
    }

    // -----------------------------------------------------------------------------------------
    // Requests from the peer
    // -----------------------------------------------------------------------------------------

    fn peer_request(&mut self, request: Request, source: SocketAddr, ctx: &mut Context<Self>) {
        let server = self.voice.settings.endpoint.user_agent.clone();
        let retransmission_key = (
            request.via_branch.clone().unwrap_or_default(),
            request.method.as_str().to_owned(),
        );
        if let Some(previous) = self.answered.get(&retransmission_key) {
            self.transmit(source, previous.clone());
            return;
        }
        let in_dialog = self.dialog.as_ref().is_some_and(|d| d.matches(&request));
        let reply = match (&request.method, in_dialog) {
            (Method::Ack, true) => {
                self.acknowledged(request.cseq, ctx);
                None
            }
            (Method::Ack, false) => None,
            (Method::Bye, true) => {
                let reply = message::ok(&request, &server);
                self.remote_hangup(ctx);
                reply
            }
            (Method::Options, true) => message::ok(&request, &server),
            (Method::Invite, true) => {
                let reply = self.reinvite(&request);
                if let Some(ok) = reply.as_ref().filter(|r| r.starts_with(b"SIP/2.0 2")) {
                    self.retransmit_until_ack(request.cseq, ok.clone(), source, ctx);
                }
                reply
            }
            (Method::Cancel, true) => message::ok(&request, &server),
            (Method::Info | Method::Update, true) => message::ok(&request, &server),
            (_, true) => message::response(&request, 405, "Method Not Allowed", &server),
            (_, false) => message::call_does_not_exist(&request, &server),
        };
        if let Some(reply) = reply {
            self.transmit(source, reply.clone());
            self.answered.insert(retransmission_key, reply);
        }
    }

    /// 200 with our unchanged media to a re-INVITE (session refresh, hold, codec change offer);
    /// 488 when its offer has nothing we can use.
    fn reinvite(&mut self, request: &Request) -> Option<Vec<u8>> {
        let server = &self.voice.settings.endpoint.user_agent;
        let params = self.params.as_ref()?;
        let sdp = self.sdp.as_mut()?;
        let answer = match request.body_text().filter(|b| !b.trim().is_empty()) {
            Some(offer) => match sdp.answer_reoffer(offer, self.codec) {
                Ok((answer, _)) => answer,
                Err(err) => {
                    tracing::info!(request_id = %self.request_id, error = %err, "re-INVITE offer refused");
                    return message::response(request, 488, "Not Acceptable Here", server);
                }
            },
            None => sdp
                .current()
                .map_or_else(|| self.offer.clone(), str::to_owned),
        };
        message::ok_to_reinvite(request, params, &answer)
    }

    /// Retransmits our 2xx to an accepted re-INVITE at T1, doubling up to T2, for 64·T1 or until
    /// its ACK (RFC 3261 §13.3.1.4).
    fn retransmit_until_ack(
        &mut self,
        cseq: u32,
        bytes: Vec<u8>,
        to: SocketAddr,
        ctx: &mut Context<Self>,
    ) {
        if let Some(previous) = self.reinvite_ok.take() {
            ctx.cancel_future(previous.timer);
        }
        let timers = self.voice.settings.timers;
        let now = Instant::now();
        let timer = ctx.run_later(timers.t1, Self::retransmit_reinvite_ok);
        self.reinvite_ok = Some(UnacknowledgedOk {
            cseq,
            bytes,
            to,
            interval: timers.t1,
            due: now + timers.t1,
            give_up_at: now + 64 * timers.t1,
            timer,
        });
    }

    fn retransmit_reinvite_ok(&mut self, ctx: &mut Context<Self>) {
        let Some(pending) = self.reinvite_ok.as_mut() else {
            return;
        };
        if self.phase != Phase::Answered || Instant::now() >= pending.give_up_at {
            if self.phase == Phase::Answered {
                // §13.3.1.4 would end the session; our media never changes on a re-INVITE, so
                // both sides still agree on it and the code keeps playing.
                tracing::warn!(
                    request_id = %self.request_id,
                    cseq = pending.cseq,
                    "no ACK for our 200 to a re-INVITE; stopped resending it"
                );
            }
            self.reinvite_ok = None;
            return;
        }
        self.voice.transport.do_send(Transmit {
            to: pending.to,
            bytes: pending.bytes.clone(),
        });
        pending.interval = (pending.interval * 2).min(self.voice.settings.timers.t2);
        pending.due += pending.interval;
        let wait = pending.due.saturating_duration_since(Instant::now());
        pending.timer = ctx.run_later(wait, Self::retransmit_reinvite_ok);
    }

    /// An in-dialog ACK: ends the retransmission of the 2xx it acknowledges.
    fn acknowledged(&mut self, cseq: u32, ctx: &mut Context<Self>) {
        if let Some(pending) = self.reinvite_ok.take_if(|p| p.cseq == cseq) {
            ctx.cancel_future(pending.timer);
        }
    }

    fn remote_hangup(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Answered {
            return;
        }
        self.playback = None;
        self.conclude(self.update(EventType::Hangup), ctx);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.voice.ports.acquire() {
            Ok(lease) => self.lease = Some(lease),
            Err(err) => {
                tracing::warn!(request_id = %self.request_id, error = %err, "no RTP port free");
                return self.fail("capacity_exhausted", "every RTP port is in use", ctx);
            }
        }
        let transport = self.voice.transport.clone();
        let destination = self.voice.settings.endpoint.trunk_destination();
        async move {
            match transport.send(TrunkAddress).await {
                Ok(Some(addr)) => Some(addr),
                _ => transport::resolve(destination).await.ok(),
            }
        }
        .into_actor(self)
        .map(|trunk, act, ctx| match trunk {
            Some(trunk) => act.begin(trunk, ctx),
            None => act.fail(
                "trunk_unreachable",
                "the SIP trunk host does not resolve",
                ctx,
            ),
        })
        .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if !self.routes.is_empty() {
            self.voice
                .transport
                .do_send(Unbind(std::mem::take(&mut self.routes)));
        }
        if let Some(params) = &self.params {
            self.voice.live.remove(&params.call_id);
        }
        // Dropping the handle stops the stream; dropping the lease returns the port.
        self.playback = None;
        self.lease = None;
    }
}

impl Handler<SipInbound> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: SipInbound, ctx: &mut Context<Self>) {
        match msg.message {
            Incoming::Response(response) => {
                let branch = response.via_branch.clone().unwrap_or_default();
                match response.cseq_method {
                    Method::Invite => {
                        let Some(trunk) = self.trunk else { return };
                        if let Some(tx) = self.invites.get_mut(&branch) {
                            let actions = tx.machine.on_response(Instant::now(), response.status);
                            self.invite_actions(&branch, actions, Some(&response), trunk, ctx);
                        } else if response.is_success() {
                            // 2xx after its transaction ended (Timer M passed): re-ACK through
                            // the dialog.
                            self.answered(&response, ctx);
                        }
                    }
                    Method::Cancel | Method::Bye => {
                        let method = if response.cseq_method == Method::Cancel {
                            "CANCEL"
                        } else {
                            "BYE"
                        };
                        let key = (branch, method);
                        if let Some(tx) = self.others.get_mut(&key) {
                            let actions = tx.machine.on_response(Instant::now(), response.status);
                            self.non_invite_actions(&key, actions, ctx);
                        }
                    }
                    _ => {}
                }
            }
            Incoming::Request(request) => self.peer_request(request, msg.source, ctx),
        }
        self.stop_when_idle(ctx);
    }
}

impl StreamHandler<PlaybackEvent> for CallActor {
    fn handle(&mut self, event: PlaybackEvent, ctx: &mut Context<Self>) {
        if self.phase != Phase::Answered {
            return;
        }
        match event {
            PlaybackEvent::Playing => self.report(self.update(EventType::Playing)),
            PlaybackEvent::OtpPlayed => self.otp_played = true,
            PlaybackEvent::Latched(source) => {
                tracing::debug!(request_id = %self.request_id, %source, "RTP latched to the peer's source");
            }
            PlaybackEvent::Finished(stats) => {
                tracing::debug!(request_id = %self.request_id, packets = stats.packets_sent, max_lateness_us = stats.max_lateness.as_micros() as u64, "prompt played");
                self.send_bye(ctx);
                self.conclude(self.update(EventType::Completed), ctx);
            }
            PlaybackEvent::Failed(err) => {
                tracing::warn!(request_id = %self.request_id, error = %err, "RTP stream failed");
                self.send_bye(ctx);
                if self.otp_played {
                    self.conclude(self.update(EventType::Completed), ctx);
                } else {
                    self.fail("media_error", "the RTP stream failed", ctx);
                }
            }
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The stream ends when playback stops; the call's own logic decides when to stop.
    }
}

impl Handler<HangUp> for CallActor {
    type Result = ();

    fn handle(&mut self, _: HangUp, ctx: &mut Context<Self>) {
        self.end_call(Ending::Shutdown, ctx);
    }
}
