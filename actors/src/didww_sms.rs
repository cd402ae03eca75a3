//! DIDWW SMS OUT wire formats (reference/didww-wire-formats.md §1–§2): the JSON:API request body, the
//! 201 and error responses, and the two callback kinds with their mapping to SMS events.

use serde_json::{json, Map, Value};

use crate::domain::EventType;
use crate::ids::ProviderMessageId;

/// The JSON:API media type DIDWW requires, with no parameters (§1.2).
pub const JSONAPI_CONTENT_TYPE: &str = "application/vnd.api+json";

/// The body of `POST /outbound_messages` (§1.3). Numbers are E.164 digits without `+`.
pub fn outbound_message_body(
    destination_digits: &str,
    source_digits: &str,
    content: &str,
) -> String {
    json!({
        "data": {
            "type": "outbound_messages",
            "attributes": {
                "destination": destination_digits,
                "source": source_digits,
                "content": content,
            }
        }
    })
    .to_string()
}

/// The message id of a 201 response (`data.id`, §1.4); `None` when missing.
pub fn message_id_of(body: &[u8]) -> Option<ProviderMessageId> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let id = value.get("data")?.get("id")?;
    match id {
        Value::String(s) if !s.trim().is_empty() => Some(ProviderMessageId::new(s)),
        Value::Number(n) => Some(ProviderMessageId::new(&n.to_string())),
        _ => None,
    }
}

/// The first JSON:API error of a failed response (§1.5), for operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiError {
    /// `errors[0].title`.
    pub title: Option<String>,
    /// `errors[0].detail`.
    pub detail: Option<String>,
    /// `errors[0].code`.
    pub code: Option<String>,
}

/// Parses a JSON:API error body; fields absent from the body stay `None`.
pub fn api_error_of(body: &[u8]) -> ApiError {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return ApiError::default();
    };
    let first = value.get("errors").and_then(|e| e.get(0));
    let text = |key: &str| {
        first.and_then(|e| e.get(key)).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    ApiError {
        title: text("title"),
        detail: text("detail"),
        code: text("code"),
    }
}

/// Meaning of a processing-failure `code_id` (§2.4).
pub fn code_id_meaning(code_id: i64) -> &'static str {
    match code_id {
        1 | 3 => "No routes found",
        2 => "No rate found",
        4 | 6 => "Internal error",
        5 => "SMS trunk is blocked",
        7 => "Origination account is blocked",
        8 => "SMS source address is not allowed",
        9 => "SMS destination address is not allowed",
        10 | 11 => "SMS Campaign not found or blocked",
        100 => "Insufficient balance",
        101 => "All delivery attempts failed within the TTL",
        102 => "No encoding available",
        103 => "Max balance attempts reached",
        104 => "Message defragmentation failed",
        105 => "Routing failed",
        _ => "Unknown processing failure",
    }
}

/// Which kind of callback (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    /// Message status callback (`outbound_message_callbacks`): processing result.
    Processing,
    /// Delivery receipt (`dlr_event`).
    Dlr,
}

impl CallbackKind {
    /// Stable name for storage.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackKind::Processing => "status",
            CallbackKind::Dlr => "dlr",
        }
    }
}

/// A parsed DIDWW SMS callback.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsCallback {
    /// The message id (`data.id`).
    pub provider_id: ProviderMessageId,
    /// Callback kind.
    pub kind: CallbackKind,
    /// The carrier's status as sent.
    pub status: String,
    /// Processing failure code, if any.
    pub code_id: Option<i64>,
    /// Parts sent.
    pub fragments_sent: Option<i64>,
    /// Price in USD.
    pub price: Option<f64>,
}

/// Why a callback body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not JSON at all.
    #[error("body is not JSON")]
    NotJson,
    /// JSON, but not a DIDWW callback (no `data.id` or `data.attributes.status`).
    #[error("not a DIDWW SMS callback: {0}")]
    Shape(&'static str),
}

/// Parses a callback body, tolerating unknown fields, any case and string or number forms.
pub fn parse_callback(body: &[u8]) -> Result<SmsCallback, CallbackError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| CallbackError::NotJson)?;
    let data = value
        .get("data")
        .ok_or(CallbackError::Shape("missing data"))?;
    let id = match data.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(CallbackError::Shape("missing data.id")),
    };
    let attributes = data
        .get("attributes")
        .and_then(Value::as_object)
        .ok_or(CallbackError::Shape("missing data.attributes"))?;
    let status = attributes
        .get("status")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(CallbackError::Shape("missing data.attributes.status"))?
        .to_owned();
    let type_name = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let kind = if type_name.contains("dlr") {
        CallbackKind::Dlr
    } else if type_name.contains("callback") {
        CallbackKind::Processing
    } else {
        // No (known) type: processing statuses are a small fixed set, everything else is a DLR.
        match status.to_ascii_lowercase().as_str() {
            "success" | "failed" | "routing error" => CallbackKind::Processing,
            _ => CallbackKind::Dlr,
        }
    };
    Ok(SmsCallback {
        provider_id: ProviderMessageId::new(&id),
        kind,
        status,
        code_id: int_of(attributes, "code_id"),
        fragments_sent: int_of(attributes, "fragments_sent"),
        price: attributes.get("price").and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }),
    })
}

fn int_of(attributes: &Map<String, Value>, key: &str) -> Option<i64> {
    match attributes.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// What a callback means for the SMS channel (§2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsOutcome {
    /// Handed to the carrier (`Success`): status `sent`.
    HandedToCarrier,
    /// Processing failed (`Failed`, `Routing error`): event `failed`.
    ProcessingFailed,
    /// Delivered to the handset: event `delivered`.
    Delivered,
    /// A final non-delivery: event `undelivered`.
    Undelivered,
    /// An intermediate or unknown status: recorded, no event.
    Intermediate,
}

impl SmsCallback {
    /// Maps the callback to an outcome, comparing statuses case-insensitively.
    pub fn outcome(&self) -> SmsOutcome {
        let status = self.status.to_ascii_lowercase();
        match self.kind {
            CallbackKind::Processing => match status.as_str() {
                "success" if self.code_id.is_none_or(|c| c == 0) => SmsOutcome::HandedToCarrier,
                "success" | "failed" | "routing error" => SmsOutcome::ProcessingFailed,
                _ if status.contains("error") || status.contains("fail") => {
                    SmsOutcome::ProcessingFailed
                }
                _ => SmsOutcome::Intermediate,
            },
            CallbackKind::Dlr => match status.as_str() {
                "delivered" | "delivrd" => SmsOutcome::Delivered,
                "failed" | "expired" | "undeliverable" | "undelivered" | "rejected" | "unknown"
                | "deleted" | "undeliv" | "rejectd" | "expird" => SmsOutcome::Undelivered,
                _ => SmsOutcome::Intermediate,
            },
        }
    }

    /// The channel event this callback produces, if any.
    pub fn event_type(&self) -> Option<EventType> {
        match self.outcome() {
            SmsOutcome::HandedToCarrier => Some(EventType::Sent),
            SmsOutcome::ProcessingFailed => Some(EventType::Failed),
            SmsOutcome::Delivered => Some(EventType::Delivered),
            SmsOutcome::Undelivered => Some(EventType::Undelivered),
            SmsOutcome::Intermediate => None,
        }
    }

    /// Price of the message in micro-dollars (price × parts; DIDWW's per-part semantics are
    /// unconfirmed, see the wire-format note §2.3).
    pub fn cost_micros(&self) -> Option<(i64, i32)> {
        // Anything above $1,000 per part is not a real SMS price: refuse it rather than store
        // garbage (and never overflow on hostile input).
        const MAX_PRICE_MICROS: f64 = 1e9;
        let price_micros = (self.price? * 1_000_000.0).round();
        if !(0.0..=MAX_PRICE_MICROS).contains(&price_micros) {
            return None;
        }
        let parts = self
            .fragments_sent
            .unwrap_or(1)
            .clamp(0, i64::from(i32::MAX));
        let total = (price_micros as i64).checked_mul(parts.max(1))?;
        Some((total, i32::try_from(parts).unwrap_or(i32::MAX)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../tests/fixtures/didww/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn fixtures_map_to_the_right_events() {
        let cases = [
            (
                "dlr-success-processing.json",
                CallbackKind::Processing,
                Some(EventType::Sent),
            ),
            (
                "dlr-delivered.json",
                CallbackKind::Dlr,
                Some(EventType::Delivered),
            ),
            (
                "dlr-failed-routing-error.json",
                CallbackKind::Processing,
                Some(EventType::Failed),
            ),
            (
                "dlr-failed-insufficient-balance.json",
                CallbackKind::Processing,
                Some(EventType::Failed),
            ),
            (
                "dlr-undelivered-expired.json",
                CallbackKind::Dlr,
                Some(EventType::Undelivered),
            ),
        ];
        for (name, kind, event) in cases {
            let cb = parse_callback(&fixture(name)).unwrap();
            assert_eq!(cb.kind, kind, "{name}");
            assert_eq!(cb.event_type(), event, "{name}");
        }
        let cb = parse_callback(&fixture("dlr-failed-insufficient-balance.json")).unwrap();
        assert_eq!(cb.code_id, Some(100));
        assert_eq!(code_id_meaning(100), "Insufficient balance");
    }

    #[test]
    fn tolerant_of_case_strings_and_unknown_fields() {
        let body = br#"{"data":{"id":"ABC-1","type":"Outbound_Message_Callbacks","attributes":{"status":"ROUTING ERROR","code_id":"3","extra":{"x":1}}}}"#;
        let cb = parse_callback(body).unwrap();
        assert_eq!(cb.provider_id.as_str(), "abc-1");
        assert_eq!(cb.code_id, Some(3));
        assert_eq!(cb.event_type(), Some(EventType::Failed));
        let intermediate =
            br#"{"data":{"id":"x","type":"dlr_event","attributes":{"status":"ENROUTE"}}}"#;
        assert_eq!(parse_callback(intermediate).unwrap().event_type(), None);
    }

    #[test]
    fn hostile_prices_never_overflow() {
        let cb = |price: f64, parts: i64| SmsCallback {
            provider_id: ProviderMessageId::new("x"),
            kind: CallbackKind::Processing,
            status: "Success".into(),
            code_id: None,
            fragments_sent: Some(parts),
            price: Some(price),
        };
        assert_eq!(cb(0.0079, 2).cost_micros(), Some((15_800, 2)));
        assert_eq!(cb(1e13, 2).cost_micros(), None);
        assert_eq!(cb(-1.0, 1).cost_micros(), None);
        assert_eq!(cb(f64::NAN, 1).cost_micros(), None);
        // Parts are clamped to i32, price to $1,000: the product always fits in i64.
        assert_eq!(
            cb(999.0, i64::MAX).cost_micros(),
            Some((999_000_000 * i64::from(i32::MAX), i32::MAX))
        );
    }

    #[test]
    fn malformed_callbacks_are_refused() {
        assert_eq!(parse_callback(b"not json"), Err(CallbackError::NotJson));
        assert!(parse_callback(br#"{"data":{"attributes":{"status":"x"}}}"#).is_err());
        assert!(parse_callback(br#"{"data":{"id":"1","attributes":{}}}"#).is_err());
        assert!(parse_callback(br#"[]"#).is_err());
    }

    #[test]
    fn response_parsing() {
        let id = message_id_of(&fixture("sms-send-response-201.json")).unwrap();
        assert!(!id.as_str().is_empty());
        let err = api_error_of(&fixture("sms-send-error-400.json"));
        assert_eq!(err.code.as_deref(), Some("400"));
        assert_eq!(api_error_of(b"<html>"), ApiError::default());
    }

    #[test]
    fn request_body_matches_fixture_shape() {
        let ours: Value =
            serde_json::from_str(&outbound_message_body("15555550123", "15555550100", "hi"))
                .unwrap();
        let fixture: Value = serde_json::from_slice(&fixture("sms-send-request.json")).unwrap();
        assert_eq!(ours["data"]["type"], fixture["data"]["type"]);
        let keys = |v: &Value| {
            let mut k: Vec<String> = v["data"]["attributes"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&ours), keys(&fixture));
    }
}
