//! `otp_events`: every channel, feedback and expiry event of a request, in order.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::db::schema::otp_events;

/// An event row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = otp_events)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
pub struct EventRow {
    pub id: i64,
    pub request_id: String,
    pub channel: String,
    pub event_type: String,
    pub metadata: String,
    pub internal: String,
    pub status_after: String,
    pub created_at: i64,
}

/// Insert form.
#[derive(Debug, Insertable)]
#[diesel(table_name = otp_events)]
pub struct EventInsertForm<'a> {
    pub request_id: &'a str,
    pub channel: &'a str,
    pub event_type: &'a str,
    pub metadata: &'a str,
    pub internal: &'a str,
    pub status_after: &'a str,
    pub created_at: i64,
}

pub fn insert(conn: &mut SqliteConnection, form: &EventInsertForm<'_>) -> QueryResult<i64> {
    diesel::insert_into(otp_events::table)
        .values(form)
        .returning(otp_events::id)
        .get_result(conn)
}

pub fn list_by_request(
    conn: &mut SqliteConnection,
    request_id: &str,
) -> QueryResult<Vec<EventRow>> {
    otp_events::table
        .filter(otp_events::request_id.eq(request_id))
        .order(otp_events::id.asc())
        .select(EventRow::as_select())
        .load(conn)
}
