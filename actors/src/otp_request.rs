//! `OtpRequest`: one actor per request that is still being delivered. Started by the
//! [`Dispatcher`](crate::dispatcher::Dispatcher) when a request is accepted or resumed after a
//! restart; stops itself once nothing more can be sent (delivered, every channel failed, verified,
//! expired, or the last channel's confirmation timed out). It owns the channel plan and failover
//! (SPEC §5): handles [`SmsSubmitted`], [`SmsReport`], [`ApplyFeedback`] and [`Expire`], and emits
//! every channel event through the [`EventSink`](crate::events::EventSink).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Map, Value};

use crate::didww_sms::{self, SmsCallback};
use crate::domain::{Channel, EventType, Status};
use crate::ids::{ProviderMessageId, RequestId};
use crate::services::RequestServices;
use crate::sms_actor::{SendSms, SmsSubmitted, SubmitOutcome};
use crate::status::proposed_status;
use crate::store::{CallbackRecord, NewEvent, RecordedEvent, StoreError};
use crate::voice::{CallUpdate, PlaceCall};

/// A DIDWW callback for this request's SMS attempt. Answered once the event is durable.
#[derive(Message)]
#[rtype(result = "Result<Option<Arc<RecordedEvent>>, StoreError>")]
pub struct SmsReport {
    /// Plan index of the SMS attempt.
    pub attempt: usize,
    /// The parsed callback.
    pub callback: SmsCallback,
    /// The raw body (stored for audit and deduplication).
    pub raw_body: String,
}

/// Client feedback from `/webhooks/auth`.
#[derive(Message)]
#[rtype(result = "Result<Arc<RecordedEvent>, StoreError>")]
pub struct ApplyFeedback {
    /// True when the user entered the right code.
    pub success: bool,
}

/// The request's lifetime passed: record `expired` and stop. Answered once the event is durable.
#[derive(Message)]
#[rtype(result = "Result<Arc<RecordedEvent>, StoreError>")]
pub struct Expire;

/// Sent to the dispatcher when the actor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestFinished(pub RequestId);

/// Progress of one channel attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    NotStarted,
    Submitting,
    Accepted(ProviderMessageId),
    Failed,
    Delivered,
}

/// Where a request actor starts from.
#[derive(Debug, Clone)]
pub enum StartPoint {
    /// A new request: start the first channel.
    Fresh,
    /// Resumed after a restart: the current attempt and how far it got.
    Resume {
        /// Current attempt, if one started.
        attempt: Option<usize>,
        /// Its last recorded event.
        channel_status: Option<EventType>,
        /// Its provider id, if DIDWW accepted it.
        provider_id: Option<ProviderMessageId>,
        /// When DIDWW accepted it, ms.
        accepted_at: Option<i64>,
    },
}

/// The per-request actor.
pub struct OtpRequest {
    id: RequestId,
    phone: String,
    code: String,
    plan: Vec<Channel>,
    current: usize,
    attempts: Vec<Attempt>,
    start: StartPoint,
    services: Arc<RequestServices>,
    finished_to: Recipient<RequestFinished>,
    delivery_timer: Option<SpawnHandle>,
    /// Resolves once the previous event of this request has been published (see [`Self::record`]).
    /// Every provider id this request's SMS attempts got, forgotten from the index on stop.
    provider_ids: Vec<ProviderMessageId>,
    /// Set once the actor decided to stop: messages still queued behind that decision must not
    /// start anything new (no failover after verification or expiry).
    finished: bool,
    /// A voice call of this request is in progress: the actor outlives a decision to finish
    /// until the call's final event is recorded.
    call_in_progress: bool,
}

impl OtpRequest {
    /// A request actor; nothing happens until it is started.
    pub fn new(
        id: RequestId,
        phone: String,
        code: String,
        plan: Vec<Channel>,
        start: StartPoint,
        services: Arc<RequestServices>,
        finished_to: Recipient<RequestFinished>,
    ) -> Self {
        let attempts = vec![Attempt::NotStarted; plan.len()];
        Self {
            id,
            phone,
            code,
            plan,
            current: 0,
            attempts,
            start,
            services,
            finished_to,
            delivery_timer: None,
            provider_ids: Vec::new(),
            finished: false,
            call_in_progress: false,
        }
    }

    fn has_next(&self) -> bool {
        self.services.settings.failover && self.current + 1 < self.plan.len()
    }

    /// Records an event through the sink (stored at once, published in order after this
    /// request's previous event).
    fn record(
        &self,
        event: NewEvent,
    ) -> impl Future<Output = Result<Arc<RecordedEvent>, StoreError>> + 'static {
        // Real deliveries teach shadow twins their timing (SPEC §8).
        self.services.timings.observe(&event);
        self.services.sink.record(event)
    }

    /// Records an event in the background.
    fn emit(&mut self, event: NewEvent) {
        let recorded = self.record(event);
        let id = self.id;
        actix::spawn(async move {
            if let Err(err) = recorded.await {
                tracing::error!(request_id = %id, error = %err, "event could not be stored");
            }
        });
    }

    /// Stops the actor for good: no timer, no further attempt. A call in progress is let run to
    /// its end (its events are still recorded); the actor stops with its final event.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        self.finished = true;
        self.cancel_timer(ctx);
        if !self.call_in_progress {
            ctx.stop();
        }
    }

    fn start_attempt(&mut self, index: usize, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        self.current = index;
        let Some(channel) = self.plan.get(index).copied() else {
            self.finish(ctx);
            return;
        };
        match (channel, self.services.sms.clone()) {
            (Channel::Sms, Some(sms)) => {
                self.attempts[index] = Attempt::Submitting;
                self.emit(NewEvent::channel_event(
                    self.id,
                    channel,
                    index,
                    EventType::Sending,
                    proposed_status(EventType::Sending, false, false),
                ));
                sms.do_send(SendSms {
                    request_id: self.id,
                    attempt: index,
                    phone: self.phone.clone(),
                    code: self.code.clone(),
                    reply_to: ctx.address().recipient(),
                });
            }
            (Channel::Voice, _) if self.services.voice.is_some() => {
                let Some(voice) = self.services.voice.clone() else {
                    return;
                };
                self.attempts[index] = Attempt::Submitting;
                self.call_in_progress = true;
                voice.place_call(PlaceCall {
                    request_id: self.id,
                    attempt: index,
                    phone: self.phone.clone(),
                    code: self.code.clone(),
                    reply_to: ctx.address().recipient(),
                });
            }
            _ => {
                let mut internal = Map::new();
                internal.insert("reason".into(), json!("channel not configured"));
                self.fail_attempt(index, "channel_unavailable", internal, ctx);
            }
        }
    }

    /// Records the failure of the current attempt and fails over, or fails the request.
    fn fail_attempt(
        &mut self,
        index: usize,
        error: &str,
        internal: Map<String, Value>,
        ctx: &mut Context<Self>,
    ) {
        let Some(channel) = self.plan.get(index).copied() else {
            return;
        };
        self.attempts[index] = Attempt::Failed;
        let is_current = index == self.current;
        let final_attempt = is_current && !self.has_next();
        let mut event = NewEvent::channel_event(
            self.id,
            channel,
            index,
            EventType::Failed,
            if is_current {
                proposed_status(EventType::Failed, false, final_attempt)
            } else {
                None
            },
        );
        event.metadata.insert("error".into(), json!(error));
        event.internal = internal;
        self.emit(event);
        if is_current {
            self.advance(ctx);
        }
    }

    /// Moves to the next channel, or stops when none is left.
    fn advance(&mut self, ctx: &mut Context<Self>) {
        self.cancel_timer(ctx);
        if self.finished {
            return;
        }
        if self.has_next() {
            let next = self.current + 1;
            tracing::info!(request_id = %self.id, from = %self.plan[self.current], to = %self.plan[next], "failing over");
            self.start_attempt(next, ctx);
        } else {
            self.finish(ctx);
        }
    }

    fn cancel_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.delivery_timer.take() {
            ctx.cancel_future(handle);
        }
    }

    fn arm_delivery_timer(&mut self, index: usize, after: Duration, ctx: &mut Context<Self>) {
        self.cancel_timer(ctx);
        self.delivery_timer = Some(ctx.run_later(after, move |act, ctx| {
            act.delivery_timer = None;
            if act.current != index || !matches!(act.attempts[index], Attempt::Accepted(_)) {
                return;
            }
            if act.has_next() {
                tracing::info!(request_id = %act.id, "no delivery confirmation in time");
                act.advance(ctx);
            } else {
                // Nothing to fail over to: a late DLR is still recorded through the dispatcher.
                act.finish(ctx);
            }
        }));
    }

    fn resume(&mut self, ctx: &mut Context<Self>) {
        let StartPoint::Resume {
            attempt,
            channel_status,
            provider_id,
            accepted_at,
        } = self.start.clone()
        else {
            self.start_attempt(0, ctx);
            return;
        };
        let Some(index) = attempt.filter(|i| *i < self.plan.len()) else {
            self.start_attempt(0, ctx);
            return;
        };
        self.current = index;
        for earlier in self.attempts.iter_mut().take(index) {
            *earlier = Attempt::Failed;
        }
        if channel_status.is_some_and(EventType::is_channel_failure) {
            self.attempts[index] = Attempt::Failed;
            self.advance(ctx);
            return;
        }
        match (self.plan[index], provider_id) {
            (Channel::Sms, Some(provider_id)) => {
                self.services.index.insert(
                    provider_id.clone(),
                    crate::store::ProviderMatch {
                        request_id: self.id,
                        attempt: index,
                    },
                );
                self.provider_ids.push(provider_id.clone());
                self.attempts[index] = Attempt::Accepted(provider_id);
                let waited = crate::clock::now_ms() - accepted_at.unwrap_or(0);
                let timeout = self.services.settings.sms_delivery_timeout;
                let left = timeout
                    .saturating_sub(Duration::from_millis(u64::try_from(waited).unwrap_or(0)));
                self.arm_delivery_timer(index, left, ctx);
            }
            // Submitted but no answer recorded: DIDWW may or may not have it; sending again is the
            // lesser evil for an OTP (a duplicate SMS beats none).
            _ => self.start_attempt(index, ctx),
        }
    }
}

impl Actor for OtpRequest {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.start {
            StartPoint::Fresh => self.start_attempt(0, ctx),
            StartPoint::Resume { .. } => self.resume(ctx),
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for id in &self.provider_ids {
            self.services.index.forget(id);
        }
        self.finished_to.do_send(RequestFinished(self.id));
    }
}

impl Handler<SmsSubmitted> for OtpRequest {
    type Result = ();

    fn handle(&mut self, msg: SmsSubmitted, ctx: &mut Context<Self>) {
        let index = msg.attempt;
        if self.attempts.get(index) != Some(&Attempt::Submitting) {
            return;
        }
        match msg.outcome {
            SubmitOutcome::Accepted(provider_id) => {
                self.provider_ids.push(provider_id.clone());
                self.attempts[index] = Attempt::Accepted(provider_id.clone());
                let store = Arc::clone(&self.services.sink.store);
                let attach =
                    store.attach_provider_id(self.id, index, provider_id, crate::clock::now_ms());
                let id = self.id;
                actix::spawn(async move {
                    if let Err(err) = attach.await {
                        tracing::error!(request_id = %id, error = %err, "provider id could not be stored");
                    }
                });
                let timeout = self.services.settings.sms_delivery_timeout;
                self.arm_delivery_timer(index, timeout, ctx);
            }
            SubmitOutcome::Rejected { http_status, error } => {
                // Only the title and code: DIDWW's detail text may quote the destination number.
                tracing::warn!(request_id = %self.id, http_status, title = ?error.title, code = ?error.code, "DIDWW refused the SMS");
                let mut internal = Map::new();
                internal.insert("http_status".into(), json!(http_status));
                internal.insert("didww_title".into(), json!(error.title));
                internal.insert("didww_detail".into(), json!(error.detail));
                internal.insert("didww_code".into(), json!(error.code));
                self.fail_attempt(index, "carrier_rejected", internal, ctx);
            }
            SubmitOutcome::Transport(reason) => {
                tracing::warn!(request_id = %self.id, %reason, "DIDWW SMS API unreachable");
                let mut internal = Map::new();
                internal.insert("transport_error".into(), json!(reason));
                self.fail_attempt(index, "carrier_unreachable", internal, ctx);
            }
        }
    }
}

impl Handler<SmsReport> for OtpRequest {
    type Result = ResponseFuture<Result<Option<Arc<RecordedEvent>>, StoreError>>;

    fn handle(&mut self, msg: SmsReport, ctx: &mut Context<Self>) -> Self::Result {
        let index = msg.attempt;
        let callback = msg.callback;
        let record = callback_record(&callback, msg.raw_body);
        let Some(event_type) = callback.event_type() else {
            let stored = self
                .services
                .sink
                .store
                .record_callback(Some(self.id), record);
            return Box::pin(async move { stored.await.map(|()| None) });
        };
        let is_current = index == self.current;
        let mut proposed = proposed_status(event_type, false, is_current && !self.has_next());
        let mut after: Option<fn(&mut Self, &mut Context<Self>)> = None;
        let settled_before = matches!(
            self.attempts.get(index),
            Some(Attempt::Failed | Attempt::Delivered)
        );
        match event_type {
            EventType::Delivered => {
                if let Some(slot) = self.attempts.get_mut(index) {
                    *slot = Attempt::Delivered;
                }
                after = Some(|act, ctx| {
                    act.finish(ctx);
                });
            }
            EventType::Failed | EventType::Undelivered => {
                if !is_current || settled_before {
                    // A late failure of an abandoned or settled attempt changes nothing.
                    proposed = None;
                } else {
                    if let Some(slot) = self.attempts.get_mut(index) {
                        *slot = Attempt::Failed;
                    }
                    after = Some(|act, ctx| act.advance(ctx));
                }
            }
            _ => {}
        }
        let event = sms_callback_event(self.id, index, &callback, event_type, proposed, record);
        let stored = self.record(event);
        if let Some(step) = after {
            step(self, ctx);
        }
        Box::pin(async move { stored.await.map(Some) })
    }
}

impl Handler<CallUpdate> for OtpRequest {
    type Result = ();

    fn handle(&mut self, msg: CallUpdate, ctx: &mut Context<Self>) {
        let index = msg.attempt;
        if self.attempts.get(index) != Some(&Attempt::Submitting) {
            return;
        }
        if msg.event == EventType::Calling {
            let store = Arc::clone(&self.services.sink.store);
            let attach =
                store.attach_call_id(self.id, index, msg.call_id.clone(), crate::clock::now_ms());
            let id = self.id;
            actix::spawn(async move {
                if let Err(err) = attach.await {
                    tracing::error!(request_id = %id, error = %err, "SIP Call-ID could not be stored");
                }
            });
        }
        let is_current = index == self.current;
        let proposed = proposed_status(msg.event, msg.otp_played, is_current && !self.has_next());
        self.emit(call_event(self.id, &msg, proposed));
        if !msg.is_final() {
            return;
        }
        self.call_in_progress = false;
        if msg.is_success() {
            self.attempts[index] = Attempt::Delivered;
            self.finish(ctx);
        } else {
            self.attempts[index] = Attempt::Failed;
            if self.finished {
                ctx.stop();
            } else {
                self.advance(ctx);
            }
        }
    }
}

/// The voice channel event of a call update: timings, `otp_played`, the SIP code and reason and a
/// stable error code in `metadata` (SPEC §7); the Call-ID stays in the operator-only `internal`
/// data.
pub(crate) fn call_event(
    request_id: RequestId,
    update: &CallUpdate,
    proposed: Option<Status>,
) -> NewEvent {
    let mut event = NewEvent::channel_event(
        request_id,
        Channel::Voice,
        update.attempt,
        update.event,
        proposed,
    );
    let metadata = &mut event.metadata;
    if matches!(update.event, EventType::Hangup | EventType::Completed) {
        metadata.insert("otp_played".into(), json!(update.otp_played));
    }
    if let Some(ms) = update.ring_duration_ms {
        metadata.insert("ring_duration_ms".into(), json!(ms));
    }
    if let Some(ms) = update.talk_duration_ms {
        metadata.insert("talk_duration_ms".into(), json!(ms));
    }
    if let Some(code) = update.sip_code {
        metadata.insert("sip_code".into(), json!(code));
    }
    if let Some(error) = update.error {
        metadata.insert("error".into(), json!(error));
    }
    if let Some(reason) = &update.reason {
        metadata.insert("reason".into(), json!(reason));
    }
    event
        .internal
        .insert("sip_call_id".into(), json!(update.call_id));
    event
}

/// The audit record of a DIDWW callback (also its deduplication key).
pub fn callback_record(callback: &SmsCallback, raw_body: String) -> CallbackRecord {
    CallbackRecord {
        provider_id: callback.provider_id.clone(),
        kind: callback.kind.as_str().into(),
        status: callback.status.to_ascii_lowercase(),
        body: raw_body,
    }
}

/// The SMS channel event a DIDWW callback produces, the same whether the request's actor is still
/// running or the callback arrives after it finished: clients see only a stable error code, the
/// carrier's status and `code_id` stay in the operator-only `internal` data.
pub fn sms_callback_event(
    request_id: RequestId,
    attempt: usize,
    callback: &SmsCallback,
    event_type: EventType,
    proposed: Option<Status>,
    record: CallbackRecord,
) -> NewEvent {
    let mut event =
        NewEvent::channel_event(request_id, Channel::Sms, attempt, event_type, proposed);
    let mut internal = Map::new();
    internal.insert("didww_status".into(), json!(callback.status));
    if let Some(code_id) = callback.code_id {
        internal.insert("didww_code_id".into(), json!(code_id));
        internal.insert(
            "didww_code_meaning".into(),
            json!(didww_sms::code_id_meaning(code_id)),
        );
    }
    if event_type.is_channel_failure() {
        let error = match callback.outcome() {
            didww_sms::SmsOutcome::ProcessingFailed => "carrier_failed",
            _ => "not_delivered",
        };
        event.metadata.insert("error".into(), json!(error));
    }
    event.internal = internal;
    event.callback = Some(record);
    event.sms_cost = callback.cost_micros();
    event
}

impl Handler<ApplyFeedback> for OtpRequest {
    type Result = ResponseFuture<Result<Arc<RecordedEvent>, StoreError>>;

    fn handle(&mut self, msg: ApplyFeedback, ctx: &mut Context<Self>) -> Self::Result {
        let event = feedback_event(self.id, msg.success);
        let stored = self.record(event);
        if msg.success {
            // Verified: any pending failover is cancelled.
            self.finish(ctx);
        }
        Box::pin(stored)
    }
}

impl Handler<Expire> for OtpRequest {
    type Result = ResponseFuture<Result<Arc<RecordedEvent>, StoreError>>;

    fn handle(&mut self, _: Expire, ctx: &mut Context<Self>) -> Self::Result {
        let stored = self.record(expiry_event(self.id));
        self.finish(ctx);
        Box::pin(stored)
    }
}

/// The request-level event for client feedback.
pub fn feedback_event(id: RequestId, success: bool) -> NewEvent {
    let event_type = if success {
        EventType::Verified
    } else {
        EventType::Rejected
    };
    NewEvent {
        request_id: id,
        channel: None,
        attempt: None,
        event_type,
        metadata: Map::new(),
        internal: Map::new(),
        proposed_status: Some(if success {
            Status::Verified
        } else {
            Status::Rejected
        }),
        callback: None,
        sms_cost: None,
        at: crate::clock::now_ms(),
    }
}

/// The request-level event for expiry.
pub fn expiry_event(id: RequestId) -> NewEvent {
    NewEvent {
        request_id: id,
        channel: None,
        attempt: None,
        event_type: EventType::Expired,
        metadata: Map::new(),
        internal: Map::new(),
        proposed_status: Some(Status::Expired),
        callback: None,
        sms_cost: None,
        at: crate::clock::now_ms(),
    }
}
