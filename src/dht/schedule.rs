//! When each torrent is announced to the DHT (sans-IO: time is passed in as the time since
//! the node started). A torrent added is announced soon, but at most one announce starts per
//! [`SPACING`], so that 1,000 torrents added at once are spread over a few minutes and their
//! re-announces, every [`REANNOUNCE_EVERY`], stay spread. A failed announce (no node answered,
//! for example before the routing table filled) is retried after [`RETRY_FIRST`], doubling up
//! to the re-announce interval.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::metainfo::InfoHash;

/// Interval between two announces of one torrent (BEP 5 nodes forget peers after 30 min).
pub const REANNOUNCE_EVERY: Duration = Duration::from_secs(15 * 60);
/// Least time between two announces starting (over all torrents).
pub const SPACING: Duration = Duration::from_millis(200);
/// First retry after a failed announce.
pub const RETRY_FIRST: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Entry {
    due: Duration,
    failures: u32,
}

/// The announce schedule of every torrent the node announces.
#[derive(Debug, Default)]
pub struct AnnounceSchedule {
    entries: HashMap<InfoHash, Entry>,
    /// (due, hash), the same as `entries` ordered by time.
    queue: BTreeSet<(Duration, InfoHash)>,
    /// The earliest time the next announce may start (announces are [`SPACING`] apart).
    next_slot: Duration,
}

impl AnnounceSchedule {
    /// An empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Torrents scheduled.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No torrent scheduled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Schedules `hash` for an announce as soon as its turn comes; nothing if already there.
    pub fn add(&mut self, hash: InfoHash, now: Duration) {
        if self.entries.contains_key(&hash) {
            return;
        }
        self.set(hash, now, 0);
    }

    /// Forgets `hash`.
    pub fn remove(&mut self, hash: &InfoHash) {
        if let Some(e) = self.entries.remove(hash) {
            self.queue.remove(&(e.due, *hash));
        }
    }

    fn set(&mut self, hash: InfoHash, due: Duration, failures: u32) {
        if let Some(old) = self.entries.insert(hash, Entry { due, failures }) {
            self.queue.remove(&(old.due, hash));
        }
        self.queue.insert((due, hash));
    }

    /// When the next announce is due (it may be in the past), if any.
    pub fn next_due(&self) -> Option<Duration> {
        self.queue
            .first()
            .map(|(due, _)| (*due).max(self.next_slot))
    }

    /// The next torrent to announce now, if one is due and its slot has come. It is
    /// rescheduled [`REANNOUNCE_EVERY`] from now (see [`AnnounceSchedule::failed`]).
    pub fn pop_due(&mut self, now: Duration) -> Option<InfoHash> {
        let &(due, hash) = self.queue.first()?;
        if due > now || self.next_slot > now {
            return None;
        }
        self.next_slot = now + SPACING;
        let failures = self.entries[&hash].failures;
        self.set(hash, now + REANNOUNCE_EVERY, failures);
        Some(hash)
    }

    /// The announce of `hash` started at `now` succeeded.
    pub fn succeeded(&mut self, hash: &InfoHash) {
        if let Some(e) = self.entries.get_mut(hash) {
            e.failures = 0;
        }
    }

    /// The announce of `hash` failed at `now`: retried after [`RETRY_FIRST`], doubling with
    /// each failure in a row, never later than [`REANNOUNCE_EVERY`].
    pub fn failed(&mut self, hash: &InfoHash, now: Duration) {
        let Some(e) = self.entries.get(hash).copied() else {
            return;
        };
        let failures = e.failures + 1;
        let wait = RETRY_FIRST
            .saturating_mul(1 << (failures - 1).min(16))
            .min(REANNOUNCE_EVERY);
        self.set(*hash, now + wait, failures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u32) -> InfoHash {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&i.to_be_bytes());
        InfoHash(b)
    }

    fn drain(s: &mut AnnounceSchedule, now: Duration) -> Vec<InfoHash> {
        std::iter::from_fn(|| s.pop_due(now)).collect()
    }

    #[test]
    fn a_new_torrent_is_due_at_once_then_every_fifteen_minutes() {
        let mut s = AnnounceSchedule::new();
        s.add(hash(1), Duration::from_secs(5));
        assert_eq!(s.next_due(), Some(Duration::from_secs(5)));
        assert_eq!(s.pop_due(Duration::from_secs(5)), Some(hash(1)));
        assert_eq!(s.pop_due(Duration::from_secs(6)), None);
        let next = Duration::from_secs(5) + REANNOUNCE_EVERY;
        assert_eq!(s.next_due(), Some(next));
        assert_eq!(s.pop_due(next - Duration::from_millis(1)), None);
        assert_eq!(s.pop_due(next), Some(hash(1)));
    }

    #[test]
    fn many_torrents_added_at_once_are_spread_by_the_spacing() {
        let mut s = AnnounceSchedule::new();
        let t0 = Duration::from_secs(1);
        for i in 0..1000 {
            s.add(hash(i), t0);
        }
        // One announce per slot.
        assert_eq!(drain(&mut s, t0).len(), 1);
        assert_eq!(drain(&mut s, t0 + SPACING / 2).len(), 0);
        let mut started = vec![t0];
        let mut now = t0;
        while started.len() < 1000 {
            now = s.next_due().unwrap();
            let got = drain(&mut s, now);
            assert_eq!(got.len(), 1);
            started.push(now);
        }
        assert_eq!(now, t0 + SPACING * 999);
        // The re-announces keep the spread.
        let again = s.next_due().unwrap();
        assert_eq!(again, t0 + REANNOUNCE_EVERY);
        assert_eq!(drain(&mut s, again).len(), 1);
        assert_eq!(s.next_due(), Some(t0 + SPACING + REANNOUNCE_EVERY));
    }

    #[test]
    fn failures_are_retried_sooner_with_backoff_and_success_resets_it() {
        let mut s = AnnounceSchedule::new();
        let mut now = Duration::ZERO;
        s.add(hash(7), now);
        let mut waits = Vec::new();
        for _ in 0..10 {
            assert_eq!(s.pop_due(now), Some(hash(7)));
            s.failed(&hash(7), now);
            let due = s.next_due().unwrap();
            waits.push((due - now).as_secs());
            now = due;
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 900, 900, 900]);
        assert_eq!(s.pop_due(now), Some(hash(7)));
        s.succeeded(&hash(7));
        assert_eq!(s.next_due(), Some(now + REANNOUNCE_EVERY));
        s.failed(&hash(7), now);
        assert_eq!(s.next_due(), Some(now + RETRY_FIRST));
    }

    #[test]
    fn removed_torrents_are_never_due() {
        let mut s = AnnounceSchedule::new();
        s.add(hash(1), Duration::ZERO);
        s.add(hash(2), Duration::ZERO);
        s.add(hash(2), Duration::ZERO);
        assert_eq!(s.len(), 2);
        s.remove(&hash(1));
        s.failed(&hash(1), Duration::ZERO);
        assert_eq!(drain(&mut s, Duration::from_secs(1)), vec![hash(2)]);
        s.remove(&hash(2));
        assert!(s.is_empty());
        assert_eq!(s.next_due(), None);
    }
}
