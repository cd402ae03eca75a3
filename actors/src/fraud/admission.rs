//! What the dispatcher needs around a fraud decision: how it is stored (on the request row, or
//! as a refusal), what a ban saved, and who a request was for when its feedback or expiry comes
//! back (the reputation rules learn from those).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use serde_json::json;

use crate::domain::Channel;
use crate::ids::RequestId;
use crate::store::{FraudRecord, FraudRefusal};

use super::{Decision, Verdict};

/// What one SMS costs until billing learns real rates (DIDWW's typical US price, micro-dollars).
pub const DEFAULT_SMS_COST_MICROS: i64 = 8_000;
/// What one voice OTP costs until billing learns real rates: one billed minute, micro-dollars.
pub const DEFAULT_VOICE_COST_MICROS: i64 = 15_000;

/// Stable name of a verdict, as stored.
pub fn verdict_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "allow",
        Verdict::RateLimited { .. } => "rate_limited",
        Verdict::CountryNotAllowed { .. } => "country_not_allowed",
        Verdict::ShadowBan => "shadow_ban",
    }
}

/// The money a banned request did not spend: its first channel at the default rate.
pub fn savings_micros(first: Channel) -> i64 {
    match first {
        Channel::Sms => DEFAULT_SMS_COST_MICROS,
        Channel::Voice => DEFAULT_VOICE_COST_MICROS,
    }
}

fn details(decision: &Decision) -> String {
    json!({
        "hits": decision.hits,
        "inputs": decision.inputs,
        "whitelisted": decision.whitelisted,
        "verdict": decision.verdict,
    })
    .to_string()
}

/// The decision as stored with an accepted request.
pub fn record(decision: &Decision, first: Channel) -> FraudRecord {
    let shadow_banned = decision.enforced && decision.verdict == Verdict::ShadowBan;
    FraudRecord {
        verdict: verdict_name(&decision.verdict).to_owned(),
        score: decision.score,
        enforced: decision.enforced,
        details: details(decision),
        savings_micros: shadow_banned.then(|| savings_micros(first)),
        shadow_banned,
    }
}

/// The decision of a refused dispatch.
pub fn refusal(decision: &Decision, phone: &str, ip: Option<IpAddr>, at: i64) -> FraudRefusal {
    FraudRefusal {
        phone: phone.to_owned(),
        ip: ip.map(|ip| ip.to_string()),
        verdict: verdict_name(&decision.verdict).to_owned(),
        score: decision.score,
        enforced: decision.enforced,
        details: details(decision),
        at,
    }
}

/// Who a request was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `+E164`.
    pub phone: String,
    /// The end user's IP, when the client gave one.
    pub ip: Option<IpAddr>,
}

/// Origins of recent requests, oldest evicted first beyond a bound (memory stays flat under any
/// load; feedback for an evicted request simply teaches the engine nothing).
#[derive(Debug)]
pub struct Origins {
    map: HashMap<RequestId, Origin>,
    order: VecDeque<RequestId>,
    capacity: usize,
}

impl Origins {
    /// At most `capacity` origins.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers `id`'s origin.
    pub fn insert(&mut self, id: RequestId, origin: Origin) {
        if self.map.insert(id, origin).is_none() {
            self.order.push_back(id);
        }
        while self.map.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.map.remove(&oldest);
        }
    }

    /// The origin of `id`, if still known.
    pub fn get(&self, id: &RequestId) -> Option<&Origin> {
        self.map.get(id)
    }

    /// Forgets `id` (its queue slot is dropped lazily).
    pub fn remove(&mut self, id: &RequestId) -> Option<Origin> {
        let removed = self.map.remove(id);
        if self.order.len() > self.map.len().saturating_mul(2).max(1024) {
            let map = &self.map;
            self.order.retain(|id| map.contains_key(id));
        }
        removed
    }

    /// Known origins.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when none is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(n: u8) -> Origin {
        Origin {
            phone: format!("+1415555{n:04}"),
            ip: None,
        }
    }

    #[test]
    fn origins_stay_bounded_and_evict_the_oldest() {
        let mut origins = Origins::new(3);
        let ids: Vec<RequestId> = (0..5).map(|_| RequestId::new_random()).collect();
        for (i, id) in ids.iter().enumerate() {
            origins.insert(*id, origin(i as u8));
        }
        assert_eq!(origins.len(), 3);
        assert!(origins.get(&ids[0]).is_none());
        assert!(origins.get(&ids[1]).is_none());
        assert_eq!(origins.get(&ids[4]), Some(&origin(4)));
        assert_eq!(origins.remove(&ids[3]), Some(origin(3)));
        assert_eq!(origins.len(), 2);
    }

    #[test]
    fn only_an_enforced_ban_is_a_shadow_ban_with_savings() {
        let mut decision = Decision {
            verdict: Verdict::ShadowBan,
            enforced: true,
            score: 80,
            hits: Vec::new(),
            whitelisted: false,
            inputs: Default::default(),
        };
        let stored = record(&decision, Channel::Voice);
        assert!(stored.shadow_banned);
        assert_eq!(stored.savings_micros, Some(DEFAULT_VOICE_COST_MICROS));
        assert_eq!(stored.verdict, "shadow_ban");
        decision.enforced = false;
        let monitored = record(&decision, Channel::Sms);
        assert!(!monitored.shadow_banned, "monitor mode delivers");
        assert_eq!(monitored.savings_micros, None);
        assert_eq!(monitored.verdict, "shadow_ban");
    }
}
