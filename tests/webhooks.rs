//! Client webhooks end to end (SPEC §6): headers, body and signature; per-request ordering over the
//! persistent outbox; retries with backoff on non-2xx and timeouts, giving up after
//! `WEBHOOK_MAX_ATTEMPTS`; every attempt logged; redirects not followed; the SSRF guard at send
//! time; client-safe metadata; and resumption by a second gateway on the same database.
//!
//! Synchronisation is event-driven (`hooks.wait_until`, `gw.events.wait_for*`). The attempt log has
//! no live notification, so [`wait_for_log`] re-reads the database until a condition holds (with a
//! deadline); no test sleeps a fixed time to let something happen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actors::webhook::sender::CountQueued;
use actors::{EventType, RequestId, Status};
use common::hooks::{Hook, HookReceiver};
use common::{TestGateway, PATIENCE, PHONE, SECRET};
use otp_gateway::config::{Config, Secret};
use otp_gateway::db::models::request;
use otp_gateway::db::models::webhook::{
    list_attempts_by_request, list_outbox_by_request, AttemptRow, OutboxRow,
};
use otp_gateway::db::DbStore;
use otp_gateway::sandbox::sms::SmsBehaviour;
use ring::hmac;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Other valid US numbers, for tests that make several requests.
const PHONE_2: &str = "+14155552672";
const PHONE_3: &str = "+14155552673";

/// The keys of every webhook body (SPEC §6).
const BODY_KEYS: [&str; 9] = [
    "channel",
    "channel_status",
    "event",
    "metadata",
    "phone",
    "request_id",
    "session_id",
    "status",
    "timestamp",
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>`, computed here independently of the gateway.
fn expected_signature(secret: &[u8], timestamp: &str, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(tag.as_ref()))
}

/// The outbox rows and attempt log of one request.
async fn read_log(store: &DbStore, id: RequestId) -> (Vec<OutboxRow>, Vec<AttemptRow>) {
    let rid = id.to_string();
    let outbox = store
        .read(move |conn| list_outbox_by_request(conn, &rid))
        .await
        .unwrap();
    let rid = id.to_string();
    let attempts = store
        .read(move |conn| list_attempts_by_request(conn, &rid))
        .await
        .unwrap();
    (outbox, attempts)
}

/// Re-reads the request's outbox and attempt log until `done` holds; panics after [`PATIENCE`].
async fn wait_for_log(
    store: &DbStore,
    id: RequestId,
    done: impl Fn(&[OutboxRow], &[AttemptRow]) -> bool,
) -> (Vec<OutboxRow>, Vec<AttemptRow>) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (outbox, attempts) = read_log(store, id).await;
        if done(&outbox, &attempts) {
            return (outbox, attempts);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhook log of {id} never reached the expected state within {PATIENCE:?}:\n\
             outbox {outbox:#?}\nattempts {attempts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` outbox rows, none of them still pending.
fn settled(n: usize) -> impl Fn(&[OutboxRow], &[AttemptRow]) -> bool {
    move |outbox, _| outbox.len() == n && outbox.iter().all(|r| r.state != "pending")
}

/// The attempt rows of each outbox row, keyed by outbox id.
fn by_outbox(attempts: &[AttemptRow]) -> BTreeMap<i64, Vec<AttemptRow>> {
    let mut map: BTreeMap<i64, Vec<AttemptRow>> = BTreeMap::new();
    for a in attempts {
        map.entry(a.outbox_id).or_default().push(a.clone());
    }
    map
}

/// Attempt `n + 1` started after attempt `n` ended plus its backoff (`base * 2^(n-1)`): delays
/// grow, and are counted from the end of the failed attempt. Lower bounds only.
fn assert_backoff(rows: &[AttemptRow], base_ms: i64) {
    for pair in rows.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        assert_eq!(next.attempt, prev.attempt + 1, "{rows:#?}");
        let backoff = base_ms << (prev.attempt - 1);
        let gap = next.created_at - (prev.created_at + prev.duration_ms);
        assert!(
            gap >= backoff,
            "attempt {} started {gap}ms after attempt {} ended; expected at least {backoff}ms \
             ({rows:#?})",
            next.attempt,
            prev.attempt
        );
    }
}

/// `(event, answered)` of received hooks.
fn trail(hooks: &[Hook]) -> Vec<(String, u16)> {
    hooks
        .iter()
        .map(|h| (h.event.clone(), h.answered))
        .collect()
}

fn ok_count(hooks: &[Hook]) -> usize {
    hooks.iter().filter(|h| h.answered < 300).count()
}

fn owned(items: &[(&str, u16)]) -> Vec<(String, u16)> {
    items.iter().map(|(e, s)| ((*e).to_owned(), *s)).collect()
}

/// Waits until the sender has nothing queued (no delivery in flight or waiting for a retry).
async fn wait_sender_idle(gw: &TestGateway) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let queued = gw.gateway.webhooks.send(CountQueued).await.unwrap();
        if queued == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queued} webhook deliveries still queued after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Switchboard: an HTTP receiver whose answer can be changed while it runs (status or redirect)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Answer {
    Status(u16),
    /// This 3xx status with `Location: <url>`.
    Redirect(u16, String),
}

#[derive(Debug, Clone)]
struct Seen {
    event: String,
    webhook_id: String,
    answered: u16,
}

struct BoardState {
    seen: Mutex<Vec<Seen>>,
    answer: Mutex<Answer>,
    arrived: Notify,
}

struct Switchboard {
    state: Arc<BoardState>,
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

async fn board_receive(req: HttpRequest, state: web::Data<Arc<BoardState>>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let answer = state.answer.lock().unwrap().clone();
    let (status, location) = match answer {
        Answer::Status(s) => (s, None),
        Answer::Redirect(s, to) => (s, Some(to)),
    };
    state.seen.lock().unwrap().push(Seen {
        event: header("x-webhook-event"),
        webhook_id: header("x-webhook-id"),
        answered: status,
    });
    state.arrived.notify_waiters();
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if let Some(to) = location {
        response.insert_header(("Location", to));
    }
    response.finish()
}

impl Switchboard {
    fn start(answer: Answer) -> Self {
        let state = Arc::new(BoardState {
            seen: Mutex::new(Vec::new()),
            answer: Mutex::new(answer),
            arrived: Notify::new(),
        });
        let data = web::Data::new(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(board_receive))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            state,
            addr,
            handle,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.addr.port())
    }

    fn answer(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    async fn wait_until(&self, pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let arrived = self.state.arrived.notified();
            let seen = self.seen();
            if pred(&seen) {
                return seen;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let seen = self.seen();
                assert!(pred(&seen), "switchboard condition not met; saw {seen:#?}");
                return seen;
            }
        }
    }

    async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

// ---------------------------------------------------------------------------------------------
// StallServer: raw TCP that reads each request and then never answers, or answers only the status
// line and headers and never the promised body.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Stall {
    /// Accept, read the request, never answer.
    Silent,
    /// Answer `200 OK` with `Content-Length: 100`, then send nothing more.
    HeadersOnly,
}

#[derive(Clone)]
struct StallServer {
    addr: SocketAddr,
    /// `X-Webhook-Event` of each request read.
    events: Arc<Mutex<Vec<String>>>,
}

impl StallServer {
    fn start(mode: Stall) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&events);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || stall(stream, mode, &seen));
            }
        });
        Self { addr, events }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.addr.port())
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

fn stall(mut stream: std::net::TcpStream, mode: Stall, seen: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read one request: head, then Content-Length bytes of body.
    let head_end = loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    };
    let length: usize = header("content-length:").parse().unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    seen.lock().unwrap().push(header("x-webhook-event:"));
    if let Stall::HeadersOnly = mode {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n");
    }
    // Hold the connection open until the client gives up on it.
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Headers, body, signature
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn webhooks_carry_spec_headers_body_and_signature_under_signing_secret() {
    const SIGNING: &str = "whsec-integration-signing-0123456789";
    assert_ne!(SIGNING, SECRET);
    let mut gw = TestGateway::start_with(|c| {
        c.webhooks.signing_secret = Secret::new(SIGNING);
    })
    .await;
    let hooks = HookReceiver::start();
    let before_ms = now_ms();
    let id = gw
        .dispatch_sms(
            PHONE,
            json!({"webhook_url": hooks.url(), "session_id": "sess-42"}),
        )
        .await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    let got = hooks.wait_until(PATIENCE, |h| h.len() == 3).await;
    let after_ms = now_ms();

    let events: Vec<&str> = got.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(events, ["otp.sending", "otp.sent", "otp.delivered"]);
    let user_agent = format!("otp-gateway/{}", env!("CARGO_PKG_VERSION"));
    let mut ids = HashSet::new();
    for hook in &got {
        assert_eq!(hook.content_type, "application/json");
        assert_eq!(hook.user_agent, user_agent);
        assert_eq!(hook.request_id, id.to_string());
        assert!(!hook.webhook_id.is_empty());
        assert!(ids.insert(hook.webhook_id.clone()), "X-Webhook-Id repeated");

        let ts: i64 = hook
            .timestamp
            .parse()
            .expect("X-Webhook-Timestamp in seconds");
        assert!(
            ts >= before_ms / 1000 - 1 && ts <= after_ms / 1000 + 1,
            "timestamp {ts} not close to now"
        );

        // Signature recomputed independently, over the exact bytes received.
        assert_eq!(
            hook.signature,
            expected_signature(SIGNING.as_bytes(), &hook.timestamp, &hook.raw_body)
        );
        assert_ne!(
            hook.signature,
            expected_signature(SECRET.as_bytes(), &hook.timestamp, &hook.raw_body),
            "signed with API_SECRET although WEBHOOK_SIGNING_SECRET is set"
        );
        assert_ne!(
            hook.signature,
            expected_signature(b"some-other-secret", &hook.timestamp, &hook.raw_body)
        );
        let other_ts = (ts + 1).to_string();
        assert_ne!(
            hook.signature,
            expected_signature(SIGNING.as_bytes(), &other_ts, &hook.raw_body),
            "the timestamp must be bound into the signature"
        );

        let body = hook.body.as_object().expect("JSON object body");
        let keys: BTreeSet<&str> = body.keys().map(String::as_str).collect();
        assert_eq!(keys, BODY_KEYS.into_iter().collect::<BTreeSet<_>>());
        let event = hook.event.strip_prefix("otp.").unwrap();
        assert_eq!(body["event"], hook.event.as_str());
        assert_eq!(body["request_id"], id.to_string());
        assert_eq!(body["session_id"], "sess-42");
        assert_eq!(body["phone"], PHONE);
        assert_eq!(body["status"], event);
        assert_eq!(body["channel"], "sms");
        assert_eq!(body["channel_status"], event);
        let at = body["timestamp"].as_i64().expect("timestamp in ms");
        assert!(
            at >= before_ms && at <= after_ms,
            "body timestamp {at} not in [{before_ms}, {after_ms}] (ms)"
        );
        assert_eq!(body["metadata"], json!({}));
    }
    let stamps: Vec<i64> = got
        .iter()
        .map(|h| h.body["timestamp"].as_i64().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");

    let (outbox, attempts) = wait_for_log(&gw.gateway.store, id, settled(3)).await;
    assert!(outbox
        .iter()
        .all(|r| r.state == "delivered" && r.attempts == 1));
    let logged: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(logged, ["delivered"; 3]);
    let outbox_ids: Vec<&str> = outbox.iter().map(|r| r.webhook_id.as_str()).collect();
    let hook_ids: Vec<&str> = got.iter().map(|h| h.webhook_id.as_str()).collect();
    assert_eq!(outbox_ids, hook_ids);
}

// ---------------------------------------------------------------------------------------------
// Ordering
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn failing_first_delivery_holds_back_the_later_events_of_its_request() {
    let mut gw = TestGateway::start().await;
    let hooks = HookReceiver::start();
    hooks.script(&[500, 500]);
    let id = gw
        .dispatch_sms(PHONE, json!({"webhook_url": hooks.url()}))
        .await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    let got = hooks.wait_until(PATIENCE, |h| ok_count(h) == 3).await;
    assert_eq!(
        trail(&got),
        owned(&[
            ("otp.sending", 500),
            ("otp.sending", 500),
            ("otp.sending", 200),
            ("otp.sent", 200),
            ("otp.delivered", 200),
        ])
    );
    // A retry is the same delivery: same X-Webhook-Id, re-signed at its own timestamp.
    assert_eq!(got[0].webhook_id, got[1].webhook_id);
    assert_eq!(got[1].webhook_id, got[2].webhook_id);
    assert_ne!(got[2].webhook_id, got[3].webhook_id);
    assert_ne!(got[3].webhook_id, got[4].webhook_id);
    for hook in &got {
        assert!(actors::webhook::signature::verify(
            SECRET.as_bytes(),
            hook.timestamp.parse().unwrap(),
            &hook.raw_body,
            &hook.signature
        ));
    }

    let (outbox, attempts) = wait_for_log(&gw.gateway.store, id, settled(3)).await;
    let states: Vec<(&str, i32)> = outbox
        .iter()
        .map(|r| (r.state.as_str(), r.attempts))
        .collect();
    assert_eq!(
        states,
        [("delivered", 3), ("delivered", 1), ("delivered", 1)]
    );
    let first: Vec<(i32, Option<i32>, &str)> = attempts
        .iter()
        .filter(|a| a.outbox_id == outbox[0].id)
        .map(|a| (a.attempt, a.status_code, a.outcome.as_str()))
        .collect();
    assert_eq!(
        first,
        [
            (1, Some(500), "retry"),
            (2, Some(500), "retry"),
            (3, Some(200), "delivered")
        ]
    );
    // The later events were not attempted before the first one succeeded.
    let first_ok = attempts
        .iter()
        .find(|a| a.outbox_id == outbox[0].id && a.outcome == "delivered")
        .unwrap();
    for later in attempts.iter().filter(|a| a.outbox_id != outbox[0].id) {
        assert!(later.id > first_ok.id && later.created_at >= first_ok.created_at);
    }
}

#[actix_web::test]
async fn retries_of_one_request_do_not_block_another() {
    let mut gw = TestGateway::start_with(|c| c.webhooks.max_attempts = 20).await;
    let failing = Switchboard::start(Answer::Status(500));
    let healthy = HookReceiver::start();

    let stuck = gw
        .dispatch_sms(PHONE, json!({"webhook_url": failing.url()}))
        .await;
    failing
        .wait_until(|s| s.iter().any(|h| h.event == "otp.sending"))
        .await;
    let free = gw
        .dispatch_sms(PHONE_2, json!({"webhook_url": healthy.url()}))
        .await;
    gw.events.wait_for_status(free, Status::Delivered).await;
    let got = healthy.wait_until(PATIENCE, |h| h.len() == 3).await;
    assert_eq!(
        trail(&got),
        owned(&[
            ("otp.sending", 200),
            ("otp.sent", 200),
            ("otp.delivered", 200)
        ])
    );
    // Meanwhile the other request is still retrying its first event and nothing else.
    let so_far = failing.seen();
    assert!(
        so_far
            .iter()
            .all(|s| s.event == "otp.sending" && s.answered == 500),
        "{so_far:#?}"
    );

    // Once its receiver recovers, it delivers everything, in order.
    failing.answer(Answer::Status(200));
    let seen = failing
        .wait_until(|s| s.iter().filter(|h| h.answered == 200).count() == 3)
        .await;
    let ok: Vec<&str> = seen
        .iter()
        .filter(|s| s.answered == 200)
        .map(|s| s.event.as_str())
        .collect();
    assert_eq!(ok, ["otp.sending", "otp.sent", "otp.delivered"]);
    let first_ok = seen.iter().position(|s| s.answered == 200).unwrap();
    assert!(seen[..first_ok]
        .iter()
        .all(|s| s.event == "otp.sending" && s.answered == 500));
    gw.events.wait_for_status(stuck, Status::Delivered).await;
    failing.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Retries, backoff, giving up
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn non_2xx_is_retried_with_growing_backoff_then_given_up_and_the_queue_moves_on() {
    let mut gw = TestGateway::start_with(|c| c.webhooks.max_attempts = 3).await;
    let base_ms = i64::try_from(gw.gateway.config.webhooks.retry_base.as_millis()).unwrap();
    let hooks = HookReceiver::start();
    hooks.script(&[500, 503, 429]);
    let id = gw
        .dispatch_sms(PHONE, json!({"webhook_url": hooks.url()}))
        .await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    let got = hooks.wait_until(PATIENCE, |h| ok_count(h) == 2).await;
    assert_eq!(
        trail(&got),
        owned(&[
            ("otp.sending", 500),
            ("otp.sending", 503),
            ("otp.sending", 429),
            ("otp.sent", 200),
            ("otp.delivered", 200),
        ])
    );

    let (outbox, attempts) = wait_for_log(&gw.gateway.store, id, settled(3)).await;
    let states: Vec<(&str, i32)> = outbox
        .iter()
        .map(|r| (r.state.as_str(), r.attempts))
        .collect();
    assert_eq!(states, [("failed", 3), ("delivered", 1), ("delivered", 1)]);
    let per = by_outbox(&attempts);
    let first = &per[&outbox[0].id];
    let summary: Vec<(i32, Option<i32>, Option<&str>, &str)> = first
        .iter()
        .map(|a| {
            (
                a.attempt,
                a.status_code,
                a.error.as_deref(),
                a.outcome.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, Some(500), Some("HTTP 500"), "retry"),
            (2, Some(503), Some("HTTP 503"), "retry"),
            (3, Some(429), Some("HTTP 429"), "gave_up"),
        ]
    );
    assert_backoff(first, base_ms);
    for later in [&outbox[1], &outbox[2]] {
        let rows = &per[&later.id];
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status_code, Some(200));
        assert_eq!(rows[0].error, None);
        assert_eq!(rows[0].outcome, "delivered");
        assert!(rows[0].created_at >= first[2].created_at);
    }
}

#[actix_web::test]
async fn timeouts_are_retried_with_backoff_after_the_attempt_then_given_up() {
    let mut gw = TestGateway::start_with(|c| {
        c.webhooks.max_attempts = 3;
        c.webhooks.timeout = Duration::from_millis(200);
    })
    .await;
    let base_ms = i64::try_from(gw.gateway.config.webhooks.retry_base.as_millis()).unwrap();
    let silent = StallServer::start(Stall::Silent);
    let id = gw
        .dispatch_sms(PHONE, json!({"webhook_url": silent.url()}))
        .await;
    gw.events.wait_for_status(id, Status::Delivered).await;

    let (outbox, attempts) = wait_for_log(&gw.gateway.store, id, settled(3)).await;
    assert!(
        outbox
            .iter()
            .all(|r| r.state == "failed" && r.attempts == 3),
        "{outbox:#?}"
    );
    let per = by_outbox(&attempts);
    assert_eq!(per.len(), 3);
    let mut previous_end = 0;
    for row in &outbox {
        let rows = &per[&row.id];
        let outcomes: Vec<&str> = rows.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(outcomes, ["retry", "retry", "gave_up"]);
        for a in rows {
            assert_eq!(a.status_code, None);
            let error = a.error.as_deref().unwrap_or("").to_ascii_lowercase();
            assert!(
                error.contains("timeout") || error.contains("timed out"),
                "{a:?}"
            );
        }
        assert_backoff(rows, base_ms);
        // The next event was attempted only after this one gave up.
        assert!(rows[0].created_at >= previous_end, "{attempts:#?}");
        previous_end = rows[2].created_at + rows[2].duration_ms;
    }
    assert_eq!(
        silent.events(),
        [
            "otp.sending",
            "otp.sending",
            "otp.sending",
            "otp.sent",
            "otp.sent",
            "otp.sent",
            "otp.delivered",
            "otp.delivered",
            "otp.delivered",
        ]
    );
}

#[actix_web::test]
async fn a_receiver_that_never_finishes_its_response_body_does_not_stall_the_queue() {
    let mut gw = TestGateway::start_with(|c| {
        c.webhooks.timeout = Duration::from_millis(300);
    })
    .await;
    let stalling = StallServer::start(Stall::HeadersOnly);
    let id = gw
        .dispatch_sms(PHONE, json!({"webhook_url": stalling.url()}))
        .await;
    gw.events.wait_for_status(id, Status::Delivered).await;
    // The receiver answered 200 to each: every event is delivered once, in order.
    let (outbox, attempts) = wait_for_log(&gw.gateway.store, id, settled(3)).await;
    assert!(
        outbox
            .iter()
            .all(|r| r.state == "delivered" && r.attempts == 1),
        "{outbox:#?}"
    );
    let logged: Vec<(Option<i32>, &str)> = attempts
        .iter()
        .map(|a| (a.status_code, a.outcome.as_str()))
        .collect();
    assert_eq!(logged, [(Some(200), "delivered"); 3]);
    assert_eq!(
        stalling.events(),
        ["otp.sending", "otp.sent", "otp.delivered"]
    );
}

// ---------------------------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn redirects_are_not_followed_and_count_as_failures() {
    let mut gw = TestGateway::start_with(|c| c.webhooks.max_attempts = 2).await;
    let target = HookReceiver::start();
    let found = Switchboard::start(Answer::Redirect(302, target.url()));
    let temporary = Switchboard::start(Answer::Redirect(307, target.url()));
    let a = gw
        .dispatch_sms(PHONE, json!({"webhook_url": found.url()}))
        .await;
    let b = gw
        .dispatch_sms(PHONE_2, json!({"webhook_url": temporary.url()}))
        .await;
    gw.events.wait_for_status(a, Status::Delivered).await;
    gw.events.wait_for_status(b, Status::Delivered).await;

    for (id, board, code) in [(a, &found, 302), (b, &temporary, 307)] {
        let (outbox, attempts) = wait_for_log(&gw.gateway.store, id, settled(3)).await;
        assert!(
            outbox
                .iter()
                .all(|r| r.state == "failed" && r.attempts == 2),
            "{outbox:#?}"
        );
        assert_eq!(attempts.len(), 6);
        for (i, a) in attempts.iter().enumerate() {
            assert_eq!(a.status_code, Some(code), "{a:?}");
            assert_eq!(a.error.as_deref(), Some(format!("HTTP {code}").as_str()));
            let expected = if i % 2 == 0 { "retry" } else { "gave_up" };
            assert_eq!(a.outcome, expected);
        }
        let seen: Vec<String> = board.seen().into_iter().map(|s| s.event).collect();
        assert_eq!(
            seen,
            [
                "otp.sending",
                "otp.sending",
                "otp.sent",
                "otp.sent",
                "otp.delivered",
                "otp.delivered"
            ]
        );
    }
    assert!(
        target.hooks().is_empty(),
        "a redirect was followed: {:#?}",
        trail(&target.hooks())
    );
    found.stop().await;
    temporary.stop().await;
}

// ---------------------------------------------------------------------------------------------
// SSRF
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn ssrf_blocked_targets_get_nothing_are_logged_once_and_the_request_still_delivers() {
    let mut gw = TestGateway::start_with(|c| c.webhooks.allow_private = false).await;
    let hooks = HookReceiver::start();
    let port = hooks.addr.port();
    let cases = [
        (PHONE, format!("http://127.0.0.1:{port}/hook")),
        (PHONE_2, format!("http://localhost:{port}/hook")),
        (PHONE_3, format!("http://[::ffff:127.0.0.1]:{port}/hook")),
    ];
    let mut ids = Vec::new();
    for (phone, url) in &cases {
        // The URL is well-formed, so /dispatch accepts it; the guard acts at send time.
        let id = gw.dispatch_sms(phone, json!({"webhook_url": url})).await;
        ids.push((id, url));
    }
    for (id, url) in &ids {
        let last = gw.events.wait_for_status(*id, Status::Delivered).await;
        assert_eq!(last.event_type, EventType::Delivered);
        let (outbox, attempts) = wait_for_log(&gw.gateway.store, *id, settled(3)).await;
        assert!(
            outbox
                .iter()
                .all(|r| r.state == "blocked" && r.attempts == 1),
            "{url}: {outbox:#?}"
        );
        assert_eq!(attempts.len(), 3, "{url}: {attempts:#?}");
        for a in &attempts {
            assert_eq!(a.attempt, 1, "{url}: {a:?}");
            assert_eq!(a.outcome, "blocked", "{url}: {a:?}");
            assert_eq!(a.status_code, None, "{url}: {a:?}");
            let error = a.error.as_deref().unwrap_or("");
            assert!(error.contains("non-public address"), "{url}: {error}");
        }
    }
    // Nothing is left queued, so nothing will be retried.
    wait_sender_idle(&gw).await;
    for (id, _) in &ids {
        let (_, attempts) = read_log(&gw.gateway.store, *id).await;
        assert_eq!(attempts.len(), 3);
    }
    assert!(
        hooks.hooks().is_empty(),
        "blocked target was reached: {:#?}",
        trail(&hooks.hooks())
    );
    let (status, view) = gw.request_view(ids[0].0).await;
    assert_eq!(status, 200);
    assert_eq!(view["status"], "delivered");
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

/// Every object key anywhere in `value`.
fn all_keys(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                all_keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all_keys(v, out)),
        _ => {}
    }
}

#[actix_web::test]
async fn failed_sms_webhook_metadata_carries_no_internals() {
    let mut gw = TestGateway::start().await;
    gw.sms()
        .set_behaviour("14155552671", SmsBehaviour::Failed { code_id: 100 });
    let hooks = HookReceiver::start();
    let id = gw
        .dispatch_sms(PHONE, json!({"webhook_url": hooks.url()}))
        .await;
    gw.events.wait_for_status(id, Status::Failed).await;
    let got = hooks
        .wait_until(PATIENCE, |h| h.iter().any(|h| h.event == "otp.failed"))
        .await;
    let failed = got.iter().find(|h| h.event == "otp.failed").unwrap();
    assert_eq!(failed.body["status"], "failed");
    assert_eq!(failed.body["channel_status"], "failed");
    let metadata = failed.body["metadata"]
        .as_object()
        .expect("metadata object");
    let keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
    assert_eq!(keys, ["error"], "metadata {metadata:?}");
    assert!(metadata["error"].is_string());

    // The carrier's details were recorded internally (so there was something to leak)…
    let rid = id.to_string();
    let row = gw
        .gateway
        .store
        .read(move |conn| request::find_by_id(conn, &rid))
        .await
        .unwrap()
        .unwrap();
    let provider_id = row.provider_id.expect("carrier accepted the SMS");
    // …but no webhook of the request carries them.
    for hook in &got {
        let body = hook.body.as_object().unwrap();
        let keys: BTreeSet<&str> = body.keys().map(String::as_str).collect();
        assert_eq!(keys, BODY_KEYS.into_iter().collect::<BTreeSet<_>>());
        let mut nested = Vec::new();
        all_keys(&hook.body["metadata"], &mut nested);
        for key in &nested {
            assert_eq!(key, "error", "{}: metadata key {key:?}", hook.event);
        }
        let raw = hook.raw_body.to_ascii_lowercase();
        for forbidden in [
            "didww",
            "simulated",
            "sandbox",
            "price",
            "cost",
            "provider",
            "code_id",
            "fraud",
            "internal",
        ] {
            assert!(
                !raw.contains(forbidden),
                "{} body carries {forbidden:?}: {}",
                hook.event,
                hook.raw_body
            );
        }
        assert!(
            !hook.raw_body.contains(&provider_id),
            "{} body carries the provider message id",
            hook.event
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Resume after restart
// ---------------------------------------------------------------------------------------------

/// Runs a first gateway on `database` in its own actix system on its own thread: it dispatches one
/// request with `webhook_url`, reports the request id once all three events are stored, and is
/// killed (its whole runtime dropped, like a crashed process) when `stop` fires.
fn first_instance(
    database: PathBuf,
    webhook_url: String,
    started: tokio::sync::oneshot::Sender<RequestId>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut config = Config::for_tests(database);
            config.webhooks.max_attempts = 20;
            let gw = otp_gateway::app::start(config).await.unwrap();
            let client = awc::Client::builder().timeout(PATIENCE).finish();
            let response = client
                .post(format!("{}/dispatch", gw.api_url()))
                .insert_header(("X-API-Secret", SECRET))
                .send_json(&json!({
                    "phone": PHONE, "code": "123456", "channels": ["sms"],
                    "webhook_url": webhook_url,
                }))
                .await
                .unwrap();
            let (status, answer) = common::read_json(response).await;
            assert_eq!(status, 200, "{answer}");
            let id = RequestId::parse(answer["request_id"].as_str().unwrap()).unwrap();
            wait_for_log(&gw.store, id, |outbox, _| outbox.len() == 3).await;
            started.send(id).unwrap();
            let _ = stop.await;
            actix_rt::System::current().stop();
        });
    })
}

#[actix_web::test]
async fn pending_deliveries_are_resumed_in_order_by_the_next_instance() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("otp.db");
    let board = Switchboard::start(Answer::Status(500));

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let first = first_instance(database.clone(), board.url(), started_tx, stop_rx);
    let id = started_rx.await.expect("first instance started");
    // The first instance keeps failing on the first event…
    board
        .wait_until(|s| s.iter().filter(|h| h.event == "otp.sending").count() >= 2)
        .await;
    // …and dies with all three deliveries still pending.
    stop_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || first.join())
        .await
        .unwrap()
        .unwrap();
    let seen_by_first = board.seen();
    assert!(
        seen_by_first
            .iter()
            .all(|s| s.event == "otp.sending" && s.answered == 500),
        "{seen_by_first:#?}"
    );
    // Our own connection, held until the end. It sets busy_timeout before anything else, so it
    // waits out the first instance's connections closing (the last one to close checkpoints the WAL
    // under an exclusive lock). While it is open none of those is the last, so the second instance
    // does not open the file during such a checkpoint: `db::open` runs `PRAGMA journal_mode = WAL`
    // before setting busy_timeout and then fails at once with "database is locked" (reported).
    let mut guard = hold_database(&database);
    let outbox = list_outbox_by_request(&mut guard, &id.to_string()).unwrap();
    assert_eq!(outbox.len(), 3);
    assert!(outbox.iter().all(|r| r.state == "pending"), "{outbox:#?}");

    // The receiver recovers; a second instance on the same database delivers the backlog, in order.
    board.answer(Answer::Status(200));
    let second = otp_gateway::app::start(Config::for_tests(database.clone()))
        .await
        .expect("second instance starts");
    let seen = board
        .wait_until(|s| s.iter().filter(|h| h.answered == 200).count() == 3)
        .await;
    let delivered: Vec<(&str, &str)> = seen
        .iter()
        .filter(|s| s.answered == 200)
        .map(|s| (s.event.as_str(), s.webhook_id.as_str()))
        .collect();
    let expected: Vec<(&str, &str)> = outbox
        .iter()
        .map(|r| (r.event.as_str(), r.webhook_id.as_str()))
        .collect();
    assert_eq!(
        expected.iter().map(|e| e.0).collect::<Vec<_>>(),
        ["otp.sending", "otp.sent", "otp.delivered"]
    );
    assert_eq!(delivered, expected);

    let (outbox, attempts) = wait_for_log(&second.store, id, settled(3)).await;
    assert!(outbox.iter().all(|r| r.state == "delivered"), "{outbox:#?}");
    let first_rows = &by_outbox(&attempts)[&outbox[0].id];
    // Attempt numbers continue from the first instance's.
    let numbers: Vec<i32> = first_rows.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, (1..=numbers.len() as i32).collect::<Vec<_>>());
    assert!(numbers.len() >= 2, "{first_rows:#?}");
    assert_eq!(first_rows.last().unwrap().outcome, "delivered");
    assert_eq!(outbox[0].attempts, numbers.len() as i32);
    second.shutdown().await;
    board.stop().await;
    drop(guard);
}

/// A plain connection to `database` with a busy timeout set first.
fn hold_database(database: &std::path::Path) -> diesel::sqlite::SqliteConnection {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn =
        diesel::sqlite::SqliteConnection::establish(&database.to_string_lossy()).unwrap();
    conn.batch_execute("PRAGMA busy_timeout = 10000;").unwrap();
    conn
}
