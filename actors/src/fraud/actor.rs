//! `FraudActor`: owns the [`FraudEngine`] and the IP lookup. One per gateway, started by the wiring
//! (with the snapshot stored at the last shutdown, if any) and alive as long as the system. It
//! handles [`Evaluate`] (from the dispatcher, before anything is sent), [`ApplyFeedback`]
//! (verification outcomes), [`ReplaceLists`] (admin edits) and [`TakeSnapshotPart`] (the caller
//! puts the parts together and writes them to the database: this crate reaches storage only
//! through its callers). It emits nothing. Every [`PRUNE_INTERVAL`] it drops expired state so memory
//! follows live traffic only, one shard at a time: at 500k tracked keys a whole prune or snapshot
//! takes 0.2–0.7 s, during which evaluations would wait; a shard is a 32nd of that.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::engine::{
    Feedback, FraudEngine, FraudLists, FraudSettings, FraudSnapshot, SNAPSHOT_PARTS,
};
use super::state::ip_scope;
use super::{Decision, FraudInput, IpInfo, IpLookup};
use crate::clock::now_ms;

/// How often expired windows, trust and breakers are dropped.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Judges one dispatch. The IP databases are consulted only for a public end-user IP.
#[derive(Debug, Message)]
#[rtype(result = "Decision")]
pub struct Evaluate(pub FraudInput);

/// A verification outcome to learn from.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ApplyFeedback(pub Feedback);

/// New whitelist, ASN blocklist and IRSF prefixes (learned state is kept).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReplaceLists(pub FraudLists);

/// Part `n` of [`SNAPSHOT_PARTS`] of the live state; the parts put together with
/// [`FraudSnapshot::absorb`] are the whole. Evaluations run between parts.
#[derive(Debug, Message)]
#[rtype(result = "FraudSnapshot")]
pub struct TakeSnapshotPart(pub usize);

/// The fraud actor.
pub struct FraudActor {
    engine: FraudEngine,
    lookup: Arc<dyn IpLookup>,
    /// The shard the next prune step takes.
    next_prune: usize,
}

impl FraudActor {
    /// An actor over a fresh engine, restored from `restored` when given.
    pub fn new(
        settings: FraudSettings,
        lists: FraudLists,
        lookup: Arc<dyn IpLookup>,
        restored: Option<FraudSnapshot>,
    ) -> FraudActor {
        let mut engine = FraudEngine::new(settings, lists);
        if let Some(snapshot) = restored {
            engine.restore(snapshot);
            engine.prune(now_ms());
        }
        FraudActor {
            engine,
            lookup,
            next_prune: 0,
        }
    }
}

impl Actor for FraudActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let step = PRUNE_INTERVAL / u32::try_from(SNAPSHOT_PARTS).unwrap_or(1);
        ctx.run_interval(step, |act, _| {
            act.engine.prune_shard(act.next_prune, now_ms());
            act.next_prune = (act.next_prune + 1) % SNAPSHOT_PARTS;
        });
    }
}

impl Handler<Evaluate> for FraudActor {
    type Result = MessageResult<Evaluate>;

    fn handle(&mut self, msg: Evaluate, _: &mut Context<Self>) -> Self::Result {
        let input = msg.0;
        // Private and loopback IPs are never scored, so there is nothing to look up; a disabled
        // engine does not look at the IP either.
        let info = match input.ip.map(|ip| ip.to_canonical()) {
            Some(ip) if self.engine.settings().enabled && ip_scope(ip).is_public() => {
                self.lookup.lookup(ip)
            }
            _ => IpInfo::default(),
        };
        MessageResult(self.engine.evaluate(&input, &info))
    }
}

impl Handler<ApplyFeedback> for FraudActor {
    type Result = ();

    fn handle(&mut self, msg: ApplyFeedback, _: &mut Context<Self>) {
        self.engine.feedback(msg.0);
    }
}

impl Handler<ReplaceLists> for FraudActor {
    type Result = ();

    fn handle(&mut self, msg: ReplaceLists, _: &mut Context<Self>) {
        self.engine.replace_lists(msg.0);
    }
}

impl Handler<TakeSnapshotPart> for FraudActor {
    type Result = MessageResult<TakeSnapshotPart>;

    fn handle(&mut self, msg: TakeSnapshotPart, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.engine.snapshot_shard(msg.0, now_ms()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::sync::Mutex;

    use super::*;
    use crate::domain::Channel;
    use crate::fraud::engine::{AsnEntry, FeedbackOutcome};
    use crate::fraud::{NumberKind, Verdict};

    /// Answers from a table and records what it was asked.
    #[derive(Default)]
    struct TableLookup {
        table: HashMap<IpAddr, IpInfo>,
        asked: Mutex<Vec<IpAddr>>,
    }

    impl IpLookup for TableLookup {
        fn lookup(&self, ip: IpAddr) -> IpInfo {
            self.asked.lock().unwrap().push(ip);
            self.table.get(&ip).cloned().unwrap_or_default()
        }
    }

    fn input(phone: &str, ip: &str) -> FraudInput {
        FraudInput {
            phone: phone.to_string(),
            phone_country: Some("GB".into()),
            number_kind: NumberKind::Mobile,
            ip: Some(ip.parse().unwrap()),
            channel: Channel::Sms,
            now_ms: now_ms(),
        }
    }

    fn hosting_lookup() -> Arc<TableLookup> {
        let info = IpInfo {
            asn: Some(64_500),
            asn_org: Some("Example Hosting".into()),
            country: Some("GB".into()),
        };
        Arc::new(TableLookup {
            table: [("203.0.113.9".parse().unwrap(), info)].into(),
            ..TableLookup::default()
        })
    }

    fn blocklist() -> FraudLists {
        FraudLists {
            asn_blocklist: [(
                64_500,
                AsnEntry {
                    org: "Example Hosting".into(),
                    category: "hosting".into(),
                },
            )]
            .into(),
            ..FraudLists::default()
        }
    }

    #[actix::test]
    async fn looks_up_public_ips_only_and_applies_the_lists() {
        let lookup = hosting_lookup();
        let addr =
            FraudActor::new(FraudSettings::default(), blocklist(), lookup.clone(), None).start();
        let d = addr
            .send(Evaluate(input("+447700900001", "203.0.113.9")))
            .await
            .unwrap();
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.inputs.ip_info.asn, Some(64_500));
        assert!(d
            .hits
            .iter()
            .any(|h| h.rule == "asn_blocklist" && h.points == 30));
        let d = addr
            .send(Evaluate(input("+447700900002", "127.0.0.1")))
            .await
            .unwrap();
        assert_eq!((d.verdict, d.score), (Verdict::Allow, 0));
        let d = addr
            .send(Evaluate(input("+447700900003", "::ffff:192.168.1.5")))
            .await
            .unwrap();
        assert_eq!(d.score, 0);
        let asked: Vec<IpAddr> = lookup.asked.lock().unwrap().clone();
        assert_eq!(asked, vec!["203.0.113.9".parse::<IpAddr>().unwrap()]);

        addr.send(ReplaceLists(FraudLists::default()))
            .await
            .unwrap();
        let d = addr
            .send(Evaluate(input("+447700900004", "203.0.113.9")))
            .await
            .unwrap();
        assert!(d.hits.iter().all(|h| h.rule != "asn_blocklist"));
    }

    #[actix::test]
    async fn snapshot_restores_into_a_new_actor() {
        let lookup = hosting_lookup();
        let settings = FraudSettings::default();
        let first = FraudActor::new(settings.clone(), blocklist(), lookup.clone(), None).start();
        for _ in 0..2 {
            let d = first
                .send(Evaluate(input("+447700900009", "198.51.100.4")))
                .await
                .unwrap();
            assert_eq!(d.verdict, Verdict::Allow);
        }
        for _ in 0..4 {
            let fb = Feedback {
                phone: "+447700900010".into(),
                ip: Some("203.0.113.9".parse().unwrap()),
                outcome: FeedbackOutcome::ExpiredUnverified,
                now_ms: now_ms(),
            };
            first.send(ApplyFeedback(fb)).await.unwrap();
        }
        let mut snapshot = FraudSnapshot::default();
        for part in 0..SNAPSHOT_PARTS {
            snapshot.absorb(first.send(TakeSnapshotPart(part)).await.unwrap());
        }
        let json = serde_json::to_string(&snapshot).unwrap();
        let restored: FraudSnapshot = serde_json::from_str(&json).unwrap();

        let second = FraudActor::new(settings, blocklist(), lookup, Some(restored)).start();
        let d = second
            .send(Evaluate(input("+447700900009", "198.51.100.4")))
            .await
            .unwrap();
        assert!(matches!(d.verdict, Verdict::RateLimited { .. }), "{d:?}");
        // Hosting ASN (30) + distrust −0.6 (24): remembered as a bad network.
        let d = second
            .send(Evaluate(input("+447700900011", "203.0.113.9")))
            .await
            .unwrap();
        assert_eq!(d.verdict, Verdict::ShadowBan, "{d:?}");
    }
}
