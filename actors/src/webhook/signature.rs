//! Webhook signatures (SPEC §6).
//!
//! Every client webhook carries
//! `X-Webhook-Signature: sha256=<hex HMAC-SHA256(WEBHOOK_SIGNING_SECRET, "<timestamp>.<body>")>`,
//! where `<timestamp>` is the value of the `X-Webhook-Timestamp` header (Unix seconds) and `<body>`
//! is the exact JSON body sent. Binding the timestamp into the MAC lets receivers reject replays.

use ring::hmac;

/// The prefix of the `X-Webhook-Signature` header value.
pub const PREFIX: &str = "sha256=";

/// The signed message: `"<timestamp>.<body>"`.
fn message(timestamp_secs: i64, body: &str) -> Vec<u8> {
    let ts = timestamp_secs.to_string();
    let mut msg = Vec::with_capacity(ts.len() + 1 + body.len());
    msg.extend_from_slice(ts.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body.as_bytes());
    msg
}

/// Computes the `X-Webhook-Signature` header value:
/// `sha256=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
#[must_use]
pub fn sign(secret: &[u8], timestamp_secs: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, &message(timestamp_secs, body));
    format!("{PREFIX}{}", hex::encode(tag.as_ref()))
}

/// Checks an `X-Webhook-Signature` header value against `secret`, `timestamp_secs` and `body`.
///
/// The MAC comparison is constant time (`ring::hmac::verify`). Returns `false` when the header
/// lacks the `sha256=` prefix, is not valid hex, or does not match.
#[must_use]
pub fn verify(secret: &[u8], timestamp_secs: i64, body: &str, header: &str) -> bool {
    let Some(hex_tag) = header.strip_prefix(PREFIX) else {
        return false;
    };
    let Ok(tag) = hex::decode(hex_tag) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, &message(timestamp_secs, body), &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const TS: i64 = 1_700_000_000;
    const BODY: &str = r#"{"event":"otp.sent"}"#;
    /// Computed independently with Python:
    /// `hmac.new(b"whsec_test", b'1700000000.{"event":"otp.sent"}', hashlib.sha256).hexdigest()`.
    const EXPECTED: &str =
        "sha256=efc4896f572f52908a5d4683d3451edb09a349e9572ef9bd88527d9d299a0114";

    #[test]
    fn known_vector() {
        assert_eq!(sign(SECRET, TS, BODY), EXPECTED);
        assert!(verify(SECRET, TS, BODY, EXPECTED));
    }

    #[test]
    fn known_vector_empty_body() {
        // hmac.new(b"key", b"0.", hashlib.sha256).hexdigest()
        assert_eq!(
            sign(b"key", 0, ""),
            "sha256=85841b4efc3cd7776c3c8f9b7cca9e281c550e5d19889d78e9e669c6337f000d"
        );
    }

    #[test]
    fn roundtrip() {
        let sig = sign(b"another secret", -5, "hello");
        assert!(verify(b"another secret", -5, "hello", &sig));
    }

    #[test]
    fn tampered_body_fails() {
        assert!(!verify(SECRET, TS, r#"{"event":"otp.failed"}"#, EXPECTED));
    }

    #[test]
    fn tampered_timestamp_fails() {
        assert!(!verify(SECRET, TS + 1, BODY, EXPECTED));
    }

    #[test]
    fn wrong_secret_fails() {
        assert!(!verify(b"other", TS, BODY, EXPECTED));
    }

    #[test]
    fn header_without_prefix_fails() {
        let bare = EXPECTED.trim_start_matches(PREFIX);
        assert!(!verify(SECRET, TS, BODY, bare));
        assert!(!verify(SECRET, TS, BODY, &format!("sha1={bare}")));
    }

    #[test]
    fn malformed_hex_fails() {
        assert!(!verify(SECRET, TS, BODY, "sha256=zz"));
        assert!(!verify(SECRET, TS, BODY, "sha256="));
        assert!(!verify(SECRET, TS, BODY, &EXPECTED[..EXPECTED.len() - 2]));
    }
}
