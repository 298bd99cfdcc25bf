//! When to announce, to which tracker, with which event: the sans-IO half of the tracker
//! client (BEP 3 events and intervals, BEP 12 tiers, backoff on failure, early announces).

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::tracker::Event;

/// Interval used before a tracker said otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1800);
/// Shortest gap between announces when a tracker gives no `min interval`.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// First retry delay after every tracker failed; doubles per failure.
pub const RETRY_BASE: Duration = Duration::from_secs(15);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(1800);

/// One announce to make now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The tracker URL.
    pub url: String,
    /// The event to send.
    pub event: Event,
}

/// The announce schedule of one torrent over its trackers' tiers.
#[derive(Clone, Debug)]
pub struct Schedule {
    tiers: Vec<Vec<String>>,
    /// Position being tried: (tier, index in tier).
    cursor: (usize, usize),
    /// The event still to deliver (started, then completed; stopped at the end).
    pending: Event,
    started_sent: bool,
    next_at: Duration,
    last_at: Option<Duration>,
    interval: Duration,
    min_interval: Duration,
    failures: u32,
    in_flight: bool,
}

impl Schedule {
    /// A schedule over `tiers` (BEP 12: each tier shuffled once), starting with `started` now.
    pub fn new<R: Rng + ?Sized>(mut tiers: Vec<Vec<String>>, rng: &mut R) -> Schedule {
        tiers.retain(|t| !t.is_empty());
        for t in &mut tiers {
            t.shuffle(rng);
        }
        Schedule {
            tiers,
            cursor: (0, 0),
            pending: Event::Started,
            started_sent: false,
            next_at: Duration::ZERO,
            last_at: None,
            interval: DEFAULT_INTERVAL,
            min_interval: DEFAULT_MIN_INTERVAL,
            failures: 0,
            in_flight: false,
        }
    }

    /// Whether there is any tracker at all.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// The download completed: `completed` goes out with the next announce, which is now
    /// (only once `started` has been delivered; a torrent complete from the start never
    /// sends `completed`).
    pub fn completed(&mut self, now: Duration) {
        if self.started_sent {
            self.pending = Event::Completed;
            self.next_at = self.next_at.min(now);
        }
    }

    /// Asks for an early announce (too few peers, or none has what we need): granted once
    /// `min interval` has passed since the last one.
    pub fn want_peers(&mut self, now: Duration) {
        let earliest = self.last_at.map_or(now, |t| t + self.min_interval);
        if self.failures == 0 && earliest < self.next_at {
            self.next_at = earliest.max(now);
        }
    }

    /// The announce due at `now`, if any (at most one in flight).
    pub fn poll(&mut self, now: Duration) -> Option<Due> {
        if self.in_flight || self.tiers.is_empty() || now < self.next_at {
            return None;
        }
        self.in_flight = true;
        let (t, i) = self.cursor;
        Some(Due {
            url: self.tiers[t][i].clone(),
            event: self.pending,
        })
    }

    /// The tracker answered with `interval` / `min interval`: schedule the next regular
    /// announce, move the tracker to the front of its tier, and count the event delivered.
    pub fn succeeded(&mut self, now: Duration, interval: Duration, min_interval: Option<Duration>) {
        self.in_flight = false;
        let (t, i) = self.cursor;
        let url = self.tiers[t].remove(i);
        self.tiers[t].insert(0, url);
        self.cursor = (0, 0);
        self.failures = 0;
        self.interval = interval.max(Duration::from_secs(1));
        self.min_interval = min_interval
            .unwrap_or(DEFAULT_MIN_INTERVAL)
            .min(self.interval);
        if self.pending == Event::Started {
            self.started_sent = true;
        }
        self.pending = Event::None;
        self.last_at = Some(now);
        self.next_at = now + self.interval;
    }

    /// The tracker failed (unreachable, timeout, failure reason): try the next one in tier
    /// order now; after the last one, back off (15 s doubling to 30 min).
    pub fn failed(&mut self, now: Duration) {
        self.in_flight = false;
        let (t, i) = self.cursor;
        if i + 1 < self.tiers[t].len() {
            self.cursor = (t, i + 1);
            self.next_at = now;
        } else if t + 1 < self.tiers.len() {
            self.cursor = (t + 1, 0);
            self.next_at = now;
        } else {
            self.cursor = (0, 0);
            let delay = RETRY_BASE
                .saturating_mul(1 << self.failures.min(10))
                .min(RETRY_MAX);
            self.failures += 1;
            self.next_at = now + delay;
        }
    }

    /// When the next announce is due (`None` while one is in flight, or with no tracker).
    pub fn next_at(&self) -> Option<Duration> {
        (!self.in_flight && !self.tiers.is_empty()).then_some(self.next_at)
    }

    /// Trackers to tell `stopped` at exit (those the torrent reached), in order.
    pub fn stop_targets(&self) -> Vec<String> {
        if !self.started_sent {
            return Vec::new();
        }
        self.tiers
            .iter()
            .filter_map(|t| t.first().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn s(tiers: &[&[&str]]) -> Schedule {
        let tiers = tiers
            .iter()
            .map(|t| t.iter().map(|u| u.to_string()).collect())
            .collect();
        Schedule::new(tiers, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1))
    }
    const T0: Duration = Duration::ZERO;
    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn started_then_regular_announces_at_the_interval() {
        let mut sch = s(&[&["http://a"]]);
        let due = sch.poll(T0).unwrap();
        assert_eq!(due.event, Event::Started);
        assert_eq!(sch.poll(T0), None, "one in flight");
        sch.succeeded(T0, secs(100), Some(secs(10)));
        assert_eq!(sch.poll(secs(99)), None);
        assert_eq!(sch.poll(secs(100)).unwrap().event, Event::None);
    }

    #[test]
    fn completed_goes_out_at_once_and_once() {
        let mut sch = s(&[&["http://a"]]);
        sch.poll(T0).unwrap();
        sch.succeeded(T0, secs(100), None);
        sch.completed(secs(5));
        assert_eq!(sch.poll(secs(5)).unwrap().event, Event::Completed);
        sch.succeeded(secs(5), secs(100), None);
        assert_eq!(sch.poll(secs(105)).unwrap().event, Event::None);
    }

    #[test]
    fn failures_walk_the_tiers_then_back_off() {
        let mut sch = s(&[&["http://a"], &["http://b"]]);
        assert_eq!(sch.poll(T0).unwrap().url, "http://a");
        sch.failed(T0);
        assert_eq!(sch.poll(T0).unwrap().url, "http://b");
        sch.failed(T0);
        assert_eq!(sch.poll(T0), None);
        assert_eq!(sch.poll(secs(14)), None);
        let due = sch.poll(secs(15)).unwrap();
        assert_eq!((due.url.as_str(), due.event), ("http://a", Event::Started));
        sch.failed(secs(15));
        sch.poll(secs(15)).unwrap();
        sch.failed(secs(15));
        assert_eq!(sch.poll(secs(44)), None, "second backoff is 30 s");
        assert!(sch.poll(secs(45)).is_some());
    }

    #[test]
    fn a_responding_tracker_moves_to_the_front_of_its_tier() {
        let mut sch = s(&[&["http://a", "http://b"]]);
        let first = sch.poll(T0).unwrap().url;
        sch.failed(T0);
        let second = sch.poll(T0).unwrap().url;
        assert_ne!(first, second);
        sch.succeeded(T0, secs(100), None);
        assert_eq!(sch.poll(secs(100)).unwrap().url, second);
        assert_eq!(sch.stop_targets(), vec![second]);
    }

    #[test]
    fn early_announce_waits_for_min_interval() {
        let mut sch = s(&[&["http://a"]]);
        sch.poll(T0).unwrap();
        sch.succeeded(T0, secs(1800), Some(secs(60)));
        sch.want_peers(secs(10));
        assert_eq!(sch.poll(secs(59)), None);
        assert!(sch.poll(secs(60)).is_some());
    }
}
