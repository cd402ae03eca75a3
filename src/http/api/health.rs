//! `GET /health` (no auth): database liveness, SIP trunk reachability (from the keepalive
//! OPTIONS), mode, channel states, uptime, version. 503 when the database or the trunk is down.

use actix_web::{web, HttpResponse};
use serde_json::json;

use actors::sip::transport::TrunkState;
use actors::store::Store;

use crate::http::ApiState;

/// `GET /health`: 200 when healthy, 503 when degraded.
pub async fn get_health(state: web::Data<ApiState>) -> HttpResponse {
    // A read proves the file is there; a no-op through the writer proves writes still commit.
    let database_ok =
        state.store.ping().await.is_ok() && state.store.writer_barrier().await.is_ok();
    let sip = state.sip_health.as_ref().map(|h| h.state());
    // Only a confirmed failure degrades: right after start the first keepalive is still out.
    let sip_ok = sip != Some(TrunkState::Unreachable);
    let healthy = database_ok && sip_ok;
    let body = json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "mode": state.config.mode.as_str(),
        "database": if database_ok { "connected" } else { "unavailable" },
        "sip": sip.map_or("disabled", TrunkState::as_str),
        "sms": if state.sms_enabled { "enabled" } else { "disabled" },
        "uptime": state.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
