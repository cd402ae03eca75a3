//! `ShadowRequest`: the twin of a shadow-banned request (SPEC §8). Started by the
//! [`Dispatcher`](crate::dispatcher::Dispatcher) instead of an
//! [`OtpRequest`](crate::otp_request::OtpRequest) when the fraud engine shadow-bans a request.
//!
//! It plays the success path of the plan's first channel (attempt 0) as a real delivery would
//! record it — SMS `sending` → `sent` → `delivered`, voice `calling` → `ringing` → `answered` →
//! `playing` → `completed` — waiting between events for delays drawn from recent real deliveries
//! ([`DeliveryTimings`](super::DeliveryTimings)). Every event goes through the same
//! [`EventSink`](crate::events::EventSink) with the same channel, attempt, proposed status and
//! client metadata as the real one, so the status machine, the signed webhooks, the live feed and
//! `/requests/{id}` follow unchanged. Nothing reaches DIDWW: no SMS is submitted, no call placed,
//! no provider id or Call-ID attached, no SMS cost recorded (the money not spent is fraud savings).
//! The operator-only `internal` data of each event it records (feedback and expiry included) is
//! `{"simulated": true}`; clients never see it.
//!
//! Handles [`ApplyFeedback`] and [`Expire`] with the same answers as `OtpRequest`, and stops when
//! the real actor would have stopped with everything recorded that the outside world would still
//! report:
//! - feedback is recorded and the sequence goes on: a real call keeps going until it ends, and a
//!   real SMS's remaining DIDWW callbacks still arrive (recorded by the dispatcher) after its actor
//!   stopped on `verified`;
//! - expiry is recorded and the twin stops at once, unless its simulated call is in progress
//!   (a real request actor lets a live call run to its end);
//! - after its last event it stops.
//!
//! On stop it sends [`RequestFinished`] to the dispatcher.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{json, Map, Value};

use super::timings::{success_path, Step};
use crate::domain::{Channel, EventType};
use crate::ids::RequestId;
use crate::otp_request::{expiry_event, feedback_event, ApplyFeedback, Expire, RequestFinished};
use crate::services::RequestServices;
use crate::status::proposed_status;
use crate::store::{NewEvent, RecordedEvent, StoreError};

/// The plan index the twin delivers on: the first channel, as a real delivery that succeeds at
/// once.
const ATTEMPT: usize = 0;

/// The twin of one shadow-banned request.
pub struct ShadowRequest {
    id: RequestId,
    plan: Vec<Channel>,
    services: Arc<RequestServices>,
    finished_to: Recipient<RequestFinished>,
    /// Position on the channel's success path of the next event to record.
    next: usize,
    /// When the simulated call started ringing (for `ring_duration_ms`).
    ringing_at: Option<Instant>,
    /// When the simulated call was answered (for `talk_duration_ms`).
    answered_at: Option<Instant>,
}

impl ShadowRequest {
    /// A twin for request `id` (already stored by the dispatcher); nothing happens until it is
    /// started.
    pub fn new(
        id: RequestId,
        plan: Vec<Channel>,
        services: Arc<RequestServices>,
        finished_to: Recipient<RequestFinished>,
    ) -> Self {
        Self {
            id,
            plan,
            services,
            finished_to,
            next: 0,
            ringing_at: None,
            answered_at: None,
        }
    }

    /// Continues a twin resumed after a restart, whose request's last recorded channel event was
    /// `channel_status`: an SMS goes on after that event (a real one waits for its remaining
    /// callbacks), a call starts again from `calling` (a real one is hung up at shutdown and placed
    /// again on resume).
    pub fn resuming_after(mut self, channel_status: Option<EventType>) -> Self {
        if let (Some(Channel::Sms), Some(last)) = (self.channel(), channel_status) {
            if let Some(rank) = success_path(Channel::Sms).iter().position(|e| *e == last) {
                self.next = rank + 1;
            }
        }
        self
    }

    fn channel(&self) -> Option<Channel> {
        self.plan.first().copied()
    }

    /// As `OtpRequest::has_next` for the first attempt.
    fn final_attempt(&self) -> bool {
        !(self.services.settings.failover && self.plan.len() > 1)
    }

    /// True between the simulated `calling` and the call's final event.
    fn call_in_progress(&self) -> bool {
        self.channel() == Some(Channel::Voice)
            && self.next > 0
            && self.next < success_path(Channel::Voice).len()
    }

    /// The channel and the next event of its success path; `None` when nothing is left.
    fn upcoming(&self) -> Option<(Channel, EventType)> {
        let channel = self.channel()?;
        let event_type = success_path(channel).get(self.next).copied()?;
        Some((channel, event_type))
    }

    /// Records the next event of the success path and schedules the one after it, or stops after
    /// the last.
    fn step(&mut self, ctx: &mut Context<Self>) {
        let Some((channel, event_type)) = self.upcoming() else {
            ctx.stop();
            return;
        };
        self.next += 1;
        let event = self.event(channel, event_type, Instant::now());
        self.emit(event);
        self.schedule(ctx);
    }

    /// Waits as long as a real delivery's step to the next event, or stops when none is left.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let Some((channel, following)) = self.upcoming() else {
            ctx.stop();
            return;
        };
        let previous = self
            .next
            .checked_sub(1)
            .and_then(|i| success_path(channel).get(i));
        let delay = match previous {
            Some(previous) => Step::between(channel, *previous, following)
                .map_or(Duration::ZERO, |step| self.services.timings.sample(step)),
            None => Duration::ZERO,
        };
        ctx.run_later(delay, |act, ctx| act.step(ctx));
    }

    /// The event a real delivery records at this point, shaped as `OtpRequest` shapes it: SMS
    /// events carry no client metadata on the success path; voice events carry what
    /// `call_event` adds for the `CallUpdate`s a `CallActor` sends (`ring_duration_ms` on
    /// `answered`; `otp_played`, `ring_duration_ms` and `talk_duration_ms` on `completed`),
    /// measured over the twin's own timeline exactly as the call actor measures them.
    fn event(&mut self, channel: Channel, event_type: EventType, now: Instant) -> NewEvent {
        let otp_played = event_type == EventType::Completed;
        let mut event = NewEvent::channel_event(
            self.id,
            channel,
            ATTEMPT,
            event_type,
            proposed_status(event_type, otp_played, self.final_attempt()),
        );
        let metadata = &mut event.metadata;
        match event_type {
            EventType::Ringing => self.ringing_at = Some(now),
            EventType::Answered => {
                self.answered_at = Some(now);
                metadata.insert("ring_duration_ms".into(), json!(self.ring_duration()));
            }
            EventType::Completed => {
                metadata.insert("otp_played".into(), json!(true));
                metadata.insert("ring_duration_ms".into(), json!(self.ring_duration()));
                let talk = self
                    .answered_at
                    .map_or(0, |at| millis(now.saturating_duration_since(at)));
                metadata.insert("talk_duration_ms".into(), json!(talk));
            }
            _ => {}
        }
        event.internal = simulated();
        event
    }

    /// From the ringing to the answer, as the call actor measures it.
    fn ring_duration(&self) -> u64 {
        match (self.ringing_at, self.answered_at) {
            (Some(ringing), Some(answered)) => millis(answered.saturating_duration_since(ringing)),
            _ => 0,
        }
    }

    /// Records an event in the background, as `OtpRequest::emit` does.
    fn emit(&self, event: NewEvent) {
        let recorded = self.services.sink.record(event);
        let id = self.id;
        actix::spawn(async move {
            if let Err(err) = recorded.await {
                tracing::error!(request_id = %id, error = %err, "event could not be stored");
            }
        });
    }
}

/// The operator-only mark of every event a twin records.
fn simulated() -> Map<String, Value> {
    let mut internal = Map::new();
    internal.insert("simulated".into(), json!(true));
    internal
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Actor for ShadowRequest {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::debug!(request_id = %self.id, channel = ?self.channel(), "shadow delivery started");
        if self.next == 0 {
            self.step(ctx);
        } else {
            self.schedule(ctx);
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.finished_to.do_send(RequestFinished(self.id));
    }
}

impl Handler<ApplyFeedback> for ShadowRequest {
    type Result = ResponseFuture<Result<Arc<RecordedEvent>, StoreError>>;

    fn handle(&mut self, msg: ApplyFeedback, _: &mut Context<Self>) -> Self::Result {
        let mut event = feedback_event(self.id, msg.success);
        event.internal = simulated();
        Box::pin(self.services.sink.record(event))
    }
}

impl Handler<Expire> for ShadowRequest {
    type Result = ResponseFuture<Result<Arc<RecordedEvent>, StoreError>>;

    fn handle(&mut self, _: Expire, ctx: &mut Context<Self>) -> Self::Result {
        let mut event = expiry_event(self.id);
        event.internal = simulated();
        let stored = self.services.sink.record(event);
        if !self.call_in_progress() {
            ctx.stop();
        }
        Box::pin(stored)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Mutex;

    use tokio::sync::mpsc;

    use super::*;
    use crate::broadcaster::Broadcaster;
    use crate::code_vault::{CodeVault, KEY_MATERIAL_LEN};
    use crate::didww_sms::{CallbackKind, SmsCallback};
    use crate::domain::Status;
    use crate::events::EventSink;
    use crate::ids::ProviderMessageId;
    use crate::otp_request::{call_event, callback_record, sms_callback_event};
    use crate::otp_request::{OtpRequest, SmsReport, StartPoint};
    use crate::services::DeliverySettings;
    use crate::shadow::DeliveryTimings;
    use crate::sms_actor::{SmsActor, SmsSubmitted, SubmitOutcome};
    use crate::store::{
        CallbackRecord, FraudRefusal, OutboxItem, ProviderMatch, ResumableRequest, Store,
        StoreFuture, WebhookAttempt,
    };
    use crate::voice::CallUpdate;
    use crate::webhook::sender::WebhookSender;
    use actix::dev::channel::{channel, AddressReceiver};

    const MS: Duration = Duration::from_millis(1);
    /// Scheduling slack allowed on top of a sampled delay.
    const SLACK_MS: i64 = 250;

    /// Keeps every recorded event; everything else is a no-op.
    #[derive(Default)]
    struct MemoryStore {
        events: Mutex<Vec<NewEvent>>,
        next_id: AtomicI64,
        /// Provider ids and Call-IDs attached (a twin attaches none).
        attached: AtomicI64,
    }

    impl MemoryStore {
        fn events(&self) -> Vec<NewEvent> {
            self.events.lock().unwrap().clone()
        }
    }

    fn done<T: Send + 'static>(value: T) -> StoreFuture<T> {
        Box::pin(async move { Ok(value) })
    }

    impl Store for MemoryStore {
        fn insert_request(&self, _: crate::store::NewRequest) -> StoreFuture<()> {
            done(())
        }
        fn record_event(&self, event: NewEvent) -> StoreFuture<RecordedEvent> {
            self.events.lock().unwrap().push(event.clone());
            done(RecordedEvent {
                event_id: self.next_id.fetch_add(1, Ordering::SeqCst),
                request_id: event.request_id,
                channel: event.channel.unwrap_or(Channel::Sms),
                event_type: event.event_type,
                metadata: event.metadata,
                at: event.at,
                status: event.proposed_status.unwrap_or(Status::Pending),
                status_changed: true,
                current_channel: event.channel,
                channel_status: Some(event.event_type),
                phone: "+15550100".into(),
                session_id: None,
                webhook: None,
                duplicate: false,
            })
        }
        fn attach_provider_id(
            &self,
            _: RequestId,
            _: usize,
            _: ProviderMessageId,
            _: i64,
        ) -> StoreFuture<()> {
            self.attached.fetch_add(1, Ordering::SeqCst);
            done(())
        }
        fn record_fraud_refusal(&self, _: FraudRefusal) -> StoreFuture<()> {
            done(())
        }
        fn attach_call_id(&self, _: RequestId, _: usize, _: String, _: i64) -> StoreFuture<()> {
            self.attached.fetch_add(1, Ordering::SeqCst);
            done(())
        }
        fn record_callback(&self, _: Option<RequestId>, _: CallbackRecord) -> StoreFuture<()> {
            done(())
        }
        fn find_by_provider_id(&self, _: ProviderMessageId) -> StoreFuture<Option<ProviderMatch>> {
            done(None)
        }
        fn list_resumable(&self, _: i64) -> StoreFuture<Vec<ResumableRequest>> {
            done(Vec::new())
        }
        fn list_due_expiries(&self, _: i64, _: i64) -> StoreFuture<Vec<RequestId>> {
            done(Vec::new())
        }
        fn list_pending_webhooks(&self) -> StoreFuture<Vec<OutboxItem>> {
            done(Vec::new())
        }
        fn record_webhook_attempt(&self, _: WebhookAttempt) -> StoreFuture<()> {
            done(())
        }
        fn ping(&self) -> StoreFuture<()> {
            done(())
        }
    }

    /// Receives the twin's `RequestFinished`.
    struct Probe(mpsc::UnboundedSender<RequestId>);

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<RequestFinished> for Probe {
        type Result = ();
        fn handle(&mut self, msg: RequestFinished, _: &mut Context<Self>) {
            let _ = self.0.send(msg.0);
        }
    }

    struct Harness {
        store: Arc<MemoryStore>,
        timings: Arc<DeliveryTimings>,
        services: Arc<RequestServices>,
        id: RequestId,
        finished: mpsc::UnboundedReceiver<RequestId>,
        finished_to: Recipient<RequestFinished>,
        twin: Option<Addr<ShadowRequest>>,
        // Mailboxes nobody reads: the store queues no webhooks (and a real sender's HTTP client
        // needs a TLS provider this crate alone does not select); SMS submissions go nowhere.
        _webhooks: AddressReceiver<WebhookSender>,
        _sms: AddressReceiver<SmsActor>,
    }

    impl Harness {
        /// Shared services over a fresh store, with the given real samples (one per step).
        fn new(samples: &[(Step, Duration)]) -> Self {
            let store = Arc::new(MemoryStore::default());
            let timings = Arc::new(DeliveryTimings::default());
            for (step, delay) in samples {
                timings.record_step(*step, *delay);
            }
            let as_store: Arc<dyn Store> = store.clone();
            let (webhooks, webhook_mailbox) = channel::<WebhookSender>(16);
            let (sms, sms_mailbox) = channel::<SmsActor>(16);
            let services = Arc::new(RequestServices {
                sink: EventSink::new(
                    as_store,
                    Broadcaster::default().start(),
                    Addr::new(webhooks),
                ),
                sms: Some(Addr::new(sms)),
                voice: None,
                index: Arc::default(),
                vault: Arc::new(CodeVault::new(&[7; KEY_MATERIAL_LEN]).unwrap()),
                settings: DeliverySettings {
                    failover: true,
                    sms_delivery_timeout: Duration::from_secs(60),
                    otp_ttl: Duration::from_secs(300),
                    expiry_sweep_interval: Duration::from_secs(1),
                    callback_patience: Duration::from_secs(1),
                },
                timings: Arc::clone(&timings),
            });
            let (tx, finished) = mpsc::unbounded_channel();
            Self {
                store,
                timings,
                services,
                id: RequestId::new_random(),
                finished,
                finished_to: Probe(tx).start().recipient(),
                twin: None,
                _webhooks: webhook_mailbox,
                _sms: sms_mailbox,
            }
        }

        /// Starts a twin for `plan` with the given real samples (one per step).
        fn start(
            plan: Vec<Channel>,
            samples: &[(Step, Duration)],
            resume: Option<EventType>,
        ) -> Self {
            let mut h = Self::new(samples);
            let twin =
                ShadowRequest::new(h.id, plan, Arc::clone(&h.services), h.finished_to.clone());
            h.twin = Some(twin.resuming_after(resume).start());
            h
        }

        fn twin(&self) -> &Addr<ShadowRequest> {
            self.twin.as_ref().unwrap()
        }

        async fn wait_finished(&mut self) {
            let got = tokio::time::timeout(Duration::from_secs(5), self.finished.recv())
                .await
                .expect("the actor did not finish in time");
            assert_eq!(got, Some(self.id));
        }

        fn types(&self) -> Vec<EventType> {
            self.store.events().iter().map(|e| e.event_type).collect()
        }
    }

    fn simulated_only(event: &NewEvent) {
        assert_eq!(
            Value::Object(event.internal.clone()),
            json!({"simulated": true}),
            "{:?}",
            event.event_type
        );
    }

    fn gap(events: &[NewEvent], from: usize, to: usize) -> i64 {
        events[to].at - events[from].at
    }

    fn assert_gap(events: &[NewEvent], from: usize, to: usize, sampled: Duration) {
        let want = i64::try_from(sampled.as_millis()).unwrap();
        let got = gap(events, from, to);
        assert!(
            got >= want - 1 && got <= want + SLACK_MS,
            "{:?} → {:?}: {got} ms, sampled {want} ms",
            events[from].event_type,
            events[to].event_type
        );
    }

    /// What the real actor records for a DIDWW callback (`sms_callback_event`), minus the parts a
    /// twin has no carrier data for.
    fn real_sms_callback_event(id: RequestId, kind: CallbackKind, status: &str) -> NewEvent {
        let callback = SmsCallback {
            provider_id: ProviderMessageId::new("8f1b0c4e"),
            kind,
            status: status.into(),
            code_id: None,
            fragments_sent: Some(1),
            price: Some(0.05),
        };
        let event_type = callback.event_type().unwrap();
        let record = callback_record(&callback, String::new());
        sms_callback_event(
            id,
            0,
            &callback,
            event_type,
            proposed_status(event_type, false, false),
            record,
        )
    }

    #[actix::test]
    async fn sms_twin_records_a_real_delivery_with_sampled_delays() {
        let mut h = Harness::start(
            vec![Channel::Sms, Channel::Voice],
            &[(Step::SmsSent, 40 * MS), (Step::SmsDelivered, 90 * MS)],
            None,
        );
        h.wait_finished().await;
        let events = h.store.events();
        assert_eq!(
            h.types(),
            [EventType::Sending, EventType::Sent, EventType::Delivered]
        );
        // The real `sending` (OtpRequest::start_attempt) and the real callback events.
        let real = [
            NewEvent::channel_event(
                h.id,
                Channel::Sms,
                0,
                EventType::Sending,
                proposed_status(EventType::Sending, false, false),
            ),
            real_sms_callback_event(h.id, CallbackKind::Processing, "Success"),
            real_sms_callback_event(h.id, CallbackKind::Dlr, "Delivered"),
        ];
        for (twin, real) in events.iter().zip(&real) {
            assert_eq!(twin.request_id, real.request_id);
            assert_eq!(twin.event_type, real.event_type);
            assert_eq!(twin.channel, real.channel);
            assert_eq!(twin.attempt, real.attempt);
            assert_eq!(twin.proposed_status, real.proposed_status);
            assert_eq!(twin.metadata, real.metadata, "{:?}", twin.event_type);
            assert!(twin.metadata.is_empty());
            simulated_only(twin);
            // No carrier: no callback row, no cost.
            assert!(twin.callback.is_none() && twin.sms_cost.is_none());
        }
        assert_eq!(
            events.iter().map(|e| e.proposed_status).collect::<Vec<_>>(),
            [
                Some(Status::Sending),
                Some(Status::Sent),
                Some(Status::Delivered)
            ]
        );
        assert_gap(&events, 0, 1, 40 * MS);
        assert_gap(&events, 1, 2, 90 * MS);
        assert_eq!(h.store.attached.load(Ordering::SeqCst), 0);
        // Twins never teach the timings.
        assert_eq!(h.timings.sample_count(Step::SmsSent), 1);
        assert_eq!(h.timings.sample_count(Step::SmsDelivered), 1);
        assert_eq!(h.timings.tracked_requests(), 0);
    }

    #[actix::test]
    async fn voice_twin_records_a_real_call_with_consistent_durations() {
        let mut h = Harness::start(
            vec![Channel::Voice],
            &[
                (Step::VoiceRinging, 30 * MS),
                (Step::VoiceAnswered, 80 * MS),
                (Step::VoicePlaying, 40 * MS),
                (Step::VoiceCompleted, 120 * MS),
            ],
            None,
        );
        h.wait_finished().await;
        let events = h.store.events();
        let path = [
            EventType::Calling,
            EventType::Ringing,
            EventType::Answered,
            EventType::Playing,
            EventType::Completed,
        ];
        assert_eq!(h.types(), path);
        for (twin, event) in events.iter().zip(path) {
            // The CallUpdate a CallActor sends for this step (call.rs `update`, `answered`,
            // `conclude`), through the real actor's `call_event`.
            let update = CallUpdate {
                attempt: 0,
                call_id: "a84b4c76e66710@192.0.2.4".into(),
                event,
                otp_played: event == EventType::Completed,
                ring_duration_ms: matches!(event, EventType::Answered | EventType::Completed)
                    .then_some(1),
                talk_duration_ms: (event == EventType::Completed).then_some(1),
                sip_code: None,
                reason: None,
                error: None,
            };
            let real = call_event(
                h.id,
                &update,
                proposed_status(event, update.otp_played, true),
            );
            assert_eq!(twin.channel, real.channel);
            assert_eq!(twin.attempt, real.attempt);
            assert_eq!(twin.proposed_status, real.proposed_status, "{event:?}");
            let keys = |e: &NewEvent| e.metadata.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(twin), keys(&real), "{event:?}");
            for (key, value) in &twin.metadata {
                let real_value = &real.metadata[key];
                assert_eq!(value.is_u64(), real_value.is_u64(), "{key}");
                assert_eq!(value.is_boolean(), real_value.is_boolean(), "{key}");
            }
            // Unlike the real event, no SIP Call-ID: there is no call.
            simulated_only(twin);
            assert!(twin.callback.is_none() && twin.sms_cost.is_none());
        }
        assert_eq!(events[4].metadata["otp_played"], json!(true));
        assert_eq!(h.store.attached.load(Ordering::SeqCst), 0);
        assert_gap(&events, 0, 1, 30 * MS);
        assert_gap(&events, 1, 2, 80 * MS);
        assert_gap(&events, 2, 3, 40 * MS);
        assert_gap(&events, 3, 4, 120 * MS);
        // The durations agree with the timestamps, as a real call's do.
        let ring = events[2].metadata["ring_duration_ms"].as_i64().unwrap();
        assert!((ring - gap(&events, 1, 2)).abs() <= 2, "ring {ring}");
        assert_eq!(events[4].metadata["ring_duration_ms"], json!(ring));
        let talk = events[4].metadata["talk_duration_ms"].as_i64().unwrap();
        assert!((talk - gap(&events, 2, 4)).abs() <= 2, "talk {talk}");
    }

    #[actix::test]
    async fn feedback_is_recorded_like_the_real_actor_and_expiry_stops_an_sms_twin() {
        let mut h = Harness::start(
            vec![Channel::Sms],
            &[(Step::SmsSent, Duration::from_secs(30))],
            None,
        );
        let rejected = h
            .twin()
            .send(ApplyFeedback { success: false })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rejected.event_type, EventType::Rejected);
        let verified = h
            .twin()
            .send(ApplyFeedback { success: true })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(verified.status, Status::Verified);
        // Verified does not end the story: DIDWW would still report the SMS.
        assert!(
            tokio::time::timeout(50 * MS, h.finished.recv())
                .await
                .is_err(),
            "stopped on feedback"
        );
        let expired = h.twin().send(Expire).await.unwrap().unwrap();
        assert_eq!(expired.event_type, EventType::Expired);
        h.wait_finished().await;
        assert_eq!(
            h.types(),
            [
                EventType::Sending,
                EventType::Rejected,
                EventType::Verified,
                EventType::Expired
            ]
        );
        let events = h.store.events();
        let real = [
            feedback_event(h.id, false),
            feedback_event(h.id, true),
            expiry_event(h.id),
        ];
        for (twin, real) in events[1..].iter().zip(&real) {
            assert_eq!(twin.event_type, real.event_type);
            assert_eq!(twin.channel, real.channel);
            assert_eq!(twin.attempt, real.attempt);
            assert_eq!(twin.proposed_status, real.proposed_status);
            assert_eq!(twin.metadata, real.metadata);
            simulated_only(twin);
        }
    }

    #[actix::test]
    async fn a_simulated_call_runs_to_its_end_after_expiry() {
        let mut h = Harness::start(
            vec![Channel::Voice, Channel::Sms],
            &[
                (Step::VoiceRinging, 20 * MS),
                (Step::VoiceAnswered, 20 * MS),
                (Step::VoicePlaying, 20 * MS),
                (Step::VoiceCompleted, 20 * MS),
            ],
            None,
        );
        h.twin().send(Expire).await.unwrap().unwrap();
        h.wait_finished().await;
        assert_eq!(
            h.types(),
            [
                EventType::Calling,
                EventType::Expired,
                EventType::Ringing,
                EventType::Answered,
                EventType::Playing,
                EventType::Completed
            ]
        );
    }

    #[actix::test]
    async fn a_resumed_sms_twin_goes_on_after_its_last_event() {
        let mut h = Harness::start(
            vec![Channel::Sms],
            &[(Step::SmsDelivered, 30 * MS)],
            Some(EventType::Sent),
        );
        h.wait_finished().await;
        assert_eq!(h.types(), [EventType::Delivered]);
    }

    #[actix::test]
    async fn a_real_sms_delivery_teaches_the_timings_and_its_twin_records_the_same_events() {
        let mut h = Harness::new(&[]);
        let real = OtpRequest::new(
            h.id,
            "+15550100".into(),
            "123456".into(),
            vec![Channel::Sms],
            StartPoint::Fresh,
            Arc::clone(&h.services),
            h.finished_to.clone(),
        )
        .start();
        let provider_id = ProviderMessageId::new("8f1b0c4e");
        real.send(SmsSubmitted {
            request_id: h.id,
            attempt: 0,
            outcome: SubmitOutcome::Accepted(provider_id.clone()),
        })
        .await
        .unwrap();
        let report = |kind, status: &str| SmsReport {
            attempt: 0,
            callback: SmsCallback {
                provider_id: provider_id.clone(),
                kind,
                status: status.into(),
                code_id: None,
                fragments_sent: Some(1),
                price: Some(0.05),
            },
            raw_body: format!("{{\"status\":\"{status}\"}}"),
        };
        tokio::time::sleep(30 * MS).await;
        real.send(report(CallbackKind::Processing, "Success"))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(60 * MS).await;
        real.send(report(CallbackKind::Dlr, "Delivered"))
            .await
            .unwrap()
            .unwrap();
        h.wait_finished().await;

        // The hook on the real actor's event path recorded both steps.
        assert_eq!(h.timings.sample_count(Step::SmsSent), 1);
        assert_eq!(h.timings.sample_count(Step::SmsDelivered), 1);
        let sent = h.timings.sample(Step::SmsSent);
        let delivered = h.timings.sample(Step::SmsDelivered);
        assert!(
            sent >= 29 * MS && sent < 30 * MS + SLACK_MS as u32 * MS,
            "{sent:?}"
        );
        assert!(
            delivered >= 59 * MS && delivered < 60 * MS + SLACK_MS as u32 * MS,
            "{delivered:?}"
        );

        // A twin on the same services replays that delivery.
        let real_events = h.store.events();
        let twin_id = RequestId::new_random();
        h.id = twin_id;
        ShadowRequest::new(
            twin_id,
            vec![Channel::Sms],
            Arc::clone(&h.services),
            h.finished_to.clone(),
        )
        .start();
        h.wait_finished().await;
        let twin_events: Vec<NewEvent> = h
            .store
            .events()
            .into_iter()
            .filter(|e| e.request_id == twin_id)
            .collect();
        assert_eq!(real_events.len(), 3);
        assert_eq!(twin_events.len(), 3);
        for (twin, real) in twin_events.iter().zip(&real_events) {
            assert_eq!(twin.event_type, real.event_type);
            assert_eq!(twin.channel, real.channel);
            assert_eq!(twin.attempt, real.attempt);
            assert_eq!(twin.proposed_status, real.proposed_status);
            assert_eq!(twin.metadata, real.metadata);
            simulated_only(twin);
        }
        assert_gap(&twin_events, 0, 1, sent);
        assert_gap(&twin_events, 1, 2, delivered);
        // The twin taught nothing.
        assert_eq!(h.timings.sample_count(Step::SmsSent), 1);
        assert_eq!(h.timings.sample_count(Step::SmsDelivered), 1);
    }
}
