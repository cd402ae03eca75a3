//! `otp_requests`: one row per accepted request.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::db::schema::otp_requests;

/// A full request row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = otp_requests)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct RequestRow {
    pub id: String,
    pub phone: String,
    pub code_hash: String,
    pub code_sealed: Option<Vec<u8>>,
    pub status: String,
    pub channel: Option<String>,
    pub channel_index: Option<i32>,
    pub channel_status: Option<String>,
    pub channels_requested: String,
    pub channel_plan: String,
    pub session_id: Option<String>,
    pub webhook_url: Option<String>,
    pub client_ip: Option<String>,
    pub max_cost_micros: Option<i64>,
    pub provider_id: Option<String>,
    pub accepted_at: Option<i64>,
    pub sms_cost_micros: Option<i64>,
    pub sms_parts: Option<i32>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    /// SIP Call-ID of the latest voice call.
    pub sip_call_id: Option<String>,
    pub fraud_verdict: Option<String>,
    pub fraud_score: Option<i32>,
    pub fraud_enforced: Option<bool>,
    pub fraud_details: Option<String>,
    pub fraud_savings_micros: Option<i64>,
    pub shadow_banned: bool,
}

/// Insert form.
#[derive(Debug, Insertable)]
#[diesel(table_name = otp_requests)]
pub struct RequestInsertForm<'a> {
    pub id: &'a str,
    pub phone: &'a str,
    pub code_hash: &'a str,
    pub code_sealed: Option<&'a [u8]>,
    pub status: &'a str,
    pub channels_requested: &'a str,
    pub channel_plan: &'a str,
    pub session_id: Option<&'a str>,
    pub webhook_url: Option<&'a str>,
    pub client_ip: Option<&'a str>,
    pub max_cost_micros: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    pub fraud_verdict: Option<&'a str>,
    pub fraud_score: Option<i32>,
    pub fraud_enforced: Option<bool>,
    pub fraud_details: Option<&'a str>,
    pub fraud_savings_micros: Option<i64>,
    pub shadow_banned: bool,
}

/// Status/channel update form applied after an event.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = otp_requests)]
pub struct RequestUpdateForm<'a> {
    pub status: &'a str,
    pub channel: Option<&'a str>,
    pub channel_index: Option<i32>,
    pub channel_status: Option<&'a str>,
    pub updated_at: i64,
}

/// Statuses whose delivery is still under way.
pub const UNFINISHED: [&str; 3] = ["pending", "sending", "sent"];
/// Statuses that `expired` can still replace.
pub const EXPIRABLE: [&str; 5] = ["pending", "sending", "sent", "delivered", "rejected"];

pub fn insert(conn: &mut SqliteConnection, form: &RequestInsertForm<'_>) -> QueryResult<usize> {
    diesel::insert_into(otp_requests::table)
        .values(form)
        .execute(conn)
}

pub fn find_by_id(conn: &mut SqliteConnection, id: &str) -> QueryResult<Option<RequestRow>> {
    otp_requests::table
        .find(id)
        .select(RequestRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_provider_id(
    conn: &mut SqliteConnection,
    provider_id: &str,
) -> QueryResult<Option<RequestRow>> {
    otp_requests::table
        .filter(otp_requests::provider_id.eq(provider_id))
        .select(RequestRow::as_select())
        .first(conn)
        .optional()
}

pub fn update_after_event(
    conn: &mut SqliteConnection,
    id: &str,
    form: &RequestUpdateForm<'_>,
    wipe_code: bool,
) -> QueryResult<usize> {
    let target = otp_requests::table.find(id);
    if wipe_code {
        diesel::update(target)
            .set((form, otp_requests::code_sealed.eq(None::<Vec<u8>>)))
            .execute(conn)
    } else {
        diesel::update(target).set(form).execute(conn)
    }
}

pub fn attach_provider_id(
    conn: &mut SqliteConnection,
    id: &str,
    provider_id: &str,
    accepted_at: i64,
) -> QueryResult<usize> {
    diesel::update(otp_requests::table.find(id))
        .set((
            otp_requests::provider_id.eq(provider_id),
            otp_requests::accepted_at.eq(accepted_at),
            otp_requests::updated_at.eq(accepted_at),
        ))
        .execute(conn)
}

/// Records the SIP Call-ID of the request's (latest) voice call.
pub fn attach_call_id(
    conn: &mut SqliteConnection,
    id: &str,
    call_id: &str,
    at: i64,
) -> QueryResult<usize> {
    diesel::update(otp_requests::table.find(id))
        .set((
            otp_requests::sip_call_id.eq(call_id),
            otp_requests::updated_at.eq(at),
        ))
        .execute(conn)
}

pub fn record_sms_cost(
    conn: &mut SqliteConnection,
    id: &str,
    micros: i64,
    parts: i32,
) -> QueryResult<usize> {
    diesel::update(otp_requests::table.find(id))
        .set((
            otp_requests::sms_cost_micros.eq(micros),
            otp_requests::sms_parts.eq(parts),
        ))
        .execute(conn)
}

pub fn list_unfinished(conn: &mut SqliteConnection, now_ms: i64) -> QueryResult<Vec<RequestRow>> {
    otp_requests::table
        .filter(otp_requests::status.eq_any(UNFINISHED))
        .filter(otp_requests::expires_at.gt(now_ms))
        .order(otp_requests::created_at.asc())
        .select(RequestRow::as_select())
        .load(conn)
}

pub fn list_due_expiries(
    conn: &mut SqliteConnection,
    now_ms: i64,
    limit: i64,
) -> QueryResult<Vec<String>> {
    otp_requests::table
        .filter(otp_requests::status.eq_any(EXPIRABLE))
        .filter(otp_requests::expires_at.le(now_ms))
        .order(otp_requests::expires_at.asc())
        .limit(limit)
        .select(otp_requests::id)
        .load(conn)
}
