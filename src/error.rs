//! The one API error type: every failure leaves the gateway as JSON
//! `{"error": "<stable_snake_case_code>", "message": "<text>"}` (SPEC §4), plus `field` when a request
//! field is at fault. 5xx bodies never echo internals.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Result of an HTTP handler.
pub type AppResult<T> = Result<T, AppError>;

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Missing or wrong API secret (or inbound webhook token).
    #[error("Invalid API secret")]
    Forbidden,
    /// Missing or wrong inbound webhook token.
    #[error("Invalid webhook token")]
    ForbiddenWebhook,
    /// The body is not valid JSON.
    #[error("Request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is larger than allowed.
    #[error("Request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// Wrong `Content-Type`.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// No such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// A field is missing or invalid.
    #[error("{message}")]
    InvalidRequest {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The phone number is not a valid, routable E.164 number.
    #[error("{0}")]
    InvalidPhone(String),
    /// None of the requested channels is configured.
    #[error("{0}")]
    ChannelUnavailable(String),
    /// The per-phone limits of the fraud engine; retry after this many seconds.
    #[error("Too many codes sent to this number; try again in {0} s")]
    RateLimited(u64),
    /// `FRAUD_ALLOWED_COUNTRIES` excludes the destination's country.
    #[error("Destination country {0} is not allowed")]
    CountryNotAllowed(String),
    /// A DIDWW callback body could not be understood.
    #[error("{0}")]
    InvalidCallback(String),
    /// Storage is failing or the gateway is shutting down; try again.
    #[error("Service temporarily unavailable")]
    Unavailable,
    /// A bug; details are in the log.
    #[error("Internal error")]
    Internal,
}

impl AppError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Forbidden | AppError::ForbiddenWebhook => "forbidden",
            AppError::InvalidJson(_) => "invalid_json",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::InvalidRequest { .. } => "invalid_request",
            AppError::InvalidPhone(_) => "invalid_phone",
            AppError::ChannelUnavailable(_) => "channel_unavailable",
            AppError::RateLimited(_) => "rate_limited",
            AppError::CountryNotAllowed(_) => "country_not_allowed",
            AppError::InvalidCallback(_) => "invalid_callback",
            AppError::Unavailable => "service_unavailable",
            AppError::Internal => "internal_error",
        }
    }

    /// Shorthand for a field error.
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        AppError::InvalidRequest {
            field,
            message: message.into(),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Forbidden | AppError::ForbiddenWebhook => StatusCode::FORBIDDEN,
            AppError::InvalidJson(_)
            | AppError::InvalidRequest { .. }
            | AppError::InvalidPhone(_)
            | AppError::InvalidCallback(_) => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::ChannelUnavailable(_) | AppError::CountryNotAllowed(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let AppError::InvalidRequest { field, .. } = self {
            body["field"] = json!(field);
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            AppError::Unavailable => {
                response.insert_header(("Retry-After", "5"));
            }
            AppError::RateLimited(secs) => {
                response.insert_header(("Retry-After", secs.max(&1).to_string()));
            }
            _ => {}
        }
        response.json(body)
    }
}

impl From<actors::store::StoreError> for AppError {
    fn from(err: actors::store::StoreError) -> Self {
        match err {
            actors::store::StoreError::UnknownRequest => {
                AppError::NotFound("Unknown request_id".into())
            }
            actors::store::StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "storage unavailable");
                AppError::Unavailable
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(err: AppError) -> (u16, serde_json::Value) {
        let response = err.error_response();
        let status = response.status().as_u16();
        let bytes = response.into_body().try_into_bytes().unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn forbidden_json_is_pinned() {
        let (status, body) = body_of(AppError::Forbidden);
        assert_eq!(status, 403);
        assert_eq!(
            body,
            json!({"error": "forbidden", "message": "Invalid API secret"})
        );
    }

    #[test]
    fn fraud_refusals_have_stable_codes_and_retry_after() {
        let response = AppError::RateLimited(42).error_response();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("42")
        );
        let (status, body) = body_of(AppError::RateLimited(42));
        assert_eq!(
            (status, body["error"].as_str()),
            (429, Some("rate_limited"))
        );
        let (status, body) = body_of(AppError::CountryNotAllowed("NG".into()));
        assert_eq!(
            (status, body["error"].as_str()),
            (422, Some("country_not_allowed"))
        );
    }

    #[test]
    fn field_errors_name_the_field_and_5xx_hide_internals() {
        let (status, body) = body_of(AppError::field("code", "code must be 4-8 digits"));
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["field"], "code");
        let (status, body) = body_of(AppError::from(actors::store::StoreError::Unavailable(
            "disk I/O error at /data".into(),
        )));
        assert_eq!(status, 503);
        assert!(!body.to_string().contains("/data"));
    }
}
