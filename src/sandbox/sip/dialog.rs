//! One call on the simulated trunk after its INVITE: ACKs, CANCEL, the gateway's BYE and other
//! in-dialog requests, the trunk's own BYE (a non-INVITE client transaction from
//! `actors::sip::transaction`), and the call's timers.

use std::net::{IpAddr, SocketAddr};

use actors::sip::message::{
    call_does_not_exist, new_branch, ok, uas_request, Method, Request, Response,
};
use actors::sip::transaction::{Action as TxAction, NonInviteClientTransaction, TimerConfig};

use super::behaviour::CallOutcome;
use super::call::{respond, ByeTx, Call, Phase, SERVER};
use super::records::EndedBy;
use super::uas::{Action, CallTimer, Ctx};

impl Call {
    /// ACK of a non-2xx final (same branch, RFC 3261 §17.2.1) or of the 2xx (new branch, same
    /// CSeq, our tag, §13.3.1.4). Never answered.
    pub(super) fn on_ack(&mut self, ctx: &mut Ctx<'_>, request: &Request) {
        if let Some(tx) = request
            .via_branch
            .as_ref()
            .and_then(|b| self.invites.get_mut(b))
        {
            if tx.final_status.is_some_and(|s| s >= 300) {
                tx.acked = true;
                return;
            }
        }
        if request.to_tag.as_deref() != Some(self.local_tag.as_str()) {
            return;
        }
        let Some(tx) = self.admitted.as_ref().and_then(|b| self.invites.get_mut(b)) else {
            return;
        };
        let is_2xx = tx.final_status.is_some_and(|s| (200..300).contains(&s));
        if !is_2xx || tx.acked || request.cseq != tx.request.cseq {
            return;
        }
        tx.acked = true;
        let now = ctx.now;
        ctx.shared
            .store
            .update(&self.id, |c| c.acked_at = Some(now));
        if self.phase == Phase::Answered {
            self.phase = Phase::Confirmed;
            if let CallOutcome::Answer {
                hangup_after_ms: Some(ms),
                ..
            } = self.behaviour.outcome
            {
                ctx.schedule(
                    &self.id,
                    std::time::Duration::from_millis(ms),
                    CallTimer::Hangup,
                );
            }
        }
    }

    /// CANCEL (RFC 3261 §9.2): 200 and 487 for a pending INVITE, 200 alone once it has a final
    /// response, 481 when no INVITE has its branch.
    pub(super) fn on_cancel(&mut self, ctx: &mut Ctx<'_>, request: &Request, from: SocketAddr) {
        let branch = request.via_branch.clone().unwrap_or_default();
        if self.resend_cached(ctx, request, from) {
            return;
        }
        let pending = match self.invites.get(&branch) {
            None => {
                let response = call_does_not_exist(request, SERVER);
                return self.answer_other(ctx, request, from, response);
            }
            Some(tx) => tx.final_status.is_none(),
        };
        let tag = self.local_tag.clone();
        let response = respond(request, 200, Some(&tag), &[], None);
        self.answer_other(ctx, request, from, response);
        if pending {
            self.finish(ctx, &branch, 487, EndedBy::Cancel);
        }
    }

    /// BYE, re-INVITE, OPTIONS, INFO, … in the dialog: 200 (re-INVITE: with the same SDP answer);
    /// 481 when the tags are not this dialog's.
    pub(super) fn on_in_dialog(&mut self, ctx: &mut Ctx<'_>, request: &Request, from: SocketAddr) {
        if self.resend_cached(ctx, request, from) {
            return;
        }
        // A dialog exists once the 180 went out (early) and stays once a 200 did; a call that
        // ended in a final error never had one (RFC 3261 §12.1).
        let has_dialog = self.dialog.is_some() || self.phase == Phase::Ringing;
        let ours = has_dialog
            && request.to_tag.as_deref() == Some(self.local_tag.as_str())
            && request.from_tag == self.remote_tag;
        let response = match (&request.method, &self.answer_sdp) {
            _ if !ours => call_does_not_exist(request, SERVER),
            (Method::Invite, Some(sdp)) => {
                let contact = format!("<sip:trunk@{}>", ctx.local);
                let body = ("application/sdp", sdp.as_bytes());
                respond(request, 200, None, &[("Contact", &contact)], Some(body))
            }
            // A re-INVITE before the answer: the INVITE is still pending (RFC 3261 §14.2).
            (Method::Invite, None) => respond(request, 491, None, &[], None),
            _ => ok(request, SERVER),
        };
        self.answer_other(ctx, request, from, response);
        if ours && request.method == Method::Bye {
            self.on_bye(ctx);
        }
    }

    /// The gateway hung up (its BYE was answered 200).
    fn on_bye(&mut self, ctx: &mut Ctx<'_>) {
        match self.phase {
            Phase::Answered | Phase::Confirmed => self.end(ctx, EndedBy::Gateway),
            // BYE in an early dialog: the pending INVITE gets 487 (RFC 3261 §15.1.2).
            Phase::Ringing => {
                if let Some(branch) = self.admitted.clone() {
                    self.finish(ctx, &branch, 487, EndedBy::Gateway);
                }
            }
            Phase::Challenging | Phase::Ended => {}
        }
    }

    /// Resends the cached response of a retransmitted non-INVITE request; false if it is new.
    fn resend_cached(&mut self, ctx: &mut Ctx<'_>, request: &Request, from: SocketAddr) -> bool {
        let key = other_key(request);
        match self.others.get(&key) {
            Some(bytes) => {
                let bytes = bytes.clone();
                self.send(ctx, from, bytes);
                true
            }
            None => false,
        }
    }

    fn answer_other(
        &mut self,
        ctx: &mut Ctx<'_>,
        request: &Request,
        from: SocketAddr,
        response: Option<Vec<u8>>,
    ) {
        if let Some(bytes) = response {
            self.others.insert(other_key(request), bytes.clone());
            self.send(ctx, from, bytes);
        }
    }

    /// The call is over: record it, stop the media, forget the call after 64·T1.
    pub(super) fn end(&mut self, ctx: &mut Ctx<'_>, by: EndedBy) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        ctx.shared.store.end(&self.id, by, ctx.now);
        ctx.out.push(Action::StopMedia {
            call_id: self.id.clone(),
        });
        let after = ctx.timeout();
        ctx.schedule(&self.id, after, CallTimer::Purge);
    }

    /// The trunk hangs up: BYE to the gateway's Contact (through the route set, if any), as its
    /// own non-INVITE client transaction (RFC 3261 §15.1.1, §17.1.2).
    fn send_bye(&mut self, ctx: &mut Ctx<'_>, by: EndedBy) {
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        let cseq = dialog.next_cseq();
        let branch = new_branch();
        let sent_by = ctx.local.to_string();
        let bytes = uas_request(
            dialog,
            "BYE",
            &self.local_party,
            &sent_by,
            &branch,
            cseq,
            SERVER,
        );
        // The Contact normally holds the gateway's PUBLIC_IP; a name cannot be resolved here, so
        // fall back to where the INVITE came from.
        let invite_source = self
            .admitted
            .as_ref()
            .and_then(|b| self.invites.get(b))
            .map(|tx| tx.from);
        let to = dialog
            .next_hop()
            .ok()
            .and_then(|hop| Some(SocketAddr::new(hop.host.parse::<IpAddr>().ok()?, hop.port?)))
            .or(invite_source);
        let Some(to) = to else {
            return self.end(ctx, by);
        };
        let config = TimerConfig::from_t1(ctx.shared.t1);
        let (tx, actions) = NonInviteClientTransaction::start(bytes, config, ctx.now);
        self.bye = Some(ByeTx { tx, branch, to });
        self.end(ctx, by);
        self.apply_bye(ctx, actions);
    }

    fn apply_bye(&mut self, ctx: &mut Ctx<'_>, actions: Vec<TxAction>) {
        let Some(to) = self.bye.as_ref().map(|b| b.to) else {
            return;
        };
        for action in actions {
            match action {
                TxAction::Send(bytes) => self.send(ctx, to, bytes),
                TxAction::Schedule(kind, at) => {
                    let after = at.saturating_duration_since(ctx.now);
                    ctx.schedule(&self.id, after, CallTimer::Bye(kind));
                }
                TxAction::Deliver(status) if status >= 200 => {
                    ctx.shared
                        .store
                        .update(&self.id, |c| c.trunk_bye_status = Some(status));
                }
                TxAction::Terminated(reason) => {
                    tracing::debug!(call_id = %self.id, ?reason, "sandbox trunk: BYE transaction over");
                }
                // Cancelled timers fire harmlessly; 1xx and ACK do not apply to a BYE.
                TxAction::Deliver(_) | TxAction::Cancel(_) | TxAction::SendAck => {}
            }
        }
    }

    /// A response from the gateway: only the trunk's BYE expects any.
    pub(super) fn on_response(&mut self, ctx: &mut Ctx<'_>, response: &Response) {
        let Some(bye) = self.bye.as_mut() else {
            return;
        };
        if response.cseq_method != Method::Bye || response.via_branch.as_ref() != Some(&bye.branch)
        {
            return;
        }
        let actions = bye.tx.on_response(ctx.now, response.status);
        self.apply_bye(ctx, actions);
    }

    /// A timer of this call fired (`Purge` is handled by the core).
    pub(super) fn on_timer(&mut self, ctx: &mut Ctx<'_>, kind: CallTimer) {
        match kind {
            CallTimer::Answer => self.answer(ctx),
            CallTimer::Retransmit { branch } => self.retransmit(ctx, &branch),
            CallTimer::Hangup if self.phase == Phase::Confirmed => {
                self.send_bye(ctx, EndedBy::Trunk)
            }
            CallTimer::Bye(kind) => {
                if let Some(bye) = self.bye.as_mut() {
                    let actions = bye.tx.on_timer(ctx.now, kind);
                    self.apply_bye(ctx, actions);
                }
            }
            CallTimer::Abandon { branch }
                if self.phase == Phase::Challenging && self.latest_branch == branch =>
            {
                self.end(ctx, EndedBy::Abandoned)
            }
            CallTimer::Hangup | CallTimer::Abandon { .. } | CallTimer::Purge => {}
        }
    }

    /// Retransmits an unACKed final response at T1, 2·T1, … capped at T2 = 8·T1; after 64·T1 an
    /// unACKed 2xx ends the call with a BYE (RFC 3261 §13.3.1.4), other finals just stop (§17.2.1
    /// Timer H).
    fn retransmit(&mut self, ctx: &mut Ctx<'_>, branch: &str) {
        let t1 = ctx.shared.t1;
        let timeout = ctx.timeout();
        let answered = self.phase == Phase::Answered;
        let Some(tx) = self.invites.get_mut(branch) else {
            return;
        };
        let (Some(status), Some(final_at)) = (tx.final_status, tx.final_at) else {
            return;
        };
        let is_2xx = (200..300).contains(&status);
        if tx.acked || (is_2xx && !answered) {
            return;
        }
        if ctx.now.saturating_duration_since(final_at) >= timeout {
            if is_2xx {
                self.send_bye(ctx, EndedBy::Timeout);
            }
            return;
        }
        tx.interval = tx.interval.saturating_mul(2).min(t1.saturating_mul(8));
        let (to, bytes, interval) = (tx.from, tx.last.clone(), tx.interval);
        self.send(ctx, to, bytes);
        ctx.schedule(
            &self.id,
            interval,
            CallTimer::Retransmit {
                branch: branch.to_owned(),
            },
        );
    }

    /// Ended, and the trunk's BYE (if any) no longer retransmitting.
    pub(super) fn can_purge(&self) -> bool {
        self.phase == Phase::Ended && self.bye.as_ref().is_none_or(|b| b.tx.is_terminated())
    }
}

/// A non-INVITE transaction: top Via branch and method (CANCEL shares its INVITE's branch).
fn other_key(request: &Request) -> (String, String) {
    (
        request.via_branch.clone().unwrap_or_default(),
        request.method.as_str().to_owned(),
    )
}
