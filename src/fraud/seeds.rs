//! Seed data for the fraud rules that use editable lists (SPEC §8): the ASN blocklist and the
//! high-risk (IRSF) destination prefixes. The gateway copies these into its database on first start
//! only; from then on the database is the truth and operators edit the lists in the admin panel
//! (adding what they see attacked, removing what hurts their real users). Changing this file
//! therefore affects new installations only.
//!
//! Both lists are deliberately conservative: an entry adds points to a request's score, and enough
//! points shadow-ban it, so an entry that covers real users silently loses their codes.

/// `category` of a network that rents servers (cloud, VPS, dedicated hosting): end users rarely
/// browse from there, bots and proxies often do.
pub const CATEGORY_HOSTING: &str = "hosting";
/// `category` of a network whose traffic is mostly commercial VPN exits.
pub const CATEGORY_VPN: &str = "vpn";
/// `category` of a network known for selling proxies / anonymising services to abusers.
pub const CATEGORY_PROXY: &str = "proxy";

/// Every value [`SeedAsn::category`] may take (also what the admin offers).
pub const ASN_CATEGORIES: &[&str] = &[CATEGORY_HOSTING, CATEGORY_VPN, CATEGORY_PROXY];

/// One seeded ASN blocklist entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedAsn {
    /// Autonomous system number, as in the ASN database.
    pub asn: u32,
    /// Who operates it (for the operator; the lookup's organisation string may differ).
    pub org: &'static str,
    /// One of [`ASN_CATEGORIES`].
    pub category: &'static str,
}

const fn hosting(asn: u32, org: &'static str) -> SeedAsn {
    SeedAsn {
        asn,
        org,
        category: CATEGORY_HOSTING,
    }
}

const fn vpn(asn: u32, org: &'static str) -> SeedAsn {
    SeedAsn {
        asn,
        org,
        category: CATEGORY_VPN,
    }
}

const fn proxy(asn: u32, org: &'static str) -> SeedAsn {
    SeedAsn {
        asn,
        org,
        category: CATEGORY_PROXY,
    }
}

/// Networks whose addresses are servers rather than people: a verification request whose end-user
/// IP sits in one is likely scripted (SMS pumping bots run on rented servers and VPN/proxy exits).
///
/// Left out on purpose, because real users come from them: Google's main AS 15169 (Google services
/// and user-facing proxies), Cloudflare 13335 (WARP and iCloud Private Relay egress), Akamai 20940 /
/// 36183 and Fastly 54113 (CDNs, Private Relay), every eyeball ISP and mobile network. Apple's
/// Private Relay users are people, not bots.
pub const ASN_BLOCKLIST_SEED: &[SeedAsn] = &[
    // Large public clouds: compute instances, serverless and load balancers.
    hosting(16509, "Amazon.com (AWS)"),
    hosting(14618, "Amazon.com (AWS, us-east)"),
    hosting(8987, "Amazon Data Services Ireland (AWS)"),
    hosting(396982, "Google Cloud Platform"),
    hosting(8075, "Microsoft (Azure)"),
    hosting(31898, "Oracle Cloud Infrastructure"),
    hosting(45102, "Alibaba Cloud (international)"),
    hosting(37963, "Alibaba Cloud (Aliyun, China)"),
    hosting(132203, "Tencent Cloud"),
    hosting(45090, "Tencent Cloud (Shenzhen Tencent Computer Systems)"),
    hosting(136907, "Huawei Cloud"),
    hosting(55990, "Huawei Cloud (China)"),
    // VPS and dedicated-server providers: cheap servers, a favourite of bots and self-run proxies.
    hosting(14061, "DigitalOcean"),
    hosting(16276, "OVH"),
    hosting(24940, "Hetzner Online"),
    hosting(63949, "Linode / Akamai Connected Cloud"),
    hosting(20473, "Vultr (Choopa)"),
    hosting(51167, "Contabo"),
    hosting(60781, "Leaseweb Netherlands"),
    hosting(16265, "Leaseweb Global"),
    hosting(28753, "Leaseweb Deutschland"),
    hosting(12876, "Scaleway (Online SAS)"),
    hosting(8560, "IONOS"),
    hosting(197540, "netcup"),
    hosting(47583, "Hostinger"),
    hosting(22612, "Namecheap"),
    hosting(26496, "GoDaddy"),
    hosting(46606, "Unified Layer (Bluehost)"),
    hosting(32244, "Liquid Web"),
    hosting(29802, "Hivelocity"),
    hosting(8100, "QuadraNet"),
    hosting(36352, "ColoCrossing"),
    hosting(53667, "FranTech Solutions (BuyVM)"),
    hosting(19318, "InterServer"),
    hosting(54290, "Hostwinds"),
    hosting(40676, "Psychz Networks"),
    hosting(27357, "Rackspace (US)"),
    hosting(19994, "Rackspace"),
    hosting(21859, "Zenlayer"),
    hosting(9371, "SAKURA Internet"),
    hosting(49981, "WorldStream"),
    hosting(43350, "NForce Entertainment"),
    hosting(50673, "Serverius"),
    hosting(14956, "RouterHosting (Cloudzy)"),
    hosting(62240, "Clouvider"),
    hosting(3223, "Voxility"),
    hosting(202425, "IP Volume (bulletproof hosting)"),
    // Hosting networks whose addresses are mostly rented out as commercial VPN exit servers, and
    // networks operated by VPN providers themselves.
    vpn(9009, "M247 (VPN exit hosting)"),
    vpn(60068, "Datacamp / CDN77 (VPN exit hosting)"),
    vpn(212238, "Datacamp (VPN exit hosting)"),
    vpn(51852, "Private Layer (VPN exit hosting)"),
    vpn(136787, "Tefincom (NordVPN)"),
    vpn(207137, "PacketHub (NordVPN)"),
    vpn(39351, "31173 Services (Mullvad VPN)"),
    vpn(62371, "Proton AG (Proton VPN)"),
    // A network repeatedly named in abuse reports as the home of proxy and anonymising services.
    proxy(44477, "Stark Industries Solutions"),
];

/// High-risk destination prefixes (digits after the `+`, matched as a prefix of the E.164 number)
/// and why, for the `irsf_prefix` rule: ranges that International Revenue Share Fraud and SMS
/// pumping use because someone is paid per message or minute terminated there, and where a real
/// user asking for an OTP is rare.
///
/// Only non-geographic ITU codes are seeded. Country codes often named as IRSF hot spots (small
/// island and African networks, Cuba, the Baltics' premium ranges, …) are not: each has real mobile
/// subscribers, their premium-rate and shared-cost ranges are already caught by the number type
/// rule (`NumberKind::is_irsf_type`), and pumping elsewhere is caught by the prefix velocity rule.
/// Operators add country sub-ranges in the admin when they see them attacked.
pub const IRSF_PREFIX_SEED: &[(&str, &str)] = &[
    (
        "881",
        "Global Mobile Satellite System (Iridium, Globalstar, …): satellite phones, expensive \
         termination, classic IRSF destination",
    ),
    (
        "882",
        "International Networks (shared code): carrier-assigned ranges widely leased to revenue \
         share schemes",
    ),
    (
        "883",
        "International Networks: carrier-assigned non-geographic ranges widely leased to revenue \
         share schemes",
    ),
    (
        "870",
        "Inmarsat SNAC: maritime/aero satellite terminals, very high termination rates",
    ),
    (
        "871",
        "Retired Inmarsat ocean-region code (Atlantic East): no valid subscribers",
    ),
    (
        "872",
        "Retired Inmarsat ocean-region code (Pacific): no valid subscribers",
    ),
    (
        "873",
        "Retired Inmarsat ocean-region code (Indian Ocean): no valid subscribers",
    ),
    (
        "874",
        "Retired Inmarsat ocean-region code (Atlantic West): no valid subscribers",
    ),
    (
        "878",
        "Universal Personal Telecommunications: non-geographic personal numbers, no OTP users",
    ),
    (
        "979",
        "International Premium Rate Service: the caller pays a premium shared with the owner",
    ),
    (
        "808",
        "International Shared Cost Service: revenue shared with the number's owner",
    ),
    (
        "888",
        "Reserved for UN OCHA disaster relief telecommunications: no OTP users",
    ),
    (
        "991",
        "ITU trial of a new international public correspondence service: no OTP users",
    ),
];

/// The seed lists as the engine's lists (no whitelist): what a fresh installation starts with.
pub fn seed_lists() -> actors::fraud::engine::FraudLists {
    use actors::fraud::engine::{AsnEntry, FraudLists, IrsfPrefix};
    FraudLists {
        asn_blocklist: ASN_BLOCKLIST_SEED
            .iter()
            .map(|s| {
                let entry = AsnEntry {
                    org: s.org.to_owned(),
                    category: s.category.to_owned(),
                };
                (s.asn, entry)
            })
            .collect(),
        irsf_prefixes: IRSF_PREFIX_SEED
            .iter()
            .map(|(digits, note)| IrsfPrefix {
                digits: (*digits).to_owned(),
                note: (*note).to_owned(),
            })
            .collect(),
        ..FraudLists::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn asn_seed_has_no_duplicates_and_known_categories() {
        let mut seen = HashSet::new();
        for entry in ASN_BLOCKLIST_SEED {
            assert!(seen.insert(entry.asn), "duplicate ASN {}", entry.asn);
            assert!(entry.asn > 0, "ASN 0 is reserved");
            assert!(!entry.org.trim().is_empty(), "AS{} has no org", entry.asn);
            assert!(
                ASN_CATEGORIES.contains(&entry.category),
                "AS{} has unknown category {:?}",
                entry.asn,
                entry.category
            );
        }
        for category in ASN_CATEGORIES {
            assert!(
                ASN_BLOCKLIST_SEED.iter().any(|e| e.category == *category),
                "no seed entry in category {category}"
            );
        }
    }

    #[test]
    fn asn_seed_leaves_out_networks_real_users_come_from() {
        // Google's main AS, Cloudflare (WARP, Private Relay), Akamai, Fastly.
        for asn in [15169, 13335, 20940, 36183, 54113] {
            assert!(
                ASN_BLOCKLIST_SEED.iter().all(|e| e.asn != asn),
                "AS{asn} carries real users and must not be seeded"
            );
        }
    }

    #[test]
    fn irsf_seed_is_digits_only_without_duplicates_or_overlaps() {
        let mut seen = HashSet::new();
        for (prefix, note) in IRSF_PREFIX_SEED {
            assert!(
                !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()),
                "prefix {prefix:?} must be digits only (no '+')"
            );
            assert!(!prefix.starts_with('0'), "prefix {prefix:?} is not E.164");
            assert!(prefix.len() <= 15, "prefix {prefix:?} is longer than E.164");
            assert!(!note.trim().is_empty(), "prefix {prefix} has no note");
            assert!(seen.insert(*prefix), "duplicate prefix {prefix}");
        }
        for (a, _) in IRSF_PREFIX_SEED {
            for (b, _) in IRSF_PREFIX_SEED {
                assert!(
                    a == b || !b.starts_with(a),
                    "prefix {b} is already covered by {a}"
                );
            }
        }
    }

    #[test]
    fn irsf_seed_never_covers_a_whole_common_country() {
        // A prefix of one or two digits would swallow whole countries (+1, +44, +49, +7, …).
        for (prefix, _) in IRSF_PREFIX_SEED {
            assert!(prefix.len() >= 3, "prefix {prefix} is too broad");
        }
        for phone in [
            "14155550100",
            "447700900123",
            "4915123456789",
            "79123456789",
        ] {
            assert!(
                IRSF_PREFIX_SEED.iter().all(|(p, _)| !phone.starts_with(p)),
                "{phone} would be flagged"
            );
        }
    }
}
