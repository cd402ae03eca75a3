//! [`Secret`]: a string that never prints itself. Every password, API secret and signing key in
//! [`Config`](super::Config) is held in one, so `{:?}` on the whole configuration, a stray `tracing`
//! field or a panic message cannot leak it (SPEC §2: "Secrets never appear in logs").

use std::fmt;
use std::sync::OnceLock;

/// The per-process key of [`Secret::matches`]; `None` only if the OS has no randomness.
fn comparison_key() -> Option<&'static ring::hmac::Key> {
    static KEY: OnceLock<Option<ring::hmac::Key>> = OnceLock::new();
    KEY.get_or_init(|| {
        ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new()).ok()
    })
    .as_ref()
}

/// A secret value. `Debug` and `Display` print `***`; the value is reachable only through
/// [`Secret::expose`], which makes every use greppable.
///
/// There is deliberately no `PartialEq`: comparing a secret with `==` against client input would leak
/// timing, so comparisons go through [`Secret::matches`].
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call it only where the value is needed (signing, comparing, sending
    /// credentials), never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is empty (sandbox placeholders for unused credentials).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with client-supplied bytes: both sides are MACed under a random
    /// per-process key and ring's constant-time tag verification compares them, so neither the
    /// content nor the length of the secret leaks through timing.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let Some(key) = comparison_key() else {
            return false;
        };
        let ours = ring::hmac::sign(key, self.0.as_bytes());
        ring::hmac::verify(key, candidate, ours.as_ref()).is_ok()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let secret = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(secret.expose(), "hunter2-hunter2-hunter2");
    }

    #[test]
    fn matches_compares_whole_value() {
        let secret = Secret::new("abcdef");
        assert!(secret.matches(b"abcdef"));
        assert!(!secret.matches(b"abcdeg"));
        assert!(!secret.matches(b"abcde"));
        assert!(!secret.matches(b""));
    }
}
