//! Choking on one core: per torrent, the peers this core serves and the sans-IO
//! [`Choker`] that picks which of them are unchoked.
//!
//! Rounds run every [`CHOKE_INTERVAL`] from the core's housekeeping task, and early when a slot
//! is free and a choked peer is interested (a new peer does not wait up to 10 s for an idle
//! slot). With unlimited slots the choker is bypassed: a peer is unchoked when it becomes
//! interested. Everything here is core-local (`Rc`, `RefCell`): no lock.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::Notify;

use crate::protocol::Connection;
use crate::swarm::{BlockRef, Choker, ChokerConfig, PeerSnapshot, RateMeter, Slots};

/// A peer's key, unique on its core.
pub(super) type PeerKey = u64;

/// What the tasks of one connection and its core's choker share (same thread, no lock).
pub(super) struct PeerShared {
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
pub(super) struct PeerHandle {
    /// The shared state.
    pub shared: Rc<RefCell<PeerShared>>,
    /// Wakes the peer's writer.
    pub wake: Rc<Notify>,
    /// When it connected.
    pub connected_at: Duration,
}

/// The peers of one torrent on one core and their choker.
pub(super) struct TorrentCore {
    slots: Slots,
    choker: Choker<PeerKey>,
    peers: BTreeMap<PeerKey, PeerHandle>,
    snapshots: Vec<PeerSnapshot<PeerKey>>,
}

impl TorrentCore {
    /// No peers yet; `slots` regular unchoke slots on this core; `uplink`: this core's upload
    /// limit, if any (bytes per second, for [`Slots::Auto`]).
    pub fn new(slots: Slots, uplink: Option<u64>) -> Self {
        TorrentCore {
            slots,
            choker: seed_choker(slots, uplink),
            peers: BTreeMap::new(),
            snapshots: Vec::new(),
        }
    }

    /// New limits (a config re-read): with other slots, a fresh choker ranks the peers now
    /// and each peer is choked or unchoked to match it; no peer is closed.
    pub fn set_limits(&mut self, slots: Slots, uplink: Option<u64>, now: Duration) {
        self.choker.set_uplink(uplink);
        if slots == self.slots {
            return;
        }
        self.slots = slots;
        self.choker = seed_choker(slots, uplink);
        if slots != Slots::Unlimited {
            self.round(now);
        }
        for (key, p) in &self.peers {
            let mut s = p.shared.borrow_mut();
            let want = match slots {
                Slots::Unlimited => s.conn.peer_interested(),
                _ => self.choker.is_unchoked(key),
            };
            if want == s.conn.am_choking() {
                if want {
                    s.conn.unchoke();
                } else {
                    s.conn.choke();
                }
                p.wake.notify_one();
            }
        }
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
    }

    /// Forgets a peer that left; refills its slot at once if someone waits for one.
    pub fn remove(&mut self, key: PeerKey, now: Duration) {
        if self.peers.remove(&key).is_none() {
            return;
        }
        let held_slot = self.choker.is_unchoked(&key);
        self.choker.peer_left(&key);
        if held_slot {
            self.round_if_slot_free(now);
        }
    }

    /// A peer became interested or not interested.
    pub fn interest_changed(&mut self, key: PeerKey, interested: bool, now: Duration) {
        if !interested {
            return;
        }
        match self.slots {
            Slots::Unlimited => {
                if let Some(p) = self.peers.get(&key) {
                    p.shared.borrow_mut().conn.unchoke();
                    p.wake.notify_one();
                }
            }
            _ => self.round_if_slot_free(now),
        }
    }

    /// Runs a round now when fewer peers that still want data are unchoked than the slots
    /// (plus the optimistic one) and some choked peer is interested. A peer unchoked at the
    /// last round that has since lost interest (it completed) holds no slot here, so a
    /// newcomer does not wait up to a choke interval behind it (as `seedbox get` does, see
    /// [`Choker::has_free_slot`]).
    fn round_if_slot_free(&mut self, now: Duration) {
        if self.slots == Slots::Unlimited {
            return;
        }
        let peers = &self.peers;
        let room = self.choker.has_free_slot(|k| {
            peers.get(k).is_some_and(|p| {
                let s = p.shared.borrow();
                !s.closed && s.conn.peer_interested()
            })
        });
        if !room {
            return;
        }
        let waiting = self.peers.iter().any(|(_, p)| {
            let s = p.shared.borrow();
            s.conn.am_choking() && s.conn.peer_interested()
        });
        if waiting {
            self.round(now);
        }
    }

    /// Runs a regular round if one is due (limited slots only).
    pub fn tick(&mut self, now: Duration) {
        if self.slots != Slots::Unlimited
            && self.choker.next_round_due(now)
            && !self.peers.is_empty()
        {
            self.round(now);
        }
    }

    /// One choker round over this core's peers; sends the resulting chokes and unchokes.
    fn round(&mut self, now: Duration) {
        self.snapshots.clear();
        for (&key, p) in &self.peers {
            let s = p.shared.borrow();
            self.snapshots.push(PeerSnapshot {
                interested: s.conn.peer_interested(),
                upload_rate: s.up.rate(now),
                ..PeerSnapshot::new(key, p.connected_at)
            });
        }
        let changes = self
            .choker
            .round(now, &self.snapshots, &mut rand::thread_rng());
        for (keys, unchoke) in [(&changes.unchoke, true), (&changes.choke, false)] {
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
    }

    /// Ends every connection (the torrent stopped).
    pub fn close_all(&mut self) {
        for p in self.peers.values() {
            p.shared.borrow_mut().closed = true;
            p.wake.notify_one();
        }
    }
}

/// A seed-mode choker with `slots` regular slots and one optimistic unchoke.
fn seed_choker(slots: Slots, uplink: Option<u64>) -> Choker<PeerKey> {
    let mut choker = Choker::new(ChokerConfig {
        slots,
        optimistic: true,
    });
    choker.set_seeding(true);
    choker.set_uplink(uplink);
    choker
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::InfoHash;
    use crate::protocol::{ConnectionConfig, Handshake, Message, PeerId};
    use crate::swarm::{Bitfield, PieceGeometry};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn geometry() -> PieceGeometry {
        PieceGeometry::new(16384, 16384 * 8)
    }

    /// A handshaken peer, connected at `at`.
    fn peer(at: Duration) -> PeerHandle {
        let mut conn = Connection::new(ConnectionConfig::default(), geometry(), at);
        let theirs = Handshake::new(InfoHash([1; 20]), PeerId([2; 20]));
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
            connected_at: at,
        }
    }

    fn interested(tc: &mut TorrentCore, key: PeerKey, now: Duration) {
        let p = &tc.peers[&key];
        let ev = p
            .shared
            .borrow_mut()
            .conn
            .on_message(Message::Interested, &Bitfield::full(8), now)
            .unwrap();
        assert!(ev.is_some());
        tc.interest_changed(key, true, now);
    }

    fn unchoked(tc: &TorrentCore) -> Vec<PeerKey> {
        tc.peers
            .iter()
            .filter(|(_, p)| !p.shared.borrow().conn.am_choking())
            .map(|(k, _)| *k)
            .collect()
    }

    #[test]
    fn unlimited_unchokes_on_interest() {
        let mut tc = TorrentCore::new(Slots::Unlimited, None);
        for k in 0..5 {
            tc.add(k, peer(secs(0)));
        }
        assert!(unchoked(&tc).is_empty());
        for k in 0..5 {
            interested(&mut tc, k, secs(1));
        }
        assert_eq!(unchoked(&tc), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn free_slots_are_filled_at_once_then_rounds_rank_by_upload_rate() {
        // One regular slot plus the optimistic one.
        let mut tc = TorrentCore::new(Slots::Limited(1), None);
        for k in 0..4 {
            tc.add(k, peer(secs(0)));
        }
        for k in 0..4 {
            interested(&mut tc, k, secs(1));
        }
        assert_eq!(unchoked(&tc).len(), 2, "{:?}", unchoked(&tc));
        // Peer 3 becomes the fastest we upload to; the next round (10 s later) gives it the
        // regular slot.
        for s in 2..11 {
            tc.peers[&3]
                .shared
                .borrow_mut()
                .up
                .record(1_000_000, secs(s));
        }
        tc.tick(secs(5));
        assert_eq!(unchoked(&tc).len(), 2, "no round before 10 s");
        tc.tick(secs(11));
        assert!(unchoked(&tc).contains(&3), "{:?}", unchoked(&tc));
        assert_eq!(unchoked(&tc).len(), 2);
    }

    #[test]
    fn new_slots_apply_to_the_connected_peers_without_closing_any() {
        let mut tc = TorrentCore::new(Slots::Limited(1), None);
        for k in 0..4 {
            tc.add(k, peer(secs(0)));
            interested(&mut tc, k, secs(1));
        }
        assert_eq!(unchoked(&tc).len(), 2, "one slot and the optimistic one");
        tc.set_limits(Slots::Unlimited, None, secs(2));
        assert_eq!(unchoked(&tc), vec![0, 1, 2, 3]);
        tc.set_limits(Slots::Limited(2), None, secs(3));
        assert_eq!(unchoked(&tc).len(), 3, "two slots and the optimistic one");
        tc.set_limits(Slots::Limited(0), None, secs(4));
        assert_eq!(unchoked(&tc).len(), 1, "the optimistic one");
        assert_eq!(tc.len(), 4);
        assert!(tc.peers.values().all(|p| !p.shared.borrow().closed));
        // A newcomer under the new slots: no free slot, stays choked until a round.
        tc.add(9, peer(secs(5)));
        interested(&mut tc, 9, secs(5));
        assert_eq!(unchoked(&tc).len(), 1);
    }

    #[test]
    fn a_leaving_peer_frees_its_slot_at_once() {
        let mut tc = TorrentCore::new(Slots::Limited(1), None);
        for k in 0..3 {
            tc.add(k, peer(secs(0)));
            interested(&mut tc, k, secs(1));
        }
        let before = unchoked(&tc);
        assert_eq!(before.len(), 2);
        let waiting: Vec<_> = (0..3).filter(|k| !before.contains(k)).collect();
        tc.remove(before[0], secs(2));
        assert_eq!(unchoked(&tc).len(), 2);
        assert!(unchoked(&tc).contains(&waiting[0]));
    }

    #[test]
    fn peers_that_lost_interest_free_their_slot_for_a_newcomer() {
        // One regular slot plus the optimistic one, both taken.
        let mut tc = TorrentCore::new(Slots::Limited(1), None);
        for k in 0..2 {
            tc.add(k, peer(secs(0)));
            interested(&mut tc, k, secs(1));
        }
        assert_eq!(unchoked(&tc), vec![0, 1]);
        // Both complete (not interested any more) but stay connected; the next round is
        // 10 s away. A newcomer is unchoked at once.
        for k in 0..2 {
            let p = &tc.peers[&k];
            p.shared
                .borrow_mut()
                .conn
                .on_message(Message::NotInterested, &Bitfield::full(8), secs(2))
                .unwrap();
            tc.interest_changed(k, false, secs(2));
        }
        tc.add(2, peer(secs(3)));
        interested(&mut tc, 2, secs(3));
        assert!(unchoked(&tc).contains(&2), "{:?}", unchoked(&tc));
    }

    #[test]
    fn uninterested_peers_are_never_unchoked_and_close_all_closes() {
        let mut tc = TorrentCore::new(Slots::Limited(4), None);
        for k in 0..3 {
            tc.add(k, peer(secs(0)));
        }
        tc.tick(secs(0));
        tc.tick(secs(20));
        assert!(unchoked(&tc).is_empty());
        tc.close_all();
        assert!(tc.peers.values().all(|p| p.shared.borrow().closed));
    }
}
