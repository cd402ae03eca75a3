//! Interop of the gateway's SIP user agent with SIPp (Debian `sip-tester`) playing the DIDWW trunk:
//! one UAS scenario of `tests/sipp/` per test, the gateway in live mode pointed at SIPp on
//! loopback. Each test asserts both sides: the exact event sequence, final status and metadata the
//! gateway records (SPEC §7), and SIPp's exit status, which is 0 only when every message the
//! scenario expects arrived in order and passed its checks (digest, caller ID, route set, …).
//! Tests wait on events and on SIPp's exit; timeouts are upper bounds only.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use actors::store::RecordedEvent;
use actors::{EventType, RequestId, Status};
use common::sipp::{Sipp, SippRun};
use common::{TestGateway, PHONE};
use otp_gateway::config::{Config, Mode, PromptPart, Secret, VoiceSpeed};

use EventType::{Answered, Busy, Calling, Completed, Failed, Hangup, NoAnswer, Playing, Ringing};

/// The trunk credentials the scenarios verify (`<verifyauth>` in `tests/sipp/*.xml`).
const USERNAME: &str = "otpuser";
const PASSWORD: &str = "otppass-0123";
/// The caller ID the scenarios expect as From user (`tests/sipp/*.xml`).
const CALLER_ID: &str = "12025550147";

/// A live-mode gateway whose trunk is SIPp: the trunk credentials, short SIP timers, a short ring
/// timeout, a prompt of just the code read fast, its own RTP range (other tests use 20000–20999
/// and 22000+), and no second keepalive OPTIONS during the test (SIPp expects exactly one, see
/// `common::sipp`); then `tweak`.
async fn gateway_for(sipp: &Sipp, tweak: impl FnOnce(&mut Config)) -> TestGateway {
    let port = sipp.port;
    common::start(move |c: &mut Config| {
        c.mode = Mode::Live;
        c.sip.host = format!("127.0.0.1:{port}");
        c.sip.username = USERNAME.into();
        c.sip.password = Secret::new(PASSWORD);
        c.sip.caller_id = CALLER_ID.into();
        c.sip.caller_id_us_canada = None;
        c.sip.t1 = Duration::from_millis(50);
        c.sip.ring_timeout = Duration::from_millis(300);
        c.sip.options_interval = Duration::from_secs(3600);
        c.sip.rtp_port_start = 21_000;
        c.sip.rtp_port_end = 21_098;
        c.voice.prompt = vec![PromptPart::Code];
        c.voice.speed = VoiceSpeed::Fast;
        tweak(c);
    })
    .await
}

/// Starts SIPp with `scenario` (and `extra` arguments), then a gateway trunked to it, and
/// dispatches one voice-only OTP to [`PHONE`].
async fn call_through(
    scenario: &str,
    extra: &[&str],
    tweak: impl FnOnce(&mut Config),
) -> (Sipp, TestGateway, RequestId) {
    let sipp = Sipp::start(scenario, extra).await;
    let gw = gateway_for(&sipp, tweak).await;
    let id = gw
        .dispatch_ok(json!({"phone": PHONE, "code": "1234", "channels": ["voice"]}))
        .await;
    (sipp, gw, id)
}

/// Waits for SIPp to exit; panics with its traces unless every check of its scenario passed.
/// Called right after the gateway's final event, before the gateway-side assertions: when both
/// sides are wrong, SIPp's trace usually shows why.
async fn sipp_passed(sipp: Sipp) -> SippRun {
    let run = sipp.finish().await;
    run.assert_passed();
    run
}

fn metadata(event: &RecordedEvent, key: &str) -> Value {
    event.metadata.get(key).cloned().unwrap_or(Value::Null)
}

/// A millisecond metadata field, which must be present.
fn millis(event: &RecordedEvent, key: &str) -> u64 {
    metadata(event, key)
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing from {:?}", event.metadata))
}

/// The request's whole event history, up to its final event, is exactly `expected`.
fn assert_history(gw: &TestGateway, id: RequestId, expected: &[(EventType, Status)]) {
    assert_eq!(gw.events.history(id), expected, "event sequence of {id}");
}

/// SIPp received `count` requests with `method` (its message trace, retransmissions included).
fn assert_received(run: &SippRun, method: &str, count: usize) {
    assert_eq!(
        run.received_requests(method),
        count,
        "{method} requests SIPp received; {:?}\n{}",
        run.received(),
        run.report()
    );
}

/// The events of a call that is answered, plays the prompt and is hung up by the gateway.
const PLAYED_IN_FULL: [(EventType, Status); 5] = [
    (Calling, Status::Sending),
    (Ringing, Status::Sent),
    (Answered, Status::Sent),
    (Playing, Status::Sent),
    (Completed, Status::Delivered),
];

/// Waits for the final `event` of a call and for the request status it must leave; fails at
/// once, with SIPp's traces, if SIPp fails first.
async fn final_event(
    gw: &mut TestGateway,
    sipp: &Sipp,
    id: RequestId,
    event: EventType,
    status: Status,
) -> Arc<RecordedEvent> {
    let events = &mut gw.events;
    tokio::select! {
        last = async {
            let last = events.wait_for(id, event).await;
            events.wait_for_status(id, status).await;
            last
        } => last,
        run = sipp.failed() => panic!(
            "SIPp failed before the gateway's {event} (saw {:?}):\n{}",
            events.history(id),
            run.report()
        ),
    }
}

#[actix_rt::test]
async fn challenged_call_rings_answers_plays_and_hangs_up_along_the_route_set() {
    let (sipp, mut gw, id) = call_through("auth_answer_bye.xml", &[], |_| {}).await;

    let completed = final_event(&mut gw, &sipp, id, Completed, Status::Delivered).await;
    let run = sipp_passed(sipp).await;

    assert_history(&gw, id, &PLAYED_IN_FULL);
    assert_eq!(metadata(&completed, "otp_played"), json!(true));
    assert_eq!(metadata(&completed, "sip_code"), Value::Null);
    millis(&completed, "ring_duration_ms");
    // "1 2 3 4" read fast, with lead-in and tail silence, lasts about 2.5 s.
    let talk = millis(&completed, "talk_duration_ms");
    assert!(talk >= 2000, "talk_duration_ms {talk}");
    // INVITE, ACK (401), INVITE, ACK (200), BYE: each exactly once.
    assert_received(&run, "INVITE", 2);
    assert_received(&run, "ACK", 2);
    assert_received(&run, "BYE", 1);
}

#[actix_rt::test]
async fn wrong_password_fails_with_the_second_401_and_no_third_invite() {
    let (sipp, mut gw, id) = call_through("auth_rejected.xml", &[], |c| {
        c.sip.password = Secret::new("not-the-trunk-password");
    })
    .await;

    let failed = final_event(&mut gw, &sipp, id, Failed, Status::Failed).await;
    // SIPp waits a second for a third INVITE before it passes.
    let run = sipp_passed(sipp).await;

    assert_history(
        &gw,
        id,
        &[(Calling, Status::Sending), (Failed, Status::Failed)],
    );
    assert_eq!(metadata(&failed, "sip_code"), json!(401));
    assert_eq!(metadata(&failed, "error"), json!("authentication_failed"));
    millis(&failed, "ring_duration_ms");
    assert_received(&run, "INVITE", 2);
    assert_received(&run, "ACK", 2);
}

#[actix_rt::test]
async fn busy_here_ends_the_call_as_busy() {
    let (sipp, mut gw, id) = call_through("busy.xml", &[], |_| {}).await;

    let busy = final_event(&mut gw, &sipp, id, Busy, Status::Failed).await;
    let run = sipp_passed(sipp).await;

    assert_history(
        &gw,
        id,
        &[(Calling, Status::Sending), (Busy, Status::Failed)],
    );
    assert_eq!(metadata(&busy, "sip_code"), json!(486));
    assert_eq!(metadata(&busy, "reason"), json!("Busy Here"));
    assert_eq!(metadata(&busy, "error"), Value::Null);
    millis(&busy, "ring_duration_ms");
    assert_received(&run, "INVITE", 2);
    assert_received(&run, "ACK", 2);
}

#[actix_rt::test]
async fn temporarily_unavailable_after_ringing_is_no_answer() {
    let (sipp, mut gw, id) = call_through("unavailable.xml", &[], |_| {}).await;

    let no_answer = final_event(&mut gw, &sipp, id, NoAnswer, Status::Failed).await;
    let run = sipp_passed(sipp).await;

    assert_history(
        &gw,
        id,
        &[
            (Calling, Status::Sending),
            (Ringing, Status::Sent),
            (NoAnswer, Status::Failed),
        ],
    );
    assert_eq!(metadata(&no_answer, "sip_code"), json!(480));
    assert_eq!(
        metadata(&no_answer, "reason"),
        json!("Temporarily Unavailable")
    );
    millis(&no_answer, "ring_duration_ms");
    assert_received(&run, "INVITE", 2);
    assert_received(&run, "ACK", 2);
}

#[actix_rt::test]
async fn ring_timeout_cancels_and_the_487_is_no_answer() {
    let (sipp, mut gw, id) = call_through("no_answer_cancel.xml", &[], |_| {}).await;

    let no_answer = final_event(&mut gw, &sipp, id, NoAnswer, Status::Failed).await;
    let run = sipp_passed(sipp).await;

    assert_history(
        &gw,
        id,
        &[
            (Calling, Status::Sending),
            (Ringing, Status::Sent),
            (NoAnswer, Status::Failed),
        ],
    );
    assert_eq!(metadata(&no_answer, "sip_code"), json!(487));
    // It rang for the ring timeout (300 ms) before the CANCEL.
    let ring = millis(&no_answer, "ring_duration_ms");
    assert!(ring >= 250, "ring_duration_ms {ring}");
    assert_received(&run, "CANCEL", 1);
    assert_received(&run, "ACK", 2);
}

#[actix_rt::test]
async fn callee_bye_mid_prompt_is_a_hangup_before_the_code_was_heard() {
    let (sipp, mut gw, id) = call_through("remote_bye.xml", &[], |_| {}).await;

    let hangup = final_event(&mut gw, &sipp, id, Hangup, Status::Failed).await;
    let run = sipp_passed(sipp).await;

    // Answered straight away (no 180), so no ringing event.
    assert_history(
        &gw,
        id,
        &[
            (Calling, Status::Sending),
            (Answered, Status::Sent),
            (Playing, Status::Sent),
            (Hangup, Status::Failed),
        ],
    );
    assert_eq!(metadata(&hangup, "otp_played"), json!(false));
    millis(&hangup, "ring_duration_ms");
    // SIPp hung up a second after its ACK, before the last digit of the 2.5 s prompt.
    let talk = millis(&hangup, "talk_duration_ms");
    assert!(talk >= 900, "talk_duration_ms {talk}");
    // The dialog ended with SIPp's BYE: the gateway sent none.
    assert_received(&run, "BYE", 0);
}

#[actix_rt::test]
async fn lost_invite_and_lost_ack_are_recovered_by_retransmissions() {
    // -nr: SIPp leaves retransmissions to the scenario. T1 = 200 ms leaves SIPp ample time to
    // answer each copy it is meant to answer before the next one leaves.
    let (sipp, mut gw, id) = call_through("retransmissions.xml", &["-nr"], |c| {
        c.sip.t1 = Duration::from_millis(200);
    })
    .await;

    let completed = final_event(&mut gw, &sipp, id, Completed, Status::Delivered).await;
    let run = sipp_passed(sipp).await;

    // One answer and one playback, however many 200s arrived.
    assert_history(&gw, id, &PLAYED_IN_FULL);
    assert_eq!(metadata(&completed, "otp_played"), json!(true));
    // Two copies of the first INVITE (a third may have crossed the 401), then the one with
    // credentials.
    let invites = run.received_requests("INVITE");
    assert!(
        (3..=4).contains(&invites),
        "{invites} INVITEs: {:?}",
        run.received()
    );
    // The ACK of the 401, then one ACK per 200.
    assert_received(&run, "ACK", 3);
    assert_received(&run, "BYE", 1);
}

#[actix_rt::test]
async fn in_dialog_options_and_reinvite_are_answered_without_changing_media() {
    let (sipp, mut gw, id) = call_through("in_dialog_requests.xml", &[], |_| {}).await;

    let completed = final_event(&mut gw, &sipp, id, Completed, Status::Delivered).await;
    let run = sipp_passed(sipp).await;

    // Answered straight away (no 180); the dialog's OPTIONS and re-INVITE changed nothing.
    assert_history(
        &gw,
        id,
        &[
            (Calling, Status::Sending),
            (Answered, Status::Sent),
            (Playing, Status::Sent),
            (Completed, Status::Delivered),
        ],
    );
    assert_eq!(metadata(&completed, "otp_played"), json!(true));
    assert_received(&run, "BYE", 1);
    // The 200 to the re-INVITE was sent again while SIPp withheld the ACK for 500 ms (T1 = 50 ms:
    // copies due at +50, +150 and +350 ms), and at most once more after the ACK (one may cross
    // it; unchecked, one would follow every 400 ms during the rest of the prompt).
    let trace = run.trace();
    let ack = trace
        .iter()
        .position(|m| !m.received && m.cseq == "2 ACK")
        .unwrap_or_else(|| panic!("SIPp sent no ACK for the re-INVITE: {trace:?}"));
    let oks = |messages: &[common::sipp::Traced]| {
        messages
            .iter()
            .filter(|m| {
                m.received && m.start_line.starts_with("SIP/2.0 200") && m.cseq == "2 INVITE"
            })
            .count()
    };
    let (before, after) = (oks(&trace[..ack]), oks(&trace[ack..]));
    assert!(
        before >= 2,
        "{before} 200s to the re-INVITE before the ACK: {trace:?}"
    );
    assert!(
        after <= 1,
        "{after} 200s to the re-INVITE after the ACK: {trace:?}"
    );
}
