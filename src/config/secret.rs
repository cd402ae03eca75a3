//! [`Secret`]: a string that never prints itself. Every password, API secret and signing key in
//! [`Config`](super::Config) is held in one, so `{:?}` on the whole configuration, a stray `tracing`
//! field or a panic message cannot leak it (SPEC §2: "Secrets never appear in logs").

use std::fmt;

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

    /// Constant-time comparison with client-supplied bytes. Only the length can leak, which is
    /// fine for random secrets of a fixed, documented minimum length.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let ours = self.0.as_bytes();
        if ours.len() != candidate.len() {
            return false;
        }
        ours.iter()
            .zip(candidate)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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
