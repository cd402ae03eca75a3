//! SSRF guard for client webhook URLs (SPEC §6).
//!
//! Two stages:
//! - [`check_url_syntax`] validates a `webhook_url` when a request is accepted (`/dispatch`): only
//!   `http`/`https`, a host, no userinfo, at most [`MAX_URL_LEN`] bytes.
//! - [`resolve_vetted`] runs at every delivery attempt: it resolves the host *at send time*, requires
//!   every resolved address to be public ([`is_public`]) unless `WEBHOOK_ALLOW_PRIVATE` is set, and
//!   returns the vetted socket address so the caller connects to exactly that address (no second
//!   lookup, so DNS rebinding between check and connect is impossible).
//!
//! The address classification follows RFC 6890 and the IANA IPv4/IPv6 Special-Purpose Address
//! Registries (<https://www.iana.org/assignments/iana-ipv4-special-registry>,
//! <https://www.iana.org/assignments/iana-ipv6-special-registry>). Addresses that embed an IPv4
//! address (IPv4-mapped, IPv4-compatible, NAT64 well-known prefix, 6to4) are judged by the embedded
//! IPv4 address, so `::ffff:127.0.0.1` or `64:ff9b::a9fe:a9fe` cannot bypass the IPv4 rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest accepted webhook URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Why a webhook URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    /// The scheme is not `http` or `https` (the offending scheme).
    #[error("webhook URL scheme {0:?} is not allowed (only http and https)")]
    BadScheme(String),
    /// The URL has no host.
    #[error("webhook URL has no host")]
    NoHost,
    /// The URL is malformed, too long, or carries userinfo (the reason).
    #[error("invalid webhook URL: {0}")]
    Invalid(String),
    /// The host could not be resolved or resolved to no address (host and resolver detail).
    #[error("webhook host could not be resolved: {0}")]
    Unresolvable(String),
    /// The host is, or resolves to, a non-public address.
    #[error("webhook host {host} resolves to non-public address {addr}")]
    Blocked {
        /// The host as written in the URL.
        host: String,
        /// The first offending address.
        addr: IpAddr,
    },
}

/// Returns `true` only for globally routable unicast addresses that a webhook may target.
///
/// Pure function (no I/O). Blocks the IPv4 and IPv6 special-purpose ranges of RFC 6890 and the IANA
/// special-purpose registries (private, loopback, link-local incl. 169.254.169.254, CGNAT,
/// documentation, benchmarking, multicast, reserved, unspecified, ULA, site-local, discard, IETF
/// protocol assignments); IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
/// addresses are judged by the IPv4 address they embed.
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 rules (IANA IPv4 Special-Purpose Address Registry, RFC 6890 §2.2.2, plus multicast).
fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = match a {
        // 0.0.0.0/8 "this network" (RFC 791 / RFC 1122 §3.2.1.3), incl. 0.0.0.0.
        0 => true,
        // 10.0.0.0/8 private-use (RFC 1918).
        10 => true,
        // 100.64.0.0/10 shared address space / CGNAT (RFC 6598).
        100 => b & 0xC0 == 64,
        // 127.0.0.0/8 loopback (RFC 1122).
        127 => true,
        // 169.254.0.0/16 link-local (RFC 3927), incl. the 169.254.169.254 cloud metadata service.
        169 => b == 254,
        // 172.16.0.0/12 private-use (RFC 1918).
        172 => b & 0xF0 == 16,
        192 => {
            matches!(
                (b, c),
                // 192.0.0.0/24 IETF protocol assignments (RFC 6890).
                (0, 0)
            // 192.0.2.0/24 TEST-NET-1 documentation (RFC 5737).
            | (0, 2)
            // 192.88.99.0/24 deprecated 6to4 relay anycast (RFC 7526).
            | (88, 99)
            ) || b == 168
        } // 192.168.0.0/16 private-use (RFC 1918).
        // 198.18.0.0/15 benchmarking (RFC 2544); 198.51.100.0/24 TEST-NET-2 (RFC 5737).
        198 => b & 0xFE == 18 || (b == 51 && c == 100),
        // 203.0.113.0/24 TEST-NET-3 documentation (RFC 5737).
        203 => b == 0 && c == 113,
        // 224.0.0.0/4 multicast (RFC 5771), 240.0.0.0/4 reserved (RFC 1112 §4),
        // 255.255.255.255/32 limited broadcast (RFC 919 / RFC 8190).
        224..=255 => true,
        _ => false,
    };
    !blocked
}

/// IPv6 rules (IANA IPv6 Special-Purpose Address Registry, RFC 6890 §2.2.3, plus multicast,
/// link-local and the deprecated site-local range).
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };

    // ::/96: ::/128 unspecified and ::1/128 loopback (RFC 4291), otherwise the deprecated
    // IPv4-compatible form ::a.b.c.d (RFC 4291 §2.5.5.1), judged by the embedded IPv4 address.
    if s[..6] == [0; 6] {
        if s[6] == 0 && s[7] <= 1 {
            return false;
        }
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // ::ffff:0:0/96 IPv4-mapped (RFC 4291 §2.5.5.2), judged by the embedded IPv4 address.
    // ::ffff:0:0:0/96 IPv4-translated (RFC 2765 SIIT) is treated the same way.
    if s[..5] == [0; 5] && s[5] == 0xFFFF || s[..4] == [0; 4] && s[4] == 0xFFFF && s[5] == 0 {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // 64:ff9b::/96 NAT64 well-known prefix (RFC 6052), judged by the embedded IPv4 address.
    if s[0] == 0x64 && s[1] == 0xFF9B && s[2..6] == [0; 4] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // 64:ff9b:1::/48 local-use IPv4/IPv6 translation (RFC 8215): never global.
    if s[0] == 0x64 && s[1] == 0xFF9B && s[2] == 1 {
        return false;
    }
    // 100::/64 discard-only (RFC 6666).
    if s[0] == 0x100 && s[1..4] == [0; 3] {
        return false;
    }
    // 2001::/23 IETF protocol assignments (RFC 2928): Teredo 2001::/32 (RFC 4380), benchmarking
    // 2001:2::/48 (RFC 5180), ORCHID 2001:10::/28 and ORCHIDv2 2001:20::/28 (RFC 7343), …
    if s[0] == 0x2001 && s[1] < 0x200 {
        return false;
    }
    // 2001:db8::/32 documentation (RFC 3849).
    if s[0] == 0x2001 && s[1] == 0x0DB8 {
        return false;
    }
    // 2002::/16 6to4 (RFC 3056): the IPv4 address is in bits 16..48.
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    // 3fff::/20 documentation (RFC 9637).
    if s[0] == 0x3FFF && s[1] & 0xF000 == 0 {
        return false;
    }
    // 5f00::/16 SRv6 SIDs (RFC 9602): not globally reachable.
    if s[0] == 0x5F00 {
        return false;
    }
    // fc00::/7 unique local (RFC 4193).
    if s[0] & 0xFE00 == 0xFC00 {
        return false;
    }
    // fe80::/10 link-local (RFC 4291) and fec0::/10 deprecated site-local (RFC 3879).
    if s[0] & 0xFFC0 == 0xFE80 || s[0] & 0xFFC0 == 0xFEC0 {
        return false;
    }
    // ff00::/8 multicast (RFC 4291).
    if s[0] & 0xFF00 == 0xFF00 {
        return false;
    }
    true
}

/// Validates the syntax of a client `webhook_url` (used at `/dispatch` time).
///
/// Accepts only `http`/`https` URLs of at most [`MAX_URL_LEN`] bytes that have a host and no
/// userinfo (`http://user:pass@host` is rejected). Does not resolve the host: addresses are checked
/// at send time by [`resolve_vetted`].
pub fn check_url_syntax(url: &str) -> Result<url::Url, SsrfError> {
    if url.len() > MAX_URL_LEN {
        return Err(SsrfError::Invalid(format!(
            "longer than {MAX_URL_LEN} bytes ({})",
            url.len()
        )));
    }
    let parsed = url::Url::parse(url).map_err(|e| match e {
        url::ParseError::EmptyHost => SsrfError::NoHost,
        other => SsrfError::Invalid(other.to_string()),
    })?;
    check_scheme(&parsed)?;
    if parsed.host().is_none() {
        return Err(SsrfError::NoHost);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(SsrfError::Invalid("userinfo is not allowed".to_owned()));
    }
    if parsed.as_str().len() > MAX_URL_LEN {
        return Err(SsrfError::Invalid(format!(
            "longer than {MAX_URL_LEN} bytes once normalised"
        )));
    }
    Ok(parsed)
}

/// Only `http` and `https`.
fn check_scheme(url: &url::Url) -> Result<(), SsrfError> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(SsrfError::BadScheme(other.to_owned())),
    }
}

/// Resolves the webhook host at send time and returns the address to connect to.
///
/// IP-literal hosts (IPv4, bracketed IPv6) are used directly; domain names are resolved with
/// `tokio::net::lookup_host`. The port is the URL's, or the scheme default. Unless `allow_private`
/// (`WEBHOOK_ALLOW_PRIVATE=true`), *every* resolved address must pass [`is_public`]; the first one
/// that does not yields [`SsrfError::Blocked`]. Returns the first vetted address: the caller must
/// connect to exactly that address (no second lookup) and send the original `Host` header.
pub async fn resolve_vetted(url: &url::Url, allow_private: bool) -> Result<SocketAddr, SsrfError> {
    check_scheme(url)?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| SsrfError::BadScheme(url.scheme().to_owned()))?;
    let (host_name, addrs): (String, Vec<SocketAddr>) = match url.host() {
        None => return Err(SsrfError::NoHost),
        Some(url::Host::Ipv4(v4)) => (v4.to_string(), vec![SocketAddr::new(IpAddr::V4(v4), port)]),
        Some(url::Host::Ipv6(v6)) => (v6.to_string(), vec![SocketAddr::new(IpAddr::V6(v6), port)]),
        Some(url::Host::Domain(domain)) => {
            let addrs = tokio::net::lookup_host((domain, port))
                .await
                .map_err(|e| SsrfError::Unresolvable(format!("{domain}: {e}")))?
                .collect();
            (domain.to_owned(), addrs)
        }
    };
    let Some(first) = addrs.first().copied() else {
        return Err(SsrfError::Unresolvable(format!(
            "{host_name}: no addresses"
        )));
    };
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(SsrfError::Blocked {
                host: host_name,
                addr: bad.ip(),
            });
        }
    }
    Ok(first)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const BLOCKED: &[&str] = &[
        // IPv4 special-purpose ranges and their edges.
        "0.0.0.0",
        "0.255.255.255",
        "10.0.0.0",
        "10.255.255.255",
        "100.64.0.0",
        "100.127.255.255",
        "127.0.0.1",
        "127.255.255.255",
        "169.254.0.0",
        "169.254.169.254",
        "169.254.255.255",
        "172.16.0.0",
        "172.31.255.255",
        "192.0.0.0",
        "192.0.0.255",
        "192.0.2.0",
        "192.0.2.255",
        "192.88.99.0",
        "192.88.99.255",
        "192.168.0.0",
        "192.168.1.1",
        "192.168.255.255",
        "198.18.0.0",
        "198.19.255.255",
        "198.51.100.0",
        "198.51.100.255",
        "203.0.113.0",
        "203.0.113.255",
        "224.0.0.0",
        "239.255.255.255",
        "240.0.0.0",
        "255.255.255.254",
        "255.255.255.255",
        // IPv6.
        "::",
        "::1",
        "::2",
        "::127.0.0.1",
        "::10.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::ffff:100.64.0.1",
        "::ffff:0.0.0.0",
        "::ffff:224.0.0.1",
        "::ffff:0:127.0.0.1",
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::",
        "64:ff9b:1::808:808",
        "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
        "100::",
        "100::ffff:ffff:ffff:ffff",
        "2001::",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:2::1",
        "2001:10::1",
        "2001:20::1",
        "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db8::",
        "2001:db8::1",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "2002:c0a8:0101::",
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::",
        "2002:a00:1::",
        "2002::",
        "3fff::1",
        "3fff:fff::",
        "5f00::1",
        "fc00::",
        "fd12:3456::1",
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::",
        "fe80::1",
        "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fec0::",
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "ff00::",
        "ff02::1",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ];

    const PUBLIC: &[&str] = &[
        // IPv4 well-known public and range edges.
        "8.8.8.8",
        "1.1.1.1",
        "1.0.0.0",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.0",
        "192.0.3.0",
        "192.88.98.255",
        "192.88.100.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "198.51.99.255",
        "198.51.101.0",
        "203.0.112.255",
        "203.0.114.0",
        "223.255.255.255",
        // IPv6.
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4001:800::200e",
        "2001:200::1",
        "2001:db7:ffff::1",
        "2001:db9::1",
        "::8.8.8.8",
        "::ffff:8.8.8.8",
        "::ffff:1.1.1.1",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "100:0:0:1::",
        "3ffe::1",
        "3fff:1000::",
        "4000::1",
        "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe00::1",
    ];

    #[test]
    fn blocked_addresses() {
        for s in BLOCKED {
            assert!(!is_public(ip(s)), "{s} should be blocked");
        }
    }

    #[test]
    fn public_addresses() {
        for s in PUBLIC {
            assert!(is_public(ip(s)), "{s} should be public");
        }
    }

    #[test]
    fn syntax_accepts_http_and_https() {
        let u = check_url_syntax("https://hooks.example.com/otp?x=1").unwrap();
        assert_eq!(u.host_str(), Some("hooks.example.com"));
        check_url_syntax("http://example.com:8080/").unwrap();
        check_url_syntax("http://[2001:db8::1]:8080/x").unwrap();
        check_url_syntax("HTTP://Example.COM/").unwrap();
    }

    #[test]
    fn syntax_rejects_other_schemes() {
        assert_eq!(
            check_url_syntax("ftp://example.com/"),
            Err(SsrfError::BadScheme("ftp".into()))
        );
        assert_eq!(
            check_url_syntax("javascript:alert(1)"),
            Err(SsrfError::BadScheme("javascript".into()))
        );
        assert!(matches!(
            check_url_syntax("file:///etc/passwd"),
            Err(SsrfError::BadScheme(_))
        ));
        assert!(matches!(
            check_url_syntax("gopher://example.com/"),
            Err(SsrfError::BadScheme(_))
        ));
    }

    #[test]
    fn syntax_rejects_missing_host() {
        assert_eq!(check_url_syntax("http://"), Err(SsrfError::NoHost));
        assert_eq!(check_url_syntax("https:///"), Err(SsrfError::NoHost));
        assert!(matches!(
            check_url_syntax("/relative/path"),
            Err(SsrfError::Invalid(_))
        ));
        assert!(matches!(check_url_syntax(""), Err(SsrfError::Invalid(_))));
    }

    #[test]
    fn syntax_rejects_userinfo() {
        for u in [
            "http://user:pass@example.com/",
            "http://user@example.com/",
            "https://:pass@example.com/",
        ] {
            assert!(
                matches!(check_url_syntax(u), Err(SsrfError::Invalid(_))),
                "{u}"
            );
        }
    }

    #[test]
    fn syntax_rejects_too_long() {
        let base = "https://example.com/";
        let ok = format!("{base}{}", "a".repeat(MAX_URL_LEN - base.len()));
        assert_eq!(ok.len(), MAX_URL_LEN);
        check_url_syntax(&ok).unwrap();
        let long = format!("{ok}a");
        assert!(matches!(
            check_url_syntax(&long),
            Err(SsrfError::Invalid(_))
        ));
    }

    #[test]
    fn error_display() {
        let e = SsrfError::Blocked {
            host: "localhost".into(),
            addr: ip("127.0.0.1"),
        };
        assert_eq!(
            e.to_string(),
            "webhook host localhost resolves to non-public address 127.0.0.1"
        );
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[actix_rt::test]
    async fn resolve_blocks_loopback_literal() {
        let err = resolve_vetted(&url("http://127.0.0.1:9/"), false)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SsrfError::Blocked {
                host: "127.0.0.1".into(),
                addr: ip("127.0.0.1")
            }
        );
    }

    #[actix_rt::test]
    async fn resolve_allow_private_returns_literal_with_port() {
        let a = resolve_vetted(&url("http://127.0.0.1:9/"), true)
            .await
            .unwrap();
        assert_eq!(a, "127.0.0.1:9".parse::<SocketAddr>().unwrap());
        let a = resolve_vetted(&url("http://[::1]:8080/x"), true)
            .await
            .unwrap();
        assert_eq!(a, "[::1]:8080".parse::<SocketAddr>().unwrap());
        let a = resolve_vetted(&url("https://10.1.2.3/"), true)
            .await
            .unwrap();
        assert_eq!(a, "10.1.2.3:443".parse::<SocketAddr>().unwrap());
    }

    #[actix_rt::test]
    async fn resolve_blocks_localhost_name() {
        match resolve_vetted(&url("http://localhost/"), false).await {
            Err(SsrfError::Blocked { host, addr }) => {
                assert_eq!(host, "localhost");
                assert!(addr.is_loopback(), "{addr}");
            }
            other => panic!("expected Blocked, got {other:?}"),
        }
    }

    #[actix_rt::test]
    async fn resolve_blocks_ipv6_loopback_literal() {
        let err = resolve_vetted(&url("http://[::1]:8080/x"), false)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SsrfError::Blocked {
                host: "::1".into(),
                addr: ip("::1")
            }
        );
    }

    #[actix_rt::test]
    async fn resolve_blocks_private_and_obfuscated_literals() {
        for (u, addr) in [
            ("http://10.1.2.3/", "10.1.2.3"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
            ),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
        ] {
            match resolve_vetted(&url(u), false).await {
                Err(SsrfError::Blocked { addr: a, .. }) => assert_eq!(a, ip(addr), "{u}"),
                other => panic!("{u}: expected Blocked, got {other:?}"),
            }
        }
    }

    #[actix_rt::test]
    async fn resolve_public_literal_uses_scheme_default_port() {
        let a = resolve_vetted(&url("https://8.8.8.8/hook"), false)
            .await
            .unwrap();
        assert_eq!(a, "8.8.8.8:443".parse::<SocketAddr>().unwrap());
        let a = resolve_vetted(&url("http://[2606:4700:4700::1111]/"), false)
            .await
            .unwrap();
        assert_eq!(
            a,
            "[2606:4700:4700::1111]:80".parse::<SocketAddr>().unwrap()
        );
    }

    #[actix_rt::test]
    async fn resolve_rejects_bad_scheme() {
        assert_eq!(
            resolve_vetted(&url("ftp://8.8.8.8/"), false).await,
            Err(SsrfError::BadScheme("ftp".into()))
        );
    }

    #[actix_rt::test]
    async fn resolve_unresolvable() {
        assert!(matches!(
            resolve_vetted(&url("http://does-not-exist.invalid/"), false).await,
            Err(SsrfError::Unresolvable(_))
        ));
    }
}
