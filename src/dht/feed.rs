//! Peers found by DHT lookups, handed from the DHT thread to whoever asked (the magnet
//! fetch, the download's connection candidates): a queue behind a mutex touched once per
//! lookup answer and once per tick of the reader, and a [`tokio::sync::Notify`] to wake it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    fresh: Vec<SocketAddr>,
    seen: HashSet<SocketAddr>,
}

/// Most distinct peers one feed remembers (more are ignored).
pub const MAX_PEERS: usize = 10_000;

/// A queue of peers found, each given once.
#[derive(Debug, Clone, Default)]
pub struct PeerFeed {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
}

impl PeerFeed {
    /// An empty feed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds peers (those already given are skipped) and wakes the reader.
    pub fn push(&self, peers: impl IntoIterator<Item = SocketAddr>) {
        let mut added = false;
        {
            let mut i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            for p in peers {
                if i.seen.len() < MAX_PEERS && i.seen.insert(p) {
                    i.fresh.push(p);
                    added = true;
                }
            }
        }
        if added {
            self.notify.notify_one();
        }
    }

    /// The peers added since the last call.
    pub fn take(&self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()).fresh)
    }

    /// Waits until peers were added (returns at once if some were added since the last wait).
    pub async fn arrived(&self) {
        self.notify.notified().await;
    }

    /// Distinct peers found so far.
    pub fn found(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen
            .len()
    }

    /// Whether only the DHT thread holds the feed any more (the reader is gone).
    pub(crate) fn abandoned(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_is_given_once() {
        let f = PeerFeed::new();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        f.push([a, b, a]);
        assert_eq!(f.take(), vec![a, b]);
        f.push([b]);
        assert!(f.take().is_empty());
        assert_eq!(f.found(), 2);
        let g = f.clone();
        assert!(!f.abandoned());
        drop(g);
        assert!(f.abandoned());
    }
}
