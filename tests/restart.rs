//! Crash safety and shutdown of the real binary (SPEC §1, §2, §5, §6).
//!
//! Every test here runs `otp-gateway --sandbox` as a child process, with a cleared environment and
//! its own database, and talks to it over HTTP like a client would:
//!
//! * SIGKILL with dispatches, SMS submissions and webhook deliveries in flight loses no request that
//!   was answered 200: after a restart on the same database every one of them is there, none is left
//!   `pending`, and every event in its history reaches the client webhook with a 2xx, in event order
//!   (the outbox resumes).
//! * SIGTERM stops accepting (new connections are refused or answered 503), finishes in-flight
//!   requests and exits 0; nothing it answered 200 is missing after a restart.
//! * A voice call cut by SIGTERM before its code was heard records no outcome and is placed again by
//!   the restarted gateway, which delivers it (that the CANCEL reaches the trunk is checked in
//!   `voice_channel`).
//! * A bad configuration exits non-zero listing every problem at once; a database in a missing
//!   folder exits non-zero with a message naming `DATABASE_PATH`.
//!
//! Readiness is the sandbox banner's `API:` line (printed once the listener is bound), process exits
//! are awaited with deadlines, and "settled" is polled with a deadline: no test sleeps a fixed time
//! to let something happen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;

use common::hooks::{Hook, HookReceiver};

const BIN: &str = env!("CARGO_BIN_EXE_otp-gateway");
const SECRET: &str = "restart-test-secret-0123456789";
/// Longest wait for the banner (a debug build on a loaded 2-core machine).
const STARTUP: Duration = Duration::from_secs(60);
/// Longest wait for a restarted gateway to settle (resumed deliveries and webhooks).
const SETTLE: Duration = Duration::from_secs(90);
/// Longest a SIGTERM shutdown may take.
const SHUTDOWN: Duration = Duration::from_secs(20);
/// Time between two looks at a settling gateway.
const POLL: Duration = Duration::from_millis(200);

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// A port that was free a moment ago (the gateway start is retried if someone took it meanwhile).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP port that was free a moment ago (for SIP_PORT).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with an empty environment (only `PATH` and `HOME`), so nothing the gateway reads
/// leaks in from the developer's shell or CI.
fn bare_command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Waits for a process in a helper thread; the receiver yields its status.
fn wait_in_thread(mut child: Child) -> tokio::sync::oneshot::Receiver<std::io::Result<ExitStatus>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{name} {pid} failed: {status}");
}

/// One run of the gateway binary.
struct Process {
    child: Option<Child>,
    pid: u32,
    url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr_path: PathBuf,
}

impl Process {
    /// Starts `otp-gateway --sandbox` on `db` and waits for its banner.
    async fn start(db: &Path, tag: &str) -> Process {
        Process::start_with(db, tag, &[]).await
    }

    /// [`Process::start`] with more environment variables.
    async fn start_with(db: &Path, tag: &str, env: &[(&str, &str)]) -> Process {
        let mut last_failure = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let stderr_path = db.with_file_name(format!("{tag}-{attempt}.stderr"));
            let mut cmd = bare_command();
            cmd.arg("--sandbox")
                .env("DATABASE_PATH", db)
                .env("API_SECRET", SECRET)
                .env("HTTP_PORT", port.to_string())
                .env("SIP_PORT", free_udp_port().to_string())
                .env("BIND_ADDRESS", "127.0.0.1")
                .env("ADMIN_ENABLED", "false")
                .env("WEBHOOK_ALLOW_PRIVATE", "true")
                .env("WEBHOOK_RETRY_BASE_MS", "50")
                // Room for the scripted 500s: a delivery must not give up in this test.
                .env("WEBHOOK_MAX_ATTEMPTS", "10")
                .env("SMS_DELIVERY_TIMEOUT_SECS", "1")
                .env("LOG_LEVEL", "warn")
                .env("FRAUD_ENABLED", "false")
                .envs(env.iter().copied())
                .stdout(Stdio::piped())
                .stderr(File::create(&stderr_path).unwrap());
            let mut child = cmd.spawn().expect("the gateway binary starts");
            let pid = child.id();
            let stdout = child.stdout.take().unwrap();
            let lines = Arc::new(Mutex::new(Vec::new()));
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            {
                // Logs go to stdout too: keep draining it so the child never blocks on the pipe.
                let lines = Arc::clone(&lines);
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        lines.lock().unwrap().push(line.clone());
                        let _ = tx.send(line);
                    }
                });
            }
            let deadline = Instant::now() + STARTUP;
            let url = loop {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(line)) => {
                        if let Some(url) = line.trim_start().strip_prefix("API:") {
                            break Some(url.trim().to_owned());
                        }
                    }
                    // stdout closed: the process is gone.
                    Ok(None) => break None,
                    Err(_) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "no banner within {STARTUP:?}\nstdout: {:#?}\nstderr: {}",
                            lines.lock().unwrap(),
                            std::fs::read_to_string(&stderr_path).unwrap_or_default()
                        );
                    }
                }
            };
            if let Some(url) = url {
                assert_eq!(url, format!("http://127.0.0.1:{port}"), "banner URL");
                return Process {
                    child: Some(child),
                    pid,
                    url,
                    stdout: lines,
                    stderr_path,
                };
            }
            let status = child.wait().unwrap();
            last_failure = format!(
                "exited with {status} before the banner\nstdout: {:#?}\nstderr: {}",
                lines.lock().unwrap(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
            // Someone took a port between choosing and binding it: try others.
            if !last_failure.contains("HTTP_PORT") && !last_failure.contains("SIP_PORT") {
                break;
            }
        }
        panic!("the gateway did not start: {last_failure}");
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("still running");
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "a SIGKILLed process cannot exit 0");
    }

    /// Waits for the exit; fails (after a SIGKILL) past `timeout`.
    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.take().expect("still running");
        let pid = self.pid;
        match tokio::time::timeout(timeout, wait_in_thread(child)).await {
            Ok(status) => status.unwrap().unwrap(),
            Err(_) => {
                signal(pid, "KILL");
                panic!(
                    "the gateway did not exit within {timeout:?}\n{}",
                    self.diagnostics()
                );
            }
        }
    }

    fn diagnostics(&self) -> String {
        let stdout = self.stdout.lock().unwrap();
        let tail = stdout.len().saturating_sub(40);
        format!(
            "stdout (last lines): {:#?}\nstderr: {}",
            &stdout[tail..],
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .connector(awc::Connector::new().limit(0))
        .finish()
}

/// A client that opens a new connection for its one request.
fn fresh_client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .connector(awc::Connector::new().limit(1))
        .finish()
}

/// A valid, distinct US number per index (libphonenumber accepts 415-555-xxxx).
fn phone(i: usize) -> String {
    format!("+1415555{:04}", i % 10_000)
}

/// `POST /dispatch` (SMS only, with a webhook). Transport failures (the gateway died or refused the
/// connection) are `Err`.
async fn dispatch(
    client: awc::Client,
    url: String,
    phone: String,
    hook: String,
) -> Result<(u16, Value), String> {
    let mut response = client
        .post(format!("{url}/dispatch"))
        .insert_header(("X-API-Secret", SECRET))
        .send_json(&json!({
            "phone": phone,
            "code": "123456",
            "channels": ["sms"],
            "webhook_url": hook,
        }))
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body()
        .limit(1 << 16)
        .await
        .map_err(|e| e.to_string())?;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, value))
}

fn request_id(answer: &Value) -> String {
    let id = answer["request_id"].as_str();
    id.unwrap_or_else(|| panic!("200 without request_id: {answer}"))
        .to_owned()
}

/// `GET /requests/{id}` for every id, concurrently: (id, HTTP status, body).
async fn views(client: &awc::Client, url: &str, ids: &[String]) -> Vec<(String, u16, Value)> {
    ids.iter()
        .map(|id| {
            let request = client
                .get(format!("{url}/requests/{id}"))
                .insert_header(("X-API-Secret", SECRET));
            let id = id.clone();
            async move {
                let response = request.send().await.unwrap_or_else(|e| {
                    panic!("GET /requests/{id} failed: {e}");
                });
                let (status, body) = common::read_json(response).await;
                (id, status, body)
            }
        })
        .collect::<FuturesUnordered<_>>()
        .collect()
        .await
}

/// What still stands between a request and "settled with nothing lost" (empty when settled).
/// A broken event order is returned as `Err`: it cannot heal.
fn unsettled(view: &Value, hooks: &[Hook]) -> Result<Vec<String>, String> {
    let id = view["request_id"].as_str().unwrap_or_default();
    let mut problems = Vec::new();
    if view["status"] == "pending" {
        problems.push(format!("{id} still pending"));
    }
    // Stored events, in order: (otp.<event_type>, timestamp).
    let stored: Vec<(String, i64)> = view["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events list: {view}"))
        .iter()
        .map(|e| {
            (
                format!("otp.{}", e["event_type"].as_str().unwrap_or_default()),
                e["timestamp"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    // Delivered events (2xx), each once (X-Webhook-Id is per event), in order of first success.
    let mut seen = HashSet::new();
    let delivered: Vec<(String, i64)> = hooks
        .iter()
        .filter(|h| (200..300).contains(&h.answered))
        .filter(|h| h.body["request_id"] == id)
        .filter(|h| seen.insert(h.webhook_id.clone()))
        .map(|h| {
            (
                h.body["event"].as_str().unwrap_or_default().to_owned(),
                h.body["timestamp"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    // Both sequences follow the event order; the events list was read first, so it must be a
    // prefix of what was delivered (later events may have been stored and delivered since).
    for (i, (have, want)) in delivered.iter().zip(&stored).enumerate() {
        if have != want {
            return Err(format!(
                "{id}: webhook #{i} delivered was {have:?}, but event #{i} is {want:?}\n  stored: {stored:?}\n  delivered: {delivered:?}"
            ));
        }
    }
    if delivered.len() < stored.len() {
        problems.push(format!(
            "{id}: events {:?} not delivered yet",
            &stored[delivered.len()..]
        ));
    }
    Ok(problems)
}

/// Polls until every request exists, none is pending and every stored event has been delivered to
/// the receiver with a 2xx, in order.
async fn assert_settles(gw: &Process, client: &awc::Client, ids: &[String], hooks: &HookReceiver) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let views = views(client, &gw.url, ids).await;
        let received = hooks.hooks();
        let mut problems = Vec::new();
        for (id, status, view) in &views {
            assert_eq!(
                *status, 200,
                "request {id} was answered 200 but is missing after the restart: {view}"
            );
            match unsettled(view, &received) {
                Ok(more) => problems.extend(more),
                Err(disorder) => panic!("webhooks missing or out of event order: {disorder}"),
            }
        }
        if problems.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let statuses: HashMap<String, usize> =
                views.iter().fold(HashMap::new(), |mut acc, (_, _, v)| {
                    *acc.entry(v["status"].as_str().unwrap_or("?").to_owned())
                        .or_default() += 1;
                    acc
                });
            panic!(
                "not settled within {SETTLE:?} ({} problems; statuses {statuses:?}):\n{}\n{}",
                problems.len(),
                problems
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n"),
                gw.diagnostics()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[actix_web::test]
async fn sigkill_with_work_in_flight_loses_no_accepted_request() {
    const TOTAL: usize = 300;
    const KILL_AFTER: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otp.db");
    let hooks = HookReceiver::start();
    // The first deliveries fail, so outbox rows are still pending (retrying) at the kill.
    hooks.script(&[500; 40]);
    let mut first = Process::start(&db, "first").await;
    let client = client();

    let mut flights: FuturesUnordered<_> = (0..TOTAL)
        .map(|i| dispatch(client.clone(), first.url.clone(), phone(i), hooks.url()))
        .collect();
    let mut answered = Vec::new();
    let mut in_flight_at_kill = None;
    let mut lost_in_transit = 0;
    while let Some(outcome) = flights.next().await {
        match outcome {
            Ok((200, answer)) => answered.push(request_id(&answer)),
            Ok((status, answer)) => panic!("dispatch answered {status}: {answer}"),
            Err(err) => {
                assert!(
                    in_flight_at_kill.is_some(),
                    "dispatch failed before the kill: {err}\n{}",
                    first.diagnostics()
                );
                lost_in_transit += 1;
            }
        }
        if answered.len() >= KILL_AFTER && in_flight_at_kill.is_none() {
            first.kill();
            in_flight_at_kill = Some(flights.len());
        }
    }
    let in_flight_at_kill = in_flight_at_kill.expect("the gateway was killed");
    eprintln!(
        "SIGKILL with {in_flight_at_kill} dispatches unanswered: {} answered 200 in all, {lost_in_transit} cut off; {} webhook deliveries so far",
        answered.len(),
        hooks.hooks().len()
    );
    // Dispatches the kill cut off prove that it hit the gateway with work in flight.
    assert!(
        lost_in_transit > 0,
        "every dispatch was answered before the kill: nothing was in flight"
    );
    let unique: HashSet<&String> = answered.iter().collect();
    assert_eq!(unique.len(), answered.len(), "request ids are unique");

    let before_restart = hooks.hooks().len();
    let restarted_at = now_ms();
    let second = Process::start(&db, "second").await;
    let statuses = views(&client, &second.url, &answered)
        .await
        .into_iter()
        .fold(HashMap::<String, usize>::new(), |mut acc, (_, _, v)| {
            *acc.entry(v["status"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
            acc
        });
    eprintln!("after the restart: statuses {statuses:?}");
    assert_settles(&second, &client, &answered, &hooks).await;
    let after = &hooks.hooks()[before_restart..];
    let resumed = after
        .iter()
        .filter(|h| h.body["timestamp"].as_i64().unwrap_or(i64::MAX) < restarted_at)
        .count();
    eprintln!(
        "settled: {} webhook deliveries after the restart, {resumed} of them for events stored before the kill",
        after.len()
    );
    // The outbox survived the kill and was resumed, not merely refilled by new events.
    assert!(resumed > 0, "no webhook of the killed process was resumed");
}

#[actix_web::test]
async fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otp.db");
    let hooks = HookReceiver::start();
    let mut gw = Process::start(&db, "first").await;
    let client = client();

    let mut answered = Vec::new();
    for i in 0..5 {
        let (status, answer) = dispatch(client.clone(), gw.url.clone(), phone(i), hooks.url())
            .await
            .unwrap();
        assert_eq!(status, 200, "{answer}");
        answered.push(request_id(&answer));
    }

    // Dispatches in flight when the signal arrives: each is answered 200 (and then kept), answered
    // 503, or never gets a connection; nothing else.
    let mut flights: FuturesUnordered<_> = (5..55)
        .map(|i| dispatch(client.clone(), gw.url.clone(), phone(i), hooks.url()))
        .collect();
    let mut outcomes = Vec::new();
    while let Some(outcome) = flights.next().await {
        outcomes.push(outcome);
        if outcomes.len() == 10 {
            break;
        }
    }
    signal(gw.pid, "TERM");
    let in_flight = actix_rt::spawn(async move {
        let mut rest = Vec::new();
        while let Some(outcome) = flights.next().await {
            rest.push(outcome);
        }
        rest
    });

    // New connections after the signal: until the listener is gone, each is answered 200 (the
    // signal was not handled yet) or 503; then they fail without an answer: refused, or reset when
    // the kernel had queued the connection just before the listener closed (the gateway never read
    // it, so nothing was accepted).
    let deadline = Instant::now() + SHUTDOWN;
    let mut probes = 0;
    let mut unavailable = 0;
    loop {
        probes += 1;
        let outcome = dispatch(
            fresh_client(),
            gw.url.clone(),
            phone(100 + probes),
            hooks.url(),
        )
        .await;
        match outcome {
            Ok((200, answer)) => {
                assert_eq!(unavailable, 0, "accepting again after a 503: {answer}");
                answered.push(request_id(&answer));
            }
            Ok((503, answer)) => {
                assert_eq!(answer["error"], "service_unavailable", "{answer}");
                unavailable += 1;
            }
            Ok((status, answer)) => panic!("dispatch during shutdown answered {status}: {answer}"),
            Err(err) => {
                eprintln!("probe {probes} after SIGTERM: {err}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "still accepting connections {SHUTDOWN:?} after SIGTERM ({probes} probes)\n{}",
            gw.diagnostics()
        );
    }
    let status = gw.wait_exit(SHUTDOWN).await;
    assert!(
        status.success(),
        "SIGTERM must end with exit status 0, got {status}\n{}",
        gw.diagnostics()
    );
    outcomes.extend(in_flight.await.unwrap());
    let mut refusals: HashMap<String, usize> = HashMap::new();
    for outcome in outcomes {
        match outcome {
            Ok((200, answer)) => answered.push(request_id(&answer)),
            Ok((503, _)) => *refusals.entry("503".into()).or_default() += 1,
            Err(err) => *refusals.entry(err).or_default() += 1,
            Ok((status, answer)) => panic!("in-flight dispatch answered {status}: {answer}"),
        }
    }
    eprintln!(
        "SIGTERM: {} answered 200, {probes} probes after the signal ({unavailable} answered 503); in flight not accepted: {refusals:?}",
        answered.len()
    );

    let second = Process::start(&db, "second").await;
    assert_settles(&second, &client, &answered, &hooks).await;
    // The other way round: a request that exists (it has webhooks) was answered 200. A graceful
    // shutdown finishes the requests it started instead of storing them and dropping the answer.
    let told: HashSet<&str> = answered.iter().map(String::as_str).collect();
    let untold: HashSet<String> = hooks
        .hooks()
        .into_iter()
        .map(|h| h.request_id)
        .filter(|id| !told.contains(id.as_str()))
        .collect();
    assert!(
        untold.is_empty(),
        "requests stored but never answered 200 (the shutdown dropped their responses): {untold:?}"
    );
}

#[actix_web::test]
async fn sigterm_right_after_the_banner_still_exits_gracefully() {
    // The banner is printed once the listener is bound; an orchestrator may stop the process at
    // any moment after that (or before): the signal must already be handled, not kill it outright.
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Process::start(&dir.path().join("otp.db"), "only").await;
    signal(gw.pid, "TERM");
    let status = gw.wait_exit(SHUTDOWN).await;
    assert!(
        status.success(),
        "SIGTERM must end with exit status 0, got {status}\n{}",
        gw.diagnostics()
    );
}

/// Runs the binary to its exit (killed and failed past 30 s).
fn run_to_exit(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the gateway binary starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            signal(pid, "KILL");
            panic!("the gateway kept running although it should have refused to start");
        }
    }
}

#[test]
fn bad_configuration_exits_non_zero_listing_every_problem() {
    let mut cmd = bare_command();
    cmd.env("HTTP_PORT", "abc")
        .env("API_SECRET", "short")
        .env("SMS_ENABLED", "maybe");
    let output = run_to_exit(cmd);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && output.status.code().is_some(),
        "expected a non-zero exit, got {}; stderr: {stderr}",
        output.status
    );
    for name in ["HTTP_PORT", "API_SECRET", "SMS_ENABLED"] {
        assert!(
            stderr.contains(name),
            "{name} not reported; stderr: {stderr}"
        );
    }
}

#[test]
fn database_in_a_missing_folder_exits_non_zero_naming_database_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("no-such-folder").join("otp.db");
    let mut cmd = bare_command();
    cmd.arg("--sandbox")
        .env("DATABASE_PATH", &db)
        .env("API_SECRET", SECRET)
        .env("HTTP_PORT", free_port().to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("ADMIN_ENABLED", "false")
        .env("LOG_LEVEL", "warn");
    let output = run_to_exit(cmd);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && output.status.code().is_some(),
        "expected a non-zero exit, got {}; stderr: {stderr}",
        output.status
    );
    assert!(
        stderr.contains("DATABASE_PATH"),
        "the message must name DATABASE_PATH; stderr: {stderr}"
    );
    assert!(
        !dir.path().join("no-such-folder").exists(),
        "nothing may be created"
    );
}

/// A voice OTP whose call is ringing when SIGTERM arrives: the gateway CANCELs it and records no
/// outcome (nobody heard the code); the restarted gateway places the call again and delivers it.
#[actix_web::test]
async fn a_call_cut_by_sigterm_is_placed_again_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otp.db");
    let hooks = HookReceiver::start();
    // A short prompt (the code, fast) keeps the delivered call brief.
    let env = [
        ("OTP_MESSAGE_TEMPLATE", "{code}"),
        ("OTP_VOICE_SPEED", "fast"),
    ];
    let mut gw = Process::start_with(&db, "first", &env).await;
    let client = client();
    let phone = phone(4242);

    // This process's simulated trunk lets the phone ring for a minute.
    let mut response = client
        .post(format!("{}/sandbox/voice/behaviours", gw.url))
        .insert_header(("X-API-Secret", SECRET))
        .send_json(
            &json!({"destination": phone, "behaviour": {"kind": "answer", "ring_ms": 60_000}}),
        )
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "{:?}",
        response.body().await
    );
    let mut response = client
        .post(format!("{}/dispatch", gw.url))
        .insert_header(("X-API-Secret", SECRET))
        .send_json(&json!({
            "phone": phone,
            "code": "4242",
            "channels": ["voice"],
            "webhook_url": hooks.url(),
        }))
        .await
        .unwrap();
    let (status, answer) = (
        response.status().as_u16(),
        response.json::<Value>().await.unwrap(),
    );
    assert_eq!(status, 200, "{answer}");
    let id = request_id(&answer);
    let has = |hooks: &[Hook], event: &str| {
        hooks
            .iter()
            .any(|h| h.request_id == id && h.body["event"] == event)
    };
    hooks.wait_until(SETTLE, |h| has(h, "otp.ringing")).await;

    signal(gw.pid, "TERM");
    let exit = gw.wait_exit(SHUTDOWN).await;
    assert!(exit.success(), "exit {exit}\n{}", gw.diagnostics());
    let first_run: Vec<String> = hooks
        .of(&id)
        .iter()
        .map(|h| h.body["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(first_run, ["otp.calling", "otp.ringing"], "first run");

    // The new process's trunk answers at once (behaviours belong to the process).
    let gw = Process::start_with(&db, "second", &env).await;
    hooks.wait_until(SETTLE, |h| has(h, "otp.completed")).await;
    let (_, status, view) = views(&client, &gw.url, std::slice::from_ref(&id))
        .await
        .remove(0);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "delivered", "{view}");
    let stored: Vec<&str> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default())
        .collect();
    // No busy, no_answer, failed or hangup for the cancelled call: it was not the callee's doing.
    assert_eq!(
        stored,
        [
            "calling",
            "ringing",
            "calling",
            "ringing",
            "answered",
            "playing",
            "completed"
        ],
        "{view}"
    );
}
