//! The persistence port: what the actors need from storage, implemented by the gateway's Diesel store.
//!
//! Every method returns a future and never blocks the caller; the implementation runs SQLite work on
//! its own threads. Writes are applied in submission order, so events a request actor submits one
//! after another are stored in that order and the status logic sees them in that order.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use crate::domain::{Channel, EventType, Status};
use crate::ids::{ProviderMessageId, RequestId};

/// A boxed, sendable store future.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The database could not be read or written (disk full, file gone, busy past the timeout).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// No request has this id.
    #[error("unknown request")]
    UnknownRequest,
}

/// A request as accepted by the dispatcher, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// Request id.
    pub id: RequestId,
    /// `+E164`.
    pub phone: String,
    /// Hex HMAC-SHA256 of the code under the server key.
    pub code_hash: String,
    /// The code sealed under the server key, kept only until no channel can send any more.
    pub code_sealed: Vec<u8>,
    /// Channels as the client asked for them.
    pub channels_requested: Vec<Channel>,
    /// The delivery plan: requested channels that are configured, in failover order.
    pub plan: Vec<Channel>,
    /// Client's session id.
    pub session_id: Option<String>,
    /// Client's webhook URL.
    pub webhook_url: Option<String>,
    /// End-user IP used for fraud scoring.
    pub client_ip: Option<String>,
    /// Cost ceiling in micro-dollars.
    pub max_cost_micros: Option<i64>,
    /// Creation time, ms.
    pub created_at: i64,
    /// Expiry time, ms.
    pub expires_at: i64,
    /// The fraud decision, when the engine ran.
    pub fraud: Option<FraudRecord>,
}

/// A fraud decision as stored with its request (operator-only: never in webhooks or the API).
#[derive(Debug, Clone)]
pub struct FraudRecord {
    /// `allow` or `shadow_ban` (what the engine concluded, even when not enforced).
    pub verdict: String,
    /// Total points.
    pub score: u32,
    /// False in monitor mode.
    pub enforced: bool,
    /// JSON: the rules that fired with their points and inputs, whether whitelisted.
    pub details: String,
    /// What a shadow-banned request would have cost, micro-dollars.
    pub savings_micros: Option<i64>,
    /// The request is simulated (enforced shadow ban): nothing reaches the carrier, now or after a
    /// restart.
    pub shadow_banned: bool,
}

/// A refused dispatch's decision (429 `rate_limited` or 422 `country_not_allowed`); no request
/// row exists for it.
#[derive(Debug, Clone)]
pub struct FraudRefusal {
    /// `+E164`.
    pub phone: String,
    /// End-user IP, if given.
    pub ip: Option<String>,
    /// `rate_limited` or `country_not_allowed`.
    pub verdict: String,
    /// Total points of the scored rules (0 when refused before scoring).
    pub score: u32,
    /// False in monitor mode (then the dispatch was delivered anyway and this is a record of
    /// what would have happened).
    pub enforced: bool,
    /// JSON, as in [`FraudRecord::details`].
    pub details: String,
    /// When, ms.
    pub at: i64,
}

/// One event to record against a request.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The request.
    pub request_id: RequestId,
    /// The channel the event belongs to; `None` = the request's current channel (feedback, expiry).
    pub channel: Option<Channel>,
    /// Index in the plan of the attempt this event belongs to; events of an older attempt are recorded
    /// but do not move the request's current `channel`/`channel_status`.
    pub attempt: Option<usize>,
    /// Event type.
    pub event_type: EventType,
    /// Metadata shown to the client (webhooks, `/requests`). Never internal details.
    pub metadata: Map<String, Value>,
    /// Operator-only details (carrier error bodies, provider ids), stored but never sent to clients.
    pub internal: Map<String, Value>,
    /// The status this event asks for (see [`crate::status::proposed_status`]).
    pub proposed_status: Option<Status>,
    /// The carrier callback this event comes from; stored in the same transaction so a replayed
    /// callback is recognised and changes nothing.
    pub callback: Option<CallbackRecord>,
    /// SMS price (micro-dollars) and parts reported by the carrier.
    pub sms_cost: Option<(i64, i32)>,
    /// Event time, ms.
    pub at: i64,
}

impl NewEvent {
    /// A channel event of one attempt with empty metadata.
    pub fn channel_event(
        request_id: RequestId,
        channel: Channel,
        attempt: usize,
        event_type: EventType,
        proposed_status: Option<Status>,
    ) -> Self {
        Self {
            request_id,
            channel: Some(channel),
            attempt: Some(attempt),
            event_type,
            metadata: Map::new(),
            internal: Map::new(),
            proposed_status,
            callback: None,
            sms_cost: None,
            at: crate::clock::now_ms(),
        }
    }
}

/// A DIDWW callback as received, for deduplication and audit.
#[derive(Debug, Clone)]
pub struct CallbackRecord {
    /// Provider message id.
    pub provider_id: ProviderMessageId,
    /// `status` (processing callback) or `dlr`.
    pub kind: String,
    /// The carrier's status text, lower-cased.
    pub status: String,
    /// The raw body.
    pub body: String,
}

/// What recording an event did.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// Row id of the event (monotonic).
    pub event_id: i64,
    /// The request.
    pub request_id: RequestId,
    /// The event's channel.
    pub channel: Channel,
    /// Event type.
    pub event_type: EventType,
    /// Client-visible metadata.
    pub metadata: Map<String, Value>,
    /// Event time, ms.
    pub at: i64,
    /// The request's status after the event.
    pub status: Status,
    /// True when this event changed the status.
    pub status_changed: bool,
    /// The request's channel after the event.
    pub current_channel: Option<Channel>,
    /// The request's channel status after the event.
    pub channel_status: Option<EventType>,
    /// The request's phone (`+E164`).
    pub phone: String,
    /// The client's session id.
    pub session_id: Option<String>,
    /// The webhook delivery queued for this event, if the request has a webhook URL.
    pub webhook: Option<OutboxItem>,
    /// True when nothing was written: the event's callback had already been recorded, or it was
    /// feedback/expiry that changes nothing.
    pub duplicate: bool,
}

/// A queued client webhook delivery.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Row id (orders deliveries of one request).
    pub id: i64,
    /// The request.
    pub request_id: RequestId,
    /// Target URL.
    pub url: String,
    /// `otp.<event_type>`.
    pub event: String,
    /// Unique id of this delivery (`X-Webhook-Id`).
    pub webhook_id: String,
    /// The exact JSON body.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Earliest time of the next attempt, ms.
    pub next_attempt_at: i64,
}

/// How one webhook attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx: done.
    Delivered,
    /// Failed; try again at this time (ms).
    RetryAt(i64),
    /// Failed and no attempts are left.
    GaveUp,
    /// The SSRF guard refused the target; never retried.
    Blocked,
}

/// One logged webhook attempt.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    /// The outbox row.
    pub outbox_id: i64,
    /// The request.
    pub request_id: RequestId,
    /// 1-based attempt number.
    pub attempt: u32,
    /// HTTP status, when a response came.
    pub status_code: Option<u16>,
    /// Error text (timeout, connection refused, blocked address…).
    pub error: Option<String>,
    /// Duration of the attempt, ms.
    pub duration_ms: i64,
    /// When it was made, ms.
    pub at: i64,
    /// Outcome.
    pub outcome: AttemptOutcome,
}

/// What a provider message id points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderMatch {
    /// The request that sent the message.
    pub request_id: RequestId,
    /// Index in the plan of the SMS attempt.
    pub attempt: usize,
}

/// A request whose delivery was still under way when the process stopped.
#[derive(Debug, Clone)]
pub struct ResumableRequest {
    /// Request id.
    pub id: RequestId,
    /// `+E164`.
    pub phone: String,
    /// Sealed code (None if it was wiped, in which case nothing can be sent).
    pub code_sealed: Option<Vec<u8>>,
    /// The delivery plan.
    pub plan: Vec<Channel>,
    /// Index of the current attempt, if one started.
    pub attempt: Option<usize>,
    /// Last event of the current attempt.
    pub channel_status: Option<EventType>,
    /// Provider id of the current SMS attempt, if accepted.
    pub provider_id: Option<ProviderMessageId>,
    /// When the current attempt was accepted by the carrier, ms.
    pub accepted_at: Option<i64>,
    /// Current status.
    pub status: Status,
    /// Expiry, ms.
    pub expires_at: i64,
    /// Shadow-banned: resume as a simulation, never as a real delivery.
    pub shadow_banned: bool,
}

/// The persistence port.
pub trait Store: Send + Sync + 'static {
    /// Stores a new request; resolves once it is durable.
    fn insert_request(&self, request: NewRequest) -> StoreFuture<()>;
    /// Records an event, applies the status machine, queues the webhook; resolves once durable.
    /// `Err(UnknownRequest)` when the request does not exist.
    fn record_event(&self, event: NewEvent) -> StoreFuture<RecordedEvent>;
    /// Records that the carrier accepted the SMS of `attempt` under `provider_id`.
    fn attach_provider_id(
        &self,
        request_id: RequestId,
        attempt: usize,
        provider_id: ProviderMessageId,
        at: i64,
    ) -> StoreFuture<()>;
    /// Stores the decision of a refused dispatch (no request row exists for it).
    fn record_fraud_refusal(&self, refusal: FraudRefusal) -> StoreFuture<()>;
    /// Records the SIP Call-ID of the voice call of `attempt` (CDRs are matched by it).
    fn attach_call_id(
        &self,
        request_id: RequestId,
        attempt: usize,
        call_id: String,
        at: i64,
    ) -> StoreFuture<()>;
    /// Stores a callback that produces no event (audit): an intermediate status of `request_id`, or,
    /// with `None`, a message id no request sent. Unmatched callbacks are kept apart from the
    /// deduplication keys of matched ones, so a later retry of the same callback still applies once
    /// its request is known. Resolves once durable.
    fn record_callback(
        &self,
        request_id: Option<RequestId>,
        callback: CallbackRecord,
    ) -> StoreFuture<()>;
    /// Finds the request that sent `provider_id`.
    fn find_by_provider_id(
        &self,
        provider_id: ProviderMessageId,
    ) -> StoreFuture<Option<ProviderMatch>>;
    /// Requests whose delivery is unfinished (pending/sending/sent, not expired).
    fn list_resumable(&self, now_ms: i64) -> StoreFuture<Vec<ResumableRequest>>;
    /// Ids of requests whose lifetime has passed and that can still expire.
    fn list_due_expiries(&self, now_ms: i64, limit: i64) -> StoreFuture<Vec<RequestId>>;
    /// Every queued webhook delivery, oldest first.
    fn list_pending_webhooks(&self) -> StoreFuture<Vec<OutboxItem>>;
    /// Logs an attempt and moves the outbox row on.
    fn record_webhook_attempt(&self, attempt: WebhookAttempt) -> StoreFuture<()>;
    /// Cheap liveness probe for `/health`.
    fn ping(&self) -> StoreFuture<()>;
}
