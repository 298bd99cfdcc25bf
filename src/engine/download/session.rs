//! The shared state of one download on its core: the sockets, storage and connection
//! management around its [`Driver`] (picker, choker, peers). Peer tasks call into it for every
//! message; it never blocks and never awaits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::engine::sockets::OpenSockets;
use crate::metainfo::Torrent;
use crate::protocol::pex::{self, ParsedPex, PexSwarm};
use crate::protocol::{Event, Message, PeerId};
use crate::storage::{MappedStorage, WritableStorage};
use crate::swarm::{
    BlockDigest, BlockRef, Driver, Effect, PeerError, PeerKey, PieceGeometry, RateMeter,
    TokenBucket, BLOCK_SIZE,
};

/// The sockets side of one connected peer (its protocol state lives in the driver).
pub struct PeerIo {
    /// Its address.
    pub addr: SocketAddr,
    /// Wakes the peer's writer.
    pub wake: Rc<Notify>,
    /// Shut down to end the peer's tasks.
    pub(crate) stream: Rc<crate::engine::transport::PeerTransport>,
    /// We dialled it (its address is where it listens).
    pub outgoing: bool,
    /// Where it listens, once known, as it stands in our PEX swarm.
    pub pex_addr: Option<SocketAddr>,
    /// The peer id of its handshake: one connection per peer id is kept.
    pub peer_id: PeerId,
}

/// Whether a new connection to a peer we are already connected to replaces the old one (else
/// the new one is dropped). Two peers that dial each other at the same moment each see the
/// other's connection second; both keep the one dialled by the lower peer id, so they drop
/// the same connection rather than one each. Two connections in the same direction (a peer
/// reached at two addresses) keep the first.
pub fn replaces_duplicate(
    ours: PeerId,
    theirs: PeerId,
    new_outgoing: bool,
    old_outgoing: bool,
) -> bool {
    let keep_outgoing = ours.0 < theirs.0;
    new_outgoing == keep_outgoing && old_outgoing != keep_outgoing
}

/// Most addresses waiting to be dialled that PEX may add to (learned peers beyond it are
/// ignored: a peer's list of thousands costs nothing).
pub const MAX_PEX_CANDIDATES: usize = 200;
/// Peers remembered as to be dialled uTP first, at most.
const MAX_UTP_FIRST: usize = 4096;

/// The state of one download: the sockets, storage and connection management around its
/// [`Driver`].
pub struct Session {
    /// The torrent.
    pub torrent: Arc<Torrent>,
    /// Its geometry.
    pub geometry: PieceGeometry,
    /// Where blocks are written.
    pub writer: WritableStorage,
    /// The same files, read-only, for hashing and serving.
    pub reader: Arc<MappedStorage>,
    /// The BitTorrent logic: picker, choker, connections.
    pub driver: Driver,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Connected peers' sockets.
    io: HashMap<PeerKey, PeerIo>,
    /// Addresses to try.
    pub candidates: VecDeque<SocketAddr>,
    /// Addresses connected or being connected.
    pub connected: HashSet<SocketAddr>,
    /// The sockets of every connection, handshaking ones included, for the exit.
    pub sockets: Rc<OpenSockets>,
    /// The uTP driver on the listen port's UDP (`None`: TCP only), which dials share.
    pub utp: Option<Rc<crate::engine::utp::UtpDriver>>,
    /// Peers whose last dialled connection ended before the BitTorrent handshake over TCP
    /// (TCP switched off in their settings): dialled uTP first ([`crate::engine::dial`]).
    utp_first: HashSet<SocketAddr>,
    /// Addresses to dial again later: (when, address), and failures so far per address.
    retries: Vec<(Duration, SocketAddr)>,
    failures: HashMap<SocketAddr, u32>,
    /// Session start.
    pub started: Instant,
    /// A fatal error (a failed write): the download stops with it.
    pub fatal: Option<String>,
    /// Notified when the last piece is verified (and flushed), so the run loop ends a
    /// download that does not linger at once rather than at its next tick.
    pub completed: Rc<Notify>,
    /// The upload limit's token bucket (a burst of 4 blocks, as the seed engine's cores), so
    /// the limit holds from the first second and over any window.
    upload_bucket: Option<TokenBucket>,
    /// Whole-session upload meter (for the limit and the progress bar).
    pub up_total: RateMeter,
    /// Whole-session download meter.
    pub down_total: RateMeter,
    /// BEP 11: the peers connected, at their listen addresses (`None` for a private
    /// torrent).
    pex: Option<PexSwarm>,
    /// Where we listen (never dialled, whoever names it).
    listen: Option<SocketAddr>,
}

impl Session {
    /// A session over prepared storage, driven by `driver` (whose picker holds the pieces
    /// already verified).
    pub fn new(
        torrent: Arc<Torrent>,
        writer: WritableStorage,
        reader: Arc<MappedStorage>,
        driver: Driver,
        peer_id: PeerId,
        max_upload_rate: Option<u64>,
    ) -> Session {
        let geometry = torrent.geometry();
        let torrent_private = torrent.private;
        Session {
            torrent,
            geometry,
            writer,
            reader,
            driver,
            peer_id,
            io: HashMap::new(),
            candidates: VecDeque::new(),
            connected: HashSet::new(),
            sockets: Rc::default(),
            utp: None,
            utp_first: HashSet::new(),
            retries: Vec::new(),
            failures: HashMap::new(),
            started: Instant::now(),
            fatal: None,
            completed: Rc::default(),
            upload_bucket: max_upload_rate
                .map(|rate| TokenBucket::new(rate, 4 * u64::from(BLOCK_SIZE), Duration::ZERO)),
            up_total: RateMeter::new(Duration::ZERO),
            down_total: RateMeter::new(Duration::ZERO),
            pex: (!torrent_private).then(PexSwarm::new),
            listen: None,
        }
    }

    /// Where we listen, once bound.
    pub fn set_listen(&mut self, addr: SocketAddr) {
        self.listen = Some(addr);
    }

    /// Session time.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.driver.is_complete()
    }

    /// Whether `addr` is banned.
    pub fn is_banned(&self, addr: SocketAddr) -> bool {
        self.driver.is_banned(addr)
    }

    /// How many peers are connected (handshaken).
    pub fn peer_count(&self) -> usize {
        self.io.len()
    }

    /// Adds addresses to try (from the tracker, `--peer`, or an incoming peer's `p`).
    pub fn add_candidates(&mut self, addrs: impl IntoIterator<Item = SocketAddr>) {
        for a in addrs {
            if !self.connected.contains(&a) && !self.is_banned(a) && !self.candidates.contains(&a) {
                self.candidates.push_back(a);
            }
        }
    }

    /// Registers a handshaken peer and returns its key.
    pub fn add_peer(&mut self, io: PeerIo, theirs: &crate::protocol::Handshake) -> PeerKey {
        let now = self.now();
        self.failures.remove(&io.addr);
        let key = self
            .driver
            .add_peer(io.addr, theirs, Duration::from_millis(100), now);
        self.io.insert(key, io);
        self.apply_effects();
        key
    }

    /// The connected peer with this peer id, and whether we dialled it.
    pub fn connected_with(&self, id: PeerId) -> Option<(PeerKey, bool)> {
        self.io
            .iter()
            .find(|(_, io)| io.peer_id == id)
            .map(|(&key, io)| (key, io.outgoing))
    }

    /// Ends peer `key`'s connection (its tasks end and remove it).
    pub fn close_peer(&mut self, key: PeerKey) {
        if let Some(io) = self.io.get(&key) {
            io.stream.shutdown();
            io.wake.notify_one();
        }
    }

    /// Logs each peer's request pipeline (outstanding requests, request-to-block time), at
    /// trace level: what the simulator's pipelines are compared with.
    fn trace_pipelines(&self) {
        for &key in self.io.keys() {
            if let Some(p) = self.driver.peer(key) {
                tracing::trace!(
                    key,
                    addr = %p.addr,
                    outstanding = p.conn.outstanding().len(),
                    rtt_ms = p.rtt.as_millis() as u64,
                    "pipeline"
                );
            }
        }
    }

    /// Logs one message to or from peer `key` at trace level (`dir` "in" or "out"), with the
    /// session time and the peer's listen address when known: a per-message timeline of the
    /// swarm, as the simulator's trace gives it.
    fn trace_message(&self, dir: &'static str, key: PeerKey, msg: &Message, now: Duration) {
        let (piece, offset) = match msg {
            Message::Have(p) | Message::SuggestPiece(p) | Message::AllowedFast(p) => (*p, 0),
            Message::Request(b) | Message::Cancel(b) | Message::RejectRequest(b) => {
                (b.piece, b.offset)
            }
            Message::Piece { piece, offset, .. } => (*piece, *offset),
            _ => (u32::MAX, 0),
        };
        let peer = self.io.get(&key).map(|io| io.pex_addr.unwrap_or(io.addr));
        tracing::trace!(
            t_ms = now.as_millis() as u64,
            dir,
            key,
            peer = ?peer,
            msg = msg.name(),
            piece,
            offset,
            "message"
        );
    }

    /// Forgets a peer whose tasks ended.
    pub fn remove_peer(&mut self, key: PeerKey) {
        if let Some(io) = self.io.remove(&key) {
            if let (Some(swarm), Some(a)) = (self.pex.as_mut(), io.pex_addr) {
                swarm.leave(a);
            }
            let now = self.now();
            self.driver.on_peer_gone(key, now);
            self.connection_ended(io.addr);
            self.apply_effects();
        }
    }

    /// Whether `addr` is to be dialled uTP first.
    pub fn utp_first(&self, addr: SocketAddr) -> bool {
        self.utp_first.contains(&addr)
    }

    /// A connection we dialled to `addr` ended before the BitTorrent handshake, over uTP or
    /// TCP: the next dial tries the other transport first.
    pub fn dial_failed(&mut self, addr: SocketAddr, over_utp: bool) {
        if over_utp {
            self.utp_first.remove(&addr);
        } else if self.utp_first.len() < MAX_UTP_FIRST {
            self.utp_first.insert(addr);
        }
    }

    /// A connection to `addr` ended or failed: dial it again later, backing off (1 s, 2 s,
    /// 4 s ... 60 s), unless it is banned or we are complete and it has nothing for us.
    pub fn connection_ended(&mut self, addr: SocketAddr) {
        self.connected.remove(&addr);
        if self.is_banned(addr) {
            return;
        }
        let n = self.failures.entry(addr).or_default();
        *n += 1;
        let delay = Duration::from_secs(1u64 << (*n - 1).min(6)).min(Duration::from_secs(60));
        let at = self.now() + delay;
        self.retries.push((at, addr));
    }

    /// Applies one message from peer `key`.
    pub fn on_message(&mut self, key: PeerKey, msg: Message) -> Result<(), PeerError> {
        let now = self.now();
        if tracing::enabled!(tracing::Level::TRACE) {
            self.trace_message("in", key, &msg, now);
        }
        let result = self.driver.on_message(key, msg, now);
        self.apply_effects();
        result
    }

    /// Does what the driver asked for.
    fn apply_effects(&mut self) {
        while let Some(effect) = self.driver.poll_effect() {
            match effect {
                Effect::Transmit(key) => {
                    if let Some(io) = self.io.get(&key) {
                        io.wake.notify_one();
                    }
                }
                Effect::Store { block, data } => self.store(block, &data),
                Effect::Verify(piece) => self.verify(piece),
                Effect::Close(key) => {
                    if let Some(io) = self.io.get(&key) {
                        io.stream.shutdown();
                        io.wake.notify_one();
                    }
                }
                Effect::Completed => self.on_complete(),
                Effect::Extension(key, Event::ExtendedHandshake(h)) => self.pex_join(key, h.port),
                Effect::Extension(key, Event::Pex(p)) => self.pex_learned(key, &p),
                Effect::Extension(..) => {}
            }
        }
    }

    /// Peer `key`'s extension handshake arrived: it joins our PEX swarm where it listens
    /// (the address we dialled, or its address with the port it gave).
    fn pex_join(&mut self, key: PeerKey, port: Option<u16>) {
        let (Some(swarm), Some(io)) = (self.pex.as_mut(), self.io.get_mut(&key)) else {
            return;
        };
        if io.pex_addr.is_some() {
            return;
        }
        let addr = match (io.outgoing, port.filter(|&p| p != 0)) {
            (true, _) => io.addr,
            (false, Some(p)) => SocketAddr::new(io.addr.ip(), p),
            (false, None) => return,
        };
        let mut flags = if io.outgoing {
            pex::flags::REACHABLE
        } else {
            0
        };
        if self
            .driver
            .peer(key)
            .is_some_and(|p| p.conn.their_have().is_full())
        {
            flags |= pex::flags::SEED;
        }
        swarm.join(addr, flags);
        io.pex_addr = Some(addr);
    }

    /// Peers learned from peer `key`'s PEX message become candidates (while there are fewer
    /// than [`MAX_PEX_CANDIDATES`] waiting; never ourselves; not once complete).
    fn pex_learned(&mut self, key: PeerKey, p: &ParsedPex) {
        if self.is_complete() {
            return;
        }
        let ours: Vec<SocketAddr> = self.listen.into_iter().collect();
        let mut added = 0;
        for peer in &p.message.added {
            if self.candidates.len() >= MAX_PEX_CANDIDATES {
                break;
            }
            if pex::is_dialable(peer.addr, &ours) && !self.is_known(peer.addr) {
                self.candidates.push_back(peer.addr);
                added += 1;
            }
        }
        tracing::debug!(
            key,
            added,
            offered = p.message.added.len(),
            ignored = p.ignored,
            "ut_pex message"
        );
    }

    /// Whether `addr` is connected, waiting to be dialled, banned or a connected peer's
    /// listen address.
    fn is_known(&self, addr: SocketAddr) -> bool {
        self.connected.contains(&addr)
            || self.candidates.contains(&addr)
            || self.is_banned(addr)
            || self.io.values().any(|io| io.pex_addr == Some(addr))
    }

    fn store(&mut self, block: BlockRef, data: &[u8]) {
        if self.fatal.is_some() {
            return;
        }
        let offset = self.geometry.piece_offset(block.piece) + u64::from(block.offset);
        match self.writer.write(offset, data) {
            Ok(()) => self.down_total.record(data.len() as u64, self.now()),
            Err(e) => self.fatal = Some(e.to_string()),
        }
    }

    /// All blocks of `piece` are written: hash it and tell the driver.
    fn verify(&mut self, piece: u32) {
        if self.fatal.is_some() {
            // A block of it may not have been written.
            return;
        }
        let good = self.reader.hash_piece(piece).as_ref() == Some(self.torrent.piece_hash(piece));
        if good {
            self.writer.start_writeback(
                self.geometry.piece_offset(piece),
                u64::from(self.geometry.piece_size(piece)),
            );
        }
        let digests = self
            .driver
            .wants_block_digests(piece, good)
            .then(|| self.block_digests(piece));
        let now = self.now();
        self.driver
            .on_piece_hashed(piece, good, digests.as_deref(), now);
    }

    /// The SHA-1 of each block of `piece` as stored, for the driver to find which blocks of a
    /// failed download were bad (only for failed pieces and pieces that failed before).
    fn block_digests(&self, piece: u32) -> Vec<BlockDigest> {
        use sha1::{Digest, Sha1};
        self.geometry
            .blocks(piece)
            .map(|b| match self.reader.block(b) {
                Some(data) => Sha1::digest(&data).into(),
                None => [0; 20],
            })
            .collect()
    }

    fn on_complete(&mut self) {
        let flush_started = Instant::now();
        if let Err(e) = self.writer.flush() {
            self.fatal = Some(e.to_string());
        }
        tracing::debug!(
            flush_ms = flush_started.elapsed().as_secs_f64() * 1e3,
            "flushed the completed download to disk"
        );
        tracing::info!(
            "download complete and verified in {:.1} s",
            self.now().as_secs_f64()
        );
        self.completed.notify_one();
    }

    /// Bytes of the pieces verified so far.
    pub fn verified_bytes(&self) -> u64 {
        self.driver
            .have()
            .ones()
            .map(|p| u64::from(self.geometry.piece_size(p)))
            .sum()
    }

    /// Every tick: retries, then the driver's timeouts, choke rounds and requests.
    pub fn tick(&mut self) {
        let now = self.now();
        let (due, later): (Vec<_>, Vec<_>) = self.retries.drain(..).partition(|(at, _)| *at <= now);
        self.retries = later;
        self.add_candidates(due.into_iter().map(|(_, a)| a));
        self.driver.on_tick(now);
        if tracing::enabled!(tracing::Level::TRACE) {
            self.trace_pipelines();
        }
        if let Some(swarm) = self.pex.as_mut() {
            for (&key, io) in &self.io {
                // A seed's bitfield usually follows its extension handshake.
                if let Some(a) = io.pex_addr {
                    if self
                        .driver
                        .peer(key)
                        .is_some_and(|p| p.conn.their_have().is_full())
                    {
                        swarm.add_flags(a, pex::flags::SEED);
                    }
                }
                self.driver.poll_pex(key, now, swarm, io.pex_addr);
            }
        }
        self.apply_effects();
    }

    /// Takes what peer `key`'s writer should send now: control messages, then up to `max`
    /// blocks (only of verified pieces, within the upload limit). False when the peer is
    /// gone or closing.
    pub fn take_output(
        &mut self,
        key: PeerKey,
        control: &mut bytes::BytesMut,
        blocks: &mut Vec<(BlockRef, Bytes)>,
        max: usize,
    ) -> bool {
        let now = self.now();
        if !self.driver.peer(key).is_some_and(|p| !p.is_closing()) {
            return false;
        }
        let trace = tracing::enabled!(tracing::Level::TRACE);
        while let Some(m) = self.driver.poll_message(key, now) {
            if trace {
                self.trace_message("out", key, &m, now);
            }
            m.encode(control);
        }
        while blocks.len() < max {
            // Blocks are at most BLOCK_SIZE: send one only when a whole block's worth of
            // tokens is there, so the taking below never fails.
            if let Some(bucket) = self.upload_bucket.as_mut() {
                if bucket.available(now) < u64::from(BLOCK_SIZE) {
                    break;
                }
            }
            let Some(b) = self.driver.next_upload(key, now) else {
                break;
            };
            let Some(data) = self.reader.block(b) else {
                continue;
            };
            let len = data.len() as u64;
            if let Some(bucket) = self.upload_bucket.as_mut() {
                bucket.try_take(len, now);
            }
            self.driver.on_uploaded(key, len, now);
            self.up_total.record(len, now);
            if trace {
                let msg = Message::Piece {
                    piece: b.piece,
                    offset: b.offset,
                    data: Bytes::new(),
                };
                self.trace_message("out", key, &msg, now);
            }
            blocks.push((b, data));
        }
        true
    }

    /// Whether peer `key` still has queued requests it could be sent (for the upload limit).
    pub fn has_queued(&self, key: PeerKey) -> bool {
        self.driver.has_queued(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_of_a_simultaneous_open_keep_the_same_connection() {
        let (low, high) = (PeerId([1; 20]), PeerId([2; 20]));
        // The lower id dialled connection X, the higher one Y; each end sees either first.
        // Low's view: X is outgoing, Y incoming. High's view: X incoming, Y outgoing.
        // Low sees Y second: dropped. High sees X second: it replaces Y.
        assert!(!replaces_duplicate(low, high, false, true));
        assert!(replaces_duplicate(high, low, false, true));
        // Low sees X second: it replaces Y. High sees Y second: dropped.
        assert!(replaces_duplicate(low, high, true, false));
        assert!(!replaces_duplicate(high, low, true, false));
        // Two connections the same way: the first stays.
        for (a, b) in [(low, high), (high, low)] {
            for dir in [true, false] {
                assert!(!replaces_duplicate(a, b, dir, dir));
            }
        }
    }
}
