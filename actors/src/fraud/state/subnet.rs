//! End-user networks: which IPs are scored at all ([`IpScope`]), the subnet an IP is judged with
//! (`/24` for IPv4, `/64` for IPv6: what one household or one server usually gets), and what is kept
//! per subnet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::trust::Trust;
use super::window::{HourCounter, MinuteCounter};
use crate::ipnet::IpNet;

/// Where an IP lives. Only [`IpScope::Public`] addresses are scored: the others say nothing about
/// fraud by themselves (the predecessor banned loopback callers, including its own admin tester).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpScope {
    /// Globally routed (documentation ranges included, so examples behave like real traffic).
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and IPv6 unique local `fc00::/7`.
    Private,
    /// `169.254/16`, `fe80::/10`.
    LinkLocal,
    /// RFC 6598 shared address space `100.64.0.0/10` (carrier-grade NAT).
    Cgnat,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// Multicast, broadcast and the reserved `240.0.0.0/4`: not a real source address.
    Reserved,
}

impl IpScope {
    /// True for [`IpScope::Public`].
    pub fn is_public(self) -> bool {
        self == IpScope::Public
    }

    /// The name recorded in decisions (`"private"`, `"loopback"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            IpScope::Public => "public",
            IpScope::Loopback => "loopback",
            IpScope::Private => "private",
            IpScope::LinkLocal => "link_local",
            IpScope::Cgnat => "cgnat",
            IpScope::Unspecified => "unspecified",
            IpScope::Reserved => "reserved",
        }
    }
}

/// The scope of `ip`. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is judged as its IPv4 address.
pub fn ip_scope(ip: IpAddr) -> IpScope {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4_scope(v4),
        IpAddr::V6(v6) => v6_scope(v6),
    }
}

fn v4_scope(ip: Ipv4Addr) -> IpScope {
    let [a, b, ..] = ip.octets();
    if a == 0 {
        IpScope::Unspecified
    } else if ip.is_loopback() {
        IpScope::Loopback
    } else if ip.is_private() {
        IpScope::Private
    } else if ip.is_link_local() {
        IpScope::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        IpScope::Cgnat
    } else if ip.is_multicast() || a >= 240 {
        IpScope::Reserved
    } else {
        IpScope::Public
    }
}

fn v6_scope(ip: Ipv6Addr) -> IpScope {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        IpScope::Unspecified
    } else if ip.is_loopback() {
        IpScope::Loopback
    } else if first & 0xfe00 == 0xfc00 {
        IpScope::Private
    } else if first & 0xffc0 == 0xfe80 {
        IpScope::LinkLocal
    } else if ip.is_multicast() {
        IpScope::Reserved
    } else {
        IpScope::Public
    }
}

/// The `/24` (IPv4) or `/64` (IPv6) holding `ip` (IPv4-mapped addresses as IPv4). Always `Some`:
/// both lengths fit their family (the `Option` is [`IpNet::new`]'s).
pub fn subnet_of(ip: IpAddr) -> Option<IpNet> {
    let ip = ip.to_canonical();
    let len = if ip.is_ipv4() { 24 } else { 64 };
    IpNet::new(ip, len)
}

/// What is kept per subnet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SubnetState {
    /// Requests per second over the last minute.
    pub(crate) minute: MinuteCounter,
    /// Requests per minute over the last hour.
    pub(crate) hour: HourCounter,
    /// Learned trust.
    pub(crate) trust: Option<Trust>,
    /// Last shadow ban of a request from this subnet.
    pub(crate) caught_at_ms: Option<i64>,
}

impl SubnetState {
    /// Counts one request.
    pub(crate) fn count_request(&mut self, now_ms: i64) {
        self.minute.prune(now_ms);
        self.hour.prune(now_ms);
        self.minute.add(now_ms);
        self.hour.add(now_ms);
    }

    /// Prunes windows and forgets decayed trust and old catches; true when nothing is left.
    pub(crate) fn prune(&mut self, now_ms: i64, half_life_ms: i64, caught_ttl_ms: i64) -> bool {
        self.minute.prune(now_ms);
        self.hour.prune(now_ms);
        if self
            .trust
            .is_some_and(|t| t.is_negligible(now_ms, half_life_ms))
        {
            self.trust = None;
        }
        if self
            .caught_at_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= caught_ttl_ms)
        {
            self.caught_at_ms = None;
        }
        self.minute.is_empty()
            && self.hour.is_empty()
            && self.trust.is_none()
            && self.caught_at_ms.is_none()
    }

    /// Most recent activity, for evicting the stalest keys when over the cap.
    pub(crate) fn last_seen_ms(&self) -> i64 {
        [
            self.minute.last_ms(),
            self.hour.last_ms(),
            self.trust.map(|t| t.at_ms()),
            self.caught_at_ms,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> IpScope {
        ip_scope(s.parse().unwrap())
    }

    #[test]
    fn scopes() {
        for (ip, want) in [
            ("203.0.113.7", IpScope::Public),
            ("8.8.8.8", IpScope::Public),
            ("2001:db8::1", IpScope::Public),
            ("127.0.0.1", IpScope::Loopback),
            ("::1", IpScope::Loopback),
            ("::ffff:127.0.0.1", IpScope::Loopback),
            ("10.1.2.3", IpScope::Private),
            ("172.16.0.1", IpScope::Private),
            ("192.168.1.1", IpScope::Private),
            ("fd12:3456::1", IpScope::Private),
            ("169.254.1.1", IpScope::LinkLocal),
            ("fe80::1", IpScope::LinkLocal),
            ("100.64.0.1", IpScope::Cgnat),
            ("100.127.255.254", IpScope::Cgnat),
            ("100.128.0.1", IpScope::Public),
            ("0.0.0.0", IpScope::Unspecified),
            ("::", IpScope::Unspecified),
            ("224.0.0.1", IpScope::Reserved),
            ("255.255.255.255", IpScope::Reserved),
        ] {
            assert_eq!(scope(ip), want, "{ip}");
        }
    }

    #[test]
    fn subnets() {
        let s = |ip: &str| subnet_of(ip.parse().unwrap()).unwrap();
        assert_eq!(s("203.0.113.77").to_string(), "203.0.113.0/24");
        assert_eq!(s("::ffff:203.0.113.77").to_string(), "203.0.113.0/24");
        assert_eq!(s("2001:db8:1:2:3:4:5:6").to_string(), "2001:db8:1:2::/64");
    }
}
