//! Sandbox only: control of the simulated SIP trunk over the API, so someone trying `--sandbox`
//! with curl can make calls busy, unanswered, rejected or hung up (the SMS half has the same on
//! its own port, `/sandbox/behaviours`). Authenticated with the API secret; 404 in live mode.
//!
//! - `GET /sandbox/voice/behaviours` → `{"default":{..},"destinations":{"<digits>":{..}}}`
//! - `POST /sandbox/voice/behaviours` with `{"destination":"+1…","behaviour":{..}}` and/or
//!   `{"default":{..}}` (behaviour JSON as in `otp_gateway::sandbox::sip::VoiceBehaviour`)
//! - `DELETE /sandbox/voice/behaviours` forgets the per-destination ones
//! - `GET /sandbox/voice/calls` → what the trunk saw per call (no audio)

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::error::{AppError, AppResult};
use crate::http::extract::{json_object, require_api_secret};
use crate::http::ApiState;
use crate::sandbox::sip::{SandboxTrunk, TrunkCall, VoiceBehaviour};

fn trunk(req: &HttpRequest, state: &ApiState) -> AppResult<Arc<SandboxTrunk>> {
    require_api_secret(req, None, &state.config.api_secret)?;
    state
        .sandbox_trunk
        .clone()
        .ok_or_else(|| AppError::NotFound("Not found".into()))
}

fn behaviours(trunk: &SandboxTrunk) -> HttpResponse {
    let (default, destinations) = trunk.behaviours();
    HttpResponse::Ok().json(json!({"default": default, "destinations": destinations}))
}

/// `GET /sandbox/voice/behaviours`.
pub async fn get_behaviours(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> AppResult<HttpResponse> {
    let trunk = trunk(&req, &state)?;
    Ok(behaviours(&trunk))
}

/// `DELETE /sandbox/voice/behaviours`.
pub async fn delete_behaviours(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> AppResult<HttpResponse> {
    let trunk = trunk(&req, &state)?;
    trunk.clear_behaviours();
    Ok(behaviours(&trunk))
}

fn behaviour(
    body: &serde_json::Map<String, Value>,
    field: &'static str,
) -> AppResult<Option<VoiceBehaviour>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| AppError::field(field, format!("{field}: {e}"))),
    }
}

/// `POST /sandbox/voice/behaviours`.
pub async fn post_behaviours(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> AppResult<HttpResponse> {
    let trunk = trunk(&req, &state)?;
    let body = json_object(payload, &req).await?;
    let per_number = behaviour(&body, "behaviour")?;
    let default = behaviour(&body, "default")?;
    let destination = match body.get("destination") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => {
            let digits = d.trim().trim_start_matches('+');
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AppError::field(
                    "destination",
                    "destination must be an E.164 number",
                ));
            }
            Some(digits.to_owned())
        }
        Some(_) => {
            return Err(AppError::field(
                "destination",
                "destination must be a string",
            ))
        }
    };
    match (destination, per_number, &default) {
        (Some(destination), Some(b), _) => trunk.set_behaviour(&destination, b),
        (Some(_), None, _) => {
            return Err(AppError::field(
                "behaviour",
                "behaviour is required with destination",
            ))
        }
        (None, Some(_), _) => {
            return Err(AppError::field(
                "destination",
                "destination is required with behaviour",
            ))
        }
        (None, None, None) => {
            return Err(AppError::field(
                "default",
                "give destination + behaviour, or default",
            ))
        }
        (None, None, Some(_)) => {}
    }
    if let Some(default) = default {
        trunk.set_default_behaviour(default);
    }
    Ok(behaviours(&trunk))
}

fn summary(call: &TrunkCall) -> Value {
    json!({
        "call_id": call.call_id,
        "destination": call.destination,
        "caller_id": call.from_user,
        "authorized": call.authorized,
        "final_status": call.final_status,
        "ended_by": call.ended_by.map(|e| format!("{e:?}").to_lowercase()),
        "codec": call.codec.map(|c| c.encoding_name()),
        "rtp_packets_received": call.rtp.len(),
        "rtp_packets_lost": call.rtp_lost,
        "ladder": call.sip.iter().map(|e| format!("{:?} {}", e.direction, e.first_line)).collect::<Vec<_>>(),
    })
}

/// `GET /sandbox/voice/calls`.
pub async fn get_calls(req: HttpRequest, state: web::Data<ApiState>) -> AppResult<HttpResponse> {
    let trunk = trunk(&req, &state)?;
    let calls: Vec<Value> = trunk.calls().iter().map(summary).collect();
    Ok(HttpResponse::Ok().json(json!({"calls": calls})))
}
