//! `DeliveryTimings`: how long the steps of recent real deliveries took, per channel, so the twin
//! of a shadow-banned request ([`ShadowRequest`](super::request::ShadowRequest)) waits between its
//! events as long as a real delivery would (SPEC §8).
//!
//! Fed by [`OtpRequest`](crate::otp_request::OtpRequest): every event it records also goes through
//! [`DeliveryTimings::observe`], which remembers each request's last success-path event and, when
//! the next one of the same attempt arrives, keeps the delay between them as a sample of that
//! [`Step`]. Twins record through the event sink directly, never through here, so simulated
//! deliveries never feed the samples they are drawn from.
//!
//! Memory is bounded: the last [`SAMPLES_PER_STEP`] samples of each step (a ring buffer) and the
//! last event of at most [`TRACKED_REQUESTS`] requests (the oldest is forgotten first). One mutex
//! guards everything; each call does a few loads and stores under it.
//!
//! `ring_duration_ms` and `talk_duration_ms` are not kept as separate samples: a real call measures
//! them over the same stretches as the ringing → answered and answered → completed steps, and the
//! twin measures them the same way over its own timeline, so its metadata always agrees with its
//! event timestamps (two independent draws would not).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

use crate::xorshift::XorShift64Star;

use crate::domain::{Channel, EventType};
use crate::ids::RequestId;
use crate::store::NewEvent;

/// Samples kept per step.
pub const SAMPLES_PER_STEP: usize = 256;
/// Requests whose last event is remembered at once; beyond that the oldest is forgotten.
pub const TRACKED_REQUESTS: usize = 4_096;
/// Delays longer than this are not kept: a wall-clock jump, not a delivery.
const MAX_SAMPLE_DELAY: Duration = Duration::from_secs(15 * 60);
/// A default delay is drawn uniformly from `[base × 0.6, base × 1.4)`.
const DEFAULT_JITTER: f64 = 0.4;

/// One step of a successful delivery: the delay from the previous event of the channel's success
/// path to the named one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// SMS `sending` → `sent` (DIDWW's processing callback `Success`). Default ≈ 300 ms.
    SmsSent,
    /// SMS `sent` → `delivered` (the delivery receipt). Default ≈ 3 s.
    SmsDelivered,
    /// Voice `calling` → `ringing` (180/183). Default ≈ 1.5 s.
    VoiceRinging,
    /// Voice `ringing` → `answered` (2xx); a call's `ring_duration_ms`. Default ≈ 6 s.
    VoiceAnswered,
    /// Voice `answered` → `playing` (first code packet). Default ≈ 2 s.
    VoicePlaying,
    /// Voice `playing` → `completed` (prompt played, we hung up). Default ≈ 10 s.
    VoiceCompleted,
}

impl Step {
    /// Every step, in index order.
    pub const ALL: [Step; 6] = [
        Step::SmsSent,
        Step::SmsDelivered,
        Step::VoiceRinging,
        Step::VoiceAnswered,
        Step::VoicePlaying,
        Step::VoiceCompleted,
    ];

    /// The channel whose step this is.
    pub fn channel(self) -> Channel {
        match self {
            Step::SmsSent | Step::SmsDelivered => Channel::Sms,
            _ => Channel::Voice,
        }
    }

    /// The event the step ends with.
    pub fn event(self) -> EventType {
        match self {
            Step::SmsSent => EventType::Sent,
            Step::SmsDelivered => EventType::Delivered,
            Step::VoiceRinging => EventType::Ringing,
            Step::VoiceAnswered => EventType::Answered,
            Step::VoicePlaying => EventType::Playing,
            Step::VoiceCompleted => EventType::Completed,
        }
    }

    /// The step from `from` to `to` on `channel`, when `to` directly follows `from` on the
    /// channel's success path.
    pub fn between(channel: Channel, from: EventType, to: EventType) -> Option<Step> {
        let path = success_path(channel);
        let at = path.iter().position(|e| *e == from)?;
        if path.get(at + 1) != Some(&to) {
            return None;
        }
        Step::ALL
            .into_iter()
            .find(|s| s.channel() == channel && s.event() == to)
    }

    /// The delay used while no real sample exists, before jitter.
    pub fn default_delay(self) -> Duration {
        Duration::from_millis(match self {
            Step::SmsSent => 300,
            Step::SmsDelivered => 3_000,
            Step::VoiceRinging => 1_500,
            Step::VoiceAnswered => 6_000,
            Step::VoicePlaying => 2_000,
            Step::VoiceCompleted => 10_000,
        })
    }

    fn index(self) -> usize {
        match self {
            Step::SmsSent => 0,
            Step::SmsDelivered => 1,
            Step::VoiceRinging => 2,
            Step::VoiceAnswered => 3,
            Step::VoicePlaying => 4,
            Step::VoiceCompleted => 5,
        }
    }
}

/// The events of a successful delivery on `channel`, in order (SPEC §5, §7).
pub fn success_path(channel: Channel) -> &'static [EventType] {
    match channel {
        Channel::Sms => &[EventType::Sending, EventType::Sent, EventType::Delivered],
        Channel::Voice => &[
            EventType::Calling,
            EventType::Ringing,
            EventType::Answered,
            EventType::Playing,
            EventType::Completed,
        ],
    }
}

/// Recent delays of real deliveries, per step. Cheap to share (`Arc<DeliveryTimings>`).
pub struct DeliveryTimings {
    inner: Mutex<Inner>,
}

impl Default for DeliveryTimings {
    fn default() -> Self {
        Self::with_capacity(SAMPLES_PER_STEP, TRACKED_REQUESTS)
    }
}

impl std::fmt::Debug for DeliveryTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("DeliveryTimings")
            .field(
                "samples",
                &Step::ALL.map(|s| (s, inner.samples[s.index()].len())),
            )
            .field("tracked_requests", &inner.open.len())
            .finish()
    }
}

impl DeliveryTimings {
    /// Timings keeping `samples_per_step` samples of each step and the last event of at most
    /// `tracked_requests` requests (each at least 1).
    pub fn with_capacity(samples_per_step: usize, tracked_requests: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                rng: seeded_rng(),
                samples: Step::ALL.map(|_| Samples::new(samples_per_step.max(1))),
                open: HashMap::new(),
                order: VecDeque::new(),
                next_generation: 0,
                tracked_cap: tracked_requests.max(1),
            }),
        }
    }

    /// Notes an event a real request actor is recording (the hook on its event path). Request-level
    /// events (feedback, expiry) are ignored.
    pub fn observe(&self, event: &NewEvent) {
        if let (Some(channel), Some(attempt)) = (event.channel, event.attempt) {
            self.record(
                event.request_id,
                channel,
                attempt,
                event.event_type,
                event.at,
            );
        }
    }

    /// Notes that `event` of attempt `attempt` (plan index) on `channel` happened at `at_ms` for
    /// `request_id`. When it directly follows the request's previous success-path event of the same
    /// attempt, the delay between them becomes a sample of that [`Step`]. Failures and final events
    /// forget the request; duplicates and events that go backwards change nothing.
    pub fn record(
        &self,
        request_id: RequestId,
        channel: Channel,
        attempt: usize,
        event: EventType,
        at_ms: i64,
    ) {
        let path = success_path(channel);
        let rank = path.iter().position(|e| *e == event);
        let mut inner = self.lock();
        let tracked = inner.open.get(&request_id).copied();
        let previous = tracked.filter(|o| o.channel == channel && o.attempt == attempt);
        // An event of an older attempt than the tracked one (a late callback after a failover)
        // neither makes a sample nor disturbs the newer attempt.
        if tracked.is_some_and(|o| o.attempt > attempt) {
            return;
        }
        let Some(rank) = rank else {
            // Off the success path (failed, hangup, busy…): this attempt yields no more steps.
            inner.forget(request_id);
            return;
        };
        if let Some(prev) = previous {
            if rank <= prev.rank {
                return; // a duplicate or a late, earlier event
            }
            if let Some(step) = Step::between(channel, path[prev.rank], event) {
                if let Some(delay) = delay_between(prev.at_ms, at_ms) {
                    inner.samples[step.index()].push(delay);
                }
            }
        }
        if rank + 1 == path.len() {
            inner.forget(request_id);
        } else {
            inner.track(
                request_id,
                Last {
                    channel,
                    attempt,
                    rank,
                    at_ms,
                    generation: 0,
                },
            );
        }
    }

    /// Adds one sample of `step` directly.
    pub fn record_step(&self, step: Step, delay: Duration) {
        if delay <= MAX_SAMPLE_DELAY {
            self.lock().samples[step.index()].push(delay);
        }
    }

    /// A delay for `step`: one of the recent real samples, chosen at random, or the step's
    /// [default](Step::default_delay) jittered by ±40 % while there is none.
    pub fn sample(&self, step: Step) -> Duration {
        let mut inner = self.lock();
        let Inner { rng, samples, .. } = &mut *inner;
        let recent = &samples[step.index()];
        if recent.is_empty() {
            let factor = 1.0 - DEFAULT_JITTER + 2.0 * DEFAULT_JITTER * rng.unit();
            return step.default_delay().mul_f64(factor);
        }
        let pick = usize::try_from(rng.next_u64() % recent.len() as u64).unwrap_or(0);
        recent.get(pick)
    }

    /// Number of real samples currently kept for `step`.
    pub fn sample_count(&self, step: Step) -> usize {
        self.lock().samples[step.index()].len()
    }

    /// Number of requests whose last event is remembered.
    pub fn tracked_requests(&self) -> usize {
        self.lock().open.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The delay from `from_ms` to `to_ms`, when it is a plausible delivery step.
fn delay_between(from_ms: i64, to_ms: i64) -> Option<Duration> {
    let millis = u64::try_from(to_ms.checked_sub(from_ms)?).ok()?;
    let delay = Duration::from_millis(millis);
    (delay <= MAX_SAMPLE_DELAY).then_some(delay)
}

struct Inner {
    rng: XorShift64Star,
    samples: [Samples; Step::ALL.len()],
    /// The last success-path event of each request in progress.
    open: HashMap<RequestId, Last>,
    /// Requests in the order they were first tracked, with the generation they were tracked under
    /// (entries of forgotten requests stay until they reach the front or are compacted away).
    order: VecDeque<(RequestId, u64)>,
    next_generation: u64,
    tracked_cap: usize,
}

impl Inner {
    /// Remembers `last` as the request's last event, forgetting the oldest request when full.
    fn track(&mut self, id: RequestId, mut last: Last) {
        if let Some(existing) = self.open.get_mut(&id) {
            last.generation = existing.generation;
            *existing = last;
            return;
        }
        while self.open.len() >= self.tracked_cap {
            let Some((oldest, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .open
                .get(&oldest)
                .is_some_and(|o| o.generation == generation)
            {
                self.open.remove(&oldest);
            }
        }
        last.generation = self.next_generation;
        self.next_generation += 1;
        self.open.insert(id, last);
        self.order.push_back((id, last.generation));
        if self.order.len() > 2 * self.tracked_cap + 16 {
            let open = &self.open;
            self.order
                .retain(|(id, g)| open.get(id).is_some_and(|o| o.generation == *g));
        }
    }

    fn forget(&mut self, id: RequestId) {
        self.open.remove(&id);
    }
}

/// A request's last success-path event.
#[derive(Debug, Clone, Copy)]
struct Last {
    channel: Channel,
    attempt: usize,
    /// Position on the channel's success path.
    rank: usize,
    at_ms: i64,
    generation: u64,
}

/// A fixed-size ring buffer of delays: once full, each new sample replaces the oldest.
struct Samples {
    values: Vec<Duration>,
    capacity: usize,
    next: usize,
}

impl Samples {
    fn new(capacity: usize) -> Self {
        Self {
            values: Vec::new(),
            capacity,
            next: 0,
        }
    }

    fn push(&mut self, delay: Duration) {
        if self.values.len() < self.capacity {
            self.values.push(delay);
        } else if let Some(slot) = self.values.get_mut(self.next) {
            *slot = delay;
        }
        self.next = (self.next + 1) % self.capacity;
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn get(&self, index: usize) -> Duration {
        self.values.get(index).copied().unwrap_or_default()
    }
}

/// A generator for picking delays, seeded once from the system's CSPRNG.
fn seeded_rng() -> XorShift64Star {
    let mut seed = [0u8; 8];
    if SystemRandom::new().fill(&mut seed).is_err() {
        // No system randomness (never on a supported platform): the clock still varies.
        seed = crate::clock::now_ms().to_le_bytes();
    }
    XorShift64Star::new(u64::from_le_bytes(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn id() -> RequestId {
        RequestId::new_random()
    }

    #[test]
    fn defaults_are_jittered_around_the_documented_values() {
        let timings = DeliveryTimings::default();
        for step in Step::ALL {
            let base = step.default_delay();
            let drawn: Vec<Duration> = (0..200).map(|_| timings.sample(step)).collect();
            for d in &drawn {
                assert!(
                    *d >= base.mul_f64(0.6) && *d < base.mul_f64(1.4),
                    "{step:?}: {d:?}"
                );
            }
            let distinct: std::collections::HashSet<_> = drawn.iter().collect();
            assert!(distinct.len() > 50, "{step:?} defaults look constant");
            assert_eq!(timings.sample_count(step), 0);
        }
        assert_eq!(Step::SmsSent.default_delay(), 300 * MS);
        assert_eq!(Step::SmsDelivered.default_delay(), 3_000 * MS);
        assert_eq!(Step::VoiceRinging.default_delay(), 1_500 * MS);
        assert_eq!(Step::VoiceAnswered.default_delay(), 6_000 * MS);
        assert_eq!(Step::VoicePlaying.default_delay(), 2_000 * MS);
        assert_eq!(Step::VoiceCompleted.default_delay(), 10_000 * MS);
    }

    #[test]
    fn sampling_returns_only_recorded_values_and_all_of_them() {
        let timings = DeliveryTimings::default();
        let recorded = [120 * MS, 450 * MS, 2_000 * MS];
        for d in recorded {
            timings.record_step(Step::SmsSent, d);
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let d = timings.sample(Step::SmsSent);
            assert!(recorded.contains(&d), "{d:?} was never recorded");
            seen.insert(d);
        }
        assert_eq!(
            seen.len(),
            recorded.len(),
            "every sample is drawn eventually"
        );
        // Other steps are unaffected.
        assert_eq!(timings.sample_count(Step::SmsDelivered), 0);
    }

    #[test]
    fn sms_delivery_yields_sent_and_delivered_steps() {
        let timings = DeliveryTimings::default();
        let r = id();
        timings.record(r, Channel::Sms, 0, EventType::Sending, 1_000);
        timings.record(r, Channel::Sms, 0, EventType::Sent, 1_250);
        timings.record(r, Channel::Sms, 0, EventType::Delivered, 4_250);
        assert_eq!(timings.sample(Step::SmsSent), 250 * MS);
        assert_eq!(timings.sample(Step::SmsDelivered), 3_000 * MS);
        assert_eq!(
            timings.tracked_requests(),
            0,
            "a delivered request is forgotten"
        );
    }

    #[test]
    fn voice_delivery_yields_every_step() {
        let timings = DeliveryTimings::default();
        let r = id();
        let events = [
            (EventType::Calling, 0),
            (EventType::Ringing, 1_000),
            (EventType::Answered, 5_000),
            (EventType::Playing, 6_500),
            (EventType::Completed, 15_000),
        ];
        for (event, at) in events {
            timings.record(r, Channel::Voice, 1, event, at);
        }
        assert_eq!(timings.sample(Step::VoiceRinging), 1_000 * MS);
        assert_eq!(timings.sample(Step::VoiceAnswered), 4_000 * MS);
        assert_eq!(timings.sample(Step::VoicePlaying), 1_500 * MS);
        assert_eq!(timings.sample(Step::VoiceCompleted), 8_500 * MS);
        assert_eq!(timings.tracked_requests(), 0);
    }

    #[test]
    fn observe_takes_channel_events_and_ignores_request_events() {
        let timings = DeliveryTimings::default();
        let r = id();
        let mut sending = NewEvent::channel_event(r, Channel::Sms, 0, EventType::Sending, None);
        sending.at = 10_000;
        let mut sent = NewEvent::channel_event(r, Channel::Sms, 0, EventType::Sent, None);
        sent.at = 10_400;
        let mut feedback = crate::otp_request::feedback_event(r, false);
        feedback.at = 10_200;
        timings.observe(&sending);
        timings.observe(&feedback);
        timings.observe(&sent);
        assert_eq!(timings.sample_count(Step::SmsSent), 1);
        assert_eq!(timings.sample(Step::SmsSent), 400 * MS);
    }

    #[test]
    fn skipped_events_duplicates_and_failures_make_no_sample() {
        let timings = DeliveryTimings::default();
        // A DLR without a processing callback: no sent → delivered step, no sending → delivered.
        let a = id();
        timings.record(a, Channel::Sms, 0, EventType::Sending, 0);
        timings.record(a, Channel::Sms, 0, EventType::Delivered, 900);
        // A duplicate `sent` does not restart the clock for `delivered`.
        let b = id();
        timings.record(b, Channel::Sms, 0, EventType::Sending, 0);
        timings.record(b, Channel::Sms, 0, EventType::Sent, 100);
        timings.record(b, Channel::Sms, 0, EventType::Sent, 2_000);
        timings.record(b, Channel::Sms, 0, EventType::Delivered, 3_100);
        // A call that rang and failed: the ringing step counts, nothing after it.
        let c = id();
        timings.record(c, Channel::Voice, 0, EventType::Calling, 0);
        timings.record(c, Channel::Voice, 0, EventType::Ringing, 700);
        timings.record(c, Channel::Voice, 0, EventType::NoAnswer, 30_700);
        // A failover: the voice attempt's `calling` is not a step after the SMS `sent`.
        let d = id();
        timings.record(d, Channel::Sms, 0, EventType::Sending, 0);
        timings.record(d, Channel::Sms, 0, EventType::Sent, 50);
        timings.record(d, Channel::Voice, 1, EventType::Calling, 60_000);
        timings.record(d, Channel::Sms, 0, EventType::Delivered, 70_000);
        // A clock going backwards.
        let e = id();
        timings.record(e, Channel::Sms, 0, EventType::Sending, 5_000);
        timings.record(e, Channel::Sms, 0, EventType::Sent, 4_000);

        assert_eq!(timings.sample_count(Step::SmsSent), 2);
        assert_eq!(timings.sample_count(Step::SmsDelivered), 1);
        assert_eq!(timings.sample(Step::SmsDelivered), 3_000 * MS);
        assert_eq!(timings.sample_count(Step::VoiceRinging), 1);
        assert_eq!(timings.sample_count(Step::VoiceAnswered), 0);
        // Still in progress: the voice attempt of `d`, and `e` (its `sent` is its last event).
        assert_eq!(timings.tracked_requests(), 2);
    }

    #[test]
    fn a_resumed_request_counts_from_its_first_seen_event() {
        let timings = DeliveryTimings::default();
        let r = id();
        // After a restart the first event seen is `sent` (the sending was before the restart).
        timings.record(r, Channel::Sms, 0, EventType::Sent, 1_000);
        timings.record(r, Channel::Sms, 0, EventType::Delivered, 2_500);
        assert_eq!(timings.sample_count(Step::SmsSent), 0);
        assert_eq!(timings.sample(Step::SmsDelivered), 1_500 * MS);
    }

    #[test]
    fn implausibly_long_delays_are_not_kept() {
        let timings = DeliveryTimings::default();
        let r = id();
        timings.record(r, Channel::Sms, 0, EventType::Sending, 0);
        timings.record(r, Channel::Sms, 0, EventType::Sent, 3_600_000);
        timings.record_step(Step::SmsDelivered, Duration::from_secs(3_600));
        assert_eq!(timings.sample_count(Step::SmsSent), 0);
        assert_eq!(timings.sample_count(Step::SmsDelivered), 0);
    }

    #[test]
    fn the_ring_buffer_keeps_only_the_most_recent_samples() {
        let timings = DeliveryTimings::with_capacity(4, 16);
        for ms in 1..=10 {
            timings.record_step(Step::VoicePlaying, ms * MS);
        }
        assert_eq!(timings.sample_count(Step::VoicePlaying), 4);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(timings.sample(Step::VoicePlaying));
        }
        let expected: std::collections::HashSet<_> = (7..=10).map(|ms| ms * MS).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn the_default_buffer_holds_256_samples() {
        let timings = DeliveryTimings::default();
        for ms in 0..1_000 {
            timings.record_step(Step::SmsSent, ms * MS);
        }
        assert_eq!(timings.sample_count(Step::SmsSent), SAMPLES_PER_STEP);
        for _ in 0..500 {
            assert!(timings.sample(Step::SmsSent) >= 744 * MS);
        }
    }

    #[test]
    fn tracked_requests_are_bounded_and_the_oldest_is_forgotten() {
        let timings = DeliveryTimings::with_capacity(64, 3);
        let ids: Vec<RequestId> = (0..5).map(|_| id()).collect();
        for r in &ids[..3] {
            timings.record(*r, Channel::Sms, 0, EventType::Sending, 0);
        }
        // An update of the first request does not make it young again.
        timings.record(ids[0], Channel::Sms, 0, EventType::Sent, 10);
        for r in &ids[3..] {
            timings.record(*r, Channel::Sms, 0, EventType::Sending, 0);
        }
        assert_eq!(timings.tracked_requests(), 3);
        assert_eq!(timings.sample_count(Step::SmsSent), 1);
        // The three youngest still count.
        for r in &ids[2..] {
            timings.record(*r, Channel::Sms, 0, EventType::Sent, 500);
        }
        assert_eq!(timings.sample_count(Step::SmsSent), 4);
        // ids[0] and ids[1] were forgotten: their next events make no sample.
        timings.record(ids[0], Channel::Sms, 0, EventType::Delivered, 1_000);
        timings.record(ids[1], Channel::Sms, 0, EventType::Sent, 1_000);
        assert_eq!(timings.sample_count(Step::SmsDelivered), 0);
        assert_eq!(timings.sample_count(Step::SmsSent), 4);
    }

    #[test]
    fn the_eviction_queue_stays_bounded_under_churn() {
        let timings = DeliveryTimings::with_capacity(8, 10);
        for _ in 0..10_000 {
            let r = id();
            timings.record(r, Channel::Voice, 0, EventType::Calling, 0);
            timings.record(r, Channel::Voice, 0, EventType::Busy, 10);
        }
        let inner = timings.lock();
        assert!(inner.open.is_empty());
        assert!(inner.order.len() <= 2 * 10 + 16, "{}", inner.order.len());
    }

    #[test]
    fn steps_follow_the_success_paths() {
        assert_eq!(
            Step::between(Channel::Sms, EventType::Sending, EventType::Sent),
            Some(Step::SmsSent)
        );
        assert_eq!(
            Step::between(Channel::Voice, EventType::Playing, EventType::Completed),
            Some(Step::VoiceCompleted)
        );
        assert_eq!(
            Step::between(Channel::Sms, EventType::Sending, EventType::Delivered),
            None
        );
        assert_eq!(
            Step::between(Channel::Voice, EventType::Sending, EventType::Sent),
            None
        );
        for step in Step::ALL {
            let path = success_path(step.channel());
            let at = path.iter().position(|e| *e == step.event()).unwrap_or(0);
            assert!(at > 0);
            assert_eq!(
                Step::between(step.channel(), path[at - 1], step.event()),
                Some(step)
            );
        }
    }
}
