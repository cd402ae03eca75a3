//! [`IpNet`]: an IPv4 or IPv6 network (`10.0.0.0/8`, `2001:db8::/32`, or a single address) for
//! `ADMIN_IP_WHITELIST` and the fraud whitelist. A dozen lines of arithmetic do not justify a dependency.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network: an address with its host bits cleared, and a prefix length (≤ 32 for IPv4, ≤ 128 for
/// IPv6). A bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix_len: u8,
}

impl IpNet {
    /// The network of `addr` with `prefix_len` leading bits; host bits are cleared, so
    /// `192.168.1.7/24` becomes `192.168.1.0/24` (what an operator writing it means). `None` when
    /// the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<IpNet> {
        let addr = match addr {
            IpAddr::V4(v4) if prefix_len <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & v4_mask(prefix_len)))
            }
            IpAddr::V6(v6) if prefix_len <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & v6_mask(prefix_len)))
            }
            _ => return None,
        };
        Some(IpNet { addr, prefix_len })
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// True when `ip` lies in this network. An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a
    /// dual-stack socket reports for an IPv4 peer) is matched as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & v4_mask(self.prefix_len) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & v6_mask(self.prefix_len) == u128::from(net)
            }
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            (IpAddr::V6(_), IpAddr::V4(ip)) => self.contains(IpAddr::V6(ip.to_ipv6_mapped())),
        }
    }
}

fn v4_mask(prefix_len: u8) -> u32 {
    // checked_shl(32) is None: a /0 has an all-zero mask.
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0)
}

fn v6_mask(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len.min(128)))
        .unwrap_or(0)
}

impl FromStr for IpNet {
    type Err = String;

    /// Parses `addr` or `addr/prefix`. The error is a phrase for an operator, without the input.
    fn from_str(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| "is not an IP address or CIDR network".to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(len) if len <= max => len,
                _ => return Err(format!("has an invalid prefix length (0 to {max})")),
            },
        };
        IpNet::new(addr, prefix_len).ok_or_else(|| "has an invalid prefix length".to_string())
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn single_addresses_are_host_networks() {
        let v4: IpNet = "203.0.113.7".parse().unwrap();
        assert_eq!(v4.prefix_len(), 32);
        assert!(v4.contains(ip("203.0.113.7")));
        assert!(!v4.contains(ip("203.0.113.8")));
        let v6: IpNet = "2001:db8::1".parse().unwrap();
        assert_eq!(v6.prefix_len(), 128);
        assert!(v6.contains(ip("2001:db8::1")));
        assert!(!v6.contains(ip("2001:db8::2")));
    }

    #[test]
    fn cidr_membership() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        let net6: IpNet = "2001:db8:abcd::/48".parse().unwrap();
        assert!(net6.contains(ip("2001:db8:abcd:12::1")));
        assert!(!net6.contains(ip("2001:db8:abce::1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("198.51.100.1")));
        let all6: IpNet = "::/0".parse().unwrap();
        assert!(all6.contains(ip("fe80::1")));
    }

    #[test]
    fn host_bits_are_cleared() {
        let net: IpNet = "192.168.1.77/24".parse().unwrap();
        assert_eq!(net.to_string(), "192.168.1.0/24");
        assert!(net.contains(ip("192.168.1.1")));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let net: IpNet = "192.0.2.0/24".parse().unwrap();
        assert!(net.contains(ip("::ffff:192.0.2.10")));
        assert!(!net.contains(ip("::ffff:192.0.3.10")));
        assert!(!net.contains(ip("2001:db8::1")));
    }

    #[test]
    fn rejects_garbage() {
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("2001:db8::/129".parse::<IpNet>().is_err());
        assert!("10.0.0.0/".parse::<IpNet>().is_err());
        assert!("10.0.0.0/-1".parse::<IpNet>().is_err());
        assert!("example.com".parse::<IpNet>().is_err());
        assert!("10.0.0/8".parse::<IpNet>().is_err());
        assert!("".parse::<IpNet>().is_err());
    }
}
