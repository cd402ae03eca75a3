//! The request status machine of SPEC §5 on a real gateway: monotonic delivery status with late and
//! out-of-order callbacks, `SMS_DELIVERY_TIMEOUT_SECS` with a single channel, `OTP_TTL_SECS`
//! expiry, and client feedback (`/webhooks/auth`). Failover across channels needs voice; its status
//! rule is unit-tested in `actors/src/status.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use actors::{EventType, RequestId, Status};
use common::{
    event_types, live, message_id, read_json, start, with_id, TestGateway, PATIENCE, PHONE,
};
use otp_gateway::sandbox::sms::SmsBehaviour;
use serde_json::{json, Value};

const SUCCESS: &str = include_str!("fixtures/didww/dlr-success-processing.json");
const DELIVERED: &str = include_str!("fixtures/didww/dlr-delivered.json");
const ROUTING_ERROR: &str = include_str!("fixtures/didww/dlr-failed-routing-error.json");
const INSUFFICIENT_BALANCE: &str =
    include_str!("fixtures/didww/dlr-failed-insufficient-balance.json");
const EXPIRED: &str = include_str!("fixtures/didww/dlr-undelivered-expired.json");

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A DLR (`dlr_event`) with this status.
fn dlr(id: &str, status: &str) -> String {
    json!({"data": {"id": id, "type": "dlr_event", "attributes": {"status": status}}}).to_string()
}

/// Posts a callback and returns the answer's `status` field, asserting 200.
async fn callback(gw: &TestGateway, body: &str) -> String {
    let (status, answer) = gw.post_callback(body, None).await;
    assert_eq!(status, 200, "{answer}");
    answer["status"].as_str().unwrap().to_owned()
}

/// `POST /webhooks/auth`; returns HTTP status and body.
async fn feedback(gw: &TestGateway, id: RequestId, success: bool) -> (u16, Value) {
    gw.post(
        "/webhooks/auth",
        json!({"request_id": id.to_string(), "success": success}),
    )
    .await
}

/// Feedback that must be accepted; returns the request status it reports.
async fn feedback_ok(gw: &TestGateway, id: RequestId, success: bool) -> String {
    let (status, body) = feedback(gw, id, success).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request_id"], id.to_string());
    body["request_status"].as_str().unwrap().to_owned()
}

/// Waits until no request actor is alive, polling the dispatcher.
async fn wait_idle(gw: &TestGateway) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if live(gw).await == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "request actors still alive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A NoDlr request at `sent`, with the sandbox's own Success answered.
async fn at_sent(gw: &mut TestGateway, n: usize) -> (RequestId, String) {
    gw.sms().set_default_behaviour(SmsBehaviour::NoDlr);
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    let msg = message_id(gw, n).await;
    gw.events.wait_for(id, EventType::Sent).await;
    gw.sms().wait_for_callbacks(n, PATIENCE).await;
    (id, msg)
}

// ---------------------------------------------------------------------------------------------
// Monotonic status
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn late_callbacks_after_delivered_are_recorded_but_never_move_status_back() {
    let mut gw = start(|_| {}).await;
    let (id, msg) = at_sent(&mut gw, 1).await;
    assert_eq!(callback(&gw, &with_id(DELIVERED, &msg)).await, "received");
    gw.events.wait_for_status(id, Status::Delivered).await;
    wait_idle(&gw).await;

    // Late, contradicting callbacks: each is new (recorded), none moves the status.
    for (body, event) in [
        (dlr(&msg, "EXPIRED"), EventType::Undelivered),
        (with_id(INSUFFICIENT_BALANCE, &msg), EventType::Failed),
        (dlr(&msg, "FAILED"), EventType::Undelivered),
    ] {
        assert_eq!(callback(&gw, &body).await, "received", "{body}");
        let recorded = gw.events.wait_for(id, event).await;
        assert_eq!(recorded.status, Status::Delivered, "{body}");
        assert!(!recorded.status_changed, "{body}");
    }
    // A replayed processing Success is a duplicate.
    assert_eq!(callback(&gw, &with_id(SUCCESS, &msg)).await, "duplicate");

    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "delivered", "{view}");
    assert_eq!(
        event_types(&view),
        [
            "sending",
            "sent",
            "delivered",
            "undelivered",
            "failed",
            "undelivered"
        ]
    );
}

#[actix_web::test]
async fn late_callbacks_do_not_move_channel_status_back() {
    // `GET /requests/{id}` and every webhook carry `channel_status`; a late failure of a delivered
    // SMS must not make it read `undelivered` next to `"status":"delivered"`.
    let mut gw = start(|_| {}).await;
    let (id, msg) = at_sent(&mut gw, 1).await;
    assert_eq!(callback(&gw, &with_id(DELIVERED, &msg)).await, "received");
    gw.events.wait_for_status(id, Status::Delivered).await;
    wait_idle(&gw).await;
    assert_eq!(callback(&gw, &with_id(EXPIRED, &msg)).await, "received");
    let late = gw.events.wait_for(id, EventType::Undelivered).await;
    assert_eq!(late.status, Status::Delivered);
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "delivered", "{view}");
    assert_eq!(view["channel_status"], "delivered", "{view}");
    assert_eq!(late.channel_status, Some(EventType::Delivered));
}

#[actix_web::test]
async fn out_of_order_success_after_delivered_keeps_delivered() {
    // The DLR overtakes the processing callback: DELIVERED is posted before the sandbox's Success
    // can land; whatever the order, the request ends delivered and both events are recorded.
    let mut gw = start(|_| {}).await;
    gw.sms().set_default_behaviour(SmsBehaviour::NoDlr);
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    let msg = message_id(&gw, 1).await;
    assert_eq!(callback(&gw, &with_id(DELIVERED, &msg)).await, "received");
    let delivered = gw.events.wait_for(id, EventType::Delivered).await;
    assert_eq!(delivered.status, Status::Delivered);
    let sent = gw.events.wait_for(id, EventType::Sent).await;
    if sent.event_id > delivered.event_id {
        assert_eq!(
            sent.status,
            Status::Delivered,
            "a late Success moved the status back"
        );
    }
    let callbacks = gw.sms().wait_for_callbacks(1, PATIENCE).await;
    assert!(callbacks[0].accepted(), "{callbacks:?}");
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "delivered", "{view}");
    let types = event_types(&view);
    assert_eq!(types.iter().filter(|t| *t == "sent").count(), 1, "{view}");
    assert_eq!(types.iter().filter(|t| *t == "delivered").count(), 1);
}

#[actix_web::test]
async fn late_delivery_after_failure_wins_and_later_callbacks_do_not_undo_it() {
    let mut gw = start(|_| {}).await;
    gw.sms()
        .set_default_behaviour(SmsBehaviour::Failed { code_id: 4 });
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    let msg = message_id(&gw, 1).await;
    let failed = gw.events.wait_for(id, EventType::Failed).await;
    assert_eq!(failed.status, Status::Failed);
    wait_idle(&gw).await;

    // The handset got it after all: the truth the user saw wins.
    assert_eq!(callback(&gw, &with_id(DELIVERED, &msg)).await, "received");
    let delivered = gw.events.wait_for(id, EventType::Delivered).await;
    assert_eq!(delivered.status, Status::Delivered);
    // A processing Success never sent before, then failures: recorded, status stays.
    assert_eq!(callback(&gw, &with_id(SUCCESS, &msg)).await, "received");
    let sent = gw.events.wait_for(id, EventType::Sent).await;
    assert_eq!(sent.status, Status::Delivered);
    assert_eq!(
        callback(&gw, &with_id(ROUTING_ERROR, &msg)).await,
        "received"
    );
    assert_eq!(callback(&gw, &dlr(&msg, "EXPIRED")).await, "received");
    gw.events.wait_for(id, EventType::Undelivered).await;

    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "delivered", "{view}");
    assert_eq!(
        event_types(&view),
        [
            "sending",
            "failed",
            "delivered",
            "sent",
            "failed",
            "undelivered"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// SMS_DELIVERY_TIMEOUT with a single channel
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn delivery_timeout_with_a_single_channel_keeps_sent() {
    let mut gw = start(|c| c.sms.delivery_timeout = Duration::from_millis(300)).await;
    let (id, msg) = at_sent(&mut gw, 1).await;
    assert_eq!(live(&gw).await, 1, "the actor waits for the DLR");
    // The timer fires; with nothing to fail over to the actor just finishes.
    wait_idle(&gw).await;
    let view_after = gw.view_ok(id).await;
    assert_eq!(view_after["status"], "sent", "no failure is invented");
    assert_eq!(view_after["channel_status"], "sent");
    assert_eq!(event_types(&view_after), ["sending", "sent"]);

    // A DLR after the timeout is still honoured.
    assert_eq!(callback(&gw, &with_id(DELIVERED, &msg)).await, "received");
    let delivered = gw.events.wait_for(id, EventType::Delivered).await;
    assert_eq!(delivered.status, Status::Delivered);
    assert_eq!(gw.view_ok(id).await["status"], "delivered");
}

// ---------------------------------------------------------------------------------------------
// Expiry (OTP_TTL_SECS)
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn undelivered_request_expires() {
    let mut gw = start(|c| c.otp_ttl = Duration::from_secs(1)).await;
    let (id, _msg) = at_sent(&mut gw, 1).await;
    let expired = gw.events.wait_for(id, EventType::Expired).await;
    assert_eq!(expired.status, Status::Expired);
    assert!(expired.metadata.is_empty(), "{:?}", expired.metadata);
    wait_idle(&gw).await;
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "expired");
    assert_eq!(event_types(&view), ["sending", "sent", "expired"]);
}

#[actix_web::test]
async fn delivered_request_expires_once() {
    let mut gw = start(|c| c.otp_ttl = Duration::from_secs(1)).await;
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    let expired = gw.events.wait_for(id, EventType::Expired).await;
    assert_eq!(expired.status, Status::Expired);
    // A second request expiring later proves the sweep ran past the first one again.
    let later = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for(later, EventType::Expired).await;
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "expired");
    assert_eq!(
        event_types(&view),
        ["sending", "sent", "delivered", "expired"]
    );
}

#[actix_web::test]
async fn verified_request_never_expires() {
    let mut gw = start(|c| c.otp_ttl = Duration::from_secs(1)).await;
    let verified = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for_status(verified, Status::Delivered).await;
    assert_eq!(feedback_ok(&gw, verified, true).await, "verified");
    // Expires after the verified one would have.
    gw.sms().set_behaviour("14155552672", SmsBehaviour::NoDlr);
    let witness = gw.dispatch_sms("+14155552672", json!({})).await;
    gw.events.wait_for(witness, EventType::Expired).await;

    let view = gw.view_ok(verified).await;
    assert_eq!(view["status"], "verified", "{view}");
    assert_eq!(
        event_types(&view),
        ["sending", "sent", "delivered", "verified"]
    );
    assert!(!gw
        .events
        .history(verified)
        .iter()
        .any(|(e, _)| *e == EventType::Expired));
}

#[actix_web::test]
async fn expired_request_can_still_be_verified_but_not_rejected() {
    let mut gw = start(|c| c.otp_ttl = Duration::from_secs(1)).await;
    let (id, _msg) = at_sent(&mut gw, 1).await;
    gw.events.wait_for(id, EventType::Expired).await;
    assert_eq!(feedback_ok(&gw, id, false).await, "expired");
    assert_eq!(feedback_ok(&gw, id, true).await, "verified");
}

// ---------------------------------------------------------------------------------------------
// Feedback
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn verified_after_delivered() {
    let mut gw = start(|_| {}).await;
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    assert_eq!(feedback_ok(&gw, id, true).await, "verified");
    let event = gw.events.wait_for(id, EventType::Verified).await;
    assert_eq!(event.status, Status::Verified);
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "verified");
    assert_eq!(
        event_types(&view),
        ["sending", "sent", "delivered", "verified"]
    );
}

#[actix_web::test]
async fn rejected_then_verified() {
    let mut gw = start(|_| {}).await;
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    assert_eq!(feedback_ok(&gw, id, false).await, "rejected");
    assert_eq!(gw.view_ok(id).await["status"], "rejected");
    assert_eq!(feedback_ok(&gw, id, true).await, "verified");
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "verified");
    assert_eq!(
        event_types(&view),
        ["sending", "sent", "delivered", "rejected", "verified"]
    );
}

#[actix_web::test]
async fn verified_then_rejected_stays_verified() {
    let mut gw = start(|_| {}).await;
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    assert_eq!(feedback_ok(&gw, id, true).await, "verified");
    // A failed check after verification changes nothing: no event, no `otp.rejected` webhook
    // carrying status `verified`.
    assert_eq!(feedback_ok(&gw, id, false).await, "verified");
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "verified");
    assert_eq!(
        event_types(&view),
        ["sending", "sent", "delivered", "verified"]
    );
}

#[actix_web::test]
async fn finished_requests_leave_nothing_in_the_provider_index() {
    let mut gw = start(|_| {}).await;
    let delivered = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events
        .wait_for_status(delivered, Status::Delivered)
        .await;
    gw.sms()
        .set_default_behaviour(SmsBehaviour::Failed { code_id: 1 });
    let failed = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for_status(failed, Status::Failed).await;
    wait_idle(&gw).await;
    assert!(
        gw.gateway.provider_index.is_empty(),
        "{} provider ids left behind by finished requests",
        gw.gateway.provider_index.len()
    );
}

#[actix_web::test]
async fn feedback_on_a_failed_request() {
    let mut gw = start(|_| {}).await;
    gw.sms()
        .set_default_behaviour(SmsBehaviour::ApiError { status: 400 });
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for_status(id, Status::Failed).await;
    wait_idle(&gw).await;
    assert_eq!(feedback_ok(&gw, id, false).await, "rejected");
    assert_eq!(feedback_ok(&gw, id, true).await, "verified");
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "verified");
    assert_eq!(
        event_types(&view),
        ["sending", "failed", "rejected", "verified"]
    );
}

#[actix_web::test]
async fn feedback_for_an_unknown_request_is_not_found() {
    let gw = start(|_| {}).await;
    let (status, body) = feedback(&gw, RequestId::new_random(), true).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_found");
}

#[actix_web::test]
async fn verified_feedback_cancels_the_pending_delivery_timer() {
    let mut gw = start(|c| c.sms.delivery_timeout = Duration::from_secs(60)).await;
    let (id, msg) = at_sent(&mut gw, 1).await;
    assert_eq!(live(&gw).await, 1, "the actor waits for the DLR");
    assert_eq!(feedback_ok(&gw, id, true).await, "verified");
    // The actor stops now, not when the 60 s timer would have fired.
    wait_idle(&gw).await;
    // A DLR that comes later is recorded but the request stays verified.
    assert_eq!(callback(&gw, &with_id(DELIVERED, &msg)).await, "received");
    let delivered = gw.events.wait_for(id, EventType::Delivered).await;
    assert_eq!(delivered.status, Status::Verified);
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "verified");
    assert_eq!(
        event_types(&view),
        ["sending", "sent", "verified", "delivered"]
    );
}

#[actix_web::test]
async fn rejected_feedback_keeps_the_delivery_going() {
    let mut gw = start(|c| c.sms.delivery_timeout = Duration::from_secs(60)).await;
    let (id, msg) = at_sent(&mut gw, 1).await;
    assert_eq!(feedback_ok(&gw, id, false).await, "rejected");
    assert_eq!(live(&gw).await, 1, "a wrong code does not stop delivery");
    assert_eq!(callback(&gw, &with_id(DELIVERED, &msg)).await, "received");
    let delivered = gw.events.wait_for(id, EventType::Delivered).await;
    assert_eq!(
        delivered.status,
        Status::Rejected,
        "feedback outranks delivery"
    );
    wait_idle(&gw).await;
    assert_eq!(feedback_ok(&gw, id, true).await, "verified");
}

#[actix_web::test]
async fn feedback_is_validated() {
    let mut gw = start(|_| {}).await;
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    for body in [
        json!({"request_id": id.to_string()}),
        json!({"request_id": id.to_string(), "success": "yes"}),
        json!({"request_id": "not-a-uuid", "success": true}),
        json!({"success": true}),
    ] {
        let (status, answer) = gw.post("/webhooks/auth", body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"], "invalid_request", "{answer}");
    }
    let response = gw
        .client
        .post(format!("{}/webhooks/auth", gw.url))
        .send_json(&json!({"request_id": id.to_string(), "success": true}))
        .await
        .unwrap();
    let (status, answer) = read_json(response).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(gw.view_ok(id).await["status"], "delivered");
}
