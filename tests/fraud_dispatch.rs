//! The fraud engine through `POST /dispatch` (SPEC §4 outcomes, §8): per-phone rate limits (429 with
//! `Retry-After`, the refusal stored, nothing else; exact under concurrency; per minute and per
//! hour), allowed countries (422), the shadow ban of an IRSF destination (a 200 and a simulated
//! delivery, nothing sent to the carrier, the decision and the savings stored), monitor mode and
//! `FRAUD_ENABLED=false` (delivered normally), phone and IPv4/IPv6 network whitelists, the ASN and
//! country rules over the MaxMind test databases in `tests/fixtures/mmdb/`, non-public and absent
//! end-user IPs, the explainability of every stored decision, and the engine's memory across a
//! restart (counts kept, not doubled; a banned request stays simulated).
//!
//! Every test starts the real gateway against the sandbox carrier and waits on events (the live
//! feed) rather than sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use actix_web::http::header::HeaderMap;
use diesel::prelude::*;
use serde_json::{json, Value};

use actors::{EventType, RequestId, Status};
use common::{read_json, TestGateway, PHONE, SECRET};
use otp_gateway::config::{Config, FraudMode, IpNet};
use otp_gateway::db::models::{event, fraud};
use otp_gateway::db::schema::{fraud_refusals, otp_requests};

/// Another valid US number.
const PHONE_2: &str = "+14155552672";
/// A UK mobile number (a normal OTP destination).
const UK_MOBILE: &str = "+447400123456";
/// A UK premium-rate number: `irsf_number_type` scores 50, the default shadow-ban threshold.
const PREMIUM: &str = "+449098790000";
/// `PREMIUM` as the carrier would see it.
const PREMIUM_DIGITS: &str = "449098790000";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mmdb")
        .join(name)
}

/// Points the engine at the MaxMind test databases.
fn with_ip_databases(c: &mut Config) {
    c.fraud.asn_db_path = fixture("GeoLite2-ASN-Test.mmdb");
    c.fraud.geoip_db_path = fixture("GeoLite2-Country-Test.mmdb");
}

/// An SMS-only dispatch body.
fn sms_body(phone: &str, extra: Value) -> Value {
    let mut body = json!({"phone": phone, "code": "123456", "channels": ["sms"]});
    if let Value::Object(more) = extra {
        body.as_object_mut().unwrap().extend(more);
    }
    body
}

/// `POST /dispatch` with extra headers; returns status, response headers and JSON body.
async fn dispatch_raw(
    gw: &TestGateway,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    let mut req = gw
        .client
        .post(format!("{}/dispatch", gw.url))
        .insert_header(("X-API-Secret", SECRET));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let response = req.send_json(body).await.unwrap();
    let headers = response.headers().clone();
    let (status, json) = read_json(response).await;
    (status, headers, json)
}

/// The `Retry-After` of a 429, in whole seconds.
fn retry_after(headers: &HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds")
}

/// Dispatches by SMS and waits until the request is delivered.
async fn deliver_sms(gw: &mut TestGateway, phone: &str, extra: Value) -> RequestId {
    let id = gw.dispatch_sms(phone, extra).await;
    gw.events.wait_for(id, EventType::Delivered).await;
    id
}

/// The stored decision (`fraud_details`) of a request.
async fn decision(gw: &TestGateway, id: RequestId) -> Value {
    let row = gw.request_row(id).await;
    serde_json::from_str(row.fraud_details.as_deref().expect("fraud_details")).unwrap()
}

/// One stored refusal.
#[derive(Debug)]
struct Refusal {
    phone: String,
    ip: Option<String>,
    verdict: String,
    score: i32,
    enforced: bool,
    details: Value,
}

/// Every row of `fraud_refusals`, oldest first.
async fn refusals(gw: &TestGateway) -> Vec<Refusal> {
    let rows = gw
        .gateway
        .store
        .read(|c| {
            fraud_refusals::table
                .order(fraud_refusals::id.asc())
                .select((
                    fraud_refusals::phone,
                    fraud_refusals::ip,
                    fraud_refusals::verdict,
                    fraud_refusals::score,
                    fraud_refusals::enforced,
                    fraud_refusals::details,
                ))
                .load::<(String, Option<String>, String, i32, bool, String)>(c)
        })
        .await
        .unwrap();
    rows.into_iter()
        .map(|(phone, ip, verdict, score, enforced, details)| Refusal {
            phone,
            ip,
            verdict,
            score,
            enforced,
            details: serde_json::from_str(&details).unwrap(),
        })
        .collect()
}

/// Number of request rows.
async fn request_count(gw: &TestGateway) -> i64 {
    gw.gateway
        .store
        .read(|c| otp_requests::table.count().get_result::<i64>(c))
        .await
        .unwrap()
}

/// SMS the sandbox carrier received for `digits` (E.164 without `+`).
fn carrier_sms_to(gw: &TestGateway, digits: &str) -> usize {
    gw.sms()
        .received()
        .iter()
        .filter(|sms| sms.raw_body.contains(digits))
        .count()
}

/// The hit of `rule` in a stored decision.
fn hit<'a>(decision: &'a Value, rule: &str) -> Option<&'a Value> {
    decision["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["rule"] == rule)
}

fn rules(decision: &Value) -> Vec<String> {
    decision["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["rule"].as_str().unwrap().to_owned())
        .collect()
}

/// Every stored decision explains itself: each hit names its rule, points and what it saw, the
/// score is their sum, and the inputs the rules used are all there.
fn assert_explained(decision: &Value, score: i32) {
    let hits = decision["hits"].as_array().expect("hits");
    let mut sum = 0;
    for h in hits {
        assert!(h["rule"].as_str().is_some_and(|r| !r.is_empty()), "{h}");
        assert!(h["points"].is_u64(), "{h}");
        assert!(h["detail"].is_object(), "{h}");
        sum += h["points"].as_i64().unwrap();
    }
    assert_eq!(
        sum,
        i64::from(score),
        "score is the sum of the points: {decision}"
    );
    let inputs = decision["inputs"].as_object().expect("inputs");
    for key in [
        "subnet",
        "ip",
        "ip_info",
        "phone_country",
        "prefix",
        "number_kind",
    ] {
        assert!(inputs.contains_key(key), "inputs lack {key}: {decision}");
    }
    for key in ["asn", "asn_org", "country"] {
        assert!(
            inputs["ip_info"].as_object().unwrap().contains_key(key),
            "ip_info lacks {key}: {decision}"
        );
    }
    assert!(decision["whitelisted"].is_boolean(), "{decision}");
    assert!(decision["verdict"]["verdict"].is_string(), "{decision}");
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Refusals: invalid phone, per-phone rate limit, allowed countries
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn an_invalid_phone_is_refused_before_the_fraud_engine() {
    let gw = TestGateway::start().await;
    for phone in ["+1555", "+99912345678", "+14155550"] {
        let (status, body) = gw.post("/dispatch", sms_body(phone, json!({}))).await;
        assert_eq!(status, 400, "{phone}: {body}");
        assert_eq!(body["error"], "invalid_phone", "{phone}: {body}");
    }
    assert_eq!(request_count(&gw).await, 0);
    assert!(refusals(&gw).await.is_empty(), "not a fraud decision");
    assert!(gw.sms().received().is_empty());
}

#[actix_rt::test]
async fn the_third_dispatch_to_a_phone_within_a_minute_is_rate_limited() {
    let mut gw = TestGateway::start().await;
    let first = deliver_sms(&mut gw, PHONE, json!({})).await;
    let second = deliver_sms(&mut gw, PHONE, json!({})).await;

    let third = sms_body(PHONE, json!({"ip": "81.2.69.161"}));
    let (status, headers, body) = dispatch_raw(&gw, &third, &[]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(keys(&body), ["error", "message"], "{body}");
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "{headers:?}"
    );
    let retry_after = retry_after(&headers);
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");

    // Retrying does not help (and is refused the same way), and nothing was stored or sent.
    let (status, headers, _) = dispatch_raw(&gw, &sms_body(PHONE, json!({})), &[]).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(request_count(&gw).await, 2);
    assert_eq!(carrier_sms_to(&gw, "14155552671"), 2);

    // The refusals are stored with their decision.
    let refused = refusals(&gw).await;
    assert_eq!(refused.len(), 2, "{refused:#?}");
    let r = &refused[0];
    assert_eq!(r.phone, PHONE);
    assert_eq!(r.ip.as_deref(), Some("81.2.69.161"));
    assert_eq!(r.verdict, "rate_limited");
    assert!(r.enforced);
    assert_eq!(r.score, 0);
    assert_eq!(r.details["verdict"]["verdict"], "rate_limited");
    assert_eq!(
        r.details["verdict"]["retry_after_secs"],
        json!(retry_after),
        "{:#}",
        r.details
    );
    let note = hit(&r.details, "phone_rate_limit").expect("phone_rate_limit note");
    assert_eq!(note["points"], 0);
    assert_eq!(note["detail"]["minute"], json!({"count": 2, "limit": 2}));
    assert_eq!(note["detail"]["hour"], json!({"count": 2, "limit": 5}));
    assert_explained(&r.details, r.score);
    assert_eq!(refused[1].ip, None);

    // The accepted ones carry an "allow" decision.
    for id in [first, second] {
        let row = gw.request_row(id).await;
        assert_eq!(row.fraud_verdict.as_deref(), Some("allow"));
        assert_eq!(row.fraud_enforced, Some(true));
        assert!(!row.shadow_banned);
    }

    // Another phone is not affected.
    let other = deliver_sms(&mut gw, PHONE_2, json!({})).await;
    assert_eq!(
        gw.request_row(other).await.fraud_verdict.as_deref(),
        Some("allow")
    );
}

#[actix_rt::test]
async fn concurrent_dispatches_to_one_phone_get_exactly_the_limit() {
    let gw = TestGateway::start().await;
    let body = sms_body(PHONE, json!({}));
    let answers =
        futures_util::future::join_all((0..6).map(|_| dispatch_raw(&gw, &body, &[]))).await;
    let statuses: Vec<u16> = answers.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(request_count(&gw).await, 2);
    assert_eq!(refusals(&gw).await.len(), 4);
}

#[actix_rt::test]
async fn the_hourly_limit_asks_to_retry_within_the_hour() {
    let mut gw = TestGateway::start_with(|c| {
        c.fraud.rate_limit_minute = 0;
        c.fraud.rate_limit_hour = 3;
    })
    .await;
    for _ in 0..3 {
        deliver_sms(&mut gw, PHONE, json!({})).await;
    }
    let (status, headers, body) = dispatch_raw(&gw, &sms_body(PHONE, json!({})), &[]).await;
    assert_eq!(status, 429, "{body}");
    let retry_after = retry_after(&headers);
    assert!(
        (3500..=3600).contains(&retry_after),
        "the oldest leaves the hour in about an hour: {retry_after}"
    );
    let refused = refusals(&gw).await;
    let note = hit(&refused[0].details, "phone_rate_limit").unwrap();
    assert_eq!(note["detail"]["hour"], json!({"count": 3, "limit": 3}));
    deliver_sms(&mut gw, PHONE_2, json!({})).await;
}

#[actix_rt::test]
async fn a_destination_outside_the_allowed_countries_is_refused_with_422() {
    let mut gw = TestGateway::start_with(|c| c.fraud.allowed_countries = vec!["US".into()]).await;
    let (status, headers, body) = dispatch_raw(&gw, &sms_body(UK_MOBILE, json!({})), &[]).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "country_not_allowed", "{body}");
    assert_eq!(keys(&body), ["error", "message"], "{body}");
    assert!(!headers.contains_key("retry-after"));
    // Voice too: the rule is about the destination, not the channel.
    let voice = json!({"phone": UK_MOBILE, "code": "123456", "channels": ["voice"]});
    let (status, _, body) = dispatch_raw(&gw, &voice, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("country_not_allowed"))
    );

    assert_eq!(request_count(&gw).await, 0);
    assert!(gw.sms().received().is_empty(), "nothing is sent");
    assert!(gw.trunk().calls().is_empty());
    let refused = refusals(&gw).await;
    assert_eq!(refused.len(), 2);
    for r in &refused {
        assert_eq!(r.phone, UK_MOBILE);
        assert_eq!(r.verdict, "country_not_allowed");
        assert!(r.enforced);
        assert_eq!(
            r.details["verdict"],
            json!({"verdict": "country_not_allowed", "country": "GB"})
        );
        assert_eq!(r.details["inputs"]["phone_country"], "GB");
    }

    // An allowed destination goes through.
    deliver_sms(&mut gw, PHONE, json!({})).await;
}

// ---------------------------------------------------------------------------------------------
// Shadow ban, monitor mode, fraud disabled
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_premium_rate_number_is_shadow_banned_and_nothing_reaches_the_carrier() {
    let mut gw = TestGateway::start().await;
    // A real delivery first: the answer to compare with, and timings for the twin.
    let (status, _, real_answer) =
        dispatch_raw(&gw, &sms_body(UK_MOBILE, json!({"session_id": "s-1"})), &[]).await;
    assert_eq!(status, 200, "{real_answer}");
    let real = RequestId::parse(real_answer["request_id"].as_str().unwrap()).unwrap();
    gw.events.wait_for(real, EventType::Delivered).await;
    let real_view = gw.view_ok(real).await;

    let (status, _, answer) =
        dispatch_raw(&gw, &sms_body(PREMIUM, json!({"session_id": "s-2"})), &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(keys(&answer), keys(&real_answer));
    assert_eq!(answer["status"], "sending");
    assert_eq!(answer["channel"], "sms");
    assert_eq!(answer["phone"], PREMIUM);
    let id = RequestId::parse(answer["request_id"].as_str().unwrap()).expect("a uuid");

    let delivered = gw.events.wait_for(id, EventType::Delivered).await;
    assert_eq!(delivered.status, Status::Delivered);
    assert_eq!(
        gw.events.history(id),
        [
            (EventType::Sending, Status::Sending),
            (EventType::Sent, Status::Sent),
            (EventType::Delivered, Status::Delivered),
        ]
    );
    assert_eq!(gw.events.history(id), gw.events.history(real));

    // Nothing reached the carrier: the only SMS is the real one, and no call was placed.
    assert_eq!(carrier_sms_to(&gw, PREMIUM_DIGITS), 0);
    assert_eq!(gw.sms().received().len(), 1);
    assert!(gw.trunk().calls().is_empty());

    // The decision, for the operator.
    let row = gw.request_row(id).await;
    assert!(row.shadow_banned);
    assert_eq!(row.fraud_verdict.as_deref(), Some("shadow_ban"));
    assert_eq!(row.fraud_enforced, Some(true));
    let score = row.fraud_score.unwrap();
    assert!(score >= 50, "score {score}");
    assert!(row.fraud_savings_micros.is_some_and(|s| s > 0), "{row:?}");
    assert!(row.provider_id.is_none() && row.sip_call_id.is_none());
    assert_eq!(row.status, "delivered");
    let d = decision(&gw, id).await;
    assert_explained(&d, score);
    let irsf = hit(&d, "irsf_number_type").expect("irsf_number_type hit");
    assert_eq!(irsf["points"], 50);
    assert_eq!(irsf["detail"], json!({"number_kind": "premium_rate"}));
    assert_eq!(d["verdict"], json!({"verdict": "shadow_ban"}));
    assert_eq!(d["whitelisted"], false);
    assert_eq!(d["inputs"]["phone_country"], "GB");
    assert_eq!(d["inputs"]["prefix"], "+4490");
    assert_eq!(d["inputs"]["number_kind"], "premium_rate");
    // The real one was allowed, with no savings.
    let r = gw.request_row(real).await;
    assert_eq!(r.fraud_verdict.as_deref(), Some("allow"));
    assert_eq!(r.fraud_savings_micros, None);
    assert!(!r.shadow_banned);

    // The operator-only data marks the simulated events; the client view shows a real history.
    let key = id.to_string();
    let events = gw
        .gateway
        .store
        .read(move |c| event::list_by_request(c, &key))
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    for e in &events {
        let internal: Value = serde_json::from_str(&e.internal).unwrap();
        assert_eq!(internal["simulated"], true, "{e:?}");
    }
    let view = gw.view_ok(id).await;
    assert_eq!(view["status"], "delivered");
    assert_eq!(view["channel"], "sms");
    assert_eq!(view["channel_status"], "delivered");
    assert_eq!(view["session_id"], "s-2");
    assert_eq!(common::event_types(&view), ["sending", "sent", "delivered"]);
    assert_eq!(keys(&view), keys(&real_view));
    for (banned, real) in view["events"]
        .as_array()
        .unwrap()
        .iter()
        .zip(real_view["events"].as_array().unwrap())
    {
        assert_eq!(keys(banned), keys(real));
        assert_eq!(banned["metadata"], real["metadata"]);
    }
    let text = view.to_string().to_ascii_lowercase();
    for needle in [
        "simulated",
        "shadow",
        "fraud",
        "internal",
        "ban",
        "score",
        "irsf",
    ] {
        assert!(
            !text.contains(needle),
            "client view leaks {needle:?}: {view}"
        );
    }
}

#[actix_rt::test]
async fn monitor_mode_records_what_would_have_happened_and_delivers() {
    let mut gw = TestGateway::start_with(|c| c.fraud.mode = FraudMode::Monitor).await;
    let id = deliver_sms(&mut gw, PREMIUM, json!({})).await;
    assert_eq!(carrier_sms_to(&gw, PREMIUM_DIGITS), 1, "really sent");
    let row = gw.request_row(id).await;
    assert_eq!(row.fraud_verdict.as_deref(), Some("shadow_ban"));
    assert_eq!(row.fraud_enforced, Some(false));
    assert!(!row.shadow_banned);
    assert_eq!(row.fraud_savings_micros, None);
    assert!(row.fraud_score.unwrap() >= 50);
    assert!(row.provider_id.is_some(), "a real DIDWW message id");
    let d = decision(&gw, id).await;
    assert!(hit(&d, "irsf_number_type").is_some(), "{d}");
    assert_explained(&d, row.fraud_score.unwrap());

    // The per-phone limit is recorded, not applied.
    deliver_sms(&mut gw, PHONE, json!({})).await;
    deliver_sms(&mut gw, PHONE, json!({})).await;
    let third = deliver_sms(&mut gw, PHONE, json!({})).await;
    let row = gw.request_row(third).await;
    assert_eq!(row.fraud_verdict.as_deref(), Some("rate_limited"));
    assert_eq!(row.fraud_enforced, Some(false));
    assert!(!row.shadow_banned);
    assert_eq!(carrier_sms_to(&gw, "14155552671"), 3);
    assert!(refusals(&gw).await.is_empty());
}

#[actix_rt::test]
async fn with_fraud_disabled_nothing_is_scored() {
    let mut gw = common::start(|_| {}).await;
    assert!(gw.gateway.fraud.is_none());
    let id = deliver_sms(&mut gw, PREMIUM, json!({"ip": "1.128.0.1"})).await;
    assert_eq!(carrier_sms_to(&gw, PREMIUM_DIGITS), 1);
    let row = gw.request_row(id).await;
    assert_eq!(row.fraud_verdict, None);
    assert_eq!(row.fraud_score, None);
    assert_eq!(row.fraud_enforced, None);
    assert_eq!(row.fraud_details, None);
    assert_eq!(row.fraud_savings_micros, None);
    assert!(!row.shadow_banned);
    // No limit either.
    for _ in 0..3 {
        deliver_sms(&mut gw, PHONE, json!({})).await;
    }
    assert!(refusals(&gw).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Whitelists
// ---------------------------------------------------------------------------------------------

/// A request allowed by the whitelist: no rule ran.
async fn assert_whitelisted(gw: &TestGateway, id: RequestId) {
    let row = gw.request_row(id).await;
    assert_eq!(row.fraud_verdict.as_deref(), Some("allow"));
    assert_eq!(row.fraud_score, Some(0));
    assert!(!row.shadow_banned);
    let d = decision(gw, id).await;
    assert_eq!(d["whitelisted"], true, "{d}");
    assert_eq!(d["hits"], json!([]), "{d}");
    assert_explained(&d, 0);
}

#[actix_rt::test]
async fn a_whitelisted_phone_bypasses_every_rule() {
    let mut gw = TestGateway::start_with(|c| {
        c.fraud.whitelist_phones = vec![PREMIUM.into()];
        c.fraud.allowed_countries = vec!["US".into()];
    })
    .await;
    // Premium rate, outside the allowed countries, three times in a minute: all delivered.
    for n in 1..=3 {
        let id = deliver_sms(&mut gw, PREMIUM, json!({"ip": "81.2.69.161"})).await;
        assert_whitelisted(&gw, id).await;
        assert_eq!(carrier_sms_to(&gw, PREMIUM_DIGITS), n);
    }
    assert!(refusals(&gw).await.is_empty());
    // Only that phone: another UK number is still refused.
    let (status, _, _) = dispatch_raw(&gw, &sms_body(UK_MOBILE, json!({})), &[]).await;
    assert_eq!(status, 422);
}

#[actix_rt::test]
async fn whitelisted_ipv4_and_ipv6_networks_bypass_every_rule() {
    let mut gw = TestGateway::start_with(|c| {
        c.fraud.whitelist_nets = vec![
            "203.0.113.0/24".parse::<IpNet>().unwrap(),
            "2001:db8:1::/48".parse::<IpNet>().unwrap(),
        ];
    })
    .await;
    for ip in ["203.0.113.7", "2001:db8:1:ff::5"] {
        let id = deliver_sms(&mut gw, PREMIUM, json!({"ip": ip})).await;
        assert_whitelisted(&gw, id).await;
    }
    assert_eq!(carrier_sms_to(&gw, PREMIUM_DIGITS), 2);
    // Not counted against the phone either: a third and fourth from the networks still go through.
    // An IPv4-mapped IPv6 address is the IPv4 address it maps.
    for ip in ["203.0.113.200", "2001:db8:1::1", "::ffff:203.0.113.9"] {
        let id = deliver_sms(&mut gw, PREMIUM, json!({"ip": ip})).await;
        assert_whitelisted(&gw, id).await;
    }
    assert_eq!(carrier_sms_to(&gw, PREMIUM_DIGITS), 5);

    // Outside the networks the same number is shadow-banned (v4 and v6).
    for ip in ["203.0.114.7", "2001:db8:2::5"] {
        let id = deliver_sms(&mut gw, PREMIUM, json!({"ip": ip})).await;
        let row = gw.request_row(id).await;
        assert!(row.shadow_banned, "{ip}: {row:?}");
        assert_eq!(decision(&gw, id).await["whitelisted"], false);
    }
    assert_eq!(carrier_sms_to(&gw, PREMIUM_DIGITS), 5);
}

// ---------------------------------------------------------------------------------------------
// IP rules: country, ASN, non-public and absent IPs
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn an_ip_country_other_than_the_phone_country_scores_geo_mismatch() {
    let mut gw = TestGateway::start_with(with_ip_databases).await;
    // US number, GB address: 20 points, below the threshold, delivered.
    let id = deliver_sms(&mut gw, PHONE, json!({"ip": "81.2.69.161"})).await;
    let row = gw.request_row(id).await;
    assert_eq!(row.fraud_verdict.as_deref(), Some("allow"));
    assert_eq!(row.fraud_score, Some(20));
    let d = decision(&gw, id).await;
    assert_explained(&d, 20);
    assert_eq!(rules(&d), ["geo_mismatch"]);
    let geo = hit(&d, "geo_mismatch").unwrap();
    assert_eq!(geo["points"], 20);
    assert_eq!(
        geo["detail"],
        json!({"ip_country": "GB", "phone_country": "US"})
    );
    let inputs = &d["inputs"];
    assert_eq!(inputs["ip"], "81.2.69.161");
    assert_eq!(inputs["subnet"], "81.2.69.0/24");
    assert_eq!(inputs["ip_info"]["country"], "GB");
    assert_eq!(inputs["phone_country"], "US");
    assert_eq!(inputs["prefix"], "+1415");

    // Matching countries: nothing.
    for (phone, ip) in [(PHONE_2, "216.160.83.57"), (UK_MOBILE, "81.2.69.170")] {
        let id = deliver_sms(&mut gw, phone, json!({"ip": ip})).await;
        let d = decision(&gw, id).await;
        assert_eq!(d["hits"], json!([]), "{phone} from {ip}: {d}");
        assert_eq!(gw.request_row(id).await.fraud_score, Some(0));
    }
}

#[actix_rt::test]
async fn the_geo_penalty_is_configurable_and_can_reach_the_threshold() {
    let mut gw = TestGateway::start_with(|c| {
        with_ip_databases(c);
        c.fraud.geo_mismatch_penalty = 50;
    })
    .await;
    let id = deliver_sms(&mut gw, UK_MOBILE, json!({"ip": "89.160.20.113"})).await;
    let row = gw.request_row(id).await;
    assert!(row.shadow_banned, "{row:?}");
    let d = decision(&gw, id).await;
    let geo = hit(&d, "geo_mismatch").unwrap();
    assert_eq!(geo["points"], 50);
    assert_eq!(
        geo["detail"],
        json!({"ip_country": "SE", "phone_country": "GB"})
    );
    assert_eq!(carrier_sms_to(&gw, "447400123456"), 0);
}

#[actix_rt::test]
async fn an_asn_on_the_blocklist_scores_with_its_organisation_and_category() {
    // The blocklist is read from the database at start: create the database and list Telstra
    // (AS1221 in the test database) before the gateway starts.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otp.db");
    {
        let (mut conn, _pool) = otp_gateway::db::open(&path).unwrap();
        fraud::add_asn(&mut conn, 1221, "Telstra", "hosting", "test", now_ms()).unwrap();
    }
    let db = path.clone();
    let mut gw = TestGateway::start_with(move |c| {
        c.database_path = db;
        // ASN only: the country rule stays out of the score.
        c.fraud.asn_db_path = fixture("GeoLite2-ASN-Test.mmdb");
    })
    .await;

    let id = deliver_sms(&mut gw, PHONE, json!({"ip": "1.128.0.1"})).await;
    let row = gw.request_row(id).await;
    assert_eq!(row.fraud_verdict.as_deref(), Some("allow"));
    assert_eq!(row.fraud_score, Some(30));
    let d = decision(&gw, id).await;
    assert_explained(&d, 30);
    assert_eq!(rules(&d), ["asn_blocklist"]);
    let asn = hit(&d, "asn_blocklist").unwrap();
    assert_eq!(asn["points"], 30);
    assert_eq!(
        asn["detail"],
        json!({"asn": 1221, "org": "Telstra", "category": "hosting"})
    );
    assert_eq!(d["inputs"]["ip_info"]["asn"], 1221);
    assert_eq!(d["inputs"]["ip_info"]["asn_org"], "Telstra Pty Ltd");
    assert_eq!(d["inputs"]["subnet"], "1.128.0.0/24");

    // Google (AS15169) is known but not listed; AT&T neither.
    for (phone, ip, asn) in [(PHONE_2, "1.0.0.1", 15169), (UK_MOBILE, "12.81.92.5", 7018)] {
        let id = deliver_sms(&mut gw, phone, json!({"ip": ip})).await;
        let d = decision(&gw, id).await;
        assert_eq!(d["inputs"]["ip_info"]["asn"], asn, "{d}");
        assert!(hit(&d, "asn_blocklist").is_none(), "{d}");
    }

    // Listed ASN (30) and a premium-rate number (50) add up.
    let id = deliver_sms(&mut gw, PREMIUM, json!({"ip": "1.128.0.2"})).await;
    let row = gw.request_row(id).await;
    assert!(row.shadow_banned);
    assert_eq!(row.fraud_score, Some(80));
    let d = decision(&gw, id).await;
    assert_eq!(rules(&d), ["asn_blocklist", "irsf_number_type"]);
}

#[actix_rt::test]
async fn a_loopback_or_private_ip_is_not_fraud_by_itself() {
    let mut gw = TestGateway::start_with(|c| {
        with_ip_databases(c);
        c.fraud.subnet_limit_minute = 2;
    })
    .await;
    let cases = [
        ("+14155552601", "127.0.0.1", "loopback"),
        ("+14155552602", "10.1.2.3", "private"),
        ("+14155552603", "192.168.1.5", "private"),
        ("+14155552604", "100.64.0.9", "cgnat"),
        ("+14155552605", "169.254.1.1", "link_local"),
        ("+14155552606", "::1", "loopback"),
        ("+14155552607", "fd00::7", "private"),
        ("+14155552608", "::ffff:10.1.2.3", "private"),
        // Same private network again, beyond the subnet limit: not counted.
        ("+14155552609", "10.1.2.3", "private"),
        ("+14155552610", "10.1.2.4", "private"),
    ];
    for (phone, ip, scope) in cases {
        let id = deliver_sms(&mut gw, phone, json!({"ip": ip})).await;
        let row = gw.request_row(id).await;
        assert_eq!(row.fraud_verdict.as_deref(), Some("allow"), "{ip}");
        assert_eq!(row.fraud_score, Some(0), "{ip}");
        let d = decision(&gw, id).await;
        assert_explained(&d, 0);
        assert_eq!(
            d["hits"],
            json!([{"rule": "non_public_ip", "points": 0, "detail": {"ip_scope": scope}}]),
            "{ip}"
        );
        assert_eq!(d["inputs"]["subnet"], Value::Null, "{ip}");
        assert_eq!(
            d["inputs"]["ip_info"],
            json!({"asn": null, "asn_org": null, "country": null})
        );
    }

    // Public networks over the same limit are counted: per /24 for IPv4, per /64 for IPv6.
    for (phones, ips, subnet) in [
        (
            ["+14155552611", "+14155552612", "+14155552613"],
            ["216.160.83.57", "216.160.83.58", "216.160.83.57"],
            "216.160.83.0/24",
        ),
        (
            ["+14155552614", "+14155552615", "+14155552616"],
            ["2001:db8:5::1", "2001:db8:5::2:1", "2001:db8:5:0:ffff::1"],
            "2001:db8:5::/64",
        ),
    ] {
        let mut last = Value::Null;
        for (phone, ip) in phones.into_iter().zip(ips) {
            let id = deliver_sms(&mut gw, phone, json!({"ip": ip})).await;
            last = decision(&gw, id).await;
        }
        let velocity = hit(&last, "subnet_velocity_minute").expect("velocity on a public subnet");
        assert_eq!(velocity["points"], 30);
        assert_eq!(velocity["detail"]["count"], 3);
        assert_eq!(velocity["detail"]["limit"], 2);
        assert_eq!(last["inputs"]["subnet"], subnet);
    }
}

#[actix_rt::test]
async fn without_an_ip_the_callers_address_is_never_scored() {
    // The caller sits behind one proxy, which names a GB address for it.
    let mut gw = TestGateway::start_with(|c| {
        with_ip_databases(c);
        c.trust_proxy = 1;
        c.fraud.subnet_limit_minute = 1;
    })
    .await;
    for (n, phone) in ["+14155552621", "+14155552622", "+14155552623"]
        .into_iter()
        .enumerate()
    {
        let (status, _, answer) = dispatch_raw(
            &gw,
            &sms_body(phone, json!({})),
            &[("X-Forwarded-For", "81.2.69.161")],
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let id = RequestId::parse(answer["request_id"].as_str().unwrap()).unwrap();
        gw.events.wait_for(id, EventType::Delivered).await;
        let row = gw.request_row(id).await;
        // The derived address is stored with the request…
        assert_eq!(row.client_ip.as_deref(), Some("81.2.69.161"), "request {n}");
        // …but never scored: no geo mismatch, no subnet velocity, not even looked up.
        assert_eq!(row.fraud_score, Some(0));
        let d = decision(&gw, id).await;
        assert_explained(&d, 0);
        assert_eq!(d["hits"], json!([]), "{d}");
        assert_eq!(d["inputs"]["ip"], Value::Null);
        assert_eq!(d["inputs"]["subnet"], Value::Null);
        assert_eq!(
            d["inputs"]["ip_info"],
            json!({"asn": null, "asn_org": null, "country": null})
        );
    }
    // With the same address given as `ip`, it is scored.
    let id = deliver_sms(&mut gw, "+14155552624", json!({"ip": "81.2.69.161"})).await;
    assert!(hit(&decision(&gw, id).await, "geo_mismatch").is_some());
}

// ---------------------------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------------------------

/// Runs a first gateway on `database` in its own actix system and thread (a process of its own):
/// it delivers two SMS to `PHONE` and one to `PHONE_2` (each from its own public IP), shuts down
/// gracefully (saving the engine's state) and its whole runtime is dropped.
fn first_instance(database: PathBuf) -> std::thread::JoinHandle<Vec<RequestId>> {
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut gw = TestGateway::start_with(|c| c.database_path = database).await;
            let mut ids = Vec::new();
            for (phone, ip) in [
                (PHONE, "216.160.83.57"),
                (PHONE, "216.160.83.58"),
                (PHONE_2, "216.160.83.59"),
            ] {
                ids.push(deliver_sms(&mut gw, phone, json!({"ip": ip})).await);
            }
            gw.gateway.shutdown().await;
            actix_rt::System::current().stop();
            ids
        })
    })
}

/// A plain connection with a busy timeout set first (see `tests/webhooks.rs`: it keeps the second
/// instance from opening the file while the first one's last connection checkpoints the WAL).
fn hold_database(database: &Path) -> SqliteConnection {
    use diesel::connection::SimpleConnection;
    let mut conn = SqliteConnection::establish(&database.to_string_lossy()).unwrap();
    conn.batch_execute("PRAGMA busy_timeout = 10000;").unwrap();
    conn
}

#[actix_rt::test]
async fn the_engine_remembers_a_phone_across_a_restart_and_punishes_nobody_twice() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("otp.db");
    let first = first_instance(database.clone());
    let sent = tokio::task::spawn_blocking(move || first.join())
        .await
        .unwrap()
        .expect("first instance ran");
    assert_eq!(sent.len(), 3);
    let mut guard = hold_database(&database);
    let snapshot = fraud::load_state(&mut guard).unwrap();
    assert!(snapshot.is_some(), "the shutdown saved the engine's state");

    let db = database.clone();
    let mut gw = TestGateway::start_with(move |c| c.database_path = db).await;
    // PHONE had its two of the minute before the restart.
    let (status, headers, body) = dispatch_raw(&gw, &sms_body(PHONE, json!({})), &[]).await;
    assert_eq!(status, 429, "the engine forgot the phone: {body}");
    assert_eq!(body["error"], "rate_limited");
    let retry_after = retry_after(&headers);
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let refused = refusals(&gw).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].verdict, "rate_limited");
    let note = hit(&refused[0].details, "phone_rate_limit").unwrap();
    assert_eq!(note["detail"]["minute"], json!({"count": 2, "limit": 2}));
    assert_eq!(note["detail"]["hour"], json!({"count": 2, "limit": 5}));

    // PHONE_2 had one: it is counted once, not twice, so it gets exactly one more.
    let again = deliver_sms(&mut gw, PHONE_2, json!({})).await;
    assert_eq!(
        gw.request_row(again).await.fraud_verdict.as_deref(),
        Some("allow")
    );
    let (status, _, _) = dispatch_raw(&gw, &sms_body(PHONE_2, json!({})), &[]).await;
    assert_eq!(status, 429);

    // Nobody else is punished: a new phone, from the first instance's subnet, gets a clean
    // decision.
    let other = deliver_sms(&mut gw, "+14155552673", json!({"ip": "216.160.83.60"})).await;
    let row = gw.request_row(other).await;
    assert_eq!(row.fraud_verdict.as_deref(), Some("allow"));
    assert_eq!(row.fraud_score, Some(0), "{:?}", row.fraud_details);
    assert_eq!(carrier_sms_to(&gw, "14155552673"), 1);
    assert_eq!(
        carrier_sms_to(&gw, "14155552671"),
        0,
        "nothing more to PHONE"
    );
    // The first instance's requests are still there and delivered.
    for id in sent {
        assert_eq!(gw.request_row(id).await.status, "delivered");
    }
    gw.gateway.shutdown().await;
    drop(guard);
}

/// A first gateway (as in [`first_instance`]) that shadow-bans an SMS and shuts down while its
/// simulated delivery is between `sent` and `delivered`. Returns the request and what its carrier
/// received.
fn first_instance_banning(database: PathBuf) -> std::thread::JoinHandle<(RequestId, usize)> {
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut gw = TestGateway::start_with(|c| c.database_path = database).await;
            // No real delivery yet: the twin waits its default delays (≈ 0.3 s, then ≈ 3 s).
            let id = gw.dispatch_sms(PREMIUM, json!({})).await;
            gw.events.wait_for(id, EventType::Sent).await;
            gw.gateway.shutdown().await;
            let received = gw.sms().received().len();
            actix_rt::System::current().stop();
            (id, received)
        })
    })
}

#[actix_rt::test]
async fn a_shadow_banned_request_stays_simulated_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("otp.db");
    let first = first_instance_banning(database.clone());
    let (id, received) = tokio::task::spawn_blocking(move || first.join())
        .await
        .unwrap()
        .expect("first instance ran");
    assert_eq!(received, 0);
    let guard = hold_database(&database);

    let db = database.clone();
    let mut gw = TestGateway::start_with(move |c| c.database_path = db).await;
    let delivered = gw.events.wait_for(id, EventType::Delivered).await;
    assert_eq!(delivered.status, Status::Delivered);
    let view = gw.view_ok(id).await;
    assert_eq!(common::event_types(&view), ["sending", "sent", "delivered"]);
    assert!(gw.sms().received().is_empty(), "resumed as a real delivery");
    assert!(gw.trunk().calls().is_empty());
    let row = gw.request_row(id).await;
    assert!(row.shadow_banned);
    assert_eq!(row.status, "delivered");
    gw.gateway.shutdown().await;
    drop(guard);
}
