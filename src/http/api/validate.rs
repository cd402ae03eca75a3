//! Field rules of `POST /dispatch` (SPEC §4), each failure naming its field.

use std::net::IpAddr;

use serde_json::{Map, Value};

use actors::fraud::NumberKind;
use actors::webhook::ssrf;
use actors::Channel;

use crate::error::AppError;

/// Longest `session_id`.
pub const MAX_SESSION_ID: usize = 128;

/// A validated dispatch body.
#[derive(Debug, Clone)]
pub struct DispatchInput {
    /// `+E164` with its country and type.
    pub phone: Phone,
    /// 4–8 digits.
    pub code: String,
    /// As given, or `None` for the default.
    pub channels: Option<Vec<Channel>>,
    /// Client session id.
    pub session_id: Option<String>,
    /// Client webhook URL.
    pub webhook_url: Option<String>,
    /// End-user IP.
    pub ip: Option<IpAddr>,
    /// Cost ceiling in micro-dollars.
    pub max_cost_micros: Option<i64>,
}

fn optional_string<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, AppError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(AppError::field(field, format!("{field} must be a string"))),
    }
}

/// A valid destination and what libphonenumber knows about it (for the fraud engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// `+E164`.
    pub e164: String,
    /// ISO 3166 alpha-2 country, when the number belongs to one (not to a global service).
    pub country: Option<String>,
    /// Number type.
    pub kind: NumberKind,
}

/// Normalises and validates a phone number to `+E164` (libphonenumber rules).
pub fn phone(raw: &str) -> Result<Phone, AppError> {
    let trimmed = raw.trim();
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::InvalidPhone(
            "phone must be an E.164 number, e.g. +14155551234".into(),
        ));
    }
    let parsed = phonenumber::parse(None, format!("+{digits}"))
        .map_err(|_| AppError::InvalidPhone("phone is not a valid phone number".into()))?;
    if !phonenumber::is_valid(&parsed) {
        return Err(AppError::InvalidPhone(
            "phone is not a valid, routable phone number".into(),
        ));
    }
    Ok(Phone {
        e164: parsed.format().mode(phonenumber::Mode::E164).to_string(),
        country: parsed.country().id().map(|id| id.as_ref().to_owned()),
        kind: number_kind(parsed.number_type(&phonenumber::metadata::DATABASE)),
    })
}

fn number_kind(kind: phonenumber::Type) -> NumberKind {
    use phonenumber::Type;
    match kind {
        Type::Mobile => NumberKind::Mobile,
        Type::FixedLine => NumberKind::FixedLine,
        Type::FixedLineOrMobile => NumberKind::FixedLineOrMobile,
        Type::TollFree => NumberKind::TollFree,
        Type::PremiumRate => NumberKind::PremiumRate,
        Type::SharedCost => NumberKind::SharedCost,
        Type::Voip => NumberKind::Voip,
        Type::PersonalNumber => NumberKind::PersonalNumber,
        Type::Pager => NumberKind::Pager,
        Type::Uan => NumberKind::Uan,
        Type::Voicemail => NumberKind::Voicemail,
        _ => NumberKind::Unknown,
    }
}

/// Validates the whole body.
pub fn dispatch_input(body: &Map<String, Value>) -> Result<DispatchInput, AppError> {
    let phone_raw = match body.get("phone") {
        None | Some(Value::Null) => return Err(AppError::field("phone", "phone is required")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(AppError::field("phone", "phone must be a string")),
    };
    let phone = phone(phone_raw)?;

    let code = match body.get("code") {
        None | Some(Value::Null) => return Err(AppError::field("code", "code is required")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(AppError::field(
                "code",
                "code must be a string of 4-8 digits",
            ))
        }
    };
    if !(4..=8).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::field("code", "code must be 4-8 digits"));
    }

    let channels = match body.get("channels") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(AppError::field("channels", "channels must not be empty"));
            }
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                let channel = item
                    .as_str()
                    .and_then(|s| s.parse::<Channel>().ok())
                    .ok_or_else(|| {
                        AppError::field(
                            "channels",
                            "channels may only contain \"sms\" and \"voice\"",
                        )
                    })?;
                if list.contains(&channel) {
                    return Err(AppError::field(
                        "channels",
                        format!("channel \"{channel}\" is listed twice"),
                    ));
                }
                list.push(channel);
            }
            Some(list)
        }
        Some(_) => return Err(AppError::field("channels", "channels must be an array")),
    };

    let session_id = optional_string(body, "session_id")?.map(str::to_owned);
    if session_id
        .as_ref()
        .is_some_and(|s| s.chars().count() > MAX_SESSION_ID)
    {
        return Err(AppError::field(
            "session_id",
            format!("session_id must be at most {MAX_SESSION_ID} characters"),
        ));
    }

    let webhook_url = match optional_string(body, "webhook_url")? {
        None => None,
        Some(url) => {
            let parsed = ssrf::check_url_syntax(url)
                .map_err(|e| AppError::field("webhook_url", e.to_string()))?;
            Some(parsed.to_string())
        }
    };

    let ip = match optional_string(body, "ip")? {
        None => None,
        Some(text) => Some(
            text.trim()
                .parse::<IpAddr>()
                .map_err(|_| AppError::field("ip", "ip must be an IPv4 or IPv6 address"))?,
        ),
    };

    let max_cost_micros = match body.get("max_cost_usd") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(usd) if usd.is_finite() && usd > 0.0 && usd <= 1_000_000.0 => {
                Some((usd * 1_000_000.0).round() as i64)
            }
            _ => {
                return Err(AppError::field(
                    "max_cost_usd",
                    "max_cost_usd must be a positive number",
                ))
            }
        },
        Some(_) => {
            return Err(AppError::field(
                "max_cost_usd",
                "max_cost_usd must be a number",
            ))
        }
    };

    Ok(DispatchInput {
        phone,
        code,
        channels,
        session_id,
        webhook_url,
        ip,
        max_cost_micros,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn code_of(v: Value) -> &'static str {
        dispatch_input(&body(v)).unwrap_err().code()
    }

    #[test]
    fn accepts_a_good_request_and_normalises_phone() {
        let input = dispatch_input(&body(
            json!({"phone": "14155552671", "code": "0123", "channels": ["sms"]}),
        ))
        .unwrap();
        assert_eq!(input.phone.e164, "+14155552671");
        assert_eq!(input.phone.country.as_deref(), Some("US"));
        assert_eq!(input.code, "0123");
    }

    #[test]
    fn reports_the_country_and_type_the_fraud_rules_need() {
        // A UK mobile and a UK premium-rate number.
        let mobile = phone("+447400123456").unwrap();
        assert_eq!(
            (mobile.country.as_deref(), mobile.kind),
            (Some("GB"), NumberKind::Mobile)
        );
        let premium = phone("+449098790000").unwrap();
        assert_eq!(premium.kind, NumberKind::PremiumRate);
        assert!(premium.kind.is_irsf_type());
    }

    #[test]
    fn rejects_bad_fields_with_stable_codes() {
        assert_eq!(code_of(json!({"code": "1234"})), "invalid_request");
        assert_eq!(
            code_of(json!({"phone": "+1415", "code": "1234"})),
            "invalid_phone"
        );
        assert_eq!(
            code_of(json!({"phone": "+19999999999", "code": "1234"})),
            "invalid_phone"
        );
        assert_eq!(
            code_of(json!({"phone": "+14155552671", "code": "12a4"})),
            "invalid_request"
        );
        assert_eq!(
            code_of(json!({"phone": "+14155552671", "code": 1234})),
            "invalid_request"
        );
        assert_eq!(
            code_of(json!({"phone": "+14155552671", "code": "123456789"})),
            "invalid_request"
        );
        assert_eq!(
            code_of(json!({"phone": "+14155552671", "code": "1234", "channels": []})),
            "invalid_request"
        );
        assert_eq!(
            code_of(json!({"phone": "+14155552671", "code": "1234", "channels": ["sms", "sms"]})),
            "invalid_request"
        );
        assert_eq!(
            code_of(json!({"phone": "+14155552671", "code": "1234", "channels": ["fax"]})),
            "invalid_request"
        );
        assert_eq!(
            code_of(json!({"phone": "+14155552671", "code": "1234", "webhook_url": "ftp://x"})),
            "invalid_request"
        );
        assert_eq!(
            code_of(json!({"phone": "+14155552671", "code": "1234", "ip": "1.2.3"})),
            "invalid_request"
        );
        assert_eq!(
            code_of(json!({"phone": "+14155552671", "code": "1234", "max_cost_usd": -1})),
            "invalid_request"
        );
        let long = "x".repeat(129);
        assert_eq!(
            code_of(json!({"phone": "+14155552671", "code": "1234", "session_id": long})),
            "invalid_request"
        );
    }
}
