//! Simulated DIDWW SMS OUT API (the sandbox SMS carrier).
//!
//! [`SandboxSms`] is a test double of DIDWW's HTTP OUT trunk: an actix-web server on loopback that
//! speaks the wire format of `reference/didww-wire-formats.md` §1 and posts the callbacks of §2 back
//! to the gateway. The gateway's real SMS client talks to it over real HTTP, so everything on the
//! gateway side (request building, auth, error parsing, callback handling) is exercised for real.
//!
//! The simulated API:
//!
//! * `POST /outbound_messages`: checks HTTP Basic auth (401), `Content-Type` exactly
//!   `application/vnd.api+json` (415) and the JSON:API body (400 `Invalid request` / `type is
//!   invalid`), then applies the [`SmsBehaviour`] chosen for the destination: usually a 201 with a
//!   fresh UUID v4 in `data.id`, followed by a processing callback (`outbound_message_callbacks`)
//!   and, depending on the behaviour, a DLR (`dlr_event`).
//! * Callbacks are POSTed to [`SandboxSmsOptions::callback_url`] with
//!   `Content-Type: application/vnd.api+json`, each after [`SandboxSmsOptions::callback_delay`], in
//!   order (the DLR only after the processing callback got its answer). A non-2xx answer or a
//!   transport error is retried up to [`CALLBACK_RETRIES`] times, then given up.
//! * Control routes for tests that run the gateway as a separate process:
//!   `POST /sandbox/behaviours` (`{"destination":"<digits>","behaviour":{..}}` or
//!   `{"default":{..}}`), `GET /sandbox/behaviours`, `DELETE /sandbox/behaviours` (forget the
//!   per-destination behaviours), `GET /sandbox/received` and `GET /sandbox/callbacks`.
//! * Anything else answers 404 with a JSON:API error body.
//!
//! The simulator never panics on input; it logs with `tracing` (`debug` per message, `warn` for
//! callbacks the gateway did not accept).

mod callbacks;
mod server;
mod wire;

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use wire::iso8601_utc;

/// How many times a callback is retried after a non-2xx answer or a transport error (so a callback
/// is attempted at most `1 + CALLBACK_RETRIES` times).
pub const CALLBACK_RETRIES: u32 = 3;

/// How many [`ReceivedSms`] and [`SentCallback`] records are kept in memory (the oldest are dropped
/// first), so that a long `--sandbox` run or a benchmark does not grow without bound. The counts
/// used by [`SandboxSms::wait_for_received`] and [`SandboxSms::wait_for_callbacks`] keep counting.
pub const MAX_RECORDS: usize = 100_000;

/// What the simulated carrier does with a message sent to a given destination.
///
/// Serialized with an internal `kind` tag in snake case, e.g. `{"kind":"delivered"}`,
/// `{"kind":"failed","code_id":1}`, `{"kind":"no_dlr"}`,
/// `{"kind":"undelivered","status":"EXPIRED"}`, `{"kind":"api_error","status":500}`,
/// `{"kind":"slow","delay_ms":250}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SmsBehaviour {
    /// 201, then the processing callback `Success` (`code_id` null, `fragments_sent` 1, `price`
    /// 0.0079), then the DLR `DELIVERED`.
    #[default]
    Delivered,
    /// 201, then the processing callback with this `code_id`: status `Routing error` for code_id 1,
    /// 3 and 105, `Failed` otherwise; `fragments_sent` 0, `price` 0. No DLR.
    Failed {
        /// DIDWW processing failure code (wire format §2.4).
        code_id: i64,
    },
    /// 201, then the processing callback `Success` only; the DLR never comes.
    NoDlr,
    /// 201, then `Success`, then a DLR with this status (upper-cased), e.g. `EXPIRED`.
    Undelivered {
        /// Final carrier status put in the DLR.
        status: String,
    },
    /// Answers this HTTP status with a JSON:API error body (400 `Invalid request`, 401
    /// `Unauthorized`, 429 with `Retry-After: 1`, 500, ...). No callbacks.
    ApiError {
        /// HTTP status to answer (an invalid code answers 500).
        status: u16,
    },
    /// Waits `delay_ms` before answering 201, then behaves as [`SmsBehaviour::Delivered`].
    Slow {
        /// Delay before the 201, in milliseconds.
        delay_ms: u64,
    },
}

/// Settings of a [`SandboxSms`].
#[derive(Clone, Debug)]
pub struct SandboxSmsOptions {
    /// Address to listen on, usually `127.0.0.1:0` (an ephemeral port; see [`SandboxSms::endpoint`]).
    pub bind: SocketAddr,
    /// HTTP Basic username the API requires (the "trunk" credentials).
    pub username: String,
    /// HTTP Basic password the API requires.
    pub password: String,
    /// Full URL the callbacks are POSTed to, including any `?token=`. Empty: no callbacks are sent.
    pub callback_url: String,
    /// Delay between the 201 and the first callback, and between the callbacks.
    pub callback_delay: Duration,
    /// Behaviour for destinations without their own (see [`SandboxSms::set_behaviour`]).
    pub default_behaviour: SmsBehaviour,
    /// How many received requests and callbacks are kept for inspection (oldest dropped first);
    /// tests keep [`MAX_RECORDS`], a long-running `--sandbox` gateway keeps a few.
    pub max_records: usize,
}

impl Default for SandboxSmsOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            username: "sandbox".to_owned(),
            password: "sandbox".to_owned(),
            callback_url: String::new(),
            callback_delay: Duration::from_millis(20),
            default_behaviour: SmsBehaviour::Delivered,
            max_records: MAX_RECORDS,
        }
    }
}

/// One HTTP request that reached the simulated API (anything but the `/sandbox/*` control routes),
/// valid or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedSms {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path (without the query string).
    pub path: String,
    /// The `Content-Type` header as sent.
    pub content_type: Option<String>,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    /// The body as text (invalid UTF-8 replaced).
    pub raw_body: String,
    /// The body parsed as JSON, when it is JSON.
    pub body: Option<serde_json::Value>,
    /// The message id the API answered with (or, for [`SmsBehaviour::Slow`], will answer with);
    /// `None` when the request was refused.
    pub message_id: Option<String>,
    /// When it arrived (ISO-8601 UTC).
    pub received_at: String,
}

/// Which callback a [`SentCallback`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    /// The message status callback (`outbound_message_callbacks`).
    Processing,
    /// The delivery receipt (`dlr_event`).
    Dlr,
}

/// One callback attempt the simulator POSTed to the callback URL (retries are separate records
/// with a higher `attempt`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentCallback {
    /// The message id (`data.id`).
    pub message_id: String,
    /// Processing callback or DLR.
    pub kind: CallbackKind,
    /// 1 for the first try, up to `1 + CALLBACK_RETRIES`.
    pub attempt: u32,
    /// The JSON body posted.
    pub body: serde_json::Value,
    /// HTTP status the gateway answered, if it answered.
    pub status: Option<u16>,
    /// Transport error, if it did not.
    pub error: Option<String>,
    /// The gateway's response body (truncated to 64 KiB), if it answered.
    pub response_body: Option<String>,
    /// When the attempt was made (ISO-8601 UTC).
    pub sent_at: String,
}

impl SentCallback {
    /// True when the gateway answered 2xx.
    pub fn accepted(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }
}

/// A bounded, append-only log with a running total that waiters can watch.
struct RecordLog<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    total: watch::Sender<usize>,
}

impl<T: Clone> RecordLog<T> {
    fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            capacity,
            total: watch::Sender::new(0),
        }
    }

    fn push(&self, item: T) {
        {
            let mut items = lock(&self.items);
            if self.capacity == 0 {
                // Recording off: only the running total is kept.
            } else {
                if items.len() >= self.capacity {
                    items.pop_front();
                }
                items.push_back(item);
            }
        }
        self.total.send_modify(|n| *n += 1);
    }

    fn snapshot(&self) -> Vec<T> {
        lock(&self.items).iter().cloned().collect()
    }

    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<T> {
        let mut rx = self.total.subscribe();
        // A timeout simply returns what there is; the sender lives as long as `self`.
        let _ = tokio::time::timeout(timeout, rx.wait_for(|total| *total >= n)).await;
        self.snapshot()
    }
}

/// State shared by the handle(s) and the server worker.
struct Inner {
    username: String,
    password: String,
    callback_url: String,
    callback_delay: Duration,
    default_behaviour: Mutex<SmsBehaviour>,
    behaviours: Mutex<HashMap<String, SmsBehaviour>>,
    received: RecordLog<ReceivedSms>,
    callbacks: RecordLog<SentCallback>,
    handle: Mutex<Option<ServerHandle>>,
}

impl Inner {
    fn behaviour_for(&self, destination: &str) -> SmsBehaviour {
        if let Some(b) = lock(&self.behaviours).get(destination) {
            return b.clone();
        }
        lock(&self.default_behaviour).clone()
    }
}

/// Locks a mutex, recovering the data if a previous holder panicked (the simulator must not panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Destination keys are digits without a leading `+`.
fn normalize_destination(destination: &str) -> String {
    destination.trim().trim_start_matches('+').to_owned()
}

/// A running simulated DIDWW SMS OUT API. Cheap to clone (an `Arc` inside); all clones control the
/// same server.
#[derive(Clone)]
pub struct SandboxSms {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl std::fmt::Debug for SandboxSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxSms")
            .field("addr", &self.addr)
            .field("callback_url", &self.inner.callback_url)
            .finish_non_exhaustive()
    }
}

impl SandboxSms {
    /// Binds an actix-web server (one worker) on `opts.bind` and spawns it on the current runtime.
    ///
    /// Call it from inside a running actix `System` (e.g. `#[actix_web::test]`) or another Tokio
    /// runtime. Returns once the socket is bound; fails if binding fails or no runtime is running.
    pub fn start(opts: SandboxSmsOptions) -> std::io::Result<SandboxSms> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            std::io::Error::other(format!("SandboxSms::start needs a running runtime: {e}"))
        })?;
        let inner = Arc::new(Inner {
            username: opts.username,
            password: opts.password,
            callback_url: opts.callback_url,
            callback_delay: opts.callback_delay,
            default_behaviour: Mutex::new(opts.default_behaviour),
            behaviours: Mutex::new(HashMap::new()),
            received: RecordLog::new(opts.max_records),
            callbacks: RecordLog::new(opts.max_records),
            handle: Mutex::new(None),
        });
        let (server, addr) = server::start(opts.bind, Arc::clone(&inner))?;
        *lock(&inner.handle) = Some(server.handle());
        runtime.spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "sandbox SMS API server failed");
            }
        });
        tracing::info!(
            %addr,
            "sandbox SMS API (simulated DIDWW SMS OUT) listening"
        );
        Ok(SandboxSms { inner, addr })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to give the gateway as its SMS API endpoint:
    /// `http://127.0.0.1:<port>/outbound_messages`.
    pub fn endpoint(&self) -> String {
        format!("{}/outbound_messages", self.base_url())
    }

    /// Base URL of the server (`http://127.0.0.1:<port>`), e.g. for the `/sandbox/*` routes. An
    /// unspecified bind address (`0.0.0.0`, `::`) is given as loopback.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}")
    }

    /// Sets the behaviour for one destination (digits; a leading `+` is ignored).
    pub fn set_behaviour(&self, destination_digits: &str, b: SmsBehaviour) {
        let key = normalize_destination(destination_digits);
        lock(&self.inner.behaviours).insert(key, b);
    }

    /// Sets the behaviour for destinations without their own.
    pub fn set_default_behaviour(&self, b: SmsBehaviour) {
        *lock(&self.inner.default_behaviour) = b;
    }

    /// Forgets all per-destination behaviours (the default stays).
    pub fn clear_behaviours(&self) {
        lock(&self.inner.behaviours).clear();
    }

    /// The behaviour a message to `destination_digits` would get now.
    pub fn behaviour_for(&self, destination_digits: &str) -> SmsBehaviour {
        self.inner
            .behaviour_for(&normalize_destination(destination_digits))
    }

    /// Every request that reached the API, in arrival order (the last [`MAX_RECORDS`]).
    pub fn received(&self) -> Vec<ReceivedSms> {
        self.inner.received.snapshot()
    }

    /// Every callback attempt posted, in order (the last [`MAX_RECORDS`]).
    pub fn callbacks_sent(&self) -> Vec<SentCallback> {
        self.inner.callbacks.snapshot()
    }

    /// Resolves as soon as at least `n` requests have been received in total, or after `timeout`,
    /// and returns [`SandboxSms::received`] either way.
    pub async fn wait_for_received(&self, n: usize, timeout: Duration) -> Vec<ReceivedSms> {
        self.inner.received.wait_for(n, timeout).await
    }

    /// Resolves as soon as at least `n` callback attempts have been recorded in total, or after
    /// `timeout`, and returns [`SandboxSms::callbacks_sent`] either way.
    pub async fn wait_for_callbacks(&self, n: usize, timeout: Duration) -> Vec<SentCallback> {
        self.inner.callbacks.wait_for(n, timeout).await
    }

    /// Stops the server (in-flight requests get up to one second); pending callbacks are dropped.
    pub async fn stop(&self) {
        let handle = lock(&self.inner.handle).take();
        if let Some(handle) = handle {
            handle.stop(true).await;
            tracing::info!(addr = %self.addr, "sandbox SMS API stopped");
        }
    }
}
