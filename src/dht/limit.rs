//! Per-address rate limit of incoming DHT requests (sans-IO: time passed in). Each IPv4
//! address has a token bucket of [`BURST`] requests refilled at [`PER_SECOND`]; a request
//! finding its bucket empty is dropped unanswered. The table holds at most [`MAX_ADDRESSES`]
//! addresses: when full, the addresses whose bucket has refilled (idle ones) are forgotten,
//! and if none is, the whole table is, so that a flood from spoofed addresses costs bounded
//! memory.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Requests one address may send in a burst.
pub const BURST: f64 = 50.0;
/// Sustained requests per second per address.
pub const PER_SECOND: f64 = 20.0;
/// Addresses tracked at most.
pub const MAX_ADDRESSES: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Duration,
}

/// Token buckets per address.
#[derive(Debug, Default)]
pub struct RequestLimiter {
    buckets: HashMap<Ipv4Addr, Bucket>,
    /// Requests dropped so far.
    pub dropped: u64,
}

impl RequestLimiter {
    /// No address seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// No address tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Whether a request from `ip` at `now` is answered (it takes a token).
    pub fn allow(&mut self, ip: Ipv4Addr, now: Duration) -> bool {
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_ADDRESSES {
            self.make_room(now);
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        let elapsed = now.saturating_sub(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * PER_SECOND).min(BURST);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    fn make_room(&mut self, now: Duration) {
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_sub(b.at).as_secs_f64();
            b.tokens + elapsed * PER_SECOND < BURST
        });
        if self.buckets.len() >= MAX_ADDRESSES {
            self.buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn a_burst_passes_then_the_flood_is_cut_to_the_sustained_rate() {
        let mut l = RequestLimiter::new();
        let t = Duration::from_secs(100);
        let passed = (0..1000).filter(|_| l.allow(A, t)).count();
        assert_eq!(passed, BURST as usize);
        assert_eq!(l.dropped, 1000 - BURST as u64);
        // Another address is not affected.
        assert!(l.allow(B, t));
        // One second later, PER_SECOND more.
        let later = t + Duration::from_secs(1);
        let passed = (0..1000).filter(|_| l.allow(A, later)).count();
        assert_eq!(passed, PER_SECOND as usize);
    }

    #[test]
    fn an_idle_address_gets_its_burst_back_but_no_more() {
        let mut l = RequestLimiter::new();
        for _ in 0..100 {
            l.allow(A, Duration::ZERO);
        }
        let t = Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| l.allow(A, t)).count(), BURST as usize);
    }

    #[test]
    fn the_table_stays_bounded_under_a_flood_from_many_addresses() {
        let mut l = RequestLimiter::new();
        let mut answered = 0;
        for i in 0..(4 * MAX_ADDRESSES as u32) {
            let now = Duration::from_millis(u64::from(i));
            if l.allow(Ipv4Addr::from(0x0a00_0000 + i), now) {
                answered += 1;
            }
            assert!(l.len() <= MAX_ADDRESSES);
        }
        // A new address always gets its first request answered.
        assert_eq!(answered, 4 * MAX_ADDRESSES);
        // Idle addresses (their bucket refilled) make room for new ones.
        let mut l = RequestLimiter::new();
        let t = Duration::from_secs(10);
        for _ in 0..BURST as usize {
            assert!(l.allow(A, t));
        }
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            l.allow(Ipv4Addr::from(0x0b00_0000 + i), t + Duration::from_secs(60));
        }
        assert!(l.len() <= MAX_ADDRESSES);
    }
}
