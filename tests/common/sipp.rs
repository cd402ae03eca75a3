//! SIPp (Debian package `sip-tester`) as the DIDWW trunk in interop tests.
//!
//! [`Sipp::start`] runs one UAS scenario from `tests/sipp/` as a child process on a free loopback
//! UDP port and returns once SIPp's SIP socket is bound, so the gateway started afterwards finds it
//! listening. [`Sipp::finish`] waits for SIPp to exit (off the async threads) and returns its exit
//! status with its message and error traces for assertion messages; [`Sipp::failed`] resolves as
//! soon as SIPp exits with a failure, for racing against the gateway's events. Dropping a [`Sipp`]
//! kills a SIPp still running.
//!
//! SIPp is started with `-m 2`, not `-m 1`: the gateway's SIP transport sends a keepalive OPTIONS
//! to the trunk as soon as it starts (SPEC §4, `GET /health`), with its own Call-ID, and SIPp in
//! server mode makes every new Call-ID a call of its own (with `-m 1` the OPTIONS would use up the
//! only call and SIPp would drop the INVITE). Each scenario answers that OPTIONS (its first,
//! optional `recv`) as one call; the INVITE is the other. Tests set a long keepalive interval so no
//! second OPTIONS arrives.
//!
//! A missing `sipp` binary fails the test (it does not skip it): `.ci/run` installs `sip-tester`.

use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// SIPp's own limit for one run (`-timeout` with `-timeout_error`: a SIPp still waiting then exits
/// with an error instead of hanging CI).
pub const SIPP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`Sipp::finish`] waits beyond [`SIPP_TIMEOUT`] before killing SIPp itself.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long [`Sipp::start`] waits for SIPp to bind its SIP socket.
const BIND_PATIENCE: Duration = Duration::from_secs(10);
/// Attempts at starting SIPp on a free port (another process may take the port between our probe
/// and SIPp's bind).
const START_ATTEMPTS: usize = 3;

/// A running SIPp UAS.
pub struct Sipp {
    /// The UDP port SIPp listens on (127.0.0.1).
    pub port: u16,
    scenario: String,
    child: Arc<Mutex<Child>>,
    dir: tempfile::TempDir,
}

/// How a SIPp run ended.
#[derive(Debug)]
pub struct SippRun {
    /// The scenario file name.
    pub scenario: String,
    /// SIPp's exit status: 0 when every call passed every check of the scenario.
    pub status: Option<ExitStatus>,
    /// `-trace_err`: unexpected messages and failed checks.
    pub errors: String,
    /// `-trace_msg`: every SIP message sent and received.
    pub messages: String,
    /// `-trace_logs`: the scenario's `<log>` lines.
    pub logs: String,
    /// SIPp's statistics screen (stdout) and stderr.
    pub screen: String,
}

impl Sipp {
    /// Starts `sipp` with the scenario `tests/sipp/<scenario>` and `extra` arguments; returns once
    /// its SIP socket is bound. Panics when `sipp` is not installed.
    pub async fn start(scenario: &str, extra: &[&str]) -> Sipp {
        let path = scenario_path(scenario);
        assert!(path.is_file(), "no SIPp scenario {}", path.display());
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().unwrap();
            let port = free_udp_port();
            let child = spawn(&path, port, dir.path(), extra);
            let sipp = Sipp {
                port,
                scenario: scenario.to_owned(),
                child: Arc::new(Mutex::new(child)),
                dir,
            };
            if sipp.wait_bound().await {
                return sipp;
            }
            // SIPp exited before binding (port taken meanwhile, bad arguments): try another port.
            let run = sipp.finish().await;
            last_failure = run.report();
        }
        panic!("SIPp did not start after {START_ATTEMPTS} attempts:\n{last_failure}");
    }

    /// Waits until SIPp's SIP socket is bound; false when SIPp exited first.
    async fn wait_bound(&self) -> bool {
        let pid = self.child.lock().unwrap().id();
        let deadline = Instant::now() + BIND_PATIENCE;
        loop {
            if self.child.lock().unwrap().try_wait().unwrap().is_some() {
                return false;
            }
            if owns_udp_port(pid, self.port) {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "SIPp did not bind 127.0.0.1:{} within {BIND_PATIENCE:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for SIPp to exit (killing it after [`SIPP_TIMEOUT`] plus a grace period) and returns
    /// its status and traces.
    pub async fn finish(self) -> SippRun {
        let status = self.exited().await;
        self.run(status)
    }

    /// Resolves only when SIPp exits unsuccessfully (a check of the scenario failed, or it timed
    /// out), with its traces; never while it runs or once it passed. Race it against the
    /// gateway's events to fail at once, with SIPp's explanation, instead of at a timeout.
    pub async fn failed(&self) -> SippRun {
        let status = self.exited().await;
        if status.is_some_and(|s| s.success()) {
            std::future::pending::<()>().await;
        }
        self.run(status)
    }

    /// SIPp's exit status, waited for on a blocking thread; `None` when it had to be killed.
    async fn exited(&self) -> Option<ExitStatus> {
        let child = Arc::clone(&self.child);
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + SIPP_TIMEOUT + KILL_GRACE;
            loop {
                {
                    let mut child = child.lock().unwrap();
                    if let Some(status) = child.try_wait().unwrap() {
                        return Some(status);
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return None;
                    }
                }
                // The lock is free between polls, so Drop can kill SIPp meanwhile.
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .await
        .unwrap()
    }

    fn run(&self, status: Option<ExitStatus>) -> SippRun {
        let read = |name: &str| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        SippRun {
            scenario: self.scenario.clone(),
            status,
            errors: read("errors.log"),
            messages: read("messages.log"),
            logs: read("logs.log"),
            screen: format!("{}{}", read("screen.log"), read("stderr.log")),
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl SippRun {
    /// Panics with SIPp's traces unless SIPp exited 0 (every check of the scenario passed).
    pub fn assert_passed(&self) {
        assert!(
            self.status.is_some_and(|s| s.success()),
            "SIPp scenario {} failed:\n{}",
            self.scenario,
            self.report()
        );
    }

    /// Every SIP message SIPp sent or received, in order.
    pub fn trace(&self) -> Vec<Traced<'_>> {
        self.messages
            .split("----------------------------------------------- ")
            .filter_map(|block| {
                // `<time>` / `UDP message received [n] bytes :` or `UDP message sent (n bytes):` /
                // blank / start line / headers …
                let mut lines = block.lines().skip(1);
                let direction = lines.next()?;
                let received = direction.contains("message received");
                if !received && !direction.contains("message sent") {
                    return None;
                }
                let mut lines = lines.map(str::trim).skip_while(|line| line.is_empty());
                let start_line = lines.next()?;
                let cseq = lines
                    .take_while(|line| !line.is_empty())
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.trim()
                            .eq_ignore_ascii_case("CSeq")
                            .then(|| value.trim())
                    })
                    .unwrap_or_default();
                Some(Traced {
                    received,
                    start_line,
                    cseq,
                })
            })
            .collect()
    }

    /// Start lines of the SIP messages SIPp received, in order (`INVITE sip:…`, `SIP/2.0 200 OK`).
    pub fn received(&self) -> Vec<&str> {
        self.trace()
            .into_iter()
            .filter(|m| m.received)
            .map(|m| m.start_line)
            .collect()
    }

    /// How many requests with `method` SIPp received (retransmissions included).
    pub fn received_requests(&self, method: &str) -> usize {
        let prefix = format!("{method} ");
        self.received()
            .iter()
            .filter(|line| line.starts_with(&prefix))
            .count()
    }

    /// Everything SIPp reported, for assertion messages.
    pub fn report(&self) -> String {
        format!(
            "exit status: {:?}\n--- errors ---\n{}\n--- scenario log ---\n{}\n\
             --- messages ---\n{}\n--- screen ---\n{}",
            self.status, self.errors, self.logs, self.messages, self.screen
        )
    }
}

/// One message of a SIPp trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traced<'a> {
    /// Received by SIPp (else sent by it).
    pub received: bool,
    /// `INVITE sip:…`, `SIP/2.0 200 OK`.
    pub start_line: &'a str,
    /// The CSeq value (`2 INVITE`).
    pub cseq: &'a str,
}

fn scenario_path(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sipp")
        .join(scenario)
}

/// A UDP port free on 127.0.0.1 a moment ago (bound to port 0, read, released).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(scenario: &Path, port: u16, dir: &Path, extra: &[&str]) -> Child {
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let timeout = format!("{}s", SIPP_TIMEOUT.as_secs());
    let port = port.to_string();
    let mut command = Command::new("sipp");
    command
        .arg("-sf")
        .arg(scenario)
        .args(["-i", "127.0.0.1", "-p", &port, "-m", "2"])
        .args(["-timeout", &timeout, "-timeout_error", "-nostdin"])
        .args(["-trace_msg", "-message_file", &file("messages.log")])
        .args(["-trace_err", "-error_file", &file("errors.log")])
        .args(["-trace_logs", "-log_file", &file("logs.log")])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(dir.join("screen.log")).unwrap())
        .stderr(fs::File::create(dir.join("stderr.log")).unwrap());
    match command.spawn() {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "`sipp` is not installed: install sip-tester (apt-get install sip-tester; .ci/run \
             installs it) to run the SIP interop tests"
        ),
        Err(err) => panic!("cannot start sipp: {err}"),
    }
}

/// Whether process `pid` holds the UDP socket bound to 127.0.0.1:`port` (Linux `/proc`).
fn owns_udp_port(pid: u32, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/udp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let Some(inode) = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()))
            .then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))
            .flatten()
    }) else {
        return false;
    };
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .any(|target| target.to_string_lossy() == inode)
}
