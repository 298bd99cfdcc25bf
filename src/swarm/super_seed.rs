//! BEP 16 super-seeding, sans-IO: which pieces an initial seed reveals to which peer.
//!
//! A super-seed hides that it is a seed: each peer is told (with `have`) of a few pieces only,
//! the rarest among the peers (fewest holders, fewest peers already given them), so that every
//! piece leaves the origin about once. A peer's revealed piece is *released*, and the next one
//! revealed to it, when the piece is seen spreading: another peer announces it (BEP 16's
//! rule). Two guards keep a peer from waiting forever: a peer that completed its piece when no
//! other connected leecher lacks it is released at once, and one that completed it (its `have`,
//! or `not interested` once it holds every piece it was told of) is released after
//! [`SuperSeedConfig::patience`] even if the piece did not spread.
//!
//! Like libtorrent, two pieces are revealed at a time by default (one at a time leaves a fast
//! peer idle for a round trip after each piece). Pieces once told stay told: the peer may
//! request them whenever it likes.
//!
//! The caller sends an empty availability at the handshake (`have none` with the Fast
//! extension, or no bitfield), feeds each peer's availability messages and disconnects in, and
//! after each call sends the reveals of [`SuperSeed::woken`] peers ([`SuperSeed::take_reveals`])
//! as `have` messages.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Duration;

use super::Bitfield;

/// Pieces revealed to a peer at once (libtorrent's two).
pub const SUPER_SEED_REVEALS: u32 = 2;
/// How long a peer that completed its revealed piece waits for it to spread before it is
/// shown the next one anyway.
pub const SUPER_SEED_PATIENCE: Duration = Duration::from_secs(20);
/// How often a super-seed lets pieces that did not spread go ([`SuperSeed::on_tick`]) when
/// no event came.
pub const SUPER_SEED_TICK: Duration = Duration::from_secs(2);

/// Settings of a [`SuperSeed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuperSeedConfig {
    /// Pieces revealed to a peer and not yet seen spreading, at most (at least 1).
    pub reveals_per_peer: u32,
    /// See [`SUPER_SEED_PATIENCE`].
    pub patience: Duration,
}

impl Default for SuperSeedConfig {
    fn default() -> Self {
        SuperSeedConfig {
            reveals_per_peer: SUPER_SEED_REVEALS,
            patience: SUPER_SEED_PATIENCE,
        }
    }
}

/// A piece revealed to a peer and not yet released.
#[derive(Clone, Copy, Debug)]
struct Current {
    piece: u32,
    /// When the peer was seen holding it.
    done_at: Option<Duration>,
}

#[derive(Debug)]
struct PeerState {
    have: Bitfield,
    /// Every piece ever revealed to the peer.
    told: Bitfield,
    current: Vec<Current>,
    /// Reveals not yet taken by the caller.
    pending: Vec<u32>,
    /// Has every piece (announced so, or completed): given nothing, counted nowhere.
    seed: bool,
}

/// The super-seeding state of one torrent over all its peers (see the module documentation).
#[derive(Debug)]
pub struct SuperSeed<K> {
    config: SuperSeedConfig,
    pieces: u32,
    /// Per piece: connected leechers (not seeds) holding it.
    availability: Vec<u32>,
    /// Per piece: peers it is currently revealed to and not released from.
    assigned: Vec<u32>,
    /// Per piece: times it was revealed.
    revealed: Vec<u32>,
    leechers: u32,
    peers: HashMap<K, PeerState>,
    /// Peers holding a completed, unreleased piece (checked by [`SuperSeed::on_tick`]).
    waiting: BTreeSet<K>,
    woken: Vec<K>,
    /// Where the next search for the rarest piece starts, so that ties spread over the pieces.
    cursor: u32,
}

impl<K: Copy + Eq + Hash + Ord> SuperSeed<K> {
    /// Super-seeding of a torrent of `pieces` pieces, no peer yet.
    pub fn new(pieces: u32, config: SuperSeedConfig) -> Self {
        let n = pieces as usize;
        SuperSeed {
            config: SuperSeedConfig {
                reveals_per_peer: config.reveals_per_peer.max(1),
                ..config
            },
            pieces,
            availability: vec![0; n],
            assigned: vec![0; n],
            revealed: vec![0; n],
            leechers: 0,
            peers: HashMap::new(),
            waiting: BTreeSet::new(),
            woken: Vec::new(),
            cursor: 0,
        }
    }

    /// A peer connected (its handshake done): it is revealed its first pieces.
    pub fn add_peer(&mut self, key: K) {
        if self.peers.contains_key(&key) {
            return;
        }
        self.peers.insert(
            key,
            PeerState {
                have: Bitfield::new(self.pieces),
                told: Bitfield::new(self.pieces),
                current: Vec::new(),
                pending: Vec::new(),
                seed: false,
            },
        );
        self.leechers += 1;
        self.refill(key);
    }

    /// The peer's whole availability arrived (bitfield, have all, have none).
    pub fn on_bitfield(&mut self, key: K, have: &Bitfield, now: Duration) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        if p.seed || have.len() != self.pieces {
            return;
        }
        for piece in have.ones() {
            self.on_have(key, piece, now);
        }
    }

    /// The peer announced `piece` (or its bitfield holds it).
    pub fn on_have(&mut self, key: K, piece: u32, now: Duration) {
        if piece >= self.pieces {
            return;
        }
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.seed || !p.have.set(piece) {
            return;
        }
        self.availability[piece as usize] += 1;
        if p.have.is_full() {
            self.become_seed(key);
        } else {
            if let Some(c) = p.current.iter_mut().find(|c| c.piece == piece) {
                c.done_at.get_or_insert(now);
                self.waiting.insert(key);
            }
            // Nobody left to pass it to: the next piece at once.
            if p.current.iter().any(|c| c.piece == piece) && self.lacked_by_others(piece) == 0 {
                self.release(key, piece);
            }
        }
        // BEP 16: a piece announced by one peer has spread from those it was revealed to.
        let mut holders: Vec<K> = self
            .peers
            .iter()
            .filter(|(k, s)| **k != key && s.current.iter().any(|c| c.piece == piece))
            .map(|(k, _)| *k)
            .collect();
        // In key order, not the map's: the same events give the same reveals (the
        // simulator's runs are reproducible).
        holders.sort_unstable();
        for k in holders {
            self.release(k, piece);
        }
    }

    /// The peer said it is not interested: it holds every piece it was told of.
    pub fn on_not_interested(&mut self, key: K, now: Duration) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        if p.seed {
            return;
        }
        let told: Vec<u32> = p.told.ones().filter(|&i| !p.have.has(i)).collect();
        for piece in told {
            self.on_have(key, piece, now);
        }
    }

    /// The peer disconnected: its pieces no longer count, its revealed ones go back to the
    /// pool, and peers waiting for a piece to spread to nobody else are released.
    pub fn remove_peer(&mut self, key: K) {
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        self.waiting.remove(&key);
        for c in &p.current {
            self.assigned[c.piece as usize] -= 1;
        }
        if !p.seed {
            self.leechers -= 1;
            for piece in p.have.ones() {
                self.availability[piece as usize] -= 1;
            }
        }
        let waiting: Vec<K> = self.waiting.iter().copied().collect();
        for k in waiting {
            let done: Vec<u32> = self.peers[&k]
                .current
                .iter()
                .filter(|c| c.done_at.is_some())
                .map(|c| c.piece)
                .collect();
            for piece in done {
                if self.lacked_by_others(piece) == 0 {
                    self.release(k, piece);
                }
            }
        }
    }

    /// Releases pieces completed at least [`SuperSeedConfig::patience`] ago that did not
    /// spread.
    pub fn on_tick(&mut self, now: Duration) {
        let waiting: Vec<K> = self.waiting.iter().copied().collect();
        for k in waiting {
            let due: Vec<u32> = self.peers[&k]
                .current
                .iter()
                .filter(|c| c.done_at.is_some_and(|t| now >= t + self.config.patience))
                .map(|c| c.piece)
                .collect();
            for piece in due {
                self.release(k, piece);
            }
        }
    }

    /// Peers with reveals to send since the last call (each once), oldest first.
    pub fn woken(&mut self) -> std::vec::Drain<'_, K> {
        self.woken.drain(..)
    }

    /// The pieces to announce to the peer now (as `have` messages).
    pub fn take_reveals(&mut self, key: K) -> Vec<u32> {
        self.peers
            .get_mut(&key)
            .map(|p| std::mem::take(&mut p.pending))
            .unwrap_or_default()
    }

    /// Whether the peer was ever told of `piece`.
    pub fn told(&self, key: K, piece: u32) -> bool {
        self.peers.get(&key).is_some_and(|p| p.told.has(piece))
    }

    /// The pieces currently revealed to the peer and not released.
    pub fn current(&self, key: K) -> Vec<u32> {
        self.peers
            .get(&key)
            .map(|p| p.current.iter().map(|c| c.piece).collect())
            .unwrap_or_default()
    }

    /// Reveals made so far, over all peers and pieces.
    pub fn reveals(&self) -> u64 {
        self.revealed.iter().map(|&n| u64::from(n)).sum()
    }

    /// Connected leechers other than a holder that lack `piece`.
    fn lacked_by_others(&self, piece: u32) -> u32 {
        self.leechers - self.availability[piece as usize]
    }

    fn become_seed(&mut self, key: K) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.seed = true;
        self.leechers -= 1;
        for piece in p.have.ones() {
            self.availability[piece as usize] -= 1;
        }
        for c in p.current.drain(..) {
            self.assigned[c.piece as usize] -= 1;
        }
        self.waiting.remove(&key);
    }

    /// Frees `piece` of the peer's revealed set and reveals the next one.
    fn release(&mut self, key: K, piece: u32) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(i) = p.current.iter().position(|c| c.piece == piece) else {
            return;
        };
        p.current.swap_remove(i);
        self.assigned[piece as usize] -= 1;
        if !p.current.iter().any(|c| c.done_at.is_some()) {
            self.waiting.remove(&key);
        }
        self.refill(key);
    }

    /// Reveals pieces to the peer until it holds its share, rarest first.
    fn refill(&mut self, key: K) {
        let n = self.pieces;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let mut woke = false;
        while !p.seed && (p.current.len() as u32) < self.config.reveals_per_peer {
            let mut best: Option<(u32, u32)> = None;
            for j in 0..n {
                let i = (self.cursor + j) % n;
                if p.have.has(i) || p.told.has(i) {
                    continue;
                }
                let score = self.availability[i as usize] + self.assigned[i as usize];
                if best.map_or(true, |(s, _)| score < s) {
                    best = Some((score, i));
                    if score == 0 {
                        break;
                    }
                }
            }
            let Some((_, piece)) = best else {
                break;
            };
            self.cursor = (piece + 1) % n.max(1);
            p.told.set(piece);
            p.current.push(Current {
                piece,
                done_at: None,
            });
            p.pending.push(piece);
            self.assigned[piece as usize] += 1;
            self.revealed[piece as usize] += 1;
            woke = true;
        }
        if woke && !self.woken.contains(&key) {
            self.woken.push(key);
        }
    }
}

#[cfg(test)]
mod tests;
