//! Load benchmark of `POST /dispatch` (issue: ≥ 5,000 accepted/s, p99 < 10 ms on 2 cores).
//!
//! Starts the real gateway in sandbox mode (SQLite file database, the simulated DIDWW SMS API on
//! loopback posting its callbacks back) and drives `/dispatch` over HTTP from this process:
//!
//! 1. open loop at fixed offered rates (latency measured from each request's *scheduled* send time,
//!    so a stall is charged to every request it delays: no coordinated omission);
//! 2. closed loop at saturation (N connections back to back).
//!
//! Every request carries a new phone number so nothing is rate-limited. Reports throughput, p50 /
//! p99 / max latency, the share of requests whose SMS reached `delivered`, and memory.
//!
//! `BENCH_FRAUD=on` runs the same load with the fraud engine enforcing (issue 4 point 10: aim
//! throughput within 10% of `off`, the default). Its limits are raised to the highest values
//! `FRAUD_*` accepts, so the generator's traffic is never rate-limited or flagged for subnet
//! velocity, but every request is evaluated in full: each also carries an `ip` (a new public IPv4
//! or IPv6 address per request, so the IP rules and the subnet counters run and the state grows as
//! in production). No IP database is loaded (no ASN or country facts), and no verification
//! feedback is sent, so the `+1415` prefix breaker opens after 20 sends and adds its 40 points to
//! every decision, still under the shadow-ban threshold of 50. The run ends with the verdicts
//! stored, which shows whether any request was refused or shadow-banned.
//!
//! Run: `cargo bench --bench dispatch_load` (env: BENCH_RATES="1000,2500,5000", BENCH_SECS=10,
//! BENCH_CONNECTIONS=64, BENCH_FRAUD=off).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{env_or, own_cpu, process_cpu, status_kib};
use otp_gateway::app;
use otp_gateway::config::{Config, FraudMode};

const SECRET: &str = "test-secret-0123456789";

struct Stats {
    latencies_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn report(label: &str, mut stats: Stats) {
    stats.latencies_us.sort_unstable();
    let ok = stats.latencies_us.len() as f64;
    println!(
        "{label:<28} accepted/s {:>8.0}  ok {:>7}  errors {:>5}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms",
        ok / stats.elapsed.as_secs_f64(),
        stats.latencies_us.len(),
        stats.errors,
        percentile(&stats.latencies_us, 0.50),
        percentile(&stats.latencies_us, 0.99),
        percentile(&stats.latencies_us, 1.0),
    );
}

fn phone(n: u64) -> String {
    // +1 415 2xx xxxx: valid NANP numbers, a new one per request.
    format!("+1415{:07}", 2_000_000 + (n % 7_000_000))
}

/// A public end-user IP per request (fraud on): 80% IPv4 spread over many /24s, 20% IPv6 /64s.
fn end_user_ip(n: u64) -> String {
    // splitmix64's finaliser: neighbouring n land in unrelated subnets.
    let mut h = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    if h % 5 == 0 {
        let seg = |shift: u32| (h >> shift) & 0xffff;
        format!(
            "2a02:{:x}:{:x}:{:x}::{:x}",
            seg(8),
            seg(24),
            seg(40),
            n & 0xffff
        )
    } else {
        // First octets of public unicast ranges (RIPE), none special-purpose.
        const FIRST: [u64; 8] = [5, 31, 46, 77, 85, 91, 178, 185];
        let byte = |shift: u32| (h >> shift) & 0xff;
        let first = FIRST[(byte(8) % 8) as usize];
        format!("{first}.{}.{}.{}", byte(16), byte(24), byte(32) | 1)
    }
}

fn body(n: u64, with_ip: bool) -> String {
    if with_ip {
        return format!(
            r#"{{"phone":"{}","code":"123456","channels":["sms"],"ip":"{}"}}"#,
            phone(n),
            end_user_ip(n)
        );
    }
    format!(
        r#"{{"phone":"{}","code":"123456","channels":["sms"]}}"#,
        phone(n)
    )
}

fn client(connections: usize) -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .connector(awc::Connector::new().limit(connections))
        .finish()
}

async fn one(client: &awc::Client, url: &str, n: u64, with_ip: bool) -> bool {
    match client
        .post(url)
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-API-Secret", SECRET))
        .send_body(body(n, with_ip))
        .await
    {
        Ok(mut response) => {
            let ok = response.status().as_u16() == 200;
            let _ = response.body().await;
            ok
        }
        Err(_) => false,
    }
}

/// Open loop: one request every 1/rate s for `secs`, each timed from its scheduled start.
async fn open_loop(
    url: &str,
    rate: u64,
    secs: u64,
    counter: &Arc<AtomicU64>,
    with_ip: bool,
) -> Stats {
    let client = client(2048);
    let total = rate * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..total {
        let scheduled = start + interval * u32::try_from(i).unwrap();
        let now = Instant::now();
        if scheduled > now {
            actix_rt::time::sleep(scheduled - now).await;
        }
        let client = client.clone();
        let url = url.to_owned();
        let tx = tx.clone();
        let n = counter.fetch_add(1, Ordering::Relaxed);
        actix_rt::spawn(async move {
            let ok = one(&client, &url, n, with_ip).await;
            let _ = tx.send((ok, scheduled.elapsed()));
        });
    }
    drop(tx);
    let mut stats = Stats {
        latencies_us: Vec::with_capacity(total as usize),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    while let Some((ok, latency)) = rx.recv().await {
        if ok {
            stats.latencies_us.push(latency.as_micros() as u64);
        } else {
            stats.errors += 1;
        }
    }
    stats.elapsed = start.elapsed();
    stats
}

/// Closed loop: `connections` workers sending back to back for `secs`.
async fn closed_loop(
    url: &str,
    connections: usize,
    secs: u64,
    counter: &Arc<AtomicU64>,
    with_ip: bool,
) -> Stats {
    let client = client(connections);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let client = client.clone();
        let url = url.to_owned();
        let counter = Arc::clone(counter);
        workers.push(actix_rt::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if one(&client, &url, n, with_ip).await {
                    latencies.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut stats = Stats {
        latencies_us: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for w in workers {
        let (l, e) = w.await.unwrap();
        stats.latencies_us.extend(l);
        stats.errors += e;
    }
    stats.elapsed = start.elapsed();
    stats
}

fn main() {
    let rates: Vec<u64> = std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| "1000,2500,5000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let secs: u64 = env_or("BENCH_SECS", 10);
    let connections: usize = env_or("BENCH_CONNECTIONS", 64);
    let fraud_on = match std::env::var("BENCH_FRAUD").unwrap_or_default().as_str() {
        "on" => true,
        "off" | "" => false,
        other => panic!("BENCH_FRAUD must be on or off, not {other:?}"),
    };
    let dir = tempfile::tempdir_in(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .unwrap();

    // The gateway runs in this thread's actix system exactly as in production; the load generator
    // runs in its own thread and system so it does not share the gateway's actor thread.
    let system = actix_rt::System::new();
    system.block_on(async move {
        let mut config = Config::for_tests(dir.path().join("bench.db"));
        config.log_level = "error".into();
        config.sms.delivery_timeout = Duration::from_secs(60);
        config.fraud.enabled = fraud_on;
        if fraud_on {
            // Enforcing, with the highest limits FRAUD_* accepts: nothing the generator sends is
            // rate-limited or scored for subnet velocity, but every rule still runs.
            config.fraud.mode = FraudMode::Enforce;
            config.fraud.rate_limit_minute = 1000;
            config.fraud.rate_limit_hour = 10_000;
            config.fraud.subnet_limit_minute = 10_000;
            config.fraud.subnet_limit_hour = 100_000;
        }
        let fraud_mode = if fraud_on {
            format!(
                "fraud on (enforce; per phone {}/min {}/h, per subnet {}/min {}/h; an ip per request)",
                config.fraud.rate_limit_minute,
                config.fraud.rate_limit_hour,
                config.fraud.subnet_limit_minute,
                config.fraud.subnet_limit_hour
            )
        } else {
            "fraud off".to_string()
        };
        config.sandbox_records = 0;
        let gateway = app::start(config).await.expect("gateway starts");
        let url = format!("{}/dispatch", gateway.api_url());
        println!(
            "dispatch_load: {} cores, {secs}s per step, {fraud_mode}, database {}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            dir.path().display()
        );
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let cpu_before = process_cpu();
        std::thread::Builder::new().name("load-gen".into()).spawn(move || {
            let counter = Arc::new(AtomicU64::new(0));
            actix_rt::System::new().block_on(async move {
                let _ = open_loop(&url, 500, 2, &counter, fraud_on).await;
                for rate in &rates {
                    let stats = open_loop(&url, *rate, secs, &counter, fraud_on).await;
                    report(&format!("open loop {rate}/s"), stats);
                }
                let stats = closed_loop(&url, connections, secs, &counter, fraud_on).await;
                report(&format!("saturation ({connections} conns)"), stats);
                let _ = done_tx.send((counter.load(Ordering::Relaxed), own_cpu()));
            });
        }).expect("load generator thread");
        let (sent, generator) = done_rx.await.unwrap_or((0, 0.0));
        let count_delivered = || {
            gateway.store.read(|conn| {
                use diesel::prelude::*;
                use otp_gateway::db::schema::otp_requests::dsl::*;
                otp_requests.filter(status.eq("delivered")).count().get_result::<i64>(conn)
            })
        };
        let at_stop = count_delivered().await.unwrap_or(0);
        let cpu_after = process_cpu();
        let all = cpu_after - cpu_before;
        println!(
            "CPU: {:.1} s in all, {:.1} s in the load generator; gateway + simulated carrier {:.0} µs per accepted request",
            all,
            generator,
            (all - generator) * 1e6 / sent.max(1) as f64
        );
        println!(
            "load stopped: {sent} requests accepted, {at_stop} delivered so far; memory VmRSS {} MiB, peak {} MiB",
            status_kib("VmRSS:") / 1024,
            status_kib("VmHWM:") / 1024
        );
        // Drain: wait until every accepted request is delivered (the pipeline behind /dispatch
        // caught up) or 120 s pass, then report how long that took and the live actors left.
        let drain_start = Instant::now();
        let mut delivered = at_stop;
        while delivered < i64::try_from(sent).unwrap_or(i64::MAX) && drain_start.elapsed() < Duration::from_secs(120) {
            actix_rt::time::sleep(Duration::from_millis(250)).await;
            delivered = count_delivered().await.unwrap_or(delivered);
        }
        let live = gateway.dispatcher.send(actors::dispatcher::CountLive).await.unwrap_or(0);
        println!(
            "drained in {:.1} s: {delivered}/{sent} delivered, {live} request actors still live; memory VmRSS {} MiB",
            drain_start.elapsed().as_secs_f64(),
            status_kib("VmRSS:") / 1024
        );
        if fraud_on {
            let verdicts = gateway.store.read(|conn| {
                use diesel::dsl::count_star;
                use diesel::prelude::*;
                use otp_gateway::db::schema::{fraud_refusals, otp_requests};
                let stored = otp_requests::table
                    .group_by(otp_requests::fraud_verdict)
                    .select((otp_requests::fraud_verdict, count_star()))
                    .load::<(Option<String>, i64)>(conn)?;
                let refused = fraud_refusals::table.count().get_result::<i64>(conn)?;
                Ok((stored, refused))
            });
            let (stored, refused) = verdicts.await.unwrap();
            let stored: Vec<String> = stored
                .iter()
                .map(|(v, n)| format!("{} {n}", v.as_deref().unwrap_or("none")))
                .collect();
            println!(
                "fraud verdicts stored: {}; refused (429/422): {refused}",
                stored.join(", ")
            );
        }
        gateway.shutdown().await;
    });
}
