//! Request plumbing shared by the handlers: bounded body reading, JSON parsing with stable errors,
//! the client IP of SPEC §3 and the API secret check.

use std::net::IpAddr;

use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::config::Secret;
use crate::error::AppError;

/// Reads the body, refusing more than `limit` bytes (413) before buffering them.
pub async fn read_body(
    mut payload: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<web::Bytes, AppError> {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(AppError::PayloadTooLarge(limit));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| AppError::InvalidJson("body could not be read".into()))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// True when the request declares a JSON media type (`application/json`, `application/*+json`).
pub fn is_json_content_type(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads a JSON object body: 415 for another media type, 413 when too large, 400 `invalid_json`.
pub async fn json_object(
    payload: web::Payload,
    req: &HttpRequest,
) -> Result<Map<String, Value>, AppError> {
    if !is_json_content_type(req) {
        return Err(AppError::UnsupportedMediaType);
    }
    let body = read_body(payload, req, super::MAX_BODY_BYTES).await?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AppError::InvalidJson("expected a JSON object".into())),
        Err(err) => Err(AppError::InvalidJson(format!(
            "line {} column {}",
            err.line(),
            err.column()
        ))),
    }
}

/// Checks the API secret from `X-API-Secret` or the body's `secret` field, in constant time; the
/// body field is removed so it is never stored or logged.
pub fn require_api_secret(
    req: &HttpRequest,
    body: Option<&mut Map<String, Value>>,
    secret: &Secret,
) -> Result<(), AppError> {
    let from_body = body.and_then(|b| b.remove("secret"));
    let header = req
        .headers()
        .get("x-api-secret")
        .map(|v| v.as_bytes().to_vec());
    let candidate = header.or_else(|| {
        from_body
            .as_ref()
            .and_then(Value::as_str)
            .map(|s| s.as_bytes().to_vec())
    });
    match candidate {
        Some(candidate) if secret.matches(&candidate) => Ok(()),
        _ => {
            tracing::warn!(path = %req.path(), "API authentication failed");
            Err(AppError::Forbidden)
        }
    }
}

/// The client IP of SPEC §3: with `trust_proxy` = N ≥ 1, the N-th address from the right of
/// `X-Forwarded-For` (with fewer entries, the left-most); with 0, the socket peer.
pub fn client_ip(req: &HttpRequest, trust_proxy: u32) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    if trust_proxy == 0 {
        return peer;
    }
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if entries.is_empty() {
        return peer;
    }
    let hops = usize::try_from(trust_proxy).unwrap_or(usize::MAX);
    let pick = entries.len().saturating_sub(hops);
    parse_forwarded_ip(entries[pick]).or(peer)
}

/// Parses an `X-Forwarded-For` entry (bare IP, `[v6]`, or `v4:port`).
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    let trimmed = entry.trim_start_matches('[');
    if let Some((inside, _)) = trimmed.split_once(']') {
        return inside.parse().ok();
    }
    entry
        .rsplit_once(':')
        .and_then(|(host, _)| host.parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req_with(xff: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr("10.0.0.9:5555".parse().unwrap());
        if let Some(v) = xff {
            r = r.insert_header(("X-Forwarded-For", v));
        }
        r.to_http_request()
    }

    #[test]
    fn trust_proxy_picks_from_the_right() {
        let chain = Some("1.1.1.1, 2.2.2.2, 3.3.3.3");
        assert_eq!(
            client_ip(&req_with(chain), 1),
            Some("3.3.3.3".parse().unwrap())
        );
        assert_eq!(
            client_ip(&req_with(chain), 2),
            Some("2.2.2.2".parse().unwrap())
        );
        assert_eq!(
            client_ip(&req_with(chain), 9),
            Some("1.1.1.1".parse().unwrap())
        );
        assert_eq!(
            client_ip(&req_with(chain), 0),
            Some("10.0.0.9".parse().unwrap())
        );
        assert_eq!(
            client_ip(&req_with(None), 1),
            Some("10.0.0.9".parse().unwrap())
        );
        assert_eq!(
            client_ip(&req_with(Some("[2001:db8::1]:443")), 1),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            client_ip(&req_with(Some("garbage")), 1),
            Some("10.0.0.9".parse().unwrap())
        );
    }
}
