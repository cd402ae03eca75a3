//! Data retention (`DATA_RETENTION_DAYS`): requests older than the retention period are deleted with
//! their events, webhook outbox rows and attempt logs (foreign keys cascade), and so are old carrier
//! callbacks. Runs through the writer in small batches so it never holds the write lock for long.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use actors::store::{StoreError, StoreFuture};

use super::schema::{otp_requests, provider_callbacks};
use super::store::DbStore;
use super::writer::{RequestCache, WriteError};

/// Rows deleted per transaction.
const BATCH: i64 = 2_000;

/// Deletes one batch of rows created before `cutoff_ms`; returns how many requests and callbacks
/// went.
fn purge_batch(
    conn: &mut SqliteConnection,
    cache: &mut RequestCache,
    cutoff_ms: i64,
) -> QueryResult<(usize, usize)> {
    let old_requests: Vec<String> = otp_requests::table
        .filter(otp_requests::created_at.lt(cutoff_ms))
        .select(otp_requests::id)
        .limit(BATCH)
        .load(conn)?;
    let requests =
        diesel::delete(otp_requests::table.filter(otp_requests::id.eq_any(&old_requests)))
            .execute(conn)?;
    // The writer's cache must not remember deleted requests, or an event for one would be written
    // against a missing row and abort the whole batch.
    for id in &old_requests {
        cache.remove(id);
    }
    let old_callbacks: Vec<i64> = provider_callbacks::table
        .filter(provider_callbacks::received_at.lt(cutoff_ms))
        .select(provider_callbacks::id)
        .limit(BATCH)
        .load(conn)?;
    let callbacks = diesel::delete(
        provider_callbacks::table.filter(provider_callbacks::id.eq_any(&old_callbacks)),
    )
    .execute(conn)?;
    Ok((requests, callbacks))
}

impl DbStore {
    /// Deletes everything created before `cutoff_ms`, a batch per transaction; resolves with the
    /// number of requests and callbacks deleted.
    pub fn purge_before(&self, cutoff_ms: i64) -> StoreFuture<(usize, usize)> {
        let store = self.clone();
        Box::pin(async move {
            let mut total = (0, 0);
            loop {
                let (requests, callbacks) = store
                    .write(move |conn, cache| {
                        purge_batch(conn, cache, cutoff_ms).map_err(WriteError::from)
                    })
                    .await?;
                total.0 += requests;
                total.1 += callbacks;
                if requests < BATCH as usize && callbacks < BATCH as usize {
                    return Ok::<_, StoreError>(total);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::store::{NewEvent, NewRequest, Store};
    use actors::{Channel, EventType, RequestId, Status};

    fn request(created_at: i64) -> NewRequest {
        NewRequest {
            id: RequestId::new_random(),
            phone: "+14155552671".into(),
            code_hash: "h".into(),
            code_sealed: vec![1, 2, 3],
            channels_requested: vec![Channel::Sms],
            plan: vec![Channel::Sms],
            session_id: None,
            webhook_url: Some("https://example.com/hook".into()),
            client_ip: None,
            max_cost_micros: None,
            created_at,
            expires_at: created_at + 600_000,
            fraud: None,
        }
    }

    #[actix_rt::test]
    async fn old_requests_go_with_their_events_and_webhooks_recent_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otp.db");
        let (writer, pool) = crate::db::open(&path).unwrap();
        let store = DbStore::new(writer, pool, &path).unwrap();
        let (old, recent) = (request(1_000), request(actors::clock::now_ms()));
        for req in [&old, &recent] {
            store.insert_request(req.clone()).await.unwrap();
            let event = NewEvent::channel_event(
                req.id,
                Channel::Sms,
                0,
                EventType::Sending,
                Some(Status::Sending),
            );
            let recorded = store.record_event(event).await.unwrap();
            assert!(recorded.webhook.is_some());
        }
        let (requests, _) = store
            .purge_before(actors::clock::now_ms() - 86_400_000)
            .await
            .unwrap();
        assert_eq!(requests, 1);
        let count = |table: &'static str| {
            let path = path.clone();
            move || -> i64 {
                use diesel::connection::SimpleConnection;
                let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
                conn.batch_execute("PRAGMA foreign_keys = ON").unwrap();
                #[derive(QueryableByName)]
                struct Count {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                    .get_result::<Count>(&mut conn)
                    .unwrap()
                    .n
            }
        };
        assert_eq!(count("otp_requests")(), 1);
        assert_eq!(
            count("otp_events")(),
            1,
            "the old request's events are gone"
        );
        assert_eq!(
            count("webhook_outbox")(),
            1,
            "the old request's webhooks are gone"
        );
    }
}
