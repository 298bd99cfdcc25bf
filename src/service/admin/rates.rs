//! Upload rates from cumulative upload counters, for a backend's
//! [`TorrentStatus::upload_rate`](super::TorrentStatus::upload_rate) (sans-IO: the time is
//! passed in). Each reading of a torrent's counter is kept for a short window; the rate is the
//! growth since the oldest reading in it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::metainfo::InfoHash;

/// Readings kept per torrent, at most (older ones are dropped even inside the window).
const MAX_READINGS: usize = 64;

/// Recent counter readings per torrent.
#[derive(Debug)]
pub struct UploadRates {
    window: Duration,
    readings: HashMap<InfoHash, VecDeque<(Instant, u64)>>,
}

impl UploadRates {
    /// Rates averaged over about `window` (a few seconds suits a page polled every second).
    pub fn new(window: Duration) -> Self {
        UploadRates {
            window,
            readings: HashMap::new(),
        }
    }

    /// Records that `info_hash` had uploaded `uploaded` bytes at `now` and returns its rate in
    /// bytes per second: 0 at the first reading, or when the counter went backwards (the
    /// torrent was removed and added again).
    pub fn update(&mut self, now: Instant, info_hash: InfoHash, uploaded: u64) -> f64 {
        let readings = self.readings.entry(info_hash).or_default();
        if readings.back().is_some_and(|&(_, last)| uploaded < last) {
            readings.clear();
        }
        readings.push_back((now, uploaded));
        // Keep one reading at or before the window's start, so a rate always spans the window
        // once the history is long enough.
        while readings.len() > MAX_READINGS
            || (readings.len() > 2 && now.duration_since(readings[1].0) >= self.window)
        {
            readings.pop_front();
        }
        let (since, base) = readings[0];
        let secs = now.duration_since(since).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        (uploaded - base) as f64 / secs
    }

    /// Forgets every torrent not in `keep` (call with the current list after removals).
    pub fn retain(&mut self, keep: impl Fn(&InfoHash) -> bool) {
        self.readings.retain(|h, _| keep(h));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_growth_over_the_window() {
        let t0 = Instant::now();
        let h = InfoHash([1; 20]);
        let mut r = UploadRates::new(Duration::from_secs(5));
        assert_eq!(r.update(t0, h, 1000), 0.0);
        assert_eq!(r.update(t0, h, 1000), 0.0, "no time passed");
        let s = |n| t0 + Duration::from_secs(n);
        assert_eq!(r.update(s(1), h, 2000), 1000.0);
        assert_eq!(r.update(s(2), h, 5000), 2000.0);
        for i in 3..=10 {
            r.update(s(i), h, 5000 + (i - 2) * 100);
        }
        // At 11 s the rate spans 6..11 s: 100 bytes a second.
        assert_eq!(r.update(s(11), h, 5900), 100.0);
    }

    #[test]
    fn a_counter_going_backwards_starts_again() {
        let t0 = Instant::now();
        let h = InfoHash([2; 20]);
        let mut r = UploadRates::new(Duration::from_secs(5));
        r.update(t0, h, 10_000);
        assert_eq!(r.update(t0 + Duration::from_secs(1), h, 5), 0.0);
        assert_eq!(r.update(t0 + Duration::from_secs(2), h, 105), 100.0);
    }

    #[test]
    fn sparse_readings_average_since_the_last_one() {
        let t0 = Instant::now();
        let h = InfoHash([3; 20]);
        let mut r = UploadRates::new(Duration::from_secs(5));
        r.update(t0, h, 0);
        assert_eq!(r.update(t0 + Duration::from_secs(60), h, 6000), 100.0);
    }

    #[test]
    fn torrents_are_kept_apart_and_forgotten() {
        let t0 = Instant::now();
        let (a, b) = (InfoHash([4; 20]), InfoHash([5; 20]));
        let mut r = UploadRates::new(Duration::from_secs(5));
        r.update(t0, a, 0);
        r.update(t0, b, 0);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(r.update(t1, a, 200), 100.0);
        assert_eq!(r.update(t1, b, 2000), 1000.0);
        r.retain(|h| *h == a);
        assert_eq!(r.update(t1 + Duration::from_secs(1), b, 9999), 0.0);
        for i in 0..200 {
            r.update(t1 + Duration::from_millis(i), a, 300);
        }
        assert!(r.readings[&a].len() <= MAX_READINGS);
    }
}
