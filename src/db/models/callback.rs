//! `provider_callbacks`: DIDWW callbacks as received; the unique key makes replays no-ops.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use crate::db::schema::provider_callbacks;

/// Insert form.
#[derive(Debug, Insertable)]
#[diesel(table_name = provider_callbacks)]
pub struct CallbackInsertForm<'a> {
    pub provider_id: &'a str,
    pub kind: &'a str,
    pub status: &'a str,
    pub request_id: Option<&'a str>,
    pub body: &'a str,
    pub received_at: i64,
}

/// Stores the callback; returns false when the same (id, kind, status) was already stored.
pub fn insert_if_new(
    conn: &mut SqliteConnection,
    form: &CallbackInsertForm<'_>,
) -> QueryResult<bool> {
    let inserted = diesel::insert_or_ignore_into(provider_callbacks::table)
        .values(form)
        .execute(conn)?;
    Ok(inserted == 1)
}
