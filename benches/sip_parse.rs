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

mod common;

use std::hint::black_box;
use std::time::Instant;

use actors::sip::message::parse_datagram;
use common::env_or;

/// DIDWW's 401 (reference §4.4): Record-Route from two nodes, digest challenge.
const DIDWW_401: &str = include_str!("../actors/src/sip/samples/didww_401.sip");

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

/// An Asterisk-style 200 OK answering the INVITE, with SDP.
const OK_WITH_SDP: &str = include_str!("../actors/src/sip/samples/asterisk_200.sip");

/// A remote BYE with compact and folded headers (the framing's work).
const REMOTE_BYE: &str = include_str!("../actors/src/sip/samples/remote_bye.sip");

fn main() {
    let parses = env_or::<usize>("BENCH_PARSES", 20_000).max(1);
    let rounds = env_or::<usize>("BENCH_ROUNDS", 15).max(1);
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
