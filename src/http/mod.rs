//! The API listener (SPEC §4): routes assembled in [`configure`], JSON errors for everything
//! including unknown routes and wrong methods.

pub mod api;
pub mod extract;

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::http::header;
use actix_web::{web, HttpResponse, ResponseError};

use actors::dispatcher::Dispatcher;

use crate::config::Config;
use crate::db::DbStore;
use crate::error::AppError;

/// Largest accepted request body (SPEC §4).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared state of the API handlers.
pub struct ApiState {
    /// Configuration.
    pub config: Arc<Config>,
    /// Admission.
    pub dispatcher: Addr<Dispatcher>,
    /// Read-side queries.
    pub store: DbStore,
    /// Process start, for `uptime`.
    pub started: Instant,
    /// Whether the SMS channel is wired.
    pub sms_enabled: bool,
    /// Trunk reachability, when the voice channel is wired.
    pub sip_health: Option<actors::sip::transport::SipHealth>,
    /// The simulated SIP trunk, in sandbox mode (its control routes).
    pub sandbox_trunk: Option<std::sync::Arc<crate::sandbox::sip::SandboxTrunk>>,
}

/// Registers every API route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/dispatch", "POST").route(web::post().to(api::dispatch::post_dispatch)))
        .service(resource("/send-otp", "POST").route(web::post().to(api::dispatch::post_send_otp)))
        .service(
            resource("/requests/{id}", "GET, HEAD")
                .route(web::get().to(api::requests::get_request))
                .route(web::head().to(api::requests::get_request)),
        )
        .service(
            resource("/health", "GET, HEAD")
                .route(web::get().to(api::health::get_health))
                .route(web::head().to(api::health::get_health)),
        )
        .service(
            resource("/webhooks/auth", "POST").route(web::post().to(api::feedback::post_feedback)),
        )
        .service(resource("/webhooks/dlr", "POST").route(web::post().to(api::dlr::post_dlr)))
        .service(
            resource("/sandbox/voice/behaviours", "GET, POST, DELETE")
                .route(web::get().to(api::sandbox_voice::get_behaviours))
                .route(web::post().to(api::sandbox_voice::post_behaviours))
                .route(web::delete().to(api::sandbox_voice::delete_behaviours)),
        )
        .service(
            resource("/sandbox/voice/calls", "GET")
                .route(web::get().to(api::sandbox_voice::get_calls)),
        )
        .default_service(web::to(not_found));
}

/// A resource whose other methods answer 405 JSON with the `Allow` header HTTP requires
/// (RFC 9110 §15.5.6).
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        let mut response = AppError::MethodNotAllowed.error_response();
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        response
    }))
}

async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound("Endpoint not found".into()))
}
