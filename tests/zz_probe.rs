#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use actors::EventType;
use common::hooks::HookReceiver;
use common::{TestGateway, PATIENCE, PHONE};
use otp_gateway::sandbox::sms::SmsBehaviour;
use serde_json::json;

#[actix_web::test]
async fn probe() {
    let mut gw = TestGateway::start_with(|c| c.fraud.enabled = false).await;
    gw.sms().set_default_behaviour(SmsBehaviour::ApiError { status: 400 });
    let hooks = HookReceiver::start();
    let mut ids = vec![];
    for _ in 0..60 {
        let id = gw.dispatch_sms(PHONE, json!({"webhook_url": hooks.url()})).await;
        gw.events.wait_for(id, EventType::Failed).await;
        ids.push(id);
    }
    let got = hooks.wait_until(PATIENCE, |h| h.len() >= 120).await;
    let mut bad = 0;
    for id in ids {
        let evs: Vec<&str> = got.iter().filter(|h| h.request_id == id.to_string()).map(|h| h.event.as_str()).collect();
        if evs != ["otp.sending", "otp.failed"] { bad += 1; eprintln!("{id}: {evs:?}"); }
    }
    eprintln!("bad = {bad}");
}
