//! `POST /webhooks/auth`: the client's own code check result (SPEC §4, §5).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use actors::dispatcher::Feedback;
use actors::RequestId;

use crate::error::{AppError, AppResult};
use crate::http::extract::{json_object, require_api_secret};
use crate::http::ApiState;

/// `POST /webhooks/auth` `{"request_id", "success"}`.
pub async fn post_feedback(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> AppResult<HttpResponse> {
    let mut body = json_object(payload, &req).await?;
    require_api_secret(&req, Some(&mut body), &state.config.api_secret)?;
    let request_id = match body.get("request_id") {
        Some(Value::String(s)) => RequestId::parse(s)
            .ok_or_else(|| AppError::field("request_id", "request_id must be a UUID"))?,
        None | Some(Value::Null) => {
            return Err(AppError::field("request_id", "request_id is required"))
        }
        Some(_) => return Err(AppError::field("request_id", "request_id must be a string")),
    };
    let success = match body.get("success") {
        Some(Value::Bool(b)) => *b,
        None | Some(Value::Null) => return Err(AppError::field("success", "success is required")),
        Some(_) => return Err(AppError::field("success", "success must be true or false")),
    };
    let recorded = state
        .dispatcher
        .send(Feedback {
            request_id,
            success,
        })
        .await
        .map_err(|_| AppError::Unavailable)??;
    Ok(HttpResponse::Ok().json(json!({
        "status": "received",
        "request_id": request_id,
        "request_status": recorded.status,
    })))
}
