//! `WebhookSender`: delivers the persistent webhook outbox to client URLs. One per gateway, started
//! by the wiring; on start it loads every pending delivery from the store (so deliveries resume after
//! a restart), then takes new ones from [`Enqueue`]. Deliveries of one request go out strictly in
//! event order, one at a time; different requests proceed in parallel. Each attempt re-checks the
//! target with the SSRF guard at send time, connects to the vetted address, signs the body, never
//! follows redirects, and is logged through the store. Failures retry with exponential backoff up
//! to `WEBHOOK_MAX_ATTEMPTS`; a blocked target is never retried. [`Flush`] answers once nothing is
//! due (graceful shutdown).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::ids::RequestId;
use crate::store::{AttemptOutcome, OutboxItem, Store, WebhookAttempt};
use crate::webhook::{signature, ssrf};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Delivery settings from the configuration.
#[derive(Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_TIMEOUT_MS`: whole-attempt timeout.
    pub timeout: Duration,
    /// `WEBHOOK_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `WEBHOOK_SIGNING_SECRET`.
    pub signing_secret: Vec<u8>,
    /// `WEBHOOK_ALLOW_PRIVATE`.
    pub allow_private: bool,
    /// `WEBHOOK_RETRY_BASE_MS`: first retry delay, doubled per attempt.
    pub retry_base: Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("signing_secret", &"***")
            .field("allow_private", &self.allow_private)
            .field("retry_base", &self.retry_base)
            .finish()
    }
}

/// Queue one delivery (already stored in the outbox).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub OutboxItem);

/// Resolves once no delivery is due now (retries scheduled for later are left to the next start).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush(pub oneshot::Sender<()>);

/// Deliveries queued or in flight.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountQueued;

/// One attempt finished (internal).
#[derive(Message)]
#[rtype(result = "()")]
struct AttemptFinished {
    request_id: RequestId,
    outbox_id: i64,
    outcome: AttemptOutcome,
}

/// The sender actor.
pub struct WebhookSender {
    settings: Arc<WebhookSettings>,
    store: Arc<dyn Store>,
    client: awc::Client,
    queues: HashMap<RequestId, BTreeMap<i64, OutboxItem>>,
    busy: HashSet<RequestId>,
    flushes: Vec<oneshot::Sender<()>>,
    /// Highest outbox id loaded at start. The writer commits rows in id order, so every row up to it
    /// was in the loaded snapshot; an [`Enqueue`] for such a row is a duplicate (it may even have
    /// been delivered already) and is ignored.
    loaded_up_to: i64,
}

impl WebhookSender {
    /// A sender over the store; loads pending deliveries when started.
    pub fn new(settings: WebhookSettings, store: Arc<dyn Store>) -> Self {
        let client = awc::Client::builder()
            .timeout(settings.timeout)
            .disable_redirects()
            .connector(awc::Connector::new().timeout(settings.timeout).limit(1024))
            .finish();
        Self {
            settings: Arc::new(settings),
            store,
            client,
            queues: HashMap::new(),
            busy: HashSet::new(),
            flushes: Vec::new(),
            loaded_up_to: 0,
        }
    }

    fn add(&mut self, item: OutboxItem, ctx: &mut Context<Self>) {
        let request_id = item.request_id;
        self.queues
            .entry(request_id)
            .or_default()
            .insert(item.id, item);
        self.pump(request_id, ctx);
    }

    /// Starts the next delivery of a request if none is in flight and it is due.
    fn pump(&mut self, request_id: RequestId, ctx: &mut Context<Self>) {
        if self.busy.contains(&request_id) {
            return;
        }
        let Some(item) = self
            .queues
            .get(&request_id)
            .and_then(|q| q.values().next())
            .cloned()
        else {
            self.queues.remove(&request_id);
            self.answer_flushes();
            return;
        };
        let wait = item.next_attempt_at - now_ms();
        self.busy.insert(request_id);
        if wait > 0 {
            ctx.run_later(
                Duration::from_millis(wait.unsigned_abs()),
                move |act, ctx| {
                    act.busy.remove(&request_id);
                    act.pump(request_id, ctx);
                },
            );
            self.answer_flushes();
            return;
        }
        let attempt = deliver(
            self.client.clone(),
            Arc::clone(&self.settings),
            Arc::clone(&self.store),
            item,
        );
        let me = ctx.address();
        actix::spawn(async move {
            let finished = attempt.await;
            me.do_send(finished);
        });
    }

    /// Answers waiting flushes when every queued delivery is waiting for a later retry.
    fn answer_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let now = now_ms();
        let due = self
            .queues
            .values()
            .any(|q| q.values().next().is_some_and(|i| i.next_attempt_at <= now));
        if !due {
            for done in self.flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }
}

/// Delay before attempt `attempts + 1`.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Makes one attempt and logs it; returns what to do next.
async fn deliver(
    client: awc::Client,
    settings: Arc<WebhookSettings>,
    store: Arc<dyn Store>,
    item: OutboxItem,
) -> AttemptFinished {
    let started = Instant::now();
    let at = now_ms();
    let number = item.attempts + 1;
    let (status_code, error, failed_for_good) = attempt_once(&client, &settings, &item).await;
    let outcome = match (status_code, failed_for_good) {
        (_, true) => AttemptOutcome::Blocked,
        (Some(code), _) if (200..300).contains(&code) => AttemptOutcome::Delivered,
        _ if number >= settings.max_attempts => AttemptOutcome::GaveUp,
        _ => {
            // The delay runs from the end of the failed attempt, so a slow failure (a timeout)
            // still backs off instead of being retried at once.
            let delay = backoff(settings.retry_base, number);
            AttemptOutcome::RetryAt(
                now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
            )
        }
    };
    match outcome {
        AttemptOutcome::Delivered => {
            tracing::debug!(request_id = %item.request_id, event = %item.event, attempt = number, "webhook delivered")
        }
        AttemptOutcome::Blocked => {
            tracing::warn!(request_id = %item.request_id, error = ?error, "webhook target refused by SSRF guard; not retried")
        }
        AttemptOutcome::GaveUp => {
            tracing::warn!(request_id = %item.request_id, event = %item.event, attempts = number, status = ?status_code, error = ?error, "webhook delivery gave up")
        }
        AttemptOutcome::RetryAt(_) => {
            tracing::info!(request_id = %item.request_id, event = %item.event, attempt = number, status = ?status_code, error = ?error, "webhook attempt failed; will retry")
        }
    }
    let logged = store.record_webhook_attempt(WebhookAttempt {
        outbox_id: item.id,
        request_id: item.request_id,
        attempt: number,
        status_code,
        error,
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        at,
        outcome,
    });
    if let Err(err) = logged.await {
        tracing::error!(request_id = %item.request_id, error = %err, "webhook attempt could not be logged");
    }
    AttemptFinished {
        request_id: item.request_id,
        outbox_id: item.id,
        outcome,
    }
}

/// One HTTP attempt: (status, error text, blocked-for-good). The whole attempt (resolution, request,
/// response head and draining the body) is bounded by `WEBHOOK_TIMEOUT_MS`.
async fn attempt_once(
    client: &awc::Client,
    settings: &WebhookSettings,
    item: &OutboxItem,
) -> (Option<u16>, Option<String>, bool) {
    let deadline = tokio::time::Instant::now() + settings.timeout;
    let url = match ssrf::check_url_syntax(&item.url) {
        Ok(url) => url,
        Err(err) => return (None, Some(err.to_string()), true),
    };
    let resolved =
        tokio::time::timeout_at(deadline, ssrf::resolve_vetted(&url, settings.allow_private)).await;
    let addr = match resolved {
        Ok(Ok(addr)) => addr,
        Ok(Err(ssrf::SsrfError::Unresolvable(detail))) => {
            return (None, Some(format!("unresolvable: {detail}")), false)
        }
        Ok(Err(err)) => return (None, Some(err.to_string()), true),
        Err(_) => {
            return (
                None,
                Some("timed out resolving the webhook host".to_owned()),
                false,
            )
        }
    };
    let timestamp = now_ms() / 1000;
    let signature = signature::sign(&settings.signing_secret, timestamp, &item.body);
    let sent = client
        .post(url.as_str())
        .address(addr)
        .insert_header(("Content-Type", "application/json"))
        .insert_header((
            "User-Agent",
            concat!("otp-gateway/", env!("CARGO_PKG_VERSION")),
        ))
        .insert_header(("X-Webhook-Event", item.event.as_str()))
        .insert_header(("X-Request-ID", item.request_id.to_string()))
        .insert_header(("X-Webhook-Id", item.webhook_id.as_str()))
        .insert_header(("X-Webhook-Timestamp", timestamp.to_string()))
        .insert_header(("X-Webhook-Signature", signature))
        .timeout(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .send_body(item.body.clone())
        .await;
    match sent {
        Ok(mut response) => {
            let status = response.status().as_u16();
            // Drain a little of the body so the connection can be reused; its content is ignored.
            // awc does not bound body reads by the request timeout, so bound it here: a receiver
            // that answers the status line and then stalls must not hold the request's queue.
            let _ = tokio::time::timeout_at(deadline, response.body().limit(16 * 1024)).await;
            let error = (!(200..300).contains(&status)).then(|| format!("HTTP {status}"));
            (Some(status), error, false)
        }
        Err(err) => (None, Some(err.to_string()), false),
    }
}

impl Actor for WebhookSender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(100_000);
        self.load_outbox(ctx);
    }
}

impl WebhookSender {
    /// Loads every pending delivery (start-up); retried until it works. New deliveries wait in the
    /// mailbox meanwhile, so none overtakes an older one of its request.
    fn load_outbox(&mut self, ctx: &mut Context<Self>) {
        let pending = self.store.list_pending_webhooks();
        ctx.wait(
            pending
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(items) => {
                        if !items.is_empty() {
                            tracing::info!(count = items.len(), "resuming webhook deliveries");
                        }
                        for item in items {
                            act.loaded_up_to = act.loaded_up_to.max(item.id);
                            act.add(item, ctx);
                        }
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "could not load the webhook outbox; retrying in 1 s");
                        ctx.run_later(Duration::from_secs(1), |act, ctx| act.load_outbox(ctx));
                    }
                }),
        );
    }
}

impl Handler<Enqueue> for WebhookSender {
    type Result = ();
    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) {
        if msg.0.id <= self.loaded_up_to {
            return;
        }
        self.add(msg.0, ctx);
    }
}

impl Handler<AttemptFinished> for WebhookSender {
    type Result = ();
    fn handle(&mut self, msg: AttemptFinished, ctx: &mut Context<Self>) {
        self.busy.remove(&msg.request_id);
        if let Some(queue) = self.queues.get_mut(&msg.request_id) {
            match msg.outcome {
                AttemptOutcome::RetryAt(at) => {
                    if let Some(item) = queue.get_mut(&msg.outbox_id) {
                        item.attempts += 1;
                        item.next_attempt_at = at;
                    }
                }
                _ => {
                    queue.remove(&msg.outbox_id);
                }
            }
        }
        self.pump(msg.request_id, ctx);
    }
}

impl Handler<Flush> for WebhookSender {
    type Result = ();
    fn handle(&mut self, msg: Flush, _: &mut Context<Self>) {
        self.flushes.push(msg.0);
        self.answer_flushes();
    }
}

impl Handler<CountQueued> for WebhookSender {
    type Result = usize;
    fn handle(&mut self, _: CountQueued, _: &mut Context<Self>) -> usize {
        self.queues.values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 4), Duration::from_secs(16));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }
}
