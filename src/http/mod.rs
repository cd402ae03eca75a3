//! The API listener (SPEC §4): routes assembled in [`configure`], JSON errors for everything
//! including unknown routes and wrong methods.

pub mod api;
pub mod extract;

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::{web, HttpResponse};

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
}

/// Registers every API route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/dispatch").route(web::post().to(api::dispatch::post_dispatch)))
        .service(resource("/send-otp").route(web::post().to(api::dispatch::post_send_otp)))
        .service(resource("/requests/{id}").route(web::get().to(api::requests::get_request)))
        .service(resource("/health").route(web::get().to(api::health::get_health)))
        .service(resource("/webhooks/auth").route(web::post().to(api::feedback::post_feedback)))
        .service(resource("/webhooks/dlr").route(web::post().to(api::dlr::post_dlr)))
        .default_service(web::to(not_found));
}

/// A resource whose other methods answer 405 JSON.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound("Endpoint not found".into()))
}

async fn method_not_allowed() -> Result<HttpResponse, AppError> {
    Err(AppError::MethodNotAllowed)
}
