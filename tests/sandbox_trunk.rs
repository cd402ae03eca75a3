//! Integration tests of the simulated DIDWW SIP trunk (`otp_gateway::sandbox::sip`): real UDP on
//! loopback, with a small hand-written UAC built from the gateway's own sans-IO SIP pieces
//! (`actors::sip::message`, `actors::sip::digest`, `actors::sip::sdp`) standing in for the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use actors::sip::digest::{Challenge, ChallengeKind, ChallengeVerdict, Credentials, DigestSession};
use actors::sip::message::{
    ack_2xx, ack_non_2xx, bye, cancel, invite, new_branch, new_call_id, new_tag, options,
    parse_datagram, CallParams, Dialog, Endpoint, HostPort, Incoming, Method, Request, Response,
};
use actors::sip::sdp::{parse_answer, SdpSession};
use otp_gateway::sandbox::sip::{
    ChallengeMode, CodecChoice, EndedBy, SandboxTrunk, SandboxTrunkOptions, TrunkCall,
    VoiceBehaviour, DEFAULT_REALM,
};
use tokio::net::UdpSocket;

const USER: &str = "k3x9q2m7zp";
const PASS: &str = "s3cr3t-Pa55";
const DEST: &str = "15555550123";
const CALLER: &str = "15555550100";
/// Upper bound of every wait; nothing here sleeps for synchronisation.
const WAIT: Duration = Duration::from_secs(5);
/// Bounded wait used only to show that something does NOT arrive.
const QUIET: Duration = Duration::from_millis(300);
/// T1 of most tests: long enough that no retransmission overtakes the UAC's prompt answers.
const T1: Duration = Duration::from_millis(200);

fn start(t1: Duration, default: VoiceBehaviour) -> SandboxTrunk {
    SandboxTrunk::start(SandboxTrunkOptions {
        username: USER.into(),
        password: PASS.into(),
        default_behaviour: default,
        t1,
        ..SandboxTrunkOptions::default()
    })
    .unwrap()
}

/// The gateway's side of one call, reduced to what the tests need.
struct Uac {
    sip: UdpSocket,
    rtp: UdpSocket,
    trunk: SocketAddr,
    params: CallParams,
    digest: DigestSession,
    cseq: u32,
    branch: String,
    offer: String,
}

impl Uac {
    async fn new(trunk: &SandboxTrunk, password: &str) -> Uac {
        let sip = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::new(
            HostPort::parse(&trunk.addr().to_string()).unwrap(),
            "127.0.0.1".parse().unwrap(),
            sip.local_addr().unwrap().port(),
        );
        let params = CallParams::new(endpoint, DEST, CALLER).unwrap();
        let offer = SdpSession::new(
            "127.0.0.1".parse().unwrap(),
            rtp.local_addr().unwrap().port(),
        )
        .offer();
        Uac {
            sip,
            rtp,
            trunk: trunk.addr(),
            params,
            digest: DigestSession::new(Credentials {
                username: USER.into(),
                password: password.into(),
            }),
            cseq: 0,
            branch: String::new(),
            offer,
        }
    }

    async fn send(&self, bytes: &[u8]) {
        self.sip.send_to(bytes, self.trunk).await.unwrap();
    }

    /// The next datagram from the trunk, parsed.
    async fn next(&self) -> Incoming {
        let mut buf = vec![0u8; 65_535];
        let (len, from) = tokio::time::timeout(WAIT, self.sip.recv_from(&mut buf))
            .await
            .expect("nothing from the trunk")
            .unwrap();
        assert_eq!(from, self.trunk);
        parse_datagram(&buf[..len]).unwrap()
    }

    async fn response(&self) -> Response {
        match self.next().await {
            Incoming::Response(r) => r,
            Incoming::Request(r) => panic!("expected a response, got {} {}", r.method, r.uri),
        }
    }

    async fn request(&self) -> Request {
        match self.next().await {
            Incoming::Request(r) => r,
            Incoming::Response(r) => panic!("expected a request, got {} {}", r.status, r.reason),
        }
    }

    /// Asserts that the trunk sends nothing for a while.
    async fn silent(&self) {
        let mut buf = vec![0u8; 65_535];
        if let Ok(got) = tokio::time::timeout(QUIET, self.sip.recv_from(&mut buf)).await {
            let (len, _) = got.unwrap();
            panic!("unexpected: {}", String::from_utf8_lossy(&buf[..len]));
        }
    }

    /// Sends a new INVITE (new branch, next CSeq) with the credentials of the last challenge.
    async fn invite(&mut self) {
        self.cseq += 1;
        self.branch = new_branch();
        let auth = self.digest.authorize("INVITE", &self.params.request_uri());
        let bytes = invite(&self.params, self.cseq, &self.branch, &self.offer, &auth);
        self.send(&bytes).await;
    }

    /// Expects 100 then a challenge of `kind`; ACKs it and stores it (answering even a second
    /// challenge, unlike the gateway, to reach the trunk's 403).
    async fn expect_challenge(&mut self, kind: ChallengeKind) -> Response {
        assert_eq!(self.response().await.status, 100);
        let r = self.response().await;
        assert_eq!(ChallengeKind::from_status(r.status), Some(kind), "{r:?}");
        self.ack_final(&r).await;
        let (kind, values) = r.challenges().unwrap();
        let verdict = self.digest.on_challenge(kind, values, 0).unwrap();
        assert_eq!(verdict, ChallengeVerdict::Retry);
        r
    }

    async fn ack_final(&self, r: &Response) {
        self.send(&ack_non_2xx(&self.params, self.cseq, &self.branch, r))
            .await;
    }

    /// 100, 180, 200 after an admitted INVITE; ACKs the 200 and returns the dialog.
    async fn expect_answer(&mut self) -> (Dialog, Response) {
        assert_eq!(self.response().await.status, 100);
        let ringing = self.response().await;
        assert_eq!((ringing.status, ringing.reason.as_str()), (180, "Ringing"));
        let ok = self.response().await;
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(
            ok.to_tag, ringing.to_tag,
            "180 and 200 share the dialog's tag"
        );
        let dialog = Dialog::from_2xx(&self.params, self.cseq, &ok).unwrap();
        self.ack(&dialog).await;
        (dialog, ok)
    }

    async fn ack(&self, dialog: &Dialog) {
        self.send(&ack_2xx(&self.params, dialog, &new_branch(), &[]))
            .await;
    }

    /// The whole DIDWW flow up to an ACKed 200.
    async fn connect(&mut self) -> (Dialog, Response) {
        self.invite().await;
        self.expect_challenge(ChallengeKind::Www).await;
        self.invite().await;
        self.expect_answer().await
    }

    async fn hang_up(&self, dialog: &mut Dialog) -> Response {
        let cseq = dialog.next_cseq();
        self.send(&bye(&self.params, dialog, cseq, &new_branch(), &[]))
            .await;
        self.response().await
    }

    /// A 20 ms PCMU packet with this sequence number.
    async fn send_rtp(&self, to: SocketAddr, seq: u16) {
        let mut packet = vec![0x80, 0x00];
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        packet.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        packet.extend(std::iter::repeat_n(0xFFu8, 160));
        self.rtp.send_to(&packet, to).await.unwrap();
    }
}

async fn ended(trunk: &SandboxTrunk) -> TrunkCall {
    let calls = trunk.wait_for_ended(1, WAIT).await.unwrap();
    assert_eq!(calls.len(), 1);
    calls.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------------------------

/// The DIDWW flow of reference §4.4 end to end, awaited from an actix runtime as the gateway's
/// tests do.
#[actix_rt::test]
async fn challenge_answer_rtp_and_gateway_bye() {
    let trunk = start(T1, VoiceBehaviour::answer());
    let mut uac = Uac::new(&trunk, PASS).await;

    uac.invite().await;
    let challenge = uac.expect_challenge(ChallengeKind::Www).await;
    assert_eq!(challenge.reason, "Unauthorized");
    assert!(challenge.to_tag.is_some());
    let rr = format!("<sip:{};r2=on;lr>", trunk.addr());
    assert_eq!(challenge.record_route, vec![rr.clone(), rr.clone()]);
    let c = Challenge::parse(&challenge.www_authenticate[0]).unwrap();
    assert_eq!(
        (c.realm.as_str(), c.qop.clone()),
        (DEFAULT_REALM, vec!["auth".to_owned()])
    );
    assert!(c.algorithm_given && !c.stale);

    uac.invite().await;
    let (mut dialog, ok) = uac.expect_answer().await;
    assert_eq!(ok.record_route, vec![rr.clone(), rr]);
    assert_eq!(ok.contact, Some(format!("sip:trunk@{}", trunk.addr())));
    let media = parse_answer(ok.body_text().unwrap()).unwrap();
    assert_eq!(media.codec, actors::rtp::g711::Codec::Pcmu);
    assert_eq!(media.telephone_event, Some(101));

    // The trunk plays silence to our SDP address...
    let mut buf = [0u8; 512];
    let (len, _) = tokio::time::timeout(WAIT, uac.rtp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((len, buf[1] & 0x7f, buf[12]), (172, 0, 0xFF));
    // ... and records what we send to its SDP address.
    for seq in 1..=3 {
        uac.send_rtp(media.rtp_destination(), seq).await;
    }
    let call = trunk
        .wait_for_rtp(&uac.params.call_id, 3, WAIT)
        .await
        .unwrap();
    let seqs: Vec<u16> = call.rtp.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(call.rtp.iter().all(|p| p.local_port == media.port
        && p.payload.len() == 160
        && p.ssrc == 0x1234_5678
        && p.source == uac.rtp.local_addr().unwrap()));
    assert_eq!(trunk.live_calls(), 1);

    let r = uac.hang_up(&mut dialog).await;
    assert_eq!((r.status, r.cseq_method), (200, Method::Bye));
    let call = ended(&trunk).await;
    assert_eq!(call.ended_by, Some(EndedBy::Gateway), "{}", call.ladder());
    assert!(call.authorized);
    assert_eq!((call.invites_received, call.auth_failures), (2, 0));
    assert_eq!(call.final_status, Some(200));
    assert_eq!(call.destination, DEST);
    assert_eq!(call.from_user, CALLER);
    assert_eq!(call.request_uri, uac.params.request_uri());
    assert!(call
        .p_asserted_identity
        .as_deref()
        .unwrap()
        .contains(CALLER));
    assert_eq!(call.sdp_offer.as_deref(), Some(uac.offer.as_str()));
    assert_eq!(call.codec, Some(actors::rtp::g711::Codec::Pcmu));
    assert!(call.answered_at.is_some() && call.acked_at.is_some());
    assert!(call.rtp_sent >= 1);
    assert!(
        call.ladder().contains("-> BYE sip:trunk@"),
        "{}",
        call.ladder()
    );
    assert_eq!(trunk.live_calls(), 0);
}

#[tokio::test]
async fn wrong_password_gets_fresh_challenges_then_403() {
    let trunk = start(T1, VoiceBehaviour::answer());
    let mut uac = Uac::new(&trunk, "wrong").await;
    uac.invite().await;
    let first = uac.expect_challenge(ChallengeKind::Www).await;
    let mut nonces = BTreeSet::from([Challenge::parse(&first.www_authenticate[0]).unwrap().nonce]);
    for _ in 0..2 {
        uac.invite().await;
        let again = uac.expect_challenge(ChallengeKind::Www).await;
        nonces.insert(Challenge::parse(&again.www_authenticate[0]).unwrap().nonce);
    }
    assert_eq!(nonces.len(), 3, "every challenge has a new nonce");
    uac.invite().await;
    assert_eq!(uac.response().await.status, 100);
    let forbidden = uac.response().await;
    assert_eq!(
        (forbidden.status, forbidden.reason.as_str()),
        (403, "Forbidden")
    );
    uac.ack_final(&forbidden).await;

    let call = ended(&trunk).await;
    assert_eq!(call.ended_by, Some(EndedBy::Rejected));
    assert_eq!((call.auth_failures, call.final_status), (3, Some(403)));
    assert!(!call.authorized);
    assert!(call.last_auth_error.unwrap().contains("wrong response"));
    assert_eq!(call.answered_at, None);
}

#[tokio::test]
async fn proxy_challenge_and_forced_pcma() {
    let trunk = start(
        T1,
        VoiceBehaviour::answer()
            .challenge(ChallengeMode::Proxy)
            .codec(CodecChoice::Pcma),
    );
    let mut uac = Uac::new(&trunk, PASS).await;
    uac.invite().await;
    let r = uac.expect_challenge(ChallengeKind::Proxy).await;
    assert_eq!(r.reason, "Proxy Authentication Required");
    assert!(r.www_authenticate.is_empty() && r.proxy_authenticate.len() == 1);
    uac.invite().await;
    let (mut dialog, ok) = uac.expect_answer().await;
    let media = parse_answer(ok.body_text().unwrap()).unwrap();
    assert_eq!(
        (media.codec, media.payload_type),
        (actors::rtp::g711::Codec::Pcma, 8)
    );
    assert_eq!(uac.hang_up(&mut dialog).await.status, 200);
    let call = ended(&trunk).await;
    assert_eq!(call.codec, Some(actors::rtp::g711::Codec::Pcma));
    assert!(call.authorized);
}

#[tokio::test]
async fn stale_once_rechallenges_right_credentials_once() {
    let trunk = start(T1, VoiceBehaviour::answer().stale_once());
    let mut uac = Uac::new(&trunk, PASS).await;
    uac.invite().await;
    uac.expect_challenge(ChallengeKind::Www).await;
    uac.invite().await;
    assert_eq!(uac.response().await.status, 100);
    let stale = uac.response().await;
    assert_eq!(stale.status, 401);
    uac.ack_final(&stale).await;
    assert!(Challenge::parse(&stale.www_authenticate[0]).unwrap().stale);
    // The gateway's DigestSession retries a stale challenge once more, and that one is admitted.
    let (kind, values) = stale.challenges().unwrap();
    assert_eq!(
        uac.digest.on_challenge(kind, values, 1).unwrap(),
        ChallengeVerdict::Retry
    );
    uac.invite().await;
    let (mut dialog, _) = uac.expect_answer().await;
    uac.hang_up(&mut dialog).await;
    let call = ended(&trunk).await;
    assert_eq!((call.auth_failures, call.invites_received), (0, 3));
    assert!(call.authorized);
}

#[tokio::test]
async fn busy_486_is_retransmitted_until_acked() {
    let trunk = start(Duration::from_millis(30), VoiceBehaviour::busy());
    let mut uac = Uac::new(&trunk, PASS).await;
    uac.invite().await;
    uac.expect_challenge(ChallengeKind::Www).await;
    uac.invite().await;
    assert_eq!(uac.response().await.status, 100);
    let busy = uac.response().await;
    assert_eq!((busy.status, busy.reason.as_str()), (486, "Busy Here"));
    // Not ACKed yet: Timer G retransmits it, same tag.
    let again = uac.response().await;
    assert_eq!(
        (again.status, again.to_tag.clone()),
        (486, busy.to_tag.clone())
    );
    uac.ack_final(&busy).await;
    let call = ended(&trunk).await;
    assert_eq!(
        (call.final_status, call.ended_by),
        (Some(486), Some(EndedBy::Rejected))
    );
    // Once the trunk has seen both ACKs (the 401's and the 486's), it retransmits nothing more.
    trunk
        .wait_for_call_where("two ACKs", WAIT, |c| {
            c.sip
                .iter()
                .filter(|e| e.first_line.starts_with("ACK "))
                .count()
                == 2
        })
        .await
        .unwrap();
    uac.silent().await;
}

#[tokio::test]
async fn reject_480_with_its_reason_phrase() {
    let trunk = start(T1, VoiceBehaviour::answer());
    trunk.set_behaviour("+15555550123", VoiceBehaviour::reject(480));
    let mut uac = Uac::new(&trunk, PASS).await;
    uac.invite().await;
    uac.expect_challenge(ChallengeKind::Www).await;
    uac.invite().await;
    assert_eq!(uac.response().await.status, 100);
    let r = uac.response().await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (480, "Temporarily Unavailable")
    );
    uac.ack_final(&r).await;
    let call = ended(&trunk).await;
    assert_eq!(
        (call.final_status, call.ended_by),
        (Some(480), Some(EndedBy::Rejected))
    );
    assert_eq!(call.behaviour, VoiceBehaviour::reject(480));
    // A rejected call has no dialog: a BYE with its tags gets 481.
    let mut no_dialog = Dialog {
        call_id: uac.params.call_id.clone(),
        local_tag: uac.params.from_tag.clone(),
        remote_tag: r.to_tag.clone(),
        remote_to: r.to.clone(),
        remote_target: uac.params.request_uri(),
        route_set: Vec::new(),
        invite_cseq: uac.cseq,
        local_cseq: uac.cseq,
    };
    assert_eq!(uac.hang_up(&mut no_dialog).await.status, 481);
}

#[tokio::test]
async fn no_answer_rings_until_cancel_then_487() {
    let trunk = start(T1, VoiceBehaviour::no_answer());
    let mut uac = Uac::new(&trunk, PASS).await;
    uac.invite().await;
    uac.expect_challenge(ChallengeKind::Www).await;
    uac.invite().await;
    assert_eq!(uac.response().await.status, 100);
    assert_eq!(uac.response().await.status, 180);
    uac.silent().await;
    assert_eq!(trunk.live_calls(), 1);

    uac.send(&cancel(&uac.params, uac.cseq, &uac.branch)).await;
    let r = uac.response().await;
    assert_eq!((r.status, r.cseq_method.clone()), (200, Method::Cancel));
    let terminated = uac.response().await;
    assert_eq!(
        (terminated.status, terminated.cseq_method.clone()),
        (487, Method::Invite)
    );
    uac.ack_final(&terminated).await;
    let call = ended(&trunk).await;
    assert_eq!(
        (call.ended_by, call.final_status),
        (Some(EndedBy::Cancel), Some(487))
    );

    // A CANCEL that matches nothing gets 481.
    uac.send(&cancel(&uac.params, 99, &new_branch())).await;
    assert_eq!(uac.response().await.status, 481);
}

#[tokio::test]
async fn trunk_hangs_up_with_a_retransmitted_bye() {
    let trunk = start(
        Duration::from_millis(30),
        VoiceBehaviour::answer().hangup_after(Duration::from_millis(50)),
    );
    let mut uac = Uac::new(&trunk, PASS).await;
    let (_, _) = uac.connect().await;
    let bye_req = uac.request().await;
    assert_eq!(bye_req.method, Method::Bye);
    assert_eq!(
        bye_req.uri,
        format!("sip:{CALLER}@{}", uac.sip.local_addr().unwrap())
    );
    assert_eq!(
        bye_req.to_tag.as_deref(),
        Some(uac.params.from_tag.as_str())
    );
    // Unanswered, it comes again in the same transaction.
    let again = uac.request().await;
    assert_eq!(
        (again.method.clone(), again.via_branch.clone()),
        (Method::Bye, bye_req.via_branch.clone())
    );
    uac.send(&actors::sip::message::ok(&bye_req, "uac").unwrap())
        .await;
    let call = trunk
        .wait_for_call_where("BYE answered", WAIT, |c| c.trunk_bye_status.is_some())
        .await
        .unwrap();
    assert_eq!(call.ended_by, Some(EndedBy::Trunk));
    assert_eq!(call.trunk_bye_status, Some(200));
}

#[tokio::test]
async fn unacked_200_is_retransmitted_then_given_up_with_bye() {
    let trunk = start(Duration::from_millis(10), VoiceBehaviour::answer());
    let mut uac = Uac::new(&trunk, PASS).await;
    uac.invite().await;
    uac.expect_challenge(ChallengeKind::Www).await;
    uac.invite().await;
    assert_eq!(uac.response().await.status, 100);
    assert_eq!(uac.response().await.status, 180);
    // Never ACKed: the 200 comes again and again, then the trunk gives up (64·T1) with a BYE.
    let mut oks = 0;
    let bye_req = loop {
        match uac.next().await {
            Incoming::Response(r) if r.status == 200 => oks += 1,
            // A 401 retransmitted before our ACK of it landed.
            Incoming::Response(r) if r.status == 401 => {}
            Incoming::Request(r) if r.method == Method::Bye => break r,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(oks >= 4, "only {oks} 200s");
    uac.send(&actors::sip::message::ok(&bye_req, "uac").unwrap())
        .await;
    let call = ended(&trunk).await;
    assert_eq!(call.ended_by, Some(EndedBy::Timeout), "{}", call.ladder());
    assert_eq!(call.acked_at, None);
}

#[tokio::test]
async fn retransmitted_invite_is_answered_again_not_twice() {
    let trunk = start(
        T1,
        VoiceBehaviour::answer().challenge(ChallengeMode::Disabled),
    );
    let mut uac = Uac::new(&trunk, PASS).await;
    uac.invite().await;
    assert_eq!(uac.response().await.status, 100);
    assert_eq!(uac.response().await.status, 180);
    let first = uac.response().await;
    assert_eq!(first.status, 200);
    // The same INVITE again (same branch): the last response, unchanged.
    let bytes = invite(&uac.params, uac.cseq, &uac.branch, &uac.offer, &[]);
    uac.send(&bytes).await;
    let second = uac.response().await;
    assert_eq!(second, first);
    let mut dialog = Dialog::from_2xx(&uac.params, uac.cseq, &first).unwrap();
    uac.ack(&dialog).await;
    uac.hang_up(&mut dialog).await;
    let call = ended(&trunk).await;
    assert_eq!(call.invites_received, 2);
    assert_eq!(trunk.calls().len(), 1);
    assert!(call.authorized, "no challenge: admitted at once");
}

#[tokio::test]
async fn in_dialog_options_and_unknown_dialogs() {
    let trunk = start(T1, VoiceBehaviour::answer());
    let mut uac = Uac::new(&trunk, PASS).await;
    let (mut dialog, _) = uac.connect().await;
    // In-dialog OPTIONS: a BYE rewritten, same dialog.
    let cseq = dialog.next_cseq();
    let bye_bytes = bye(&uac.params, &dialog, cseq, &new_branch(), &[]);
    let options_text = String::from_utf8(bye_bytes)
        .unwrap()
        .replace("BYE sip:", "OPTIONS sip:")
        .replace(" BYE\r\n", " OPTIONS\r\n");
    uac.send(options_text.as_bytes()).await;
    assert_eq!(uac.response().await.status, 200);

    // A BYE in an unknown dialog (another Call-ID) gets 481.
    let mut stray = dialog.clone();
    stray.call_id = new_call_id();
    uac.send(&bye(&uac.params, &stray, 7, &new_branch(), &[]))
        .await;
    let r = uac.response().await;
    assert_eq!((r.status, r.call_id.clone()), (481, stray.call_id.clone()));
    // Right Call-ID, wrong tag: 481 too, and the call stays up.
    let mut wrong_tag = dialog.clone();
    wrong_tag.remote_tag = Some("not-the-trunks".into());
    wrong_tag.remote_to = format!("<sip:{DEST}@127.0.0.1>;tag=not-the-trunks");
    uac.send(&bye(&uac.params, &wrong_tag, 9, &new_branch(), &[]))
        .await;
    assert_eq!(uac.response().await.status, 481);
    assert_eq!(trunk.live_calls(), 1);
    assert_eq!(uac.hang_up(&mut dialog).await.status, 200);
    ended(&trunk).await;
}

#[tokio::test]
async fn options_keepalive_is_answered_and_counted_once() {
    let trunk = start(T1, VoiceBehaviour::answer());
    let uac = Uac::new(&trunk, PASS).await;
    let branch = new_branch();
    let keepalive = options(
        &uac.params.endpoint,
        CALLER,
        &new_call_id(),
        &new_tag(),
        1,
        &branch,
    );
    uac.send(&keepalive).await;
    let r = uac.response().await;
    assert_eq!((r.status, r.cseq_method.clone()), (200, Method::Options));
    assert_eq!(trunk.wait_for_options(1, WAIT).await.unwrap(), 1);
    // A retransmission is answered again but not counted again.
    uac.send(&keepalive).await;
    assert_eq!(uac.response().await, r);
    assert_eq!(trunk.options_received(), 1);
    assert!(trunk.calls().is_empty());
}

#[tokio::test]
async fn garbage_is_dropped_and_the_trunk_keeps_answering() {
    let trunk = start(T1, VoiceBehaviour::answer());
    let uac = Uac::new(&trunk, PASS).await;
    for junk in [
        &b"\r\n\r\n"[..],
        b"hello",
        b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n",
        &[0xFF, 0xFE, 0x00, 0x80][..],
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n\
          To: <sip:c@d>\r\nCall-ID: nobody\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
    ] {
        uac.send(junk).await;
    }
    uac.silent().await;
    let keepalive = options(
        &uac.params.endpoint,
        CALLER,
        &new_call_id(),
        &new_tag(),
        1,
        &new_branch(),
    );
    uac.send(&keepalive).await;
    assert_eq!(uac.response().await.status, 200);
    assert!(trunk.calls().is_empty());
}

#[tokio::test]
async fn rtp_from_another_port_records_both_local_ports() {
    let trunk = start(T1, VoiceBehaviour::answer().rtp_from_other_port());
    let mut uac = Uac::new(&trunk, PASS).await;
    let (mut dialog, ok) = uac.connect().await;
    let advertised = parse_answer(ok.body_text().unwrap())
        .unwrap()
        .rtp_destination();
    // The trunk's RTP comes from a port other than the one in its SDP.
    let mut buf = [0u8; 512];
    let (_, source) = tokio::time::timeout(WAIT, uac.rtp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(source, advertised);
    // A symmetric-RTP peer answers to the source; a naive one to the SDP address.
    uac.send_rtp(advertised, 1).await;
    uac.send_rtp(source, 2).await;
    let call = trunk
        .wait_for_rtp(&uac.params.call_id, 2, WAIT)
        .await
        .unwrap();
    assert_eq!(call.rtp_ports, vec![advertised.port(), source.port()]);
    let by_seq: Vec<(u16, u16)> = call.rtp.iter().map(|p| (p.seq, p.local_port)).collect();
    assert!(by_seq.contains(&(1, advertised.port())), "{by_seq:?}");
    assert!(by_seq.contains(&(2, source.port())), "{by_seq:?}");
    uac.hang_up(&mut dialog).await;
}

#[tokio::test]
async fn total_packet_loss_drops_every_datagram_of_the_call() {
    let trunk = start(
        Duration::from_millis(20),
        VoiceBehaviour::answer().packet_loss(1.0),
    );
    let mut uac = Uac::new(&trunk, PASS).await;
    uac.invite().await;
    uac.silent().await;
    let call = trunk.wait_for_call(DEST, WAIT).await.unwrap();
    assert_eq!(call.invites_received, 0, "a lost INVITE is never processed");
    assert!(
        !call.sip.is_empty() && call.sip.iter().all(|e| e.dropped),
        "{}",
        call.ladder()
    );
    // Nothing got through within 64·T1: the call is closed as abandoned, not left live.
    let call = ended(&trunk).await;
    assert_eq!(call.ended_by, Some(EndedBy::Abandoned));
    assert_eq!(trunk.live_calls(), 0);
    // Calls to other numbers are unaffected.
    trunk.set_behaviour(
        "4930123",
        VoiceBehaviour::busy().challenge(ChallengeMode::Disabled),
    );
    let mut other = Uac::new(&trunk, PASS).await;
    other.params.destination = "4930123".into();
    other.invite().await;
    assert_eq!(other.response().await.status, 100);
    assert_eq!(other.response().await.status, 486);
}

#[test]
fn starts_and_stops_outside_any_runtime() {
    let trunk = start(T1, VoiceBehaviour::answer());
    let addr = trunk.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    trunk.stop();
    trunk.stop();
    drop(trunk);
    // The port is free again once the thread is gone.
    std::net::UdpSocket::bind(addr).unwrap();
}
