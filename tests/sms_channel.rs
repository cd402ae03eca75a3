//! The SMS channel end to end against the simulated DIDWW SMS OUT API: the exact request DIDWW
//! receives, every callback variant of `tests/fixtures/didww/` posted for a real request, the
//! sandbox behaviours, and the robustness of `POST /webhooks/dlr` (malformed bodies, replays, case,
//! content types, inbound token).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use actors::{EventType, RequestId, Status};
use base64::Engine as _;
use common::hooks::HookReceiver;
use common::{
    event_types, live, message_id, read_json, start, with_id, TestGateway, PATIENCE, PHONE,
};
use otp_gateway::config::{Config, Secret};
use otp_gateway::db::models::{event, request};
use otp_gateway::sandbox::sms::{CallbackKind, SmsBehaviour};
use serde_json::{json, Value};

const SEND_REQUEST: &str = include_str!("fixtures/didww/sms-send-request.json");
const SUCCESS: &str = include_str!("fixtures/didww/dlr-success-processing.json");
const DELIVERED: &str = include_str!("fixtures/didww/dlr-delivered.json");
const ROUTING_ERROR: &str = include_str!("fixtures/didww/dlr-failed-routing-error.json");
const INSUFFICIENT_BALANCE: &str =
    include_str!("fixtures/didww/dlr-failed-insufficient-balance.json");
const EXPIRED: &str = include_str!("fixtures/didww/dlr-undelivered-expired.json");

const JSON_API: &str = "application/vnd.api+json";
/// `PHONE` as DIDWW writes it.
const PHONE_DIGITS: &str = "14155552671";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// POSTs a body to `/webhooks/dlr{query}` with a content type and extra headers.
async fn post_dlr_raw(
    gw: &TestGateway,
    query: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut req = gw.client.post(format!("{}/webhooks/dlr{query}", gw.url));
    if let Some(ct) = content_type {
        req = req.insert_header(("Content-Type", ct));
    }
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    read_json(req.send_body(body.to_owned()).await.unwrap()).await
}

/// POSTs a callback as DIDWW does (JSON:API, no token).
async fn post_dlr(gw: &TestGateway, body: &str) -> (u16, Value) {
    post_dlr_raw(gw, "", Some(JSON_API), &[], body).await
}

fn count(view: &Value, event_type: &str) -> usize {
    event_types(view)
        .iter()
        .filter(|e| *e == event_type)
        .count()
}

/// The stored request row.
async fn db_request(gw: &TestGateway, id: RequestId) -> request::RequestRow {
    let key = id.to_string();
    gw.gateway
        .store
        .read(move |conn| request::find_by_id(conn, &key))
        .await
        .unwrap()
        .unwrap()
}

/// The stored event rows (with operator-only `internal` data).
async fn db_events(gw: &TestGateway, id: RequestId) -> Vec<event::EventRow> {
    let key = id.to_string();
    gw.gateway
        .store
        .read(move |conn| event::list_by_request(conn, &key))
        .await
        .unwrap()
}

/// Waits until no request actor is alive (every request finished delivering).
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

/// Asserts that nothing DIDWW-internal is in a client-visible JSON text.
fn assert_no_internals(text: &str, message_id: Option<&str>) {
    for needle in [
        "code_id",
        "didww",
        "Insufficient balance",
        "No routes found",
        "Routing error",
        "price",
        "Invalid request",
        "Internal server error",
        "http_status",
        "transport_error",
    ] {
        assert!(
            !text
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase()),
            "client-visible data leaks {needle:?}: {text}"
        );
    }
    if let Some(id) = message_id {
        assert!(
            !text.contains(id),
            "client-visible data leaks the provider id: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The request DIDWW receives
// ---------------------------------------------------------------------------------------------

fn attribute_keys(body: &Value) -> Vec<String> {
    let mut keys: Vec<String> = body["data"]["attributes"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[actix_web::test]
async fn outbound_request_is_exact_jsonapi_with_default_template() {
    let gw = start(|_| {}).await;
    gw.dispatch_sms(PHONE, json!({})).await;
    let received = gw.sms().wait_for_received(1, PATIENCE).await;
    let sms = &received[0];
    assert_eq!(sms.method, "POST");
    assert_eq!(sms.path, "/outbound_messages");
    assert_eq!(sms.content_type.as_deref(), Some(JSON_API));
    assert_eq!(
        sms.authorization.as_deref(),
        Some(basic("sandbox", "sandbox").as_str())
    );
    assert!(
        sms.message_id.is_some(),
        "sandbox refused: {}",
        sms.raw_body
    );
    let body = sms.body.clone().expect("JSON body");
    let fixture: Value = serde_json::from_str(SEND_REQUEST).unwrap();
    // Same document shape as the fixture: data.{type, attributes} and nothing else.
    let mut data_keys: Vec<&String> = body["data"].as_object().unwrap().keys().collect();
    data_keys.sort();
    assert_eq!(data_keys, ["attributes", "type"]);
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["data"]["type"], fixture["data"]["type"]);
    assert_eq!(attribute_keys(&body), attribute_keys(&fixture));
    assert_eq!(
        body,
        json!({"data": {"type": "outbound_messages", "attributes": {
            "destination": PHONE_DIGITS,
            "source": otp_gateway::config::SANDBOX_CALLER_ID,
            "content": "Your verification code is: 123456",
        }}})
    );
}

#[actix_web::test]
async fn outbound_request_honours_template_and_caller_id() {
    let gw = start(|c| {
        c.sms.message_template = "{code} is your code. Again: {code}".into();
        c.sms.caller_id = "15550107777".into();
    })
    .await;
    gw.dispatch_ok(json!({"phone": PHONE, "code": "4821", "channels": ["sms"]}))
        .await;
    let received = gw.sms().wait_for_received(1, PATIENCE).await;
    let body = received[0].body.clone().unwrap();
    assert_eq!(
        body["data"]["attributes"],
        json!({
            "destination": PHONE_DIGITS,
            "source": "15550107777",
            "content": "4821 is your code. Again: 4821",
        })
    );
    assert_eq!(received[0].content_type.as_deref(), Some(JSON_API));
}

// ---------------------------------------------------------------------------------------------
// Every fixture callback for a real request
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn processing_success_means_sent_not_delivered_and_stores_cost() {
    let mut gw = start(|_| {}).await;
    gw.sms().set_default_behaviour(SmsBehaviour::NoDlr);
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    let msg = message_id(&gw, 1).await;
    // Posted while the 201 may still be on the wire; the sandbox posts the same Success itself, so
    // whichever lands second is a duplicate.
    let (status, answer) = post_dlr(&gw, &with_id(SUCCESS, &msg)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["status"] == "received" || answer["status"] == "duplicate",
        "{answer}"
    );
    let sent = gw.events.wait_for(id, EventType::Sent).await;
    assert_eq!(sent.status, Status::Sent);
    assert!(sent.metadata.is_empty(), "{:?}", sent.metadata);
    // The sandbox's own Success has been answered too.
    let callbacks = gw.sms().wait_for_callbacks(1, PATIENCE).await;
    assert!(callbacks[0].accepted(), "{:?}", callbacks[0]);

    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "sent", "{view}");
    assert_eq!(view["channel_status"], "sent");
    assert_eq!(count(&view, "sent"), 1, "{view}");
    assert_eq!(count(&view, "delivered"), 0, "{view}");
    let row = db_request(&gw, id).await;
    assert_eq!(row.sms_cost_micros, Some(7_900));
    assert_eq!(row.sms_parts, Some(1));
    assert_eq!(row.provider_id.as_deref(), Some(msg.as_str()));
    assert_no_internals(&view.to_string(), Some(&msg));
}

#[actix_web::test]
async fn dlr_delivered_moves_to_delivered() {
    let mut gw = start(|_| {}).await;
    gw.sms().set_default_behaviour(SmsBehaviour::NoDlr);
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    let msg = message_id(&gw, 1).await;
    gw.events.wait_for(id, EventType::Sent).await;
    let (status, answer) = post_dlr(&gw, &with_id(DELIVERED, &msg)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "received");
    assert_eq!(answer["message_id"], msg.as_str());
    let delivered = gw.events.wait_for(id, EventType::Delivered).await;
    assert_eq!(delivered.status, Status::Delivered);
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "delivered");
    assert_eq!(view["channel_status"], "delivered");
    assert_eq!(event_types(&view), ["sending", "sent", "delivered"]);
    // Delivered is final for the channel: the request actor is gone.
    wait_idle(&gw).await;
}

/// Posts a processing-failure fixture for a real request and checks the outcome and what the
/// client sees.
async fn processing_failure(fixture: &str, code_id: i64, meaning: &str) {
    let mut gw = start(|_| {}).await;
    gw.sms().set_default_behaviour(SmsBehaviour::NoDlr);
    let hooks = HookReceiver::start();
    let id = gw
        .dispatch_sms(PHONE, json!({"webhook_url": hooks.url()}))
        .await;
    let msg = message_id(&gw, 1).await;
    gw.events.wait_for(id, EventType::Sent).await;
    let (status, answer) = post_dlr(&gw, &with_id(fixture, &msg)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "received");

    let failed = gw.events.wait_for(id, EventType::Failed).await;
    assert_eq!(failed.status, Status::Failed, "only channel failed");
    assert_eq!(failed.channel, actors::Channel::Sms);
    assert_eq!(
        Value::Object(failed.metadata.clone()),
        json!({"error": "carrier_failed"})
    );
    assert_no_internals(
        &Value::Object(failed.metadata.clone()).to_string(),
        Some(&msg),
    );

    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["channel_status"], "failed");
    assert_no_internals(&view.to_string(), Some(&msg));

    // The client webhook carries the same clean metadata.
    let got = hooks
        .wait_until(PATIENCE, |h| h.iter().any(|h| h.event == "otp.failed"))
        .await;
    let hook = got.iter().find(|h| h.event == "otp.failed").unwrap();
    assert_eq!(hook.body["status"], "failed");
    assert_eq!(hook.body["metadata"], json!({"error": "carrier_failed"}));
    assert_no_internals(&hook.raw_body, Some(&msg));

    // Operators keep the carrier's details.
    let events = db_events(&gw, id).await;
    let stored = events.iter().find(|e| e.event_type == "failed").unwrap();
    let internal: Value = serde_json::from_str(&stored.internal).unwrap();
    assert_eq!(internal["didww_code_id"], code_id, "{internal}");
    assert_eq!(internal["didww_code_meaning"], meaning, "{internal}");
    wait_idle(&gw).await;
}

#[actix_web::test]
async fn processing_routing_error_fails_the_only_channel_without_leaking_internals() {
    processing_failure(ROUTING_ERROR, 1, "No routes found").await;
}

#[actix_web::test]
async fn processing_failed_insufficient_balance_fails_without_leaking_internals() {
    processing_failure(INSUFFICIENT_BALANCE, 100, "Insufficient balance").await;
}

#[actix_web::test]
async fn dlr_expired_is_undelivered_and_fails_the_request() {
    let mut gw = start(|_| {}).await;
    gw.sms().set_default_behaviour(SmsBehaviour::NoDlr);
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    let msg = message_id(&gw, 1).await;
    gw.events.wait_for(id, EventType::Sent).await;
    let (status, answer) = post_dlr(&gw, &with_id(EXPIRED, &msg)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "received");
    let undelivered = gw.events.wait_for(id, EventType::Undelivered).await;
    assert_eq!(undelivered.status, Status::Failed);
    assert_eq!(
        Value::Object(undelivered.metadata.clone()),
        json!({"error": "not_delivered"})
    );
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "failed");
    assert_eq!(view["channel_status"], "undelivered");
    assert_eq!(event_types(&view), ["sending", "sent", "undelivered"]);
    assert_no_internals(&view.to_string(), Some(&msg));
}

// ---------------------------------------------------------------------------------------------
// Sandbox behaviours end to end
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn sandbox_delivered() {
    let mut gw = start(|_| {}).await;
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    assert_eq!(
        gw.events.history(id),
        [
            (EventType::Sending, Status::Sending),
            (EventType::Sent, Status::Sent),
            (EventType::Delivered, Status::Delivered),
        ]
    );
    let row = db_request(&gw, id).await;
    assert_eq!(row.sms_cost_micros, Some(7_900));
    assert_eq!(row.status, "delivered");
}

#[actix_web::test]
async fn sandbox_failed_code_1_fails_the_request() {
    let mut gw = start(|_| {}).await;
    gw.sms()
        .set_behaviour(PHONE_DIGITS, SmsBehaviour::Failed { code_id: 1 });
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    let failed = gw.events.wait_for(id, EventType::Failed).await;
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(
        Value::Object(failed.metadata.clone()),
        json!({"error": "carrier_failed"})
    );
    assert_eq!(
        gw.events.history(id),
        [
            (EventType::Sending, Status::Sending),
            (EventType::Failed, Status::Failed),
        ]
    );
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "failed");
    assert_no_internals(&view.to_string(), None);
    wait_idle(&gw).await;
}

#[actix_web::test]
async fn sandbox_no_dlr_stays_sent() {
    let mut gw = start(|_| {}).await;
    gw.sms().set_behaviour(PHONE_DIGITS, SmsBehaviour::NoDlr);
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for(id, EventType::Sent).await;
    let callbacks = gw.sms().wait_for_callbacks(1, PATIENCE).await;
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].kind, CallbackKind::Processing);
    assert!(callbacks[0].accepted());
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "sent");
    assert_eq!(event_types(&view), ["sending", "sent"]);
}

#[actix_web::test]
async fn sandbox_undelivered_expired_fails_the_request() {
    let mut gw = start(|_| {}).await;
    gw.sms().set_behaviour(
        PHONE_DIGITS,
        SmsBehaviour::Undelivered {
            status: "EXPIRED".into(),
        },
    );
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for(id, EventType::Undelivered).await;
    assert_eq!(
        gw.events.history(id),
        [
            (EventType::Sending, Status::Sending),
            (EventType::Sent, Status::Sent),
            (EventType::Undelivered, Status::Failed),
        ]
    );
    assert_eq!(gw.view_ok(id).await["status"], "failed");
}

#[actix_web::test]
async fn sandbox_api_errors_fail_with_carrier_rejected() {
    let mut gw = start(|_| {}).await;
    let phones = [("+14155552672", 400u16), ("+14155552673", 500u16)];
    for (phone, status) in phones {
        gw.sms()
            .set_behaviour(phone, SmsBehaviour::ApiError { status });
    }
    for (phone, http_status) in phones {
        let id = gw.dispatch_sms(phone, json!({})).await;
        let failed = gw.events.wait_for(id, EventType::Failed).await;
        assert_eq!(failed.status, Status::Failed, "HTTP {http_status}");
        assert_eq!(
            Value::Object(failed.metadata.clone()),
            json!({"error": "carrier_rejected"}),
            "HTTP {http_status}"
        );
        assert_eq!(
            gw.events.history(id),
            [
                (EventType::Sending, Status::Sending),
                (EventType::Failed, Status::Failed),
            ]
        );
        let view = gw.view_ok(id).await;
        assert_eq!(view["status"], "failed");
        assert_no_internals(&view.to_string(), None);
        // Operators see what DIDWW answered.
        let events = db_events(&gw, id).await;
        let internal: Value = serde_json::from_str(&events.last().unwrap().internal).unwrap();
        assert_eq!(internal["http_status"], http_status, "{internal}");
        assert_eq!(
            internal["didww_code"],
            http_status.to_string(),
            "{internal}"
        );
    }
    wait_idle(&gw).await;
}

#[actix_web::test]
async fn sandbox_slower_than_api_timeout_fails_with_carrier_unreachable() {
    let mut gw = start(|c| c.sms.api_timeout = Duration::from_millis(300)).await;
    gw.sms()
        .set_behaviour(PHONE_DIGITS, SmsBehaviour::Slow { delay_ms: 1_500 });
    let started = Instant::now();
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    let failed = gw.events.wait_for(id, EventType::Failed).await;
    assert!(
        started.elapsed() < Duration::from_millis(1_400),
        "the API timeout was not applied ({:?})",
        started.elapsed()
    );
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(
        Value::Object(failed.metadata.clone()),
        json!({"error": "carrier_unreachable"})
    );
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "failed");
    assert_no_internals(&view.to_string(), None);
    wait_idle(&gw).await;
}

// ---------------------------------------------------------------------------------------------
// Callback robustness
// ---------------------------------------------------------------------------------------------

/// A gateway with one NoDlr request at `sent`; returns it with its message id.
async fn request_at_sent(tweak: impl FnOnce(&mut Config)) -> (TestGateway, RequestId, String) {
    let mut gw = start(tweak).await;
    gw.sms().set_default_behaviour(SmsBehaviour::NoDlr);
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    let msg = message_id(&gw, 1).await;
    gw.events.wait_for(id, EventType::Sent).await;
    // The sandbox's own Success was answered: nothing else is coming from it.
    gw.sms().wait_for_callbacks(1, PATIENCE).await;
    (gw, id, msg)
}

#[actix_web::test]
async fn callback_for_unknown_message_is_acknowledged_and_changes_nothing() {
    let (gw, id, _msg) = request_at_sent(|_| {}).await;
    let before = gw.view_ok(id).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    for body in [
        with_id(DELIVERED, &unknown),
        with_id(ROUTING_ERROR, &unknown),
    ] {
        let (status, answer) = post_dlr(&gw, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "acknowledged", "{answer}");
    }
    let after = gw.view_ok(id).await;
    assert_eq!(after["status"], "sent");
    assert_eq!(after["events"], before["events"]);
    assert_eq!(after["updated_at"], before["updated_at"]);
}

#[actix_web::test]
async fn malformed_callbacks_are_refused_and_change_nothing() {
    let (mut gw, id, msg) = request_at_sent(|_| {}).await;
    let before = gw.view_ok(id).await;
    let bodies = [
        "not json".to_owned(),
        String::new(),
        "{}".to_owned(),
        "null".to_owned(),
        json!({"data": {"type": "dlr_event", "attributes": {"status": "DELIVERED"}}}).to_string(),
        json!({"data": {"id": "", "type": "dlr_event", "attributes": {"status": "DELIVERED"}}})
            .to_string(),
        json!({"data": {"id": msg, "type": "dlr_event", "attributes": {}}}).to_string(),
        json!({"data": {"id": msg, "type": "dlr_event", "attributes": {"status": ""}}}).to_string(),
        json!({"data": {"id": msg, "type": "dlr_event", "attributes": {"status": 7}}}).to_string(),
        json!({"data": {"id": msg, "type": "dlr_event"}}).to_string(),
        format!("[{}]", with_id(DELIVERED, &msg)),
        json!([]).to_string(),
    ];
    for body in &bodies {
        let (status, answer) = post_dlr(&gw, body).await;
        assert_eq!(status, 400, "{body:?} → {answer}");
        assert_eq!(answer["error"], "invalid_callback", "{body:?} → {answer}");
        assert!(answer["message"].is_string(), "{answer}");
    }
    let after = gw.view_ok(id).await;
    assert_eq!(after["status"], "sent");
    assert_eq!(after["events"], before["events"]);
    // Nothing was consumed: the real DLR still counts.
    let (status, answer) = post_dlr(&gw, &with_id(DELIVERED, &msg)).await;
    assert_eq!((status, answer["status"].clone()), (200, json!("received")));
    gw.events.wait_for_status(id, Status::Delivered).await;
}

#[actix_web::test]
async fn replayed_callback_is_a_duplicate_and_recorded_once() {
    let (mut gw, id, msg) = request_at_sent(|_| {}).await;
    let body = with_id(DELIVERED, &msg);
    let (status, first) = post_dlr(&gw, &body).await;
    assert_eq!((status, first["status"].clone()), (200, json!("received")));
    gw.events.wait_for(id, EventType::Delivered).await;
    let (status, second) = post_dlr(&gw, &body).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["status"], "duplicate", "{second}");
    // The sandbox already sent this Success.
    let (status, again) = post_dlr(&gw, &with_id(SUCCESS, &msg)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["status"], "duplicate", "{again}");
    // Case does not make a replay new.
    let shouted = body.replace("DELIVERED", "delivered");
    let (status, third) = post_dlr(&gw, &shouted).await;
    assert_eq!((status, third["status"].clone()), (200, json!("duplicate")));

    let view = gw.view_ok(id).await;
    assert_eq!(event_types(&view), ["sending", "sent", "delivered"]);
    assert_eq!(view["status"], "delivered");
    assert_eq!(db_events(&gw, id).await.len(), 3);
}

#[actix_web::test]
async fn any_case_string_code_ids_unknown_fields_and_plain_json_are_accepted() {
    let mut gw = start(|_| {}).await;
    gw.sms().set_default_behaviour(SmsBehaviour::NoDlr);
    struct Case {
        content_type: &'static str,
        body: fn(&str) -> Value,
        event: EventType,
        status: Status,
        code_id: Option<i64>,
    }
    let cases = [
        Case {
            content_type: "application/json",
            body: |id| {
                json!({"data": {"id": id, "type": "dlr_event", "attributes": {
                    "status": "delivered", "time": "2026-03-10T14:22:31Z",
                    "carrier": {"name": "x", "mcc": 310}, "new_field": [1, 2, 3]},
                    "relationships": {}}, "meta": {"v": 2}})
            },
            event: EventType::Delivered,
            status: Status::Delivered,
            code_id: None,
        },
        Case {
            content_type: "application/json; charset=utf-8",
            body: |id| {
                json!({"data": {"id": id.to_ascii_uppercase(), "type": "dlr_event",
                    "attributes": {"status": "DeLiVeReD"}}})
            },
            event: EventType::Delivered,
            status: Status::Delivered,
            code_id: None,
        },
        Case {
            content_type: "application/vnd.api+json",
            body: |id| {
                json!({"data": {"id": id, "type": "outbound_message_callbacks", "attributes": {
                    "status": "ROUTING ERROR", "code_id": "1", "fragments_sent": "0",
                    "price": "0", "unknown": true}}})
            },
            event: EventType::Failed,
            status: Status::Failed,
            code_id: Some(1),
        },
        Case {
            content_type: "application/json",
            body: |id| {
                json!({"data": {"id": id, "type": "outbound_message_callbacks", "attributes": {
                    "status": "failed", "code_id": " 100 ", "fragments_sent": 0, "price": 0}}})
            },
            event: EventType::Failed,
            status: Status::Failed,
            code_id: Some(100),
        },
        Case {
            content_type: "application/vnd.api+json; charset=utf-8",
            body: |id| json!({"data": {"id": id, "type": "DLR_EVENT", "attributes": {"status": "Expired"}}}),
            event: EventType::Undelivered,
            status: Status::Failed,
            code_id: None,
        },
    ];
    for (n, case) in cases.iter().enumerate() {
        let id = gw.dispatch_sms(PHONE, json!({})).await;
        let msg = message_id(&gw, n + 1).await;
        gw.events.wait_for(id, EventType::Sent).await;
        let body = (case.body)(&msg).to_string();
        let (status, answer) = post_dlr_raw(&gw, "", Some(case.content_type), &[], &body).await;
        assert_eq!(status, 200, "case {n}: {answer}");
        assert_eq!(answer["status"], "received", "case {n}: {answer}");
        let recorded = gw.events.wait_for(id, case.event).await;
        assert_eq!(recorded.status, case.status, "case {n}");
        assert_eq!(
            gw.view_ok(id).await["status"],
            case.status.as_str(),
            "case {n}"
        );
        if let Some(code_id) = case.code_id {
            let events = db_events(&gw, id).await;
            let internal: Value = serde_json::from_str(&events.last().unwrap().internal).unwrap();
            assert_eq!(internal["didww_code_id"], code_id, "case {n}: {internal}");
        }
    }
}

#[actix_web::test]
async fn inbound_token_is_required_when_configured() {
    const TOKEN: &str = "tok-9f2c41d7e8a3b6";
    let mut gw = start(|c| c.webhooks.inbound_secret = Some(Secret::new(TOKEN))).await;

    // The sandbox's own callbacks carry the token: a full delivery still works.
    let id = gw.dispatch_sms(PHONE, json!({})).await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    let callbacks = gw.sms().wait_for_callbacks(2, PATIENCE).await;
    assert!(
        callbacks.iter().all(|c| c.status == Some(200)),
        "{callbacks:?}"
    );

    let body = with_id(DELIVERED, &uuid::Uuid::new_v4().to_string());
    let forbidden: [(&str, Vec<(&str, &str)>); 5] = [
        ("", vec![]),
        ("?token=wrong", vec![]),
        ("?token=", vec![]),
        ("", vec![("X-Webhook-Token", "tok-9f2c41d7e8a3b7")]),
        ("?token=tok-9f2c41d7e8a3b6x", vec![]),
    ];
    for (query, headers) in &forbidden {
        let (status, answer) = post_dlr_raw(&gw, query, Some(JSON_API), headers, &body).await;
        assert_eq!(status, 403, "{query} {headers:?}: {answer}");
        assert_eq!(answer["error"], "forbidden", "{answer}");
    }
    // A malformed body without the token is refused for the token, not parsed.
    let (status, _) = post_dlr_raw(&gw, "", Some(JSON_API), &[], "not json").await;
    assert_eq!(status, 403);

    let query = format!("?token={TOKEN}");
    let (status, answer) = post_dlr_raw(&gw, &query, Some(JSON_API), &[], &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "acknowledged");
    let (status, answer) = post_dlr_raw(
        &gw,
        "",
        Some(JSON_API),
        &[("X-Webhook-Token", TOKEN)],
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "acknowledged");
    assert_eq!(gw.view_ok(id).await["status"], "delivered");
}

#[actix_web::test]
async fn callbacks_racing_the_end_of_a_request_are_never_refused() {
    // A DLR, a contradicting DLR and the client's feedback arrive together: whichever ends the
    // request, the others must still be recorded and answered 2xx (DIDWW would otherwise retry,
    // and the client would see a 503 for a valid feedback).
    let mut gw = start(|_| {}).await;
    gw.sms().set_default_behaviour(SmsBehaviour::NoDlr);
    for n in 1..=25 {
        let id = gw.dispatch_sms(PHONE, json!({})).await;
        let msg = message_id(&gw, n).await;
        gw.events.wait_for(id, EventType::Sent).await;
        let delivered = with_id(DELIVERED, &msg);
        let failed = json!({"data": {"id": msg, "type": "dlr_event",
            "attributes": {"status": "FAILED"}}})
        .to_string();
        let expired = with_id(EXPIRED, &msg);
        let (a, b, c, d) = tokio::join!(
            post_dlr(&gw, &delivered),
            post_dlr(&gw, &failed),
            post_dlr(&gw, &expired),
            gw.post(
                "/webhooks/auth",
                json!({"request_id": id.to_string(), "success": true})
            ),
        );
        for (status, answer) in [a, b, c, d] {
            assert_eq!(status, 200, "request {n}: {answer}");
        }
        let view = gw.view_ok(id).await;
        assert_eq!(view["status"], "verified", "{view}");
        let types = event_types(&view);
        for expected in ["delivered", "undelivered", "verified"] {
            assert!(types.iter().any(|t| t == expected), "{expected}: {view}");
        }
        assert_eq!(types.len(), 6, "{view}");
    }
    wait_idle(&gw).await;
}
