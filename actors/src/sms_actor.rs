//! `SmsActor`: the DIDWW SMS OUT API client. One per gateway, started by the wiring when SMS is
//! enabled; lives as long as the system. Handles [`SendSms`] from request actors, submits the
//! JSON:API message with Basic auth and timeouts, and answers the requester with [`SmsSubmitted`].
//! Carrier error details go to operators (internal event data), never to clients.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use base64::Engine;

use crate::didww_sms::{self, JSONAPI_CONTENT_TYPE};
use crate::ids::{ProviderMessageId, RequestId};
use crate::provider_index::ProviderIndex;
use crate::store::ProviderMatch;

/// Longest the TCP/TLS connect to DIDWW may take, whatever the response timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach DIDWW.
#[derive(Clone)]
pub struct SmsSettings {
    /// `SMS_API_ENDPOINT`.
    pub endpoint: String,
    /// `SMS_USERNAME`.
    pub username: String,
    /// `SMS_PASSWORD`.
    pub password: String,
    /// Sender: `SMS_CALLER_ID` or `DIDWW_CALLER_ID`, digits only.
    pub source: String,
    /// `SMS_MESSAGE_TEMPLATE`; `{code}` is replaced by the code.
    pub template: String,
    /// Response timeout of one API call.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsSettings")
            .field("endpoint", &self.endpoint)
            .field("username", &self.username)
            .field("password", &"***")
            .field("source", &self.source)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Submit one OTP SMS.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendSms {
    /// The request.
    pub request_id: RequestId,
    /// Plan index of this attempt.
    pub attempt: usize,
    /// Destination, `+E164`.
    pub phone: String,
    /// The code (kept in memory only).
    pub code: String,
    /// Who gets the [`SmsSubmitted`].
    pub reply_to: Recipient<SmsSubmitted>,
}

/// How a submission ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// 201 with a message id.
    Accepted(ProviderMessageId),
    /// DIDWW answered an error status (or a 2xx without an id).
    Rejected {
        /// HTTP status.
        http_status: u16,
        /// The carrier's JSON:API error, for operators.
        error: didww_sms::ApiError,
    },
    /// No answer: connect failure, timeout, broken response.
    Transport(String),
}

/// The answer to a [`SendSms`].
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SmsSubmitted {
    /// The request.
    pub request_id: RequestId,
    /// Plan index of this attempt.
    pub attempt: usize,
    /// Outcome.
    pub outcome: SubmitOutcome,
}

/// The SMS API client actor.
pub struct SmsActor {
    settings: SmsSettings,
    authorization: String,
    client: awc::Client,
    index: Arc<ProviderIndex>,
}

impl SmsActor {
    /// Builds the client; nothing is sent until a [`SendSms`] arrives.
    pub fn new(settings: SmsSettings, index: Arc<ProviderIndex>) -> Self {
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", settings.username, settings.password));
        let client = awc::Client::builder()
            .timeout(settings.timeout)
            .disable_redirects()
            .connector(
                awc::Connector::new()
                    .timeout(settings.timeout.min(MAX_CONNECT_TIMEOUT))
                    .limit(512),
            )
            .finish();
        Self {
            authorization: format!("Basic {credentials}"),
            settings,
            client,
            index,
        }
    }

    /// The message text for a code.
    pub fn render(template: &str, code: &str) -> String {
        template.replace("{code}", code)
    }
}

impl Actor for SmsActor {
    type Context = Context<Self>;
}

impl Handler<SendSms> for SmsActor {
    type Result = ();

    fn handle(&mut self, msg: SendSms, ctx: &mut Context<Self>) {
        let destination = msg.phone.trim_start_matches('+').to_owned();
        let content = Self::render(&self.settings.template, &msg.code);
        let body = didww_sms::outbound_message_body(&destination, &self.settings.source, &content);
        let request = self
            .client
            .post(&self.settings.endpoint)
            .insert_header(("Authorization", self.authorization.as_str()))
            .insert_header(("Content-Type", JSONAPI_CONTENT_TYPE))
            .insert_header(("Accept", JSONAPI_CONTENT_TYPE))
            .insert_header((
                "User-Agent",
                concat!("otp-gateway/", env!("CARGO_PKG_VERSION")),
            ));
        let index = Arc::clone(&self.index);
        let ticket = index.submission_started();
        let timeout = self.settings.timeout;
        let fut = async move {
            // awc's timeout covers the request and the response head; the whole exchange,
            // body included, must fit in the same budget or a stalled body would hang the attempt.
            let deadline = tokio::time::Instant::now() + timeout;
            let outcome = match request.send_body(body).await {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let bytes = tokio::time::timeout_at(deadline, response.body().limit(64 * 1024))
                        .await
                        .unwrap_or_else(|_| {
                            Err(awc::error::PayloadError::Io(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "response body timed out",
                            )))
                        });
                    match bytes {
                        Ok(bytes) if (200..300).contains(&status) => {
                            match didww_sms::message_id_of(&bytes) {
                                Some(id) => SubmitOutcome::Accepted(id),
                                None => SubmitOutcome::Rejected {
                                    http_status: status,
                                    error: didww_sms::ApiError {
                                        detail: Some("2xx answer without data.id".into()),
                                        ..Default::default()
                                    },
                                },
                            }
                        }
                        Ok(bytes) => SubmitOutcome::Rejected {
                            http_status: status,
                            error: didww_sms::api_error_of(&bytes),
                        },
                        Err(err) => SubmitOutcome::Transport(format!("reading response: {err}")),
                    }
                }
                Err(err) => SubmitOutcome::Transport(err.to_string()),
            };
            let reply = SmsSubmitted {
                request_id: msg.request_id,
                attempt: msg.attempt,
                outcome: outcome.clone(),
            };
            // The requester's mailbox gets the answer before the id becomes findable, so a callback
            // routed through the index always queues behind it.
            msg.reply_to.do_send(reply);
            // A requester that is gone (expired, verified) would never forget the id again.
            let accepted = match outcome {
                SubmitOutcome::Accepted(id) if msg.reply_to.connected() => Some((
                    id,
                    ProviderMatch {
                        request_id: msg.request_id,
                        attempt: msg.attempt,
                    },
                )),
                _ => None,
            };
            index.submission_finished(ticket, accepted);
        };
        ctx.spawn(fut.into_actor(self));
    }
}
