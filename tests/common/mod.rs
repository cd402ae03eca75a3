//! Shared integration-test harness: the real gateway on loopback against the sandbox carrier, a probe
//! on the live event feed (tests wait for events, never sleep), and a webhook receiver.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod hooks;
pub mod sipp;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use actors::broadcaster::{LiveUpdate, Subscribe, Topic};
use actors::store::RecordedEvent;
use actors::{EventType, RequestId, Status};
use otp_gateway::app::{self, Gateway};
use otp_gateway::config::Config;

/// The API secret of [`Config::for_tests`].
pub const SECRET: &str = "test-secret-0123456789";
/// How long a test waits for anything before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// A valid US number (libphonenumber) used by most tests.
pub const PHONE: &str = "+14155552671";

/// A gateway started for one test, with its own temporary database.
pub struct TestGateway {
    pub gateway: Gateway,
    pub url: String,
    pub client: awc::Client,
    pub events: EventProbe,
    _dir: tempfile::TempDir,
}

impl TestGateway {
    /// Starts with [`Config::for_tests`].
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with a tweaked test configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path().join("otp.db"));
        tweak(&mut config);
        let gateway = app::start(config).await.expect("gateway starts");
        let events = EventProbe::attach(&gateway).await;
        let url = gateway.api_url();
        let client = awc::Client::builder().timeout(PATIENCE).finish();
        Self {
            gateway,
            url,
            client,
            events,
            _dir: dir,
        }
    }

    /// The sandbox SMS API.
    pub fn sms(&self) -> &otp_gateway::sandbox::sms::SandboxSms {
        self.gateway.sandbox_sms.as_ref().unwrap()
    }

    /// The sandbox SIP trunk.
    pub fn trunk(&self) -> &otp_gateway::sandbox::sip::SandboxTrunk {
        self.gateway.sandbox_trunk.as_ref().expect("sandbox trunk")
    }

    /// The stored `otp_requests` row of `id`.
    pub async fn request_row(&self, id: RequestId) -> otp_gateway::db::models::request::RequestRow {
        let key = id.to_string();
        self.gateway
            .store
            .read(move |c| otp_gateway::db::models::request::find_by_id(c, &key))
            .await
            .unwrap()
            .expect("request row")
    }

    /// POSTs JSON with the API secret header; returns status and JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .insert_header(("X-API-Secret", SECRET))
            .send_json(&body)
            .await
            .unwrap();
        read_json(response).await
    }

    /// `POST /dispatch`; panics unless it answers 200. Returns the request id.
    pub async fn dispatch_ok(&self, body: Value) -> RequestId {
        let (status, answer) = self.post("/dispatch", body).await;
        assert_eq!(status, 200, "dispatch refused: {answer}");
        RequestId::parse(answer["request_id"].as_str().unwrap()).unwrap()
    }

    /// An SMS-only dispatch to `phone`.
    pub async fn dispatch_sms(&self, phone: &str, extra: Value) -> RequestId {
        let mut body = json!({"phone": phone, "code": "123456", "channels": ["sms"]});
        if let Value::Object(more) = extra {
            body.as_object_mut().unwrap().extend(more);
        }
        self.dispatch_ok(body).await
    }

    /// `GET /requests/{id}`.
    pub async fn request_view(&self, id: RequestId) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/requests/{id}", self.url))
            .insert_header(("X-API-Secret", SECRET))
            .send()
            .await
            .unwrap();
        read_json(response).await
    }

    /// `GET /requests/{id}`, asserting 200.
    pub async fn view_ok(&self, id: RequestId) -> Value {
        let (status, view) = self.request_view(id).await;
        assert_eq!(status, 200, "{view}");
        view
    }

    /// Posts a DIDWW callback body to `/webhooks/dlr` (optionally with `?token=`).
    pub async fn post_callback(&self, body: &str, token: Option<&str>) -> (u16, Value) {
        let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
        let response = self
            .client
            .post(format!("{}/webhooks/dlr{query}", self.url))
            .insert_header(("Content-Type", "application/vnd.api+json"))
            .send_body(body.to_owned())
            .await
            .unwrap();
        read_json(response).await
    }
}

/// A gateway with the fraud engine off (several requests to one phone) and the given tweak.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestGateway {
    TestGateway::start_with(|c| {
        c.fraud.enabled = false;
        tweak(c);
    })
    .await
}

/// A fixture body with its `data.id` replaced by a real message id.
pub fn with_id(fixture: &str, id: &str) -> String {
    let mut value: Value = serde_json::from_str(fixture).unwrap();
    value["data"]["id"] = serde_json::json!(id);
    value.to_string()
}

/// The DIDWW message id of the `n`-th (1-based) SMS the sandbox received.
pub async fn message_id(gw: &TestGateway, n: usize) -> String {
    let received = gw.sms().wait_for_received(n, PATIENCE).await;
    assert!(
        received.len() >= n,
        "sandbox got {} SMS, wanted {n}",
        received.len()
    );
    received[n - 1]
        .message_id
        .clone()
        .expect("the sandbox accepted the SMS")
}

/// Number of live request actors.
pub async fn live(gw: &TestGateway) -> usize {
    gw.gateway
        .dispatcher
        .send(actors::dispatcher::CountLive)
        .await
        .unwrap()
}

/// Event types listed by a `GET /requests/{id}` view, in order.
pub fn event_types(view: &Value) -> Vec<String> {
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads a JSON response (any status).
pub async fn read_json(
    mut response: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    >,
) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

/// Receives every stored event from the gateway's broadcaster.
pub struct EventProbe {
    rx: mpsc::UnboundedReceiver<Arc<RecordedEvent>>,
    seen: Vec<Arc<RecordedEvent>>,
}

struct ProbeActor(mpsc::UnboundedSender<Arc<RecordedEvent>>);

impl Actor for ProbeActor {
    type Context = Context<Self>;
}

impl Handler<LiveUpdate> for ProbeActor {
    type Result = ();
    fn handle(&mut self, msg: LiveUpdate, _: &mut Context<Self>) {
        if msg.topic == Topic::Events {
            let _ = self.0.send(msg.event);
        }
    }
}

impl EventProbe {
    async fn attach(gateway: &Gateway) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let probe = ProbeActor(tx).start();
        gateway
            .broadcaster
            .send(Subscribe {
                id: u64::MAX,
                topic: Topic::Events,
                recipient: probe.recipient(),
            })
            .await
            .unwrap();
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for `event` of `request`; returns it. Panics after [`PATIENCE`].
    pub async fn wait_for(&mut self, request: RequestId, event: EventType) -> Arc<RecordedEvent> {
        self.wait_until(request, &format!("a {event} event"), |e| {
            e.event_type == event
        })
        .await
    }

    /// Waits until `request` reaches `status`.
    pub async fn wait_for_status(
        &mut self,
        request: RequestId,
        status: Status,
    ) -> Arc<RecordedEvent> {
        self.wait_until(request, &format!("status {status}"), |e| e.status == status)
            .await
    }

    /// Waits for the first event of `request` matching `pred` (already seen or still to come).
    async fn wait_until(
        &mut self,
        request: RequestId,
        what: &str,
        pred: impl Fn(&RecordedEvent) -> bool,
    ) -> Arc<RecordedEvent> {
        let matches = |e: &Arc<RecordedEvent>| e.request_id == request && pred(e);
        if let Some(found) = self.seen.iter().find(|e| matches(e)) {
            return Arc::clone(found);
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let Ok(Some(ev)) = tokio::time::timeout_at(deadline, self.rx.recv()).await else {
                panic!(
                    "{request}: no {what} within {PATIENCE:?}; saw {:?}",
                    self.history(request)
                );
            };
            self.seen.push(Arc::clone(&ev));
            if matches(&ev) {
                return ev;
            }
        }
    }

    /// Event types seen so far for a request, in order.
    pub fn history(&self, request: RequestId) -> Vec<(EventType, Status)> {
        self.seen
            .iter()
            .filter(|e| e.request_id == request)
            .map(|e| (e.event_type, e.status))
            .collect()
    }
}
