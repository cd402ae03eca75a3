//! The actix-web side of the simulator: the DIDWW API route, the `/sandbox/*` control routes and
//! the 404 fallback, all dispatched by one handler so every answer is a JSON body.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::callbacks::{self, Plan};
use super::wire::{self, ApiError, Processing, JSON_API};
use super::{normalize_destination, Inner, ReceivedSms, SmsBehaviour};

/// Largest request body read; a bigger body is answered 400 like any other invalid payload.
const MAX_BODY: usize = 1024 * 1024;

/// Per-worker state: the shared state plus this worker's (single-threaded) HTTP client.
struct Worker {
    inner: Arc<Inner>,
    client: awc::Client,
}

/// Builds and binds the server (not yet running: await or spawn the returned [`Server`]).
pub(super) fn start(bind: SocketAddr, inner: Arc<Inner>) -> io::Result<(Server, SocketAddr)> {
    let server = HttpServer::new(move || {
        let worker = Worker {
            inner: Arc::clone(&inner),
            client: callbacks::client(),
        };
        App::new()
            .app_data(web::Data::new(worker))
            .default_service(web::to(dispatch))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(bind)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("sandbox SMS API bound to no address"))?;
    Ok((server.run(), addr))
}

async fn dispatch(req: HttpRequest, payload: web::Payload, w: web::Data<Worker>) -> HttpResponse {
    let (body, too_large) = read_body(payload).await;
    let path = req.path();
    if path == "/sandbox" || path.starts_with("/sandbox/") {
        return control(&req, &body, &w.inner);
    }
    api(&req, body, too_large, &w).await
}

/// Reads the whole body, up to [`MAX_BODY`]; the flag says it was cut short (too big or broken).
async fn read_body(mut payload: web::Payload) -> (Bytes, bool) {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(chunk) if body.len() + chunk.len() <= MAX_BODY => body.extend_from_slice(&chunk),
            Ok(_) => return (body.freeze(), true),
            Err(e) => {
                tracing::debug!(error = %e, "sandbox SMS API: error reading request body");
                return (body.freeze(), true);
            }
        }
    }
    (body.freeze(), false)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn json_response(status: StatusCode, content_type: &'static str, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, content_type))
        .body(body.to_string())
}

fn error_response(err: &ApiError) -> HttpResponse {
    let mut resp = HttpResponse::build(err.status);
    resp.insert_header((header::CONTENT_TYPE, JSON_API));
    if err.status == StatusCode::TOO_MANY_REQUESTS {
        resp.insert_header((header::RETRY_AFTER, "1"));
    }
    resp.body(err.body().to_string())
}

/// What the API decided for one request.
enum Decision {
    Refuse(ApiError),
    Accept {
        id: String,
        message: wire::Message,
        behaviour: SmsBehaviour,
    },
}

fn decide(req: &HttpRequest, inner: &Inner, too_large: bool, parsed: Option<&Value>) -> Decision {
    if req.method() != Method::POST || req.path() != "/outbound_messages" {
        return Decision::Refuse(ApiError::new(StatusCode::NOT_FOUND, "Not found"));
    }
    let headers = req.headers();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !wire::auth_ok(authorization, &inner.username, &inner.password) {
        return Decision::Refuse(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !wire::content_type_ok(content_type) {
        return Decision::Refuse(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
        ));
    }
    if too_large {
        return Decision::Refuse(ApiError::bad_request());
    }
    let message = match wire::parse_message(parsed) {
        Ok(m) => m,
        Err(e) => return Decision::Refuse(e),
    };
    match inner.behaviour_for(&message.destination) {
        SmsBehaviour::ApiError { status } => Decision::Refuse(ApiError::for_status(status)),
        behaviour => Decision::Accept {
            id: Uuid::new_v4().to_string(),
            message,
            behaviour,
        },
    }
}

/// `POST /outbound_messages` and everything else outside `/sandbox/`.
async fn api(req: &HttpRequest, body: Bytes, too_large: bool, w: &Worker) -> HttpResponse {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let decision = decide(req, &w.inner, too_large, parsed.as_ref());

    let headers = req.headers();
    w.inner.received.push(ReceivedSms {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        content_type: header_str(headers, header::CONTENT_TYPE),
        authorization: header_str(headers, header::AUTHORIZATION),
        raw_body: String::from_utf8_lossy(&body).into_owned(),
        body: parsed,
        message_id: match &decision {
            Decision::Accept { id, .. } => Some(id.clone()),
            Decision::Refuse(_) => None,
        },
        received_at: wire::now_iso(),
    });

    let (id, message, behaviour) = match decision {
        Decision::Refuse(err) => {
            tracing::debug!(
                method = %req.method(),
                path = req.path(),
                status = err.status.as_u16(),
                detail = %err.detail,
                "sandbox SMS API refused a request"
            );
            return error_response(&err);
        }
        Decision::Accept {
            id,
            message,
            behaviour,
        } => (id, message, behaviour),
    };

    if let SmsBehaviour::Slow { delay_ms } = behaviour {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    tracing::debug!(
        id = %id,
        destination = %message.destination,
        behaviour = ?behaviour,
        "sandbox SMS API accepted a message"
    );
    let response = json_response(
        StatusCode::CREATED,
        JSON_API,
        &wire::created_body(&id, &message),
    );

    let (processing, dlr) = match behaviour {
        SmsBehaviour::Delivered | SmsBehaviour::Slow { .. } => {
            (Processing::success(), Some("DELIVERED".to_owned()))
        }
        SmsBehaviour::Failed { code_id } => (Processing::failed(code_id), None),
        SmsBehaviour::NoDlr => (Processing::success(), None),
        SmsBehaviour::Undelivered { status } => {
            (Processing::success(), Some(status.to_ascii_uppercase()))
        }
        // Refused above; kept total so a new variant cannot panic.
        SmsBehaviour::ApiError { .. } => (Processing::success(), None),
    };
    callbacks::spawn(
        Arc::clone(&w.inner),
        w.client.clone(),
        Plan {
            id,
            message,
            time_start: wire::now_iso(),
            processing,
            dlr,
        },
    );
    response
}

/// Body of `POST /sandbox/behaviours`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BehaviourUpdate {
    destination: Option<String>,
    behaviour: Option<SmsBehaviour>,
    default: Option<SmsBehaviour>,
}

fn control_error(status: StatusCode, detail: &str) -> HttpResponse {
    error_response(&ApiError::new(status, detail))
}

fn behaviours_json(inner: &Inner) -> Value {
    let destinations = super::lock(&inner.behaviours).clone();
    let default = super::lock(&inner.default_behaviour).clone();
    json!({"default": default, "destinations": destinations})
}

fn to_json<T: serde::Serialize>(value: &T) -> HttpResponse {
    match serde_json::to_value(value) {
        Ok(v) => json_response(StatusCode::OK, "application/json", &v),
        Err(e) => control_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The `/sandbox/*` control routes (not recorded in `received`).
fn control(req: &HttpRequest, body: &Bytes, inner: &Inner) -> HttpResponse {
    match (req.method().as_str(), req.path()) {
        ("GET", "/sandbox/received") => to_json(&inner.received.snapshot()),
        ("GET", "/sandbox/callbacks") => to_json(&inner.callbacks.snapshot()),
        ("GET", "/sandbox/behaviours") => to_json(&behaviours_json(inner)),
        ("DELETE", "/sandbox/behaviours") => {
            super::lock(&inner.behaviours).clear();
            to_json(&behaviours_json(inner))
        }
        ("POST", "/sandbox/behaviours") => {
            let update: BehaviourUpdate = match serde_json::from_slice(body) {
                Ok(u) => u,
                Err(e) => return control_error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            match (&update.destination, &update.behaviour, &update.default) {
                (None, None, None) => {
                    return control_error(
                        StatusCode::BAD_REQUEST,
                        "give destination + behaviour, or default",
                    )
                }
                (Some(_), None, _) => {
                    return control_error(StatusCode::BAD_REQUEST, "destination needs behaviour")
                }
                (None, Some(_), _) => {
                    return control_error(StatusCode::BAD_REQUEST, "behaviour needs destination")
                }
                _ => {}
            }
            if let (Some(destination), Some(behaviour)) = (update.destination, update.behaviour) {
                let key = normalize_destination(&destination);
                if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
                    return control_error(StatusCode::BAD_REQUEST, "destination must be digits");
                }
                tracing::info!(destination = %key, behaviour = ?behaviour, "sandbox SMS behaviour set");
                super::lock(&inner.behaviours).insert(key, behaviour);
            }
            if let Some(default) = update.default {
                tracing::info!(behaviour = ?default, "sandbox SMS default behaviour set");
                *super::lock(&inner.default_behaviour) = default;
            }
            to_json(&behaviours_json(inner))
        }
        _ => control_error(StatusCode::NOT_FOUND, "Not found"),
    }
}
