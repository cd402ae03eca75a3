//! Starts the fraud engine for the gateway: seeds and loads its lists from the database (with the
//! `FRAUD_WHITELIST` entries), restores its last snapshot, opens the MaxMind databases (reloaded
//! when the files change), and saves a snapshot every few seconds and at shutdown, so a restart
//! neither forgets an attacker nor punishes a user twice. The engine runs on its own arbiter
//! (thread).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use anyhow::Context as _;

use actors::fraud::actor::{FraudActor, TakeSnapshotPart};
use actors::fraud::engine::{
    AsnEntry, FraudLists, FraudSettings, FraudSnapshot, IrsfPrefix, SNAPSHOT_PARTS,
};
use actors::ipnet::IpNet;

use crate::config::{Config, FraudMode};
use crate::db::store::{FraudListRows, FraudSeed};
use crate::db::DbStore;
use crate::fraud::{
    spawn_reloader, MaxMindLookup, ASN_BLOCKLIST_SEED, DEFAULT_RELOAD_INTERVAL, IRSF_PREFIX_SEED,
};

/// Bump when the seed lists gain entries existing installations should get.
const SEED_VERSION: u32 = 1;
/// How often the engine's state is saved. The fraud thread gives it in 32 short parts, but the
/// JSON and the write of a large state take a blocking thread hundreds of milliseconds
/// (docs/PERFORMANCE.md), so not more often than this.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(30);

/// The running engine.
#[derive(Clone)]
pub struct Fraud {
    /// The actor the dispatcher asks.
    pub actor: Addr<FraudActor>,
    /// The IP databases (the reloader thread runs as long as they are held).
    pub lookup: Arc<MaxMindLookup>,
    store: DbStore,
}

impl Fraud {
    /// Saves the engine's current state.
    pub async fn save_snapshot(&self) -> anyhow::Result<()> {
        // In parts, so evaluations are never held up by more than a part.
        let mut snapshot = FraudSnapshot::default();
        for part in 0..SNAPSHOT_PARTS {
            snapshot.absorb(self.actor.send(TakeSnapshotPart(part)).await?);
        }
        // Serialising hundreds of thousands of keys takes a while: not on an async thread.
        let json =
            actix_rt::task::spawn_blocking(move || serde_json::to_string(&snapshot)).await??;
        self.store
            .save_fraud_state(json, actors::clock::now_ms())
            .await?;
        Ok(())
    }
}

/// Starts the engine, or `None` when `FRAUD_ENABLED=false` (no scoring at all).
pub async fn start(config: &Config, store: &DbStore) -> anyhow::Result<Option<Fraud>> {
    let fraud = &config.fraud;
    if !fraud.enabled {
        return Ok(None);
    }
    let now = actors::clock::now_ms();
    let seed = FraudSeed {
        version: SEED_VERSION,
        asns: ASN_BLOCKLIST_SEED
            .iter()
            .map(|s| (s.asn, s.org.to_owned(), s.category.to_owned()))
            .collect(),
        irsf_prefixes: IRSF_PREFIX_SEED
            .iter()
            .map(|(p, n)| ((*p).to_owned(), (*n).to_owned()))
            .collect(),
    };
    let whitelist = fraud
        .whitelist_phones
        .iter()
        .map(|p| (p.clone(), "phone".to_owned()))
        .chain(
            fraud
                .whitelist_nets
                .iter()
                .map(|n| (n.to_string(), "ip".to_owned())),
        )
        .collect();
    store
        .prepare_fraud_lists(seed, whitelist, now)
        .await
        .context("seeding the fraud lists")?;
    let lists = lists_from(
        store
            .load_fraud_lists()
            .await
            .context("loading the fraud lists")?,
    );
    let restored = match store
        .load_fraud_state()
        .await
        .context("loading the fraud state")?
    {
        Some(json) => match serde_json::from_str::<FraudSnapshot>(&json) {
            Ok(snapshot) => Some(snapshot),
            Err(err) => {
                tracing::warn!(error = %err, "fraud state snapshot unreadable; starting with empty counters");
                None
            }
        },
        None => None,
    };
    let lookup = Arc::new(MaxMindLookup::open(
        &fraud.asn_db_path,
        &fraud.geoip_db_path,
    ));
    spawn_reloader(Arc::clone(&lookup), DEFAULT_RELOAD_INTERVAL)
        .context("starting the IP database reloader")?;
    // Its own thread: evaluation is microseconds, but pruning and snapshots of a large state take
    // longer and must not hold up the dispatcher and the HTTP handlers' actors.
    let settings = settings(config);
    let ip_lookup = Arc::clone(&lookup) as Arc<dyn actors::fraud::IpLookup>;
    let arbiter = actix::Arbiter::new();
    let actor = FraudActor::start_in_arbiter(&arbiter.handle(), move |_| {
        FraudActor::new(settings, lists, ip_lookup, restored)
    });
    let running = Fraud {
        actor,
        lookup,
        store: store.clone(),
    };
    let saver = running.clone();
    actix_rt::spawn(async move {
        let mut every = actix_rt::time::interval(SNAPSHOT_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(err) = saver.save_snapshot().await {
                tracing::error!(error = %err, "fraud state not saved");
            }
        }
    });
    Ok(Some(running))
}

/// The engine settings from the configuration (rule points and learning keep their defaults).
pub fn settings(config: &Config) -> FraudSettings {
    let fraud = &config.fraud;
    FraudSettings {
        enabled: fraud.enabled,
        monitor: fraud.mode == FraudMode::Monitor,
        rate_limit_minute: fraud.rate_limit_minute,
        rate_limit_hour: fraud.rate_limit_hour,
        subnet_limit_minute: fraud.subnet_limit_minute,
        subnet_limit_hour: fraud.subnet_limit_hour,
        shadow_ban_threshold: fraud.shadow_ban_threshold,
        geo_mismatch_penalty: fraud.geo_mismatch_penalty,
        allowed_countries: fraud.allowed_countries.clone(),
        ..FraudSettings::default()
    }
}

fn lists_from(rows: FraudListRows) -> FraudLists {
    let mut whitelist_phones = HashSet::new();
    let mut whitelist_nets = Vec::new();
    for (entry, kind) in rows.whitelist {
        match kind.as_str() {
            "phone" => {
                whitelist_phones.insert(entry);
            }
            _ => match entry.parse::<IpNet>() {
                Ok(net) => whitelist_nets.push(net),
                Err(_) => {
                    tracing::warn!(%entry, "fraud whitelist entry is not an IP or network; ignored")
                }
            },
        }
    }
    FraudLists {
        whitelist_phones,
        whitelist_nets,
        asn_blocklist: rows
            .asns
            .into_iter()
            .map(|(asn, org, category)| (asn, AsnEntry { org, category }))
            .collect::<HashMap<_, _>>(),
        irsf_prefixes: rows
            .irsf_prefixes
            .into_iter()
            .map(|(digits, note)| IrsfPrefix { digits, note })
            .collect(),
    }
}
