//! The torrents a seed serves, shared read-only by every core.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::metainfo::{InfoHash, Torrent};
use crate::protocol::mse::skey_hash;
use crate::storage::MappedStorage;
use crate::swarm::{Bitfield, PieceGeometry};

/// What is known of a piece's data (with `--skip-check`, pieces are hashed on first request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceState {
    /// Not hashed yet: hash it before serving it.
    Unknown,
    /// Hashed and good: serve it.
    Good,
    /// Hashed and bad: never serve it.
    Bad,
}

/// A piece's pages are hinted `MADV_WILLNEED` at most this often: the hint walks the page
/// cache for every page of the piece even when all are cached, which cost about 5% of the
/// seed's time when it was given on every request for a piece's first block.
const WILL_NEED_EVERY: Duration = Duration::from_secs(30);

/// Whether a hint given at `last` (seconds on the engine clock plus one; 0: never) is due
/// again at `now` (seconds plus one).
fn will_need_due(last: u32, now: u32) -> bool {
    last == 0 || now.saturating_sub(last) as u64 >= WILL_NEED_EVERY.as_secs()
}

const UNKNOWN: u8 = 0;
const GOOD: u8 = 1;
const BAD: u8 = 2;

/// One core's counters for one torrent (its own cache line: only that core writes it).
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct TorrentCoreCounters {
    /// Payload bytes sent to this torrent's peers by this core.
    pub uploaded: AtomicU64,
    /// This core's connections to the torrent (published by the core about once a second).
    pub peers: AtomicU64,
    /// Of them, unchoked (published with `peers`).
    pub unchoked: AtomicU64,
}

/// A torrent's counters, one set per core, summed on read: the hot path adds to its own
/// core's set without a lock, and a torrent added or removed while serving carries its
/// counters with it.
#[derive(Debug)]
pub struct TorrentCounters {
    cores: Box<[TorrentCoreCounters]>,
}

impl TorrentCounters {
    /// Zeroed counters for `cores` cores.
    pub fn new(cores: usize) -> Self {
        TorrentCounters {
            cores: (0..cores.max(1))
                .map(|_| TorrentCoreCounters::default())
                .collect(),
        }
    }

    /// Core `core`'s counters (the last core's for an index out of range).
    pub fn core(&self, core: usize) -> &TorrentCoreCounters {
        &self.cores[core.min(self.cores.len() - 1)]
    }

    fn sum(&self, field: impl Fn(&TorrentCoreCounters) -> &AtomicU64) -> u64 {
        self.cores
            .iter()
            .map(|c| field(c).load(Ordering::Relaxed))
            .sum()
    }

    /// Payload bytes uploaded, over all cores.
    pub fn uploaded(&self) -> u64 {
        self.sum(|c| &c.uploaded)
    }

    /// Connected peers, over all cores.
    pub fn peers(&self) -> u64 {
        self.sum(|c| &c.peers)
    }

    /// Unchoked peers, over all cores.
    pub fn unchoked(&self) -> u64 {
        self.sum(|c| &c.unchoked)
    }
}

/// One torrent being seeded: its metadata, its mapped data, what is known of each piece, and
/// whether it was stopped (its files changed under the mapping, or it was removed).
pub struct SeedTorrent {
    /// The metainfo.
    pub torrent: Torrent,
    /// The data, mapped read-only.
    pub storage: MappedStorage,
    /// Piece and block sizes.
    pub geometry: PieceGeometry,
    /// Per-core counters (uploaded bytes, peers, unchoked peers), shared with the torrent's
    /// next incarnation when its data is re-checked.
    pub counters: Arc<TorrentCounters>,
    /// What we announce: every piece, bad ones refused on request, except for a torrent
    /// re-checked after its files changed ([`SeedTorrent::partial`]), which has those that
    /// verified.
    pub have: Bitfield,
    /// HASH('req2', info-hash): how an encrypted (MSE) handshake names the torrent.
    pub skey_hash: [u8; 20],
    /// The info dictionary, served to magnet-link clients (BEP 9) without a copy per peer.
    pub metadata: bytes::Bytes,
    /// Per piece, for a torrent not checked at start; `None` when every piece is known good.
    pieces: Option<Box<[AtomicU8]>>,
    /// Per piece: when its pages were last hinted `MADV_WILLNEED` (see [`will_need_due`]).
    advised: Box<[AtomicU32]>,
    stopped: AtomicBool,
    stop_reason: Mutex<Option<String>>,
    /// BEP 16 super-seeding, when on ([`SeedTorrent::super_seeding`]).
    pub super_seed: Option<super::super_seed::SuperSeeding>,
    /// BEP 11 peer exchange: the peers connected on every core at their listen addresses,
    /// touched when a peer's extension handshake arrives, when it leaves and once a minute
    /// per connection (never on the send path). `None` for a private torrent.
    pub pex: Option<Mutex<crate::protocol::pex::PexSwarm>>,
}

impl SeedTorrent {
    /// A torrent ready to serve on `cores` cores. `checked`: the caller hashed every piece and
    /// all are good; otherwise each piece is hashed on its first request
    /// ([`SeedTorrent::piece_state`]).
    pub fn new(torrent: Torrent, storage: MappedStorage, cores: usize, checked: bool) -> Self {
        Self::with_counters(
            torrent,
            storage,
            Arc::new(TorrentCounters::new(cores)),
            checked,
        )
    }

    /// [`SeedTorrent::new`] counting into existing `counters`.
    pub fn with_counters(
        torrent: Torrent,
        storage: MappedStorage,
        counters: Arc<TorrentCounters>,
        checked: bool,
    ) -> Self {
        let geometry = torrent.geometry();
        let torrent_private = torrent.private;
        let pieces = (!checked).then(|| {
            (0..geometry.piece_count())
                .map(|_| AtomicU8::new(UNKNOWN))
                .collect()
        });
        SeedTorrent {
            have: Bitfield::full(geometry.piece_count()),
            skey_hash: skey_hash(&torrent.info_hash.0),
            metadata: bytes::Bytes::from(torrent.info_bytes.clone()),
            torrent,
            storage,
            geometry,
            counters,
            pieces,
            advised: (0..geometry.piece_count())
                .map(|_| AtomicU32::new(0))
                .collect(),
            stopped: AtomicBool::new(false),
            stop_reason: Mutex::new(None),
            super_seed: None,
            pex: (!torrent_private).then(Mutex::default),
        }
    }

    /// Turns BEP 16 super-seeding on (`on`) or leaves it off: peers are shown a few pieces
    /// each, the next ones as those spread ([`crate::swarm::SuperSeed`]).
    pub fn super_seeding(mut self, on: bool) -> Self {
        self.super_seed =
            on.then(|| super::super_seed::SuperSeeding::new(self.geometry.piece_count()));
        self
    }

    /// A torrent of which only the pieces marked in `good` verified (a re-check after its
    /// files changed): it announces and serves those, and refuses the others.
    pub fn partial(
        torrent: Torrent,
        storage: MappedStorage,
        counters: Arc<TorrentCounters>,
        good: &[bool],
    ) -> Self {
        let mut seed = Self::with_counters(torrent, storage, counters, false);
        let mut have = Bitfield::new(seed.geometry.piece_count());
        if let Some(pieces) = &seed.pieces {
            for (piece, state) in pieces.iter().enumerate() {
                let ok = good.get(piece).copied().unwrap_or(false);
                state.store(if ok { GOOD } else { BAD }, Ordering::Relaxed);
                if ok {
                    have.set(piece as u32);
                }
            }
        }
        seed.have = have;
        seed
    }

    /// How many pieces are not served because they failed their check.
    pub fn unserved_pieces(&self) -> u32 {
        self.have.len() - self.have.count()
    }

    /// The info-hash.
    pub fn info_hash(&self) -> InfoHash {
        self.torrent.info_hash
    }

    /// What is known of `piece` (a relaxed atomic load; `Good` for a checked torrent).
    pub fn piece_state(&self, piece: u32) -> PieceState {
        let Some(p) = &self.pieces else {
            return PieceState::Good;
        };
        match p.get(piece as usize).map(|a| a.load(Ordering::Relaxed)) {
            Some(GOOD) => PieceState::Good,
            Some(BAD) | None => PieceState::Bad,
            Some(_) => PieceState::Unknown,
        }
    }

    /// Hashes `piece` (with `pread`, which cannot fault on a truncated file) and records the
    /// verdict. Two cores may hash the same piece at once; they agree.
    pub fn verify_piece(&self, piece: u32) -> PieceState {
        let Some(p) = &self.pieces else {
            return PieceState::Good;
        };
        let Some(slot) = p.get(piece as usize) else {
            return PieceState::Bad;
        };
        let good = self
            .storage
            .hash_piece_pread(piece)
            .is_some_and(|h| &h == self.torrent.piece_hash(piece));
        slot.store(if good { GOOD } else { BAD }, Ordering::Relaxed);
        if good {
            PieceState::Good
        } else {
            PieceState::Bad
        }
    }

    /// Hints that `piece` will be read soon (`MADV_WILLNEED`, which reads ahead what is not
    /// cached), unless it was hinted less than 30 s ago on the engine clock `now`.
    pub fn advise_will_need(&self, piece: u32, now: Duration) {
        let Some(slot) = self.advised.get(piece as usize) else {
            return;
        };
        let now = u32::try_from(now.as_secs()).unwrap_or(u32::MAX - 1) + 1;
        if will_need_due(slot.load(Ordering::Relaxed), now) {
            slot.store(now, Ordering::Relaxed);
            self.storage.advise_will_need(piece);
        }
    }

    /// Whether the torrent was stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Why the torrent was stopped.
    pub fn stop_reason(&self) -> Option<String> {
        self.stop_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops serving the torrent (its connections end at their next write) until
    /// [`SeedTorrent::restart`]; returns true for the call that stopped it.
    pub fn stop(&self, reason: String) -> bool {
        let mut why = self.stop_reason.lock().unwrap_or_else(|e| e.into_inner());
        let first = why.is_none();
        if first {
            *why = Some(reason);
        }
        self.stopped.store(true, Ordering::Relaxed);
        first
    }

    /// Stops the torrent (if it is not) with `reason` replacing any earlier one.
    pub fn stop_because(&self, reason: String) {
        let mut why = self.stop_reason.lock().unwrap_or_else(|e| e.into_inner());
        *why = Some(reason);
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Serves the torrent again after [`SeedTorrent::stop`].
    pub fn restart(&self) {
        let mut why = self.stop_reason.lock().unwrap_or_else(|e| e.into_inner());
        *why = None;
        self.stopped.store(false, Ordering::Relaxed);
    }

    /// Checks the files under the mapping ([`MappedStorage::check_files`]) and stops the
    /// torrent if one changed. Returns true when it was stopped by this call.
    pub fn check_files(&self) -> bool {
        if self.is_stopped() {
            return false;
        }
        match self.storage.check_files() {
            Ok(()) => false,
            Err(problem) => {
                let first = self.stop(problem.to_string());
                if first {
                    tracing::error!(
                        "{} ({}): stopped: {problem}",
                        self.torrent.name,
                        self.torrent.info_hash
                    );
                }
                first
            }
        }
    }
}

/// Torrents by info-hash, in the order added: the list the service keeps of what the engine
/// serves (each core keeps its own copy, updated through its command channel).
#[derive(Default)]
pub struct TorrentSet {
    torrents: Vec<Arc<SeedTorrent>>,
    by_hash: HashMap<InfoHash, usize>,
}

impl TorrentSet {
    /// An empty set.
    pub fn new() -> Self {
        TorrentSet::default()
    }

    /// Adds `torrent`; gives it back when its info-hash is already present.
    pub fn insert(&mut self, torrent: Arc<SeedTorrent>) -> Result<(), Arc<SeedTorrent>> {
        let hash = torrent.info_hash();
        if self.by_hash.contains_key(&hash) {
            return Err(torrent);
        }
        self.by_hash.insert(hash, self.torrents.len());
        self.torrents.push(torrent);
        Ok(())
    }

    /// Removes the torrent with this info-hash; the others keep their order.
    pub fn remove(&mut self, info_hash: &InfoHash) -> Option<Arc<SeedTorrent>> {
        let i = self.by_hash.remove(info_hash)?;
        let t = self.torrents.remove(i);
        for slot in self.by_hash.values_mut() {
            if *slot > i {
                *slot -= 1;
            }
        }
        Some(t)
    }

    /// The torrent with this info-hash.
    pub fn get(&self, info_hash: &InfoHash) -> Option<&Arc<SeedTorrent>> {
        self.by_hash.get(info_hash).map(|&i| &self.torrents[i])
    }

    /// All torrents, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<SeedTorrent>> {
        self.torrents.iter()
    }

    /// How many torrents.
    pub fn len(&self) -> usize {
        self.torrents.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.torrents.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn will_need_is_hinted_at_most_every_30_s() {
        assert!(will_need_due(0, 1), "never hinted");
        assert!(!will_need_due(1, 1));
        assert!(!will_need_due(1, 30));
        assert!(will_need_due(1, 31));
        assert!(!will_need_due(40, 5), "a clock behind is not due");
    }
}
