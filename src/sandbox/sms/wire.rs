//! Wire format of the simulated API: request validation, response and callback bodies, timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use base64::Engine as _;
use serde_json::{json, Value};

/// The only request/response media type DIDWW's SMS OUT API uses.
pub(super) const JSON_API: &str = "application/vnd.api+json";

/// A refusal, rendered as a JSON:API error document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub title: String,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: &str) -> Self {
        Self {
            status,
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            detail: detail.to_owned(),
        }
    }

    pub fn bad_request() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Invalid request")
    }

    /// The error DIDWW would answer for `status` (used by `SmsBehaviour::ApiError`).
    pub fn for_status(status: u16) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let detail = match status.as_u16() {
            400 => "Invalid request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not found",
            415 => "Unsupported media type",
            429 => "Too many requests",
            500 => "Internal server error",
            502..=504 => "Service unavailable",
            _ => status.canonical_reason().unwrap_or("Error"),
        };
        Self::new(status, detail)
    }

    pub fn body(&self) -> Value {
        let code = self.status.as_u16().to_string();
        json!({"errors": [{
            "title": self.title,
            "detail": self.detail,
            "code": code,
            "status": code,
        }]})
    }
}

/// The parts of an accepted `outbound_messages` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Message {
    pub destination: String,
    pub source: Option<String>,
    pub campaign_id: Option<String>,
    pub content: String,
}

/// True when `Authorization` is `Basic base64(username:password)`.
pub(super) fn auth_ok(header: Option<&str>, username: &str, password: &str) -> bool {
    let Some(header) = header else {
        return false;
    };
    let mut parts = header.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default().trim();
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token) else {
        return false;
    };
    let expected = format!("{username}:{password}");
    constant_time_eq(&decoded, expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True when the content type is exactly `application/vnd.api+json` (any case, no parameters).
pub(super) fn content_type_ok(header: Option<&str>) -> bool {
    header.is_some_and(|ct| ct.trim().eq_ignore_ascii_case(JSON_API))
}

fn is_digits(s: &str, max_len: usize) -> bool {
    !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
}

fn optional_string(
    attrs: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ApiError> {
    match attrs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request()),
    }
}

/// Validates a parsed `POST /outbound_messages` body like DIDWW does (wire format §1.3, §1.5).
pub(super) fn parse_message(body: Option<&Value>) -> Result<Message, ApiError> {
    let data = body
        .and_then(|b| b.get("data"))
        .and_then(Value::as_object)
        .ok_or_else(ApiError::bad_request)?;
    if data.get("type").and_then(Value::as_str) != Some("outbound_messages") {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "type is invalid"));
    }
    let attrs = data
        .get("attributes")
        .and_then(Value::as_object)
        .ok_or_else(ApiError::bad_request)?;

    // E.164: at most 15 digits, no `+`.
    let destination = optional_string(attrs, "destination")?.ok_or_else(ApiError::bad_request)?;
    if !is_digits(&destination, 15) {
        return Err(ApiError::bad_request());
    }
    let source = optional_string(attrs, "source")?;
    let campaign_id = optional_string(attrs, "campaign_id")?;
    match (&source, &campaign_id) {
        (None, None) => return Err(ApiError::bad_request()),
        (Some(s), _) if !is_digits(s, 15) => return Err(ApiError::bad_request()),
        (_, Some(c)) if c.trim().is_empty() => return Err(ApiError::bad_request()),
        _ => {}
    }
    let content = optional_string(attrs, "content")?.ok_or_else(ApiError::bad_request)?;
    if content.is_empty() {
        return Err(ApiError::bad_request());
    }
    Ok(Message {
        destination,
        source,
        campaign_id,
        content,
    })
}

/// The 201 body: the resource with its new id, echoing the attributes.
pub(super) fn created_body(id: &str, m: &Message) -> Value {
    let mut attributes = serde_json::Map::new();
    attributes.insert("destination".into(), json!(m.destination));
    if let Some(source) = &m.source {
        attributes.insert("source".into(), json!(source));
    }
    if let Some(campaign_id) = &m.campaign_id {
        attributes.insert("campaign_id".into(), json!(campaign_id));
    }
    attributes.insert("content".into(), json!(m.content));
    json!({"data": {"id": id, "type": "outbound_messages", "attributes": attributes}})
}

/// Result of DIDWW's processing stage, reported by the message status callback.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Processing {
    pub status: &'static str,
    pub code_id: Option<i64>,
    pub fragments_sent: u32,
    pub price: Value,
}

impl Processing {
    pub fn success() -> Self {
        Self {
            status: "Success",
            code_id: None,
            fragments_sent: 1,
            price: json!(0.0079),
        }
    }

    pub fn failed(code_id: i64) -> Self {
        let status = match code_id {
            1 | 3 | 105 => "Routing error",
            _ => "Failed",
        };
        Self {
            status,
            code_id: Some(code_id),
            fragments_sent: 0,
            price: json!(0),
        }
    }
}

/// The message status callback (`outbound_message_callbacks`, wire format §2.3 a).
pub(super) fn processing_body(
    id: &str,
    m: &Message,
    p: &Processing,
    time_start: &str,
    end_time: &str,
) -> Value {
    json!({"data": {
        "id": id,
        "type": "outbound_message_callbacks",
        "attributes": {
            "time_start": time_start,
            "end_time": end_time,
            "source": m.source,
            "destination": m.destination,
            "status": p.status,
            "fragments_sent": p.fragments_sent,
            "code_id": p.code_id,
            "price": p.price,
        }
    }})
}

/// The delivery receipt (`dlr_event`, wire format §2.3 b).
pub(super) fn dlr_body(id: &str, m: &Message, status: &str, time: &str) -> Value {
    json!({"data": {
        "id": id,
        "type": "dlr_event",
        "attributes": {
            "status": status,
            "source": m.source,
            "destination": m.destination,
            "time": time,
        }
    }})
}

/// Formats a time as ISO-8601 UTC with milliseconds, e.g. `2026-03-10T12:00:01.000Z`, the form the
/// DIDWW fixtures use. Times before 1970 are clamped to the epoch.
pub fn iso8601_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, mo, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Current time, ISO-8601 UTC.
pub(super) fn now_iso() -> String {
    iso8601_utc(SystemTime::now())
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso_formats() {
        let at = |s: u64, ms: u64| {
            iso8601_utc(UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_773_144_001, 412), "2026-03-10T12:00:01.412Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn auth() {
        // otp-sms-trunk:example-password, from the fixture headers.
        let h = "Basic b3RwLXNtcy10cnVuazpleGFtcGxlLXBhc3N3b3Jk";
        assert!(auth_ok(Some(h), "otp-sms-trunk", "example-password"));
        assert!(!auth_ok(Some(h), "otp-sms-trunk", "other"));
        assert!(!auth_ok(Some("Bearer x"), "a", "b"));
        assert!(!auth_ok(Some("Basic %%%"), "a", "b"));
        assert!(!auth_ok(None, "a", "b"));
    }

    #[test]
    fn validation() {
        let ok = json!({"data":{"type":"outbound_messages","attributes":{
            "destination":"15555550123","source":"15555550100","content":"hi"}}});
        assert!(parse_message(Some(&ok)).is_ok());
        let plus = json!({"data":{"type":"outbound_messages","attributes":{
            "destination":"+15555550123","source":"15555550100","content":"hi"}}});
        assert_eq!(parse_message(Some(&plus)), Err(ApiError::bad_request()));
        let ty = json!({"data":{"type":"messages","attributes":{}}});
        assert_eq!(
            parse_message(Some(&ty)).map_err(|e| e.detail),
            Err("type is invalid".to_owned())
        );
        let empty = json!({"data":{"type":"outbound_messages","attributes":{
            "destination":"1555","source":"1555","content":""}}});
        assert!(parse_message(Some(&empty)).is_err());
        assert!(parse_message(Some(&json!([1, 2]))).is_err());
        assert!(parse_message(None).is_err());
        assert_eq!(
            ApiError::for_status(1000).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
