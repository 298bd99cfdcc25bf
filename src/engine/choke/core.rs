//! The peers of one torrent on one core: they tell the torrent's choke owner
//! ([`ChokeOwner`](super::ChokeOwner)) what it needs to rank them and apply its decisions
//! ([`ChokeOrder`]), whatever the slots (they can change while serving: a config re-read).
//! Everything here is core-local (`Rc`, `RefCell`): no lock.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::Notify;

use super::{ChokeEvent, ChokeOrder, PeerKey};
use crate::engine::TorrentCounters;
use crate::metainfo::InfoHash;
use crate::protocol::Connection;
use crate::swarm::{BlockRef, RateMeter};

/// What the tasks of one connection and its core's choker share (same thread, no lock).
pub(in crate::engine) struct PeerShared {
    /// The protocol state (same state machine as the leecher's).
    pub conn: Connection,
    /// Encoded bytes waiting to go out before the next blocks (handshake, control messages).
    pub control: BytesMut,
    /// Upload rate to the peer (what the seed choker ranks by).
    pub up: RateMeter,
    /// When each queued request arrived, in queue order (a superset of the connection's
    /// queue: cancelled or dropped requests are skipped when a later one is served).
    pub arrivals: VecDeque<(BlockRef, Instant)>,
    /// Set to end the connection (its torrent stopped, or the engine shuts down).
    pub closed: bool,
}

/// A connected peer as the choker sees it.
pub(in crate::engine) struct PeerHandle {
    /// The shared state.
    pub shared: Rc<RefCell<PeerShared>>,
    /// Wakes the peer's writer.
    pub wake: Rc<Notify>,
}

/// The peers of one torrent on one core.
pub(in crate::engine) struct TorrentCore {
    core: usize,
    hash: InfoHash,
    owner: Sender<ChokeEvent>,
    counters: Arc<TorrentCounters>,
    peers: BTreeMap<PeerKey, PeerHandle>,
}

impl TorrentCore {
    /// No peers yet, on core `core`; `owner`: where the torrent's choke owner listens.
    /// `counters`: the torrent's, where this core's unchoked count is published whenever it
    /// changes here (so that the sum over cores never counts a peer choked or gone on one core
    /// after one unchoked on another in its place).
    pub fn new(
        core: usize,
        hash: InfoHash,
        owner: Sender<ChokeEvent>,
        counters: Arc<TorrentCounters>,
    ) -> Self {
        TorrentCore {
            core,
            hash,
            owner,
            counters,
            peers: BTreeMap::new(),
        }
    }

    fn publish_unchoked(&self) {
        let n = self.unchoked() as u64;
        self.counters
            .core(self.core)
            .unchoked
            .store(n, Ordering::Relaxed);
    }

    fn tell(&self, event: ChokeEvent) {
        // The owner is gone only when the engine stops.
        let _ = self.owner.send(event);
    }

    /// Number of peers on this core.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Of them, unchoked ones.
    pub fn unchoked(&self) -> usize {
        self.peers
            .values()
            .filter(|p| !p.shared.borrow().conn.am_choking())
            .count()
    }

    /// Registers a connected peer.
    pub fn add(&mut self, key: PeerKey, handle: PeerHandle) {
        self.peers.insert(key, handle);
        let (core, hash) = (self.core, self.hash);
        self.tell(ChokeEvent::Joined { core, hash, key });
    }

    /// Forgets a peer that left.
    pub fn remove(&mut self, key: PeerKey) {
        if self.peers.remove(&key).is_some() {
            self.publish_unchoked();
            let (core, hash) = (self.core, self.hash);
            self.tell(ChokeEvent::Left { core, hash, key });
        }
    }

    /// A peer became interested or not interested.
    pub fn interest_changed(&mut self, key: PeerKey, interested: bool) {
        let (core, hash) = (self.core, self.hash);
        self.tell(ChokeEvent::Interest {
            core,
            hash,
            key,
            interested,
        });
    }

    /// Tells the owner the upload rate to each peer at `now` (every second).
    pub fn publish_rates(&self, now: Duration) {
        if self.peers.is_empty() {
            return;
        }
        let rates = self
            .peers
            .iter()
            .map(|(&k, p)| (k, p.shared.borrow().up.rate(now)))
            .collect();
        let (core, hash) = (self.core, self.hash);
        let uploaded = self.counters.core(core).uploaded.load(Ordering::Relaxed);
        self.tell(ChokeEvent::Rates {
            core,
            hash,
            rates,
            uploaded,
        });
    }

    /// Applies the owner's decisions to the peers still here (chokes first) and acknowledges
    /// them when asked.
    pub fn apply(&mut self, order: &ChokeOrder) {
        for (keys, unchoke) in [(&order.choke, false), (&order.unchoke, true)] {
            for key in keys {
                if let Some(p) = self.peers.get(key) {
                    let mut s = p.shared.borrow_mut();
                    if unchoke {
                        s.conn.unchoke();
                    } else {
                        s.conn.choke();
                    }
                    p.wake.notify_one();
                }
            }
        }
        self.publish_unchoked();
        if let Some(round) = order.ack {
            let (core, hash) = (self.core, self.hash);
            self.tell(ChokeEvent::Applied { core, hash, round });
        }
    }

    /// Ends every connection (the torrent stopped).
    pub fn close_all(&mut self) {
        for p in self.peers.values() {
            p.shared.borrow_mut().closed = true;
            p.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::protocol::{ConnectionConfig, Handshake, Message, PeerId};
    use crate::swarm::{Bitfield, PieceGeometry};

    const HASH: InfoHash = InfoHash([1; 20]);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A handshaken peer, connected at `at`.
    fn peer(at: Duration) -> PeerHandle {
        let geometry = PieceGeometry::new(16384, 16384 * 8);
        let mut conn = Connection::new(ConnectionConfig::default(), geometry, at);
        let theirs = Handshake::new(HASH, PeerId([2; 20]));
        conn.on_handshake(&theirs, &Bitfield::full(8), at);
        PeerHandle {
            shared: Rc::new(RefCell::new(PeerShared {
                conn,
                control: BytesMut::new(),
                up: RateMeter::new(at),
                arrivals: VecDeque::new(),
                closed: false,
            })),
            wake: Rc::new(Notify::new()),
        }
    }

    fn counters(cores: usize) -> Arc<TorrentCounters> {
        Arc::new(TorrentCounters::new(cores))
    }

    fn interested(tc: &mut TorrentCore, key: PeerKey) {
        tc.peers[&key]
            .shared
            .borrow_mut()
            .conn
            .on_message(Message::Interested, &Bitfield::full(8), secs(1))
            .unwrap();
        tc.interest_changed(key, true);
    }

    fn unchoked(tc: &TorrentCore) -> Vec<PeerKey> {
        tc.peers
            .iter()
            .filter(|(_, p)| !p.shared.borrow().conn.am_choking())
            .map(|(k, _)| *k)
            .collect()
    }

    #[test]
    fn events_go_to_the_owner_and_orders_are_applied_and_acknowledged() {
        let (tx, rx) = mpsc::channel();
        let mut tc = TorrentCore::new(1, HASH, tx, counters(2));
        tc.add(7, peer(secs(0)));
        tc.add(8, peer(secs(0)));
        interested(&mut tc, 7);
        assert!(unchoked(&tc).is_empty(), "only the owner unchokes");
        tc.peers[&7].shared.borrow_mut().up.record(50_000, secs(1));
        tc.publish_rates(secs(2));
        tc.remove(8);
        tc.remove(8);
        let events: Vec<_> = rx.try_iter().collect();
        let (core, hash) = (1, HASH);
        assert_eq!(events[0], ChokeEvent::Joined { core, hash, key: 7 });
        assert_eq!(events[1], ChokeEvent::Joined { core, hash, key: 8 });
        assert_eq!(
            events[2],
            ChokeEvent::Interest {
                core,
                hash,
                key: 7,
                interested: true
            }
        );
        match &events[3] {
            ChokeEvent::Rates { rates, .. } => {
                assert_eq!(rates.len(), 2);
                assert!(rates[0].0 == 7 && rates[0].1 > 0, "{rates:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(events[4], ChokeEvent::Left { core, hash, key: 8 });
        assert_eq!(events.len(), 5, "a second remove tells nothing");
        let order = |choke: Vec<PeerKey>, unchoke: Vec<PeerKey>, ack| ChokeOrder {
            core,
            hash,
            choke,
            unchoke,
            ack,
        };
        // An unknown key (a peer gone since) is ignored.
        tc.apply(&order(vec![], vec![7, 99], None));
        assert_eq!(unchoked(&tc), vec![7]);
        assert_eq!(tc.counters.unchoked(), 1, "published at once");
        assert!(rx.try_recv().is_err());
        tc.apply(&order(vec![7], vec![], Some(3)));
        assert!(unchoked(&tc).is_empty());
        assert_eq!(
            rx.try_recv().unwrap(),
            ChokeEvent::Applied {
                core,
                hash,
                round: 3
            }
        );
        assert_eq!(tc.counters.unchoked(), 0);
        tc.close_all();
        assert!(tc.peers.values().all(|p| p.shared.borrow().closed));
    }
}
