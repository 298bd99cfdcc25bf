//! The UDP connection ids a client holds (BEP 15), one per tracker address: an id obtained by
//! a `connect` may be reused for [`ID_LIFETIME`], so that announcing many torrents to one
//! tracker costs one round trip each instead of two. Sans-IO: time is passed in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a connection id is reused after its `connect` (BEP 15: "a client can use a
/// connection ID until one minute after it has received it").
pub const ID_LIFETIME: Duration = Duration::from_secs(60);

/// Trackers remembered at most; a full cache first drops expired ids, then the oldest.
pub const MAX_TRACKERS: usize = 1024;

/// Connection ids by tracker address, each with the time it was received.
#[derive(Debug, Default)]
pub struct UdpConnectionIds {
    ids: HashMap<SocketAddr, (u64, Duration)>,
}

impl UdpConnectionIds {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id to use for `tracker` at `now`, if one was received less than [`ID_LIFETIME`]
    /// ago.
    pub fn get(&self, tracker: SocketAddr, now: Duration) -> Option<u64> {
        self.ids
            .get(&tracker)
            .filter(|(_, at)| now.saturating_sub(*at) < ID_LIFETIME)
            .map(|(id, _)| *id)
    }

    /// Remembers `id`, received from `tracker` at `now`.
    pub fn insert(&mut self, tracker: SocketAddr, id: u64, now: Duration) {
        if self.ids.len() >= MAX_TRACKERS && !self.ids.contains_key(&tracker) {
            self.ids
                .retain(|_, (_, at)| now.saturating_sub(*at) < ID_LIFETIME);
            if self.ids.len() >= MAX_TRACKERS {
                if let Some(oldest) = self
                    .ids
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(a, _)| *a)
                {
                    self.ids.remove(&oldest);
                }
            }
        }
        self.ids.insert(tracker, (id, now));
    }

    /// Drops `tracker`'s id (it was refused, or went unanswered).
    pub fn forget(&mut self, tracker: SocketAddr) {
        self.ids.remove(&tracker);
    }

    /// Trackers remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no tracker is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn an_id_is_reused_for_a_minute_then_not() {
        let mut ids = UdpConnectionIds::new();
        assert_eq!(ids.get(addr(1), secs(0)), None);
        ids.insert(addr(1), 7, secs(10));
        assert_eq!(ids.get(addr(1), secs(10)), Some(7));
        assert_eq!(ids.get(addr(1), secs(69)), Some(7));
        assert_eq!(ids.get(addr(1), secs(70)), None);
        assert_eq!(ids.get(addr(2), secs(10)), None, "per tracker");
        ids.insert(addr(1), 8, secs(70));
        assert_eq!(ids.get(addr(1), secs(71)), Some(8));
        ids.forget(addr(1));
        assert_eq!(ids.get(addr(1), secs(71)), None);
    }

    #[test]
    fn the_cache_is_bounded_dropping_expired_then_oldest() {
        let mut ids = UdpConnectionIds::new();
        for p in 0..MAX_TRACKERS as u16 {
            ids.insert(addr(p), u64::from(p), secs(u64::from(p % 100)));
        }
        assert_eq!(ids.len(), MAX_TRACKERS);
        // At 100 s the ids received before 40 s have expired: they go first.
        ids.insert(addr(60_000), 1, secs(100));
        assert!(ids.len() < MAX_TRACKERS);
        assert_eq!(ids.get(addr(60_000), secs(100)), Some(1));
        assert_eq!(ids.get(addr(0), secs(100)), None);
        // Nothing expired: the oldest goes, one for one.
        let mut ids = UdpConnectionIds::new();
        for p in 0..MAX_TRACKERS as u16 {
            ids.insert(addr(p), 0, Duration::from_millis(10_000 + u64::from(p)));
        }
        ids.insert(addr(60_000), 1, secs(20));
        assert_eq!(ids.len(), MAX_TRACKERS);
        assert_eq!(ids.get(addr(0), secs(20)), None);
        assert_eq!(ids.get(addr(1000), secs(20)), Some(0));
    }
}
