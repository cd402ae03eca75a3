//! [`DbStore`]: the Diesel implementation of the actors' persistence port.
//!
//! Writes go through the single batching `Writer` (`db::writer`); reads use the pool on tokio's blocking threads,
//! so no SQLite call ever runs on an actor's or an HTTP worker's async thread.

use std::sync::{Arc, Mutex};

use diesel::sqlite::SqliteConnection;
use diesel::QueryResult;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use actors::status;
use actors::store::{
    AttemptOutcome, CallbackRecord, FraudRefusal, NewEvent, NewRequest, OutboxItem, ProviderMatch,
    RecordedEvent, ResumableRequest, Store, StoreError, StoreFuture, WebhookAttempt,
};
use actors::{Channel, EventType, ProviderMessageId, RequestId, Status};

use super::models::{callback, event, request, webhook};
use super::writer::{CachedRequest, RequestCache, WriteError, Writer};
use super::ReadPool;

/// The Diesel-backed store. Cheap to clone.
#[derive(Clone)]
pub struct DbStore {
    writer: Writer,
    pool: ReadPool,
    _checkpoints: Arc<super::checkpoint::CheckpointGuard>,
}

fn unavailable(err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

impl DbStore {
    /// Wraps an opened database (see [`super::open`]).
    /// Starts the writer and checkpoint threads for the database at `path`.
    pub fn new(
        writer_conn: SqliteConnection,
        pool: ReadPool,
        path: &std::path::Path,
    ) -> std::io::Result<Self> {
        Ok(Self {
            writer: Writer::start(writer_conn)?,
            pool,
            _checkpoints: Arc::new(super::checkpoint::start(path)?),
        })
    }

    /// The read pool, for the HTTP layer's queries.
    pub fn pool(&self) -> &ReadPool {
        &self.pool
    }

    /// Runs a write on the writer thread and resolves with its result once committed.
    pub(super) fn write<T, F>(&self, f: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection, &mut RequestCache) -> Result<T, WriteError>
            + Send
            + 'static,
    {
        let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let filled = Arc::clone(&slot);
        let done = self.writer.submit(Box::new(move |conn, cache| {
            let value = f(conn, cache)?;
            if let Ok(mut guard) = filled.lock() {
                *guard = Some(value);
            }
            Ok(())
        }));
        Box::pin(async move {
            done.await.map_err(|_| unavailable("writer stopped"))??;
            let value = slot.lock().ok().and_then(|mut guard| guard.take());
            value.ok_or_else(|| unavailable("write produced no result"))
        })
    }

    /// Resolves once every write queued before it is committed: proves the writer is alive
    /// (`/health`) and drains it (graceful shutdown).
    pub fn writer_barrier(&self) -> StoreFuture<()> {
        self.write(|_, _| Ok(()))
    }

    /// Runs a read on a pooled connection on a blocking thread.
    pub fn read<T, F>(&self, f: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> QueryResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = pool.get().map_err(unavailable)?;
                f(&mut conn).map_err(unavailable)
            })
            .await
            .map_err(unavailable)?
        })
    }
}

fn channels_json(channels: &[Channel]) -> String {
    Value::Array(channels.iter().map(|c| Value::from(c.as_str())).collect()).to_string()
}

fn parse_channels(text: &str) -> Vec<Channel> {
    serde_json::from_str::<Vec<String>>(text)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect()
}

fn parse_status(text: &str) -> Status {
    // Only this module writes the column, so an unknown value means a hand-edited row.
    text.parse().unwrap_or(Status::Pending)
}

fn insert_request(
    conn: &mut SqliteConnection,
    cache: &mut RequestCache,
    req: &NewRequest,
) -> Result<(), WriteError> {
    let id = req.id.to_string();
    let requested = channels_json(&req.channels_requested);
    let plan = channels_json(&req.plan);
    let form = request::RequestInsertForm {
        id: &id,
        phone: &req.phone,
        code_hash: &req.code_hash,
        code_sealed: Some(&req.code_sealed),
        status: Status::Pending.as_str(),
        channels_requested: &requested,
        channel_plan: &plan,
        session_id: req.session_id.as_deref(),
        webhook_url: req.webhook_url.as_deref(),
        client_ip: req.client_ip.as_deref(),
        max_cost_micros: req.max_cost_micros,
        created_at: req.created_at,
        updated_at: req.created_at,
        expires_at: req.expires_at,
        fraud_verdict: req.fraud.as_ref().map(|f| f.verdict.as_str()),
        fraud_score: req
            .fraud
            .as_ref()
            .map(|f| i32::try_from(f.score).unwrap_or(i32::MAX)),
        fraud_enforced: req.fraud.as_ref().map(|f| f.enforced),
        fraud_details: req.fraud.as_ref().map(|f| f.details.as_str()),
        fraud_savings_micros: req.fraud.as_ref().and_then(|f| f.savings_micros),
        shadow_banned: req.fraud.as_ref().is_some_and(|f| f.shadow_banned),
    };
    request::insert(conn, &form)?;
    cache.put(
        id,
        CachedRequest {
            status: Status::Pending,
            channel: None,
            channel_index: None,
            channel_status: None,
            phone: req.phone.clone(),
            session_id: req.session_id.clone(),
            webhook_url: req.webhook_url.clone(),
            plan: req.plan.clone(),
        },
    );
    Ok(())
}

/// The writer's view of a request: from its cache, else from the row.
fn request_state(
    conn: &mut SqliteConnection,
    cache: &mut RequestCache,
    id: &str,
) -> Result<CachedRequest, WriteError> {
    if let Some(state) = cache.get(id) {
        return Ok(state.clone());
    }
    let row =
        request::find_by_id(conn, id)?.ok_or(WriteError::Refused(StoreError::UnknownRequest))?;
    let state = CachedRequest {
        status: parse_status(&row.status),
        channel: row.channel.as_deref().and_then(|c| c.parse().ok()),
        channel_index: row.channel_index,
        channel_status: row.channel_status,
        phone: row.phone,
        session_id: row.session_id,
        webhook_url: row.webhook_url,
        plan: parse_channels(&row.channel_plan),
    };
    cache.put(id.to_owned(), state.clone());
    Ok(state)
}

/// The answer for an event that wrote nothing (replayed callback, no-op feedback or expiry).
fn unchanged(ev: NewEvent, channel: Channel, row: &CachedRequest) -> RecordedEvent {
    RecordedEvent {
        event_id: 0,
        request_id: ev.request_id,
        channel,
        event_type: ev.event_type,
        metadata: ev.metadata,
        at: ev.at,
        status: row.status,
        status_changed: false,
        current_channel: row.channel,
        channel_status: row.channel_status.as_deref().and_then(|s| s.parse().ok()),
        phone: row.phone.clone(),
        session_id: row.session_id.clone(),
        webhook: None,
        duplicate: true,
    }
}

/// Channel statuses after which an attempt is over.
fn channel_status_final(status: Option<&str>) -> bool {
    status
        .and_then(|s| s.parse::<EventType>().ok())
        .is_some_and(|e| {
            e.is_channel_failure()
                || matches!(
                    e,
                    EventType::Delivered | EventType::Completed | EventType::Hangup
                )
        })
}

/// The client webhook body of SPEC §6.
fn webhook_body(
    id: &str,
    row: &CachedRequest,
    ev: &NewEvent,
    channel: Channel,
    status: Status,
    channel_status: Option<&str>,
) -> String {
    json!({
        "event": format!("otp.{}", ev.event_type),
        "request_id": id,
        "session_id": row.session_id,
        "phone": row.phone,
        "status": status.as_str(),
        "channel": channel.as_str(),
        "channel_status": channel_status,
        "timestamp": ev.at,
        "metadata": Value::Object(ev.metadata.clone()),
    })
    .to_string()
}

fn record_event(
    conn: &mut SqliteConnection,
    cache: &mut RequestCache,
    ev: NewEvent,
) -> Result<RecordedEvent, WriteError> {
    let id = ev.request_id.to_string();
    let row = request_state(conn, cache, &id)?;
    let channel = ev
        .channel
        .or(row.channel)
        .or_else(|| row.plan.first().copied())
        .unwrap_or(Channel::Sms);
    let current = row.status;

    if let Some(cb) = &ev.callback {
        let form = callback::CallbackInsertForm {
            provider_id: cb.provider_id.as_str(),
            kind: &cb.kind,
            status: &cb.status,
            request_id: Some(&id),
            body: &cb.body,
            received_at: ev.at,
        };
        if !callback::insert_if_new(conn, &form)? {
            return Ok(unchanged(ev, channel, &row));
        }
    }

    let next = ev.proposed_status.and_then(|p| status::merge(current, p));
    if ev.channel.is_none() && next.is_none() {
        // Feedback or expiry that changes nothing (a `rejected` after `verified`, an expiry racing
        // a verification): no event, no webhook saying `otp.expired` with status `verified`.
        return Ok(unchanged(ev, channel, &row));
    }
    let new_status = next.unwrap_or(current);
    // A newer attempt always takes over the request's current channel. Within the current attempt,
    // a settled channel status (delivered, failed…) only moves when the event also moved the
    // request's status (a late delivery after a failure); anything else is recorded but leaves it.
    // Events of an abandoned, older attempt never move it.
    let moves_channel = match (ev.channel, ev.attempt) {
        (Some(_), Some(attempt)) => {
            let attempt = i64::try_from(attempt).unwrap_or(i64::MAX);
            match row.channel_index.map(i64::from) {
                None => true,
                Some(now) if attempt > now => true,
                Some(now) if attempt == now => {
                    !channel_status_final(row.channel_status.as_deref()) || next.is_some()
                }
                Some(_) => false,
            }
        }
        _ => false,
    };
    let (new_channel, new_index, new_channel_status) = if moves_channel {
        (
            Some(channel),
            ev.attempt.and_then(|a| i32::try_from(a).ok()),
            Some(ev.event_type.as_str().to_owned()),
        )
    } else {
        (row.channel, row.channel_index, row.channel_status.clone())
    };

    let metadata = Value::Object(ev.metadata.clone()).to_string();
    let internal = Value::Object(ev.internal.clone()).to_string();
    let event_id = event::insert(
        conn,
        &event::EventInsertForm {
            request_id: &id,
            channel: channel.as_str(),
            event_type: ev.event_type.as_str(),
            metadata: &metadata,
            internal: &internal,
            status_after: new_status.as_str(),
            created_at: ev.at,
        },
    )?;

    request::update_after_event(
        conn,
        &id,
        &request::RequestUpdateForm {
            status: new_status.as_str(),
            channel: new_channel.map(Channel::as_str),
            channel_index: new_index,
            channel_status: new_channel_status.as_deref(),
            updated_at: ev.at,
        },
        status::sending_finished(new_status),
    )?;
    if let Some((micros, parts)) = ev.sms_cost {
        request::record_sms_cost(conn, &id, micros, parts)?;
    }

    let webhook = match &row.webhook_url {
        Some(url) => {
            let body = webhook_body(
                &id,
                &row,
                &ev,
                channel,
                new_status,
                new_channel_status.as_deref(),
            );
            let event_name = format!("otp.{}", ev.event_type);
            let webhook_id = Uuid::new_v4().to_string();
            let outbox_id = webhook::insert_outbox(
                conn,
                &webhook::OutboxInsertForm {
                    request_id: &id,
                    event_id,
                    webhook_id: &webhook_id,
                    url,
                    event: &event_name,
                    body: &body,
                    state: "pending",
                    attempts: 0,
                    next_attempt_at: ev.at,
                    created_at: ev.at,
                    updated_at: ev.at,
                },
            )?;
            Some(OutboxItem {
                id: outbox_id,
                request_id: ev.request_id,
                url: url.clone(),
                event: event_name,
                webhook_id,
                body,
                attempts: 0,
                next_attempt_at: ev.at,
            })
        }
        None => None,
    };

    cache.put(
        id,
        CachedRequest {
            status: new_status,
            channel: new_channel,
            channel_index: new_index,
            channel_status: new_channel_status.clone(),
            ..row.clone()
        },
    );

    Ok(RecordedEvent {
        event_id,
        request_id: ev.request_id,
        channel,
        event_type: ev.event_type,
        metadata: ev.metadata,
        at: ev.at,
        status: new_status,
        status_changed: next.is_some(),
        current_channel: new_channel,
        channel_status: new_channel_status.as_deref().and_then(|s| s.parse().ok()),
        phone: row.phone,
        session_id: row.session_id,
        webhook,
        duplicate: false,
    })
}

fn outbox_item(row: webhook::OutboxRow) -> Option<OutboxItem> {
    Some(OutboxItem {
        id: row.id,
        request_id: RequestId::parse(&row.request_id)?,
        url: row.url,
        event: row.event,
        webhook_id: row.webhook_id,
        body: row.body,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        next_attempt_at: row.next_attempt_at,
    })
}

fn resumable(row: request::RequestRow) -> Option<ResumableRequest> {
    Some(ResumableRequest {
        id: RequestId::parse(&row.id)?,
        phone: row.phone,
        code_sealed: row.code_sealed,
        plan: parse_channels(&row.channel_plan),
        attempt: row.channel_index.and_then(|i| usize::try_from(i).ok()),
        channel_status: row.channel_status.as_deref().and_then(|s| s.parse().ok()),
        provider_id: row.provider_id.as_deref().map(ProviderMessageId::new),
        accepted_at: row.accepted_at,
        status: parse_status(&row.status),
        expires_at: row.expires_at,
        shadow_banned: row.shadow_banned,
    })
}

impl Store for DbStore {
    fn insert_request(&self, req: NewRequest) -> StoreFuture<()> {
        self.write(move |conn, cache| insert_request(conn, cache, &req))
    }

    fn record_event(&self, ev: NewEvent) -> StoreFuture<RecordedEvent> {
        self.write(move |conn, cache| record_event(conn, cache, ev))
    }

    fn attach_provider_id(
        &self,
        request_id: RequestId,
        _attempt: usize,
        provider_id: ProviderMessageId,
        at: i64,
    ) -> StoreFuture<()> {
        self.write(move |conn, _| {
            let changed = request::attach_provider_id(
                conn,
                &request_id.to_string(),
                provider_id.as_str(),
                at,
            )?;
            if changed == 0 {
                return Err(WriteError::Refused(StoreError::UnknownRequest));
            }
            Ok(())
        })
    }

    fn record_fraud_refusal(&self, refusal: FraudRefusal) -> StoreFuture<()> {
        self.write(move |conn, _| {
            crate::db::models::fraud::insert_refusal(conn, &refusal)?;
            Ok(())
        })
    }

    fn attach_call_id(
        &self,
        request_id: RequestId,
        _attempt: usize,
        call_id: String,
        at: i64,
    ) -> StoreFuture<()> {
        self.write(move |conn, _| {
            let changed = request::attach_call_id(conn, &request_id.to_string(), &call_id, at)?;
            if changed == 0 {
                return Err(WriteError::Refused(StoreError::UnknownRequest));
            }
            Ok(())
        })
    }

    fn record_callback(
        &self,
        request_id: Option<RequestId>,
        cb: CallbackRecord,
    ) -> StoreFuture<()> {
        self.write(move |conn, _| {
            let owner = request_id.map(|id| id.to_string());
            let kind = match owner {
                Some(_) => cb.kind.clone(),
                None => format!("unmatched:{}", cb.kind),
            };
            let form = callback::CallbackInsertForm {
                provider_id: cb.provider_id.as_str(),
                kind: &kind,
                status: &cb.status,
                request_id: owner.as_deref(),
                body: &cb.body,
                received_at: actors::clock::now_ms(),
            };
            callback::insert_if_new(conn, &form)?;
            Ok(())
        })
    }

    fn find_by_provider_id(
        &self,
        provider_id: ProviderMessageId,
    ) -> StoreFuture<Option<ProviderMatch>> {
        self.read(move |conn| {
            let Some(row) = request::find_by_provider_id(conn, provider_id.as_str())? else {
                return Ok(None);
            };
            let plan = parse_channels(&row.channel_plan);
            let attempt = plan.iter().position(|c| *c == Channel::Sms).unwrap_or(0);
            Ok(RequestId::parse(&row.id).map(|request_id| ProviderMatch {
                request_id,
                attempt,
            }))
        })
    }

    fn list_resumable(&self, now_ms: i64) -> StoreFuture<Vec<ResumableRequest>> {
        self.read(move |conn| {
            Ok(request::list_unfinished(conn, now_ms)?
                .into_iter()
                .filter_map(resumable)
                .collect())
        })
    }

    fn list_due_expiries(&self, now_ms: i64, limit: i64) -> StoreFuture<Vec<RequestId>> {
        self.read(move |conn| {
            Ok(request::list_due_expiries(conn, now_ms, limit)?
                .iter()
                .filter_map(|id| RequestId::parse(id))
                .collect())
        })
    }

    fn list_pending_webhooks(&self) -> StoreFuture<Vec<OutboxItem>> {
        self.read(|conn| {
            Ok(webhook::list_pending(conn)?
                .into_iter()
                .filter_map(outbox_item)
                .collect())
        })
    }

    fn record_webhook_attempt(&self, attempt: WebhookAttempt) -> StoreFuture<()> {
        self.write(move |conn, _| {
            let (state, outcome, next) = match attempt.outcome {
                AttemptOutcome::Delivered => ("delivered", "delivered", attempt.at),
                AttemptOutcome::RetryAt(at) => ("pending", "retry", at),
                AttemptOutcome::GaveUp => ("failed", "gave_up", attempt.at),
                AttemptOutcome::Blocked => ("blocked", "blocked", attempt.at),
            };
            let request_id = attempt.request_id.to_string();
            let number = i32::try_from(attempt.attempt).unwrap_or(i32::MAX);
            webhook::insert_attempt(
                conn,
                &webhook::AttemptInsertForm {
                    outbox_id: attempt.outbox_id,
                    request_id: &request_id,
                    attempt: number,
                    status_code: attempt.status_code.map(i32::from),
                    error: attempt.error.as_deref(),
                    duration_ms: attempt.duration_ms,
                    outcome,
                    created_at: attempt.at,
                },
            )?;
            webhook::update_outbox_state(conn, attempt.outbox_id, state, number, next, attempt.at)?;
            Ok(())
        })
    }

    fn ping(&self) -> StoreFuture<()> {
        self.read(|conn| {
            use diesel::connection::SimpleConnection;
            conn.batch_execute("SELECT 1")
        })
    }
}

/// Client-visible metadata of an event row (for `/requests/{id}`).
pub fn metadata_of(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Parses an event type column.
pub fn event_type_of(text: &str) -> Option<EventType> {
    text.parse().ok()
}

/// The fraud engine's lists as stored (the admin will edit them).
#[derive(Debug, Clone, Default)]
pub struct FraudListRows {
    /// (ASN, organisation, category).
    pub asns: Vec<(u32, String, String)>,
    /// (digits, note).
    pub irsf_prefixes: Vec<(String, String)>,
    /// (entry, kind `phone`|`ip`).
    pub whitelist: Vec<(String, String)>,
}

/// Seed data for the fraud lists, applied once per `version` (an operator who empties a list does
/// not see it refilled at the next start).
#[derive(Debug, Clone)]
pub struct FraudSeed {
    /// Bump to add new seed entries to existing installations.
    pub version: u32,
    /// (ASN, organisation, category).
    pub asns: Vec<(u32, String, String)>,
    /// (digits, note).
    pub irsf_prefixes: Vec<(String, String)>,
}

impl DbStore {
    /// Applies `seed` unless this version was applied before; adds the configured whitelist
    /// entries (never removes anything).
    pub fn prepare_fraud_lists(
        &self,
        seed: FraudSeed,
        whitelist: Vec<(String, String)>,
        now: i64,
    ) -> StoreFuture<()> {
        use crate::db::models::fraud;
        self.write(move |conn, _| {
            let applied = fraud::meta_get(conn, "fraud_seed_version")?
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0);
            if applied < seed.version {
                for (asn, org, category) in &seed.asns {
                    fraud::add_asn(conn, *asn, org, category, "seed", now)?;
                }
                for (prefix, note) in &seed.irsf_prefixes {
                    fraud::add_prefix(conn, prefix, note, "seed", now)?;
                }
                fraud::meta_set(conn, "fraud_seed_version", &seed.version.to_string())?;
            }
            for (entry, kind) in &whitelist {
                fraud::add_whitelist(conn, entry, kind, "FRAUD_WHITELIST", now)?;
            }
            Ok(())
        })
    }

    /// The lists the engine reads.
    pub fn load_fraud_lists(&self) -> StoreFuture<FraudListRows> {
        use crate::db::models::fraud;
        self.read(|conn| {
            Ok(FraudListRows {
                asns: fraud::asn_blocklist(conn)?
                    .into_iter()
                    .filter_map(|r| Some((u32::try_from(r.asn).ok()?, r.org, r.category)))
                    .collect(),
                irsf_prefixes: fraud::irsf_prefixes(conn)?
                    .into_iter()
                    .map(|r| (r.prefix, r.note))
                    .collect(),
                whitelist: fraud::whitelist(conn)?
                    .into_iter()
                    .map(|r| (r.entry, r.kind))
                    .collect(),
            })
        })
    }

    /// The engine's last snapshot (JSON), if any.
    pub fn load_fraud_state(&self) -> StoreFuture<Option<String>> {
        self.read(crate::db::models::fraud::load_state)
    }

    /// Replaces the engine's snapshot.
    pub fn save_fraud_state(&self, snapshot: String, now: i64) -> StoreFuture<()> {
        self.write(move |conn, _| {
            crate::db::models::fraud::save_state(conn, &snapshot, now)?;
            Ok(())
        })
    }
}
