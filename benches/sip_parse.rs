//! Cost of reading one SIP datagram (`sip::message::parse_datagram`: the framing, rsip's
//! tokenizer, the header values a UAC needs), for the messages a call actually receives.
//!
//! Each sample is parsed `BENCH_PARSES` times (default 20,000) per round, for `BENCH_ROUNDS`
//! rounds (default 15), on one thread in this process with the release profile; the median and
//! the fastest round are reported as nanoseconds per message. A call reads about six of these
//! (100, 180, 200 with SDP, a retransmitted 200 or two, the BYE's 200), so the figure times six is
//! the SIP parsing cost per call.
//!
//! Run: `cargo bench --bench sip_parse`.

use std::hint::black_box;
use std::time::Instant;

use actors::sip::message::parse_datagram;

/// DIDWW's 401 (reference §4.4): Record-Route from two nodes, digest challenge.
const DIDWW_401: &str = "SIP/2.0 401 Unauthorized\r\n\
Via: SIP/2.0/UDP 203.0.113.25:5060;received=203.0.113.25;branch=z9hG4bK-8d1f2a;rport=5060\r\n\
Record-Route: <sip:46.19.209.8;r2=on;lr;ftag=a1b2c3;did=4e1.3a2>\r\n\
Record-Route: <sip:46.19.209.44;r2=on;lr;ftag=a1b2c3;did=4e1.3a2>\r\n\
From: <sip:15555550100@203.0.113.25>;tag=a1b2c3\r\n\
To: <sip:15555550123@out.didww.com>;tag=10-67E5E9A8-000D9E7B-8C3B2700\r\n\
Call-ID: 5b0e6f3a-9c41-4d2b-8e7f-1a2b3c4d5e6f\r\n\
CSeq: 1 INVITE\r\n\
WWW-Authenticate: Digest realm=\"out.didww.com\", nonce=\"ZWqPbGVqjkAmWk4sb3v2Yd8lRz0kTbT+\", qop=\"auth\"\r\n\
Server: DIDWW SBC\r\n\
Content-Length: 0\r\n\r\n";

/// A 180 as a trunk sends it.
const RINGING: &str = "SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP 203.0.113.25:5060;received=203.0.113.25;branch=z9hG4bK-8d1f2b;rport=5060\r\n\
Record-Route: <sip:46.19.209.8;r2=on;lr;ftag=a1b2c3>,<sip:46.19.209.44;r2=on;lr;ftag=a1b2c3>\r\n\
From: <sip:15555550100@203.0.113.25>;tag=a1b2c3\r\n\
To: <sip:15555550123@out.didww.com>;tag=as5f1b2c7e\r\n\
Call-ID: 5b0e6f3a-9c41-4d2b-8e7f-1a2b3c4d5e6f\r\n\
CSeq: 2 INVITE\r\n\
Contact: <sip:15555550123@46.19.209.44:5060;transport=udp>\r\n\
Content-Length: 0\r\n\r\n";

/// The 200 OK answering the INVITE, with SDP.
const OK_WITH_SDP: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 203.0.113.25:5060;branch=z9hG4bK77aa;received=203.0.113.25;rport=5060\r\n\
Record-Route: <sip:46.19.209.8;r2=on;lr;ftag=a1b2c3>,<sip:46.19.209.44;r2=on;lr;ftag=a1b2c3>\r\n\
From: <sip:15555550100@203.0.113.25>;tag=a1b2c3\r\n\
To: <sip:15555550123@out.didww.com>;tag=as5f1b2c7e\r\n\
Call-ID: 5b0e6f3a-9c41-4d2b-8e7f-1a2b3c4d5e6f\r\n\
CSeq: 2 INVITE\r\n\
Server: Asterisk PBX 18.20.0\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE\r\n\
Contact: <sip:15555550123@46.19.209.44:5060;transport=udp>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 154\r\n\r\n\
v=0\r\n\
o=root 1785 1785 IN IP4 46.19.213.90\r\n\
s=Asterisk\r\n\
c=IN IP4 46.19.213.90\r\n\
t=0 0\r\n\
m=audio 17326 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// A remote BYE with compact and folded headers (the framing's work).
const REMOTE_BYE: &str = "BYE sip:15555550100@203.0.113.25:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP 46.19.209.44;branch=z9hG4bK3a1f.9e2b;rport,\r\n SIP/2.0/UDP 46.19.209.8:5060;branch=z9hG4bKx2\r\n\
Max-Forwards: 69\r\n\
f: <sip:15555550123@out.didww.com>;tag=as5f1b2c7e\r\n\
t : <sip:15555550100@203.0.113.25>;tag=a1b2c3\r\n\
i: 5b0e6f3a-9c41-4d2b-8e7f-1a2b3c4d5e6f\r\n\
CSeq:   102   BYE\r\n\
Reason: Q.850;cause=16;text=\"Normal call clearing\"\r\n\
l: 0\r\n\r\n";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let parses = env_usize("BENCH_PARSES", 20_000).max(1);
    let rounds = env_usize("BENCH_ROUNDS", 15).max(1);
    println!("SIP datagram parsing: {rounds} rounds × {parses} parses per sample");
    println!(
        "{:<14} {:>7} {:>12} {:>12}",
        "sample", "bytes", "median ns", "best ns"
    );
    for (name, sample) in [
        ("401 challenge", DIDWW_401),
        ("180 ringing", RINGING),
        ("200 with SDP", OK_WITH_SDP),
        ("remote BYE", REMOTE_BYE),
    ] {
        let bytes = sample.as_bytes();
        assert!(parse_datagram(bytes).is_ok(), "{name} does not parse");
        let mut per_round: Vec<f64> = (0..rounds)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..parses {
                    black_box(parse_datagram(black_box(bytes)).ok());
                }
                start.elapsed().as_nanos() as f64 / parses as f64
            })
            .collect();
        per_round.sort_by(f64::total_cmp);
        println!(
            "{name:<14} {:>7} {:>12.0} {:>12.0}",
            bytes.len(),
            per_round[rounds / 2],
            per_round[0]
        );
    }
}
