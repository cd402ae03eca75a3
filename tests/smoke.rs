//! End-to-end smoke test: /dispatch → sandbox SMS → callbacks → delivered, with a signed webhook per
//! event, in order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use actors::{EventType, Status};
use common::hooks::HookReceiver;
use common::{TestGateway, PATIENCE, PHONE};
use serde_json::json;

#[actix_web::test]
async fn sms_dispatch_ends_delivered_with_ordered_signed_webhooks() {
    let mut gw = TestGateway::start().await;
    let hooks = HookReceiver::start();
    let id = gw
        .dispatch_sms(
            PHONE,
            json!({"webhook_url": hooks.url(), "session_id": "s-1"}),
        )
        .await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    assert_eq!(
        gw.events.history(id),
        vec![
            (EventType::Sending, Status::Sending),
            (EventType::Sent, Status::Sent),
            (EventType::Delivered, Status::Delivered)
        ]
    );
    let got = hooks.wait_until(PATIENCE, |h| h.len() == 3).await;
    let events: Vec<&str> = got.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(events, ["otp.sending", "otp.sent", "otp.delivered"]);
    for hook in &got {
        let ts: i64 = hook.timestamp.parse().unwrap();
        assert!(actors::webhook::signature::verify(
            common::SECRET.as_bytes(),
            ts,
            &hook.raw_body,
            &hook.signature
        ));
        assert_eq!(hook.body["session_id"], "s-1");
        assert_eq!(hook.body["request_id"], id.to_string());
    }
    let (status, view) = gw.request_view(id).await;
    assert_eq!(status, 200);
    assert_eq!(view["status"], "delivered");
}
