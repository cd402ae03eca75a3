//! Integration tests of the simulated DIDWW SMS OUT API (`otp_gateway::sandbox::sms`): real HTTP on
//! loopback, with a small callback receiver standing in for the gateway's `/webhooks/dlr`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use otp_gateway::sandbox::sms::{
    CallbackKind, SandboxSms, SandboxSmsOptions, SmsBehaviour, CALLBACK_RETRIES,
};
use serde_json::{json, Value};
use tokio::sync::watch;

const USER: &str = "otp-sms-trunk";
const PASS: &str = "example-password";
const JSON_API: &str = "application/vnd.api+json";
const WAIT: Duration = Duration::from_secs(5);
/// Bounded wait used only to show that something does NOT happen.
const QUIET: Duration = Duration::from_millis(300);

const REQUEST_FIXTURE: &str = include_str!("fixtures/didww/sms-send-request.json");
const ERROR_400_FIXTURE: &str = include_str!("fixtures/didww/sms-send-error-400.json");
const ERROR_400_TYPE_FIXTURE: &str =
    include_str!("fixtures/didww/sms-send-error-400-type-invalid.json");
const ERROR_401_FIXTURE: &str = include_str!("fixtures/didww/sms-send-error-401.json");

// ---------------------------------------------------------------------------------------------
// Callback receiver (stands in for the gateway)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Got {
    query: String,
    content_type: Option<String>,
    body: Value,
}

struct ReceiverState {
    got: Mutex<Vec<Got>>,
    count: watch::Sender<usize>,
    answer: AtomicU16,
    /// While > 0, answer 503 and count down (a gateway that recovers).
    fail_next: AtomicU16,
}

struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    handle: ServerHandle,
}

impl Receiver {
    async fn start() -> Receiver {
        let state = Arc::new(ReceiverState {
            got: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
            answer: AtomicU16::new(200),
            fail_next: AtomicU16::new(0),
        });
        let st = Arc::clone(&state);
        let server = HttpServer::new(move || {
            let st = Arc::clone(&st);
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let st = Arc::clone(&st);
                async move {
                    let got = Got {
                        query: req.query_string().to_owned(),
                        content_type: req
                            .headers()
                            .get("content-type")
                            .map(|v| v.to_str().unwrap().to_owned()),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    };
                    st.got.lock().unwrap().push(got);
                    st.count.send_modify(|n| *n += 1);
                    let failing = st
                        .fail_next
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let status = if failing {
                        503
                    } else {
                        st.answer.load(Ordering::SeqCst)
                    };
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .json(json!({"ok": status < 300}))
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Receiver {
            url: format!("http://{addr}/webhooks/dlr?token=secret-token"),
            state,
            handle,
        }
    }

    fn answer_with(&self, status: u16) {
        self.state.answer.store(status, Ordering::SeqCst);
    }

    async fn wait(&self, n: usize, timeout: Duration) -> Vec<Got> {
        let mut rx = self.state.count.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await;
        self.state.got.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn options(callback_url: &str, default_behaviour: SmsBehaviour) -> SandboxSmsOptions {
    SandboxSmsOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        username: USER.to_owned(),
        password: PASS.to_owned(),
        callback_url: callback_url.to_owned(),
        callback_delay: Duration::from_millis(5),
        default_behaviour,
        ..SandboxSmsOptions::default()
    }
}

async fn setup(default_behaviour: SmsBehaviour) -> (SandboxSms, Receiver) {
    let receiver = Receiver::start().await;
    let sms = SandboxSms::start(options(&receiver.url, default_behaviour)).unwrap();
    (sms, receiver)
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    headers: actix_web::http::header::HeaderMap,
    body: Value,
}

async fn send_raw(url: &str, auth: Option<(&str, &str)>, content_type: &str, body: &str) -> Answer {
    let client = awc::Client::default();
    let mut req = client
        .post(url)
        .insert_header(("Content-Type", content_type));
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, p);
    }
    let mut resp = req.send_body(body.to_owned()).await.unwrap();
    let bytes = resp.body().await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        content_type: resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        headers: resp.headers().clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn send(sms: &SandboxSms, body: &str) -> Answer {
    send_raw(&sms.endpoint(), Some((USER, PASS)), JSON_API, body).await
}

fn message(destination: &str) -> String {
    json!({"data": {"type": "outbound_messages", "attributes": {
        "destination": destination,
        "source": "15555550100",
        "content": "Your verification code is: 482913",
    }}})
    .to_string()
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn is_iso_utc(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
}

async fn control(sms: &SandboxSms, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = awc::Client::default();
    let url = format!("{}{path}", sms.base_url());
    let req = match method {
        "GET" => client.get(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    };
    let mut resp = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    let bytes = resp.body().await.unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

// ---------------------------------------------------------------------------------------------
// API responses
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn created_has_exact_shape() {
    let (sms, _rx) = setup(SmsBehaviour::Delivered).await;
    assert!(sms.endpoint().starts_with("http://127.0.0.1:"));
    assert!(sms.endpoint().ends_with("/outbound_messages"));

    let answer = send(&sms, REQUEST_FIXTURE).await;
    assert_eq!(answer.status, 201);
    assert_eq!(answer.content_type.as_deref(), Some(JSON_API));

    let id = answer.body["data"]["id"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    assert_eq!(uuid.get_version_num(), 4);

    // Same document as the fixture, apart from the fresh id.
    let mut expected = fixture(include_str!("fixtures/didww/sms-send-response-201.json"));
    expected["data"]["id"] = json!(id);
    assert_eq!(answer.body, expected);

    let received = sms.wait_for_received(1, WAIT).await;
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/outbound_messages");
    assert_eq!(r.content_type.as_deref(), Some(JSON_API));
    // The fixture's header encodes otp-sms-trunk:example-password.
    assert_eq!(
        r.authorization.as_deref(),
        Some("Basic b3RwLXNtcy10cnVuazpleGFtcGxlLXBhc3N3b3Jk")
    );
    assert_eq!(r.raw_body, REQUEST_FIXTURE);
    assert_eq!(r.body.as_ref(), Some(&fixture(REQUEST_FIXTURE)));
    assert_eq!(r.message_id.as_deref(), Some(id.as_str()));
    sms.stop().await;
}

#[actix_web::test]
async fn wrong_or_missing_auth_is_401() {
    let (sms, rx) = setup(SmsBehaviour::Delivered).await;
    let wrong = send_raw(
        &sms.endpoint(),
        Some((USER, "nope")),
        JSON_API,
        REQUEST_FIXTURE,
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body, fixture(ERROR_401_FIXTURE));
    assert_eq!(wrong.content_type.as_deref(), Some(JSON_API));

    let missing = send_raw(&sms.endpoint(), None, JSON_API, REQUEST_FIXTURE).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["errors"][0]["status"], "401");

    // Recorded before validation, without a message id; no callbacks.
    let received = sms.wait_for_received(2, WAIT).await;
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.message_id.is_none()));
    assert!(rx.wait(1, QUIET).await.is_empty());
}

#[actix_web::test]
async fn wrong_content_type_is_415() {
    let (sms, _rx) = setup(SmsBehaviour::Delivered).await;
    for ct in [
        "application/json",
        "application/vnd.api+json; charset=utf-8",
        "text/plain",
    ] {
        let answer = send_raw(&sms.endpoint(), Some((USER, PASS)), ct, REQUEST_FIXTURE).await;
        assert_eq!(answer.status, 415, "content type {ct}");
        assert_eq!(answer.body["errors"][0]["code"], "415");
    }
}

#[actix_web::test]
async fn invalid_bodies_are_400() {
    let (sms, _rx) = setup(SmsBehaviour::Delivered).await;

    let plus = send(&sms, &message("+15555550123")).await;
    assert_eq!(plus.status, 400);
    assert_eq!(plus.body, fixture(ERROR_400_FIXTURE));

    let wrong_type = REQUEST_FIXTURE.replace("\"outbound_messages\"", "\"messages\"");
    let answer = send(&sms, &wrong_type).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body, fixture(ERROR_400_TYPE_FIXTURE));

    let empty_content = REQUEST_FIXTURE.replace("Your verification code is: 482913", "");
    assert_eq!(send(&sms, &empty_content).await.status, 400);

    let no_source = json!({"data": {"type": "outbound_messages", "attributes": {
        "destination": "15555550123", "content": "hi"}}});
    assert_eq!(send(&sms, &no_source.to_string()).await.status, 400);

    for junk in ["", "not json", "[]", "{\"data\":null}", "\u{0}\u{1}"] {
        let answer = send(&sms, junk).await;
        assert_eq!(answer.status, 400, "body {junk:?}");
        assert_eq!(answer.body["errors"][0]["detail"], "Invalid request");
    }
}

#[actix_web::test]
async fn unknown_routes_are_404_json() {
    let (sms, _rx) = setup(SmsBehaviour::Delivered).await;
    let url = format!("{}/bulk_outbound_messages", sms.base_url());
    let answer = send_raw(&url, Some((USER, PASS)), JSON_API, REQUEST_FIXTURE).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body["errors"][0]["status"], "404");

    let mut resp = awc::Client::default()
        .get(sms.endpoint())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let body: Value = serde_json::from_slice(&resp.body().await.unwrap()).unwrap();
    assert_eq!(body["errors"][0]["title"], "Not Found");
}

// ---------------------------------------------------------------------------------------------
// Behaviours and callbacks
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn delivered_sends_processing_then_dlr() {
    let (sms, rx) = setup(SmsBehaviour::Delivered).await;
    let answer = send(&sms, REQUEST_FIXTURE).await;
    assert_eq!(answer.status, 201);
    let id = answer.body["data"]["id"].as_str().unwrap().to_owned();

    let got = rx.wait(2, WAIT).await;
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_eq!(g.content_type.as_deref(), Some(JSON_API));
        assert_eq!(g.query, "token=secret-token");
        assert_eq!(g.body["data"]["id"], json!(id));
    }

    let processing = &got[0].body["data"];
    assert_eq!(processing["type"], "outbound_message_callbacks");
    let attrs = &processing["attributes"];
    assert_eq!(attrs["status"], "Success");
    assert_eq!(attrs["code_id"], Value::Null);
    assert_eq!(attrs["fragments_sent"], 1);
    assert_eq!(attrs["price"], 0.0079);
    assert_eq!(attrs["source"], "15555550100");
    assert_eq!(attrs["destination"], "15555550123");
    assert!(is_iso_utc(attrs["time_start"].as_str().unwrap()));
    assert!(is_iso_utc(attrs["end_time"].as_str().unwrap()));
    // Same attribute set as the fixture.
    let fixture_attrs = fixture(include_str!("fixtures/didww/dlr-success-processing.json"));
    let mut keys: Vec<_> = attrs.as_object().unwrap().keys().collect();
    let mut fixture_keys: Vec<_> = fixture_attrs["data"]["attributes"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    keys.sort();
    fixture_keys.sort();
    assert_eq!(keys, fixture_keys);

    let dlr = &got[1].body["data"];
    assert_eq!(dlr["type"], "dlr_event");
    assert_eq!(dlr["attributes"]["status"], "DELIVERED");
    assert_eq!(dlr["attributes"]["destination"], "15555550123");
    assert!(is_iso_utc(dlr["attributes"]["time"].as_str().unwrap()));

    let sent = sms.wait_for_callbacks(2, WAIT).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].kind, CallbackKind::Processing);
    assert_eq!(sent[1].kind, CallbackKind::Dlr);
    assert!(sent.iter().all(|c| c.accepted() && c.attempt == 1));
    assert!(sent.iter().all(|c| c.message_id == id));
    assert_eq!(sent[0].body, got[0].body);
    assert_eq!(sent[1].response_body.as_deref(), Some("{\"ok\":true}"));
    rx.handle.stop(false).await;
    sms.stop().await;
}

#[actix_web::test]
async fn failed_sends_routing_error_and_no_dlr() {
    let (sms, rx) = setup(SmsBehaviour::Failed { code_id: 1 }).await;
    sms.set_behaviour("15555550189", SmsBehaviour::Failed { code_id: 100 });

    let a = send(&sms, &message("15555550178")).await;
    assert_eq!(a.status, 201);
    let got = rx.wait(1, WAIT).await;
    let attrs = &got[0].body["data"]["attributes"];
    assert_eq!(got[0].body["data"]["type"], "outbound_message_callbacks");
    assert_eq!(got[0].body["data"]["id"], a.body["data"]["id"]);
    assert_eq!(attrs["status"], "Routing error");
    assert_eq!(attrs["code_id"], 1);
    assert_eq!(attrs["fragments_sent"], 0);
    assert_eq!(attrs["price"], 0);

    let b = send(&sms, &message("15555550189")).await;
    assert_eq!(b.status, 201);
    let got = rx.wait(2, WAIT).await;
    assert_eq!(got[1].body["data"]["attributes"]["status"], "Failed");
    assert_eq!(got[1].body["data"]["attributes"]["code_id"], 100);

    // No DLR follows a processing failure.
    assert_eq!(rx.wait(3, QUIET).await.len(), 2);
}

#[actix_web::test]
async fn no_dlr_sends_only_processing() {
    let (sms, rx) = setup(SmsBehaviour::NoDlr).await;
    assert_eq!(send(&sms, REQUEST_FIXTURE).await.status, 201);
    let got = rx.wait(1, WAIT).await;
    assert_eq!(got[0].body["data"]["attributes"]["status"], "Success");
    assert_eq!(rx.wait(2, QUIET).await.len(), 1);
    assert_eq!(sms.callbacks_sent().len(), 1);
}

#[actix_web::test]
async fn undelivered_sends_upper_case_dlr() {
    let (sms, rx) = setup(SmsBehaviour::Undelivered {
        status: "expired".to_owned(),
    })
    .await;
    assert_eq!(send(&sms, REQUEST_FIXTURE).await.status, 201);
    let got = rx.wait(2, WAIT).await;
    assert_eq!(got[0].body["data"]["attributes"]["status"], "Success");
    assert_eq!(got[1].body["data"]["type"], "dlr_event");
    assert_eq!(got[1].body["data"]["attributes"]["status"], "EXPIRED");
}

#[actix_web::test]
async fn api_error_answers_status_without_callbacks() {
    let (sms, rx) = setup(SmsBehaviour::ApiError { status: 500 }).await;
    let answer = send(&sms, REQUEST_FIXTURE).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.body["errors"][0]["code"], "500");
    assert_eq!(answer.body["errors"][0]["status"], "500");
    assert_eq!(answer.body["errors"][0]["title"], "Internal Server Error");

    sms.set_default_behaviour(SmsBehaviour::ApiError { status: 429 });
    let limited = send(&sms, REQUEST_FIXTURE).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers.get("retry-after").unwrap(), "1");

    sms.set_default_behaviour(SmsBehaviour::ApiError { status: 400 });
    let bad = send(&sms, REQUEST_FIXTURE).await;
    assert_eq!(bad.body, fixture(ERROR_400_FIXTURE));

    assert!(sms.received().iter().all(|r| r.message_id.is_none()));
    assert!(rx.wait(1, QUIET).await.is_empty());
    assert!(sms.callbacks_sent().is_empty());
}

#[actix_web::test]
async fn slow_delays_the_201_then_delivers() {
    let (sms, rx) = setup(SmsBehaviour::Slow { delay_ms: 300 }).await;
    let started = Instant::now();
    let answer = send(&sms, REQUEST_FIXTURE).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(answer.status, 201);
    let got = rx.wait(2, WAIT).await;
    assert_eq!(got[1].body["data"]["attributes"]["status"], "DELIVERED");
}

#[actix_web::test]
async fn failing_callback_is_retried_then_given_up() {
    let (sms, rx) = setup(SmsBehaviour::NoDlr).await;
    rx.answer_with(500);
    assert_eq!(send(&sms, REQUEST_FIXTURE).await.status, 201);
    let attempts = (1 + CALLBACK_RETRIES) as usize;
    let sent = sms.wait_for_callbacks(attempts, WAIT).await;
    assert_eq!(sent.len(), attempts);
    for (i, c) in sent.iter().enumerate() {
        assert_eq!(c.attempt as usize, i + 1);
        assert_eq!(c.status, Some(500));
        assert!(!c.accepted());
    }
    assert_eq!(rx.wait(attempts + 1, QUIET).await.len(), attempts);
    assert_eq!(sms.callbacks_sent().len(), attempts);
}

#[actix_web::test]
async fn retry_succeeds_after_recovery_and_order_is_kept() {
    let (sms, rx) = setup(SmsBehaviour::Delivered).await;
    rx.state.fail_next.store(2, Ordering::SeqCst);
    assert_eq!(send(&sms, REQUEST_FIXTURE).await.status, 201);
    let sent = sms.wait_for_callbacks(4, WAIT).await;
    let summary: Vec<_> = sent.iter().map(|c| (c.kind, c.attempt, c.status)).collect();
    assert_eq!(
        summary,
        [
            (CallbackKind::Processing, 1, Some(503)),
            (CallbackKind::Processing, 2, Some(503)),
            (CallbackKind::Processing, 3, Some(200)),
            (CallbackKind::Dlr, 1, Some(200)),
        ]
    );
    let got = rx.wait(4, WAIT).await;
    assert_eq!(got[3].body["data"]["type"], "dlr_event");
}

#[actix_web::test]
async fn unreachable_gateway_is_recorded() {
    // Callback URL nobody listens on: transport errors are recorded, nothing panics.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/webhooks/dlr", dead.local_addr().unwrap());
    drop(dead);
    let sms = SandboxSms::start(options(&dead_url, SmsBehaviour::NoDlr)).unwrap();
    assert_eq!(send(&sms, REQUEST_FIXTURE).await.status, 201);
    let attempts = (1 + CALLBACK_RETRIES) as usize;
    let sent = sms.wait_for_callbacks(attempts, WAIT).await;
    assert_eq!(sent.len(), attempts);
    assert!(sent.iter().all(|c| c.status.is_none() && c.error.is_some()));
    sms.stop().await;
}

#[actix_web::test]
async fn control_route_switches_behaviour() {
    let (sms, rx) = setup(SmsBehaviour::Delivered).await;

    let (status, state) = control(
        &sms,
        "POST",
        "/sandbox/behaviours",
        Some(json!({"destination": "15555550199",
                    "behaviour": {"kind": "api_error", "status": 429}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        state["destinations"]["15555550199"],
        json!({"kind": "api_error", "status": 429})
    );
    assert_eq!(
        sms.behaviour_for("+15555550199"),
        SmsBehaviour::ApiError { status: 429 }
    );
    assert_eq!(send(&sms, &message("15555550199")).await.status, 429);
    assert_eq!(send(&sms, &message("15555550123")).await.status, 201);

    let (status, _) = control(
        &sms,
        "POST",
        "/sandbox/behaviours",
        Some(json!({"default": {"kind": "failed", "code_id": 3}})),
    )
    .await;
    assert_eq!(status, 200);
    let c = send(&sms, &message("15555550124")).await;
    assert_eq!(c.status, 201);
    let c_id = c.body["data"]["id"].clone();
    let got = rx.wait(3, WAIT).await;
    let failed = got
        .iter()
        .find(|g| g.body["data"]["id"] == c_id)
        .expect("callback for the third message");
    assert_eq!(failed.body["data"]["attributes"]["status"], "Routing error");
    assert_eq!(failed.body["data"]["attributes"]["code_id"], 3);

    // Invalid control requests.
    for bad in [
        json!({}),
        json!({"destination": "1555"}),
        json!({"destination": "abc", "behaviour": {"kind": "delivered"}}),
        json!({"default": {"kind": "nonsense"}}),
        json!({"default": {"kind": "delivered"}, "extra": 1}),
    ] {
        let (status, body) = control(&sms, "POST", "/sandbox/behaviours", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["errors"][0]["status"], "400");
    }

    let (status, received) = control(&sms, "GET", "/sandbox/received", None).await;
    assert_eq!(status, 200);
    let received = received.as_array().unwrap();
    assert_eq!(received.len(), 3);
    assert_eq!(received[2]["message_id"], c_id);
    assert_eq!(received[0]["path"], "/outbound_messages");

    let (status, callbacks) = control(&sms, "GET", "/sandbox/callbacks", None).await;
    assert_eq!(status, 200);
    assert!(!callbacks.as_array().unwrap().is_empty());

    let (status, state) = control(&sms, "DELETE", "/sandbox/behaviours", None).await;
    assert_eq!(status, 200);
    assert_eq!(state["destinations"], json!({}));
    assert_eq!(state["default"], json!({"kind": "failed", "code_id": 3}));

    let (status, _) = control(&sms, "GET", "/sandbox/nothing", None).await;
    assert_eq!(status, 404);
    // Control routes are not recorded as API traffic.
    assert_eq!(sms.received().len(), 3);
}

#[actix_web::test]
async fn behaviour_serde_is_kind_tagged() {
    let cases = [
        (SmsBehaviour::Delivered, json!({"kind": "delivered"})),
        (
            SmsBehaviour::Failed { code_id: 1 },
            json!({"kind": "failed", "code_id": 1}),
        ),
        (SmsBehaviour::NoDlr, json!({"kind": "no_dlr"})),
        (
            SmsBehaviour::Undelivered {
                status: "EXPIRED".into(),
            },
            json!({"kind": "undelivered", "status": "EXPIRED"}),
        ),
        (
            SmsBehaviour::ApiError { status: 500 },
            json!({"kind": "api_error", "status": 500}),
        ),
        (
            SmsBehaviour::Slow { delay_ms: 250 },
            json!({"kind": "slow", "delay_ms": 250}),
        ),
    ];
    for (b, v) in cases {
        assert_eq!(serde_json::to_value(&b).unwrap(), v);
        assert_eq!(serde_json::from_value::<SmsBehaviour>(v).unwrap(), b);
    }
}

#[actix_web::test]
async fn many_concurrent_messages_get_distinct_ids_and_callbacks() {
    let (sms, rx) = setup(SmsBehaviour::Delivered).await;
    let n = 50;
    let answers = futures_util::future::join_all((0..n).map(|i| {
        let sms = sms.clone();
        async move { send(&sms, &message(&format!("1555555{i:04}"))).await }
    }))
    .await;
    let mut ids: Vec<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 201);
            a.body["data"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert_eq!(sms.wait_for_received(n, WAIT).await.len(), n);
    assert_eq!(rx.wait(2 * n, WAIT).await.len(), 2 * n);

    // Per message: the processing callback comes before the DLR.
    let got = rx.wait(2 * n, WAIT).await;
    for id in &ids {
        let kinds: Vec<_> = got
            .iter()
            .filter(|g| g.body["data"]["id"] == json!(id))
            .map(|g| g.body["data"]["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["outbound_message_callbacks", "dlr_event"]);
    }
}

#[actix_web::test]
async fn wait_for_received_times_out_with_what_there_is() {
    let (sms, _rx) = setup(SmsBehaviour::Delivered).await;
    let started = Instant::now();
    assert!(sms
        .wait_for_received(1, Duration::from_millis(100))
        .await
        .is_empty());
    assert!(started.elapsed() >= Duration::from_millis(100));
    sms.stop().await;
    // Stopping twice is harmless.
    sms.stop().await;
}
