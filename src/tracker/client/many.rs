//! The announce schedule of many torrents at once (sans-IO): one [`Schedule`] per torrent and
//! a heap of their next-announce times, so one thread finds the next due announce in
//! O(log n) and sleeps until then, with at most a given number of announces in flight.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use rand::Rng;

use super::schedule::{Due, Schedule};
use crate::metainfo::InfoHash;

/// Every torrent's schedule and the heap of when each is next due.
#[derive(Debug, Default)]
pub struct ManySchedules {
    schedules: HashMap<InfoHash, Schedule>,
    /// (due time, torrent); stale entries (the torrent's time moved, or it left) are skipped
    /// when they surface.
    heap: BinaryHeap<Reverse<(Duration, InfoHash)>>,
    in_flight: usize,
}

impl ManySchedules {
    /// No torrent.
    pub fn new() -> Self {
        ManySchedules::default()
    }

    /// How many torrents are scheduled.
    pub fn len(&self) -> usize {
        self.schedules.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.schedules.is_empty()
    }

    /// Announces in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn push(&mut self, hash: InfoHash) {
        if let Some(at) = self.schedules.get(&hash).and_then(Schedule::next_at) {
            self.heap.push(Reverse((at, hash)));
        }
    }

    /// Schedules a torrent over `tiers` (its `started` announce is due now). A torrent
    /// already scheduled keeps its schedule.
    pub fn add<R: Rng + ?Sized>(&mut self, hash: InfoHash, tiers: Vec<Vec<String>>, rng: &mut R) {
        if self.schedules.contains_key(&hash) {
            return;
        }
        self.schedules.insert(hash, Schedule::new(tiers, rng));
        self.push(hash);
    }

    /// Forgets a torrent; returns the trackers to tell `stopped` (those it reached).
    pub fn remove(&mut self, hash: &InfoHash) -> Vec<String> {
        match self.schedules.remove(hash) {
            Some(s) => {
                if s.next_at().is_none() && !s.is_empty() {
                    // Its announce in flight will be answered for a torrent that left.
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                s.stop_targets()
            }
            None => Vec::new(),
        }
    }

    /// The next announce due at `now`, if fewer than `max_in_flight` are in flight.
    pub fn poll(&mut self, now: Duration, max_in_flight: usize) -> Option<(InfoHash, Due)> {
        while self.in_flight < max_in_flight {
            let Reverse((at, hash)) = *self.heap.peek()?;
            if at > now {
                return None;
            }
            self.heap.pop();
            let Some(s) = self.schedules.get_mut(&hash) else {
                continue;
            };
            if s.next_at() != Some(at) {
                continue;
            }
            if let Some(due) = s.poll(now) {
                self.in_flight += 1;
                return Some((hash, due));
            }
            self.push(hash);
        }
        None
    }

    /// When the earliest scheduled announce is due (stale heap entries may make it early:
    /// [`ManySchedules::poll`] then finds nothing and the caller asks again).
    pub fn next_wakeup(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    fn answered(&mut self, hash: &InfoHash, f: impl FnOnce(&mut Schedule)) {
        if let Some(s) = self.schedules.get_mut(hash) {
            if s.next_at().is_none() {
                self.in_flight = self.in_flight.saturating_sub(1);
                f(s);
                self.push(*hash);
            }
        }
    }

    /// The torrent's announce was answered (see [`Schedule::succeeded`]).
    pub fn succeeded(
        &mut self,
        hash: &InfoHash,
        now: Duration,
        interval: Duration,
        min_interval: Option<Duration>,
    ) {
        self.answered(hash, |s| s.succeeded(now, interval, min_interval));
    }

    /// The torrent's announce failed (see [`Schedule::failed`]).
    pub fn failed(&mut self, hash: &InfoHash, now: Duration) {
        self.answered(hash, |s| s.failed(now));
    }

    /// Forgets every torrent; returns each one's `stopped` targets.
    pub fn drain_stop_targets(&mut self) -> Vec<(InfoHash, String)> {
        let mut out = Vec::new();
        for (hash, s) in self.schedules.drain() {
            out.extend(s.stop_targets().into_iter().map(|url| (hash, url)));
        }
        self.heap.clear();
        self.in_flight = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Event;

    fn h(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    fn tiers(url: &str) -> Vec<Vec<String>> {
        vec![vec![url.to_owned()]]
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn started_announces_are_bounded_then_intervals_order_the_heap() {
        let mut m = ManySchedules::new();
        let rng = &mut rand::thread_rng();
        for n in 0..5 {
            m.add(h(n), tiers("http://t/announce"), rng);
        }
        let mut got = Vec::new();
        while let Some((hash, due)) = m.poll(secs(0), 3) {
            assert_eq!(due.event, Event::Started);
            got.push(hash);
        }
        assert_eq!(got.len(), 3, "bounded by max_in_flight");
        // Answers free slots; the other two go out.
        m.succeeded(&got[0], secs(1), secs(100), None);
        m.succeeded(&got[1], secs(1), secs(50), None);
        m.failed(&got[2], secs(1));
        let rest: Vec<_> = std::iter::from_fn(|| m.poll(secs(1), 3)).collect();
        assert_eq!(rest.len(), 2);
        for (hash, _) in &rest {
            m.succeeded(hash, secs(2), secs(1000), None);
        }
        // got[2] failed with one tracker: retried after 15 s; got[1] at 51 s; got[0] at 101 s.
        assert_eq!(m.next_wakeup(), Some(secs(16)));
        assert!(m.poll(secs(15), 3).is_none());
        assert_eq!(m.poll(secs(16), 3).unwrap().0, got[2]);
        m.succeeded(&got[2], secs(16), secs(1000), None);
        assert!(m.poll(secs(50), 3).is_none());
        let (hash, due) = m.poll(secs(51), 3).unwrap();
        assert_eq!((hash, due.event), (got[1], Event::None));
    }

    #[test]
    fn removed_torrents_get_stopped_only_where_started_went_and_free_their_slot() {
        let mut m = ManySchedules::new();
        let rng = &mut rand::thread_rng();
        m.add(h(1), tiers("http://a/announce"), rng);
        m.add(h(2), tiers("http://b/announce"), rng);
        let (first, _) = m.poll(secs(0), 1).unwrap();
        assert!(m.poll(secs(0), 1).is_none(), "one in flight");
        // Removed while in flight, never answered: no stopped, and the slot is free.
        assert!(m.remove(&first).is_empty());
        let (second, _) = m.poll(secs(0), 1).unwrap();
        assert_ne!(first, second);
        m.succeeded(&second, secs(1), secs(60), None);
        // A late answer for the removed torrent changes nothing.
        m.succeeded(&first, secs(1), secs(60), None);
        assert_eq!(m.in_flight(), 0);
        assert_eq!(m.len(), 1);
        let stops = m.drain_stop_targets();
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0].0, second);
        assert!(m.is_empty() && m.next_wakeup().is_none());
    }
}
