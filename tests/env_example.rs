//! Keeps `.env.example` honest (SPEC §2): it lists every variable the code reads, nothing else, its
//! documented defaults are the real ones, and its own values start the gateway in sandbox mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use otp_gateway::config::{Config, KNOWN_VARIABLES};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.env.example`, split into the active `NAME=value` lines and the documented `#NAME=default`
/// lines. `## ...` lines are prose.
struct EnvExample {
    active: HashMap<String, String>,
    documented: HashMap<String, String>,
}

impl EnvExample {
    fn load() -> EnvExample {
        let text = fs::read_to_string(root().join(".env.example")).unwrap();
        let mut active = HashMap::new();
        let mut documented = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            let (target, assignment) = match line.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_uppercase()) => {
                    (&mut documented, rest)
                }
                Some(_) => continue,
                None if line.is_empty() => continue,
                None => (&mut active, line),
            };
            let (name, value) = assignment
                .split_once('=')
                .unwrap_or_else(|| panic!(".env.example line {}: not NAME=value: {line}", n + 1));
            assert!(
                is_upper_snake(name),
                ".env.example line {}: bad variable name {name:?}",
                n + 1
            );
            let previous = target.insert(name.to_string(), value.to_string());
            assert!(previous.is_none(), ".env.example lists {name} twice");
        }
        for name in active.keys() {
            assert!(
                !documented.contains_key(name),
                ".env.example lists {name} both active and commented"
            );
        }
        EnvExample { active, documented }
    }

    fn names(&self) -> BTreeSet<String> {
        self.active
            .keys()
            .chain(self.documented.keys())
            .cloned()
            .collect()
    }
}

fn is_upper_snake(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !s.ends_with('_')
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            // `tests.rs` files are `#[cfg(test)] mod tests;` bodies: test code, free to use
            // made-up names.
            out.push(path);
        }
    }
}

/// The non-test part of a source file: everything before its first `#[cfg(test)]`, without
/// whole-line comments (which may hold unbalanced quotes).
fn production_source(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The contents of the plain string literals in `code` (escapes kept as written).
fn string_literals(code: &str) -> Vec<String> {
    let mut literals = Vec::new();
    let mut chars = code.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        // Skip char literals such as '"' so they do not open a string.
        if c == '\'' && prev != '\\' {
            let rest: String = chars.clone().take(3).collect();
            if rest.starts_with("\"'") || rest.starts_with("\\\"'") {
                for _ in 0..rest.find('\'').unwrap_or(0) + 1 {
                    chars.next();
                }
                prev = '\'';
                continue;
            }
        }
        if c == '"' {
            let mut literal = String::new();
            let mut escaped = false;
            for c in chars.by_ref() {
                if escaped {
                    literal.push(c);
                    escaped = false;
                } else if c == '\\' {
                    literal.push(c);
                    escaped = true;
                } else if c == '"' {
                    break;
                } else {
                    literal.push(c);
                }
            }
            literals.push(literal);
            prev = '"';
            continue;
        }
        prev = c;
    }
    literals
}

#[test]
fn every_known_variable_is_documented_and_nothing_else() {
    let example = EnvExample::load();
    let names = example.names();
    let known: BTreeSet<String> = KNOWN_VARIABLES.iter().map(|s| s.to_string()).collect();
    let undocumented: Vec<_> = known.difference(&names).collect();
    assert!(
        undocumented.is_empty(),
        "read by the code but missing from .env.example: {undocumented:?}"
    );
    let read_elsewhere: BTreeSet<String> =
        direct_reads().into_iter().map(|(name, _)| name).collect();
    let stale: Vec<_> = names
        .difference(&known)
        .filter(|name| !read_elsewhere.contains(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "in .env.example but not read by the code: {stale:?}"
    );
}

#[test]
fn every_variable_name_in_the_config_code_is_known() {
    let mut files = Vec::new();
    rust_files(&root().join("src/config"), &mut files);
    let single = root().join("src/config.rs");
    if single.exists() {
        files.push(single);
    }
    assert!(!files.is_empty());
    let mut unknown = BTreeSet::new();
    for file in &files {
        for literal in string_literals(&production_source(file)) {
            if literal.contains('_')
                && is_upper_snake(&literal)
                && !KNOWN_VARIABLES.contains(&literal.as_str())
            {
                unknown.insert(format!("{} ({})", literal, file.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "variable names in src/config not in KNOWN_VARIABLES: {unknown:?}"
    );
}

/// Variables read with `std::env::var` outside the config module (such as `RUST_LOG` in the
/// logging set-up), with the file that reads each.
fn direct_reads() -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("actors/src"), &mut files);
    let mut reads = Vec::new();
    for file in &files {
        let code = production_source(file);
        for call in ["env::var(\"", "env::var_os(\""] {
            for (at, _) in code.match_indices(call) {
                let rest = &code[at + call.len()..];
                let name = rest.split('"').next().unwrap_or("");
                reads.push((name.to_string(), file.clone()));
            }
        }
    }
    reads
}

#[test]
fn no_code_reads_an_undocumented_variable_directly() {
    let names = EnvExample::load().names();
    let offenders: BTreeSet<String> = direct_reads()
        .into_iter()
        .filter(|(name, _)| !names.contains(name.strip_suffix("_FILE").unwrap_or(name)))
        .map(|(name, file)| format!("{name} ({})", file.display()))
        .collect();
    assert!(
        offenders.is_empty(),
        "environment variables read in code but missing from .env.example: {offenders:?}"
    );
}

#[test]
fn the_example_values_start_a_sandbox() {
    let example = EnvExample::load();
    let config = Config::from_vars(&example.active, true)
        .unwrap_or_else(|e| panic!(".env.example does not load in sandbox mode:\n{e}"));
    assert!(config.is_sandbox());
    assert_eq!(config.sip.caller_id, "12125551234");
}

#[test]
fn the_example_placeholders_are_refused_in_live_mode() {
    let example = EnvExample::load();
    let errors = Config::from_vars(&example.active, false)
        .expect_err("unedited placeholder secrets must not start a live gateway");
    for e in errors.errors() {
        assert!(
            e.message.contains("placeholder"),
            "unexpected live-mode problem with .env.example: {e}"
        );
    }
    assert!(errors.mentions("API_SECRET"));
}

#[test]
fn documented_defaults_are_the_real_defaults() {
    let example = EnvExample::load();
    // Live mode with real secrets, once relying on defaults and once spelling out every
    // documented `#NAME=default`: the two configurations must be identical.
    let mut base = example.active.clone();
    base.insert("API_SECRET".into(), "0123456789abcdef0123".into());
    base.insert("DIDWW_PASSWORD".into(), "real-trunk-password".into());
    let mut explicit = base.clone();
    for (name, value) in &example.documented {
        if !value.is_empty() {
            explicit.insert(name.clone(), value.clone());
        }
    }
    let implicit = Config::from_vars(&base, false).unwrap_or_else(|e| panic!("{e}"));
    let explicit = Config::from_vars(&explicit, false)
        .unwrap_or_else(|e| panic!("a documented default is rejected:\n{e}"));
    assert_eq!(format!("{implicit:#?}"), format!("{explicit:#?}"));
}
