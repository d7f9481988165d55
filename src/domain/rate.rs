//! Per-agent send rate: a token bucket. Time is passed in, so the rule is tested
//! with an injected clock; the caller owns one bucket per agent.

use super::time::Timestamp;

/// `rate` tokens per second up to `burst`; a send takes one.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Timestamp>,
}

impl TokenBucket {
    /// A full bucket: an agent may send `burst` at once after a quiet spell.
    pub(crate) fn new(rate_per_second: u64, burst: u64) -> Self {
        TokenBucket {
            rate: rate_per_second as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: None,
        }
    }

    fn refill(&mut self, now: Timestamp) {
        if let Some(last) = self.last {
            // A clock going backwards refills nothing rather than draining.
            let secs = (now - last).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6;
            self.tokens = (self.tokens + secs * self.rate).min(self.burst);
        }
        self.last = Some(match self.last {
            Some(l) if l > now => l,
            _ => now,
        });
    }

    /// New rate and burst (a reload): the tokens saved so far are kept, up to the
    /// new burst, so a reload neither grants a burst nor takes one away.
    pub(crate) fn reconfigure(&mut self, rate_per_second: u64, burst: u64) {
        self.rate = rate_per_second as f64;
        self.burst = burst as f64;
        self.tokens = self.tokens.min(self.burst);
    }

    /// Take one token at `now`; when none is left, the seconds until one will be
    /// (nothing is taken then).
    pub(crate) fn take(&mut self, now: Timestamp) -> Result<(), f64> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err((1.0 - self.tokens) / self.rate)
    }
}

/// Milliseconds to wait as shown to a client: rounded up, so that retrying after
/// exactly that long finds a token.
pub(crate) fn retry_after_ms(secs: f64) -> u64 {
    (secs * 1000.0).ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconfiguring_keeps_saved_tokens_up_to_the_new_burst() {
        let t0 = chrono::Utc::now();
        let mut b = TokenBucket::new(1, 10);
        b.reconfigure(1, 2);
        assert!(b.take(t0).is_ok() && b.take(t0).is_ok());
        assert!(b.take(t0).is_err(), "burst lowered to 2");
        b.reconfigure(100, 2);
        assert!(
            b.take(t0 + chrono::Duration::milliseconds(20)).is_ok(),
            "faster refill"
        );
    }
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn burst_then_rate() {
        let t0 = Utc.timestamp_opt(1_000_000, 0).unwrap();
        let mut b = TokenBucket::new(2, 3);
        for _ in 0..3 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert!((wait - 0.5).abs() < 1e-9, "{wait}");
        // Half a second later exactly one token is back.
        let t1 = t0 + Duration::milliseconds(500);
        assert!(b.take(t1).is_ok());
        assert!(b.take(t1).is_err());
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::seconds(3600);
        for _ in 0..3 {
            assert!(b.take(t2).is_ok());
        }
        assert!(b.take(t2).is_err());
    }

    #[test]
    fn a_refusal_takes_nothing_and_time_going_back_refills_nothing() {
        let t0 = Utc.timestamp_opt(1_000_000, 0).unwrap();
        let mut b = TokenBucket::new(1, 1);
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0 - Duration::seconds(10)).is_err());
        assert!(b.take(t0 + Duration::milliseconds(500)).is_err());
        assert!(b.take(t0 + Duration::seconds(1)).is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_ms(0.0201), 21);
        assert_eq!(retry_after_ms(2.0), 2000);
    }
}
