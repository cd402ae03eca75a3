//! xorshift64* (Vigna 2016): a tiny deterministic generator, the same sequence on every machine,
//! for simulation and jitter only — the shadow twin's delays, the sandbox's simulated packet loss,
//! replayed test traffic. Never for anything secret (identifiers and nonces use `ring`).

/// See the module docs.
#[derive(Debug, Clone)]
pub struct XorShift64Star(u64);

impl XorShift64Star {
    /// A generator starting from `seed` (its low bit is set: the state must never be zero).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)` (53 random bits).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_never_stuck_and_in_range() {
        let mut a = XorShift64Star::new(0);
        let mut b = XorShift64Star::new(0);
        let draws: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        assert_eq!(draws, (0..100).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert!(draws.iter().all(|&d| d != 0));
        let units: Vec<f64> = (0..1000).map(|_| a.unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = units.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }
}
