//! The piece picker, sans-IO: which blocks to request from which peer.
//!
//! It tracks how many peers have each piece (bitfield, `have`, `have all`, `have none`,
//! departures), the pieces we have, and the per-block state of partial pieces (not requested,
//! requested by whom, received from whom). [`Picker::pick`] chooses blocks for one peer:
//!
//! 1. blocks of partial pieces first (finish what is started before starting anything new);
//! 2. new pieces by [`Strategy`]: rarest first with random tie-breaking (the first
//!    [`PickerConfig::random_first`] pieces at random, so a newcomer gets something to trade
//!    quickly), or sequential, or random;
//! 3. end game: once every missing block is requested, blocks already requested from other
//!    peers are requested again; [`Picker::block_received`] then names the peers to cancel.
//!
//! A piece that failed its hash check is fetched again from a single peer (the first to be
//! given one of its blocks owns the rest, and no end-game duplicate goes elsewhere), so a
//! second failure names the culprit; the owner gives it up by leaving or once none of its
//! requests for the piece is outstanding (choked, rejected, timed out).
//!
//! Rarest first never sorts: pieces live in availability buckets updated in O(1) per change
//! (see `availability.rs`). Peers that have everything ("seeds") are counted apart, which
//! leaves the order untouched and makes `have all` O(1).
//!
//! Choosing a new piece never scans piece by piece: the picker keeps a word bitmap of the
//! pieces that cannot be started (had, or already partial), so the pieces a peer could give us
//! are `peer_has & !blocked`, 64 at a time. A peer with nothing to start costs O(pieces / 64)
//! (the common case in a flash crowd, asked again on every block received); rarest first walks
//! the buckets only while that is cheaper than looking at each candidate's availability, and
//! otherwise takes the least available candidate directly (both give a piece of the lowest
//! availability the peer can serve, ties broken at random).

use rand::seq::SliceRandom;
use rand::Rng;

use super::availability::{piece_bit, Availability};
use super::{Bitfield, BlockRef, PieceGeometry, BLOCK_SIZE};

/// How new pieces are chosen.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Strategy {
    /// Rarest first, ties broken at random; the first few pieces at random.
    #[default]
    RarestFirst,
    /// Lowest piece index first (streaming; poor for swarm health).
    Sequential,
    /// Uniformly random.
    Random,
}

/// Picker settings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PickerConfig {
    /// How new pieces are chosen.
    pub strategy: Strategy,
    /// Under [`Strategy::RarestFirst`], pick new pieces at random until we have this many.
    pub random_first: u32,
}

impl Default for PickerConfig {
    fn default() -> Self {
        PickerConfig {
            strategy: Strategy::RarestFirst,
            random_first: 4,
        }
    }
}

/// A peer announcement the picker cannot use; the caller should drop the peer.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PickerError {
    /// A bitfield covering the wrong number of pieces.
    #[error("bitfield covers {got} pieces, the torrent has {expected}")]
    BitfieldLength {
        /// Pieces in the torrent.
        expected: u32,
        /// Pieces the bitfield covers.
        got: u32,
    },
    /// A `have` naming a piece past the end of the torrent.
    #[error("have for piece {piece}, the torrent has {count} pieces")]
    PieceOutOfRange {
        /// The piece named.
        piece: u32,
        /// Pieces in the torrent.
        count: u32,
    },
    /// A second bitfield / have-all / have-none from the same peer.
    #[error("peer announced its pieces twice")]
    DuplicateAnnouncement,
}

/// What a received block means, from [`Picker::block_received`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlockReceived<K> {
    /// False when the block was useless: a duplicate, a piece we have, or not a block of this
    /// torrent's geometry. Such data must not be written.
    pub fresh: bool,
    /// True when this block completed its piece: hash it, then call
    /// [`Picker::piece_verified`] or [`Picker::piece_failed`].
    pub piece_complete: bool,
    /// Other peers this block is still requested from: send them a `cancel`.
    pub cancel: Vec<K>,
}

/// State of one block of a partial piece.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Block<K> {
    Open,
    /// Requested; `K` is the first requester, end-game extras live in `Partial::extra`.
    Requested(K),
    /// Received from `K`, awaiting the piece's hash check.
    Received(K),
}

/// A piece with at least one block requested or received.
#[derive(Clone, Debug)]
struct Partial<K> {
    piece: u32,
    blocks: Vec<Block<K>>,
    /// End-game duplicate requests: (block index, requester).
    extra: Vec<(u32, K)>,
    open: u32,
    received: u32,
    /// A piece being fetched again after a failed hash check: only `owner` is given its
    /// blocks.
    exclusive: bool,
    /// The one peer given the blocks of an exclusive piece (`None`: the next to ask).
    owner: Option<K>,
}

impl<K: Copy + Eq> Partial<K> {
    /// Whether `peer` may be given open blocks of this piece.
    fn open_to(&self, peer: K) -> bool {
        !self.exclusive || !matches!(self.owner, Some(o) if o != peer)
    }

    /// An exclusive piece's owner with no request of it outstanding gives it up.
    fn release_owner_if_idle(&mut self, peer: K) {
        if self.exclusive
            && self.owner == Some(peer)
            && !self.blocks.contains(&Block::Requested(peer))
        {
            self.owner = None;
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct PeerEntry {
    announced: bool,
    seed: bool,
}

/// A caller's peer key as the picker needs it: a small integer that indexes the picker's
/// per-peer table. Callers reuse the keys of peers that left (as the driver's slab does), so
/// the table stays as long as the most peers connected at once.
pub trait PeerIndex: Copy + Eq {
    /// The key as an index.
    fn index(self) -> usize;
}

impl PeerIndex for u32 {
    fn index(self) -> usize {
        self as usize
    }
}

impl PeerIndex for u64 {
    fn index(self) -> usize {
        self as usize
    }
}

impl PeerIndex for usize {
    fn index(self) -> usize {
        self
    }
}

const NO_SLOT: u32 = u32::MAX;

/// Whether piece `p` is set in `words` (laid out as in [`piece_bit`]).
fn has_bit(words: &[u64], p: u32) -> bool {
    let (w, bit) = piece_bit(p);
    words[w] & bit != 0
}

/// The piece picker of one torrent, generic over the caller's peer key.
#[derive(Clone, Debug)]
pub struct Picker<K> {
    geometry: PieceGeometry,
    config: PickerConfig,
    have: Bitfield,
    avail: Availability,
    /// Peers that have every piece, counted apart from `avail`.
    seeds: u32,
    /// Indexed by the caller's peer keys ([`PeerIndex`]): one load per `have`.
    peers: Vec<PeerEntry>,
    partials: Vec<Partial<K>>,
    /// How many of `partials` have open blocks (often none when pieces are one block each, so
    /// picking need not walk every outstanding request).
    open_partials: usize,
    /// Per piece: index into `partials`, or `NO_SLOT`.
    slot: Vec<u32>,
    /// Blocks of pieces we lack that are neither requested nor received.
    unrequested: u64,
    /// Sequential strategy: every piece below it is had or started.
    seq_cursor: u32,
    /// Pieces that cannot be started: had or partial. A word bitmap laid out as the wire bytes
    /// read little-endian (see [`piece_bit`]), so that a peer's bitfield is combined with it
    /// by plain loads.
    blocked: Vec<u64>,
    /// Reused buffer for the tied rarest candidates.
    ties: Vec<u32>,
    /// Reused buffer: the pieces the peer being served could start, laid out as `blocked`.
    cand: Vec<u64>,
    /// Pieces that failed their hash check and are to be fetched again from one peer.
    single_source: std::collections::HashSet<u32, rustc_hash::FxBuildHasher>,
}

impl<K: PeerIndex> Picker<K> {
    /// A picker for a torrent of `geometry` of which we have nothing yet. `rng` shuffles the
    /// initial order, which seeds the random tie-breaking of rarest first.
    pub fn new<R: Rng + ?Sized>(
        geometry: PieceGeometry,
        config: PickerConfig,
        rng: &mut R,
    ) -> Self {
        let n = geometry.piece_count();
        let mut order: Vec<u32> = (0..n).collect();
        order.shuffle(rng);
        let unrequested = (0..n).map(|p| u64::from(geometry.block_count(p))).sum();
        Picker {
            geometry,
            config,
            have: Bitfield::new(n),
            avail: Availability::new(order),
            seeds: 0,
            peers: Vec::new(),
            partials: Vec::new(),
            open_partials: 0,
            slot: vec![NO_SLOT; n as usize],
            unrequested,
            seq_cursor: 0,
            blocked: vec![0; (n as usize).div_ceil(64)],
            ties: Vec::new(),
            cand: Vec::new(),
            single_source: Default::default(),
        }
    }

    /// The torrent's geometry.
    pub fn geometry(&self) -> &PieceGeometry {
        &self.geometry
    }

    /// The pieces we have (verified).
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Whether we have every piece.
    pub fn is_complete(&self) -> bool {
        self.have.is_full()
    }

    /// How many connected peers have `piece` (0 when out of range).
    pub fn availability(&self, piece: u32) -> u32 {
        if piece >= self.geometry.piece_count() {
            return 0;
        }
        self.avail.count(piece) + self.seeds
    }

    /// Whether every missing block is requested (or received): new requests duplicate others.
    pub fn in_end_game(&self) -> bool {
        self.unrequested == 0 && !self.is_complete()
    }

    /// Blocks of missing pieces that are neither requested nor received.
    pub fn unrequested_blocks(&self) -> u64 {
        self.unrequested
    }

    /// Number of pieces with requested or received blocks that are not verified yet.
    pub fn partial_pieces(&self) -> usize {
        self.partials.len()
    }

    /// Whether a peer with `peer_has` has any piece we lack (we should be interested).
    pub fn is_interesting(&self, peer_has: &Bitfield) -> bool {
        peer_has.len() == self.have.len()
            && peer_has
                .words()
                .zip(self.have.words())
                .any(|(p, h)| p & !h != 0)
    }

    /// How many pieces a peer with `peer_has` has that we lack: non-zero exactly when it
    /// [`is_interesting`](Picker::is_interesting) (0 for a bitfield of the wrong length).
    pub fn missing_from(&self, peer_has: &Bitfield) -> u32 {
        if peer_has.len() != self.have.len() {
            return 0;
        }
        peer_has
            .words()
            .zip(self.have.words())
            .map(|(p, h)| (p & !h).count_ones())
            .sum()
    }

    /// The table entry of `peer`, grown to hold it.
    fn entry(&mut self, peer: K) -> &mut PeerEntry {
        let i = peer.index();
        if i >= self.peers.len() {
            self.peers.resize(i + 1, PeerEntry::default());
        }
        &mut self.peers[i]
    }

    fn announce(&mut self, peer: K) -> Result<&mut PeerEntry, PickerError> {
        let entry = self.entry(peer);
        if entry.announced {
            return Err(PickerError::DuplicateAnnouncement);
        }
        entry.announced = true;
        Ok(entry)
    }

    /// `peer` sent its bitfield. A full bitfield counts the peer as a seed (O(1)).
    pub fn peer_bitfield(&mut self, peer: K, bitfield: &Bitfield) -> Result<(), PickerError> {
        let expected = self.geometry.piece_count();
        if bitfield.len() != expected {
            return Err(PickerError::BitfieldLength {
                expected,
                got: bitfield.len(),
            });
        }
        let full = bitfield.is_full();
        self.announce(peer)?.seed = full;
        if full {
            self.seeds += 1;
        } else {
            for p in bitfield.ones() {
                self.avail.increment(p);
            }
        }
        Ok(())
    }

    /// `peer` sent `have all` (BEP 6): counted as a seed, O(1).
    pub fn peer_have_all(&mut self, peer: K) -> Result<(), PickerError> {
        self.announce(peer)?.seed = true;
        self.seeds += 1;
        Ok(())
    }

    /// `peer` sent `have none` (BEP 6).
    pub fn peer_have_none(&mut self, peer: K) -> Result<(), PickerError> {
        self.announce(peer)?;
        Ok(())
    }

    /// `peer` sent `have piece`. Call only when the peer's bitfield did not have it yet (a
    /// repeated `have` would count twice). Ignored for a peer counted as a seed.
    pub fn peer_have(&mut self, peer: K, piece: u32) -> Result<(), PickerError> {
        let count = self.geometry.piece_count();
        if piece >= count {
            return Err(PickerError::PieceOutOfRange { piece, count });
        }
        let entry = self.entry(peer);
        // A peer may send `have` without a bitfield when it started with nothing.
        entry.announced = true;
        if !entry.seed {
            self.avail.increment(piece);
        }
        Ok(())
    }

    /// `peer` disconnected; `peer_has` is its final bitfield (what was announced to the picker).
    /// Its availability is withdrawn and its outstanding requests are released.
    pub fn peer_left(&mut self, peer: K, peer_has: &Bitfield) {
        let left = self.peers.get_mut(peer.index()).map(std::mem::take);
        if let Some(entry) = left.filter(|e| e.announced) {
            if entry.seed {
                self.seeds = self.seeds.saturating_sub(1);
            } else if peer_has.len() == self.geometry.piece_count() {
                for p in peer_has.ones() {
                    self.avail.decrement(p);
                }
            }
        }
        for i in 0..self.partials.len() {
            let part = &mut self.partials[i];
            let was_open = part.open > 0;
            let mut released = 0;
            let mut idx = 0;
            while idx < part.blocks.len() {
                if part.blocks[idx] == Block::Requested(peer) {
                    // Promote an end-game duplicate requester, if any.
                    if let Some(e) = part.extra.iter().position(|&(b, _)| b == idx as u32) {
                        let (_, other) = part.extra.swap_remove(e);
                        part.blocks[idx] = Block::Requested(other);
                    } else {
                        part.blocks[idx] = Block::Open;
                        part.open += 1;
                        released += 1;
                    }
                }
                idx += 1;
            }
            part.extra.retain(|&(_, k)| k != peer);
            if part.owner == Some(peer) {
                part.owner = None;
            }
            if !was_open && part.open > 0 {
                self.open_partials += 1;
            }
            self.unrequested += released;
        }
    }

    /// Our request for `block` to `peer` was rejected (BEP 6) or timed out: release it so
    /// another peer can be asked.
    pub fn request_rejected(&mut self, block: BlockRef, peer: K) {
        let Some((slot, idx)) = self.locate(block) else {
            return;
        };
        let part = &mut self.partials[slot];
        if let Some(e) = part.extra.iter().position(|&x| x == (idx, peer)) {
            part.extra.swap_remove(e);
            return;
        }
        if part.blocks[idx as usize] == Block::Requested(peer) {
            if let Some(e) = part.extra.iter().position(|&(b, _)| b == idx) {
                let (_, other) = part.extra.swap_remove(e);
                part.blocks[idx as usize] = Block::Requested(other);
            } else {
                part.blocks[idx as usize] = Block::Open;
                part.open += 1;
                if part.open == 1 {
                    self.open_partials += 1;
                }
                self.unrequested += 1;
            }
            part.release_owner_if_idle(peer);
        }
    }

    /// Same as [`Picker::request_rejected`]: the request is given up.
    pub fn request_timed_out(&mut self, block: BlockRef, peer: K) {
        self.request_rejected(block, peer);
    }

    /// Index of the partial holding `block` and the block's index, when `block` is exactly a
    /// block of a partial piece.
    fn locate(&self, block: BlockRef) -> Option<(usize, u32)> {
        let idx = self.block_index(block)?;
        let slot = *self.slot.get(block.piece as usize)?;
        (slot != NO_SLOT).then_some((slot as usize, idx))
    }

    /// The block's index in its piece, when it matches the geometry exactly.
    fn block_index(&self, block: BlockRef) -> Option<u32> {
        if block.offset % BLOCK_SIZE != 0 {
            return None;
        }
        let idx = block.offset / BLOCK_SIZE;
        (idx < self.geometry.block_count(block.piece)
            && self.geometry.block(block.piece, idx) == block)
            .then_some(idx)
    }

    /// `block` arrived from `from`. Returns whether to keep it, whether its piece is now
    /// complete, and which other peers to cancel it at.
    pub fn block_received(&mut self, block: BlockRef, from: K) -> BlockReceived<K> {
        let mut out = BlockReceived {
            fresh: false,
            piece_complete: false,
            cancel: Vec::new(),
        };
        let Some(idx) = self.block_index(block) else {
            return out;
        };
        if self.have.has(block.piece) {
            return out;
        }
        let slot = self.partial_slot(block.piece);
        let part = &mut self.partials[slot];
        match part.blocks[idx as usize] {
            Block::Received(_) => {
                // A late duplicate: its other requesters were cancelled already.
                part.extra.retain(|&x| x != (idx, from));
                return out;
            }
            Block::Open => {
                part.open -= 1;
                if part.open == 0 {
                    self.open_partials -= 1;
                }
                self.unrequested -= 1;
            }
            Block::Requested(first) => {
                if first != from {
                    out.cancel.push(first);
                }
            }
        }
        part.extra.retain(|&(b, k)| {
            if b == idx {
                if k != from {
                    out.cancel.push(k);
                }
                false
            } else {
                true
            }
        });
        part.blocks[idx as usize] = Block::Received(from);
        part.received += 1;
        out.fresh = true;
        out.piece_complete = part.received as usize == part.blocks.len();
        out
    }

    /// The partial of `piece`, created (all blocks open) when missing.
    fn partial_slot(&mut self, piece: u32) -> usize {
        let slot = self.slot[piece as usize];
        if slot != NO_SLOT {
            return slot as usize;
        }
        let blocks = self.geometry.block_count(piece);
        self.set_blocked(piece, true);
        self.slot[piece as usize] = self.partials.len() as u32;
        self.open_partials += 1;
        self.partials.push(Partial {
            piece,
            blocks: vec![Block::Open; blocks as usize],
            extra: Vec::new(),
            open: blocks,
            received: 0,
            exclusive: !self.single_source.is_empty() && self.single_source.contains(&piece),
            owner: None,
        });
        self.partials.len() - 1
    }

    fn drop_partial(&mut self, piece: u32) -> Option<Partial<K>> {
        let slot = self.slot[piece as usize];
        if slot == NO_SLOT {
            return None;
        }
        self.slot[piece as usize] = NO_SLOT;
        if !self.have.has(piece) {
            self.set_blocked(piece, false);
        }
        let part = self.partials.swap_remove(slot as usize);
        if part.open > 0 {
            self.open_partials -= 1;
        }
        if let Some(moved) = self.partials.get(slot as usize) {
            self.slot[moved.piece as usize] = slot;
        }
        Some(part)
    }

    /// `piece` passed its hash check (or was found complete on disk at startup): we have it.
    pub fn piece_verified(&mut self, piece: u32) {
        if piece >= self.geometry.piece_count() || !self.have.set(piece) {
            return;
        }
        self.set_blocked(piece, true);
        let open = match self.drop_partial(piece) {
            Some(part) => u64::from(part.open),
            None => u64::from(self.geometry.block_count(piece)),
        };
        self.unrequested -= open;
        self.avail.remove(piece);
        if !self.single_source.is_empty() {
            self.single_source.remove(&piece);
        }
    }

    /// Whether `piece` failed its hash check and is being fetched again from one peer.
    pub fn is_single_source(&self, piece: u32) -> bool {
        self.single_source.contains(&piece)
    }

    /// `piece` failed its hash check: every block goes back to not requested so it is fetched
    /// again, from a single peer. Returns the peers that sent its blocks (one of them sent bad
    /// data).
    pub fn piece_failed(&mut self, piece: u32) -> Vec<K> {
        let mut senders = Vec::new();
        if piece >= self.geometry.piece_count() || self.have.has(piece) {
            return senders;
        }
        self.single_source.insert(piece);
        if let Some(part) = self.drop_partial(piece) {
            for b in &part.blocks {
                match *b {
                    Block::Open => {}
                    Block::Requested(_) => self.unrequested += 1,
                    Block::Received(k) => {
                        self.unrequested += 1;
                        if !senders.contains(&k) {
                            senders.push(k);
                        }
                    }
                }
            }
        }
        self.seq_cursor = self.seq_cursor.min(piece);
        senders
    }

    /// Chooses up to `max_blocks` blocks to request from `peer`, which has `peer_has`, and
    /// marks them requested by it. Never a piece the peer lacks or we have; never a block
    /// already requested from this peer.
    pub fn pick<R: Rng + ?Sized>(
        &mut self,
        peer: K,
        peer_has: &Bitfield,
        max_blocks: usize,
        rng: &mut R,
    ) -> Vec<BlockRef> {
        let mut out = Vec::new();
        self.pick_into(peer, peer_has, max_blocks, rng, &mut out);
        out
    }

    /// [`Picker::pick`] appending to a caller-owned buffer (no allocation once it is warm).
    pub fn pick_into<R: Rng + ?Sized>(
        &mut self,
        peer: K,
        peer_has: &Bitfield,
        max_blocks: usize,
        rng: &mut R,
        out: &mut Vec<BlockRef>,
    ) {
        if peer_has.len() != self.geometry.piece_count() || max_blocks == 0 {
            return;
        }
        let target = out.len() + max_blocks;
        // 1. Finish partial pieces (none become open meanwhile: stop after the last open one).
        let open = self.open_partials;
        let mut seen = 0;
        for i in 0..self.partials.len() {
            if out.len() >= target {
                return;
            }
            if seen == open {
                break;
            }
            if self.partials[i].open > 0 {
                seen += 1;
                if peer_has.has(self.partials[i].piece) {
                    self.request_open(i, peer, target, out);
                }
            }
        }
        // 2. Start new pieces.
        while out.len() < target && self.unrequested > 0 {
            let Some(piece) = self.next_new_piece(peer_has, rng) else {
                break;
            };
            let slot = self.partial_slot(piece);
            self.request_open(slot, peer, target, out);
        }
        // 3. End game: duplicate requests already sent to other peers.
        if out.len() < target && self.in_end_game() {
            self.pick_end_game(peer, peer_has, target, out);
        }
    }

    fn request_open(&mut self, slot: usize, peer: K, target: usize, out: &mut Vec<BlockRef>) {
        let part = &mut self.partials[slot];
        if !part.open_to(peer) {
            return;
        }
        if part.exclusive && part.open > 0 && out.len() < target {
            part.owner = Some(peer);
        }
        let was_open = part.open > 0;
        for (idx, b) in part.blocks.iter_mut().enumerate() {
            if out.len() >= target || part.open == 0 {
                break;
            }
            if *b == Block::Open {
                *b = Block::Requested(peer);
                part.open -= 1;
                self.unrequested -= 1;
                out.push(self.geometry.block(part.piece, idx as u32));
            }
        }
        if was_open && part.open == 0 {
            self.open_partials -= 1;
        }
    }

    fn set_blocked(&mut self, piece: u32, blocked: bool) {
        let (w, bit) = piece_bit(piece);
        let w = &mut self.blocked[w];
        if blocked {
            *w |= bit;
        } else {
            *w &= !bit;
        }
    }

    fn is_blocked(&self, piece: u32) -> bool {
        has_bit(&self.blocked, piece)
    }

    /// The candidates [`Picker::fill_candidates`] left in `cand`, as words laid out as in
    /// [`Bitfield::words`] (piece `p` is bit `63 - p % 64` of word `p / 64`), for walking them
    /// in index order.
    fn candidate_words(&self) -> impl Iterator<Item = u64> + '_ {
        self.cand.iter().map(|w| w.swap_bytes())
    }

    fn next_new_piece<R: Rng + ?Sized>(&mut self, peer_has: &Bitfield, rng: &mut R) -> Option<u32> {
        // Nothing to start: no draw. (The candidates are counted only when a draw needs it:
        // without a popcnt instruction in the baseline target that is the dearer part.)
        if !self.fill_candidates(peer_has) {
            return None;
        }
        if self.config.strategy == Strategy::RarestFirst
            && self.have.count() >= self.config.random_first
        {
            return self.rarest_first(rng);
        }
        match self.config.strategy {
            Strategy::Sequential => {
                let n = self.geometry.piece_count();
                while self.seq_cursor < n && self.is_blocked(self.seq_cursor) {
                    self.seq_cursor += 1;
                }
                self.first_candidate_from(self.seq_cursor)
            }
            Strategy::Random | Strategy::RarestFirst => {
                let count = self.cand_count();
                self.nth_candidate(rng.gen_range(0..count))
            }
        }
    }

    /// Rarest first past the random start, as a walk of the buckets from the rarest: in each
    /// non-empty bucket one draw of where to start, then the bucket's pieces in cyclic order
    /// from there until one is a candidate. The walk finds one in a few probes when the peer
    /// has many of the rarest pieces (a seed). After `count + words` failed probes (`count`
    /// candidates, `words` words per bitmap), about what looking at every candidate costs, it
    /// gives up and takes [`Picker::rarest_candidate`]. The bucket of availability 0 is passed
    /// without a probe when the bitmap of count-0 pieces shows it holds no candidate (the
    /// usual case: a peer's pieces are counted).
    ///
    /// `cand` holds the candidates ([`Picker::fill_candidates`]), at least one.
    fn rarest_first<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<u32> {
        let words = self.blocked.len();
        // Counted only once it matters: there is a candidate, so `limit > words`.
        let mut limit = usize::MAX;
        let mut failed = 0;
        for a in 0..self.avail.buckets() {
            let bucket = self.avail.bucket(a);
            let len = bucket.len();
            if len == 0 || (a == 0 && !self.avail.any_with_count_zero(&self.cand)) {
                continue;
            }
            let start = rng.gen_range(0..len);
            for &p in bucket[start..].iter().chain(&bucket[..start]) {
                if has_bit(&self.cand, p) {
                    return Some(p);
                }
                failed += 1;
                if failed == words + 1 {
                    limit = self.cand_count() as usize + words;
                }
                if failed >= limit {
                    return self.rarest_candidate(rng);
                }
            }
        }
        None
    }

    /// Sets `cand` to the pieces a peer with `peer_has` could start; false when there is none.
    fn fill_candidates(&mut self, peer_has: &Bitfield) -> bool {
        let words = self.blocked.len();
        self.cand.resize(words, 0);
        let bytes = peer_has.as_bytes();
        let whole = bytes.chunks_exact(8);
        let rest = whole.remainder();
        let mut any = 0;
        for ((c, &blocked), chunk) in self.cand.iter_mut().zip(&self.blocked).zip(whole) {
            *c = u64::from_le_bytes(chunk.try_into().expect("8 bytes")) & !blocked;
            any |= *c;
        }
        if !rest.is_empty() {
            let has = rest.iter().rev().fold(0u64, |w, &b| w << 8 | u64::from(b));
            let last = words - 1;
            self.cand[last] = has & !self.blocked[last];
            any |= self.cand[last];
        }
        any != 0
    }

    /// The number of pieces in `cand`.
    fn cand_count(&self) -> u32 {
        self.cand.iter().map(|w| w.count_ones()).sum()
    }

    /// A startable piece (in `cand`) of the lowest availability, ties broken uniformly at
    /// random.
    fn rarest_candidate<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<u32> {
        self.avail.least_counted(&self.cand, &mut self.ties);
        self.rarest_tie(rng)
    }

    /// One of `ties` at random.
    fn rarest_tie<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<u32> {
        (!self.ties.is_empty()).then(|| self.ties[rng.gen_range(0..self.ties.len())])
    }

    /// The `k`-th startable piece in index order (uniformly random for a random `k`).
    fn nth_candidate(&self, mut k: u32) -> Option<u32> {
        for (i, mut w) in self.candidate_words().enumerate() {
            let ones = w.count_ones();
            if k >= ones {
                k -= ones;
                continue;
            }
            for _ in 0..k {
                w &= !(1u64 << (63 - w.leading_zeros()));
            }
            return Some(i as u32 * 64 + w.leading_zeros());
        }
        None
    }

    /// The first startable piece at or after `from`.
    fn first_candidate_from(&self, from: u32) -> Option<u32> {
        let skip = (from / 64) as usize;
        self.candidate_words()
            .enumerate()
            .skip(skip)
            .find_map(|(i, mut w)| {
                if i == skip {
                    w &= u64::MAX >> (from % 64);
                }
                (w != 0).then(|| i as u32 * 64 + w.leading_zeros())
            })
    }

    fn pick_end_game(
        &mut self,
        peer: K,
        peer_has: &Bitfield,
        target: usize,
        out: &mut Vec<BlockRef>,
    ) {
        // Blocks requested from others only, fewest requesters first.
        let mut candidates: Vec<(usize, usize, u32)> = Vec::new();
        for (slot, part) in self.partials.iter().enumerate() {
            if !peer_has.has(part.piece) || part.exclusive {
                continue;
            }
            for (idx, b) in part.blocks.iter().enumerate() {
                if let Block::Requested(first) = *b {
                    let idx = idx as u32;
                    if first == peer || part.extra.contains(&(idx, peer)) {
                        continue;
                    }
                    let requesters = 1 + part.extra.iter().filter(|&&(x, _)| x == idx).count();
                    candidates.push((requesters, slot, idx));
                }
            }
        }
        candidates.sort_unstable();
        for (_, slot, idx) in candidates {
            if out.len() >= target {
                break;
            }
            let part = &mut self.partials[slot];
            part.extra.push((idx, peer));
            out.push(self.geometry.block(part.piece, idx));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const PIECE: u32 = 4 * BLOCK_SIZE;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(3)
    }

    /// A picker over `pieces` pieces of 4 blocks, rarest first with no random start.
    fn picker(pieces: u32, strategy: Strategy, random_first: u32) -> Picker<u32> {
        let g = PieceGeometry::new(PIECE, u64::from(PIECE) * u64::from(pieces));
        Picker::new(
            g,
            PickerConfig {
                strategy,
                random_first,
            },
            &mut rng(),
        )
    }

    fn bits(len: u32, pieces: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(len);
        for &p in pieces {
            b.set(p);
        }
        b
    }

    fn pieces_of(blocks: &[BlockRef]) -> Vec<u32> {
        let mut v: Vec<u32> = blocks.iter().map(|b| b.piece).collect();
        v.dedup();
        v
    }

    /// Receives and verifies every block of `piece`.
    fn complete(p: &mut Picker<u32>, piece: u32, from: u32) {
        let blocks: Vec<_> = p.geometry().blocks(piece).collect();
        for b in blocks {
            p.block_received(b, from);
        }
        p.piece_verified(piece);
    }

    #[test]
    fn rarest_piece_first() {
        let mut p = picker(10, Strategy::RarestFirst, 0);
        // Piece 7 is held by one peer, piece 3 by two, everything else by three.
        p.peer_bitfield(1, &Bitfield::full(10)).unwrap();
        p.peer_bitfield(2, &bits(10, &[0, 1, 2, 3, 4, 5, 6, 8, 9]))
            .unwrap();
        p.peer_bitfield(3, &bits(10, &[0, 1, 2, 4, 5, 6, 7, 8, 9]))
            .unwrap();
        p.peer_bitfield(4, &bits(10, &[0, 1, 2, 4, 5, 6, 8, 9]))
            .unwrap();
        assert_eq!(p.availability(7), 2);
        assert_eq!(p.availability(3), 2);
        assert_eq!(p.availability(0), 4);
        // Peer 4 has neither: it gets a piece of the most common tier.
        let got = p.pick(4, &bits(10, &[0, 1, 2, 4, 5, 6, 8, 9]), 4, &mut rng());
        assert_eq!(got.len(), 4);
        assert!(pieces_of(&got).iter().all(|&x| x != 3 && x != 7));
        // The seed's first new piece is one of the two rarest (ties broken at random)...
        let full = Bitfield::full(10);
        let first = pieces_of(&p.pick(1, &full, 4, &mut rng()));
        assert!(first == vec![3] || first == vec![7], "{first:?}");
        // ...then the other one.
        let second = pieces_of(&p.pick(1, &full, 4, &mut rng()));
        assert!(second == vec![3] || second == vec![7]);
        assert_ne!(first, second);
        // A `have` makes piece 7 common; a departure makes piece 5 rarer.
        let mut p = picker(10, Strategy::RarestFirst, 0);
        let everything_but_5 = bits(10, &[0, 1, 2, 3, 4, 6, 7, 8, 9]);
        p.peer_bitfield(1, &everything_but_5).unwrap();
        p.peer_bitfield(2, &Bitfield::full(10)).unwrap();
        p.peer_bitfield(3, &bits(10, &[5])).unwrap();
        p.peer_have(3, 0).unwrap();
        p.peer_left(3, &bits(10, &[0, 5]));
        assert_eq!(p.availability(5), 1);
        assert_eq!(
            pieces_of(&p.pick(2, &Bitfield::full(10), 4, &mut rng())),
            vec![5]
        );
    }

    #[test]
    fn rarest_ties_are_broken_at_random() {
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let mut p = picker(50, Strategy::RarestFirst, 0);
            p.peer_have_all(1).unwrap();
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            let got = p.pick(1, &Bitfield::full(50), 1, &mut r);
            firsts.insert(got[0].piece);
        }
        assert!(
            firsts.len() > 10,
            "only {} distinct first pieces",
            firsts.len()
        );
    }

    #[test]
    fn first_pieces_are_random_then_rarest() {
        // Piece 0 is rare, the rest common. With random_first = 2 the first pieces are spread.
        let mut seen_non_rare = false;
        for seed in 0..20 {
            let mut p = picker(40, Strategy::RarestFirst, 2);
            p.peer_have_all(1).unwrap();
            for k in 2..6 {
                p.peer_bitfield(k, &bits(40, &(1..40).collect::<Vec<_>>()))
                    .unwrap();
            }
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            let full = Bitfield::full(40);
            let got = pieces_of(&p.pick(1, &full, 4, &mut r));
            if got != vec![0] {
                seen_non_rare = true;
            }
            // Once two pieces are complete, rarest first takes over.
            let a = got[0];
            complete(&mut p, a, 1);
            let next = pieces_of(&p.pick(1, &full, 4, &mut r))[0];
            complete(&mut p, next, 1);
            if a != 0 && next != 0 {
                assert_eq!(pieces_of(&p.pick(1, &full, 4, &mut r)), vec![0]);
            }
        }
        assert!(seen_non_rare);
    }

    #[test]
    fn partial_pieces_are_finished_before_new_ones() {
        let mut p = picker(20, Strategy::RarestFirst, 0);
        p.peer_have_all(1).unwrap();
        p.peer_have_all(2).unwrap();
        let full = Bitfield::full(20);
        let a = p.pick(1, &full, 2, &mut rng());
        assert_eq!(pieces_of(&a).len(), 1);
        // Peer 2 gets the two remaining blocks of the same piece before a new one.
        let b = p.pick(2, &full, 3, &mut rng());
        assert_eq!(b[0].piece, a[0].piece);
        assert_eq!(b[1].piece, a[0].piece);
        assert_ne!(b[2].piece, a[0].piece);
        let mut all: Vec<_> = a.iter().chain(&b[..2]).map(|b| b.offset).collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, BLOCK_SIZE, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE]);
        assert_eq!(p.partial_pieces(), 2);
    }

    #[test]
    fn missing_from_counts_what_makes_a_peer_interesting() {
        let mut p = picker(130, Strategy::RarestFirst, 0);
        for piece in [0, 64, 129] {
            p.piece_verified(piece);
        }
        let peer = bits(130, &[0, 1, 63, 64, 65, 129]);
        assert_eq!(p.missing_from(&peer), 3);
        assert!(p.is_interesting(&peer));
        let nothing_new = bits(130, &[0, 64, 129]);
        assert_eq!(p.missing_from(&nothing_new), 0);
        assert!(!p.is_interesting(&nothing_new));
        assert_eq!(p.missing_from(&Bitfield::full(129)), 0, "wrong length");
    }

    #[test]
    fn never_picks_what_the_peer_lacks_or_we_have() {
        let mut p = picker(30, Strategy::RarestFirst, 0);
        let theirs: Vec<u32> = (0..30).filter(|x| x % 3 == 0).collect();
        let has = bits(30, &theirs);
        p.peer_bitfield(1, &has).unwrap();
        complete(&mut p, 0, 1);
        complete(&mut p, 3, 1);
        for strategy in [
            Strategy::RarestFirst,
            Strategy::Sequential,
            Strategy::Random,
        ] {
            let mut q = p.clone();
            q.config.strategy = strategy;
            let got = q.pick(1, &has, 1000, &mut rng());
            assert_eq!(got.len(), 8 * 4, "{strategy:?}");
            for b in &got {
                assert!(has.has(b.piece) && b.piece != 0 && b.piece != 3, "{b:?}");
            }
            // Nothing left for this peer; a peer with nothing gets nothing.
            assert!(q.pick(1, &has, 10, &mut rng()).is_empty());
            assert!(q.pick(2, &Bitfield::new(30), 10, &mut rng()).is_empty());
        }
        // A bitfield of the wrong size gets nothing and is refused.
        assert!(p.pick(1, &Bitfield::full(31), 10, &mut rng()).is_empty());
        assert_eq!(
            p.peer_bitfield(9, &Bitfield::full(31)),
            Err(PickerError::BitfieldLength {
                expected: 30,
                got: 31
            })
        );
        assert!(p.peer_have(9, 30).is_err());
        assert_eq!(p.peer_have_none(1), Err(PickerError::DuplicateAnnouncement));
    }

    #[test]
    fn sequential_goes_in_index_order() {
        let mut p = picker(10, Strategy::Sequential, 4);
        p.peer_have_all(1).unwrap();
        let got = p.pick(1, &Bitfield::full(10), 10, &mut rng());
        assert_eq!(pieces_of(&got), vec![0, 1, 2]);
        assert_eq!(got[9].piece, 2);
        // A peer lacking piece 2 continues at piece 3 (2 is partial but it cannot help).
        let got = p.pick(2, &bits(10, &[0, 1, 3, 4]), 4, &mut rng());
        assert_eq!(pieces_of(&got), vec![3]);
    }

    #[test]
    fn end_game_duplicates_requests_and_cancels_the_others() {
        let mut p = picker(2, Strategy::RarestFirst, 0);
        let full = Bitfield::full(2);
        p.peer_have_all(1).unwrap();
        p.peer_have_all(2).unwrap();
        p.peer_have_all(3).unwrap();
        let a = p.pick(1, &full, 6, &mut rng());
        assert_eq!(a.len(), 6);
        assert!(!p.in_end_game());
        let b = p.pick(2, &full, 6, &mut rng());
        // Two open blocks remain for peer 2, then end game gives it 4 of peer 1's.
        assert!(p.in_end_game());
        assert_eq!(b.len(), 6);
        let dup: Vec<_> = b.iter().filter(|x| a.contains(x)).collect();
        assert_eq!(dup.len(), 4);
        // Peer 2 is never asked twice for the same block: it gets the last two of peer 1's.
        let again = p.pick(2, &full, 6, &mut rng());
        assert_eq!(again.len(), 2);
        assert!(again.iter().all(|x| a.contains(x) && !b.contains(x)));
        // Now peer 1's blocks have two requesters, the two blocks only peer 2 was asked for
        // have one: peer 3 gets one of those first.
        let c = p.pick(3, &full, 1, &mut rng());
        assert!(b.contains(&c[0]) && !a.contains(&c[0]));
        // A duplicated block arriving from peer 2 cancels it at peer 1.
        let d = *dup[0];
        let r = p.block_received(d, 2);
        assert!(r.fresh && !r.piece_complete);
        assert_eq!(r.cancel, vec![1]);
        // The late copy from peer 1 is not fresh and cancels nothing.
        let late = p.block_received(d, 1);
        assert!(!late.fresh && late.cancel.is_empty());
        // Peer 3 answering first cancels peer 2.
        assert_eq!(p.block_received(c[0], 3).cancel, vec![2]);
    }

    #[test]
    fn whole_download_completes_and_counts_stay_consistent() {
        let mut p = picker(9, Strategy::RarestFirst, 4);
        let full = Bitfield::full(9);
        p.peer_have_all(1).unwrap();
        p.peer_bitfield(2, &bits(9, &[1, 2, 3])).unwrap();
        let mut r = rng();
        let mut rounds = 0;
        while !p.is_complete() {
            rounds += 1;
            assert!(rounds < 100);
            for peer in [1, 2] {
                let has = if peer == 1 {
                    full.clone()
                } else {
                    bits(9, &[1, 2, 3])
                };
                for b in p.pick(peer, &has, 5, &mut r) {
                    let got = p.block_received(b, peer);
                    if got.piece_complete {
                        p.piece_verified(b.piece);
                    }
                }
            }
        }
        assert_eq!(p.unrequested_blocks(), 0);
        assert_eq!(p.partial_pieces(), 0);
        assert!(!p.in_end_game());
        assert!(p.pick(1, &full, 5, &mut r).is_empty());
    }

    #[test]
    fn failed_piece_is_fetched_again() {
        let mut p = picker(3, Strategy::RarestFirst, 0);
        p.peer_have_all(1).unwrap();
        p.peer_have_all(2).unwrap();
        let full = Bitfield::full(3);
        let got = p.pick(1, &full, 4, &mut rng());
        let piece = got[0].piece;
        let mut complete_flags = Vec::new();
        for (i, b) in got.iter().enumerate() {
            complete_flags.push(
                p.block_received(*b, if i == 0 { 2 } else { 1 })
                    .piece_complete,
            );
        }
        assert_eq!(complete_flags, vec![false, false, false, true]);
        let before = p.unrequested_blocks();
        let mut senders = p.piece_failed(piece);
        senders.sort_unstable();
        assert_eq!(senders, vec![1, 2]);
        assert_eq!(p.unrequested_blocks(), before + 4);
        assert!(!p.have().has(piece));
        // Only that piece is wanted from a peer having only it: all four blocks again.
        let again = p.pick(2, &bits(3, &[piece]), 10, &mut rng());
        assert_eq!(again.len(), 4);
        assert!(again.iter().all(|b| b.piece == piece));
    }

    #[test]
    fn a_failed_piece_is_fetched_again_from_one_peer_only() {
        let mut p = picker(2, Strategy::RarestFirst, 0);
        p.peer_have_all(1).unwrap();
        p.peer_have_all(2).unwrap();
        p.peer_have_all(3).unwrap();
        let full = Bitfield::full(2);
        // Piece 0 arrives from two peers and fails.
        let blocks: Vec<_> = p.geometry().blocks(0).collect();
        for (i, b) in blocks.iter().enumerate() {
            p.block_received(*b, 1 + i as u32 % 2);
        }
        complete(&mut p, 1, 0);
        let mut senders = p.piece_failed(0);
        senders.sort_unstable();
        assert_eq!(senders, vec![1, 2]);
        assert!(p.is_single_source(0));
        // Peer 2 asks first for one block: the piece is its alone from now on.
        assert_eq!(p.pick(2, &full, 1, &mut rng()), vec![blocks[0]]);
        assert!(p.pick(1, &full, 4, &mut rng()).is_empty());
        assert_eq!(p.pick(2, &full, 4, &mut rng()), blocks[1..].to_vec());
        assert!(p.in_end_game());
        assert!(
            p.pick(3, &full, 4, &mut rng()).is_empty(),
            "no end-game copy"
        );
        // Choked: its requests dropped, it gives the piece up and peer 3 may take it.
        for b in &blocks[1..] {
            p.request_rejected(*b, 2);
        }
        assert!(
            p.pick(3, &full, 4, &mut rng()).is_empty(),
            "block 0 still asked of 2"
        );
        p.peer_left(2, &full);
        assert_eq!(p.pick(3, &full, 8, &mut rng()), blocks);
        assert!(p.pick(1, &full, 8, &mut rng()).is_empty());
        for b in &blocks {
            p.block_received(*b, 3);
        }
        p.piece_verified(0);
        assert!(!p.is_single_source(0));
        assert!(p.is_complete());
    }

    #[test]
    fn peer_leaving_releases_its_requests() {
        let mut p = picker(4, Strategy::RarestFirst, 0);
        let full = Bitfield::full(4);
        p.peer_have_all(1).unwrap();
        p.peer_bitfield(2, &full).unwrap();
        let a = p.pick(1, &full, 6, &mut rng());
        p.block_received(a[0], 1);
        let open = p.unrequested_blocks();
        p.peer_left(1, &full);
        assert_eq!(p.unrequested_blocks(), open + 5);
        assert_eq!(p.availability(0), 1);
        // Peer 2 picks up exactly the released blocks first (partials before new pieces).
        let b = p.pick(2, &full, 5, &mut rng());
        let mut released: Vec<_> = a[1..].to_vec();
        released.sort_unstable();
        let mut b_sorted = b.clone();
        b_sorted.sort_unstable();
        assert_eq!(b_sorted, released);
        // An unknown peer leaving changes no counts.
        p.peer_left(77, &full);
        assert_eq!(p.availability(0), 1);
    }

    #[test]
    fn end_game_requester_leaving_promotes_the_duplicate() {
        let mut p = picker(1, Strategy::RarestFirst, 0);
        let full = Bitfield::full(1);
        p.peer_have_all(1).unwrap();
        p.peer_have_all(2).unwrap();
        let a = p.pick(1, &full, 4, &mut rng());
        let b = p.pick(2, &full, 4, &mut rng());
        assert_eq!(a.len(), 4);
        assert_eq!(b.len(), 4);
        p.peer_left(1, &full);
        // Every block is still requested (from peer 2): still end game, nothing released.
        assert!(p.in_end_game());
        assert_eq!(p.unrequested_blocks(), 0);
        let r = p.block_received(a[0], 2);
        assert!(r.fresh && r.cancel.is_empty());
        // Rejection by the last requester reopens the block.
        p.request_rejected(a[1], 2);
        assert_eq!(p.unrequested_blocks(), 1);
        p.peer_have_all(3).unwrap();
        assert_eq!(p.pick(3, &full, 1, &mut rng()), vec![a[1]]);
        // Then end game again: duplicates of the blocks peer 2 still owes.
        assert_eq!(p.pick(3, &full, 4, &mut rng()), vec![a[2], a[3]]);
    }

    #[test]
    fn timed_out_request_goes_to_another_peer_and_late_data_is_kept() {
        let mut p = picker(1, Strategy::RarestFirst, 0);
        let full = Bitfield::full(1);
        let a = p.pick(1, &full, 1, &mut rng());
        p.request_timed_out(a[0], 1);
        let b = p.pick(2, &full, 1, &mut rng());
        assert_eq!(a, b);
        // Peer 1's late answer is still useful; peer 2 must be cancelled.
        let r = p.block_received(a[0], 1);
        assert!(r.fresh);
        assert_eq!(r.cancel, vec![2]);
    }

    #[test]
    fn malformed_blocks_are_not_fresh() {
        let mut p = picker(2, Strategy::RarestFirst, 0);
        let good = p.geometry().block(0, 1);
        for bad in [
            BlockRef { offset: 1, ..good },
            BlockRef { length: 1, ..good },
            BlockRef { piece: 2, ..good },
            BlockRef {
                offset: 4 * BLOCK_SIZE,
                ..good
            },
        ] {
            assert!(!p.block_received(bad, 1).fresh, "{bad:?}");
        }
        assert!(p.block_received(good, 1).fresh);
        assert!(!p.block_received(good, 1).fresh);
        complete(&mut p, 1, 1);
        assert!(!p.block_received(p.geometry().block(1, 0), 1).fresh);
        assert!(p.is_interesting(&Bitfield::full(2)));
        assert!(!p.is_interesting(&bits(2, &[1])));
    }

    #[test]
    fn hundred_thousand_pieces_stay_cheap_to_update() {
        // Not a timing assertion: exercises the bucket structure at scale for correctness.
        let n = 100_000;
        let g = PieceGeometry::new(BLOCK_SIZE, u64::from(BLOCK_SIZE) * u64::from(n));
        let mut r = rng();
        let mut p: Picker<u32> = Picker::new(g, PickerConfig::default(), &mut r);
        let evens = {
            let mut b = Bitfield::new(n);
            (0..n).step_by(2).for_each(|x| {
                b.set(x);
            });
            b
        };
        for k in 0..20 {
            p.peer_bitfield(k, &evens).unwrap();
        }
        let mut evens_and_one = evens.clone();
        evens_and_one.set(77_777);
        p.peer_bitfield(50, &evens_and_one).unwrap();
        assert_eq!(p.availability(77_777), 1);
        assert_eq!(p.availability(2), 21);
        for x in 0..4 {
            complete(&mut p, x * 2, 0);
        }
        // Past the random start: the only piece peer 50 has that one peer has.
        let got = p.pick(50, &evens_and_one, 1, &mut r);
        assert_eq!(pieces_of(&got), vec![77_777]);
        let next = p.pick(50, &evens_and_one, 1, &mut r);
        assert!(next[0].piece % 2 == 0 && next[0].piece >= 8);
        // Peer 50 leaves: piece 77_777 has no source left.
        p.peer_left(50, &evens_and_one);
        assert_eq!(p.availability(77_777), 0);
        assert_eq!(p.availability(2), 20);
    }

    /// Brute force: the pieces a peer with `has` could start.
    fn startable_brute(p: &Picker<u32>, has: &Bitfield) -> Vec<u32> {
        (0..p.geometry().piece_count())
            .filter(|&x| has.has(x) && !p.have().has(x) && p.slot[x as usize] == NO_SLOT)
            .collect()
    }

    #[test]
    fn new_pieces_match_a_brute_force_choice() {
        // Random swarms of random sizes (word boundaries included), random operations; every
        // new piece chosen must be startable and, for rarest first, of the least availability
        // among the startable ones; sequential takes the lowest; nothing only when none is.
        for seed in 0..60u64 {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            let n = [1, 63, 64, 65, 130, 300][seed as usize % 6];
            let strategy = [
                Strategy::RarestFirst,
                Strategy::Sequential,
                Strategy::Random,
            ][(seed / 6) as usize % 3];
            let mut p = picker(n, strategy, 2);
            let mut peers: Vec<Bitfield> = Vec::new();
            for k in 0..8u32 {
                let density = r.gen_range(0.0..1.0);
                let mut b = Bitfield::new(n);
                (0..n).filter(|_| r.gen_bool(density)).for_each(|x| {
                    b.set(x);
                });
                p.peer_bitfield(k, &b).unwrap();
                peers.push(b);
            }
            for _ in 0..400 {
                let k = r.gen_range(0..peers.len());
                let has = peers[k].clone();
                match r.gen_range(0..12) {
                    0..=3 => {
                        let before = startable_brute(&p, &has);
                        let random_phase = p.have().count() < 2;
                        let got = p.next_new_piece(&has, &mut r);
                        let Some(x) = got else {
                            assert!(before.is_empty(), "seed {seed}: none of {before:?}");
                            continue;
                        };
                        assert!(before.contains(&x), "seed {seed}: {x} not startable");
                        match strategy {
                            Strategy::Sequential => assert_eq!(x, before[0]),
                            Strategy::RarestFirst if !random_phase => {
                                let least = before.iter().map(|&y| p.availability(y)).min();
                                assert_eq!(Some(p.availability(x)), least, "seed {seed}");
                            }
                            _ => {}
                        }
                        let slot = p.partial_slot(x);
                        let mut out = Vec::new();
                        p.request_open(slot, k as u32, 4, &mut out);
                    }
                    4 | 5 => {
                        for b in p.pick(k as u32, &has, r.gen_range(1..6), &mut r) {
                            assert!(has.has(b.piece) && !p.have().has(b.piece));
                        }
                    }
                    10 => {
                        // A request is rejected, or the peer leaves and comes back.
                        let requested: Vec<BlockRef> = p
                            .partials
                            .iter()
                            .flat_map(|part| {
                                let piece = part.piece;
                                part.blocks.iter().enumerate().filter_map(move |(i, b)| {
                                    matches!(b, Block::Requested(who) if *who == k as u32)
                                        .then_some((piece, i as u32))
                                })
                            })
                            .map(|(piece, i)| p.geometry().block(piece, i))
                            .collect();
                        if let Some(&b) = requested.first() {
                            p.request_rejected(b, k as u32);
                        }
                    }
                    11 => {
                        p.peer_left(k as u32, &peers[k]);
                        p.peer_bitfield(k as u32, &peers[k]).unwrap();
                    }
                    6 | 7 => {
                        // A partial piece completes (or fails its check now and then).
                        if let Some(part) = p.partials.first() {
                            let piece = part.piece;
                            if r.gen_range(0..5) == 0 {
                                p.piece_failed(piece);
                            } else {
                                complete(&mut p, piece, 0);
                            }
                        }
                    }
                    _ => {
                        let x = r.gen_range(0..n);
                        if peers[k].set(x) {
                            p.peer_have(k as u32, x).unwrap();
                        }
                    }
                }
                let open = p.partials.iter().filter(|x| x.open > 0).count();
                assert_eq!(p.open_partials, open, "seed {seed}");
                for x in 0..n {
                    let partial = p.slot[x as usize] != NO_SLOT;
                    assert_eq!(p.is_blocked(x), p.have().has(x) || partial, "piece {x}");
                }
            }
        }
    }

    /// The choice of a new piece written plainly: every probe of the rarest-first walk made
    /// one by one, the fallback by brute force. The picker must choose the same piece with
    /// the same draws.
    fn reference_next_new_piece(
        p: &Picker<u32>,
        has: &Bitfield,
        rng: &mut ChaCha8Rng,
    ) -> Option<u32> {
        let startable = |x: u32| !p.is_blocked(x) && has.has(x);
        let cands: Vec<u32> = (0..p.geometry().piece_count())
            .filter(|&x| startable(x))
            .collect();
        let count = cands.len() as u32;
        if count == 0 {
            return None;
        }
        match p.config.strategy {
            Strategy::Sequential => return Some(cands[0]),
            Strategy::Random => return Some(cands[rng.gen_range(0..count) as usize]),
            Strategy::RarestFirst if p.have().count() < p.config.random_first => {
                return Some(cands[rng.gen_range(0..count) as usize]);
            }
            Strategy::RarestFirst => {}
        }
        let rarest = |rng: &mut ChaCha8Rng| {
            let least = cands.iter().map(|&x| p.avail.count(x)).min();
            let ties: Vec<u32> = cands
                .iter()
                .copied()
                .filter(|&x| Some(p.avail.count(x)) == least)
                .collect();
            Some(ties[rng.gen_range(0..ties.len())])
        };
        let mut budget = count as usize + p.blocked.len();
        for a in 0..p.avail.buckets() {
            let bucket = p.avail.bucket(a);
            if bucket.is_empty() {
                continue;
            }
            if a == 0 && !bucket.iter().any(|&x| startable(x)) {
                continue;
            }
            let start = rng.gen_range(0..bucket.len());
            for &x in bucket[start..].iter().chain(&bucket[..start]) {
                if startable(x) {
                    return Some(x);
                }
                budget -= 1;
                if budget == 0 {
                    return rarest(rng);
                }
            }
        }
        None
    }

    #[test]
    fn new_pieces_and_draws_match_the_plain_walk() {
        // Swarms of many shapes: sparse peers and dense ones, seeds by bitfield and by `have
        // all`, a large or small bucket of availability 0, the budget running out in it or
        // later, and callers that break the contract (a peer never announced, a seed passing a
        // partial bitfield), for which bucket 0 does hold candidates. Same piece, same draws,
        // every time.
        let mut compared = 0;
        for seed in 0..48u64 {
            let mut r = ChaCha8Rng::seed_from_u64(1000 + seed);
            let n = [1, 64, 65, 130, 300, 1000][seed as usize % 6];
            let strategy = if seed % 8 == 7 {
                Strategy::Random
            } else {
                Strategy::RarestFirst
            };
            let mut p = picker(n, strategy, [0, 2, 5][seed as usize % 3]);
            let mut peers: Vec<Bitfield> = Vec::new();
            for k in 0..10u32 {
                let mut b = Bitfield::new(n);
                match r.gen_range(0..6) {
                    0 => {
                        // A few pieces.
                        for _ in 0..r.gen_range(1..6) {
                            b.set(r.gen_range(0..n));
                        }
                    }
                    1 => b = Bitfield::full(n),
                    _ => {
                        let density = r.gen_range(0.0..1.0);
                        (0..n).filter(|_| r.gen_bool(density)).for_each(|x| {
                            b.set(x);
                        });
                    }
                }
                match k {
                    8 => {} // never announced
                    9 => p.peer_have_all(k).unwrap(),
                    _ => p.peer_bitfield(k, &b).unwrap(),
                }
                peers.push(b);
            }
            for _ in 0..300 {
                let k = r.gen_range(0..peers.len());
                let has = peers[k].clone();
                match r.gen_range(0..10) {
                    0..=5 => {
                        let mut expected_rng = r.clone();
                        let expected = reference_next_new_piece(&p, &has, &mut expected_rng);
                        let got = p.next_new_piece(&has, &mut r);
                        assert_eq!(got, expected, "seed {seed}");
                        assert_eq!(r.get_word_pos(), expected_rng.get_word_pos(), "seed {seed}");
                        compared += 1;
                        if let Some(x) = got {
                            let slot = p.partial_slot(x);
                            let mut out = Vec::new();
                            p.request_open(slot, k as u32, 4, &mut out);
                        }
                    }
                    6 => {
                        if let Some(part) = p.partials.first() {
                            let piece = part.piece;
                            if r.gen_range(0..4) == 0 {
                                p.piece_failed(piece);
                            } else {
                                complete(&mut p, piece, 0);
                            }
                        }
                    }
                    7 if k < 8 => {
                        p.peer_left(k as u32, &peers[k]);
                        p.peer_bitfield(k as u32, &peers[k]).unwrap();
                    }
                    _ => {
                        let x = r.gen_range(0..n);
                        if peers[k].set(x) && k != 8 {
                            p.peer_have(k as u32, x).unwrap();
                        }
                    }
                }
            }
        }
        assert!(compared > 5000);
    }

    #[test]
    fn candidate_bitmap_matches_the_bitfield() {
        // Every size around the word and byte boundaries: the little-endian word bitmap holds
        // exactly the pieces the peer has that are neither had nor partial.
        let mut r = ChaCha8Rng::seed_from_u64(9);
        for n in 1..=140u32 {
            let mut p = picker(n, Strategy::RarestFirst, 0);
            for _ in 0..n / 3 {
                let x = r.gen_range(0..n);
                if r.gen_bool(0.5) {
                    complete(&mut p, x, 0);
                } else {
                    p.partial_slot(x);
                }
            }
            let has = bits(n, &(0..n).filter(|_| r.gen_bool(0.6)).collect::<Vec<_>>());
            let any = p.fill_candidates(&has);
            let brute = startable_brute(&p, &has);
            assert_eq!(any, !brute.is_empty(), "{n}");
            for x in 0..n {
                assert_eq!(has_bit(&p.cand, x), brute.contains(&x), "{n}: piece {x}");
            }
            for spare in n..p.cand.len() as u32 * 64 {
                assert!(!has_bit(&p.cand, spare), "{n}: spare {spare}");
            }
            // In index order, as `Bitfield::words` lays pieces out.
            let mut in_order = vec![0u64; p.cand.len()];
            for &x in &brute {
                in_order[(x / 64) as usize] |= 1 << (63 - x % 64);
            }
            assert_eq!(p.candidate_words().collect::<Vec<_>>(), in_order, "{n}");
        }
    }

    #[test]
    fn random_new_pieces_are_uniform() {
        // Pieces 0..=3 startable, then a long run of pieces the peer lacks, then piece 100: a
        // random start followed by a scan would choose piece 100 most of the time.
        let mut p = picker(101, Strategy::Random, 0);
        let has = bits(101, &[0, 1, 2, 3, 100]);
        p.peer_bitfield(1, &has).unwrap();
        let mut counts = [0u32; 101];
        let mut r = rng();
        for _ in 0..5000 {
            counts[p.next_new_piece(&has, &mut r).unwrap() as usize] += 1;
        }
        for x in [0, 1, 2, 3, 100] {
            assert!((800..1200).contains(&counts[x]), "piece {x}: {}", counts[x]);
        }
    }

    #[test]
    fn rarest_falls_back_from_buckets_to_candidates() {
        // The peer has one piece, the most common: walking the buckets would have to pass every
        // rarer piece; the candidate bitmap finds it, and finds nothing once it is started.
        let n = 1000;
        let mut p = picker(n, Strategy::RarestFirst, 0);
        let mut r = rng();
        p.peer_bitfield(
            1,
            &bits(n, &(0..n).filter(|&x| x != 500).collect::<Vec<_>>()),
        )
        .unwrap();
        p.peer_bitfield(2, &bits(n, &[500])).unwrap();
        p.peer_have(3, 500).unwrap();
        let has = bits(n, &[500]);
        assert_eq!(pieces_of(&p.pick(2, &has, 4, &mut r)), vec![500]);
        assert!(p.pick(2, &has, 4, &mut r).is_empty());
        assert_eq!(p.next_new_piece(&has, &mut r), None);
        // A seed still gets one of the rarest pieces.
        let got = pieces_of(&p.pick(4, &Bitfield::full(n), 4, &mut r));
        assert_eq!(got.len(), 1);
        assert_eq!(p.availability(got[0]), 1);
    }
}
