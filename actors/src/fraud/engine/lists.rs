//! The operator-edited lists: whitelist, ASN blocklist, IRSF prefixes ([`FraudLists`]), and the
//! index the engine builds from them so a lookup costs a few hash probes whatever their size.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ipnet::IpNet;

/// The lists, as edited in the admin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FraudLists {
    /// Phones that skip every check, `+E164` (spaces and a missing `+` are tolerated).
    pub whitelist_phones: HashSet<String>,
    /// End-user IPs and networks (IPv4 and IPv6) that skip every check.
    pub whitelist_nets: Vec<IpNet>,
    /// Autonomous systems whose users are suspicious (hosting, VPN, proxy networks).
    pub asn_blocklist: HashMap<u32, AsnEntry>,
    /// High-risk destination prefixes.
    pub irsf_prefixes: Vec<IrsfPrefix>,
}

/// Why an ASN is listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnEntry {
    /// Organisation name.
    pub org: String,
    /// `hosting`, `vpn`, `proxy`, …
    pub category: String,
}

/// A high-risk destination prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrsfPrefix {
    /// E.164 digits without `+` (`882`, `2272`).
    pub digits: String,
    /// Why it is listed.
    pub note: String,
}

/// [`FraudLists`] prepared for lookups.
#[derive(Debug, Default)]
pub(crate) struct ListIndex {
    phones: HashSet<String>,
    nets: Vec<IpNet>,
    asns: HashMap<u32, AsnEntry>,
    /// Prefix digits → entry.
    irsf: HashMap<String, IrsfPrefix>,
    irsf_longest: usize,
}

impl ListIndex {
    /// Normalises phones to `+digits` and prefixes to digits; drops entries left empty.
    pub(crate) fn new(lists: FraudLists) -> ListIndex {
        let phones = lists
            .whitelist_phones
            .iter()
            .map(|p| digits_only(p))
            .filter(|d| !d.is_empty())
            .map(|d| format!("+{d}"))
            .collect();
        let mut irsf = HashMap::new();
        for mut p in lists.irsf_prefixes {
            p.digits = digits_only(&p.digits);
            if !p.digits.is_empty() {
                irsf.insert(p.digits.clone(), p);
            }
        }
        let irsf_longest = irsf.keys().map(String::len).max().unwrap_or(0);
        ListIndex {
            phones,
            nets: lists.whitelist_nets,
            asns: lists.asn_blocklist,
            irsf,
            irsf_longest,
        }
    }

    /// Exact match on the `+E164` number.
    pub(crate) fn phone_whitelisted(&self, phone: &str) -> bool {
        self.phones.contains(phone)
    }

    /// `ip` is inside a whitelisted network.
    pub(crate) fn ip_whitelisted(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The blocklist entry of `asn`.
    pub(crate) fn asn(&self, asn: u32) -> Option<&AsnEntry> {
        self.asns.get(&asn)
    }

    /// The longest listed prefix of `digits` (E.164 digits without `+`).
    pub(crate) fn irsf_match(&self, digits: &str) -> Option<&IrsfPrefix> {
        let longest = self.irsf_longest.min(digits.len());
        (1..=longest)
            .rev()
            .filter_map(|len| digits.get(..len))
            .find_map(|p| self.irsf.get(p))
    }
}

fn digits_only(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_matches_the_longest_prefix() {
        let idx = ListIndex::new(FraudLists {
            whitelist_phones: ["+44 7700 900123".to_string(), "15550001".to_string()].into(),
            irsf_prefixes: vec![
                IrsfPrefix {
                    digits: "882".into(),
                    note: "international networks".into(),
                },
                IrsfPrefix {
                    digits: "+88216".into(),
                    note: "Thuraya".into(),
                },
            ],
            ..FraudLists::default()
        });
        assert!(idx.phone_whitelisted("+447700900123"));
        assert!(idx.phone_whitelisted("+15550001"));
        assert_eq!(
            idx.irsf_match("88216123").map(|p| p.note.as_str()),
            Some("Thuraya")
        );
        assert_eq!(
            idx.irsf_match("8821712").map(|p| p.digits.as_str()),
            Some("882")
        );
        assert!(idx.irsf_match("4477").is_none());
        assert!(idx.irsf_match("88").is_none());
    }
}
