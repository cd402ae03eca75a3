//! The voice channel end to end: `/dispatch` → the gateway's SIP user agent → the sandbox SIP trunk
//! over real UDP and RTP, for every outcome of SPEC §7 and both failover directions of §5. Tests wait
//! on events (the live feed, the trunk's records), never on sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use actors::rtp::g711::Codec;
use actors::rtp::prompt::{LEAD_IN, TAIL_SILENCE};
use actors::{EventType, RequestId, Status};
use common::{TestGateway, PATIENCE, PHONE};
use otp_gateway::config::{Config, PromptPart, VoiceSpeed, SANDBOX_CALLER_ID};
use otp_gateway::db::models::request;
use otp_gateway::sandbox::sip::{
    CallOutcome, ChallengeMode, CodecChoice, EndedBy, TrunkCall, VoiceBehaviour,
};
use otp_gateway::sandbox::sms::SmsBehaviour;
use otp_gateway::voice::prompts::PromptClips;

use EventType::{Answered, Busy, Calling, Completed, Hangup, NoAnswer, Playing, Ringing};

/// A gateway whose calls read just the code, quickly, with a short ring timeout.
async fn voice_gateway(tweak: impl FnOnce(&mut Config)) -> TestGateway {
    common::start(|c| {
        c.voice.prompt = vec![PromptPart::Code];
        c.voice.speed = VoiceSpeed::Fast;
        c.sip.ring_timeout = Duration::from_millis(300);
        tweak(c);
    })
    .await
}

async fn dispatch(gw: &TestGateway, code: &str, channels: &[&str]) -> RequestId {
    gw.dispatch_ok(json!({"phone": PHONE, "code": code, "channels": channels}))
        .await
}

fn types(gw: &TestGateway, id: RequestId) -> Vec<EventType> {
    gw.events.history(id).into_iter().map(|(t, _)| t).collect()
}

/// The trunk's record of the (only) call to `PHONE`, once it has ended.
async fn ended_call(gw: &TestGateway) -> TrunkCall {
    gw.trunk()
        .wait_for_call_where("an ended call", PATIENCE, |c| c.ended_at.is_some())
        .await
        .unwrap()
}

fn metadata(event: &actors::store::RecordedEvent, key: &str) -> Value {
    event.metadata.get(key).cloned().unwrap_or(Value::Null)
}

/// What the trunk must hear for `code` with the built-in English clips, the fast digit gap and
/// the `{code}` template: lead-in silence, the digits with gaps, tail silence, through G.711.
fn expected_audio(code: &str, codec: Codec) -> Vec<i16> {
    let clips = PromptClips::builtin("en").unwrap();
    let at_8k = |d: Duration| (d.as_millis() as usize) * 8;
    let mut pcm = vec![0i16; at_8k(LEAD_IN)];
    for (i, digit) in code.bytes().enumerate() {
        if i > 0 {
            pcm.extend(std::iter::repeat_n(0, at_8k(Duration::from_millis(150))));
        }
        pcm.extend_from_slice(clips.digit(digit - b'0').unwrap());
    }
    pcm.extend(std::iter::repeat_n(0, at_8k(TAIL_SILENCE)));
    pcm.resize(pcm.len().div_ceil(160) * 160, 0);
    pcm.iter().map(|s| codec.decode(codec.encode(*s))).collect()
}

#[actix_rt::test]
async fn a_voice_otp_is_answered_and_the_trunk_hears_the_code() {
    let mut gw = voice_gateway(|_| {}).await;
    let id = dispatch(&gw, "4071", &["voice"]).await;
    let completed = gw.events.wait_for(id, Completed).await;
    assert_eq!(completed.status, Status::Delivered);
    assert_eq!(
        types(&gw, id),
        [Calling, Ringing, Answered, Playing, Completed]
    );
    assert_eq!(metadata(&completed, "otp_played"), json!(true));
    assert!(metadata(&completed, "ring_duration_ms").is_u64());
    assert!(metadata(&completed, "talk_duration_ms").as_u64().unwrap() >= 1000);

    let call = ended_call(&gw).await;
    assert_eq!(call.ended_by, Some(EndedBy::Gateway), "{}", call.ladder());
    assert_eq!(call.destination, "14155552671");
    assert_eq!(call.from_user, SANDBOX_CALLER_ID);
    assert!(call
        .p_asserted_identity
        .as_deref()
        .is_some_and(|p| p.contains(SANDBOX_CALLER_ID)));
    assert!(
        call.authorized,
        "digest must be answered: {}",
        call.ladder()
    );

    // The RTP stream: consecutive sequence numbers and timestamps, marker on the first packet,
    // and a payload that decodes to exactly the digit clips of the code.
    let codec = call.codec.expect("negotiated codec");
    let packets = &call.rtp;
    assert!(packets[0].marker);
    for pair in packets.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
        assert_eq!(pair[1].timestamp, pair[0].timestamp.wrapping_add(160));
        assert_eq!(pair[1].ssrc, pair[0].ssrc);
        assert!(!pair[1].marker);
    }
    let heard: Vec<i16> = packets
        .iter()
        .flat_map(|p| p.payload.iter().map(|b| codec.decode(*b)))
        .collect();
    let expected = expected_audio("4071", codec);
    assert_eq!(heard.len(), expected.len(), "prompt length in samples");
    assert!(heard == expected, "the audio is not the code's clips");
    let wrong = expected_audio("4072", codec);
    assert!(heard != wrong, "the check must tell codes apart");

    // The Call-ID is stored on the request for CDR matching.
    let row = gw
        .gateway
        .store
        .read(move |c| request::find_by_id(c, &id.to_string()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.sip_call_id.as_deref(), Some(call.call_id.as_str()));
}

#[actix_rt::test]
async fn busy_fails_the_request_when_voice_is_the_only_channel() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.trunk().set_default_behaviour(VoiceBehaviour::busy());
    let id = dispatch(&gw, "1234", &["voice"]).await;
    let busy = gw.events.wait_for(id, Busy).await;
    assert_eq!(busy.status, Status::Failed);
    assert_eq!(metadata(&busy, "sip_code"), json!(486));
    assert_eq!(types(&gw, id), [Calling, Busy]);
}

#[actix_rt::test]
async fn busy_fails_over_to_sms() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.trunk().set_default_behaviour(VoiceBehaviour::busy());
    let id = dispatch(&gw, "1234", &["voice", "sms"]).await;
    let delivered = gw.events.wait_for(id, EventType::Delivered).await;
    assert_eq!(delivered.status, Status::Delivered);
    let history = gw.events.history(id);
    assert_eq!(history[1], (Busy, Status::Sending), "{history:?}");
    assert_eq!(gw.sms().received().len(), 1);
}

#[actix_rt::test]
async fn ring_timeout_cancels_and_reports_no_answer() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.trunk()
        .set_default_behaviour(VoiceBehaviour::no_answer());
    let id = dispatch(&gw, "1234", &["voice"]).await;
    let no_answer = gw.events.wait_for(id, NoAnswer).await;
    assert_eq!(no_answer.status, Status::Failed);
    assert_eq!(metadata(&no_answer, "sip_code"), json!(487));
    assert!(metadata(&no_answer, "ring_duration_ms").as_u64().unwrap() >= 300);
    assert_eq!(types(&gw, id), [Calling, Ringing, NoAnswer]);
    let call = ended_call(&gw).await;
    assert_eq!(call.ended_by, Some(EndedBy::Cancel), "{}", call.ladder());
}

#[actix_rt::test]
async fn a_rejected_call_reports_the_sip_code() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.trunk()
        .set_default_behaviour(VoiceBehaviour::reject(503));
    let id = dispatch(&gw, "1234", &["voice"]).await;
    let failed = gw.events.wait_for(id, EventType::Failed).await;
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(metadata(&failed, "sip_code"), json!(503));
    assert_eq!(metadata(&failed, "error"), json!("sip_error"));
    assert_eq!(metadata(&failed, "reason"), json!("Service Unavailable"));
}

#[actix_rt::test]
async fn unavailable_480_is_no_answer() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.trunk()
        .set_default_behaviour(VoiceBehaviour::reject(480));
    let id = dispatch(&gw, "1234", &["voice"]).await;
    let event = gw.events.wait_for(id, NoAnswer).await;
    assert_eq!(metadata(&event, "sip_code"), json!(480));
}

#[actix_rt::test]
async fn a_hangup_before_the_code_fails_over_to_sms() {
    let mut gw = voice_gateway(|c| {
        c.voice.prompt = vec![PromptPart::Intro, PromptPart::Code];
    })
    .await;
    gw.trunk()
        .set_default_behaviour(VoiceBehaviour::answer().hangup_after(Duration::from_millis(100)));
    let id = dispatch(&gw, "1234", &["voice", "sms"]).await;
    let hangup = gw.events.wait_for(id, Hangup).await;
    assert_eq!(metadata(&hangup, "otp_played"), json!(false));
    assert_eq!(
        hangup.status,
        Status::Sent,
        "not delivered, not failed: SMS follows"
    );
    gw.events.wait_for(id, EventType::Delivered).await;
    assert_eq!(gw.sms().received().len(), 1);
    assert_eq!(ended_call(&gw).await.ended_by, Some(EndedBy::Trunk));
}

#[actix_rt::test]
async fn a_hangup_after_the_code_is_a_delivery() {
    let mut gw = voice_gateway(|c| {
        c.voice.prompt = vec![PromptPart::Code, PromptPart::Goodbye];
    })
    .await;
    // The code ends at lead-in + 4 digits + 3 gaps; hang up during "goodbye".
    let clips = PromptClips::builtin("en").unwrap();
    let code_samples: usize = "1234"
        .bytes()
        .map(|d| clips.digit(d - b'0').unwrap().len())
        .sum::<usize>()
        + 3 * 150 * 8;
    let code_end = LEAD_IN + Duration::from_millis(code_samples as u64 / 8);
    gw.trunk().set_default_behaviour(
        VoiceBehaviour::answer().hangup_after(code_end + Duration::from_millis(300)),
    );
    let id = dispatch(&gw, "1234", &["voice", "sms"]).await;
    let hangup = gw.events.wait_for(id, Hangup).await;
    assert_eq!(metadata(&hangup, "otp_played"), json!(true));
    assert_eq!(hangup.status, Status::Delivered);
    assert_eq!(
        types(&gw, id),
        [Calling, Ringing, Answered, Playing, Hangup]
    );
    assert!(
        gw.sms().received().is_empty(),
        "no SMS after a delivered call"
    );
}

#[actix_rt::test]
async fn an_sms_failure_fails_over_to_voice() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.sms()
        .set_default_behaviour(SmsBehaviour::Failed { code_id: 2 });
    let id = dispatch(&gw, "1234", &["sms", "voice"]).await;
    let completed = gw.events.wait_for(id, Completed).await;
    assert_eq!(completed.status, Status::Delivered);
    let history = types(&gw, id);
    let calling = history.iter().position(|t| *t == Calling).unwrap();
    assert!(
        history[..calling].contains(&EventType::Failed),
        "{history:?}"
    );
}

#[actix_rt::test]
async fn an_unconfirmed_sms_fails_over_to_voice() {
    let mut gw = voice_gateway(|c| c.sms.delivery_timeout = Duration::from_millis(200)).await;
    gw.sms().set_default_behaviour(SmsBehaviour::NoDlr);
    let id = dispatch(&gw, "1234", &["sms", "voice"]).await;
    gw.events.wait_for(id, Completed).await;
    assert_eq!(
        types(&gw, id),
        [
            EventType::Sending,
            EventType::Sent,
            Calling,
            Ringing,
            Answered,
            Playing,
            Completed
        ]
    );
}

#[actix_rt::test]
async fn an_exhausted_port_range_fails_the_call_at_once() {
    // One even port: the first call holds it while it plays a long prompt.
    // One even port, free a moment ago (not a fixed number: another test process may hold it).
    let port = loop {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        if port % 2 == 0 {
            break port;
        }
    };
    let mut gw = voice_gateway(|c| {
        c.sip.rtp_port_start = port;
        c.sip.rtp_port_end = port + 1;
        c.voice.prompt = vec![PromptPart::Intro, PromptPart::Code, PromptPart::Goodbye];
    })
    .await;
    let first = dispatch(&gw, "1234", &["voice"]).await;
    gw.events.wait_for(first, Answered).await;
    let second = dispatch(&gw, "5678", &["voice", "sms"]).await;
    let failed = gw.events.wait_for(second, EventType::Failed).await;
    assert_eq!(metadata(&failed, "error"), json!("capacity_exhausted"));
    // Nothing was sent yet, so nothing is failed either: SMS follows.
    assert_eq!(failed.status, Status::Pending);
    gw.events.wait_for(second, EventType::Delivered).await;
    assert_eq!(
        types(&gw, second)[0],
        EventType::Failed,
        "no INVITE was sent"
    );
    gw.events.wait_for(first, Completed).await;
}

#[actix_rt::test]
async fn proxy_challenges_and_stale_nonces_are_answered() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.trunk().set_default_behaviour(
        VoiceBehaviour::answer()
            .challenge(ChallengeMode::Proxy)
            .stale_once(),
    );
    let id = dispatch(&gw, "1234", &["voice"]).await;
    gw.events.wait_for(id, Completed).await;
    let call = ended_call(&gw).await;
    assert!(call.authorized, "{}", call.ladder());
    // Unauthenticated, stale, accepted: three INVITEs, no wrong credentials.
    assert_eq!(call.invites_received, 3, "{}", call.ladder());
    assert_eq!(call.auth_failures, 0, "{}", call.ladder());
}

#[actix_rt::test]
async fn lost_sip_datagrams_are_retransmitted() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.trunk()
        .set_default_behaviour(VoiceBehaviour::answer().packet_loss(0.25));
    let id = dispatch(&gw, "1234", &["voice"]).await;
    gw.events.wait_for(id, Completed).await;
    let call = ended_call(&gw).await;
    assert_eq!(call.ended_by, Some(EndedBy::Gateway), "{}", call.ladder());
}

#[actix_rt::test]
async fn rtp_follows_the_peers_actual_source_port() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.trunk()
        .set_default_behaviour(VoiceBehaviour::answer().rtp_from_other_port());
    let id = dispatch(&gw, "1234", &["voice"]).await;
    gw.events.wait_for(id, Completed).await;
    let call = ended_call(&gw).await;
    let [advertised, actual] = call.rtp_ports[..] else {
        panic!("two trunk RTP ports expected: {:?}", call.rtp_ports);
    };
    let last = call.rtp.last().unwrap();
    assert_eq!(
        last.local_port, actual,
        "audio must move to where the peer sends from"
    );
    assert!(
        call.rtp.iter().any(|p| p.local_port == advertised) || call.rtp[0].local_port == actual
    );
}

#[actix_rt::test]
async fn the_max_duration_stops_a_call() {
    let mut gw = voice_gateway(|c| {
        c.sip.max_call_duration = Duration::from_millis(600);
        c.voice.prompt = vec![PromptPart::Intro, PromptPart::Code];
    })
    .await;
    let id = dispatch(&gw, "1234", &["voice"]).await;
    let failed = gw.events.wait_for(id, EventType::Failed).await;
    assert_eq!(metadata(&failed, "error"), json!("max_duration"));
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(ended_call(&gw).await.ended_by, Some(EndedBy::Gateway));
}

#[actix_rt::test]
async fn shutdown_hangs_up_answered_and_ringing_calls() {
    let mut gw = voice_gateway(|c| {
        c.sip.ring_timeout = Duration::from_secs(30);
        c.voice.prompt = vec![PromptPart::Intro, PromptPart::Code, PromptPart::Goodbye];
    })
    .await;
    gw.trunk()
        .set_behaviour("+14155552672", VoiceBehaviour::no_answer());
    let talking = dispatch(&gw, "1234", &["voice"]).await;
    let ringing = gw
        .dispatch_ok(json!({"phone": "+14155552672", "code": "1234", "channels": ["voice"]}))
        .await;
    gw.events.wait_for(talking, Answered).await;
    gw.events.wait_for(ringing, Ringing).await;
    gw.gateway.shutdown().await;
    let calls = gw.trunk().wait_for_ended(2, PATIENCE).await.unwrap();
    for call in &calls {
        let expected = if call.destination == "14155552672" {
            EndedBy::Cancel
        } else {
            EndedBy::Gateway
        };
        assert_eq!(call.ended_by, Some(expected), "{}", call.ladder());
    }
    assert_eq!(gw.gateway.voice.live.len(), 0);
}

#[actix_rt::test]
async fn health_reports_the_trunk_reachable() {
    let gw = voice_gateway(|_| {}).await;
    gw.trunk().wait_for_options(1, PATIENCE).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let response = gw
            .client
            .get(format!("{}/health", gw.url))
            .send()
            .await
            .unwrap();
        let (status, body) = common::read_json(response).await;
        // The OPTIONS was answered a moment ago; its 200 may still be in flight to the gateway.
        if body["sip"] == "reachable" {
            assert_eq!(status, 200);
            break;
        }
        assert_eq!(body["sip"], "checking", "{body}");
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::task::yield_now().await;
    }
}

#[actix_rt::test]
async fn a_different_outcome_per_number() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.trunk().set_behaviour(
        "+14155552672",
        VoiceBehaviour::with_outcome(CallOutcome::Busy),
    );
    let ok = dispatch(&gw, "1234", &["voice"]).await;
    let busy = gw
        .dispatch_ok(json!({"phone": "+14155552672", "code": "1234", "channels": ["voice"]}))
        .await;
    gw.events.wait_for(ok, Completed).await;
    gw.events.wait_for(busy, Busy).await;
}

/// Sends `text` to the gateway's SIP port and returns the status line of its answer.
async fn ask_sip(gw: &TestGateway, text: &str) -> String {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(text.as_bytes(), gw.gateway.sip_addr)
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = tokio::time::timeout(PATIENCE, socket.recv_from(&mut buf))
        .await
        .expect("the gateway answers")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..len]).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

fn request(method: &str, to_tag: bool) -> String {
    let tag = if to_tag { ";tag=ours" } else { "" };
    format!(
        "{method} sip:15550100000@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{method}{to_tag}\r\n\
         From: <sip:probe@127.0.0.1>;tag=theirs\r\n\
         To: <sip:15550100000@127.0.0.1>{tag}\r\n\
         Call-ID: unknown-{method}@probe\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[actix_rt::test]
async fn requests_outside_any_call_get_the_right_answers() {
    let mut gw = voice_gateway(|_| {}).await;
    // A scanner's garbage is dropped without an answer and breaks nothing.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(b"\x16\x03\x01 not SIP at all", gw.gateway.sip_addr)
        .await
        .unwrap();
    assert_eq!(
        ask_sip(&gw, &request("OPTIONS", false)).await,
        "SIP/2.0 200 OK"
    );
    assert_eq!(
        ask_sip(&gw, &request("BYE", true)).await,
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
    assert_eq!(
        ask_sip(&gw, &request("OPTIONS", true)).await,
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
    assert_eq!(
        ask_sip(&gw, &request("INVITE", false)).await,
        "SIP/2.0 603 Decline"
    );
    assert_eq!(
        ask_sip(&gw, &request("MESSAGE", false)).await,
        "SIP/2.0 405 Method Not Allowed"
    );
    // Calls still work afterwards.
    let id = dispatch(&gw, "1234", &["voice"]).await;
    gw.events.wait_for(id, Completed).await;
}

#[actix_rt::test]
async fn sandbox_voice_behaviours_can_be_set_over_the_api() {
    let mut gw = voice_gateway(|_| {}).await;
    let (status, body) = gw
        .post(
            "/sandbox/voice/behaviours",
            json!({"destination": "+14155552672", "behaviour": {"kind": "reject", "code": 404}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["destinations"]["14155552672"]["kind"], "reject");
    let (status, body) = gw
        .post(
            "/sandbox/voice/behaviours",
            json!({"destination": "+1415", "behaviour": {"kind": "bogus"}}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );

    let id = gw
        .dispatch_ok(json!({"phone": "+14155552672", "code": "1234", "channels": ["voice"]}))
        .await;
    let failed = gw.events.wait_for(id, EventType::Failed).await;
    assert_eq!(metadata(&failed, "sip_code"), json!(404));

    let response = gw
        .client
        .get(format!("{}/sandbox/voice/calls", gw.url))
        .insert_header(("X-API-Secret", common::SECRET))
        .send()
        .await
        .unwrap();
    let (status, body) = common::read_json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["calls"][0]["destination"], "14155552672");
    assert_eq!(body["calls"][0]["final_status"], 404);

    let response = gw
        .client
        .get(format!("{}/sandbox/voice/calls", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403, "the secret is required");
}

/// The decoded payload of every packet the trunk received, in order.
fn heard(call: &TrunkCall) -> Vec<i16> {
    let codec = call.codec.expect("negotiated codec");
    call.rtp
        .iter()
        .flat_map(|p| p.payload.iter().map(move |b| codec.decode(*b)))
        .collect()
}

#[actix_rt::test]
async fn an_a_law_answer_is_honoured() {
    let mut gw = voice_gateway(|_| {}).await;
    gw.trunk()
        .set_default_behaviour(VoiceBehaviour::answer().codec(CodecChoice::Pcma));
    let id = dispatch(&gw, "9035", &["voice"]).await;
    gw.events.wait_for(id, Completed).await;
    let call = ended_call(&gw).await;
    assert_eq!(call.codec, Some(Codec::Pcma));
    assert!(call.rtp.iter().all(|p| p.payload_type == 8), "PCMA packets");
    assert!(heard(&call) == expected_audio("9035", Codec::Pcma));
}

#[actix_rt::test]
async fn a_late_answer_is_measured_as_ringing() {
    let mut gw = voice_gateway(|c| c.sip.ring_timeout = Duration::from_secs(5)).await;
    gw.trunk()
        .set_default_behaviour(VoiceBehaviour::answer().ring_for(Duration::from_millis(400)));
    let id = dispatch(&gw, "1234", &["voice"]).await;
    let answered = gw.events.wait_for(id, Answered).await;
    assert!(metadata(&answered, "ring_duration_ms").as_u64().unwrap() >= 400);
    gw.events.wait_for(id, Completed).await;
}

#[actix_rt::test]
async fn us_and_canada_numbers_get_their_own_caller_id() {
    let mut gw = voice_gateway(|c| c.sip.caller_id_us_canada = Some("12025550147".into())).await;
    let us = dispatch(&gw, "1234", &["voice"]).await;
    let uk = gw
        .dispatch_ok(json!({"phone": "+442071838750", "code": "1234", "channels": ["voice"]}))
        .await;
    gw.events.wait_for(us, Completed).await;
    gw.events.wait_for(uk, Completed).await;
    let calls = gw.trunk().calls();
    let from = |dest: &str| {
        calls
            .iter()
            .find(|c| c.destination == dest)
            .map(|c| c.from_user.clone())
    };
    assert_eq!(from("14155552671").as_deref(), Some("12025550147"));
    assert_eq!(from("442071838750").as_deref(), Some(SANDBOX_CALLER_ID));
}
