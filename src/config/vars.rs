//! [`Vars`]: reads variables out of a name → value map, applying the rules every variable shares
//! (empty = unset, `X_FILE` indirection, typed parsing with ranges) and collecting every problem
//! instead of stopping at the first.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::fs;
use std::str::FromStr;

use super::error::{ConfigError, ConfigErrors};
use super::secret::Secret;

/// The suffix that turns `X` into "read X from this file" (Docker and Kubernetes secrets).
pub(super) const FILE_SUFFIX: &str = "_FILE";

/// Secrets whose value starts with this are the placeholders shipped in `.env.example`; live mode
/// refuses them so a copied-but-unedited file cannot go to production with a published secret.
pub(super) const PLACEHOLDER_PREFIX: &str = "change-me";

pub(super) struct Vars<'a> {
    vars: &'a HashMap<String, String>,
    errors: Vec<ConfigError>,
    /// Variables that already have an error, so a broken value does not also produce
    /// "required in live mode" for the same variable.
    failed: HashSet<String>,
    /// Values already looked up, so a file is read once and a problem reported once however
    /// often a variable is consulted.
    cache: HashMap<String, Option<String>>,
    pub(super) warnings: Vec<String>,
}

impl<'a> Vars<'a> {
    pub(super) fn new(vars: &'a HashMap<String, String>, errors: Vec<ConfigError>) -> Self {
        let failed = errors.iter().map(|e| e.variable.clone()).collect();
        Vars {
            vars,
            errors,
            failed,
            cache: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// True when `variable` (or its `_FILE` form) already has an error.
    pub(super) fn has_error(&self, variable: &str) -> bool {
        self.failed.contains(variable) || self.failed.contains(&format!("{variable}{FILE_SUFFIX}"))
    }

    /// Every variable looked up so far (for the test that keeps KNOWN_VARIABLES complete).
    #[cfg(test)]
    pub(super) fn looked_up(&self) -> Vec<String> {
        self.cache.keys().cloned().collect()
    }

    /// Records a problem with `variable`.
    pub(super) fn error(&mut self, variable: &str, message: impl Into<String>) {
        self.failed.insert(variable.to_string());
        self.errors.push(ConfigError {
            variable: variable.to_string(),
            message: message.into(),
        });
    }

    /// Records that `variable` is missing, unless it already has an error (a file that could not
    /// be read, a conflicting pair): the operator needs one message per cause.
    pub(super) fn missing(&mut self, variable: &str, message: impl Into<String>) {
        if !self.has_error(variable) {
            self.error(variable, message);
        }
    }

    pub(super) fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// Ok when nothing went wrong, else every problem found.
    pub(super) fn finish(self) -> Result<Vec<String>, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(self.warnings)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// The raw value of `name` (from `name` or the file named by `name_FILE`), or `None` when unset
    /// or blank. Only one trailing newline of a file is removed: editors add one, but any other
    /// whitespace in a secret file is presumably intended.
    pub(super) fn raw(&mut self, name: &str) -> Option<String> {
        if let Some(value) = self.cache.get(name) {
            return value.clone();
        }
        let value = self.lookup(name);
        self.cache.insert(name.to_string(), value.clone());
        value
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        let direct = self
            .vars
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .cloned();
        let file_var = format!("{name}{FILE_SUFFIX}");
        let path = self
            .vars
            .get(&file_var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        match (direct, path) {
            (Some(value), Some(_)) => {
                self.error(
                    name,
                    format!("both {name} and {file_var} are set; set only one of them"),
                );
                Some(value)
            }
            (Some(value), None) => Some(value),
            (None, Some(path)) => match fs::read_to_string(&path) {
                Ok(mut content) => {
                    if content.ends_with('\n') {
                        content.pop();
                        if content.ends_with('\r') {
                            content.pop();
                        }
                    }
                    (!content.trim().is_empty()).then_some(content)
                }
                Err(e) => {
                    self.error(&file_var, format!("cannot read {path:?}: {e}"));
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// A plain value, surrounding whitespace removed.
    pub(super) fn string(&mut self, name: &str) -> Option<String> {
        self.raw(name).map(|v| v.trim().to_string())
    }

    /// A plain value or its default.
    pub(super) fn string_or(&mut self, name: &str, default: &str) -> String {
        self.string(name).unwrap_or_else(|| default.to_string())
    }

    /// A secret, kept byte for byte (leading or trailing spaces in a password are the operator's
    /// business). Error messages about it never include the value.
    pub(super) fn secret(&mut self, name: &str, min_len: usize, live: bool) -> Option<Secret> {
        let value = self.raw(name)?;
        if value.chars().count() < min_len {
            self.error(name, format!("must be at least {min_len} characters"));
            return None;
        }
        if live && value.starts_with(PLACEHOLDER_PREFIX) {
            self.error(
                name,
                "still holds the placeholder from .env.example; set a real secret \
                 (for example the output of `openssl rand -hex 32`)",
            );
            return None;
        }
        Some(Secret::new(value))
    }

    /// A boolean: true/false, 1/0, yes/no in any case. Anything else is an error rather than a
    /// guess (the predecessor read `"false"` as true).
    pub(super) fn bool_opt(&mut self, name: &str) -> Option<bool> {
        let value = self.string(name)?;
        match parse_bool(&value) {
            Some(b) => Some(b),
            None => {
                self.error(
                    name,
                    format!("{value:?} is not a boolean (use true/false, 1/0 or yes/no)"),
                );
                None
            }
        }
    }

    pub(super) fn bool(&mut self, name: &str, default: bool) -> bool {
        self.bool_opt(name).unwrap_or(default)
    }

    /// An integer in `min..=max`.
    pub(super) fn int<T>(&mut self, name: &str, default: T, min: T, max: T) -> T
    where
        T: Copy + Display + Into<i128> + TryFrom<i128>,
    {
        let Some(value) = self.string(name) else {
            return default;
        };
        // Parsed wider than T so "70000" for a port is "out of range", not "not a number".
        match value.parse::<i128>() {
            Err(_) => {
                self.error(name, format!("{value:?} is not a number"));
                default
            }
            Ok(n) if n < min.into() || n > max.into() => {
                self.error(name, format!("{n} is out of range ({min} to {max})"));
                default
            }
            Ok(n) => T::try_from(n).unwrap_or(default),
        }
    }

    /// One of a fixed set of words, in any case.
    pub(super) fn choice<T: Copy>(&mut self, name: &str, default: T, options: &[(&str, T)]) -> T {
        let Some(value) = self.string(name) else {
            return default;
        };
        let lower = value.to_ascii_lowercase();
        if let Some((_, v)) = options.iter().find(|(word, _)| *word == lower) {
            return *v;
        }
        let words: Vec<&str> = options.iter().map(|(word, _)| *word).collect();
        self.error(
            name,
            format!("{value:?} is not one of {}", words.join(", ")),
        );
        default
    }

    /// A comma-separated list; blank entries (`a,,b`, a trailing comma) are dropped.
    pub(super) fn list(&mut self, name: &str) -> Vec<String> {
        self.string(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A value parsed with `FromStr` (IP addresses, paths).
    pub(super) fn parsed<T: FromStr>(&mut self, name: &str, what: &str) -> Option<T> {
        let value = self.string(name)?;
        match value.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(name, format!("{value:?} is not {what}"));
                None
            }
        }
    }

    /// Names in the environment that look like ours but are not: typos (`SMS_ENABLE`) and the
    /// predecessor's variables this gateway does not read. Silently ignoring them would leave the
    /// operator believing a setting took effect.
    pub(super) fn warn_unknown(&mut self, known: &[&str], prefixes: &[&str]) {
        let mut unknown: Vec<&String> = self
            .vars
            .keys()
            .filter(|name| {
                let base = name.strip_suffix(FILE_SUFFIX).unwrap_or(name);
                prefixes.iter().any(|p| name.starts_with(p)) && !known.contains(&base)
            })
            .collect();
        unknown.sort();
        for name in unknown {
            self.warnings.push(format!(
                "{name} is not a setting of otp-gateway and is ignored"
            ));
        }
    }
}

pub(super) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn booleans() {
        for (text, value) in [
            ("true", true),
            ("TRUE", true),
            ("Yes", true),
            ("1", true),
            ("false", false),
            ("False", false),
            ("no", false),
            ("0", false),
        ] {
            assert_eq!(parse_bool(text), Some(value), "{text}");
        }
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_bool("on"), None);
    }

    #[test]
    fn integers_report_not_a_number_and_range() {
        let vars = map(&[
            ("HTTP_PORT", "abc"),
            ("SIP_PORT", "70000"),
            ("ADMIN_PORT", "-1"),
        ]);
        let mut v = Vars::new(&vars, Vec::new());
        assert_eq!(v.int::<u16>("HTTP_PORT", 8080, 1, u16::MAX), 8080);
        assert_eq!(v.int::<u16>("SIP_PORT", 5060, 1, u16::MAX), 5060);
        assert_eq!(v.int::<u16>("ADMIN_PORT", 80, 1, u16::MAX), 80);
        let errors = v.finish().unwrap_err().to_string();
        assert_eq!(
            errors,
            "HTTP_PORT: \"abc\" is not a number\n\
             SIP_PORT: 70000 is out of range (1 to 65535)\n\
             ADMIN_PORT: -1 is out of range (1 to 65535)"
        );
    }

    #[test]
    fn blank_is_unset() {
        let vars = map(&[("HTTP_PORT", ""), ("LOG_LEVEL", "   ")]);
        let mut v = Vars::new(&vars, Vec::new());
        assert_eq!(v.int::<u16>("HTTP_PORT", 8080, 1, u16::MAX), 8080);
        assert_eq!(v.string("LOG_LEVEL"), None);
        assert!(v.finish().is_ok());
    }
}
