//! The gateway's side of the fraud engine (SPEC §8). The engine itself lives in the actors crate
//! (`actors::fraud`) and knows nothing about files or databases; this module gives it:
//! - [`geo`]: [`MaxMindLookup`], the [`actors::fraud::IpLookup`] over the MaxMind-format ASN and
//!   country databases (`ASN_DB_PATH`, `GEOIP_DB_PATH`), reloaded atomically when an operator
//!   replaces a file ([`spawn_reloader`]);
//! - [`seeds`]: the ASN blocklist and high-risk destination prefixes written into the database on
//!   first start and edited in the admin afterwards.

pub mod geo;
pub mod seeds;
pub mod setup;

pub use geo::{
    spawn_reloader, MaxMindLookup, ReloadOutcome, ReloadReport, DEFAULT_RELOAD_INTERVAL,
};
pub use seeds::{SeedAsn, ASN_BLOCKLIST_SEED, ASN_CATEGORIES, IRSF_PREFIX_SEED};
