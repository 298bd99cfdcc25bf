//! Idle keep-alive connections to HTTP trackers, kept per tracker address so that announcing
//! many torrents to one tracker reuses a few connections instead of opening one per announce.
//! Sans-IO: generic over the connection type, time passed in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// How long an idle connection is kept for reuse. Servers close idle keep-alive connections
/// after their own timeout (Apache 5 s, nginx 75 s, seedbox's tracker 60 s); a connection the
/// server closed is noticed before reuse, and a request that meets a close anyway is sent
/// again once on a new connection.
pub const IDLE_LIFETIME: Duration = Duration::from_secs(15);
/// Idle connections kept per tracker (the announcer's in-flight bound).
pub const MAX_IDLE_PER_TRACKER: usize = 8;
/// Trackers with idle connections kept at most; a full pool first drops expired
/// connections, then refuses new ones.
pub const MAX_TRACKERS: usize = 256;

/// Idle connections by tracker address, each with the time it became idle.
#[derive(Debug)]
pub struct IdleConnections<S> {
    idle: HashMap<SocketAddr, Vec<(S, Duration)>>,
}

impl<S> Default for IdleConnections<S> {
    fn default() -> Self {
        IdleConnections {
            idle: HashMap::new(),
        }
    }
}

impl<S> IdleConnections<S> {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most recently idle connection to `tracker` that is younger than
    /// [`IDLE_LIFETIME`] at `now`; older ones are dropped.
    pub fn take(&mut self, tracker: SocketAddr, now: Duration) -> Option<S> {
        let list = self.idle.get_mut(&tracker)?;
        list.retain(|(_, at)| now.saturating_sub(*at) < IDLE_LIFETIME);
        let found = list.pop().map(|(s, _)| s);
        if list.is_empty() {
            self.idle.remove(&tracker);
        }
        found
    }

    /// Keeps `conn` to `tracker`, idle since `now`; returns it when the pool has no room (the
    /// caller closes it).
    /// Expired connections are dropped first, so none is held long past its lifetime.
    pub fn put(&mut self, tracker: SocketAddr, conn: S, now: Duration) -> Option<S> {
        self.expire(now);
        if !self.idle.contains_key(&tracker) && self.idle.len() >= MAX_TRACKERS {
            return Some(conn);
        }
        let list = self.idle.entry(tracker).or_default();
        if list.len() >= MAX_IDLE_PER_TRACKER {
            return Some(conn);
        }
        list.push((conn, now));
        None
    }

    /// Idle connections held, over all trackers.
    pub fn len(&self) -> usize {
        self.idle.values().map(Vec::len).sum()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.idle.is_empty()
    }

    /// Drops every connection older than [`IDLE_LIFETIME`] at `now`.
    pub fn expire(&mut self, now: Duration) {
        self.idle.retain(|_, list| {
            list.retain(|(_, at)| now.saturating_sub(*at) < IDLE_LIFETIME);
            !list.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_connection_is_reused_for_its_tracker_only_and_newest_first() {
        let mut p = IdleConnections::new();
        assert_eq!(p.put(addr(1), "a", S), None);
        assert_eq!(p.put(addr(1), "b", 2 * S), None);
        assert_eq!(p.take(addr(2), 3 * S), None);
        assert_eq!(p.take(addr(1), 3 * S), Some("b"));
        assert_eq!(p.take(addr(1), 3 * S), Some("a"));
        assert_eq!(p.take(addr(1), 3 * S), None);
        assert!(p.is_empty());
    }

    #[test]
    fn idle_connections_expire() {
        let mut p = IdleConnections::new();
        p.put(addr(1), 1, Duration::ZERO);
        p.put(addr(2), 2, Duration::ZERO);
        assert_eq!(p.take(addr(1), IDLE_LIFETIME), None);
        assert_eq!(p.len(), 1);
        p.expire(IDLE_LIFETIME);
        assert!(p.is_empty());
    }

    #[test]
    fn the_pool_is_bounded_per_tracker_and_in_trackers() {
        let mut p = IdleConnections::new();
        for i in 0..MAX_IDLE_PER_TRACKER {
            assert_eq!(p.put(addr(1), i, S), None);
        }
        assert_eq!(p.put(addr(1), 99, S), Some(99), "per tracker");
        for port in 2..=MAX_TRACKERS as u16 {
            assert_eq!(p.put(addr(port), 0, S), None);
        }
        assert_eq!(p.put(addr(9999), 7, S), Some(7), "trackers");
        // Once the others expire there is room again.
        assert_eq!(p.put(addr(9999), 7, S + IDLE_LIFETIME), None);
        assert_eq!(p.len(), 1);
    }
}
