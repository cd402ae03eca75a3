//! The REST API's contract for bad input (SPEC §3, §4): every refusal is JSON
//! `{"error","message"}` (plus `field` for `invalid_request`) with its exact status, never HTML; the
//! API secret guards every client route; successful answers have their documented shape; and the
//! client IP stored for fraud scoring follows `TRUST_PROXY`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use actix_web::web::Bytes;
use awc::http::header::HeaderMap;
use awc::http::Method;
use diesel::prelude::*;
use serde_json::{json, Value};

use actors::{Channel, EventType, RequestId, Status};
use common::hooks::HookReceiver;
use common::{TestGateway, PHONE, SECRET};
use otp_gateway::db::models::request::{find_by_id, RequestRow};
use otp_gateway::db::schema::otp_requests;

/// Other valid numbers (libphonenumber), so no test sends more than one OTP per phone and a
/// per-phone rate limit can never interfere.
const PHONES: [&str; 6] = [
    "+14155552672",
    "+14155552673",
    "+14155552674",
    "+442079460123",
    "+4915112345678",
    "+33612345678",
];

/// The 64 KiB body limit of SPEC §4.
const LIMIT: usize = 64 * 1024;

/// Everything a client sees of an answer.
struct Reply {
    status: u16,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error answer: status, JSON media type, `error` code and a non-empty `message`.
    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "wrong status; body: {}", self.text);
        let content_type = self.header("content-type").unwrap_or("");
        assert!(
            content_type.starts_with("application/json"),
            "error answered as {content_type:?}, not JSON: {}",
            self.text
        );
        assert!(
            !self.text.trim_start().starts_with('<'),
            "HTML body: {}",
            self.text
        );
        assert_eq!(self.json["error"], code, "wrong error code: {}", self.text);
        assert!(
            self.json["message"]
                .as_str()
                .is_some_and(|m| !m.trim().is_empty()),
            "no human message: {}",
            self.text
        );
    }

    /// Asserts 400 `invalid_request` naming `field`.
    #[track_caller]
    fn assert_field(&self, field: &str) {
        self.assert_error(400, "invalid_request");
        assert_eq!(self.json["field"], field, "wrong field: {}", self.text);
    }

    /// Asserts the exact 403 body of SPEC §4.
    #[track_caller]
    fn assert_forbidden(&self) {
        self.assert_error(403, "forbidden");
        assert_eq!(
            self.json,
            json!({"error": "forbidden", "message": "Invalid API secret"}),
            "403 body differs"
        );
    }
}

/// One raw request: method, path, extra headers, optional body (sent with a Content-Length).
async fn raw(
    gw: &TestGateway,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    let mut request = gw.client.request(method, format!("{}{path}", gw.url));
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let response = match body {
        Some(body) => request.send_body(body).await,
        None => request.send().await,
    };
    into_reply(response.unwrap()).await
}

async fn into_reply(
    mut response: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

/// POSTs `body` as JSON with the given extra headers (no secret unless given).
async fn post_json(gw: &TestGateway, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    raw(
        gw,
        Method::POST,
        path,
        &all,
        Some(serde_json::to_vec(body).unwrap()),
    )
    .await
}

/// POSTs `body` as JSON with the right secret header.
async fn post_auth(gw: &TestGateway, path: &str, body: &Value) -> Reply {
    post_json(gw, path, &[("X-API-Secret", SECRET)], body).await
}

/// GETs with the right secret header.
async fn get_auth(gw: &TestGateway, path: &str) -> Reply {
    raw(gw, Method::GET, path, &[("X-API-Secret", SECRET)], None).await
}

/// A valid SMS dispatch body for `phone`, with `extra` fields merged in.
fn dispatch_body(phone: &str, extra: Value) -> Value {
    let mut body = json!({"phone": phone, "code": "123456", "channels": ["sms"]});
    if let Value::Object(more) = extra {
        body.as_object_mut().unwrap().extend(more);
    }
    body
}

/// The stored row of a request, read straight from the database.
async fn stored_row(gw: &TestGateway, id: RequestId) -> RequestRow {
    let key = id.to_string();
    gw.gateway
        .store
        .read(move |conn| find_by_id(conn, &key))
        .await
        .unwrap()
        .expect("request row stored")
}

/// The client IP stored for a request (not exposed by the API).
async fn stored_ip(gw: &TestGateway, id: RequestId) -> Option<String> {
    let key = id.to_string();
    gw.gateway
        .store
        .read(move |conn| {
            otp_requests::table
                .find(key)
                .select(otp_requests::client_ip)
                .first::<Option<String>>(conn)
        })
        .await
        .unwrap()
}

/// Number of stored requests: a refused dispatch must store nothing.
async fn stored_requests(gw: &TestGateway) -> i64 {
    gw.gateway
        .store
        .read(|conn| otp_requests::table.count().get_result::<i64>(conn))
        .await
        .unwrap()
}

fn request_id_of(reply: &Reply) -> RequestId {
    assert_eq!(reply.status, 200, "dispatch refused: {}", reply.text);
    RequestId::parse(reply.json["request_id"].as_str().unwrap()).unwrap()
}

/// Every string anywhere in a JSON value, with its key path.
fn strings_in(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => out.push((path.to_owned(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings_in(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                out.push((format!("{path}.<key>"), key.clone()));
                strings_in(item, &format!("{path}.{key}"), out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn dispatch_without_or_with_wrong_secret_is_403_and_stores_nothing() {
    let gw = TestGateway::start().await;
    let body = dispatch_body(PHONE, json!({}));

    post_json(&gw, "/dispatch", &[], &body)
        .await
        .assert_forbidden();
    post_json(
        &gw,
        "/dispatch",
        &[("X-API-Secret", "wrong-secret-0123456789")],
        &body,
    )
    .await
    .assert_forbidden();
    post_json(&gw, "/dispatch", &[("X-API-Secret", "")], &body)
        .await
        .assert_forbidden();
    // A prefix or an extension of the right secret is not the secret.
    post_json(
        &gw,
        "/dispatch",
        &[("X-API-Secret", &SECRET[..SECRET.len() - 1])],
        &body,
    )
    .await
    .assert_forbidden();
    post_json(
        &gw,
        "/dispatch",
        &[("X-API-Secret", &format!("{SECRET}x"))],
        &body,
    )
    .await
    .assert_forbidden();
    // Wrong secret in the body field.
    let wrong_in_body = dispatch_body(PHONE, json!({"secret": "wrong-secret-0123456789"}));
    post_json(&gw, "/dispatch", &[], &wrong_in_body)
        .await
        .assert_forbidden();
    // A non-string body secret.
    let number_in_body = dispatch_body(PHONE, json!({"secret": 12345}));
    post_json(&gw, "/dispatch", &[], &number_in_body)
        .await
        .assert_forbidden();

    assert_eq!(
        stored_requests(&gw).await,
        0,
        "a refused dispatch was stored"
    );
}

#[actix_web::test]
async fn secret_in_body_field_works_and_is_never_echoed() {
    let mut gw = TestGateway::start().await;
    let body = dispatch_body(PHONE, json!({"secret": SECRET, "session_id": "body-auth"}));
    let reply = post_json(&gw, "/dispatch", &[], &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        !reply.text.contains(SECRET),
        "secret echoed: {}",
        reply.text
    );
    let id = request_id_of(&reply);

    gw.events.wait_for_status(id, Status::Delivered).await;
    let view = get_auth(&gw, &format!("/requests/{id}")).await;
    assert_eq!(view.status, 200, "{}", view.text);
    assert_eq!(view.json["session_id"], "body-auth");
    assert!(!view.text.contains(SECRET), "secret in view: {}", view.text);

    // Feedback authenticated by its body field too.
    let feedback = post_json(
        &gw,
        "/webhooks/auth",
        &[],
        &json!({"request_id": id.to_string(), "success": true, "secret": SECRET}),
    )
    .await;
    assert_eq!(feedback.status, 200, "{}", feedback.text);
    assert!(!feedback.text.contains(SECRET), "{}", feedback.text);
}

#[actix_web::test]
async fn send_otp_requires_the_secret() {
    let gw = TestGateway::start().await;
    let body = json!({"phone": PHONE, "code": "123456"});
    let reply = post_json(&gw, "/send-otp", &[], &body).await;
    reply.assert_forbidden();
    assert_eq!(reply.header("deprecation"), Some("true"));
    post_json(
        &gw,
        "/send-otp",
        &[("X-API-Secret", "nope-nope-nope-nope")],
        &body,
    )
    .await
    .assert_forbidden();
    let wrong_in_body = json!({"phone": PHONE, "code": "123456", "secret": "nope-nope-nope-nope"});
    post_json(&gw, "/send-otp", &[], &wrong_in_body)
        .await
        .assert_forbidden();
    // The right secret in the body gets past authentication.
    let right_in_body = json!({"phone": PHONE, "code": "123456", "secret": SECRET});
    let reply = post_json(&gw, "/send-otp", &[], &right_in_body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(!reply.text.contains(SECRET));
}

#[actix_web::test]
async fn requests_view_requires_the_secret_even_for_known_and_unknown_ids() {
    let gw = TestGateway::start().await;
    let id = request_id_of(&post_auth(&gw, "/dispatch", &dispatch_body(PHONE, json!({}))).await);
    let unknown = RequestId::new_random();
    for target in [id, unknown] {
        let path = format!("/requests/{target}");
        raw(&gw, Method::GET, &path, &[], None)
            .await
            .assert_forbidden();
        raw(
            &gw,
            Method::GET,
            &path,
            &[("X-API-Secret", "wrong-secret-0123456789")],
            None,
        )
        .await
        .assert_forbidden();
    }
    // A malformed id is refused for lack of a secret before anything else.
    raw(&gw, Method::GET, "/requests/not-a-uuid", &[], None)
        .await
        .assert_forbidden();
    assert_eq!(get_auth(&gw, &format!("/requests/{id}")).await.status, 200);
}

#[actix_web::test]
async fn feedback_requires_the_secret() {
    let gw = TestGateway::start().await;
    let id = request_id_of(&post_auth(&gw, "/dispatch", &dispatch_body(PHONE, json!({}))).await);
    let body = json!({"request_id": id.to_string(), "success": true});
    post_json(&gw, "/webhooks/auth", &[], &body)
        .await
        .assert_forbidden();
    post_json(
        &gw,
        "/webhooks/auth",
        &[("X-API-Secret", "wrong-secret-0123456789")],
        &body,
    )
    .await
    .assert_forbidden();
    let wrong_in_body =
        json!({"request_id": id.to_string(), "success": true, "secret": "wrong-secret-0123456789"});
    post_json(&gw, "/webhooks/auth", &[], &wrong_in_body)
        .await
        .assert_forbidden();
    // An unknown id without a secret is 403, not 404: no existence oracle.
    let unknown = json!({"request_id": RequestId::new_random().to_string(), "success": true});
    post_json(&gw, "/webhooks/auth", &[], &unknown)
        .await
        .assert_forbidden();

    // None of the refused calls changed the request.
    let view = get_auth(&gw, &format!("/requests/{id}")).await;
    assert_ne!(view.json["status"], "verified", "{}", view.text);
    let events = view.json["events"].as_array().unwrap();
    assert!(
        events.iter().all(|e| e["event_type"] != "verified"),
        "{}",
        view.text
    );
}

// ---------------------------------------------------------------------------------------------
// Field validation of /dispatch
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn missing_fields_and_wrong_types_name_the_field() {
    let gw = TestGateway::start().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"code": "123456"}), "phone"),
        (json!({"phone": null, "code": "123456"}), "phone"),
        (json!({"phone": 14155552671_u64, "code": "123456"}), "phone"),
        (
            json!({"phone": ["+14155552671"], "code": "123456"}),
            "phone",
        ),
        (json!({"phone": PHONE}), "code"),
        (json!({"phone": PHONE, "code": null}), "code"),
        (json!({"phone": PHONE, "code": 123456}), "code"),
        (
            json!({"phone": PHONE, "code": "123456", "channels": "sms"}),
            "channels",
        ),
        (
            json!({"phone": PHONE, "code": "123456", "channels": {"sms": true}}),
            "channels",
        ),
        (
            json!({"phone": PHONE, "code": "123456", "session_id": 42}),
            "session_id",
        ),
        (
            json!({"phone": PHONE, "code": "123456", "session_id": {"a": 1}}),
            "session_id",
        ),
        (
            json!({"phone": PHONE, "code": "123456", "webhook_url": 42}),
            "webhook_url",
        ),
        (
            json!({"phone": PHONE, "code": "123456", "ip": 2130706433_u64}),
            "ip",
        ),
    ];
    for (body, field) in cases {
        let reply = post_auth(&gw, "/dispatch", &body).await;
        assert_eq!(reply.json["field"], field, "for {body}: {}", reply.text);
        reply.assert_field(field);
    }
    assert_eq!(stored_requests(&gw).await, 0);
}

#[actix_web::test]
async fn invalid_phone_numbers_are_invalid_phone() {
    let gw = TestGateway::start().await;
    for phone in [
        "",
        "+",
        "+1415",             // too short
        "+1415555ABCD",      // letters
        "phone",             // letters only
        "+19999999999",      // +1 999: not a valid NANP number per libphonenumber
        "+1415555267112345", // 16 digits: longer than E.164 allows
        "+0014155552671",    // country code cannot start with 0
        "++14155552671",
    ] {
        let reply = post_auth(&gw, "/dispatch", &dispatch_body(phone, json!({}))).await;
        assert_eq!(
            reply.json["error"], "invalid_phone",
            "for {phone:?}: {}",
            reply.text
        );
        reply.assert_error(400, "invalid_phone");
    }
    assert_eq!(stored_requests(&gw).await, 0);
}

#[actix_web::test]
async fn code_must_be_four_to_eight_ascii_digits() {
    let gw = TestGateway::start().await;
    for code in [
        "",
        "123",
        "123456789",
        "12a4",
        "abcd",
        "12 34",
        " 1234",
        "-1234",
        "12.4",
        "１２３４",
    ] {
        let body = json!({"phone": PHONE, "code": code, "channels": ["sms"]});
        let reply = post_auth(&gw, "/dispatch", &body).await;
        assert_eq!(reply.json["field"], "code", "for {code:?}: {}", reply.text);
        reply.assert_field("code");
    }
    assert_eq!(stored_requests(&gw).await, 0);
    // Both bounds are accepted.
    for (phone, code) in [(PHONES[0], "1234"), (PHONES[1], "12345678")] {
        let body = json!({"phone": phone, "code": code, "channels": ["sms"]});
        let reply = post_auth(&gw, "/dispatch", &body).await;
        assert_eq!(reply.status, 200, "code {code}: {}", reply.text);
    }
}

#[actix_web::test]
async fn bad_channel_lists_are_invalid_request() {
    let gw = TestGateway::start().await;
    for channels in [
        json!([]),
        json!(["sms", "sms"]),
        json!(["voice", "sms", "voice"]),
        json!(["fax"]),
        json!(["sms", "email"]),
        json!([1]),
        json!([null]),
        json!([["sms"]]),
    ] {
        let body = json!({"phone": PHONE, "code": "123456", "channels": channels});
        let reply = post_auth(&gw, "/dispatch", &body).await;
        assert_eq!(
            reply.json["field"], "channels",
            "for {channels}: {}",
            reply.text
        );
        reply.assert_field("channels");
    }
    assert_eq!(stored_requests(&gw).await, 0);
}

#[actix_web::test]
async fn bad_webhook_urls_are_invalid_request() {
    let gw = TestGateway::start().await;
    let too_long = format!("https://example.com/{}", "a".repeat(2048));
    for url in [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://",
        "https://",
        "http://user:pass@example.com/hook",
        "http://user@example.com/hook",
        "not a url",
        "",
        "example.com/hook",
        too_long.as_str(),
    ] {
        let body = dispatch_body(PHONE, json!({"webhook_url": url}));
        let reply = post_auth(&gw, "/dispatch", &body).await;
        assert_eq!(
            reply.json["field"],
            "webhook_url",
            "for {:?}: {}",
            &url[..url.len().min(60)],
            reply.text
        );
        reply.assert_field("webhook_url");
    }
    assert_eq!(stored_requests(&gw).await, 0);

    // Exactly 2048 characters is still accepted.
    let hooks = HookReceiver::start();
    let base = format!("{}?pad=", hooks.url());
    let at_limit = format!("{base}{}", "a".repeat(2048 - base.len()));
    assert_eq!(at_limit.len(), 2048);
    let reply = post_auth(
        &gw,
        "/dispatch",
        &dispatch_body(PHONE, json!({"webhook_url": at_limit})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[actix_web::test]
async fn bad_ip_session_id_and_max_cost_are_invalid_request() {
    let gw = TestGateway::start().await;
    let long_session = "s".repeat(129);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"ip": "1.2.3"}), "ip"),
        (json!({"ip": "256.1.1.1"}), "ip"),
        (json!({"ip": "example.com"}), "ip"),
        (json!({"ip": "1.2.3.4/24"}), "ip"),
        (json!({"ip": ""}), "ip"),
        (json!({"ip": "2001:db8::zz"}), "ip"),
        (json!({"session_id": long_session}), "session_id"),
        (json!({"max_cost_usd": 0}), "max_cost_usd"),
        (json!({"max_cost_usd": 0.0}), "max_cost_usd"),
        (json!({"max_cost_usd": -1}), "max_cost_usd"),
        (json!({"max_cost_usd": -0.01}), "max_cost_usd"),
        (json!({"max_cost_usd": "1"}), "max_cost_usd"),
        (json!({"max_cost_usd": "abc"}), "max_cost_usd"),
        (json!({"max_cost_usd": true}), "max_cost_usd"),
    ];
    for (extra, field) in cases {
        let body = dispatch_body(PHONE, extra.clone());
        let reply = post_auth(&gw, "/dispatch", &body).await;
        assert_eq!(reply.json["field"], field, "for {extra}: {}", reply.text);
        reply.assert_field(field);
    }
    assert_eq!(stored_requests(&gw).await, 0);

    // The boundaries are accepted: 128 characters (multi-byte ones count once), IPv6, a cost.
    let session = "é".repeat(128);
    let body = dispatch_body(
        PHONES[0],
        json!({"session_id": session, "ip": "2001:db8::1", "max_cost_usd": 100}),
    );
    let reply = post_auth(&gw, "/dispatch", &body).await;
    let id = request_id_of(&reply);
    let view = get_auth(&gw, &format!("/requests/{id}")).await;
    assert_eq!(view.json["session_id"], session.as_str());
}

// ---------------------------------------------------------------------------------------------
// Body framing: JSON, size, media type
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn malformed_or_non_object_json_is_invalid_json() {
    let gw = TestGateway::start().await;
    for path in ["/dispatch", "/send-otp", "/webhooks/auth"] {
        for body in [
            "{",
            "{\"phone\": }",
            "{\"phone\": \"+14155552671\", \"code\": \"123456\",}",
            "{\"phone\": \"+14155552671\"} trailing",
            "",
            "not json",
            "[]",
            "[{\"phone\": \"+14155552671\", \"code\": \"123456\"}]",
            "\"a string\"",
            "42",
            "null",
        ] {
            let reply = raw(
                &gw,
                Method::POST,
                path,
                &[
                    ("Content-Type", "application/json"),
                    ("X-API-Secret", SECRET),
                ],
                Some(body.as_bytes().to_vec()),
            )
            .await;
            assert_eq!(reply.status, 400, "{path} {body:?}: {}", reply.text);
            reply.assert_error(400, "invalid_json");
        }
        // Not UTF-8.
        let reply = raw(
            &gw,
            Method::POST,
            path,
            &[
                ("Content-Type", "application/json"),
                ("X-API-Secret", SECRET),
            ],
            Some(vec![b'{', 0xff, 0xfe, b'}']),
        )
        .await;
        reply.assert_error(400, "invalid_json");
    }
    assert_eq!(stored_requests(&gw).await, 0);
}

/// A valid dispatch body padded with an unknown field to exactly `len` bytes.
fn padded_dispatch(phone: &str, len: usize) -> Vec<u8> {
    let head =
        format!("{{\"phone\":\"{phone}\",\"code\":\"123456\",\"channels\":[\"sms\"],\"pad\":\"");
    let tail = "\"}";
    let mut body = head.into_bytes();
    body.resize(len - tail.len(), b'x');
    body.extend_from_slice(tail.as_bytes());
    assert_eq!(body.len(), len);
    body
}

#[actix_web::test]
async fn body_over_64_kib_with_content_length_is_413() {
    let gw = TestGateway::start().await;
    let headers = [
        ("Content-Type", "application/json"),
        ("X-API-Secret", SECRET),
    ];
    for path in ["/dispatch", "/webhooks/auth", "/send-otp"] {
        let reply = raw(
            &gw,
            Method::POST,
            path,
            &headers,
            Some(padded_dispatch(PHONE, LIMIT + 1)),
        )
        .await;
        reply.assert_error(413, "payload_too_large");
    }
    // Far over the limit too.
    let reply = raw(
        &gw,
        Method::POST,
        "/dispatch",
        &headers,
        Some(padded_dispatch(PHONE, 4 * LIMIT)),
    )
    .await;
    reply.assert_error(413, "payload_too_large");
    // The DIDWW callback route has the same limit.
    let reply = raw(
        &gw,
        Method::POST,
        "/webhooks/dlr",
        &[("Content-Type", "application/vnd.api+json")],
        Some(padded_dispatch(PHONE, LIMIT + 1)),
    )
    .await;
    reply.assert_error(413, "payload_too_large");
    assert_eq!(stored_requests(&gw).await, 0);

    // Exactly 64 KiB is accepted.
    let reply = raw(
        &gw,
        Method::POST,
        "/dispatch",
        &headers,
        Some(padded_dispatch(PHONE, LIMIT)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[actix_web::test]
async fn chunked_body_over_64_kib_is_413() {
    let gw = TestGateway::start().await;
    let send_chunked = |body: Vec<u8>| {
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(8 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        gw.client
            .post(format!("{}/dispatch", gw.url))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-API-Secret", SECRET))
            .send_stream(futures_util::stream::iter(chunks))
    };
    let reply = into_reply(
        send_chunked(padded_dispatch(PHONE, LIMIT + 1))
            .await
            .unwrap(),
    )
    .await;
    reply.assert_error(413, "payload_too_large");
    let reply = into_reply(
        send_chunked(padded_dispatch(PHONE, 3 * LIMIT))
            .await
            .unwrap(),
    )
    .await;
    reply.assert_error(413, "payload_too_large");
    assert_eq!(stored_requests(&gw).await, 0);

    // A chunked body within the limit is read whole.
    let reply = into_reply(send_chunked(padded_dispatch(PHONE, LIMIT)).await.unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["status"], "sending");
}

#[actix_web::test]
async fn wrong_or_missing_content_type_is_415() {
    let gw = TestGateway::start().await;
    let body = serde_json::to_vec(&dispatch_body(PHONE, json!({}))).unwrap();
    for path in ["/dispatch", "/send-otp", "/webhooks/auth"] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonp"),
            Some("text/json"),
            None,
        ] {
            let mut headers = vec![("X-API-Secret", SECRET)];
            if let Some(ct) = content_type {
                headers.push(("Content-Type", ct));
            }
            let reply = raw(&gw, Method::POST, path, &headers, Some(body.clone())).await;
            assert_eq!(
                reply.status, 415,
                "{path} with {content_type:?}: {}",
                reply.text
            );
            reply.assert_error(415, "unsupported_media_type");
        }
    }
    assert_eq!(stored_requests(&gw).await, 0);

    // JSON with parameters or a +json suffix is fine.
    for (phone, content_type) in [
        (PHONES[0], "application/json; charset=utf-8"),
        (PHONES[1], "Application/JSON"),
    ] {
        let reply = raw(
            &gw,
            Method::POST,
            "/dispatch",
            &[("X-API-Secret", SECRET), ("Content-Type", content_type)],
            Some(serde_json::to_vec(&dispatch_body(phone, json!({}))).unwrap()),
        )
        .await;
        assert_eq!(reply.status, 200, "{content_type}: {}", reply.text);
    }
}

// ---------------------------------------------------------------------------------------------
// Routing: 404 and 405, always JSON
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn unknown_routes_are_404_json() {
    let gw = TestGateway::start().await;
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::GET, "/"),
        (Method::POST, "/dispatch/extra"),
        (Method::GET, "/requests"),
        (Method::GET, "/requests/"),
        (Method::POST, "/webhooks"),
        (Method::POST, "/webhooks/unknown"),
        (Method::GET, "/admin"),
        (Method::DELETE, "/nope/deeper"),
    ] {
        let reply = raw(
            &gw,
            method.clone(),
            path,
            &[("X-API-Secret", SECRET), ("Accept", "text/html")],
            None,
        )
        .await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
        reply.assert_error(404, "not_found");
    }
}

#[actix_web::test]
async fn wrong_methods_are_405_json_with_allow() {
    let gw = TestGateway::start().await;
    for (method, path, allowed) in [
        (Method::GET, "/dispatch", "POST"),
        (Method::PUT, "/dispatch", "POST"),
        (Method::GET, "/send-otp", "POST"),
        (Method::DELETE, "/health", "GET"),
        (Method::POST, "/health", "GET"),
        (Method::PUT, "/webhooks/dlr", "POST"),
        (Method::GET, "/webhooks/dlr", "POST"),
        (Method::GET, "/webhooks/auth", "POST"),
        (
            Method::DELETE,
            "/requests/00000000-0000-4000-8000-000000000000",
            "GET",
        ),
        (
            Method::POST,
            "/requests/00000000-0000-4000-8000-000000000000",
            "GET",
        ),
    ] {
        let reply = raw(
            &gw,
            method.clone(),
            path,
            &[("X-API-Secret", SECRET), ("Accept", "text/html")],
            None,
        )
        .await;
        assert_eq!(reply.status, 405, "{method} {path}: {}", reply.text);
        reply.assert_error(405, "method_not_allowed");
        let allow = reply.header("allow").unwrap_or("");
        assert!(
            allow.split(',').any(|m| m.trim() == allowed),
            "{method} {path}: Allow is {allow:?}, expected it to list {allowed}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn sms_only_is_422_channel_unavailable_when_sms_is_off() {
    let gw = TestGateway::start_with(|c| c.sms.enabled = false).await;
    let body = json!({"phone": PHONE, "code": "123456", "channels": ["sms"]});
    let reply = post_auth(&gw, "/dispatch", &body).await;
    reply.assert_error(422, "channel_unavailable");
    assert_eq!(stored_requests(&gw).await, 0);

    // SMS first, voice as failover: the plan falls back to what is configured.
    let body = json!({"phone": PHONE, "code": "123456", "channels": ["sms", "voice"]});
    let reply = post_auth(&gw, "/dispatch", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["channel"], "voice");
}

#[actix_web::test]
async fn send_otp_is_voice_only_and_deprecated() {
    let gw = TestGateway::start().await;
    // Even asking for SMS: /send-otp forces voice.
    let body = json!({"phone": PHONE, "code": "123456", "channels": ["sms"]});
    let reply = post_auth(&gw, "/send-otp", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["channel"], "voice");
    assert_eq!(reply.header("deprecation"), Some("true"));
    let link = reply.header("link").unwrap_or("");
    assert!(link.contains("</dispatch>"), "Link header: {link:?}");
    let plan = stored_row(&gw, request_id_of(&reply)).await.channel_plan;
    assert_eq!(plan, r#"["voice"]"#);

    // The client's channels are replaced, not validated: even a bogus list ends in voice.
    let body = json!({"phone": PHONE, "code": "123456", "channels": "fax"});
    let reply = post_auth(&gw, "/send-otp", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["channel"], "voice");

    // Its validation errors are the same as /dispatch, also marked deprecated.
    let reply = post_auth(
        &gw,
        "/send-otp",
        &json!({"phone": "+1415", "code": "123456"}),
    )
    .await;
    reply.assert_error(400, "invalid_phone");
    assert_eq!(reply.header("deprecation"), Some("true"));
}

#[actix_web::test]
async fn default_channels_are_filtered_to_configured_ones() {
    // CHANNELS_DEFAULT = sms,voice (the default) with SMS off: the plan is voice alone.
    let gw = TestGateway::start_with(|c| c.sms.enabled = false).await;
    let reply = post_auth(&gw, "/dispatch", &json!({"phone": PHONE, "code": "123456"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["channel"], "voice");
    let id = request_id_of(&reply);
    let plan = stored_row(&gw, id).await.channel_plan;
    assert_eq!(plan, r#"["voice"]"#);

    // CHANNELS_DEFAULT = sms with SMS off: nothing configured is requested.
    let gw = TestGateway::start_with(|c| {
        c.sms.enabled = false;
        c.channels.default = vec![Channel::Sms];
    })
    .await;
    let reply = post_auth(&gw, "/dispatch", &json!({"phone": PHONE, "code": "123456"})).await;
    reply.assert_error(422, "channel_unavailable");
    // An explicit list still overrides the default.
    let body = json!({"phone": PHONE, "code": "123456", "channels": ["voice"]});
    let reply = post_auth(&gw, "/dispatch", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["channel"], "voice");
}

// ---------------------------------------------------------------------------------------------
// Success shapes
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn dispatch_answers_exact_shape_and_normalises_phone() {
    let gw = TestGateway::start().await;
    for (given, stored) in [
        ("14155552671", "+14155552671"),
        ("+442079460123", "+442079460123"),
    ] {
        let reply = post_auth(&gw, "/dispatch", &dispatch_body(given, json!({}))).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(reply
            .header("content-type")
            .unwrap_or("")
            .starts_with("application/json"));
        let id = request_id_of(&reply);
        assert_eq!(id.0.get_version_num(), 4, "request_id is a UUID v4");
        assert_eq!(
            reply.json,
            json!({
                "status": "sending",
                "request_id": id.to_string(),
                "channel": "sms",
                "phone": stored,
            })
        );
        let view = get_auth(&gw, &format!("/requests/{id}")).await;
        assert_eq!(view.json["phone"], stored);
    }
}

#[actix_web::test]
async fn request_view_has_the_spec_shape_and_never_the_code() {
    let ttl = Duration::from_secs(321);
    let mut gw = TestGateway::start_with(|c| c.otp_ttl = ttl).await;
    let reply = post_auth(
        &gw,
        "/dispatch",
        &dispatch_body(PHONE, json!({"session_id": "sess-42"})),
    )
    .await;
    let id = request_id_of(&reply);
    gw.events.wait_for_status(id, Status::Delivered).await;

    let view = get_auth(&gw, &format!("/requests/{id}")).await;
    assert_eq!(view.status, 200, "{}", view.text);
    let v = &view.json;
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for key in [
        "request_id",
        "status",
        "channel",
        "channel_status",
        "phone",
        "session_id",
        "created_at",
        "updated_at",
        "expires_at",
        "events",
    ] {
        assert!(keys.contains(&key), "missing {key}: {}", view.text);
    }
    assert_eq!(v["request_id"], id.to_string());
    assert_eq!(v["status"], "delivered");
    assert_eq!(v["channel"], "sms");
    assert!(v["channel_status"].is_string(), "{}", view.text);
    assert_eq!(v["phone"], PHONE);
    assert_eq!(v["session_id"], "sess-42");
    let created = v["created_at"].as_i64().expect("created_at in ms");
    let updated = v["updated_at"].as_i64().expect("updated_at in ms");
    let expires = v["expires_at"].as_i64().expect("expires_at in ms");
    assert!(updated >= created);
    assert_eq!(
        expires - created,
        i64::try_from(ttl.as_millis()).unwrap(),
        "expires_at must be created_at + OTP_TTL"
    );
    let events = v["events"].as_array().unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["sending", "sent", "delivered"], "{}", view.text);
    let mut last = created;
    for event in events {
        assert_eq!(event["channel"], "sms");
        let at = event["timestamp"].as_i64().expect("event timestamp in ms");
        assert!(at >= last, "events out of order: {}", view.text);
        last = at;
    }

    // Neither the code nor anything derived from it is exposed.
    let row = stored_row(&gw, id).await;
    assert!(!view.text.contains("code_hash"), "{}", view.text);
    assert!(!view.text.contains("code_sealed"), "{}", view.text);
    assert!(!view.text.contains(&row.code_hash), "code hash exposed");
    let mut strings = Vec::new();
    strings_in(v, "", &mut strings);
    for (path, s) in &strings {
        if s == &id.to_string() {
            continue;
        }
        assert!(
            !s.contains("123456"),
            "code exposed at {path}: {}",
            view.text
        );
        assert!(
            !path.ends_with(".<key>") || (s != "code" && !s.starts_with("code_")),
            "code field exposed at {path}: {}",
            view.text
        );
    }
}

#[actix_web::test]
async fn unknown_or_malformed_request_ids_are_404() {
    let gw = TestGateway::start().await;
    for path in [
        format!("/requests/{}", RequestId::new_random()),
        "/requests/not-a-uuid".to_owned(),
        "/requests/12345".to_owned(),
        "/requests/%FF%FE".to_owned(),
        "/requests/00000000-0000-4000-8000-00000000000g".to_owned(),
    ] {
        let reply = get_auth(&gw, &path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        reply.assert_error(404, "not_found");
    }
}

// ---------------------------------------------------------------------------------------------
// Feedback
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn feedback_bad_input_is_refused() {
    let gw = TestGateway::start().await;
    let id = request_id_of(&post_auth(&gw, "/dispatch", &dispatch_body(PHONE, json!({}))).await);

    let unknown = json!({"request_id": RequestId::new_random().to_string(), "success": true});
    post_auth(&gw, "/webhooks/auth", &unknown)
        .await
        .assert_error(404, "not_found");

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"request_id": "not-a-uuid", "success": true}),
            "request_id",
        ),
        (json!({"request_id": "", "success": true}), "request_id"),
        (json!({"request_id": 42, "success": true}), "request_id"),
        (json!({"success": true}), "request_id"),
        (json!({"request_id": id.to_string()}), "success"),
        (
            json!({"request_id": id.to_string(), "success": null}),
            "success",
        ),
        (
            json!({"request_id": id.to_string(), "success": "true"}),
            "success",
        ),
        (
            json!({"request_id": id.to_string(), "success": 1}),
            "success",
        ),
    ];
    for (body, field) in cases {
        let reply = post_auth(&gw, "/webhooks/auth", &body).await;
        assert_eq!(reply.json["field"], field, "for {body}: {}", reply.text);
        reply.assert_field(field);
    }
    // None of it touched the real request.
    let view = get_auth(&gw, &format!("/requests/{id}")).await;
    let events = view.json["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .all(|e| e["event_type"] != "verified" && e["event_type"] != "rejected"),
        "{}",
        view.text
    );
}

#[actix_web::test]
async fn feedback_success_verifies() {
    let mut gw = TestGateway::start().await;
    let id = request_id_of(&post_auth(&gw, "/dispatch", &dispatch_body(PHONE, json!({}))).await);
    gw.events.wait_for_status(id, Status::Delivered).await;

    let reply = post_auth(
        &gw,
        "/webhooks/auth",
        &json!({"request_id": id.to_string(), "success": true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["request_id"], id.to_string());
    gw.events.wait_for(id, EventType::Verified).await;

    // Stored before the answer: the very next read shows it.
    let view = get_auth(&gw, &format!("/requests/{id}")).await;
    assert_eq!(view.json["status"], "verified", "{}", view.text);
    assert!(view.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event_type"] == "verified"));
}

#[actix_web::test]
async fn feedback_failure_then_success_goes_rejected_then_verified() {
    let mut gw = TestGateway::start().await;
    let id = request_id_of(&post_auth(&gw, "/dispatch", &dispatch_body(PHONE, json!({}))).await);
    gw.events.wait_for_status(id, Status::Delivered).await;
    let path = format!("/requests/{id}");

    let reply = post_auth(
        &gw,
        "/webhooks/auth",
        &json!({"request_id": id.to_string(), "success": false}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(get_auth(&gw, &path).await.json["status"], "rejected");

    let reply = post_auth(
        &gw,
        "/webhooks/auth",
        &json!({"request_id": id.to_string(), "success": true}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(get_auth(&gw, &path).await.json["status"], "verified");

    // Nothing leaves verified: a later failure report does not undo it.
    let reply = post_auth(
        &gw,
        "/webhooks/auth",
        &json!({"request_id": id.to_string(), "success": false}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(get_auth(&gw, &path).await.json["status"], "verified");
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn health_reports_sandbox_state_without_auth() {
    let gw = TestGateway::start().await;
    let reply = raw(&gw, Method::GET, "/health", &[], None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
    let h = &reply.json;
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["mode"], "sandbox");
    assert_eq!(h["database"], "connected");
    assert_eq!(h["sms"], "enabled");
    // The first keepalive OPTIONS may still be on its way to the sandbox trunk.
    assert!(
        h["sip"] == "reachable" || h["sip"] == "checking",
        "sip: {}",
        reply.text
    );
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["uptime"].is_u64(), "uptime: {}", reply.text);

    // Load balancers may probe with HEAD: same status, no body.
    let reply = raw(&gw, Method::HEAD, "/health", &[], None).await;
    assert_eq!(reply.status, 200, "HEAD /health: {}", reply.text);
    assert!(
        reply.text.is_empty(),
        "HEAD answered a body: {}",
        reply.text
    );
}

// ---------------------------------------------------------------------------------------------
// Client IP (SPEC §3)
// ---------------------------------------------------------------------------------------------

async fn dispatch_with(
    gw: &TestGateway,
    phone: &str,
    xff: Option<&str>,
    extra: Value,
) -> RequestId {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("X-API-Secret", SECRET),
    ];
    if let Some(xff) = xff {
        headers.push(("X-Forwarded-For", xff));
    }
    let body = serde_json::to_vec(&dispatch_body(phone, extra)).unwrap();
    request_id_of(&raw(gw, Method::POST, "/dispatch", &headers, Some(body)).await)
}

#[actix_web::test]
async fn trust_proxy_one_takes_the_last_forwarded_address() {
    let gw = TestGateway::start_with(|c| c.trust_proxy = 1).await;
    let id = dispatch_with(&gw, PHONES[0], Some("1.1.1.1, 2.2.2.2"), json!({})).await;
    assert_eq!(stored_ip(&gw, id).await.as_deref(), Some("2.2.2.2"));
    // No forwarding header: the socket peer.
    let id = dispatch_with(&gw, PHONES[1], None, json!({})).await;
    assert_eq!(stored_ip(&gw, id).await.as_deref(), Some("127.0.0.1"));
    // The backend's `ip` field wins over the forwarded address.
    let id = dispatch_with(
        &gw,
        PHONES[2],
        Some("1.1.1.1, 2.2.2.2"),
        json!({"ip": "203.0.113.7"}),
    )
    .await;
    assert_eq!(stored_ip(&gw, id).await.as_deref(), Some("203.0.113.7"));
}

#[actix_web::test]
async fn trust_proxy_two_takes_the_second_from_the_right() {
    let gw = TestGateway::start_with(|c| c.trust_proxy = 2).await;
    let id = dispatch_with(&gw, PHONES[0], Some("1.1.1.1, 2.2.2.2"), json!({})).await;
    assert_eq!(stored_ip(&gw, id).await.as_deref(), Some("1.1.1.1"));
    let id = dispatch_with(&gw, PHONES[1], Some("9.9.9.9, 1.1.1.1, 2.2.2.2"), json!({})).await;
    assert_eq!(stored_ip(&gw, id).await.as_deref(), Some("1.1.1.1"));
}

#[actix_web::test]
async fn trust_proxy_zero_ignores_forwarding_headers() {
    let gw = TestGateway::start().await;
    assert_eq!(gw.gateway.config.trust_proxy, 0);
    let id = dispatch_with(&gw, PHONES[0], Some("1.1.1.1, 2.2.2.2"), json!({})).await;
    assert_eq!(stored_ip(&gw, id).await.as_deref(), Some("127.0.0.1"));
    // The body field still wins (IPv6 stored in canonical form).
    let id = dispatch_with(
        &gw,
        PHONES[1],
        Some("1.1.1.1, 2.2.2.2"),
        json!({"ip": "2001:DB8:0:0::7"}),
    )
    .await;
    assert_eq!(stored_ip(&gw, id).await.as_deref(), Some("2001:db8::7"));
}
