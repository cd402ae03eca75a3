//! Fraud tables: refused dispatches' decisions, the lists the engine reads (ASN blocklist, IRSF
//! prefixes, whitelist), its state snapshot, and the `meta` facts (which seed version the lists
//! got).

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use actors::store::FraudRefusal;

use crate::db::schema::{
    asn_blocklist, fraud_refusals, fraud_state, fraud_whitelist, irsf_prefixes, meta,
};

pub fn insert_refusal(conn: &mut SqliteConnection, r: &FraudRefusal) -> QueryResult<usize> {
    diesel::insert_into(fraud_refusals::table)
        .values((
            fraud_refusals::phone.eq(&r.phone),
            fraud_refusals::ip.eq(r.ip.as_deref()),
            fraud_refusals::verdict.eq(&r.verdict),
            fraud_refusals::score.eq(i32::try_from(r.score).unwrap_or(i32::MAX)),
            fraud_refusals::enforced.eq(r.enforced),
            fraud_refusals::details.eq(&r.details),
            fraud_refusals::created_at.eq(r.at),
        ))
        .execute(conn)
}

/// An ASN blocklist row.
#[derive(Debug, Clone, Queryable)]
pub struct AsnRow {
    pub asn: i64,
    pub org: String,
    pub category: String,
}

/// An IRSF prefix row.
#[derive(Debug, Clone, Queryable)]
pub struct PrefixRow {
    pub prefix: String,
    pub note: String,
}

/// A whitelist row (`kind` is `phone` or `ip`).
#[derive(Debug, Clone, Queryable)]
pub struct WhitelistRow {
    pub entry: String,
    pub kind: String,
}

pub fn asn_blocklist(conn: &mut SqliteConnection) -> QueryResult<Vec<AsnRow>> {
    asn_blocklist::table
        .select((
            asn_blocklist::asn,
            asn_blocklist::org,
            asn_blocklist::category,
        ))
        .load(conn)
}

pub fn irsf_prefixes(conn: &mut SqliteConnection) -> QueryResult<Vec<PrefixRow>> {
    irsf_prefixes::table
        .select((irsf_prefixes::prefix, irsf_prefixes::note))
        .load(conn)
}

pub fn whitelist(conn: &mut SqliteConnection) -> QueryResult<Vec<WhitelistRow>> {
    fraud_whitelist::table
        .select((fraud_whitelist::entry, fraud_whitelist::kind))
        .load(conn)
}

/// Adds a list entry unless it exists (seeding and configuration never overwrite an operator's
/// edits).
pub fn add_asn(
    conn: &mut SqliteConnection,
    asn: u32,
    org: &str,
    category: &str,
    source: &str,
    at: i64,
) -> QueryResult<usize> {
    diesel::insert_or_ignore_into(asn_blocklist::table)
        .values((
            asn_blocklist::asn.eq(i64::from(asn)),
            asn_blocklist::org.eq(org),
            asn_blocklist::category.eq(category),
            asn_blocklist::source.eq(source),
            asn_blocklist::created_at.eq(at),
        ))
        .execute(conn)
}

pub fn add_prefix(
    conn: &mut SqliteConnection,
    prefix: &str,
    note: &str,
    source: &str,
    at: i64,
) -> QueryResult<usize> {
    diesel::insert_or_ignore_into(irsf_prefixes::table)
        .values((
            irsf_prefixes::prefix.eq(prefix),
            irsf_prefixes::note.eq(note),
            irsf_prefixes::source.eq(source),
            irsf_prefixes::created_at.eq(at),
        ))
        .execute(conn)
}

pub fn add_whitelist(
    conn: &mut SqliteConnection,
    entry: &str,
    kind: &str,
    note: &str,
    at: i64,
) -> QueryResult<usize> {
    diesel::insert_or_ignore_into(fraud_whitelist::table)
        .values((
            fraud_whitelist::entry.eq(entry),
            fraud_whitelist::kind.eq(kind),
            fraud_whitelist::note.eq(note),
            fraud_whitelist::created_at.eq(at),
        ))
        .execute(conn)
}

pub fn meta_get(conn: &mut SqliteConnection, key: &str) -> QueryResult<Option<String>> {
    meta::table
        .find(key)
        .select(meta::value)
        .first(conn)
        .optional()
}

pub fn meta_set(conn: &mut SqliteConnection, key: &str, value: &str) -> QueryResult<usize> {
    diesel::replace_into(meta::table)
        .values((meta::key.eq(key), meta::value.eq(value)))
        .execute(conn)
}

pub fn load_state(conn: &mut SqliteConnection) -> QueryResult<Option<String>> {
    fraud_state::table
        .find(1)
        .select(fraud_state::snapshot)
        .first(conn)
        .optional()
}

pub fn save_state(conn: &mut SqliteConnection, snapshot: &str, at: i64) -> QueryResult<usize> {
    diesel::replace_into(fraud_state::table)
        .values((
            fraud_state::id.eq(1),
            fraud_state::snapshot.eq(snapshot),
            fraud_state::saved_at.eq(at),
        ))
        .execute(conn)
}
