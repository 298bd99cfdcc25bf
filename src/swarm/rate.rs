//! A rolling transfer-rate meter: bytes per second over a sliding window of one-second buckets.
//!
//! Sans-IO: every call takes `now`, a [`Duration`] since an arbitrary origin shared by the
//! caller (the engine's monotonic clock or the simulator's virtual clock).

use std::time::Duration;

/// Window of the rate the choker ranks peers by (the original BitTorrent design: 20 s).
pub const RATE_WINDOW: Duration = Duration::from_secs(20);

/// Number of one-second buckets in the window.
const BUCKETS: usize = RATE_WINDOW.as_secs() as usize;

/// Bytes per second over the last [`RATE_WINDOW`], counted in one-second buckets.
///
/// The meter is about 220 bytes, `record` is O(1) amortised and `rate` is O(1) while the meter
/// is current (it keeps the window's sum; a meter idle for `n` seconds costs `min(n, 20)`),
/// so a simulator can keep two per peer for thousands of peers. Time going backwards is
/// tolerated: such bytes are counted in the newest bucket.
#[derive(Clone, Debug)]
pub struct RateMeter {
    /// The sum of `buckets`, exactly (no saturation, so `rate` gives what summing the buckets
    /// with saturation would).
    window: u128,
    /// The second (since the origin) of the newest bucket.
    head: u64,
    /// When the meter started measuring; the rate of a young meter is averaged over its age.
    start: Duration,
    /// Bytes recorded since the start.
    total: u64,
    /// Bytes per second-bucket; bucket `s % BUCKETS` holds second `s` when `s` is in the window.
    buckets: [u64; BUCKETS],
}

impl RateMeter {
    /// A meter that starts measuring at `now`.
    pub fn new(now: Duration) -> Self {
        RateMeter {
            buckets: [0; BUCKETS],
            head: now.as_secs(),
            start: now,
            total: 0,
            window: 0,
        }
    }

    /// Moves the head forward to the second of `now`, clearing buckets that left the window.
    fn advance(&mut self, now: Duration) {
        let sec = now.as_secs();
        if sec <= self.head {
            return;
        }
        let steps = (sec - self.head).min(BUCKETS as u64);
        for i in 1..=steps {
            let b = &mut self.buckets[((self.head + i) % BUCKETS as u64) as usize];
            self.window -= u128::from(*b);
            *b = 0;
        }
        self.head = sec;
    }

    /// Counts `bytes` transferred at `now`.
    pub fn record(&mut self, bytes: u64, now: Duration) {
        self.advance(now);
        let idx = (self.head % BUCKETS as u64) as usize;
        let old = self.buckets[idx];
        self.buckets[idx] = old.saturating_add(bytes);
        self.window += u128::from(self.buckets[idx] - old);
        self.total = self.total.saturating_add(bytes);
    }

    /// Bytes recorded since the meter was created.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes per second over the window ending at `now`.
    ///
    /// The window is the current (partial) second plus the 19 before it, so its span is
    /// between 19 and 20 s; a meter younger than that is averaged over its own age, but never
    /// over less than one second (so a single early burst does not read as a huge rate).
    pub fn rate(&self, now: Duration) -> u64 {
        let (now, sec, oldest) = self.window_at(now);
        // Since `sec >= head`, every second in [oldest, head] is still held by its bucket; the
        // buckets hold seconds head - 19 ..= head (those before the start hold 0), so the sum
        // over [oldest, head] is the window less its first `sec - head` seconds.
        let stale = sec - self.head;
        let sum = if stale >= BUCKETS as u64 {
            0
        } else {
            let gone: u128 = (0..stale)
                .map(|i| u128::from(self.buckets[((self.head + 1 + i) % BUCKETS as u64) as usize]))
                .sum();
            u64::try_from(self.window - gone).unwrap_or(u64::MAX)
        };
        self.per_second(sum, now, oldest)
    }

    /// The window ending at `now`: `now` (no earlier than the start), its second (no earlier
    /// than the newest bucket's) and the window's oldest second.
    fn window_at(&self, now: Duration) -> (Duration, u64, u64) {
        let now = now.max(self.start);
        let sec = now.as_secs().max(self.head);
        (now, sec, sec.saturating_sub(BUCKETS as u64 - 1))
    }

    /// `sum` bytes over the window from second `oldest` (or the start) to `now`, per second,
    /// over at least one second.
    fn per_second(&self, sum: u64, now: Duration, oldest: u64) -> u64 {
        let window_start = Duration::from_secs(oldest).max(self.start);
        let span = now
            .saturating_sub(window_start)
            .max(Duration::from_secs(1))
            .as_nanos();
        // In u64 when it cannot overflow (any rate below 18 GB per window), as u128 division
        // is a library call.
        match (sum.checked_mul(1_000_000_000), u64::try_from(span)) {
            (Some(scaled), Ok(span)) => scaled / span,
            _ => (u128::from(sum) * 1_000_000_000 / span).min(u128::from(u64::MAX)) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn steady_rate_is_measured() {
        let mut m = RateMeter::new(Duration::ZERO);
        // 1000 bytes every 100 ms for 60 s: 10 kB/s.
        for i in 0..600 {
            m.record(1000, Duration::from_millis(i * 100));
        }
        let r = m.rate(secs(60.0));
        assert!((9_500..=10_500).contains(&r), "rate {r}");
        assert_eq!(m.total(), 600_000);
    }

    #[test]
    fn young_meter_averages_over_its_age() {
        let mut m = RateMeter::new(secs(100.0));
        m.record(5_000, secs(100.5));
        m.record(5_000, secs(104.0));
        // 10 kB over 5 s.
        assert_eq!(m.rate(secs(105.0)), 2_000);
        // Less than one second old: divided by one second, not by 0.2 s.
        let mut m = RateMeter::new(secs(10.0));
        m.record(1_000, secs(10.1));
        assert_eq!(m.rate(secs(10.2)), 1_000);
    }

    #[test]
    fn rates_past_the_u64_shortcut_are_exact() {
        // 40 GB in one second: too many for the u64 path, computed in u128.
        let mut m = RateMeter::new(Duration::ZERO);
        m.record(40_000_000_000, secs(0.5));
        assert_eq!(m.rate(secs(2.0)), 20_000_000_000);
        let mut m = RateMeter::new(Duration::ZERO);
        m.record(u64::MAX, secs(0.5));
        assert_eq!(m.rate(secs(1.0)), u64::MAX);
    }

    #[test]
    fn old_bytes_leave_the_window() {
        let mut m = RateMeter::new(Duration::ZERO);
        m.record(20_000, secs(0.5));
        assert_eq!(m.rate(secs(19.5)), 20_000 * 1_000_000_000 / 19_500_000_000);
        // At 20.0 s second 0 is out of the window (seconds 1..=20 remain).
        assert_eq!(m.rate(secs(20.0)), 0);
        assert_eq!(m.rate(secs(1000.0)), 0);
        // Recording after a long idle gap clears every stale bucket.
        m.record(40_000, secs(1000.5));
        // The window is seconds 982..=1001, started 19 s ago.
        assert_eq!(m.rate(secs(1001.0)), 40_000 / 19);
    }

    #[test]
    fn rate_drops_when_transfer_stops() {
        let mut m = RateMeter::new(Duration::ZERO);
        for s in 0..40 {
            m.record(10_000, secs(f64::from(s)));
        }
        let busy = m.rate(secs(40.0));
        let idle = m.rate(secs(50.0));
        assert!(busy > 9_000, "{busy}");
        assert!(idle < busy / 2 + 100 && idle > 0, "{idle} vs {busy}");
        assert_eq!(m.rate(secs(60.0)), 0);
    }

    /// The rate as the window's buckets summed one by one (the definition).
    fn brute_rate(m: &RateMeter, now: Duration) -> u64 {
        let (now, _, oldest) = m.window_at(now);
        let mut sum: u64 = 0;
        for s in oldest..=m.head {
            sum = sum.saturating_add(m.buckets[(s % BUCKETS as u64) as usize]);
        }
        m.per_second(sum, now, oldest)
    }

    #[test]
    fn kept_sum_matches_summing_the_buckets() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut m = RateMeter::new(secs(7.3));
        let mut t = 7_300u64;
        for _ in 0..20_000 {
            t += match rng.gen_range(0..10) {
                0 => rng.gen_range(0..40_000),
                1 => 0,
                _ => rng.gen_range(0..700),
            };
            let now = Duration::from_millis(t);
            if rng.gen_bool(0.5) {
                let bytes = if rng.gen_range(0..1000) == 0 {
                    u64::MAX / 3
                } else {
                    rng.gen_range(0..100_000)
                };
                m.record(bytes, now);
            }
            let ask = now + Duration::from_millis(rng.gen_range(0..30_000));
            assert_eq!(m.rate(ask), brute_rate(&m, ask));
            assert_eq!(m.rate(now), brute_rate(&m, now));
        }
    }

    #[test]
    fn time_going_backwards_is_tolerated() {
        let mut m = RateMeter::new(secs(30.0));
        m.record(1_000, secs(40.0));
        m.record(1_000, secs(35.0));
        m.record(1_000, secs(5.0));
        assert_eq!(m.total(), 3_000);
        assert_eq!(m.rate(secs(40.0)), 3_000 / 10);
        // Asking about the past gives the newest window, never a panic.
        let _ = m.rate(secs(1.0));
    }
}
