//! `GET /requests/{id}`: a request's status and event history (SPEC §4).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use actors::RequestId;

use crate::db::{queries, store::metadata_of};
use crate::error::{AppError, AppResult};
use crate::http::extract::require_api_secret;
use crate::http::ApiState;

/// `GET /requests/{id}` (API secret in `X-API-Secret`).
pub async fn get_request(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> AppResult<HttpResponse> {
    require_api_secret(&req, None, &state.config.api_secret)?;
    let not_found = || AppError::NotFound("Unknown request_id".into());
    let id = RequestId::parse(&path.into_inner()).ok_or_else(not_found)?;
    let key = id.to_string();
    let view = state
        .store
        .read(move |conn| queries::request_view(conn, &key))
        .await?
        .ok_or_else(not_found)?;
    let r = &view.request;
    let events: Vec<Value> = view
        .events
        .iter()
        .map(|e| {
            json!({
                "channel": e.channel,
                "event_type": e.event_type,
                "timestamp": e.created_at,
                "metadata": Value::Object(metadata_of(&e.metadata)),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "request_id": r.id,
        "status": r.status,
        "channel": r.channel,
        "channel_status": r.channel_status,
        "phone": r.phone,
        "session_id": r.session_id,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "expires_at": r.expires_at,
        "events": events,
    })))
}
