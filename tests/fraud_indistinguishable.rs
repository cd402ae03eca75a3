//! A shadow-banned request is indistinguishable from a real delivery for the client (SPEC §4, §6,
//! §8): the same `/dispatch` answer (status, body, headers, latency), the same signed webhooks in
//! the same order with the same headers, bodies and metadata, the same `/requests/{id}` history,
//! and gaps between events drawn from real deliveries — while nothing reaches the carrier. Checked
//! for SMS (`sending` → `sent` → `delivered`) and voice (`calling` → `ringing` → `answered` →
//! `playing` → `completed`).
//!
//! The twin draws its delays from recent real deliveries (its defaults, used only before any real
//! delivery happened, are seconds long), so each test makes real deliveries first. The banned
//! destination is a UK premium-rate number; the real ones are UK mobiles, so both answers have the
//! same length and country.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderMap;
use ring::hmac;
use serde_json::{json, Value};

use actors::{EventType, RequestId, Status};
use common::hooks::{Hook as Delivery, HookReceiver as Receiver};
use common::{read_json, TestGateway, PATIENCE, SECRET};
use otp_gateway::config::{Config, PromptPart, VoiceSpeed};

/// UK premium rate: `irsf_number_type` (50 points) reaches the default threshold.
const PREMIUM: &str = "+449098790000";
const PREMIUM_DIGITS: &str = "449098790000";
/// UK mobiles, one per real delivery (the per-phone limit is 2 a minute).
const REAL: [&str; 3] = ["+447400123451", "+447400123452", "+447400123453"];
/// Scheduling slack allowed on top of a delay drawn from a real delivery.
const SLACK_MS: i64 = 250;
/// Headers that differ between any two responses or deliveries, real or not.
const PER_MESSAGE_HEADERS: [&str; 6] = [
    "date",
    "x-request-id",
    "x-webhook-id",
    "x-webhook-timestamp",
    "x-webhook-signature",
    // Voice metadata carries durations whose digit counts vary from call to call.
    "content-length",
];
/// What a webhook body or a client view must never contain.
const INTERNAL_WORDS: [&str; 7] = [
    "simulated",
    "shadow",
    "fraud",
    "internal",
    "score",
    "irsf",
    "banned",
];

// ---------------------------------------------------------------------------------------------
// What the client sees
// ---------------------------------------------------------------------------------------------

/// The `/dispatch` answer as the client sees it.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
    latency: Duration,
    id: RequestId,
}

async fn dispatch(gw: &TestGateway, body: Value) -> Answer {
    let started = Instant::now();
    let response = gw
        .client
        .post(format!("{}/dispatch", gw.url))
        .insert_header(("X-API-Secret", SECRET))
        .send_json(&body)
        .await
        .unwrap();
    let headers = response.headers().clone();
    let (status, body) = read_json(response).await;
    let latency = started.elapsed();
    assert_eq!(status, 200, "{body}");
    let id = RequestId::parse(body["request_id"].as_str().unwrap()).unwrap();
    Answer {
        status,
        headers,
        body,
        latency,
        id,
    }
}

fn body(phone: &str, channel: &str, hooks: &Receiver) -> Value {
    json!({
        "phone": phone,
        "code": "482913",
        "channels": [channel],
        "session_id": "login-7f3a",
        "webhook_url": hooks.url(),
    })
}

/// `GET /requests/{id}` with its headers.
async fn view(gw: &TestGateway, id: RequestId) -> (HeaderMap, Value) {
    let response = gw
        .client
        .get(format!("{}/requests/{id}", gw.url))
        .insert_header(("X-API-Secret", SECRET))
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let (status, body) = read_json(response).await;
    assert_eq!(status, 200, "{body}");
    (headers, body)
}

/// Header names and values, without the per-message ones.
fn stable_headers(headers: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .filter(|(name, _)| !PER_MESSAGE_HEADERS.contains(&name.as_str()))
        .collect()
}

fn http_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    stable_headers(headers.iter().map(|(n, v)| {
        (
            n.as_str().to_ascii_lowercase(),
            v.to_str().unwrap().to_owned(),
        )
    }))
}

fn header_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers.keys().map(|n| n.as_str().to_owned()).collect();
    names.sort();
    names.dedup();
    names
}

/// The shape of a JSON value: objects by key, arrays element-wise, scalars by type. Two values of
/// the same shape differ only in their scalar values.
fn shape(value: &Value) -> Value {
    match value {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(n) if n.is_u64() || n.is_i64() => json!("integer"),
        Value::Number(_) => json!("float"),
        Value::String(_) => json!("string"),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
    }
}

fn assert_no_internal_words(what: &str, text: &str) {
    let lower = text.to_ascii_lowercase();
    for word in INTERNAL_WORDS {
        assert!(!lower.contains(word), "{what} leaks {word:?}: {text}");
    }
}

/// `sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>`, computed independently of the gateway.
fn assert_signed(d: &Delivery) {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = hmac::sign(
        &key,
        format!("{}.{}", d.header("x-webhook-timestamp"), d.raw_body).as_bytes(),
    );
    assert_eq!(
        d.header("x-webhook-signature"),
        format!("sha256={}", hex::encode(tag.as_ref())),
        "{d:?}"
    );
}

/// Event timestamps of a `/requests/{id}` view, in order.
fn timestamps(view: &Value) -> Vec<i64> {
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["timestamp"].as_i64().unwrap())
        .collect()
}

/// Gaps between consecutive events.
fn gaps(view: &Value) -> Vec<i64> {
    timestamps(view).windows(2).map(|w| w[1] - w[0]).collect()
}

/// Each of the banned request's gaps lies within what the real deliveries took (the twin replays
/// one of their delays), plus scheduling slack.
fn assert_gaps_plausible(banned: &Value, reals: &[Value]) {
    let banned_gaps = gaps(banned);
    let real_gaps: Vec<Vec<i64>> = reals.iter().map(gaps).collect();
    for (step, gap) in banned_gaps.iter().enumerate() {
        let seen: Vec<i64> = real_gaps.iter().map(|g| g[step]).collect();
        let (lo, hi) = (*seen.iter().min().unwrap(), *seen.iter().max().unwrap());
        assert!(
            *gap >= lo - 1 && *gap <= hi + SLACK_MS,
            "step {step}: banned {gap} ms, real {seen:?} ms (all gaps: banned {banned_gaps:?}, \
             real {real_gaps:?})"
        );
    }
}

/// Everything the client sees of a real and a banned request, compared.
async fn assert_same_view(
    gw: &TestGateway,
    real: &Answer,
    banned: &Answer,
    event_names: &[&str],
) -> (Value, Value) {
    let (real_headers, real_view) = view(gw, real.id).await;
    let (banned_headers, banned_view) = view(gw, banned.id).await;
    assert_eq!(http_headers(&banned_headers), http_headers(&real_headers));
    assert_eq!(header_names(&banned_headers), header_names(&real_headers));
    assert_eq!(
        shape(&banned_view),
        shape(&real_view),
        "{banned_view:#}\n{real_view:#}"
    );
    for key in ["status", "channel", "channel_status", "session_id"] {
        assert_eq!(banned_view[key], real_view[key], "{key}");
    }
    assert_eq!(banned_view["status"], "delivered");
    assert_eq!(banned_view["phone"], PREMIUM);
    let lifetime =
        |v: &Value| v["expires_at"].as_i64().unwrap() - v["created_at"].as_i64().unwrap();
    assert_eq!(lifetime(&banned_view), lifetime(&real_view));
    let names = |v: &Value| -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["channel"].as_str().unwrap(),
                    e["event_type"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(names(&banned_view), names(&real_view));
    let types: Vec<String> = common::event_types(&banned_view);
    assert_eq!(types, event_names);
    for (b, r) in banned_view["events"]
        .as_array()
        .unwrap()
        .iter()
        .zip(real_view["events"].as_array().unwrap())
    {
        assert_eq!(
            keys_of(&b["metadata"]),
            keys_of(&r["metadata"]),
            "{b} vs {r}"
        );
    }
    // The last event is the last update.
    assert_eq!(
        banned_view["updated_at"].as_i64(),
        timestamps(&banned_view).last().copied()
    );
    assert_no_internal_words("the request view", &banned_view.to_string());
    (real_view, banned_view)
}

fn keys_of(value: &Value) -> Vec<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

/// The answers: status, body shape and values, headers, latency.
fn assert_same_answer(real: &Answer, banned: &Answer, channel: &str) {
    assert_eq!(banned.status, real.status);
    assert_eq!(shape(&banned.body), shape(&real.body));
    assert_eq!(banned.body["status"], "sending");
    assert_eq!(banned.body["status"], real.body["status"]);
    assert_eq!(banned.body["channel"], channel);
    assert_eq!(banned.body["channel"], real.body["channel"]);
    assert_eq!(banned.body["phone"], PREMIUM);
    assert_eq!(header_names(&banned.headers), header_names(&real.headers));
    // Same length phones and ids: even Content-Length is the same.
    let all = |h: &HeaderMap| -> BTreeMap<String, String> {
        h.iter()
            .filter(|(n, _)| n.as_str() != "date")
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect()
    };
    assert_eq!(all(&banned.headers), all(&real.headers));
    // The ban costs no noticeable time: the same order of latency as a real acceptance.
    assert!(
        banned.latency <= real.latency * 5 + Duration::from_millis(100),
        "banned answered in {:?}, real in {:?}",
        banned.latency,
        real.latency
    );
}

/// The webhooks of a real and a banned request, compared event by event.
fn assert_same_webhooks(real: &[Delivery], banned: &[Delivery], id: RequestId, events: &[&str]) {
    let names = |ds: &[Delivery]| -> Vec<String> {
        ds.iter()
            .map(|d| d.header("x-webhook-event").to_owned())
            .collect()
    };
    let expected: Vec<String> = events.iter().map(|e| format!("otp.{e}")).collect();
    assert_eq!(names(banned), expected);
    assert_eq!(names(real), expected);
    let mut webhook_ids = std::collections::HashSet::new();
    for (b, r) in banned.iter().zip(real) {
        // Headers: the same names, the same values where they are not per delivery.
        assert_eq!(
            b.headers.keys().collect::<Vec<_>>(),
            r.headers.keys().collect::<Vec<_>>(),
            "header names"
        );
        assert_eq!(
            stable_headers(b.headers.clone()),
            stable_headers(r.headers.clone())
        );
        assert_eq!(b.header("content-type"), "application/json");
        assert!(b.header("user-agent").starts_with("otp-gateway/"), "{b:?}");
        assert_eq!(b.header("x-request-id"), id.to_string());
        assert!(b.header("x-webhook-timestamp").parse::<i64>().is_ok());
        assert!(webhook_ids.insert(b.header("x-webhook-id").to_owned()));
        assert_signed(b);
        assert_signed(r);
        // Bodies: the same shape, the same values but for the request's own.
        assert_eq!(
            shape(&b.body),
            shape(&r.body),
            "{} vs {}",
            b.raw_body,
            r.raw_body
        );
        for key in ["event", "status", "channel", "channel_status", "session_id"] {
            assert_eq!(
                b.body[key], r.body[key],
                "{key}: {} vs {}",
                b.raw_body, r.raw_body
            );
        }
        assert_eq!(keys_of(&b.body["metadata"]), keys_of(&r.body["metadata"]));
        assert_eq!(b.body["phone"], PREMIUM);
        assert_eq!(b.body["request_id"], id.to_string());
        assert_no_internal_words("a webhook", &b.raw_body);
    }
}

/// Webhook timestamps are the events' own, as for any request.
fn assert_webhooks_match_view(deliveries: &[Delivery], view: &Value) {
    let from_hooks: Vec<i64> = deliveries
        .iter()
        .map(|d| d.body["timestamp"].as_i64().unwrap())
        .collect();
    assert_eq!(from_hooks, timestamps(view));
}

async fn wait_delivered(gw: &mut TestGateway, id: RequestId, last: EventType) {
    let event = gw.events.wait_for(id, last).await;
    assert_eq!(event.status, Status::Delivered);
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

const SMS_EVENTS: [&str; 3] = ["sending", "sent", "delivered"];

#[actix_rt::test]
async fn a_shadow_banned_sms_looks_exactly_like_a_real_delivery() {
    let mut gw = TestGateway::start().await;
    let hooks = Receiver::start();

    // Real deliveries first: the twin replays their timings.
    let mut reals = Vec::new();
    for phone in REAL {
        let answer = dispatch(&gw, body(phone, "sms", &hooks)).await;
        wait_delivered(&mut gw, answer.id, EventType::Delivered).await;
        hooks.wait_for(&answer.id.to_string(), 3, PATIENCE).await;
        reals.push(answer);
    }
    let banned = dispatch(&gw, body(PREMIUM, "sms", &hooks)).await;
    wait_delivered(&mut gw, banned.id, EventType::Delivered).await;
    let banned_hooks = hooks.wait_for(&banned.id.to_string(), 3, PATIENCE).await;

    // It was banned, and nothing reached the carrier.
    assert!(gw.request_row(banned.id).await.shadow_banned);
    let received = gw.sms().received();
    assert_eq!(received.len(), REAL.len());
    assert!(received
        .iter()
        .all(|sms| !sms.raw_body.contains(PREMIUM_DIGITS)));

    let real = reals.last().unwrap();
    assert_same_answer(real, &banned, "sms");
    let real_hooks = hooks.of(&real.id.to_string());
    assert_same_webhooks(&real_hooks, &banned_hooks, banned.id, &SMS_EVENTS);
    for (b, r) in banned_hooks.iter().zip(&real_hooks) {
        // SMS events carry no metadata on the success path, real or not.
        assert_eq!(b.body["metadata"], json!({}));
        assert_eq!(r.body["metadata"], json!({}));
    }
    let (real_view, banned_view) = assert_same_view(&gw, real, &banned, &SMS_EVENTS).await;
    assert_webhooks_match_view(&banned_hooks, &banned_view);
    assert_webhooks_match_view(&real_hooks, &real_view);

    // Timing: each step takes as long as a real one did.
    let mut real_views = Vec::new();
    for r in &reals {
        real_views.push(view(&gw, r.id).await.1);
    }
    assert_gaps_plausible(&banned_view, &real_views);
    // The first event follows the acceptance as quickly as a real one's.
    let first_offset = |v: &Value| timestamps(v)[0] - v["created_at"].as_i64().unwrap();
    let real_max = real_views.iter().map(first_offset).max().unwrap();
    let banned_offset = first_offset(&banned_view);
    assert!(
        (0..=real_max + SLACK_MS).contains(&banned_offset),
        "first event {banned_offset} ms after acceptance, real at most {real_max} ms"
    );

    // The client's feedback is answered the same way and produces the same webhook and history.
    let mut answers = Vec::new();
    for id in [real.id, banned.id] {
        let feedback = json!({"request_id": id.to_string(), "success": true});
        let (status, answer) = gw.post("/webhooks/auth", feedback).await;
        assert_eq!(status, 200, "{answer}");
        answers.push(answer);
    }
    assert_eq!(shape(&answers[1]), shape(&answers[0]));
    assert_eq!(answers[1]["status"], answers[0]["status"]);
    assert_eq!(answers[1]["request_status"], "verified");
    assert_eq!(answers[0]["request_status"], "verified");
    let with_feedback = ["sending", "sent", "delivered", "verified"];
    let real_hooks = hooks.wait_for(&real.id.to_string(), 4, PATIENCE).await;
    let banned_hooks = hooks.wait_for(&banned.id.to_string(), 4, PATIENCE).await;
    assert_same_webhooks(&real_hooks, &banned_hooks, banned.id, &with_feedback);
    let (_, real_view) = view(&gw, real.id).await;
    let (_, banned_view) = view(&gw, banned.id).await;
    assert_eq!(shape(&banned_view), shape(&real_view));
    assert_eq!(common::event_types(&banned_view), with_feedback);
    assert_eq!(banned_view["status"], "verified");
    assert_eq!(banned_view["status"], real_view["status"]);
    assert_no_internal_words("the request view", &banned_view.to_string());
    hooks.stop().await;
}

#[actix_rt::test]
async fn a_shadow_banned_call_looks_exactly_like_a_real_call() {
    const VOICE_EVENTS: [&str; 5] = ["calling", "ringing", "answered", "playing", "completed"];
    // Short calls: only the code, read fast.
    let tweak = |c: &mut Config| {
        c.voice.prompt = vec![PromptPart::Code];
        c.voice.speed = VoiceSpeed::Fast;
    };
    let mut gw = TestGateway::start_with(tweak).await;
    let hooks = Receiver::start();

    // Two real calls at once, then the banned one.
    let mut reals = Vec::new();
    for phone in &REAL[..2] {
        reals.push(dispatch(&gw, body(phone, "voice", &hooks)).await);
    }
    for real in &reals {
        wait_delivered(&mut gw, real.id, EventType::Completed).await;
        hooks.wait_for(&real.id.to_string(), 5, PATIENCE).await;
    }
    let banned = dispatch(&gw, body(PREMIUM, "voice", &hooks)).await;
    wait_delivered(&mut gw, banned.id, EventType::Completed).await;
    let banned_hooks = hooks.wait_for(&banned.id.to_string(), 5, PATIENCE).await;

    // Banned, and no call reached the trunk.
    assert!(gw.request_row(banned.id).await.shadow_banned);
    let calls = gw.trunk().calls();
    assert_eq!(calls.len(), 2, "only the real calls");
    assert!(calls.iter().all(|c| c.destination != PREMIUM_DIGITS));
    assert!(gw.sms().received().is_empty());

    let real = reals.last().unwrap();
    assert_same_answer(real, &banned, "voice");
    let real_hooks = hooks.of(&real.id.to_string());
    assert_same_webhooks(&real_hooks, &banned_hooks, banned.id, &VOICE_EVENTS);
    let (real_view, banned_view) = assert_same_view(&gw, real, &banned, &VOICE_EVENTS).await;
    assert_webhooks_match_view(&banned_hooks, &banned_view);
    assert_webhooks_match_view(&real_hooks, &real_view);

    // The metadata of each event: the same keys, the same kinds of values.
    let metadata =
        |ds: &[Delivery]| -> Vec<Value> { ds.iter().map(|d| d.body["metadata"].clone()).collect() };
    let (b_meta, r_meta) = (metadata(&banned_hooks), metadata(&real_hooks));
    for (b, r) in b_meta.iter().zip(&r_meta) {
        assert_eq!(shape(b), shape(r), "{b} vs {r}");
    }
    assert_eq!(
        b_meta[2].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["ring_duration_ms"]
    );
    assert_eq!(b_meta[4]["otp_played"], true);

    // Timing: every step, and the durations the metadata reports, within what real calls took.
    let mut real_views = Vec::new();
    for r in &reals {
        real_views.push(view(&gw, r.id).await.1);
    }
    assert_gaps_plausible(&banned_view, &real_views);
    let real_completed: Vec<Value> = reals
        .iter()
        .map(|r| hooks.of(&r.id.to_string())[4].body["metadata"].clone())
        .collect();
    for key in ["ring_duration_ms", "talk_duration_ms"] {
        let seen: Vec<i64> = real_completed
            .iter()
            .map(|m| m[key].as_i64().unwrap())
            .collect();
        let (lo, hi) = (*seen.iter().min().unwrap(), *seen.iter().max().unwrap());
        let got = b_meta[4][key].as_i64().unwrap();
        // A talk spans two steps, so twice the slack.
        assert!(
            got >= lo - 2 && got <= hi + 2 * SLACK_MS,
            "{key}: banned {got} ms, real {seen:?} ms"
        );
    }
    // And they agree with the banned request's own timestamps, as a real call's do.
    let ts = timestamps(&banned_view);
    let talk = b_meta[4]["talk_duration_ms"].as_i64().unwrap();
    assert!(
        (talk - (ts[4] - ts[2])).abs() <= 2,
        "talk {talk}, timestamps {ts:?}"
    );
    hooks.stop().await;
}
