//! `POST /webhooks/dlr`: DIDWW SMS processing callbacks and delivery receipts (SPEC §4, wire formats
//! §2). Authenticated by `WEBHOOK_INBOUND_SECRET` (`?token=` or `X-Webhook-Token`) when set.
//! Answers 2xx only once the callback's effect is stored; a body it cannot parse is logged and
//! refused without touching any state; a replay changes nothing.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use actors::didww_sms;
use actors::dispatcher::{CallbackAck, SmsCallbackReceived};

use crate::config::Secret;
use crate::error::{AppError, AppResult};
use crate::http::extract::read_body;
use crate::http::{ApiState, MAX_BODY_BYTES};

/// Checks the inbound token when one is configured.
pub fn check_inbound_token(req: &HttpRequest, secret: Option<&Secret>) -> AppResult<()> {
    let Some(secret) = secret else {
        tracing::warn!(path = %req.path(), "inbound DIDWW callback accepted without authentication (WEBHOOK_INBOUND_SECRET is unset)");
        return Ok(());
    };
    let header = req
        .headers()
        .get("x-webhook-token")
        .map(|v| v.as_bytes().to_vec());
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("token").map(|t| t.as_bytes().to_vec()));
    match header.or(query) {
        Some(token) if secret.matches(&token) => Ok(()),
        _ => {
            tracing::warn!(path = %req.path(), "inbound callback with a missing or wrong token");
            Err(AppError::ForbiddenWebhook)
        }
    }
}

/// `POST /webhooks/dlr`.
pub async fn post_dlr(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> AppResult<HttpResponse> {
    check_inbound_token(&req, state.config.webhooks.inbound_secret.as_ref())?;
    let body = read_body(payload, &req, MAX_BODY_BYTES).await?;
    let callback = didww_sms::parse_callback(&body).map_err(|err| {
        tracing::warn!(error = %err, bytes = body.len(), "unparseable DIDWW SMS callback ignored");
        AppError::InvalidCallback(format!("Unrecognised DIDWW callback: {err}"))
    })?;
    let message_id = callback.provider_id.to_string();
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let ack = state
        .dispatcher
        .send(SmsCallbackReceived { callback, raw_body })
        .await
        .map_err(|_| AppError::Unavailable)??;
    let body = match ack {
        CallbackAck::Recorded(_) => json!({"status": "received", "message_id": message_id}),
        CallbackAck::Duplicate(_) => json!({"status": "duplicate", "message_id": message_id}),
        CallbackAck::UnknownMessage => {
            json!({"status": "acknowledged", "message": "unknown message", "message_id": message_id})
        }
    };
    Ok(HttpResponse::Ok().json(body))
}
