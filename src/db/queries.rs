//! Read-side queries for the HTTP API (request views).

use diesel::sqlite::SqliteConnection;
use diesel::QueryResult;

use super::models::{event, request};

/// A request with its events, for `GET /requests/{id}`.
pub struct RequestView {
    pub request: request::RequestRow,
    pub events: Vec<event::EventRow>,
}

/// Loads a request and its events.
pub fn request_view(conn: &mut SqliteConnection, id: &str) -> QueryResult<Option<RequestView>> {
    let Some(row) = request::find_by_id(conn, id)? else {
        return Ok(None);
    };
    let events = event::list_by_request(conn, id)?;
    Ok(Some(RequestView {
        request: row,
        events,
    }))
}
