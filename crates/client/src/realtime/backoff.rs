//! Retry delays for reconnects and rejoins: exponential, capped, and jittered so that thousands
//! of clients dropped by one server restart do not all come back in the same instant.

use std::time::Duration;

use rand::Rng;

/// `initial · 2^attempt`, capped at `max`, then scaled by a random factor in
/// `[1 - jitter, 1 + jitter]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// The relative spread, 0.25 for ±25 %; clamped to `0..=1`.
    pub jitter: f64,
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if jitter == 0.0 {
            return base;
        }
        base.mul_f64(rand::thread_rng().gen_range(1.0 - jitter..=1.0 + jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_within_the_jitter() {
        let backoff = Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            jitter: 0.25,
        };
        for (attempt, base_ms) in [
            (0, 200.0),
            (1, 400.0),
            (3, 1600.0),
            (6, 10_000.0),
            (40, 10_000.0),
        ] {
            for _ in 0..50 {
                let ms = backoff.delay(attempt).as_secs_f64() * 1000.0;
                assert!(
                    (base_ms * 0.75 - 1e-6..=base_ms * 1.25 + 1e-6).contains(&ms),
                    "attempt {attempt}: {ms} ms"
                );
            }
        }
    }

    #[test]
    fn without_jitter_the_delay_is_exact() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: 0.0,
        };
        assert_eq!(backoff.delay(0), Duration::from_secs(1));
        assert_eq!(backoff.delay(2), Duration::from_secs(4));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(10));
    }
}
