//! `POST /dispatch` and the legacy `POST /send-otp` (SPEC §4).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use actors::dispatcher::{Dispatch, DispatchError, DispatchOrder};
use actors::Channel;

use crate::error::{AppError, AppResult};
use crate::http::api::validate;
use crate::http::extract::{client_ip, json_object, require_api_secret};
use crate::http::ApiState;

/// `POST /dispatch`.
pub async fn post_dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> AppResult<HttpResponse> {
    dispatch(req, payload, state, None).await
}

/// `POST /send-otp`: `/dispatch` with channels forced to voice, marked deprecated.
pub async fn post_send_otp(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let mut response = match dispatch(req, payload, state, Some(vec![Channel::Voice])).await {
        Ok(response) => response,
        Err(err) => actix_web::ResponseError::error_response(&err),
    };
    let headers = response.headers_mut();
    headers.insert(
        actix_web::http::header::HeaderName::from_static("deprecation"),
        actix_web::http::header::HeaderValue::from_static("true"),
    );
    headers.insert(
        actix_web::http::header::LINK,
        actix_web::http::header::HeaderValue::from_static("</dispatch>; rel=\"successor-version\""),
    );
    response
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
    forced_channels: Option<Vec<Channel>>,
) -> AppResult<HttpResponse> {
    let mut body = json_object(payload, &req).await?;
    require_api_secret(&req, Some(&mut body), &state.config.api_secret)?;
    if forced_channels.is_some() {
        // `/send-otp` replaces whatever channels the client sent; they are not validated.
        body.remove("channels");
    }
    let input = validate::dispatch_input(&body)?;
    let requested = forced_channels
        .or(input.channels)
        .unwrap_or_else(|| state.config.channels.default.clone());
    let plan: Vec<Channel> = requested
        .iter()
        .copied()
        .filter(|c| channel_configured(&state, *c))
        .collect();
    if plan.is_empty() {
        let names: Vec<&str> = requested.iter().map(|c| c.as_str()).collect();
        return Err(AppError::ChannelUnavailable(format!(
            "No requested channel is configured ({})",
            names.join(", ")
        )));
    }
    let ip = input
        .ip
        .or_else(|| client_ip(&req, state.config.trust_proxy));
    let order = DispatchOrder {
        phone: input.phone.e164.clone(),
        code: input.code,
        channels_requested: requested,
        plan,
        session_id: input.session_id,
        webhook_url: input.webhook_url,
        client_ip: ip.map(|ip| ip.to_string()),
        max_cost_micros: input.max_cost_micros,
        end_user_ip: input.ip,
        phone_country: input.phone.country.clone(),
        number_kind: input.phone.kind,
    };
    let accepted = state
        .dispatcher
        .send(Dispatch(order))
        .await
        .map_err(|_| AppError::Unavailable)?
        .map_err(|err| match err {
            DispatchError::Storage(err) => AppError::from(err),
            DispatchError::ShuttingDown => AppError::Unavailable,
            DispatchError::RateLimited { retry_after_secs } => {
                AppError::RateLimited(retry_after_secs)
            }
            DispatchError::CountryNotAllowed(country) => AppError::CountryNotAllowed(country),
            DispatchError::Vault => {
                tracing::error!("code could not be sealed");
                AppError::Internal
            }
        })?;
    Ok(HttpResponse::Ok().json(json!({
        "status": "sending",
        "request_id": accepted.request_id,
        "channel": accepted.channel,
        "phone": input.phone.e164,
    })))
}

/// True when the channel can deliver in this process.
fn channel_configured(state: &ApiState, channel: Channel) -> bool {
    match channel {
        Channel::Sms => state.sms_enabled,
        Channel::Voice => state.sip_health.is_some(),
    }
}
