//! A client webhook receiver on loopback that records every delivery and answers with a
//! programmable status sequence.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use tokio::sync::Notify;

/// One received delivery.
#[derive(Debug, Clone)]
pub struct Hook {
    pub event: String,
    pub request_id: String,
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub user_agent: String,
    pub content_type: String,
    pub raw_body: String,
    pub body: Value,
    /// The status this receiver answered.
    pub answered: u16,
    /// Every header, names in lower case.
    pub headers: BTreeMap<String, String>,
}

impl Hook {
    /// A header's value, `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Shared {
    hooks: Mutex<Vec<Hook>>,
    /// Statuses to answer next (front first); 200 when empty.
    script: Mutex<VecDeque<u16>>,
    arrived: Notify,
}

/// The receiver.
#[derive(Clone)]
pub struct HookReceiver {
    shared: Arc<Shared>,
    pub addr: SocketAddr,
    server: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let answered = shared.script.lock().unwrap().pop_front().unwrap_or(200);
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let hook = Hook {
        event: header("x-webhook-event"),
        request_id: header("x-request-id"),
        webhook_id: header("x-webhook-id"),
        timestamp: header("x-webhook-timestamp"),
        signature: header("x-webhook-signature"),
        user_agent: header("user-agent"),
        content_type: header("content-type"),
        body: serde_json::from_str(&raw_body).unwrap_or(Value::Null),
        raw_body,
        headers: req
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    value.to_str().unwrap_or("<binary>").to_owned(),
                )
            })
            .collect(),
        answered,
    };
    shared.hooks.lock().unwrap().push(hook);
    shared.arrived.notify_waiters();
    HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap()).finish()
}

impl HookReceiver {
    /// Starts on 127.0.0.1:0.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let data = web::Data::new(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            shared,
            addr,
            server: handle,
        }
    }

    /// URL to give as `webhook_url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.addr.port())
    }

    /// Answers these statuses to the next deliveries, in order.
    pub fn script(&self, statuses: &[u16]) {
        self.shared
            .script
            .lock()
            .unwrap()
            .extend(statuses.iter().copied());
    }

    /// Everything received so far.
    pub fn hooks(&self) -> Vec<Hook> {
        self.shared.hooks.lock().unwrap().clone()
    }

    /// Waits until `pred` holds over the received hooks (re-checked at each arrival).
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Hook]) -> bool) -> Vec<Hook> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let hooks = self.hooks();
            if pred(&hooks) {
                return hooks;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let hooks = self.hooks();
                assert!(
                    pred(&hooks),
                    "webhook condition not met in {timeout:?}; got {:#?}",
                    hooks
                        .iter()
                        .map(|h| (&h.event, h.answered))
                        .collect::<Vec<_>>()
                );
                return hooks;
            }
        }
    }

    /// What arrived for request `id` so far.
    pub fn of(&self, id: &str) -> Vec<Hook> {
        self.hooks()
            .into_iter()
            .filter(|h| h.request_id == id)
            .collect()
    }

    /// Waits until `n` deliveries for request `id` arrived; returns them.
    pub async fn wait_for(&self, id: &str, n: usize, timeout: Duration) -> Vec<Hook> {
        self.wait_until(timeout, |hooks| {
            hooks.iter().filter(|h| h.request_id == id).count() >= n
        })
        .await;
        self.of(id)
    }

    /// Stops the server.
    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}
