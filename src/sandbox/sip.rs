//! Simulated DIDWW SIP termination trunk (the sandbox carrier's voice half): a SIP UAS on loopback
//! UDP that the gateway's real SIP user agent calls, as it would call DIDWW's outbound trunk
//! (reference/didww-wire-formats.md §4).
//!
//! [`SandboxTrunk::start`] binds the SIP socket and runs the trunk on its own OS thread with its
//! own current-thread Tokio runtime, so it can be started from anywhere (plain code, an actix
//! `System`, a Tokio test) and so a benchmark measuring RTP arrival times there shares no thread
//! with the gateway. [`SandboxTrunk::stop`] (or dropping the handle) shuts the thread down.
//!
//! The trunk behaves as DIDWW does (reference §4.4, §4.10) and as RFC 3261 asks of a UAS:
//!
//! * An INVITE gets `100 Trying`, then a digest challenge: `401 Unauthorized` with
//!   `WWW-Authenticate: Digest realm="out.didww.com", nonce="…", qop="auth", algorithm=MD5`, a To
//!   tag and two `Record-Route: <sip:127.0.0.1:PORT;r2=on;lr>` (pointing back at the trunk so
//!   in-dialog requests still reach it), or a 407 with `Proxy-Authenticate`, or nothing (see
//!   [`ChallengeMode`]). The ACK is absorbed; a retransmitted INVITE gets the same response again.
//! * The next INVITE (new branch, same Call-ID) must carry credentials the trunk verifies with
//!   `actors::sip::digest::compute_response` (username, realm, a nonce it issued for this call, the
//!   Request-URI as `uri`, `qop=auth` with a rising `nc` and a `cnonce`). Wrong ones get a fresh
//!   401, the third refusal a 403. With `stale_once` the first right ones get `stale=true`.
//! * Then the [`VoiceBehaviour`] of the destination: `180 Ringing` and `200 OK` with an SDP answer
//!   (Contact `<sip:trunk@127.0.0.1:PORT>`, the Record-Routes, the chosen codec and
//!   telephone-event), `486`, another final code, or ringing until CANCEL (200, then 487). Final
//!   responses are retransmitted until ACKed: a 2xx at T1 doubling up to T2 = 8·T1
//!   (RFC 3261 §13.3.1.4), giving up after 64·T1 with a BYE; a non-2xx likewise (§17.2.1, Timer G).
//! * In the dialog: the gateway's BYE gets 200 and ends the call; `hangup_after_ms` makes the trunk
//!   send its own BYE (a client transaction retransmitted at T1 doubling, 64·T1 timeout) to the
//!   gateway's Contact; re-INVITE, OPTIONS and other in-dialog requests get 200. A CANCEL matching
//!   a pending INVITE gets 200 and the INVITE 487; unmatched, 481. Out-of-dialog OPTIONS (the
//!   gateway's keepalive) get 200 and are counted. Requests for unknown dialogs get 481, other
//!   out-of-dialog requests 405. Retransmitted requests get the last response again and are never
//!   counted twice as calls.
//! * Media: per answered call one RTP socket on the SIP address's IP (two with
//!   `rtp_from_other_port`); every received packet is recorded ([`RtpRecord`]); 20 ms silence goes
//!   to the gateway's SDP address unless `send_rtp` is off.
//! * `packet_loss` drops that share of the call's SIP datagrams in both directions and of the RTP
//!   it receives, from a generator seeded with the Call-ID (the same loss pattern on every run).
//!
//! Everything the trunk sees is recorded per call ([`TrunkCall`], with the SIP ladder for failure
//! messages); tests wait on events with the `wait_for_*` methods, which wake on changes (no
//! polling) and work from any runtime. Unparseable datagrams are logged at `debug` and dropped;
//! nothing the network sends can make the trunk panic.

mod auth;
mod behaviour;
mod call;
mod dialog;
mod media;
mod records;
mod server;
mod uas;
mod wire;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use actors::sip::digest::Credentials;
use tokio::sync::oneshot;

pub use behaviour::{CallOutcome, ChallengeMode, CodecChoice, VoiceBehaviour};
pub use records::{EndedBy, RtpRecord, SipDirection, SipLogEntry, TrunkCall};

use records::Store;
use wire::normalize_destination;

/// The digest realm of every DIDWW outbound endpoint (reference §4.4).
pub const DEFAULT_REALM: &str = "out.didww.com";

/// How many [`TrunkCall`] records are kept by default (oldest ended ones dropped first).
pub const MAX_RECORDS: usize = 10_000;

/// RFC 3261 §17.1.1.1 T1 default, the base of the trunk's retransmission timers.
pub const DEFAULT_T1: Duration = Duration::from_millis(500);

/// Settings of a [`SandboxTrunk`].
#[derive(Clone, Debug)]
pub struct SandboxTrunkOptions {
    /// SIP address to bind, usually `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// Digest username the trunk accepts.
    pub username: String,
    /// Digest password the trunk accepts.
    pub password: String,
    /// Digest realm, [`DEFAULT_REALM`] by default.
    pub realm: String,
    /// Behaviour for destinations without their own.
    pub default_behaviour: VoiceBehaviour,
    /// Keep RTP payload bytes (off for benchmarks, which keep only arrival data).
    pub record_audio: bool,
    /// Send 20 ms silence RTP to the gateway during answered calls.
    pub send_rtp: bool,
    /// How many call records are kept.
    pub max_records: usize,
    /// T1 of the trunk's retransmission timers (200 OK, non-2xx finals, its BYE); tests shrink it.
    pub t1: Duration,
}

impl Default for SandboxTrunkOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            username: "sandbox".to_owned(),
            password: "sandbox".to_owned(),
            realm: DEFAULT_REALM.to_owned(),
            default_behaviour: VoiceBehaviour::default(),
            record_audio: true,
            send_rtp: true,
            max_records: MAX_RECORDS,
            t1: DEFAULT_T1,
        }
    }
}

/// State shared by the handle and the trunk's thread.
struct Shared {
    credentials: Credentials,
    realm: String,
    t1: Duration,
    record_audio: bool,
    send_rtp: bool,
    default_behaviour: Mutex<VoiceBehaviour>,
    behaviours: Mutex<HashMap<String, VoiceBehaviour>>,
    store: Arc<Store>,
}

impl Shared {
    fn behaviour_for(&self, destination: &str) -> VoiceBehaviour {
        let key = normalize_destination(destination);
        if let Some(b) = lock(&self.behaviours).get(&key) {
            return b.clone();
        }
        lock(&self.default_behaviour).clone()
    }
}

/// Locks a mutex, recovering the data if a previous holder panicked (the trunk must not panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Running {
    shutdown: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// A running simulated DIDWW SIP trunk. Stops when [`SandboxTrunk::stop`] is called or the handle
/// is dropped.
pub struct SandboxTrunk {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for SandboxTrunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxTrunk")
            .field("addr", &self.addr)
            .field("realm", &self.shared.realm)
            .finish_non_exhaustive()
    }
}

impl SandboxTrunk {
    /// Binds `options.bind` and starts the trunk on a dedicated thread. Returns once the socket is
    /// bound; fails if binding or building the thread's runtime fails.
    pub fn start(options: SandboxTrunkOptions) -> io::Result<SandboxTrunk> {
        let socket = crate::voice::channel::bind_sip_socket(options.bind)?;
        socket.set_nonblocking(true)?;
        let mut addr = socket.local_addr()?;
        // Contact, Record-Route and SDP must name an address the gateway can reach.
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        let shared = Arc::new(Shared {
            credentials: Credentials {
                username: options.username,
                password: options.password,
            },
            realm: options.realm,
            t1: options.t1,
            record_audio: options.record_audio,
            send_rtp: options.send_rtp,
            default_behaviour: Mutex::new(options.default_behaviour),
            behaviours: Mutex::new(HashMap::new()),
            store: Arc::new(Store::new(options.max_records)),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sandbox-sip-trunk".to_owned())
            .spawn(move || {
                runtime.block_on(server::run(socket, thread_shared, addr, shutdown_rx));
            })?;
        tracing::info!(%addr, "sandbox SIP trunk (simulated DIDWW) listening");
        Ok(SandboxTrunk {
            shared,
            addr,
            running: Mutex::new(Some(Running { shutdown, thread })),
        })
    }

    /// The trunk's SIP address (loopback when bound to an unspecified address): give it to the
    /// gateway as `DIDWW_SIP_HOST`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The digest realm it challenges with.
    pub fn realm(&self) -> &str {
        &self.shared.realm
    }

    /// Sets the behaviour for one destination (digits; a leading `+` is ignored). Applies to calls
    /// whose first INVITE arrives afterwards.
    pub fn set_behaviour(&self, destination_digits: &str, behaviour: VoiceBehaviour) {
        lock(&self.shared.behaviours).insert(normalize_destination(destination_digits), behaviour);
    }

    /// Sets the behaviour for destinations without their own.
    pub fn set_default_behaviour(&self, behaviour: VoiceBehaviour) {
        *lock(&self.shared.default_behaviour) = behaviour;
    }

    /// Forgets all per-destination behaviours (the default stays).
    pub fn clear_behaviours(&self) {
        lock(&self.shared.behaviours).clear();
    }

    /// The default behaviour and the per-destination ones (by digits).
    pub fn behaviours(&self) -> (VoiceBehaviour, HashMap<String, VoiceBehaviour>) {
        (
            lock(&self.shared.default_behaviour).clone(),
            lock(&self.shared.behaviours).clone(),
        )
    }

    /// The behaviour a call to `destination_digits` would get now.
    pub fn behaviour_for(&self, destination_digits: &str) -> VoiceBehaviour {
        self.shared.behaviour_for(destination_digits)
    }

    /// Every kept call, oldest first.
    pub fn calls(&self) -> Vec<TrunkCall> {
        self.shared.store.calls()
    }

    /// One call by Call-ID.
    pub fn call(&self, call_id: &str) -> Option<TrunkCall> {
        self.shared.store.call(call_id)
    }

    /// Calls that have started and not ended.
    pub fn live_calls(&self) -> usize {
        self.shared.store.live()
    }

    /// Out-of-dialog OPTIONS answered (retransmissions not counted).
    pub fn options_received(&self) -> usize {
        self.shared.store.options()
    }

    /// Waits until a call to `destination` (a leading `+` ignored) exists and returns the oldest.
    pub async fn wait_for_call(
        &self,
        destination: &str,
        timeout: Duration,
    ) -> Result<TrunkCall, String> {
        let dest = normalize_destination(destination);
        self.wait_for_call_where(&format!("a call to {dest}"), timeout, |c| {
            normalize_destination(&c.destination) == dest
        })
        .await
    }

    /// Waits until some kept call satisfies `pred` (re-checked on every change) and returns the
    /// oldest that does. `what` describes it in the timeout error, which also shows every ladder.
    pub async fn wait_for_call_where(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&TrunkCall) -> bool,
    ) -> Result<TrunkCall, String> {
        self.shared
            .store
            .wait(what, timeout, |s| s.find(&mut pred))
            .await
    }

    /// Waits until at least `n` calls have ended in total and returns the kept ended calls.
    pub async fn wait_for_ended(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<TrunkCall>, String> {
        let what = format!("{n} ended call(s)");
        self.shared
            .store
            .wait(&what, timeout, |s| (s.ended() >= n).then_some(()))
            .await?;
        Ok(self
            .calls()
            .into_iter()
            .filter(|c| c.ended_at.is_some())
            .collect())
    }

    /// Waits until the call `call_id` has received at least `packets` RTP packets.
    pub async fn wait_for_rtp(
        &self,
        call_id: &str,
        packets: usize,
        timeout: Duration,
    ) -> Result<TrunkCall, String> {
        let what = format!("{packets} RTP packet(s) on call {call_id}");
        self.wait_for_call_where(&what, timeout, |c| {
            c.call_id == call_id && c.rtp.len() >= packets
        })
        .await
    }

    /// Waits until at least `n` out-of-dialog OPTIONS have been answered; returns the count.
    pub async fn wait_for_options(&self, n: usize, timeout: Duration) -> Result<usize, String> {
        let what = format!("{n} OPTIONS");
        self.shared
            .store
            .wait(&what, timeout, |s| {
                let got = s.options();
                (got >= n).then_some(got)
            })
            .await
    }

    /// Stops the trunk: its thread ends, sockets close, live calls are dropped without BYE.
    /// Idempotent; also done on drop.
    pub fn stop(&self) {
        let running = lock(&self.running).take();
        if let Some(Running { shutdown, thread }) = running {
            let _ = shutdown.send(());
            if thread.join().is_err() {
                tracing::error!(addr = %self.addr, "sandbox SIP trunk thread panicked");
            }
            tracing::info!(addr = %self.addr, "sandbox SIP trunk stopped");
        }
    }
}

impl Drop for SandboxTrunk {
    fn drop(&mut self) {
        self.stop();
    }
}
