//! The shared state of one download on its core: picker, choker, storage and peers. Peer tasks
//! call into it for every message; it never blocks and never awaits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use tokio::sync::Notify;

use crate::engine::sockets::OpenSockets;
use crate::metainfo::Torrent;
use crate::protocol::{Connection, Event, Message, PeerId, Violation};
use crate::storage::{MappedStorage, WritableStorage};
use crate::swarm::{
    pipeline_depth, BlockRef, Choker, PeerSnapshot, Picker, PieceGeometry, RateMeter, TokenBucket,
    BLOCK_SIZE, REQUEST_QUEUE_TIME,
};

/// A peer's key inside one download.
pub type PeerKey = u32;

/// Strikes (pieces that failed their hash with this peer among the senders) before a ban.
pub const BAN_STRIKES: u32 = 2;
/// An outstanding request older than this is given up and asked of someone else.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a ban applies to: the IP address, or, on loopback where many peers share one
/// address (tests, benchmarks, several clients on one box), the address and port.
pub fn ban_key(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_loopback() {
        addr
    } else {
        SocketAddr::new(addr.ip(), 0)
    }
}

/// One connected peer.
pub struct PeerSlot {
    /// Its address.
    pub addr: SocketAddr,
    /// The protocol state.
    pub conn: Connection,
    /// Wakes the peer's writer.
    pub wake: Rc<Notify>,
    /// Shuts the socket down to end the peer's tasks.
    pub stream: Rc<tokio_uring::net::TcpStream>,
    /// When the connection was established (session time).
    pub connected_at: Duration,
    /// What we upload to it.
    pub up: RateMeter,
    /// What it uploads to us.
    pub down: RateMeter,
    /// When it last sent us a block.
    pub last_block_at: Option<Duration>,
    /// Smoothed request-to-block time.
    pub rtt: Duration,
    /// Set when the session wants the peer gone.
    pub closing: bool,
}

/// Why a peer is dropped.
#[derive(Debug, thiserror::Error)]
pub enum DropReason {
    /// It broke the protocol.
    #[error("protocol violation: {0}")]
    Violation(#[from] Violation),
    /// The session is closing it.
    #[error("closed by the session")]
    Closing,
}

/// Totals of one download.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Totals {
    /// Fresh payload bytes received and written.
    pub downloaded: u64,
    /// Payload bytes served to peers.
    pub uploaded: u64,
    /// Payload bytes served before the download completed.
    pub uploaded_while_leeching: u64,
    /// Duplicate or unrequested payload bytes thrown away.
    pub wasted: u64,
    /// Pieces that failed their hash check.
    pub hash_failures: u64,
    /// Peers banned for bad data.
    pub banned: u64,
    /// Pieces found good on disk at start (resume).
    pub resumed_pieces: u32,
}

/// The state of one download.
pub struct Session {
    /// The torrent.
    pub torrent: Arc<Torrent>,
    /// Its geometry.
    pub geometry: PieceGeometry,
    /// Where blocks are written.
    pub writer: WritableStorage,
    /// The same files, read-only, for hashing and serving.
    pub reader: Arc<MappedStorage>,
    /// What to request next.
    pub picker: Picker<PeerKey>,
    /// Who to unchoke.
    pub choker: Choker<PeerKey>,
    /// Randomness for the picker and choker.
    pub rng: ChaCha8Rng,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Connected peers.
    pub peers: HashMap<PeerKey, PeerSlot>,
    next_key: PeerKey,
    /// Addresses to try.
    pub candidates: VecDeque<SocketAddr>,
    /// Addresses connected or being connected.
    pub connected: HashSet<SocketAddr>,
    /// The sockets of every connection, handshaking ones included, for the exit.
    pub sockets: Rc<OpenSockets>,
    /// Strikes per address.
    strikes: HashMap<SocketAddr, u32>,
    /// Addresses to dial again later: (when, address), and failures so far per address.
    retries: Vec<(Duration, SocketAddr)>,
    failures: HashMap<SocketAddr, u32>,
    /// Banned addresses.
    pub banned: HashSet<SocketAddr>,
    /// Totals.
    pub totals: Totals,
    /// Session start.
    pub started: Instant,
    /// When the download completed (session time).
    pub completed_at: Option<Duration>,
    /// A fatal error (a failed write): the download stops with it.
    pub fatal: Option<String>,
    /// The upload limit's token bucket (a burst of 4 blocks, as the seed engine's cores), so
    /// the limit holds from the first second and over any window.
    upload_bucket: Option<TokenBucket>,
    /// Whole-session upload meter (for the limit and the progress bar).
    pub up_total: RateMeter,
    /// Whole-session download meter.
    pub down_total: RateMeter,
}

impl Session {
    /// A session over prepared storage; `have` pieces are already verified.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        torrent: Arc<Torrent>,
        writer: WritableStorage,
        reader: Arc<MappedStorage>,
        picker: Picker<PeerKey>,
        choker: Choker<PeerKey>,
        rng: ChaCha8Rng,
        peer_id: PeerId,
        max_upload_rate: Option<u64>,
    ) -> Session {
        let geometry = torrent.geometry();
        Session {
            torrent,
            geometry,
            writer,
            reader,
            picker,
            choker,
            rng,
            peer_id,
            peers: HashMap::new(),
            next_key: 0,
            candidates: VecDeque::new(),
            connected: HashSet::new(),
            sockets: Rc::default(),
            strikes: HashMap::new(),
            retries: Vec::new(),
            failures: HashMap::new(),
            banned: HashSet::new(),
            totals: Totals::default(),
            started: Instant::now(),
            completed_at: None,
            fatal: None,
            upload_bucket: max_upload_rate
                .map(|rate| TokenBucket::new(rate, 4 * u64::from(BLOCK_SIZE), Duration::ZERO)),
            up_total: RateMeter::new(Duration::ZERO),
            down_total: RateMeter::new(Duration::ZERO),
        }
    }

    /// Session time.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.picker.is_complete()
    }

    /// Whether `addr` is banned.
    pub fn is_banned(&self, addr: SocketAddr) -> bool {
        self.banned.contains(&ban_key(addr))
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
    pub fn add_peer(&mut self, mut slot: PeerSlot, theirs: &crate::protocol::Handshake) -> PeerKey {
        let key = self.next_key;
        self.next_key += 1;
        let now = self.now();
        slot.conn.on_handshake(theirs, self.picker.have(), now);
        slot.connected_at = now;
        slot.wake.notify_one();
        self.failures.remove(&slot.addr);
        self.peers.insert(key, slot);
        key
    }

    /// Forgets a peer whose tasks ended.
    pub fn remove_peer(&mut self, key: PeerKey) {
        if let Some(slot) = self.peers.remove(&key) {
            self.picker.peer_left(key, slot.conn.their_have());
            self.choker.peer_left(&key);
            self.connection_ended(slot.addr);
            if !slot.conn.outstanding().is_empty() {
                self.refill_others(key);
            }
        }
    }

    /// Requests to peer `key` were released (rejected, dropped by a choke, or the peer left):
    /// the other peers may be asked for them now rather than at the next tick.
    fn refill_others(&mut self, key: PeerKey) {
        if self.picker.is_complete() {
            return;
        }
        let others: Vec<PeerKey> = self.peers.keys().copied().filter(|&k| k != key).collect();
        for k in others {
            self.fill_requests(k);
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
    pub fn on_message(&mut self, key: PeerKey, msg: Message) -> Result<(), DropReason> {
        let now = self.now();
        let Some(peer) = self.peers.get_mut(&key) else {
            return Err(DropReason::Closing);
        };
        if peer.closing {
            return Err(DropReason::Closing);
        }
        // Request-to-block time, for pipeline sizing.
        if let Some(sample) = peer.conn.request_age(&msg, now) {
            peer.rtt = (peer.rtt * 7 + sample) / 8;
        }
        let event = peer.conn.on_message(msg, self.picker.have(), now)?;
        match event {
            None => {}
            Some(Event::Availability) => {
                let has = peer.conn.their_have().clone();
                if self.picker.peer_bitfield(key, &has).is_err() {
                    return Err(DropReason::Closing);
                }
                self.update_interest(key);
                self.fill_requests(key);
            }
            Some(Event::Have(piece)) => {
                let _ = self.picker.peer_have(key, piece);
                self.update_interest(key);
                self.fill_requests(key);
            }
            Some(Event::Unchoked) | Some(Event::AllowedFast(_)) => self.fill_requests(key),
            Some(Event::Choked { dropped }) => {
                for &b in &dropped {
                    self.picker.request_rejected(b, key);
                }
                if !dropped.is_empty() {
                    self.refill_others(key);
                }
            }
            Some(Event::Rejected(b)) => {
                self.picker.request_rejected(b, key);
                self.fill_requests(key);
                self.refill_others(key);
            }
            Some(Event::Block { block, data }) => self.on_block(key, block, data)?,
            Some(Event::RequestQueued(_)) => peer.wake.notify_one(),
            Some(Event::Interested) => {
                // Don't make a new peer wait for the next round when a slot is free.
                // Unchoked peers that lost interest since (they completed) hold no slot.
                let peers = &self.peers;
                let room = self.choker.has_free_slot(|k| {
                    peers.get(k).is_some_and(|p| {
                        !p.closing && p.conn.peer_interested() && !p.conn.their_have().is_full()
                    })
                });
                if room {
                    self.choke_round();
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn on_block(&mut self, key: PeerKey, block: BlockRef, data: Bytes) -> Result<(), DropReason> {
        let now = self.now();
        let len = data.len() as u64;
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.down.record(len, now);
            peer.last_block_at = Some(now);
        }
        let received = self.picker.block_received(block, key);
        for other in received.cancel {
            if let Some(p) = self.peers.get_mut(&other) {
                p.conn.cancel(block);
                p.wake.notify_one();
            }
        }
        if !received.fresh {
            self.totals.wasted += len;
            self.fill_requests(key);
            return Ok(());
        }
        let offset = self.geometry.piece_offset(block.piece) + u64::from(block.offset);
        if let Err(e) = self.writer.write(offset, &data) {
            self.fatal = Some(e.to_string());
            return Ok(());
        }
        self.totals.downloaded += len;
        self.down_total.record(len, now);
        if received.piece_complete {
            self.piece_complete(block.piece);
        }
        self.fill_requests(key);
        Ok(())
    }

    /// All blocks of `piece` are written: hash it, then announce it or throw it away.
    fn piece_complete(&mut self, piece: u32) {
        let good = self.reader.hash_piece(piece).as_ref() == Some(self.torrent.piece_hash(piece));
        if good {
            self.picker.piece_verified(piece);
            self.writer.start_writeback(
                self.geometry.piece_offset(piece),
                u64::from(self.geometry.piece_size(piece)),
            );
            let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
            for k in keys {
                if let Some(p) = self.peers.get_mut(&k) {
                    if p.conn.have(piece, self.picker.have()) {
                        p.wake.notify_one();
                    }
                }
                self.update_interest(k);
            }
            if self.picker.is_complete() {
                self.on_complete();
            }
            return;
        }
        self.totals.hash_failures += 1;
        let senders = self.picker.piece_failed(piece);
        tracing::warn!(
            piece,
            ?senders,
            "piece failed its hash check; fetching it again"
        );
        for k in senders {
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            let who = ban_key(p.addr);
            let strikes = self.strikes.entry(who).or_default();
            *strikes += 1;
            if *strikes >= BAN_STRIKES {
                tracing::warn!(%who, strikes, "banning peer for bad data");
                self.banned.insert(who);
                self.totals.banned += 1;
                p.closing = true;
                let _ = p.stream.shutdown(std::net::Shutdown::Both);
                p.wake.notify_one();
            }
        }
    }

    fn on_complete(&mut self) {
        let now = self.now();
        self.completed_at = Some(now);
        let flush_started = Instant::now();
        if let Err(e) = self.writer.flush() {
            self.fatal = Some(e.to_string());
        }
        tracing::debug!(
            flush_ms = flush_started.elapsed().as_secs_f64() * 1e3,
            "flushed the completed download to disk"
        );
        self.choker.set_seeding(true);
        tracing::info!(
            "download complete and verified in {:.1} s",
            now.as_secs_f64()
        );
    }

    /// Sets our interest in peer `key` from what it has that we lack.
    fn update_interest(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let interested =
            !self.picker.is_complete() && self.picker.is_interesting(p.conn.their_have());
        if interested != p.conn.am_interested() {
            p.conn.set_interested(interested);
            p.wake.notify_one();
        }
    }

    /// Bytes of the pieces verified so far.
    pub fn verified_bytes(&self) -> u64 {
        self.picker
            .have()
            .ones()
            .map(|p| u64::from(self.geometry.piece_size(p)))
            .sum()
    }

    /// Tops up the requests outstanding at peer `key`.
    pub fn fill_requests(&mut self, key: PeerKey) {
        let now = self.now();
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.closing || self.picker.is_complete() {
            return;
        }
        if p.conn.peer_choking() && p.conn.their_allowed_fast().is_empty() {
            return;
        }
        let reqq = p.conn.their_reqq();
        let depth = pipeline_depth(p.down.rate(now), p.rtt.max(REQUEST_QUEUE_TIME), reqq);
        let want = (depth as usize)
            .saturating_sub(p.conn.outstanding().len())
            .min(p.conn.request_capacity());
        if want == 0 {
            return;
        }
        let has = p.conn.their_have().clone();
        let blocks = self.picker.pick(key, &has, want, &mut self.rng);
        let mut any = false;
        for b in blocks {
            if p.conn.request(b, now).is_ok() {
                any = true;
            } else {
                self.picker.request_rejected(b, key);
            }
        }
        if any {
            p.wake.notify_one();
        }
    }

    /// Runs a choke round now and applies it.
    pub fn choke_round(&mut self) {
        let now = self.now();
        let snapshots: Vec<PeerSnapshot<PeerKey>> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.closing)
            .map(|(&key, p)| PeerSnapshot {
                key,
                interested: p.conn.peer_interested(),
                connected_at: p.connected_at,
                upload_rate: p.up.rate(now),
                download_rate: p.down.rate(now),
                last_block_at: p.last_block_at,
                is_seed: p.conn.their_have().is_full(),
            })
            .collect();
        let changes = self.choker.round(now, &snapshots, &mut self.rng);
        for k in changes.unchoke {
            if let Some(p) = self.peers.get_mut(&k) {
                p.conn.unchoke();
                p.wake.notify_one();
            }
        }
        for k in changes.choke {
            if let Some(p) = self.peers.get_mut(&k) {
                p.conn.choke();
                p.wake.notify_one();
            }
        }
    }

    /// Once a second: retries, timeouts, request timeouts, choke rounds.
    pub fn tick(&mut self) {
        let now = self.now();
        let (due, later): (Vec<_>, Vec<_>) = self.retries.drain(..).partition(|(at, _)| *at <= now);
        self.retries = later;
        self.add_candidates(due.into_iter().map(|(_, a)| a));
        if self.choker.next_round_due(now) {
            self.choke_round();
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            if let Some(t) = p.conn.poll_timeout(now) {
                tracing::debug!(addr = %p.addr, "peer timed out: {t:?}");
                p.closing = true;
                let _ = p.stream.shutdown(std::net::Shutdown::Both);
            }
            let stale: Vec<BlockRef> = p
                .conn
                .outstanding()
                .iter()
                .filter(|(_, sent)| now.saturating_sub(*sent) > REQUEST_TIMEOUT)
                .map(|(b, _)| *b)
                .collect();
            for b in stale {
                p.conn.cancel(b);
                self.picker.request_timed_out(b, k);
            }
            p.wake.notify_one();
            self.fill_requests(k);
        }
    }

    /// Takes what peer `key`'s writer should send now: control messages, then up to `max`
    /// blocks (only of verified pieces, within the upload limit).
    pub fn take_output(
        &mut self,
        key: PeerKey,
        control: &mut bytes::BytesMut,
        blocks: &mut Vec<(BlockRef, Bytes)>,
        max: usize,
    ) -> bool {
        let now = self.now();
        let Some(p) = self.peers.get_mut(&key) else {
            return false;
        };
        if p.closing {
            return false;
        }
        while let Some(m) = p.conn.poll_message(now) {
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
            let Some(b) = p.conn.pop_request(now) else {
                break;
            };
            if !self.picker.have().has(b.piece) {
                continue;
            }
            let Some(data) = self.reader.block(b) else {
                continue;
            };
            let len = data.len() as u64;
            if let Some(bucket) = self.upload_bucket.as_mut() {
                bucket.try_take(len, now);
            }
            p.up.record(len, now);
            self.up_total.record(len, now);
            self.totals.uploaded += len;
            if self.completed_at.is_none() {
                self.totals.uploaded_while_leeching += len;
            }
            blocks.push((b, data));
        }
        true
    }

    /// Whether peer `key` still has queued requests it could be sent (for the upload limit).
    pub fn has_queued(&self, key: PeerKey) -> bool {
        self.peers
            .get(&key)
            .is_some_and(|p| p.conn.queued_requests() > 0)
    }
}
