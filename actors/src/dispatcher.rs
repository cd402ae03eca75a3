//! `Dispatcher`: admission and supervision. One per gateway, started by the wiring. It stores each
//! accepted request and starts its [`OtpRequest`] actor, resumes unfinished requests after a restart,
//! routes DIDWW callbacks and client feedback to the live actor (or records them directly when the
//! request's actor has finished), and expires requests whose lifetime passed.
//! Handles [`Dispatch`], [`SmsCallbackReceived`], [`Feedback`], [`RequestFinished`],
//! [`StopAccepting`] and [`CountLive`].

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::json;

use crate::clock::now_ms;
use crate::didww_sms::SmsCallback;
use crate::domain::Channel;
use crate::fraud::actor::{self as fraud_actor, FraudActor};
use crate::fraud::admission::{self, Origin, Origins};
use crate::fraud::engine::{Feedback as FraudFeedback, FeedbackOutcome};
use crate::fraud::{Decision, FraudInput, NumberKind, Verdict};
use crate::ids::RequestId;
use crate::otp_request::{
    callback_record, expiry_event, feedback_event, sms_callback_event, ApplyFeedback, Expire,
    OtpRequest, RequestFinished, SmsReport, StartPoint,
};
use crate::services::RequestServices;
use crate::shadow::request::ShadowRequest;
use crate::status::proposed_status;
use crate::store::{NewRequest, ProviderMatch, RecordedEvent, StoreError};

/// Delay before retrying a failed start-up load.
const STARTUP_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// Most expiries handled per sweep.
const EXPIRY_BATCH: i64 = 1_000;
/// Most request origins kept for fraud feedback (≈ 100 bytes each).
const ORIGINS_KEPT: usize = 200_000;

/// A live request actor: a real delivery or a shadow-banned twin; both take feedback and expiry.
#[derive(Clone)]
enum LiveRequest {
    Real(Addr<OtpRequest>),
    Shadow(Addr<ShadowRequest>),
}

impl LiveRequest {
    fn feedback(
        &self,
        msg: ApplyFeedback,
    ) -> ResponseFuture<Result<Result<Arc<RecordedEvent>, StoreError>, MailboxError>> {
        match self {
            LiveRequest::Real(a) => Box::pin(a.send(msg)),
            LiveRequest::Shadow(a) => Box::pin(a.send(msg)),
        }
    }

    fn expire(
        &self,
    ) -> ResponseFuture<Result<Result<Arc<RecordedEvent>, StoreError>, MailboxError>> {
        match self {
            LiveRequest::Real(a) => Box::pin(a.send(Expire)),
            LiveRequest::Shadow(a) => Box::pin(a.send(Expire)),
        }
    }
}

/// A validated request to deliver.
#[derive(Debug, Clone)]
pub struct DispatchOrder {
    /// `+E164`.
    pub phone: String,
    /// 4–8 digits.
    pub code: String,
    /// Channels as asked.
    pub channels_requested: Vec<Channel>,
    /// Configured channels in failover order (non-empty).
    pub plan: Vec<Channel>,
    /// Client session id.
    pub session_id: Option<String>,
    /// Client webhook URL (syntax already checked).
    pub webhook_url: Option<String>,
    /// IP stored with the request: the end user's, else the API caller's.
    pub client_ip: Option<String>,
    /// Cost ceiling, micro-dollars.
    pub max_cost_micros: Option<i64>,
    /// The end user's IP as the client gave it (`ip`): the only IP the fraud rules score.
    pub end_user_ip: Option<IpAddr>,
    /// Destination country (ISO alpha-2), from libphonenumber.
    pub phone_country: Option<String>,
    /// Destination number type, from libphonenumber.
    pub number_kind: NumberKind,
}

/// The answer to an accepted dispatch.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// New request id.
    pub request_id: RequestId,
    /// First channel of the plan.
    pub channel: Channel,
}

/// Why a dispatch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Storage failed; nothing was accepted.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The code could not be sealed.
    #[error("code could not be sealed")]
    Vault,
    /// The gateway is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// The per-phone limit (429).
    #[error("rate limited")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// `FRAUD_ALLOWED_COUNTRIES` excludes the destination (422).
    #[error("country {0} not allowed")]
    CountryNotAllowed(String),
}

/// Accept a request.
#[derive(Message)]
#[rtype(result = "Result<Accepted, DispatchError>")]
pub struct Dispatch(pub DispatchOrder);

/// A parsed DIDWW SMS callback; answered once its effect is durable.
#[derive(Message)]
#[rtype(result = "Result<CallbackAck, StoreError>")]
pub struct SmsCallbackReceived {
    /// The callback.
    pub callback: SmsCallback,
    /// Raw body for audit.
    pub raw_body: String,
}

/// What happened to a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackAck {
    /// Matched a request and was recorded.
    Recorded(RequestId),
    /// Already recorded earlier: nothing changed.
    Duplicate(RequestId),
    /// No request sent this message id.
    UnknownMessage,
}

/// Client feedback.
#[derive(Message)]
#[rtype(result = "Result<Arc<RecordedEvent>, StoreError>")]
pub struct Feedback {
    /// The request.
    pub request_id: RequestId,
    /// Code right or wrong.
    pub success: bool,
}

/// Refuse new dispatches (graceful shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAccepting;

/// Number of live request actors.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountLive;

/// The dispatcher actor.
pub struct Dispatcher {
    services: Arc<RequestServices>,
    fraud: Option<Addr<FraudActor>>,
    origins: Origins,
    live: HashMap<RequestId, LiveRequest>,
    expiring: HashSet<RequestId>,
    sweeping: bool,
    accepting: bool,
}

impl Dispatcher {
    /// A dispatcher over the shared services.
    pub fn new(services: Arc<RequestServices>) -> Self {
        Self {
            services,
            fraud: None,
            origins: Origins::new(ORIGINS_KEPT),
            live: HashMap::new(),
            expiring: HashSet::new(),
            sweeping: false,
            accepting: true,
        }
    }

    /// Evaluates every dispatch with `fraud` before anything is stored or sent.
    pub fn with_fraud(mut self, fraud: Addr<FraudActor>) -> Self {
        self.fraud = Some(fraud);
        self
    }

    fn spawn_shadow(
        &mut self,
        id: RequestId,
        plan: Vec<Channel>,
        resumed_after: Option<crate::domain::EventType>,
        ctx: &mut Context<Self>,
    ) {
        let twin = ShadowRequest::new(
            id,
            plan,
            Arc::clone(&self.services),
            ctx.address().recipient(),
        )
        .resuming_after(resumed_after);
        self.live.insert(id, LiveRequest::Shadow(twin.start()));
    }

    /// Tells the fraud engine how a request ended for its user (reputation, prefix breaker).
    fn teach_fraud(&mut self, id: RequestId, outcome: FeedbackOutcome) {
        let Some(fraud) = &self.fraud else { return };
        let origin = match outcome {
            // A rejection may still be followed by the right code: keep the origin.
            FeedbackOutcome::Rejected => self.origins.get(&id).cloned(),
            _ => self.origins.remove(&id),
        };
        if let Some(origin) = origin {
            fraud.do_send(fraud_actor::ApplyFeedback(FraudFeedback {
                phone: origin.phone,
                ip: origin.ip,
                outcome,
                now_ms: now_ms(),
            }));
        }
    }

    /// Stores the request (with its fraud decision) and starts its actor: a real delivery, or the
    /// shadow twin of an enforced ban.
    fn accept(
        &mut self,
        order: DispatchOrder,
        decision: Option<Decision>,
    ) -> ResponseActFuture<Self, Result<Accepted, DispatchError>> {
        let Some(first) = order.plan.first().copied() else {
            return Box::pin(fut::ready(Err(DispatchError::Vault)));
        };
        let id = RequestId::new_random();
        let vault = &self.services.vault;
        let Ok(sealed) = vault.seal(id, &order.code) else {
            return Box::pin(fut::ready(Err(DispatchError::Vault)));
        };
        let now = now_ms();
        let ttl = i64::try_from(self.services.settings.otp_ttl.as_millis()).unwrap_or(i64::MAX);
        let fraud = decision.as_ref().map(|d| admission::record(d, first));
        let shadow = fraud.as_ref().is_some_and(|f| f.shadow_banned);
        let new = NewRequest {
            id,
            phone: order.phone.clone(),
            code_hash: vault.hash(&order.code),
            code_sealed: sealed,
            channels_requested: order.channels_requested,
            plan: order.plan.clone(),
            session_id: order.session_id,
            webhook_url: order.webhook_url,
            client_ip: order.client_ip,
            max_cost_micros: order.max_cost_micros,
            created_at: now,
            expires_at: now.saturating_add(ttl),
            fraud,
        };
        let stored = self.services.sink.store.insert_request(new);
        let (phone, code, plan, ip) = (order.phone, order.code, order.plan, order.end_user_ip);
        Box::pin(stored.into_actor(self).map(move |result, act, ctx| {
            result?;
            // A shadow-banned request teaches nothing more: its ban already marked the subnet,
            // and its expiry would punish the subnet a second time.
            if act.fraud.is_some() && !shadow {
                act.origins.insert(
                    id,
                    Origin {
                        phone: phone.clone(),
                        ip,
                    },
                );
            }
            if shadow {
                act.spawn_shadow(id, plan, None, ctx);
            } else {
                act.spawn_request(id, phone, code, plan, StartPoint::Fresh, ctx);
            }
            Ok(Accepted {
                request_id: id,
                channel: first,
            })
        }))
    }

    fn spawn_request(
        &mut self,
        id: RequestId,
        phone: String,
        code: String,
        plan: Vec<Channel>,
        start: StartPoint,
        ctx: &mut Context<Self>,
    ) {
        let actor = OtpRequest::new(
            id,
            phone,
            code,
            plan,
            start,
            Arc::clone(&self.services),
            ctx.address().recipient(),
        );
        self.live.insert(id, LiveRequest::Real(actor.start()));
    }

    fn resume_unfinished(&mut self, ctx: &mut Context<Self>) {
        let listed = self.services.sink.store.list_resumable(now_ms());
        let fut = listed.into_actor(self).map(|result, act, ctx| match result {
            Ok(requests) => {
                if !requests.is_empty() {
                    tracing::info!(count = requests.len(), "resuming unfinished requests");
                }
                for req in requests {
                    if act.live.contains_key(&req.id) {
                        continue;
                    }
                    let code = req.code_sealed.as_deref().and_then(|s| act.services.vault.open(req.id, s));
                    let Some(code) = code else {
                        tracing::error!(request_id = %req.id, "cannot resume: code not recoverable (server key changed?)");
                        continue;
                    };
                    if req.shadow_banned {
                        // Never a real delivery, also not after a restart.
                        act.spawn_shadow(req.id, req.plan, req.channel_status, ctx);
                        continue;
                    }
                    let start = StartPoint::Resume {
                        attempt: req.attempt,
                        channel_status: req.channel_status,
                        provider_id: req.provider_id,
                        accepted_at: req.accepted_at,
                    };
                    act.spawn_request(req.id, req.phone, code, req.plan, start, ctx);
                }
            }
            Err(err) => {
                // Unfinished requests must not be abandoned because the database hiccuped once.
                tracing::error!(error = %err, "could not list unfinished requests; retrying in 1 s");
                ctx.run_later(STARTUP_RETRY, |act, ctx| act.resume_unfinished(ctx));
            }
        });
        ctx.wait(fut);
    }

    fn sweep_expiries(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        // Backstop for the provider index: nothing in it can matter after twice the OTP lifetime.
        let pruned = self
            .services
            .index
            .prune(self.services.settings.otp_ttl.saturating_mul(2));
        if pruned > 0 {
            tracing::debug!(pruned, "stale provider ids dropped");
        }
        let due = self
            .services
            .sink
            .store
            .list_due_expiries(now_ms(), EXPIRY_BATCH);
        let fut = due.into_actor(self).map(|result, act, ctx| {
            act.sweeping = false;
            let ids = match result {
                Ok(ids) => ids,
                Err(err) => {
                    tracing::error!(error = %err, "expiry sweep failed");
                    return;
                }
            };
            for id in ids {
                // Already being expired (its event is not durable yet): once is enough.
                if !act.expiring.insert(id) {
                    continue;
                }
                act.teach_fraud(id, FeedbackOutcome::ExpiredUnverified);
                let stored: ResponseFuture<Result<Arc<RecordedEvent>, StoreError>> =
                    match act.live.get(&id) {
                        Some(actor) => {
                            let sent = actor.expire();
                            let services = Arc::clone(&act.services);
                            Box::pin(async move {
                                match sent.await {
                                    Ok(result) => result,
                                    // The actor finished before it saw the message.
                                    Err(_) => services.sink.record(expiry_event(id)).await,
                                }
                            })
                        }
                        None => Box::pin(act.services.sink.record(expiry_event(id))),
                    };
                ctx.spawn(stored.into_actor(act).map(move |result, act, _| {
                    if let Err(err) = result {
                        tracing::error!(request_id = %id, error = %err, "expiry not stored");
                    }
                    act.expiring.remove(&id);
                }));
            }
        });
        ctx.spawn(fut);
    }
}

/// Records a callback for a request whose actor has finished: no failover is possible any more,
/// so a failure is final and a late delivery still wins.
fn record_settled_callback(
    services: &RequestServices,
    found: ProviderMatch,
    callback: SmsCallback,
    raw_body: String,
) -> ResponseFuture<Result<CallbackAck, StoreError>> {
    let record = callback_record(&callback, raw_body);
    let Some(event_type) = callback.event_type() else {
        let stored = services
            .sink
            .store
            .record_callback(Some(found.request_id), record);
        return Box::pin(async move {
            stored
                .await
                .map(|()| CallbackAck::Recorded(found.request_id))
        });
    };
    let mut event = sms_callback_event(
        found.request_id,
        found.attempt,
        &callback,
        event_type,
        proposed_status(event_type, false, true),
        record,
    );
    event.internal.insert("late".into(), json!(true));
    let stored = services.sink.record(event);
    Box::pin(async move { Ok(ack_of(&*stored.await?)) })
}

fn ack_of(recorded: &RecordedEvent) -> CallbackAck {
    if recorded.duplicate {
        CallbackAck::Duplicate(recorded.request_id)
    } else {
        CallbackAck::Recorded(recorded.request_id)
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Many request actors talk to the dispatcher; the default mailbox of 16 would make do_send
        // senders bypass capacity anyway, but a larger one keeps send() callers from waiting.
        ctx.set_mailbox_capacity(100_000);
        self.resume_unfinished(ctx);
        let every = self.services.settings.expiry_sweep_interval;
        ctx.run_interval(every, |act, ctx| act.sweep_expiries(ctx));
    }
}

impl Handler<Dispatch> for Dispatcher {
    type Result = ResponseActFuture<Self, Result<Accepted, DispatchError>>;

    fn handle(&mut self, msg: Dispatch, _: &mut Context<Self>) -> Self::Result {
        let order = msg.0;
        if !self.accepting {
            return Box::pin(fut::ready(Err(DispatchError::ShuttingDown)));
        }
        let Some(fraud) = self.fraud.clone() else {
            return self.accept(order, None);
        };
        let input = FraudInput {
            phone: order.phone.clone(),
            phone_country: order.phone_country.clone(),
            number_kind: order.number_kind,
            ip: order.end_user_ip,
            channel: order.plan.first().copied().unwrap_or(Channel::Sms),
            now_ms: now_ms(),
        };
        Box::pin(
            fraud
                .send(fraud_actor::Evaluate(input))
                .into_actor(self)
                .then(move |evaluated, act, _| {
                    let decision = match evaluated {
                        Ok(decision) => decision,
                        Err(_) => {
                            // The engine is gone (shutdown race): an OTP delivered unscored beats
                            // an outage for every user.
                            tracing::error!("fraud engine unavailable; request accepted unscored");
                            return act.accept(order, None);
                        }
                    };
                    let refused = match decision.applied() {
                        Verdict::RateLimited { retry_after_secs } => {
                            Some(DispatchError::RateLimited {
                                retry_after_secs: *retry_after_secs,
                            })
                        }
                        Verdict::CountryNotAllowed { country } => {
                            Some(DispatchError::CountryNotAllowed(country.clone()))
                        }
                        Verdict::Allow | Verdict::ShadowBan => None,
                    };
                    match refused {
                        Some(err) => {
                            let refusal = admission::refusal(
                                &decision,
                                &order.phone,
                                order.end_user_ip,
                                now_ms(),
                            );
                            let stored = act.services.sink.store.record_fraud_refusal(refusal);
                            Box::pin(
                                async move {
                                    if let Err(e) = stored.await {
                                        tracing::error!(error = %e, "fraud refusal not stored");
                                    }
                                    Err(err)
                                }
                                .into_actor(act),
                            )
                        }
                        None => act.accept(order, Some(decision)),
                    }
                }),
        )
    }
}

impl Handler<SmsCallbackReceived> for Dispatcher {
    type Result = ResponseActFuture<Self, Result<CallbackAck, StoreError>>;

    fn handle(&mut self, msg: SmsCallbackReceived, _: &mut Context<Self>) -> Self::Result {
        let services = Arc::clone(&self.services);
        let provider_id = msg.callback.provider_id.clone();
        let lookup = async move {
            let index = &services.index;
            let store = &services.sink.store;
            if let Some(found) = index.get(&provider_id) {
                return Ok(Some(found));
            }
            if let Some(found) = store.find_by_provider_id(provider_id.clone()).await? {
                return Ok(Some(found));
            }
            // Maybe the 201 naming this id is still being read: wait for the submissions that
            // were under way when the callback arrived, then look again.
            index
                .wait_for_earlier_submissions(services.settings.callback_patience)
                .await;
            if let Some(found) = index.get(&provider_id) {
                return Ok(Some(found));
            }
            store.find_by_provider_id(provider_id).await
        };
        Box::pin(lookup.into_actor(self).then(move |found, act, _| {
            let outcome: ResponseFuture<Result<CallbackAck, StoreError>> = match found {
                Err(err) => Box::pin(async move { Err(err) }),
                Ok(None) => {
                    tracing::warn!(provider_id = %msg.callback.provider_id, "DIDWW callback for an unknown message id");
                    let record = callback_record(&msg.callback, msg.raw_body);
                    let stored = act.services.sink.store.record_callback(None, record);
                    Box::pin(async move { stored.await.map(|()| CallbackAck::UnknownMessage) })
                }
                Ok(Some(found)) => match act.live.get(&found.request_id) {
                    Some(LiveRequest::Real(actor)) => {
                        // Kept for the case the actor stops before it reads the report.
                        let (callback, raw_body) = (msg.callback.clone(), msg.raw_body.clone());
                        let sent = actor.send(SmsReport {
                            attempt: found.attempt,
                            callback: msg.callback,
                            raw_body: msg.raw_body,
                        });
                        let services = Arc::clone(&act.services);
                        Box::pin(async move {
                            match sent.await {
                                Ok(Ok(Some(recorded))) => Ok(ack_of(&recorded)),
                                Ok(Ok(None)) => Ok(CallbackAck::Recorded(found.request_id)),
                                Ok(Err(err)) => Err(err),
                                // The actor finished (delivered, verified, expired…) between the
                                // lookup and the report, which it never handled: record the
                                // callback as for any finished request.
                                Err(_) => {
                                    record_settled_callback(&services, found, callback, raw_body)
                                        .await
                                }
                            }
                        })
                    }
                    // A shadow twin has no provider ids; the match would be a stale row.
                    Some(LiveRequest::Shadow(_)) | None => {
                        record_settled_callback(&act.services, found, msg.callback, msg.raw_body)
                    }
                },
            };
            outcome.into_actor(act)
        }))
    }
}

impl Handler<Feedback> for Dispatcher {
    type Result = ResponseFuture<Result<Arc<RecordedEvent>, StoreError>>;

    fn handle(&mut self, msg: Feedback, _: &mut Context<Self>) -> Self::Result {
        let outcome = if msg.success {
            FeedbackOutcome::Verified
        } else {
            FeedbackOutcome::Rejected
        };
        self.teach_fraud(msg.request_id, outcome);
        match self.live.get(&msg.request_id) {
            Some(actor) => {
                let sent = actor.feedback(ApplyFeedback {
                    success: msg.success,
                });
                let sink = self.services.sink.clone();
                let event = feedback_event(msg.request_id, msg.success);
                Box::pin(async move {
                    match sent.await {
                        Ok(result) => result,
                        // The actor finished before it saw the feedback: record it directly.
                        Err(_) => sink.record(event).await,
                    }
                })
            }
            None => Box::pin(
                self.services
                    .sink
                    .record(feedback_event(msg.request_id, msg.success)),
            ),
        }
    }
}

impl Handler<RequestFinished> for Dispatcher {
    type Result = ();
    fn handle(&mut self, msg: RequestFinished, _: &mut Context<Self>) {
        self.live.remove(&msg.0);
    }
}

impl Handler<StopAccepting> for Dispatcher {
    type Result = ();
    fn handle(&mut self, _: StopAccepting, _: &mut Context<Self>) {
        self.accepting = false;
    }
}

impl Handler<CountLive> for Dispatcher {
    type Result = usize;
    fn handle(&mut self, _: CountLive, _: &mut Context<Self>) -> usize {
        self.live.len()
    }
}
