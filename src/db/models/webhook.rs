//! `webhook_outbox` and `webhook_attempts`: the persistent client webhook queue and its delivery log.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::db::schema::{webhook_attempts, webhook_outbox};

/// An outbox row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_outbox)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct OutboxRow {
    pub id: i64,
    pub request_id: String,
    pub event_id: i64,
    pub webhook_id: String,
    pub url: String,
    pub event: String,
    pub body: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Outbox insert form.
#[derive(Debug, Insertable)]
#[diesel(table_name = webhook_outbox)]
pub struct OutboxInsertForm<'a> {
    pub request_id: &'a str,
    pub event_id: i64,
    pub webhook_id: &'a str,
    pub url: &'a str,
    pub event: &'a str,
    pub body: &'a str,
    pub state: &'a str,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An attempt row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_attempts)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct AttemptRow {
    pub id: i64,
    pub outbox_id: i64,
    pub request_id: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub outcome: String,
    pub created_at: i64,
}

/// Attempt insert form.
#[derive(Debug, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct AttemptInsertForm<'a> {
    pub outbox_id: i64,
    pub request_id: &'a str,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<&'a str>,
    pub duration_ms: i64,
    pub outcome: &'a str,
    pub created_at: i64,
}

pub fn insert_outbox(conn: &mut SqliteConnection, form: &OutboxInsertForm<'_>) -> QueryResult<i64> {
    diesel::insert_into(webhook_outbox::table)
        .values(form)
        .returning(webhook_outbox::id)
        .get_result(conn)
}

pub fn list_pending(conn: &mut SqliteConnection) -> QueryResult<Vec<OutboxRow>> {
    webhook_outbox::table
        .filter(webhook_outbox::state.eq("pending"))
        .order(webhook_outbox::id.asc())
        .select(OutboxRow::as_select())
        .load(conn)
}

pub fn insert_attempt(
    conn: &mut SqliteConnection,
    form: &AttemptInsertForm<'_>,
) -> QueryResult<usize> {
    diesel::insert_into(webhook_attempts::table)
        .values(form)
        .execute(conn)
}

pub fn update_outbox_state(
    conn: &mut SqliteConnection,
    id: i64,
    state: &str,
    attempts: i32,
    next_attempt_at: i64,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(webhook_outbox::table.find(id))
        .set((
            webhook_outbox::state.eq(state),
            webhook_outbox::attempts.eq(attempts),
            webhook_outbox::next_attempt_at.eq(next_attempt_at),
            webhook_outbox::updated_at.eq(now),
        ))
        .execute(conn)
}

pub fn list_attempts_by_request(
    conn: &mut SqliteConnection,
    request_id: &str,
) -> QueryResult<Vec<AttemptRow>> {
    webhook_attempts::table
        .filter(webhook_attempts::request_id.eq(request_id))
        .order(webhook_attempts::id.asc())
        .select(AttemptRow::as_select())
        .load(conn)
}

pub fn list_outbox_by_request(
    conn: &mut SqliteConnection,
    request_id: &str,
) -> QueryResult<Vec<OutboxRow>> {
    webhook_outbox::table
        .filter(webhook_outbox::request_id.eq(request_id))
        .order(webhook_outbox::id.asc())
        .select(OutboxRow::as_select())
        .load(conn)
}
