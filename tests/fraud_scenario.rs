//! Scenario test of the fraud engine (issue 4, point 9): several simulated hours of generated
//! traffic replayed through [`FraudEngine`] with the production defaults (the settings the gateway
//! derives from an environment without `FRAUD_*` variables) and the production seed lists, then the
//! share of attack requests stopped and of legitimate requests wrongly stopped.
//!
//! Deterministic: one seeded xorshift generator draws the whole traffic up front (nothing depends
//! on the OS), the clock is the simulated `now_ms` carried by each event (nothing sleeps), and the
//! traffic is generated and replayed twice and must give the same decisions.
//!
//! The traffic:
//! * **legitimate users** in nine countries, each number valid for libphonenumber (the gateway's own
//!   validation gives its country and type), each user on a residential ISP of their country (IPv4
//!   or IPv6), some on mobile carriers' CGNAT pools where many users share a /24 (one Jio /24 carries
//!   more than `FRAUD_SUBNET_LIMIT_HOUR` per hour on its own), a few percent travelling (on an ISP of
//!   another country). Some tap "resend" once or twice, most enter their code, some mistype it once,
//!   the rest let it expire. A user whose code never arrives (shadow ban) taps resend too.
//! * **SMS pumping** into sequential numbers of an Indonesian mobile range (not on any list: only the
//!   behavioural rules can see it), from rented servers (seeded blocklist ASNs) rotating over
//!   hundreds of /24s, most of them geolocated in Indonesia; and a smaller run into the seeded IRSF
//!   prefix +881. Nothing is ever verified.
//! * **SMS bombing**: hundreds of requests in an hour to one victim from three IPs.
//!
//! "Stopped" is a 429, a 422 or a shadow ban. Run with `--nocapture` to see the table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use actors::fraud::engine::{
    Feedback, FeedbackOutcome, FraudEngine, FraudLists, FraudSettings, FraudStats,
};
use actors::fraud::{Decision, FraudInput, IpInfo, NumberKind, Verdict};
use actors::xorshift::XorShift64Star;
use actors::Channel;
use otp_gateway::config::Config;
use otp_gateway::fraud::seeds::ASN_BLOCKLIST_SEED;
use otp_gateway::http::api::validate;

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// 2026-01-05 00:00 UTC: the simulated clock starts here.
const T0: i64 = 1_767_571_200_000;
/// Legitimate sessions start uniformly over this span.
const LEGIT_SPAN: i64 = 6 * HOUR;
const LEGIT_SESSIONS: usize = 10_000;
/// The Indonesian pumping run.
const PUMP_START: i64 = 90 * MIN;
const PUMP_END: i64 = 270 * MIN;
const PUMP_NUMBERS: u32 = 2_000;
/// `+62 812 3456 xxxx`: Telkomsel mobile numbers, a range real Indonesian users share (prefix key
/// `+6281`), on no list.
const PUMP_RANGE: &str = "+628123456";
/// The run into the seeded IRSF prefix +881 (Iridium satellite phones).
const IRSF_START: i64 = 120 * MIN;
const IRSF_END: i64 = 160 * MIN;
const IRSF_NUMBERS: u32 = 300;
const IRSF_RANGE: &str = "+88161234";
/// The bombing run.
const BOMB_START: i64 = 180 * MIN;
const BOMB_END: i64 = 235 * MIN;
const BOMB_REQUESTS: u32 = 600;
/// Seed of the traffic generator.
const SEED: u64 = 0x5EED_F00D_2026_0409;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/// The traffic's generator: [`XorShift64Star`] behind a splitmix64 seeding round.
struct Rng(XorShift64Star);

impl Rng {
    fn new(seed: u64) -> Rng {
        // One splitmix64 round so that nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng(XorShift64Star::new(z ^ (z >> 31)))
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0.unit()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo + 1).unwrap();
        lo + i64::try_from(self.next_u64() % span).unwrap()
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % u64::try_from(n).unwrap()).unwrap()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn weighted<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
        let total: u32 = items.iter().map(&weight).sum();
        let mut r = u32::try_from(self.next_u64() % u64::from(total)).unwrap();
        for item in items {
            let w = weight(item);
            if r < w {
                return item;
            }
            r -= w;
        }
        unreachable!("weights sum to total")
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + u8::try_from(self.below(10)).unwrap()))
            .collect()
    }

    fn u8_in(&mut self, lo: u8, hi: u8) -> u8 {
        u8::try_from(self.range(i64::from(lo), i64::from(hi))).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// The world: countries, ISPs, carriers, rented servers (address blocks are illustrative, chosen
// public, outside RFC 1918/6598 and disjoint between operators)

/// A destination country of legitimate traffic.
struct Country {
    cc: &'static str,
    /// Share of sessions.
    weight: u32,
    /// Share of its users on a mobile carrier's CGNAT (per mille).
    mobile_permille: u32,
}

#[rustfmt::skip]
const COUNTRIES: &[Country] = &[
    Country { cc: "US", weight: 24, mobile_permille: 80 },
    Country { cc: "IN", weight: 16, mobile_permille: 450 },
    Country { cc: "BR", weight: 12, mobile_permille: 200 },
    Country { cc: "GB", weight: 11, mobile_permille: 80 },
    Country { cc: "DE", weight: 10, mobile_permille: 60 },
    Country { cc: "FR", weight: 9, mobile_permille: 60 },
    Country { cc: "ID", weight: 7, mobile_permille: 300 },
    Country { cc: "MX", weight: 6, mobile_permille: 150 },
    Country { cc: "ES", weight: 5, mobile_permille: 60 },
];

/// A residential ISP: users get a random /24 of its blocks (`a.b_lo-b_hi.*.*`) and a host in it, or
/// a random /64 under its IPv6 prefix.
struct Isp {
    cc: &'static str,
    asn: u32,
    org: &'static str,
    weight: u32,
    v4: &'static [(u8, u8, u8)],
    /// First 16 bits of its IPv6 space, when it hands out IPv6.
    v6: Option<u16>,
}

#[rustfmt::skip]
const ISPS: &[Isp] = &[
    Isp { cc: "US", asn: 7922, org: "Comcast Cable", weight: 4, v4: &[(73, 0, 255), (24, 0, 31)], v6: Some(0x2601) },
    Isp { cc: "US", asn: 20115, org: "Charter Communications", weight: 3, v4: &[(47, 128, 191), (71, 80, 95)], v6: Some(0x2603) },
    Isp { cc: "US", asn: 701, org: "Verizon Fios", weight: 2, v4: &[(71, 160, 191), (108, 0, 63)], v6: None },
    Isp { cc: "US", asn: 7018, org: "AT&T Internet", weight: 2, v4: &[(99, 0, 127), (107, 192, 223)], v6: Some(0x2600) },
    Isp { cc: "GB", asn: 2856, org: "British Telecommunications", weight: 3, v4: &[(86, 128, 191), (81, 128, 159)], v6: Some(0x2a00) },
    Isp { cc: "GB", asn: 5089, org: "Virgin Media", weight: 2, v4: &[(82, 0, 47), (86, 0, 31)], v6: None },
    Isp { cc: "GB", asn: 5607, org: "Sky Broadband", weight: 2, v4: &[(90, 192, 255), (2, 96, 127)], v6: None },
    Isp { cc: "DE", asn: 3320, org: "Deutsche Telekom", weight: 4, v4: &[(79, 192, 255), (91, 0, 63), (87, 128, 191)], v6: Some(0x2003) },
    Isp { cc: "DE", asn: 3209, org: "Vodafone GmbH", weight: 2, v4: &[(88, 64, 79), (95, 88, 95)], v6: None },
    Isp { cc: "DE", asn: 8881, org: "1&1 Versatel", weight: 1, v4: &[(62, 214, 223)], v6: None },
    Isp { cc: "FR", asn: 3215, org: "Orange S.A.", weight: 3, v4: &[(90, 0, 127), (86, 192, 255)], v6: Some(0x2a01) },
    Isp { cc: "FR", asn: 12322, org: "Free SAS", weight: 2, v4: &[(82, 64, 127), (88, 160, 191)], v6: Some(0x2a01) },
    Isp { cc: "FR", asn: 15557, org: "SFR", weight: 2, v4: &[(77, 128, 159), (109, 0, 31)], v6: None },
    Isp { cc: "BR", asn: 28573, org: "Claro NXT", weight: 3, v4: &[(177, 0, 63), (179, 208, 223)], v6: None },
    Isp { cc: "BR", asn: 26599, org: "Telefonica Brasil", weight: 3, v4: &[(187, 0, 127), (189, 0, 63)], v6: None },
    Isp { cc: "BR", asn: 7738, org: "Oi (Telemar)", weight: 1, v4: &[(200, 140, 165)], v6: None },
    Isp { cc: "IN", asn: 24560, org: "Bharti Airtel Broadband", weight: 3, v4: &[(122, 160, 191), (106, 200, 215)], v6: None },
    Isp { cc: "IN", asn: 55836, org: "Reliance Jio (JioFiber)", weight: 3, v4: &[(49, 36, 47)], v6: Some(0x2409) },
    Isp { cc: "IN", asn: 24309, org: "Atria Convergence (ACT)", weight: 1, v4: &[(49, 204, 207)], v6: None },
    Isp { cc: "IN", asn: 9829, org: "BSNL", weight: 1, v4: &[(117, 192, 255), (59, 88, 99)], v6: None },
    Isp { cc: "ID", asn: 7713, org: "Telkom Indonesia (IndiHome)", weight: 4, v4: &[(36, 64, 95), (180, 240, 255)], v6: None },
    Isp { cc: "ID", asn: 23700, org: "Link Net (First Media)", weight: 1, v4: &[(110, 136, 139)], v6: None },
    Isp { cc: "ID", asn: 17451, org: "Biznet Networks", weight: 1, v4: &[(103, 28, 31)], v6: None },
    Isp { cc: "MX", asn: 8151, org: "Telmex (Uninet)", weight: 3, v4: &[(187, 128, 255), (201, 96, 175)], v6: None },
    Isp { cc: "MX", asn: 13999, org: "Megacable", weight: 1, v4: &[(177, 224, 255)], v6: None },
    Isp { cc: "ES", asn: 3352, org: "Telefonica de Espana", weight: 3, v4: &[(83, 32, 63), (88, 0, 31)], v6: None },
    Isp { cc: "ES", asn: 12479, org: "Orange Espagne", weight: 2, v4: &[(90, 160, 175), (79, 144, 159)], v6: None },
];

/// A mobile carrier's CGNAT egress: a few public /24s, each shared by all its users through a few
/// dozen addresses.
struct Carrier {
    cc: &'static str,
    asn: u32,
    org: &'static str,
    weight: u32,
    subnets: &'static [(u8, u8, u8)],
    hosts: u8,
}

#[rustfmt::skip]
const CARRIERS: &[Carrier] = &[
    Carrier { cc: "US", asn: 21928, org: "T-Mobile USA", weight: 3, subnets: &[(172, 56, 16), (172, 56, 17), (172, 56, 18), (172, 56, 19)], hosts: 48 },
    Carrier { cc: "US", asn: 6167, org: "Verizon Wireless", weight: 2, subnets: &[(174, 205, 1), (174, 205, 2), (174, 205, 3)], hosts: 48 },
    // The hot one: a single Jio /24 that on its own carries more than 60 legitimate requests an
    // hour (realistic for India's largest carrier behind CGNAT).
    Carrier { cc: "IN", asn: 55836, org: "Reliance Jio (mobile)", weight: 11, subnets: &[(157, 40, 96)], hosts: 16 },
    Carrier { cc: "IN", asn: 55836, org: "Reliance Jio (mobile)", weight: 5, subnets: &[(157, 41, 10), (157, 41, 11), (157, 41, 12), (157, 41, 13)], hosts: 32 },
    Carrier { cc: "IN", asn: 45609, org: "Bharti Airtel (mobile)", weight: 4, subnets: &[(106, 193, 4), (106, 193, 5), (106, 193, 6)], hosts: 32 },
    Carrier { cc: "BR", asn: 26615, org: "TIM Brasil", weight: 1, subnets: &[(201, 20, 40), (201, 20, 41)], hosts: 32 },
    Carrier { cc: "BR", asn: 28573, org: "Claro Brasil (mobile)", weight: 1, subnets: &[(191, 246, 8), (191, 246, 9)], hosts: 32 },
    Carrier { cc: "GB", asn: 12576, org: "EE", weight: 1, subnets: &[(31, 94, 0), (31, 94, 1), (31, 94, 2)], hosts: 32 },
    Carrier { cc: "GB", asn: 25135, org: "Vodafone UK", weight: 1, subnets: &[(92, 40, 176), (92, 40, 177)], hosts: 32 },
    Carrier { cc: "DE", asn: 6805, org: "Telefonica Germany", weight: 1, subnets: &[(176, 1, 64), (176, 1, 65)], hosts: 32 },
    Carrier { cc: "FR", asn: 5410, org: "Bouygues Telecom", weight: 1, subnets: &[(37, 170, 12), (37, 170, 13)], hosts: 32 },
    Carrier { cc: "ID", asn: 23693, org: "Telkomsel", weight: 3, subnets: &[(114, 122, 72), (114, 122, 73), (114, 122, 74)], hosts: 32 },
    Carrier { cc: "ID", asn: 4761, org: "Indosat Ooredoo", weight: 1, subnets: &[(114, 4, 20), (114, 4, 21)], hosts: 32 },
    Carrier { cc: "MX", asn: 28403, org: "Telcel (Radiomovil Dipsa)", weight: 1, subnets: &[(189, 203, 30), (189, 203, 31)], hosts: 32 },
    Carrier { cc: "ES", asn: 12430, org: "Vodafone Spain", weight: 1, subnets: &[(37, 133, 60), (37, 133, 61)], hosts: 32 },
];

/// Rented servers an attacker uses: `subnets` /24s picked in `a.b.*.*` (ASNs must be seeded).
struct Pool {
    asn: u32,
    cc: &'static str,
    a: u8,
    b: u8,
    subnets: usize,
}

/// The pumping run's servers geolocated in Indonesia: cloud regions in Jakarta.
#[rustfmt::skip]
const PUMP_LOCAL_POOLS: &[Pool] = &[
    Pool { asn: 16509, cc: "ID", a: 108, b: 136, subnets: 40 },
    Pool { asn: 45102, cc: "ID", a: 147, b: 139, subnets: 30 },
    Pool { asn: 132203, cc: "ID", a: 43, b: 129, subnets: 25 },
    Pool { asn: 136907, cc: "ID", a: 101, b: 44, subnets: 25 },
];

/// The pumping run's servers elsewhere (Singapore, Japan, Finland, the UK).
#[rustfmt::skip]
const PUMP_FOREIGN_POOLS: &[Pool] = &[
    Pool { asn: 14061, cc: "SG", a: 128, b: 199, subnets: 20 },
    Pool { asn: 20473, cc: "JP", a: 45, b: 77, subnets: 15 },
    Pool { asn: 16276, cc: "SG", a: 51, b: 79, subnets: 15 },
    Pool { asn: 24940, cc: "FI", a: 65, b: 21, subnets: 10 },
    Pool { asn: 51167, cc: "SG", a: 161, b: 97, subnets: 10 },
    Pool { asn: 9009, cc: "GB", a: 185, b: 156, subnets: 10 },
];

/// The IRSF run's servers.
#[rustfmt::skip]
const IRSF_POOLS: &[Pool] = &[
    Pool { asn: 14061, cc: "US", a: 167, b: 99, subnets: 15 },
    Pool { asn: 16276, cc: "FR", a: 51, b: 38, subnets: 15 },
    Pool { asn: 24940, cc: "DE", a: 88, b: 198, subnets: 10 },
    Pool { asn: 63949, cc: "US", a: 172, b: 104, subnets: 10 },
];

fn seeded_org(asn: u32) -> &'static str {
    ASN_BLOCKLIST_SEED
        .iter()
        .find(|e| e.asn == asn)
        .map(|e| e.org)
        .unwrap_or_else(|| panic!("AS{asn} is used as a rented server but is not seeded"))
}

fn info(asn: u32, org: &str, cc: &str) -> IpInfo {
    IpInfo {
        asn: Some(asn),
        asn_org: Some(org.to_owned()),
        country: Some(cc.to_owned()),
    }
}

/// A residential address of `isp`: IPv6 for `v6_share` of its users when it has IPv6.
fn residential(rng: &mut Rng, isp: &Isp, v6_share: f64) -> IpAddr {
    if let Some(top) = isp.v6.filter(|_| rng.chance(v6_share)) {
        let seg = |rng: &mut Rng| u16::try_from(rng.range(0, 0xffff)).unwrap();
        let (s1, s2, s3) = (seg(rng), seg(rng), seg(rng));
        let host = u16::try_from(rng.range(1, 0xffff)).unwrap();
        return IpAddr::V6(Ipv6Addr::new(top, s1, s2, s3, 0, 0, 0, host));
    }
    let &(a, lo, hi) = rng.pick(isp.v4);
    let (b, c, d) = (rng.u8_in(lo, hi), rng.u8_in(0, 255), rng.u8_in(1, 254));
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

// ---------------------------------------------------------------------------------------------
// Phone numbers, validated exactly as `POST /dispatch` validates them

/// A candidate national-format number for a user in `cc` (validity is checked by libphonenumber).
fn candidate(rng: &mut Rng, cc: &str) -> String {
    match cc {
        "US" => {
            let area = rng.pick(&[
                "212", "213", "303", "305", "312", "404", "415", "469", "480", "512", "602", "617",
                "646", "702", "713", "718", "786", "832", "917", "206",
            ]);
            let exchange = loop {
                let e = rng.range(200, 999);
                if e % 100 != 11 && e != 555 {
                    break e;
                }
            };
            format!("+1{area}{exchange}{}", rng.digits(4))
        }
        "GB" => format!("+447{}{}", rng.pick(&[4, 5, 7, 8, 9]), rng.digits(8)),
        "DE" => {
            let p = rng.pick(&[
                "151", "152", "157", "159", "160", "162", "163", "170", "171", "172", "173", "174",
                "175", "176", "177", "178", "179",
            ]);
            let n = if p.starts_with("15") || rng.chance(0.5) {
                8
            } else {
                7
            };
            format!("+49{p}{}", rng.digits(n))
        }
        "FR" => {
            if rng.chance(0.8) {
                format!("+336{}", rng.digits(8))
            } else {
                format!("+337{}{}", rng.range(5, 8), rng.digits(7))
            }
        }
        "BR" => {
            let ddd = rng.pick(&[11, 21, 31, 41, 51, 61, 71, 81, 85, 19, 27, 48]);
            format!("+55{ddd}9{}{}", rng.range(6, 9), rng.digits(7))
        }
        "IN" => format!("+91{}{}", rng.range(6, 9), rng.digits(9)),
        "ID" => {
            let p = rng.pick(&[
                "811", "812", "813", "821", "822", "823", "852", "853", "815", "816", "855", "856",
                "857", "858", "817", "818", "819", "859", "877", "878", "895", "896", "897", "898",
                "899",
            ]);
            let n = if rng.chance(0.6) { 8 } else { 7 };
            format!("+62{p}{}", rng.digits(n))
        }
        "MX" => {
            if rng.chance(0.7) {
                format!("+52{}{}", rng.pick(&["55", "33", "81"]), rng.digits(8))
            } else {
                format!(
                    "+52{}{}",
                    rng.pick(&["222", "442", "664", "998"]),
                    rng.digits(7)
                )
            }
        }
        "ES" => {
            if rng.chance(0.8) {
                format!("+346{}", rng.digits(8))
            } else {
                format!("+347{}{}", rng.range(1, 4), rng.digits(7))
            }
        }
        other => panic!("no number plan for {other}"),
    }
}

/// A destination as the gateway hands it to the engine.
#[derive(Debug, Clone, PartialEq)]
struct Dest {
    e164: String,
    country: Option<String>,
    kind: NumberKind,
}

/// libphonenumber's answers (through the gateway's own validation), memoised: the determinism
/// check generates the traffic twice and asks the same questions. Its regex cache is small, so
/// numbers are also drawn country by country: alternating countries recompiles patterns, which
/// costs tens of milliseconds a number in a debug build.
#[derive(Default)]
struct PhoneBook(HashMap<String, Option<Dest>>);

impl PhoneBook {
    fn validated(&mut self, raw: &str) -> Option<Dest> {
        if let Some(known) = self.0.get(raw) {
            return known.clone();
        }
        let dest = validate::phone(raw).ok().map(|p| Dest {
            e164: p.e164,
            country: p.country,
            kind: p.kind,
        });
        self.0.insert(raw.to_owned(), dest.clone());
        dest
    }

    fn valid(&mut self, raw: &str) -> Dest {
        self.validated(raw)
            .unwrap_or_else(|| panic!("{raw} is not a valid number"))
    }

    /// A fresh mobile number of `cc` no one else uses.
    fn mobile(&mut self, rng: &mut Rng, cc: &str, used: &mut HashSet<String>) -> Dest {
        for _ in 0..1_000 {
            let raw = candidate(rng, cc);
            if used.contains(&raw) {
                continue;
            }
            let Some(dest) = self.validated(&raw) else {
                continue;
            };
            let mobile = matches!(
                dest.kind,
                NumberKind::Mobile | NumberKind::FixedLineOrMobile
            );
            if mobile && dest.country.as_deref() == Some(cc) {
                used.insert(dest.e164.clone());
                return dest;
            }
        }
        panic!("no valid {cc} mobile number in 1000 tries");
    }
}

// ---------------------------------------------------------------------------------------------
// The traffic

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pop {
    Legit,
    /// Pumping from servers geolocated in the destination's country.
    PumpLocal,
    /// Pumping from servers abroad.
    PumpForeign,
    /// Pumping into the seeded IRSF prefix.
    PumpIrsf,
    Bombing,
}

impl Pop {
    const ALL: [Pop; 5] = [
        Pop::Legit,
        Pop::PumpLocal,
        Pop::PumpForeign,
        Pop::PumpIrsf,
        Pop::Bombing,
    ];

    fn label(self) -> &'static str {
        match self {
            Pop::Legit => "legitimate",
            Pop::PumpLocal => "pumping +6281, servers in ID",
            Pop::PumpForeign => "pumping +6281, servers abroad",
            Pop::PumpIrsf => "pumping +881 (seeded IRSF)",
            Pop::Bombing => "bombing one victim",
        }
    }
}

/// How a legitimate user behaves, drawn up front so the replay itself draws nothing.
#[derive(Debug, Clone, PartialEq)]
struct Session {
    dest: Dest,
    ip: IpAddr,
    info: IpInfo,
    traveller: bool,
    start: i64,
    /// "Resend" taps planned while codes do arrive (0, 1 or rarely 2).
    resends: u8,
    /// Delays before each further attempt (resend, or retry of a code that never came).
    gaps: [i64; 3],
    /// Enters the code it finally got.
    verifies: bool,
    /// Mistypes it once first.
    typo: bool,
    /// From the last delivered code to the verification.
    verify_delay: i64,
}

/// One attack request, scheduled whatever the answers are (attack scripts ignore them).
#[derive(Debug, Clone, PartialEq)]
struct AttackRequest {
    pop: Pop,
    at: i64,
    dest: Dest,
    ip: IpAddr,
    info: IpInfo,
}

struct Traffic {
    sessions: Vec<Session>,
    attacks: Vec<AttackRequest>,
}

fn generate(seed: u64, book: &mut PhoneBook) -> Traffic {
    let mut rng = Rng::new(seed);
    let mut used = HashSet::new();

    // The attack ranges first, so no legitimate user is given one of their numbers.
    let pump_numbers: Vec<Dest> = (0..PUMP_NUMBERS)
        .map(|i| book.valid(&format!("{PUMP_RANGE}{:04}", i + i / 7)))
        .collect();
    let irsf_numbers: Vec<Dest> = (0..IRSF_NUMBERS)
        .map(|i| book.valid(&format!("{IRSF_RANGE}{i:04}")))
        .collect();
    for d in pump_numbers.iter().chain(&irsf_numbers) {
        used.insert(d.e164.clone());
    }
    let victim = book.mobile(&mut rng, "IN", &mut used);

    let countries: Vec<&Country> = (0..LEGIT_SESSIONS)
        .map(|_| rng.weighted(COUNTRIES, |c| c.weight))
        .collect();
    let mut dests: Vec<Option<Dest>> = vec![None; LEGIT_SESSIONS];
    for c in COUNTRIES {
        for (i, _) in countries.iter().enumerate().filter(|(_, x)| x.cc == c.cc) {
            dests[i] = Some(book.mobile(&mut rng, c.cc, &mut used));
        }
    }
    let mut sessions = Vec::with_capacity(LEGIT_SESSIONS);
    for (country, dest) in countries.into_iter().zip(dests) {
        let dest = dest.expect("every session has a number");
        let traveller = rng.chance(0.03);
        let (ip, info) = if traveller {
            // Hotel or friends' Wi-Fi abroad.
            let isp = loop {
                let isp = rng.weighted(ISPS, |i| i.weight);
                if isp.cc != country.cc {
                    break isp;
                }
            };
            (
                residential(&mut rng, isp, 0.2),
                info(isp.asn, isp.org, isp.cc),
            )
        } else if rng.chance(f64::from(country.mobile_permille) / 1000.0) {
            let mine: Vec<&Carrier> = CARRIERS.iter().filter(|c| c.cc == country.cc).collect();
            let carrier = *rng.weighted(&mine, |c| c.weight);
            let &(a, b, c) = rng.pick(carrier.subnets);
            let host = rng.u8_in(1, carrier.hosts);
            let ip = IpAddr::V4(Ipv4Addr::new(a, b, c, host));
            (ip, info(carrier.asn, carrier.org, carrier.cc))
        } else {
            let mine: Vec<&Isp> = ISPS.iter().filter(|i| i.cc == country.cc).collect();
            let isp = *rng.weighted(&mine, |i| i.weight);
            (
                residential(&mut rng, isp, 0.3),
                info(isp.asn, isp.org, isp.cc),
            )
        };
        let r = rng.unit();
        let resends = if r < 0.015 {
            2
        } else if r < 0.10 {
            1
        } else {
            0
        };
        let gaps = [
            rng.range(25 * SEC, 120 * SEC),
            rng.range(25 * SEC, 120 * SEC),
            rng.range(30 * SEC, 120 * SEC),
        ];
        let verifies = rng.chance(0.95);
        let typo = rng.chance(0.04);
        let r = rng.unit();
        let verify_delay = if r < 0.70 {
            rng.range(12 * SEC, 60 * SEC)
        } else if r < 0.95 {
            rng.range(60 * SEC, 180 * SEC)
        } else {
            rng.range(180 * SEC, 540 * SEC)
        };
        sessions.push(Session {
            dest,
            ip,
            info,
            traveller,
            start: T0 + rng.range(0, LEGIT_SPAN - 1),
            resends,
            gaps,
            verifies,
            typo,
            verify_delay,
        });
    }
    sessions.sort_by_key(|s| s.start);

    let mut attacks = Vec::new();
    let pools = |rng: &mut Rng, list: &'static [Pool]| -> Vec<(&'static Pool, Vec<u8>)> {
        list.iter()
            .map(|p| {
                let mut thirds = Vec::new();
                while thirds.len() < p.subnets {
                    let c = rng.u8_in(0, 255);
                    if !thirds.contains(&c) {
                        thirds.push(c);
                    }
                }
                (p, thirds)
            })
            .collect()
    };
    let server = |rng: &mut Rng, pools: &[(&'static Pool, Vec<u8>)]| -> (IpAddr, IpInfo) {
        let (pool, thirds) = rng.pick(pools);
        let ip = Ipv4Addr::new(pool.a, pool.b, *rng.pick(thirds), rng.u8_in(1, 254));
        (
            IpAddr::V4(ip),
            info(pool.asn, seeded_org(pool.asn), pool.cc),
        )
    };

    // Pumping: sequential numbers at a steady pace, a fifth of them tried twice; 70 % from servers
    // geolocated in Indonesia (no geo mismatch), the rest from abroad.
    let local = pools(&mut rng, PUMP_LOCAL_POOLS);
    let foreign = pools(&mut rng, PUMP_FOREIGN_POOLS);
    let step = (PUMP_END - PUMP_START) / i64::from(PUMP_NUMBERS);
    for (i, dest) in pump_numbers.into_iter().enumerate() {
        let base = T0 + PUMP_START + step * i64::try_from(i).unwrap();
        let tries = if rng.chance(0.2) { 2 } else { 1 };
        for t in 0..tries {
            let at = base + rng.range(0, step - 1) + t * rng.range(20 * SEC, 60 * SEC);
            let in_country = rng.chance(0.7);
            let (ip, info) = server(&mut rng, if in_country { &local } else { &foreign });
            let pop = if in_country {
                Pop::PumpLocal
            } else {
                Pop::PumpForeign
            };
            attacks.push(AttackRequest {
                pop,
                at,
                dest: dest.clone(),
                ip,
                info,
            });
        }
    }
    let irsf = pools(&mut rng, IRSF_POOLS);
    let step = (IRSF_END - IRSF_START) / i64::from(IRSF_NUMBERS);
    for (i, dest) in irsf_numbers.into_iter().enumerate() {
        let at = T0 + IRSF_START + step * i64::try_from(i).unwrap() + rng.range(0, step - 1);
        let (ip, info) = server(&mut rng, &irsf);
        attacks.push(AttackRequest {
            pop: Pop::PumpIrsf,
            at,
            dest,
            ip,
            info,
        });
    }

    // Bombing: a script cycling through a home connection, a VPS in the victim's country and a
    // VPN exit abroad.
    let bombers = [
        (
            IpAddr::V4(Ipv4Addr::new(122, 171, 20, 77)),
            info(24560, "Bharti Airtel Broadband", "IN"),
        ),
        (
            IpAddr::V4(Ipv4Addr::new(139, 59, 14, 201)),
            info(14061, seeded_org(14061), "IN"),
        ),
        (
            IpAddr::V4(Ipv4Addr::new(185, 253, 160, 9)),
            info(9009, seeded_org(9009), "GB"),
        ),
    ];
    let step = (BOMB_END - BOMB_START) / i64::from(BOMB_REQUESTS);
    for i in 0..BOMB_REQUESTS {
        let at = T0 + BOMB_START + step * i64::from(i) + rng.range(0, step - 1);
        let (ip, info) = rng.pick(&bombers).clone();
        attacks.push(AttackRequest {
            pop: Pop::Bombing,
            at,
            dest: victim.clone(),
            ip,
            info,
        });
    }
    attacks.sort_by_key(|a| a.at);
    Traffic { sessions, attacks }
}

// ---------------------------------------------------------------------------------------------
// The replay

#[derive(Debug, Clone)]
enum Event {
    LegitAttempt(usize),
    Attack(usize),
    Feedback(Feedback),
    /// The actor prunes every minute.
    Prune,
}

/// What happened to one population.
#[derive(Debug, Default, Clone, PartialEq)]
struct PopStats {
    total: u32,
    allowed: u32,
    shadow_banned: u32,
    rate_limited: u32,
    country_refused: u32,
    /// Decisions where the rule fired (0-point notes included).
    rules: BTreeMap<String, u32>,
    /// Stopped requests by verdict and the rules that fired.
    stopped_by: BTreeMap<String, u32>,
}

impl PopStats {
    fn stopped(&self) -> u32 {
        self.shadow_banned + self.rate_limited + self.country_refused
    }

    fn share_stopped(&self) -> f64 {
        f64::from(self.stopped()) / f64::from(self.total.max(1))
    }

    fn rule(&self, name: &str) -> u32 {
        self.rules.get(name).copied().unwrap_or(0)
    }

    fn add(&mut self, other: &PopStats) {
        self.total += other.total;
        self.allowed += other.allowed;
        self.shadow_banned += other.shadow_banned;
        self.rate_limited += other.rate_limited;
        self.country_refused += other.country_refused;
        for (k, v) in &other.rules {
            *self.rules.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.stopped_by {
            *self.stopped_by.entry(k.clone()).or_default() += v;
        }
    }
}

/// A request the test wants to look at afterwards.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    pop: Pop,
    at: i64,
    phone: String,
    ip: IpAddr,
    info: IpInfo,
    traveller: bool,
    verdict: &'static str,
    score: u32,
    hits: String,
}

#[derive(Debug, Default, PartialEq)]
struct Outcome {
    stats: BTreeMap<Pop, PopStats>,
    /// FNV-1a over every decision, in order.
    digest: u64,
    /// Attack requests that got through, and legitimate ones that were stopped.
    let_through: Vec<Seen>,
    wrongly_stopped: Vec<Seen>,
    /// Legitimate users who never got a code.
    legit_users_without_code: u32,
    legit_users: u32,
    legit_codes: u32,
    legit_verified: u32,
    /// First `prefix_breaker` hit on pumping (ms after the run started).
    breaker_tripped_after: Option<i64>,
    /// Prefixes whose breaker fired on legitimate requests.
    legit_breaker_prefixes: BTreeMap<String, u32>,
    /// Largest key counts seen at a prune during the run.
    peak: FraudStats,
    /// Key counts two weeks after the last request.
    final_stats: FraudStats,
    prunes: u32,
}

fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::ShadowBan => "shadow_ban",
        Verdict::RateLimited { .. } => "rate_limited",
        Verdict::CountryNotAllowed { .. } => "country_not_allowed",
    }
}

fn hits_text(d: &Decision) -> String {
    let mut s = String::new();
    for h in &d.hits {
        if !s.is_empty() {
            s.push(' ');
        }
        write!(s, "{}:{}", h.rule, h.points).unwrap();
    }
    s
}

struct Replay<'a> {
    traffic: &'a Traffic,
    engine: FraudEngine,
    ttl: i64,
    sweep: i64,
    queue: BinaryHeap<Reverse<(i64, usize)>>,
    events: Vec<Option<Event>>,
    out: Outcome,
    /// Per session: attempts made, resends left, codes delivered (send times).
    attempts: Vec<u8>,
    resends_left: Vec<u8>,
    delivered: Vec<Vec<i64>>,
    /// Accepted (allowed or shadow-banned) requests of the last hour, for the memory bound.
    accepted: VecDeque<i64>,
    subnets_seen: HashSet<String>,
    ips_taught: HashSet<IpAddr>,
    prefixes_seen: HashSet<String>,
}

impl<'a> Replay<'a> {
    fn schedule(&mut self, at: i64, event: Event) {
        self.queue.push(Reverse((at, self.events.len())));
        self.events.push(Some(event));
    }

    fn teach(&mut self, at: i64, phone: &str, ip: IpAddr, outcome: FeedbackOutcome) {
        let fb = Feedback {
            phone: phone.to_owned(),
            ip: Some(ip),
            outcome,
            now_ms: at,
        };
        self.schedule(at, Event::Feedback(fb));
    }

    /// Judges one request and books it.
    fn judge(
        &mut self,
        pop: Pop,
        at: i64,
        dest: &Dest,
        ip: IpAddr,
        info: &IpInfo,
        traveller: bool,
    ) -> Verdict {
        let input = FraudInput {
            phone: dest.e164.clone(),
            phone_country: dest.country.clone(),
            number_kind: dest.kind,
            ip: Some(ip),
            channel: Channel::Sms,
            now_ms: at,
        };
        let d = self.engine.evaluate(&input, info);
        assert!(d.enforced && !d.whitelisted, "production defaults enforce");
        let verdict = verdict_name(&d.verdict);
        for byte in verdict
            .bytes()
            .chain(d.score.to_le_bytes())
            .chain(at.to_le_bytes())
        {
            self.out.digest = (self.out.digest ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.subnets_seen.extend(d.inputs.subnet.clone());
        self.prefixes_seen.insert(d.inputs.prefix.clone());
        let st = self.out.stats.entry(pop).or_default();
        st.total += 1;
        match d.verdict {
            Verdict::Allow => st.allowed += 1,
            Verdict::ShadowBan => st.shadow_banned += 1,
            Verdict::RateLimited { .. } => st.rate_limited += 1,
            Verdict::CountryNotAllowed { .. } => st.country_refused += 1,
        }
        let mut names: Vec<&str> = d.hits.iter().map(|h| h.rule.as_str()).collect();
        names.sort_unstable();
        for name in &names {
            *st.rules.entry((*name).to_owned()).or_default() += 1;
        }
        let stopped = d.verdict != Verdict::Allow;
        if stopped {
            let key = format!("{verdict}: {}", names.join("+"));
            *st.stopped_by.entry(key).or_default() += 1;
        }
        if matches!(d.verdict, Verdict::Allow | Verdict::ShadowBan) {
            self.accepted.push_back(at);
        }
        let breaker = d.hits.iter().any(|h| h.rule == "prefix_breaker");
        if breaker && matches!(pop, Pop::PumpLocal | Pop::PumpForeign) {
            self.out
                .breaker_tripped_after
                .get_or_insert(at - T0 - PUMP_START);
        }
        if breaker && pop == Pop::Legit {
            *self
                .out
                .legit_breaker_prefixes
                .entry(d.inputs.prefix.clone())
                .or_default() += 1;
        }
        let interesting = if pop == Pop::Legit { stopped } else { !stopped };
        if interesting {
            let seen = Seen {
                pop,
                at,
                phone: dest.e164.clone(),
                ip,
                info: info.clone(),
                traveller,
                verdict,
                score: d.score,
                hits: hits_text(&d),
            };
            if pop == Pop::Legit {
                self.out.wrongly_stopped.push(seen);
            } else {
                self.out.let_through.push(seen);
            }
        }
        d.verdict
    }

    fn legit_attempt(&mut self, i: usize, now: i64) {
        let traffic = self.traffic;
        let s = &traffic.sessions[i];
        self.attempts[i] += 1;
        let verdict = self.judge(Pop::Legit, now, &s.dest, s.ip, &s.info, s.traveller);
        let gap = s.gaps[usize::from(self.attempts[i] - 1).min(2)];
        match verdict {
            Verdict::Allow => {
                self.delivered[i].push(now);
                if self.resends_left[i] > 0 {
                    // The code is slow to arrive (or so it seems): "resend".
                    self.resends_left[i] -= 1;
                    self.schedule(now + gap, Event::LegitAttempt(i));
                } else {
                    self.finish(i, now);
                }
            }
            // No code comes: the user taps "resend", up to three attempts in all.
            Verdict::ShadowBan if self.attempts[i] < 3 => {
                self.schedule(now + gap, Event::LegitAttempt(i));
            }
            // "Try again later" (429), or gave up: enter a code that did arrive, if any.
            _ => self.finish(i, now),
        }
    }

    /// The session ends: the last delivered code is entered (or not), every other one expires.
    fn finish(&mut self, i: usize, now: i64) {
        let traffic = self.traffic;
        let s = &traffic.sessions[i];
        let codes = std::mem::take(&mut self.delivered[i]);
        if codes.is_empty() {
            self.out.legit_users_without_code += 1;
            return;
        }
        self.out.legit_codes += u32::try_from(codes.len()).unwrap();
        let last = codes.len() - 1;
        for (k, &sent) in codes.iter().enumerate() {
            let verify_at = now + s.verify_delay;
            if k == last && s.verifies && verify_at < sent + self.ttl {
                if s.typo {
                    self.teach(
                        verify_at - 8 * SEC,
                        &s.dest.e164,
                        s.ip,
                        FeedbackOutcome::Rejected,
                    );
                }
                self.teach(verify_at, &s.dest.e164, s.ip, FeedbackOutcome::Verified);
                self.out.legit_verified += 1;
            } else {
                let expiry = sent + self.ttl + (sent % self.sweep);
                self.teach(
                    expiry,
                    &s.dest.e164,
                    s.ip,
                    FeedbackOutcome::ExpiredUnverified,
                );
            }
        }
    }

    fn attack(&mut self, i: usize, now: i64) {
        let traffic = self.traffic;
        let a = &traffic.attacks[i];
        let verdict = self.judge(a.pop, now, &a.dest, a.ip, &a.info, false);
        // A delivered code nobody enters expires; a shadow-banned one is not reported back (the
        // dispatcher keeps no origin for it).
        if verdict == Verdict::Allow {
            let expiry = now + self.ttl + (now % self.sweep);
            self.teach(
                expiry,
                &a.dest.e164,
                a.ip,
                FeedbackOutcome::ExpiredUnverified,
            );
        }
    }

    fn prune(&mut self, now: i64) {
        self.engine.prune(now);
        self.out.prunes += 1;
        while self.accepted.front().is_some_and(|&t| t <= now - HOUR) {
            self.accepted.pop_front();
        }
        let st = self.engine.stats();
        assert!(
            st.phones <= self.accepted.len(),
            "{} phones tracked, {} accepted requests in the last hour",
            st.phones,
            self.accepted.len()
        );
        assert!(st.subnets <= self.subnets_seen.len(), "{st:?}");
        assert!(st.ips <= self.ips_taught.len(), "{st:?}");
        assert!(st.prefixes <= self.prefixes_seen.len(), "{st:?}");
        let peak = &mut self.out.peak;
        peak.phones = peak.phones.max(st.phones);
        peak.subnets = peak.subnets.max(st.subnets);
        peak.ips = peak.ips.max(st.ips);
        peak.prefixes = peak.prefixes.max(st.prefixes);
    }

    fn run(
        traffic: &'a Traffic,
        settings: FraudSettings,
        lists: FraudLists,
        ttl: i64,
        sweep: i64,
    ) -> Outcome {
        let n = traffic.sessions.len();
        let mut r = Replay {
            traffic,
            engine: FraudEngine::new(settings, lists),
            ttl,
            sweep,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            out: Outcome {
                stats: Pop::ALL.map(|p| (p, PopStats::default())).into(),
                digest: 0xcbf2_9ce4_8422_2325,
                legit_users: u32::try_from(n).unwrap(),
                ..Outcome::default()
            },
            attempts: vec![0; n],
            resends_left: traffic.sessions.iter().map(|s| s.resends).collect(),
            delivered: vec![Vec::new(); n],
            accepted: VecDeque::new(),
            subnets_seen: HashSet::new(),
            ips_taught: HashSet::new(),
            prefixes_seen: HashSet::new(),
        };
        for (i, s) in traffic.sessions.iter().enumerate() {
            r.schedule(s.start, Event::LegitAttempt(i));
        }
        for (i, a) in traffic.attacks.iter().enumerate() {
            r.schedule(a.at, Event::Attack(i));
        }
        let end = T0 + LEGIT_SPAN + HOUR;
        let mut t = T0 + MIN;
        while t <= end {
            r.schedule(t, Event::Prune);
            t += MIN;
        }
        while let Some(Reverse((at, idx))) = r.queue.pop() {
            let event = r.events[idx].take().expect("each event runs once");
            match event {
                Event::LegitAttempt(i) => r.legit_attempt(i, at),
                Event::Attack(i) => r.attack(i, at),
                Event::Feedback(fb) => {
                    if let Some(ip) = fb.ip {
                        r.ips_taught.insert(ip);
                    }
                    r.engine.feedback(fb);
                }
                Event::Prune => r.prune(at),
            }
        }
        // Two weeks later every trace has decayed or expired: nothing is kept forever.
        r.engine.prune(end + 14 * DAY);
        r.out.final_stats = r.engine.stats();
        r.out
    }
}

// ---------------------------------------------------------------------------------------------
// The test

/// The engine settings the gateway derives from an environment that sets no `FRAUD_*` variable.
fn production_settings() -> (FraudSettings, i64, i64) {
    let vars = HashMap::from([(
        "API_SECRET".to_owned(),
        "scenario-secret-0123456789".to_owned(),
    )]);
    // Sandbox mode only spares the carrier credentials; the fraud variables are read the same way.
    let config = Config::from_vars(&vars, true).expect("default configuration");
    let settings = otp_gateway::fraud::setup::settings(&config);
    assert_eq!(
        settings,
        FraudSettings::default(),
        "config defaults = engine defaults"
    );
    assert_eq!(
        (
            settings.rate_limit_minute,
            settings.rate_limit_hour,
            settings.subnet_limit_minute,
            settings.subnet_limit_hour,
            settings.shadow_ban_threshold,
            settings.geo_mismatch_penalty,
        ),
        (2, 5, 10, 60, 50, 20)
    );
    assert!(settings.enabled && !settings.monitor && settings.allowed_countries.is_empty());
    let ttl = i64::try_from(config.otp_ttl.as_millis()).unwrap();
    let sweep = i64::try_from(config.expiry_sweep_interval.as_millis()).unwrap();
    (settings, ttl, sweep)
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn top_rules(st: &PopStats, n: usize) -> String {
    let mut rules: Vec<(&String, &u32)> = st.rules.iter().collect();
    rules.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    rules
        .iter()
        .take(n)
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(out: &Outcome, pumping: &PopStats, elapsed: Duration, generation: Duration) -> String {
    let mut s = String::new();
    let w = &mut s;
    writeln!(
        w,
        "\n{:<32} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6}  rules fired (decisions)",
        "population", "requests", "stopped", "share", "allow", "ban", "429"
    )
    .unwrap();
    let row = |w: &mut String, label: &str, st: &PopStats| {
        writeln!(
            w,
            "{:<32} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6}  {}",
            label,
            st.total,
            st.stopped(),
            pct(st.share_stopped()),
            st.allowed,
            st.shadow_banned,
            st.rate_limited,
            top_rules(st, 6)
        )
        .unwrap();
    };
    for pop in Pop::ALL {
        row(w, pop.label(), &out.stats[&pop]);
    }
    row(w, "pumping, all runs", pumping);
    for pop in Pop::ALL {
        writeln!(w, "\n{} — stopped by:", pop.label()).unwrap();
        for (k, v) in &out.stats[&pop].stopped_by {
            writeln!(w, "  {v:>6}  {k}").unwrap();
        }
    }
    writeln!(
        w,
        "\nlegitimate users: {}, codes delivered {}, verified {} ({} of codes), users who never got a code {}",
        out.legit_users,
        out.legit_codes,
        out.legit_verified,
        pct(f64::from(out.legit_verified) / f64::from(out.legit_codes.max(1))),
        out.legit_users_without_code
    )
    .unwrap();
    writeln!(
        w,
        "legitimate requests wrongly stopped ({}):",
        out.wrongly_stopped.len()
    )
    .unwrap();
    for x in &out.wrongly_stopped {
        writeln!(
            w,
            "  t+{:>5}s {} from {} (AS{} {}){} → {} score {} [{}]",
            (x.at - T0) / SEC,
            x.phone,
            x.ip,
            x.info.asn.unwrap_or(0),
            x.info.country.as_deref().unwrap_or("?"),
            if x.traveller { " traveller" } else { "" },
            x.verdict,
            x.score,
            x.hits
        )
        .unwrap();
    }
    writeln!(
        w,
        "attack requests let through ({}):",
        out.let_through.len()
    )
    .unwrap();
    for x in &out.let_through {
        writeln!(
            w,
            "  t+{:>5}s {:<30} {} from {} (AS{} {}) score {} [{}]",
            (x.at - T0) / SEC,
            x.pop.label(),
            x.phone,
            x.ip,
            x.info.asn.unwrap_or(0),
            x.info.country.as_deref().unwrap_or("?"),
            x.score,
            x.hits
        )
        .unwrap();
    }
    writeln!(
        w,
        "prefix breaker on pumping first fired {}s after the run started; on legitimate requests: {:?}",
        out.breaker_tripped_after.map_or(-1, |t| t / SEC),
        out.legit_breaker_prefixes
    )
    .unwrap();
    writeln!(
        w,
        "engine state: peak {:?}, two weeks later {:?} ({} prunes)",
        out.peak, out.final_stats, out.prunes
    )
    .unwrap();
    writeln!(
        w,
        "decision digest {:016x}; traffic generation {generation:.2?}, replay {elapsed:.2?}",
        out.digest
    )
    .unwrap();
    s
}

#[test]
fn replayed_traffic_stops_pumping_and_bombing_but_not_users() {
    let started = Instant::now();
    let (settings, ttl, sweep) = production_settings();
    let lists = otp_gateway::fraud::seeds::seed_lists();
    for isp in ISPS {
        assert!(
            !lists.asn_blocklist.contains_key(&isp.asn),
            "{} is blocklisted",
            isp.org
        );
    }
    for carrier in CARRIERS {
        assert!(
            !lists.asn_blocklist.contains_key(&carrier.asn),
            "{} is blocklisted",
            carrier.org
        );
    }

    let mut book = PhoneBook::default();
    // FRAUD_SCENARIO_SEED=<n> replays another draw of the same model (to explore robustness).
    let seed = std::env::var("FRAUD_SCENARIO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let traffic = generate(seed, &mut book);
    let generation = started.elapsed();
    let replay_started = Instant::now();
    let out = Replay::run(&traffic, settings.clone(), lists.clone(), ttl, sweep);
    let elapsed = replay_started.elapsed();

    // Deterministic: the same seed gives the same traffic, and the same traffic the same decisions.
    let again = generate(seed, &mut book);
    assert!(again.sessions == traffic.sessions && again.attacks == traffic.attacks);
    let second = Replay::run(&again, settings, lists, ttl, sweep);
    assert_eq!(second, out, "the replay is deterministic");

    let mut pumping = PopStats::default();
    for pop in [Pop::PumpLocal, Pop::PumpForeign, Pop::PumpIrsf] {
        pumping.add(&out.stats[&pop]);
    }
    let mut pump_6281 = PopStats::default();
    for pop in [Pop::PumpLocal, Pop::PumpForeign] {
        pump_6281.add(&out.stats[&pop]);
    }
    println!("{}", report(&out, &pumping, elapsed, generation));

    let legit = &out.stats[&Pop::Legit];
    let bombing = &out.stats[&Pop::Bombing];
    let irsf = &out.stats[&Pop::PumpIrsf];
    let local = &out.stats[&Pop::PumpLocal];

    // The volumes the model promises.
    assert!(
        (10_000..=14_000).contains(&legit.total),
        "legit requests {}",
        legit.total
    );
    assert!(
        pump_6281.total >= 2_000 && irsf.total == IRSF_NUMBERS && bombing.total == BOMB_REQUESTS
    );
    let verified = f64::from(out.legit_verified) / f64::from(out.legit_codes);
    assert!(
        (0.82..=0.90).contains(&verified),
        "legit codes verified {verified}"
    );

    // The targets of issue 4.
    assert!(
        pumping.share_stopped() >= 0.99,
        "pumping stopped {}",
        pct(pumping.share_stopped())
    );
    assert!(
        pump_6281.share_stopped() >= 0.99,
        "+6281 pumping stopped {}",
        pct(pump_6281.share_stopped())
    );
    assert!(
        bombing.share_stopped() >= 0.99,
        "bombing stopped {}",
        pct(bombing.share_stopped())
    );
    assert!(
        legit.share_stopped() <= 0.005,
        "legit wrongly stopped {}",
        pct(legit.share_stopped())
    );

    // Stopped by the intended rules.
    // +881 is a seeded IRSF prefix: every request scores it.
    assert_eq!(irsf.rule("irsf_prefix"), irsf.total);
    assert_eq!(irsf.shadow_banned, irsf.total);
    // The +6281 range is on no list, and most of its servers look local: only the prefix breaker
    // (send spike, verifications collapsing) sees it. It trips within minutes and then carries the
    // run; every pumping request came from a blocklisted network.
    let tripped = out
        .breaker_tripped_after
        .expect("the prefix breaker never tripped");
    assert!(
        tripped <= 5 * MIN,
        "breaker tripped {}s into the run",
        tripped / SEC
    );
    assert_eq!(pump_6281.rule("asn_blocklist"), pump_6281.total);
    let breaker = local.rule("prefix_breaker");
    assert!(
        f64::from(breaker) >= 0.95 * f64::from(local.total),
        "prefix_breaker fired on {breaker} of {} local-server pumping requests",
        local.total
    );
    let foreign = &out.stats[&Pop::PumpForeign];
    assert_eq!(foreign.rule("geo_mismatch"), foreign.total);
    // Bombing is stopped by the per-phone limits: at most the hourly limit gets through the hour.
    assert!(bombing.allowed + bombing.shadow_banned <= 5, "{bombing:?}");
    assert_eq!(bombing.rule("phone_rate_limit"), bombing.rate_limited);
    // Legitimate traffic never touches a list rule, and the breaker never trips on it alone: it
    // fires for legitimate users only on the pumped prefix. (Not guaranteed for every seed: while
    // its baseline is young the breaker's spike test is nearly void, and a prefix carrying ~20
    // legitimate sends per window can trip on a dip in verifications; seed 10 trips +4917.)
    for rule in [
        "asn_blocklist",
        "irsf_prefix",
        "irsf_number_type",
        "non_public_ip",
    ] {
        assert_eq!(legit.rule(rule), 0, "{rule} fired on legitimate traffic");
    }
    assert!(
        out.legit_breaker_prefixes.keys().all(|p| p == "+6281"),
        "breaker tripped on legitimate prefixes alone: {:?}",
        out.legit_breaker_prefixes
    );
    // The hot CGNAT subnet does cross the hourly subnet limit, and that bans no one.
    assert!(
        legit.rule("subnet_velocity_hour") > 0,
        "no legitimate subnet crossed the hourly limit"
    );
    assert!(
        legit
            .stopped_by
            .keys()
            .all(|k| !k.contains("subnet_velocity")),
        "{:?}",
        legit.stopped_by
    );

    // Memory: bounded during the run (checked at every prune), nothing left two weeks later.
    assert!(
        out.peak.phones > 0 && out.peak.phones < 5_000,
        "{:?}",
        out.peak
    );
    assert_eq!(
        out.final_stats,
        FraudStats::default(),
        "state left after two weeks"
    );

    // Speed: one replay (about 15 000 decisions and 12 000 feedbacks) takes a few hundred ms even
    // in a debug build; the whole test (mostly libphonenumber validating 10 000 numbers, whose
    // regexes are slow to compile unoptimised) under a second in release and a few in debug. The
    // bounds leave room for slow machines.
    let (replay_budget, test_budget) = if cfg!(debug_assertions) {
        (5, 30)
    } else {
        (2, 5)
    };
    assert!(
        elapsed < Duration::from_secs(replay_budget),
        "replay took {elapsed:?}"
    );
    let total = started.elapsed();
    assert!(
        total < Duration::from_secs(test_budget),
        "test took {total:?}"
    );
}
