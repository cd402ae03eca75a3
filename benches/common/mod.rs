//! What the benchmarks share: their `BENCH_*` settings and the `/proc` readings behind their CPU
//! and memory figures (Linux only, as the benchmarks are).
#![allow(dead_code)]

/// `name` parsed from the environment, or `default` when unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `kB` field of `/proc/self/status` (`VmRSS:`, `VmHWM:`), in KiB; 0 when unreadable.
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (command name, utime + stime in seconds) from the text of a `/proc/.../stat` file.
pub fn parse_stat(stat: &str) -> (String, f64) {
    let name = stat
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map(|(name, _)| name.to_owned())
        .unwrap_or_default();
    // Fields after the ")" closing the command name: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    (name, (ticks(11) + ticks(12)) / 100.0) // USER_HZ
}

/// CPU seconds used by the whole process (live and exited threads).
pub fn process_cpu() -> f64 {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default()).1
}

/// CPU seconds used by the calling thread.
pub fn own_cpu() -> f64 {
    parse_stat(&std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default()).1
}
