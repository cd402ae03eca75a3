//! Cost of the fraud engine (issue 4 point 10: aim `FraudEngine::evaluate` under 50 µs at p99).
//!
//! Everything measured runs on one thread (the SQLite save on the gateway's writer thread), in this
//! process, with the release profile:
//!
//! 1. **`evaluate` alone**, per state size S (`BENCH_KEYS`, default 10k / 100k / 500k): a fresh
//!    engine with the default settings and the seeded lists (ASN blocklist, IRSF prefixes) plus a
//!    small whitelist is warmed with one simulated hour of traffic at S requests per hour, which
//!    leaves about 0.9 S phones tracked (the per-phone window is one hour), 0.8 S subnets and
//!    0.65 S IPs with learned trust. Then the next simulated hour, S more requests, is measured: each
//!    `evaluate` call is timed with `Instant`, feedback (verified / rejected / expired) is applied as
//!    it falls due and timed apart, and `prune_shard` runs one shard every 60/32 simulated seconds
//!    as on the actor (each step is timed: evaluations wait behind it). Sizes
//!    under `BENCH_SAMPLES` (default 100,000) requests repeat warm-up and measurement with fresh
//!    engines and other seeds until that many samples are taken, so the state stays at its size.
//!    The stream mixes many destinations (NANP, European, Indian, Brazilian, Nigerian numbers, 2%
//!    IRSF prefixes, 1% premium rate), repeats (10% retry a recent phone, 15% come from a recent
//!    IP), IPv4 and IPv6, requests without an IP and from private IPs, 5% blocklisted ASNs, 8% IP
//!    country ≠ destination country, and whitelisted phones and networks.
//! 2. **Around `evaluate`**: what the dispatcher does with each decision (`admission::record`, the
//!    JSON details stored with the request), `prune` with cap eviction, and the snapshot saved every
//!    10 s (`snapshot_shard` part by part as the gateway takes it, the slowest part being how long
//!    evaluations can wait behind it; `serde_json` serialisation and its size, the write through the gateway's
//!    database writer into a SQLite file in `BENCH_DIR`, and the parse and restore at start).
//!    Evaluations over the 50 µs aim are split by `/proc/thread-self/schedstat` into those whose
//!    thread was preempted and those that spent the time working (a hash map growing its table).
//! 3. **The actor round trip**: a `FraudActor` restored from the largest state, with the MaxMind
//!    lookup over the test databases in `tests/fixtures/mmdb/`, asked with `send(Evaluate)` from
//!    tasks on the same actix thread (as the dispatcher is in the gateway): one request in flight,
//!    then 64. The lookup alone is timed too.
//!
//! Simulated time ends at the real clock's "now", so the actor, which prunes with the real clock
//! when it restores a snapshot, keeps the state.
//!
//! Run: `cargo bench --bench fraud_eval` (env: `BENCH_KEYS="10000,100000,500000"`,
//! `BENCH_SAMPLES=100000`, `BENCH_ACTOR_REQUESTS=50000`, `BENCH_SEED=1`, `BENCH_DIR` for the
//! temporary database). About 30 s and 0.5 GiB of memory.

mod common;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use actix::Actor as _;
use anyhow::Context as _;

use actors::fraud::actor::{Evaluate, FraudActor};
use actors::fraud::admission;
use actors::fraud::engine::{
    Feedback, FeedbackOutcome, FraudEngine, FraudLists, FraudSettings, FraudSnapshot, FraudStats,
    SNAPSHOT_PARTS,
};
use actors::fraud::state::ip_scope;
use actors::fraud::{Decision, FraudInput, IpInfo, IpLookup, NumberKind, Verdict};
use actors::ipnet::IpNet;
use actors::Channel;
use common::{env_or, status_kib};
use otp_gateway::db::DbStore;
use otp_gateway::fraud::MaxMindLookup;

const HOUR_MS: i64 = 3_600_000;
/// How often the actor prunes every shard once (`actors::fraud::actor::PRUNE_INTERVAL`); it
/// takes one shard per step.
const PRUNE_EVERY_MS: i64 = 60_000;
/// Requests in flight in the second actor measurement.
const ACTOR_CONCURRENCY: usize = 64;
/// The aim for one evaluation (p99); slower ones are looked at.
const SLOW_NS: u64 = 50_000;

/// Destinations: country code, ISO country, national digits, share in ‰ (the remaining 20‰ are
/// IRSF prefixes).
const DESTINATIONS: &[(&str, &str, usize, u64)] = &[
    ("1", "US", 10, 340),
    ("44", "GB", 10, 150),
    ("49", "DE", 11, 100),
    ("33", "FR", 9, 100),
    ("91", "IN", 10, 100),
    ("55", "BR", 11, 100),
    ("234", "NG", 10, 90),
];
/// Countries an IP may be in when it is not in the destination's country.
const OTHER_COUNTRIES: &[&str] = &["US", "GB", "DE", "NL", "RU", "CN", "VN", "SG"];
/// Whitelisted networks (0.5% of requests come from them).
const WHITELIST_NETS: &[&str] = &[
    "198.51.100.0/24",
    "192.0.2.0/24",
    "203.0.113.0/26",
    "2001:db8:aaaa::/48",
    "2001:db8:bbbb::/48",
];

/// splitmix64: deterministic and good enough for traffic shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(usize::try_from(self.below(items.len() as u64)).unwrap_or(0))
    }

    fn digits(&mut self, out: &mut String, n: usize) {
        for i in 0..n {
            // No leading 0 or 1 in a national number.
            let d = if i == 0 {
                2 + self.below(8)
            } else {
                self.below(10)
            };
            out.push(char::from(b'0' + d as u8));
        }
    }
}

/// A destination as the dispatcher knows it.
#[derive(Clone)]
struct Destination {
    phone: String,
    country: Option<String>,
    kind: NumberKind,
}

/// A feedback waiting for its moment.
struct Pending {
    due_ms: i64,
    phone: String,
    ip: Option<IpAddr>,
    outcome: FeedbackOutcome,
}

/// The request stream (see the module docs for its shape).
struct Traffic {
    rng: Rng,
    recent_phones: Vec<Destination>,
    /// Where the next destination goes in `recent_phones`.
    phone_slot: u64,
    recent_ips: Vec<IpAddr>,
    whitelisted_phones: Vec<String>,
    whitelist_nets: Vec<IpNet>,
    blocklisted: Vec<(u32, String)>,
    irsf: Vec<String>,
    feedback: BinaryHeap<Reverse<(i64, u64)>>,
    pending: HashMap<u64, Pending>,
    next_pending: u64,
}

impl Traffic {
    fn new(seed: u64, lists: &FraudLists) -> Traffic {
        let mut whitelisted_phones: Vec<String> = lists.whitelist_phones.iter().cloned().collect();
        whitelisted_phones.sort();
        let mut blocklisted: Vec<(u32, String)> = lists
            .asn_blocklist
            .iter()
            .map(|(asn, e)| (*asn, e.org.clone()))
            .collect();
        blocklisted.sort();
        Traffic {
            rng: Rng(seed),
            recent_phones: Vec::new(),
            phone_slot: 0,
            recent_ips: Vec::new(),
            whitelisted_phones,
            whitelist_nets: lists.whitelist_nets.clone(),
            blocklisted,
            irsf: lists
                .irsf_prefixes
                .iter()
                .map(|p| p.digits.clone())
                .collect(),
            feedback: BinaryHeap::new(),
            pending: HashMap::new(),
            next_pending: 0,
        }
    }

    /// Remembers `item` in a ring of recent values (for repeats).
    fn remember<T>(ring: &mut Vec<T>, item: T, slot: u64) {
        const RING: usize = 4096;
        if ring.len() < RING {
            ring.push(item);
        } else if let Some(old) = ring.get_mut(usize::try_from(slot).unwrap_or(0) % RING) {
            *old = item;
        }
    }

    fn destination(&mut self) -> Destination {
        let rng = &mut self.rng;
        if rng.chance(10) {
            if let Some(phone) = rng.pick(&self.whitelisted_phones) {
                return Destination {
                    phone: phone.clone(),
                    country: Some("US".into()),
                    kind: NumberKind::Mobile,
                };
            }
        }
        // Retries: 5% resend to one of the last few destinations (a user pressing "send again"),
        // 5% to one seen earlier.
        if rng.chance(100) {
            let n = self.recent_phones.len() as u64;
            let back = if rng.chance(500) {
                rng.below(8)
            } else {
                rng.below(n)
            };
            let slot = (self.phone_slot + n).saturating_sub(back + 1) % n.max(1);
            if let Some(d) = self.recent_phones.get(usize::try_from(slot).unwrap_or(0)) {
                return d.clone();
            }
        }
        let mut roll = rng.below(1000);
        let mut phone = String::with_capacity(16);
        phone.push('+');
        for (cc, country, national, share) in DESTINATIONS {
            if roll < *share {
                phone.push_str(cc);
                rng.digits(&mut phone, *national);
                let kind = match rng.below(100) {
                    0 => NumberKind::PremiumRate,
                    1..=70 => NumberKind::Mobile,
                    _ => NumberKind::FixedLineOrMobile,
                };
                let d = Destination {
                    phone,
                    country: Some((*country).to_owned()),
                    kind,
                };
                Self::remember(&mut self.recent_phones, d.clone(), self.phone_slot);
                self.phone_slot += 1;
                return d;
            }
            roll -= share;
        }
        // IRSF: a listed prefix, padded to 12 digits; libphonenumber knows neither country nor type.
        let prefix = rng
            .pick(&self.irsf)
            .cloned()
            .unwrap_or_else(|| "882".into());
        phone.push_str(&prefix);
        rng.digits(&mut phone, 12usize.saturating_sub(prefix.len()));
        Destination {
            phone,
            country: None,
            kind: NumberKind::Unknown,
        }
    }

    fn ip(&mut self) -> Option<IpAddr> {
        let rng = &mut self.rng;
        match rng.below(1000) {
            0..=29 => return None,
            30..=39 => return Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, rng.below(250) as u8))),
            40..=44 => {
                if let Some(net) = rng.pick(&self.whitelist_nets) {
                    return Some(net.addr());
                }
            }
            45..=194 => {
                if let Some(ip) = rng.pick(&self.recent_ips) {
                    return Some(*ip);
                }
            }
            _ => {}
        }
        let ip = if rng.chance(220) {
            let s = |r: &mut Rng| r.below(0x1_0000) as u16;
            // Global unicast 2000::/3, a random /64 (about one per household).
            let first = 0x2000 | (rng.below(0x2000) as u16);
            let segs = [
                first,
                s(rng),
                s(rng),
                s(rng),
                s(rng),
                s(rng),
                s(rng),
                s(rng),
            ];
            IpAddr::V6(Ipv6Addr::from(segs))
        } else {
            loop {
                let ip = IpAddr::V4(Ipv4Addr::from(rng.next() as u32));
                if ip_scope(ip).is_public() {
                    break ip;
                }
            }
        };
        let slot = rng.next();
        Self::remember(&mut self.recent_ips, ip, slot);
        Some(ip)
    }

    /// What the IP databases would say (the engine is given it; the lookup is timed apart).
    fn ip_info(&mut self, ip: Option<IpAddr>, dest: &Destination) -> IpInfo {
        let Some(ip) = ip.filter(|ip| ip_scope(*ip).is_public()) else {
            return IpInfo::default();
        };
        let rng = &mut self.rng;
        let (asn, org) = match rng.pick(&self.blocklisted).filter(|_| rng.chance(50)) {
            Some((asn, org)) => (*asn, org.clone()),
            None => {
                let asn = 1_000 + (ip_hash(ip) % 60_000) as u32;
                (asn, format!("Example Access Network {asn}"))
            }
        };
        let country = match &dest.country {
            Some(c) if !rng.chance(80) => Some(c.clone()),
            _ => rng.pick(OTHER_COUNTRIES).map(|c| (*c).to_owned()),
        };
        IpInfo {
            asn: Some(asn),
            asn_org: Some(org),
            country,
        }
    }

    /// The next request at `now_ms`, and what the lookup says about its IP.
    fn request(&mut self, now_ms: i64) -> (FraudInput, IpInfo) {
        let dest = self.destination();
        let ip = self.ip();
        let info = self.ip_info(ip, &dest);
        let input = FraudInput {
            phone: dest.phone,
            phone_country: dest.country,
            number_kind: dest.kind,
            ip,
            channel: Channel::Sms,
            now_ms,
        };
        (input, info)
    }

    /// Schedules the outcome of an accepted request (85% of them get one).
    fn schedule_feedback(&mut self, input: &FraudInput, decision: &Decision) {
        let delivered = decision.verdict == Verdict::Allow && !decision.whitelisted;
        if !delivered || !self.rng.chance(850) {
            return;
        }
        let (outcome, delay_ms) = match self.rng.below(100) {
            0..=74 => (FeedbackOutcome::Verified, 20_000 + self.rng.below(100_000)),
            75..=79 => (FeedbackOutcome::Rejected, 10_000 + self.rng.below(50_000)),
            _ => (FeedbackOutcome::ExpiredUnverified, 300_000),
        };
        let id = self.next_pending;
        self.next_pending += 1;
        let due_ms = input.now_ms + delay_ms as i64;
        self.feedback.push(Reverse((due_ms, id)));
        self.pending.insert(
            id,
            Pending {
                due_ms,
                phone: input.phone.clone(),
                ip: input.ip,
                outcome,
            },
        );
    }

    /// The next feedback due at `now_ms`, if any.
    fn due_feedback(&mut self, now_ms: i64) -> Option<Feedback> {
        let Reverse((due, id)) = *self.feedback.peek()?;
        if due > now_ms {
            return None;
        }
        self.feedback.pop();
        let p = self.pending.remove(&id)?;
        Some(Feedback {
            phone: p.phone,
            ip: p.ip,
            outcome: p.outcome,
            now_ms: p.due_ms,
        })
    }
}

fn ip_hash(ip: IpAddr) -> u64 {
    let bits = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let mut r = Rng((bits as u64) ^ ((bits >> 64) as u64));
    r.next()
}

/// The seeded lists, plus 100 whitelisted phones and a few whitelisted networks.
fn lists() -> anyhow::Result<FraudLists> {
    let mut rng = Rng(0x5eed);
    let whitelist_phones: HashSet<String> = (0..100)
        .map(|_| {
            let mut p = String::from("+1");
            rng.digits(&mut p, 10);
            p
        })
        .collect();
    let whitelist_nets = WHITELIST_NETS
        .iter()
        .map(|n| {
            n.parse::<IpNet>()
                .map_err(|_| anyhow::anyhow!("bad network {n}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(FraudLists {
        whitelist_phones,
        whitelist_nets,
        ..otp_gateway::fraud::seeds::seed_lists()
    })
}

/// One line of the summary table.
struct Row {
    size: usize,
    eval: Summary,
    prune_max_ns: u64,
    evict_ns: u64,
    part_max_ns: u64,
    snap_json_ns: u64,
    save_ns: u64,
    json_bytes: usize,
}

/// Percentiles of durations in ns.
struct Summary {
    n: usize,
    mean: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl Summary {
    fn of(mut ns: Vec<u64>) -> Summary {
        ns.sort_unstable();
        let at = |p: f64| {
            let idx = ((ns.len().saturating_sub(1)) as f64 * p).round() as usize;
            ns.get(idx).copied().unwrap_or(0)
        };
        Summary {
            n: ns.len(),
            mean: ns.iter().sum::<u64>() as f64 / ns.len().max(1) as f64,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn elapsed_ns(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn keys(s: FraudStats) -> String {
    format!(
        "phones {} subnets {} ips {} prefixes {}",
        s.phones, s.subnets, s.ips, s.prefixes
    )
}

/// What one measured hour (or several, for small sizes) produced.
#[derive(Default)]
struct Run {
    eval_ns: Vec<u64>,
    feedback_ns: Vec<u64>,
    record_ns: Vec<u64>,
    prune_ns: Vec<u64>,
    /// allow, rate limited, shadow ban, whitelisted.
    verdicts: [u64; 4],
    /// Sum of the rules that fired.
    hits: u64,
    /// Evaluations above the 50 µs aim: elapsed ns, the part not spent waiting on a run queue, and
    /// the key counts after them.
    slow: Vec<(u64, u64, FraudStats)>,
    wall_ns: u64,
    before: FraudStats,
    after: FraudStats,
}

/// Steps the engine through one simulated hour of `per_hour` requests ending at `end_ms`,
/// measuring into `run` when given.
fn hour(
    engine: &mut FraudEngine,
    traffic: &mut Traffic,
    per_hour: usize,
    end_ms: i64,
    mut run: Option<&mut Run>,
) {
    let mut sched = run.as_ref().and_then(|_| SchedStat::open());
    let start_ms = end_ms - HOUR_MS;
    let prune_step_ms = PRUNE_EVERY_MS / SNAPSHOT_PARTS as i64;
    let mut next_prune = start_ms + prune_step_ms;
    let mut prune_shard = 0;
    let wall = Instant::now();
    for i in 0..per_hour {
        let now = start_ms + (i as i64 * HOUR_MS) / per_hour.max(1) as i64;
        while let Some(fb) = traffic.due_feedback(now) {
            let t = Instant::now();
            engine.feedback(fb);
            let d = elapsed_ns(t);
            if let Some(run) = run.as_deref_mut() {
                run.feedback_ns.push(d);
            }
        }
        if now >= next_prune {
            let t = Instant::now();
            engine.prune_shard(prune_shard, now);
            let d = elapsed_ns(t);
            if let Some(run) = run.as_deref_mut() {
                run.prune_ns.push(d);
            }
            prune_shard = (prune_shard + 1) % SNAPSHOT_PARTS;
            next_prune += prune_step_ms;
        }
        let (input, info) = traffic.request(now);
        let waited_before = sched.as_mut().map_or(0, SchedStat::wait_ns);
        let t = Instant::now();
        let decision = engine.evaluate(&input, &info);
        let d = elapsed_ns(t);
        if let Some(run) = run.as_deref_mut() {
            run.eval_ns.push(d);
            if d > SLOW_NS {
                let waited = sched
                    .as_mut()
                    .map_or(0, SchedStat::wait_ns)
                    .saturating_sub(waited_before);
                run.slow.push((d, d.saturating_sub(waited), engine.stats()));
            }
            let t = Instant::now();
            let record = admission::record(&decision, input.channel);
            run.record_ns.push(elapsed_ns(t));
            drop(record);
            let slot = match (&decision.verdict, decision.whitelisted) {
                (_, true) => 3,
                (Verdict::Allow, _) => 0,
                (Verdict::RateLimited { .. }, _) => 1,
                _ => 2,
            };
            if let Some(v) = run.verdicts.get_mut(slot) {
                *v += 1;
            }
            run.hits += decision.hits.len() as u64;
        }
        traffic.schedule_feedback(&input, &decision);
    }
    if let Some(run) = run {
        run.wall_ns += elapsed_ns(wall);
    }
}

/// How long this thread has waited on a run queue, from `/proc/thread-self/schedstat` (ns on the
/// CPU, ns waiting to run, time slices; the wait is added when the thread gets the CPU back), to
/// tell an evaluation that was slow on the CPU from one whose thread was preempted. A read costs a
/// system call, made outside the timed span. Hypervisor steal and page faults count as on the CPU.
struct SchedStat {
    file: std::fs::File,
    buf: String,
}

impl SchedStat {
    fn open() -> Option<SchedStat> {
        let file = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
        Some(SchedStat {
            file,
            buf: String::with_capacity(64),
        })
    }

    fn wait_ns(&mut self) -> u64 {
        use std::io::{Read as _, Seek as _};
        self.buf.clear();
        if self.file.rewind().is_err() || self.file.read_to_string(&mut self.buf).is_err() {
            return 0;
        }
        self.buf
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Snapshot, serialisation and restore of an engine's state at `now`.
struct SnapshotCost {
    /// All parts together.
    snapshot_ns: u64,
    /// The slowest part: the longest the actor is busy with the snapshot at a time.
    part_max_ns: u64,
    json_ns: u64,
    json_bytes: usize,
    /// Two saves through the database writer (the first inserts the row, the second replaces it).
    save_ns: [u64; 2],
    parse_ns: u64,
    restore_ns: u64,
    snapshot: FraudSnapshot,
}

fn snapshot_cost(
    engine: &FraudEngine,
    now: i64,
    settings: &FraudSettings,
    lists: &FraudLists,
    db: &Db,
) -> anyhow::Result<SnapshotCost> {
    let mut snapshot = FraudSnapshot::default();
    let (mut snapshot_ns, mut part_max_ns) = (0, 0);
    for part in 0..SNAPSHOT_PARTS {
        let t = Instant::now();
        let taken = engine.snapshot_shard(part, now);
        let d = elapsed_ns(t);
        snapshot.absorb(taken);
        snapshot_ns += d;
        part_max_ns = part_max_ns.max(d);
    }
    let t = Instant::now();
    let json = serde_json::to_string(&snapshot)?;
    let json_ns = elapsed_ns(t);
    let mut save_ns = [0; 2];
    for slot in &mut save_ns {
        let t = Instant::now();
        db.runner
            .block_on(db.store.save_fraud_state(json.clone(), now))?;
        *slot = elapsed_ns(t);
    }
    let t = Instant::now();
    let parsed: FraudSnapshot = serde_json::from_str(&json)?;
    let parse_ns = elapsed_ns(t);
    let t = Instant::now();
    let mut restored = FraudEngine::new(settings.clone(), lists.clone());
    restored.restore(parsed);
    let restore_ns = elapsed_ns(t);
    Ok(SnapshotCost {
        snapshot_ns,
        part_max_ns,
        json_ns,
        json_bytes: json.len(),
        save_ns,
        parse_ns,
        restore_ns,
        snapshot,
    })
}

/// A gateway database (file, WAL, its writer and checkpoint threads) in a temporary directory,
/// and the actix system its futures and the actor run on.
struct Db {
    runner: actix_rt::SystemRunner,
    store: DbStore,
    _dir: tempfile::TempDir,
}

impl Db {
    fn open() -> anyhow::Result<Db> {
        let dir = match std::env::var("BENCH_DIR") {
            Ok(d) => tempfile::tempdir_in(d)?,
            Err(_) => tempfile::tempdir()?,
        };
        let path = dir.path().join("bench.db");
        let runner = actix_rt::System::new();
        let (writer, pool) = otp_gateway::db::open(&path)?;
        let store = DbStore::new(writer, pool, &path)?;
        Ok(Db {
            runner,
            store,
            _dir: dir,
        })
    }
}

/// `prune` of a restored state whose largest map is 10% over the cap.
fn eviction_ns(snapshot: &FraudSnapshot, now: i64, lists: &FraudLists) -> (u64, usize) {
    let mut probe = FraudEngine::new(FraudSettings::default(), lists.clone());
    probe.restore(snapshot.clone());
    let s = probe.stats();
    let largest = s.phones.max(s.subnets).max(s.ips);
    let cap = largest * 10 / 11;
    let settings = FraudSettings {
        max_tracked_keys: cap.max(1),
        ..FraudSettings::default()
    };
    let mut engine = FraudEngine::new(settings, lists.clone());
    engine.restore(snapshot.clone());
    let t = Instant::now();
    engine.prune(now);
    (elapsed_ns(t), largest - cap)
}

fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::var("BENCH_KEYS")
        .unwrap_or_else(|_| "10000,100000,500000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&s| s > 0)
        .collect();
    let min_samples: usize = env_or("BENCH_SAMPLES", 100_000);
    let actor_requests: usize = env_or("BENCH_ACTOR_REQUESTS", 50_000);
    let seed: u64 = env_or("BENCH_SEED", 1);
    let lists = lists()?;
    let settings = FraudSettings::default();
    let db = Db::open()?;

    let timer = {
        let mut v = Vec::with_capacity(100_000);
        for _ in 0..100_000 {
            let t = Instant::now();
            v.push(elapsed_ns(t));
        }
        Summary::of(v)
    };
    println!(
        "fraud_eval: {} cores, default settings ({}/min {}/h per phone, cap {} keys per map), \
         {} blocklisted ASNs, {} IRSF prefixes, {} whitelisted phones, {} networks; \
         timer overhead p50 {} ns (included in every sample)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        settings.rate_limit_minute,
        settings.rate_limit_hour,
        settings.max_tracked_keys,
        lists.asn_blocklist.len(),
        lists.irsf_prefixes.len(),
        lists.whitelist_phones.len(),
        lists.whitelist_nets.len(),
        timer.p50,
    );

    let now = actors::clock::now_ms();
    let mut results = Vec::new();
    let mut largest: Option<FraudSnapshot> = None;
    for &size in &sizes {
        let passes = min_samples.div_ceil(size).max(1);
        let mut run = Run::default();
        let mut rss = 0;
        let mut last = None;
        for pass in 0..passes {
            let mut engine = FraudEngine::new(settings.clone(), lists.clone());
            let mut traffic = Traffic::new(seed.wrapping_mul(1_000_003) + pass as u64, &lists);
            // The warm-up hour, then the measured one ending now.
            hour(&mut engine, &mut traffic, size, now - HOUR_MS, None);
            let before = engine.stats();
            hour(&mut engine, &mut traffic, size, now, Some(&mut run));
            if pass == 0 {
                run.before = before;
                run.after = engine.stats();
                rss = status_kib("VmRSS:") / 1024;
            }
            if pass + 1 == passes {
                last = Some(engine);
            }
        }
        let Some(engine) = last else { continue };
        let snap = snapshot_cost(&engine, now, &settings, &lists, &db)?;
        let (evict_ns, evicted) = eviction_ns(&snap.snapshot, now, &lists);
        drop(engine);
        let eval = Summary::of(std::mem::take(&mut run.eval_ns));
        let fb = Summary::of(std::mem::take(&mut run.feedback_ns));
        let record = Summary::of(std::mem::take(&mut run.record_ns));
        let prune = Summary::of(std::mem::take(&mut run.prune_ns));
        let total: u64 = run.verdicts.iter().sum();
        let pct = |n: u64| n as f64 * 100.0 / total.max(1) as f64;
        println!();
        println!(
            "S = {size} requests/hour: {passes} pass(es), {} evaluations, {} feedbacks",
            eval.n, fb.n
        );
        println!("  keys before the measured hour: {}", keys(run.before));
        println!("  keys after it:                 {}", keys(run.after));
        println!(
            "  verdicts: allow {:.1}%, rate limited {:.1}%, shadow ban {:.1}%, whitelisted {:.1}%; \
             {:.2} rules fired per request",
            pct(run.verdicts[0]),
            pct(run.verdicts[1]),
            pct(run.verdicts[2]),
            pct(run.verdicts[3]),
            run.hits as f64 / total.max(1) as f64,
        );
        println!(
            "  evaluate            p50 {:>6.2} µs  p99 {:>6.2} µs  p99.9 {:>7.2} µs  max {:>8.1} µs  mean {:>6.2} µs",
            us(eval.p50),
            us(eval.p99),
            us(eval.p999),
            us(eval.max),
            eval.mean / 1000.0
        );
        println!(
            "  feedback            p50 {:>6.2} µs  p99 {:>6.2} µs  p99.9 {:>7.2} µs  max {:>8.1} µs",
            us(fb.p50),
            us(fb.p99),
            us(fb.p999),
            us(fb.max)
        );
        println!(
            "  admission::record   p50 {:>6.2} µs  p99 {:>6.2} µs  p99.9 {:>7.2} µs  max {:>8.1} µs",
            us(record.p50),
            us(record.p99),
            us(record.p999),
            us(record.max)
        );
        let on_cpu: Vec<&(u64, u64, FraudStats)> = run
            .slow
            .iter()
            .filter(|(_, cpu, _)| *cpu > SLOW_NS)
            .collect();
        let worst = on_cpu.iter().max_by_key(|(_, cpu, _)| *cpu);
        println!(
            "  evaluations over 50 µs: {} ({:.3}%); {} of them over 50 µs without the time preempted{}",
            run.slow.len(),
            pct(run.slow.len() as u64),
            on_cpu.len(),
            worst.map_or(String::new(), |(d, cpu, s)| format!(
                " (worst {:.2} ms of {:.2} ms, keys after it: {})",
                ms(*cpu),
                ms(*d),
                keys(*s)
            ))
        );
        let wall_s = run.wall_ns as f64 / 1e9;
        println!(
            "  throughput: {:.0} evaluations/s of evaluate time alone (1/mean), {:.0} requests/s for \
             the whole loop (feedback, prune, record and the traffic generator included)",
            1e9 / eval.mean.max(1.0),
            eval.n as f64 / wall_s.max(1e-9)
        );
        println!(
            "  prune steps (one shard of {SNAPSHOT_PARTS}, every {:.2} s): {} runs, p50 {:.2} ms, max {:.2} ms; \
             whole state with eviction ({} keys over the cap): {:.2} ms",
            PRUNE_EVERY_MS as f64 / SNAPSHOT_PARTS as f64 / 1000.0,
            prune.n,
            ms(prune.p50),
            ms(prune.max),
            evicted,
            ms(evict_ns)
        );
        println!(
            "  snapshot {:.1} ms in {SNAPSHOT_PARTS} parts (slowest {:.2} ms) + serde_json {:.1} ms = {:.1} MiB JSON, \
             saved to SQLite in {:.1} / {:.1} ms (insert / replace); at start: parse {:.1} ms + restore {:.1} ms; VmRSS {} MiB",
            ms(snap.snapshot_ns),
            ms(snap.part_max_ns),
            ms(snap.json_ns),
            snap.json_bytes as f64 / (1024.0 * 1024.0),
            ms(snap.save_ns[0]),
            ms(snap.save_ns[1]),
            ms(snap.parse_ns),
            ms(snap.restore_ns),
            rss
        );
        results.push(Row {
            size,
            eval,
            prune_max_ns: prune.max,
            evict_ns,
            part_max_ns: snap.part_max_ns,
            snap_json_ns: snap.snapshot_ns + snap.json_ns,
            save_ns: snap.save_ns[1],
            json_bytes: snap.json_bytes,
        });
        largest = Some(snap.snapshot);
    }

    println!();
    println!(
        "{:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>13} {:>8} {:>9}",
        "S",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "eval/s",
        "step ms",
        "evict ms",
        "part ms",
        "snap+json ms",
        "save ms",
        "JSON MiB"
    );
    for r in &results {
        println!(
            "{:>8} {:>8.2} {:>8.2} {:>9.2} {:>9.1} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>13.1} {:>8.1} {:>9.1}",
            r.size,
            us(r.eval.p50),
            us(r.eval.p99),
            us(r.eval.p999),
            us(r.eval.max),
            1e9 / r.eval.mean.max(1.0),
            ms(r.prune_max_ns),
            ms(r.evict_ns),
            ms(r.part_max_ns),
            ms(r.snap_json_ns),
            ms(r.save_ns),
            r.json_bytes as f64 / (1024.0 * 1024.0)
        );
    }

    if actor_requests > 0 {
        actor_round_trip(
            &db,
            largest.unwrap_or_default(),
            &lists,
            actor_requests,
            seed,
        )?;
    }
    Ok(())
}

/// The actor round trip: `send(Evaluate)` from tasks on the actor's own thread, as the dispatcher.
fn actor_round_trip(
    db: &Db,
    snapshot: FraudSnapshot,
    lists: &FraudLists,
    requests: usize,
    seed: u64,
) -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mmdb");
    let lookup = Arc::new(MaxMindLookup::open(
        dir.join("GeoLite2-ASN-Test.mmdb"),
        dir.join("GeoLite2-Country-Test.mmdb"),
    ));
    anyhow::ensure!(
        lookup.asn_loaded() && lookup.country_loaded(),
        "test databases not found in {}",
        dir.display()
    );
    let mut traffic = Traffic::new(seed ^ 0xac70, lists);
    let ips: Vec<IpAddr> = (0..100_000).filter_map(|_| traffic.ip()).collect();
    let mut lookup_ns = Vec::with_capacity(ips.len());
    for ip in &ips {
        let t = Instant::now();
        let info = lookup.lookup(*ip);
        lookup_ns.push(elapsed_ns(t));
        drop(info);
    }
    let lk = Summary::of(lookup_ns);
    println!();
    println!(
        "MaxMind lookup (ASN + country, test databases): p50 {:.2} µs  p99 {:.2} µs  max {:.1} µs",
        us(lk.p50),
        us(lk.p99),
        us(lk.max)
    );

    let keys_restored = {
        let mut probe = FraudEngine::new(FraudSettings::default(), lists.clone());
        probe.restore(snapshot.clone());
        probe.stats()
    };
    let (lists, traffic_lists) = (lists.clone(), lists.clone());
    db.runner.block_on(async move {
        let actor = FraudActor::new(
            FraudSettings::default(),
            lists,
            lookup as Arc<dyn IpLookup>,
            Some(snapshot),
        )
        .start();
        println!(
            "FraudActor round trip (send(Evaluate) from tasks on the actor's thread, state restored: {}):",
            keys(keys_restored)
        );
        for concurrency in [1, ACTOR_CONCURRENCY] {
            let per_task = requests.div_ceil(concurrency);
            let start = Instant::now();
            let mut tasks = Vec::new();
            for task in 0..concurrency {
                let actor = actor.clone();
                let mut traffic = Traffic::new(seed ^ (0xa11 + task as u64), &traffic_lists);
                tasks.push(actix_rt::spawn(async move {
                    let mut ns = Vec::with_capacity(per_task);
                    for _ in 0..per_task {
                        let (input, _) = traffic.request(actors::clock::now_ms());
                        let t = Instant::now();
                        let decision = actor.send(Evaluate(input)).await?;
                        ns.push(elapsed_ns(t));
                        drop(decision);
                    }
                    anyhow::Ok(ns)
                }));
            }
            let mut all = Vec::with_capacity(requests);
            for task in tasks {
                all.extend(task.await.context("sender task")??);
            }
            let secs = start.elapsed().as_secs_f64();
            let s = Summary::of(all);
            println!(
                "  {concurrency:>3} in flight: {:>7} requests, {:>7.0}/s  p50 {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>8.2} µs  max {:>8.1} µs",
                s.n,
                s.n as f64 / secs.max(1e-9),
                us(s.p50),
                us(s.p99),
                us(s.p999),
                us(s.max)
            );
        }
        anyhow::Ok(())
    })
}
