//! A token bucket for upload limits, sans-IO: the caller passes `now` (a `Duration` since an
//! arbitrary origin) and sleeps itself when told to wait.

use std::time::Duration;

/// Bytes may be spent at `rate` per second on average, in bursts of at most `burst` bytes.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: u64,
    /// Nanoseconds of refill carried over (below one token).
    carry_ns: u128,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket refilling at `rate` bytes per second (at least 1), holding at most `burst`
    /// bytes (at least 1).
    pub fn new(rate: u64, burst: u64, now: Duration) -> Self {
        let burst = burst.max(1);
        TokenBucket {
            rate: rate.max(1),
            burst,
            tokens: burst,
            carry_ns: 0,
            last: now,
        }
    }

    /// The refill rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Changes the refill rate from `now` on (at least 1 byte per second); the tokens held
    /// stay.
    pub fn set_rate(&mut self, rate: u64, now: Duration) {
        self.refill(now);
        self.rate = rate.max(1);
        self.carry_ns = 0;
    }

    fn refill(&mut self, now: Duration) {
        if now <= self.last {
            return;
        }
        let ns = (now - self.last).as_nanos() * u128::from(self.rate) + self.carry_ns;
        self.last = now;
        let add = ns / 1_000_000_000;
        self.carry_ns = ns % 1_000_000_000;
        let tokens = u128::from(self.tokens) + add;
        if tokens >= u128::from(self.burst) {
            self.tokens = self.burst;
            self.carry_ns = 0;
        } else {
            self.tokens = tokens as u64;
        }
    }

    /// Bytes that may be sent at `now`.
    pub fn available(&mut self, now: Duration) -> u64 {
        self.refill(now);
        self.tokens
    }

    /// Takes `bytes` if that many are available at `now`; returns whether it did.
    pub fn try_take(&mut self, bytes: u64, now: Duration) -> bool {
        self.refill(now);
        if self.tokens >= bytes {
            self.tokens -= bytes;
            true
        } else {
            false
        }
    }

    /// How long from `now` until `bytes` (capped at the burst) are available.
    pub fn wait_for(&mut self, bytes: u64, now: Duration) -> Duration {
        self.refill(now);
        let bytes = bytes.min(self.burst);
        if self.tokens >= bytes {
            return Duration::ZERO;
        }
        let missing = u128::from(bytes - self.tokens) * 1_000_000_000;
        let ns = missing
            .saturating_sub(self.carry_ns)
            .div_ceil(u128::from(self.rate));
        Duration::from_nanos(ns.min(u128::from(u64::MAX)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_full_and_refills_at_the_rate() {
        let mut b = TokenBucket::new(1000, 500, ms(0));
        assert!(b.try_take(500, ms(0)));
        assert!(!b.try_take(1, ms(0)));
        assert_eq!(b.available(ms(100)), 100);
        assert!(b.try_take(100, ms(100)));
        assert_eq!(b.available(ms(100)), 0);
    }

    #[test]
    fn a_new_rate_applies_from_its_change_on() {
        let mut b = TokenBucket::new(1000, 500, ms(0));
        assert!(b.try_take(500, ms(0)));
        // 100 ms at 1000 B/s, then 100 ms at 3000 B/s.
        b.set_rate(3000, ms(100));
        assert_eq!(b.rate(), 3000);
        assert_eq!(b.available(ms(200)), 100 + 300);
        b.set_rate(0, ms(200));
        assert_eq!(b.rate(), 1, "at least 1 byte per second");
    }

    #[test]
    fn never_holds_more_than_the_burst() {
        let mut b = TokenBucket::new(1000, 500, ms(0));
        assert_eq!(b.available(Duration::from_secs(3600)), 500);
    }

    #[test]
    fn long_run_average_is_the_rate() {
        // Take 16 KiB blocks as fast as allowed for 10 simulated seconds at 1 MB/s.
        let mut b = TokenBucket::new(1_000_000, 64 * 1024, ms(0));
        let mut now = ms(0);
        let mut sent = 0u64;
        while now < Duration::from_secs(10) {
            if b.try_take(16384, now) {
                sent += 16384;
            } else {
                now += b.wait_for(16384, now);
            }
        }
        // 10 s at the rate plus the initial burst.
        let expected = 10_000_000 + 64 * 1024;
        assert!(sent.abs_diff(expected) <= 16384, "{sent} vs {expected}");
    }

    #[test]
    fn wait_for_is_exact_enough() {
        let mut b = TokenBucket::new(1000, 1000, ms(0));
        assert!(b.try_take(1000, ms(0)));
        assert_eq!(b.wait_for(250, ms(0)), ms(250));
        assert_eq!(b.wait_for(250, ms(100)), ms(150));
        assert_eq!(b.wait_for(100, ms(500)), Duration::ZERO);
        // More than the burst: waits for a full bucket only.
        let mut b = TokenBucket::new(1000, 1000, ms(0));
        assert!(b.try_take(1000, ms(0)));
        assert_eq!(b.wait_for(5000, ms(0)), ms(1000));
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let mut b = TokenBucket::new(1000, 1000, ms(500));
        assert!(b.try_take(1000, ms(500)));
        assert_eq!(b.available(ms(100)), 0);
        assert_eq!(b.available(ms(600)), 100);
    }
}
