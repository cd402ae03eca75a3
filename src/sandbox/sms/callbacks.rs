//! Posting the processing callback and the DLR back to the gateway, in order, with retries.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;

use super::wire::{self, Message, Processing, JSON_API};
use super::{CallbackKind, Inner, SentCallback, CALLBACK_RETRIES};

/// Largest gateway response body kept in [`SentCallback::response_body`].
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// First retry delay; doubled for each further retry (50, 100, 200 ms).
const RETRY_BASE: Duration = Duration::from_millis(50);

/// What to post for one accepted message.
pub(super) struct Plan {
    pub id: String,
    pub message: Message,
    pub time_start: String,
    pub processing: Processing,
    /// DLR status to send after the processing callback, if any.
    pub dlr: Option<String>,
}

/// The HTTP client a worker posts callbacks with.
pub(super) fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(5))
        .disable_redirects()
        .finish()
}

/// Sends the callbacks of `plan` in the background on the current (worker) arbiter.
pub(super) fn spawn(inner: Arc<Inner>, client: awc::Client, plan: Plan) {
    if inner.callback_url.is_empty() {
        tracing::debug!(id = %plan.id, "sandbox SMS: no callback URL, no callbacks");
        return;
    }
    actix_rt::spawn(async move { deliver(&inner, &client, plan).await });
}

async fn deliver(inner: &Inner, client: &awc::Client, plan: Plan) {
    tokio::time::sleep(inner.callback_delay).await;
    let body = wire::processing_body(
        &plan.id,
        &plan.message,
        &plan.processing,
        &plan.time_start,
        &wire::now_iso(),
    );
    post_with_retries(inner, client, &plan.id, CallbackKind::Processing, body).await;

    // DIDWW's DLR does not depend on whether the gateway took the status callback.
    if let Some(status) = plan.dlr {
        tokio::time::sleep(inner.callback_delay).await;
        let body = wire::dlr_body(&plan.id, &plan.message, &status, &wire::now_iso());
        post_with_retries(inner, client, &plan.id, CallbackKind::Dlr, body).await;
    }
}

/// Posts one callback, retrying up to [`CALLBACK_RETRIES`] times; true when the gateway took it.
async fn post_with_retries(
    inner: &Inner,
    client: &awc::Client,
    id: &str,
    kind: CallbackKind,
    body: serde_json::Value,
) -> bool {
    let payload = Bytes::from(body.to_string());
    let mut delay = RETRY_BASE;
    for attempt in 1..=1 + CALLBACK_RETRIES {
        let sent_at = wire::now_iso();
        let result = client
            .post(inner.callback_url.as_str())
            .insert_header((header::CONTENT_TYPE, JSON_API))
            .send_body(payload.clone())
            .await;
        let (status, error, response_body) = match result {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = resp
                    .body()
                    .limit(MAX_RESPONSE_BODY)
                    .await
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
                (Some(status), None, text)
            }
            Err(e) => (None, Some(e.to_string()), None),
        };
        let record = SentCallback {
            message_id: id.to_owned(),
            kind,
            attempt,
            body: body.clone(),
            status,
            error,
            response_body,
            sent_at,
        };
        let accepted = record.accepted();
        if accepted {
            tracing::debug!(id, ?kind, attempt, status, "sandbox SMS callback accepted");
        } else {
            tracing::warn!(
                id,
                ?kind,
                attempt,
                status,
                error = record.error.as_deref().unwrap_or(""),
                "sandbox SMS callback not accepted by the gateway"
            );
        }
        inner.callbacks.push(record);
        if accepted {
            return true;
        }
        if attempt <= CALLBACK_RETRIES {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    tracing::warn!(id, ?kind, "sandbox SMS callback given up");
    false
}
