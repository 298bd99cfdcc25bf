//! The torrent driver: the BitTorrent logic of one torrent on one host, sans-IO.
//!
//! A [`Driver`] owns the piece picker, the choker and one [`Connection`] per handshaken peer,
//! with the per-peer rate meters, request-to-block time estimates, request timeouts and the
//! strikes and bans for bad data. Its caller owns the sockets (or the simulated network), the
//! storage and the clock, and feeds it events: [`Driver::add_peer`], [`Driver::on_message`],
//! [`Driver::on_piece_verified`], [`Driver::on_peer_gone`] and [`Driver::on_tick`]. What the
//! driver wants done comes back as [`Effect`]s drained with [`Driver::poll_effect`] (send to
//! this peer, store this block, hash this piece, close that peer), the way quinn-proto's
//! `Connection` works; a peer's bytes to send are drained with [`Driver::poll_message`] and
//! [`Driver::next_upload`].
//!
//! `seedbox get` runs it over sockets (`engine::download`) and the simulator over its virtual
//! network (`sim::swarm`). Where the two must behave differently, a field of [`DriverConfig`]
//! says so.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;

use super::{
    pipeline_depth, Bitfield, BlockRef, Choker, ChokerConfig, PeerSnapshot, Picker, RateMeter,
    SuperSeed, SuperSeedConfig, BLOCK_SIZE, CHOKE_INTERVAL, REQUEST_QUEUE_TIME, SUPER_SEED_TICK,
};
use crate::protocol::{Connection, ConnectionConfig, Event, Handshake, Message, Violation};

#[cfg(test)]
mod tests;

/// A name for a connected peer: given by [`Driver::add_peer`] (a small index, used again for
/// a later peer once [`Driver::on_peer_gone`] has been called for it), and by the seed's cores
/// (a count, unique on its core).
pub type PeerKey = u64;

/// How often a driver over a real network wants [`Driver::on_tick`]: request timeouts,
/// keep-alives and idle peers are checked, and pipelines topped up, at this period.
pub const TICK: Duration = Duration::from_millis(500);
/// An outstanding request older than this is given up and asked of someone else.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Strikes before a ban. A strike is bad data proven to come from the peer: a piece that
/// failed its hash check with every block from it, or a block that differs from the same
/// block of the piece once it verified. A failed piece whose blocks came from several peers
/// strikes nobody: it is fetched again from one peer, which settles it.
pub const BAN_STRIKES: u32 = 2;
/// Failed downloads remembered for comparison with the piece once it verifies (pieces;
/// beyond it a failed download is only fetched again).
const MAX_FAILED_PIECES: usize = 1024;
/// Failed downloads remembered per piece.
const MAX_ATTEMPTS: usize = 4;

/// A digest of one block's payload (SHA-1), given by the caller for a failed piece and for a
/// piece that failed before, to find which blocks were bad.
pub type BlockDigest = [u8; 20];

/// A failed download of a piece: who sent each block and what it hashed to.
#[derive(Debug)]
struct FailedAttempt {
    /// Per block: the sender's ban key.
    senders: Vec<Option<SocketAddr>>,
    /// Per block: the digest of what it sent.
    digests: Vec<BlockDigest>,
}

/// How a driver behaves.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The connections' settings (what we offer in the handshake, queue limits, timeouts).
    pub connection: ConnectionConfig,
    /// The choker's settings.
    pub choker: ChokerConfig,
    /// Whether we ever unchoke anyone. `false` models a free rider in the simulator: it runs
    /// no choke rounds and uploads nothing.
    pub uploads: bool,
    /// The shortest time horizon a request pipeline covers (see [`pipeline_depth`]):
    /// [`REQUEST_QUEUE_TIME`] on a real network. The simulator, whose links lose nothing and
    /// answer in exactly one round trip, sizes pipelines by the measured round trip down to
    /// 20 ms ([`DriverConfig::simulated`]).
    pub rtt_floor: Duration,
    /// Outstanding requests older than this are given up; `None` where nothing is ever lost
    /// (the simulator). With `None`, idle and keep-alive timers are not run either.
    pub request_timeout: Option<Duration>,
    /// The shortest period between ticks ([`Driver::next_tick`]).
    pub tick: Duration,
    /// Bytes one [`BLOCK_SIZE`] of payload stands for: `BLOCK_SIZE` on a real network; the
    /// simulator's transfer unit when it moves whole pieces as one block, so that rates (and
    /// the choker's decisions on them) are in real bytes while pipelines count units.
    pub unit_bytes: u64,
    /// Strikes before a peer's address is banned.
    pub ban_strikes: u32,
    /// Whether each block's sender is remembered until its piece is checked, so that bad data
    /// is blamed on who sent it. Off in the simulator, whose data never fails.
    pub track_senders: bool,
    /// BEP 16 super-seeding of a complete torrent (`seed --super-seed`, the simulator's
    /// origin): each peer is shown no piece at its handshake, then the pieces a
    /// [`SuperSeed`] reveals to it. `None`: every piece is shown. Ignored by a driver that
    /// starts incomplete.
    pub super_seed: Option<SuperSeedConfig>,
}

impl DriverConfig {
    /// The settings for a real network.
    pub fn network(connection: ConnectionConfig, choker: ChokerConfig) -> Self {
        DriverConfig {
            connection,
            choker,
            uploads: true,
            rtt_floor: REQUEST_QUEUE_TIME,
            request_timeout: Some(REQUEST_TIMEOUT),
            tick: TICK,
            unit_bytes: u64::from(BLOCK_SIZE),
            ban_strikes: BAN_STRIKES,
            track_senders: true,
            super_seed: None,
        }
    }

    /// The settings for the simulator's lossless network, where a unit of `unit_bytes` moves
    /// as one block: no timeouts, ticks only when the choker is due (at least a second
    /// apart), pipelines sized by the measured round trip (20 ms floor).
    pub fn simulated(connection: ConnectionConfig, choker: ChokerConfig, unit_bytes: u64) -> Self {
        DriverConfig {
            rtt_floor: Duration::from_millis(20),
            request_timeout: None,
            tick: Duration::from_secs(1),
            unit_bytes,
            track_senders: false,
            ..DriverConfig::network(connection, choker)
        }
    }
}

/// Something the caller must do for the driver, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The peer has something to send: drain [`Driver::poll_message`] and, for blocks,
    /// [`Driver::next_upload`].
    Transmit(PeerKey),
    /// Write a fresh block's payload to storage (before the piece's [`Effect::Verify`]).
    Store {
        /// The block.
        block: BlockRef,
        /// Its payload.
        data: Bytes,
    },
    /// Every block of the piece is stored: check its hash and call
    /// [`Driver::on_piece_verified`].
    Verify(u32),
    /// Close the connection (timed out, or banned for bad data); call
    /// [`Driver::on_peer_gone`] when it is gone.
    Close(PeerKey),
    /// Every piece is verified: the download is complete.
    Completed,
    /// An extension-protocol event the driver does not handle itself (BEP 10), for the
    /// caller's extensions.
    Extension(PeerKey, Event),
}

/// Totals of one torrent.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Totals {
    /// Fresh payload bytes received.
    pub downloaded: u64,
    /// Payload bytes served to peers.
    pub uploaded: u64,
    /// Payload bytes served before the download completed.
    pub uploaded_while_leeching: u64,
    /// Payload bytes thrown away: duplicate or unrequested blocks, and the whole of every
    /// piece that failed its hash check.
    pub wasted: u64,
    /// Pieces that failed their hash check.
    pub hash_failures: u64,
    /// Peers banned for bad data.
    pub banned: u64,
    /// Pieces we had when the driver started (found good on disk).
    pub resumed_pieces: u32,
}

/// Why a peer must be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// It broke the protocol.
    #[error("protocol violation: {0}")]
    Violation(#[from] Violation),
    /// Its piece availability does not fit the torrent.
    #[error("bad piece availability")]
    BadAvailability,
    /// The driver is closing it (or does not know it).
    #[error("closed by the driver")]
    Closing,
}

/// What the driver keeps about one connected peer.
#[derive(Debug)]
pub struct Peer {
    /// Its address (strikes and bans apply to it).
    pub addr: SocketAddr,
    /// The protocol state.
    pub conn: Connection,
    /// When the handshake completed.
    pub connected_at: Duration,
    /// What we upload to it.
    pub up: RateMeter,
    /// What it uploads to us.
    pub down: RateMeter,
    /// When it last sent us a block.
    pub last_block_at: Option<Duration>,
    /// Smoothed request-to-block time.
    pub rtt: Duration,
    /// How many pieces it has that we lack: we are interested exactly when this is non-zero
    /// (kept up to date piece by piece instead of comparing both bitfields).
    wanted: u32,
    /// Set when the driver wants it gone.
    closing: bool,
}

impl Peer {
    /// Whether the driver asked for this peer to be closed.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Whether the peer wants data from us: interested and not a seed.
    fn wants_data(&self) -> bool {
        !self.closing && self.conn.peer_interested() && !self.conn.their_have().is_full()
    }
}

/// What a ban applies to: the IP address, or, on loopback where many peers share one address
/// (tests, benchmarks, several clients on one box), the address and port.
pub fn ban_key(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_loopback() {
        addr
    } else {
        SocketAddr::new(addr.ip(), 0)
    }
}

/// The connected peers, in slots indexed by key (one load per message, no hashing); freed
/// slots are reused. Each peer is boxed: a slot costs a pointer until it is used, and a
/// peer stays where it is for its whole connection.
#[derive(Default)]
struct Slab {
    slots: Vec<Option<Box<Peer>>>,
    free: Vec<PeerKey>,
    len: usize,
}

impl Slab {
    fn get(&self, key: PeerKey) -> Option<&Peer> {
        self.slots.get(key as usize).and_then(Option::as_deref)
    }

    fn get_mut(&mut self, key: PeerKey) -> Option<&mut Peer> {
        self.slots
            .get_mut(key as usize)
            .and_then(Option::as_deref_mut)
    }

    fn insert(&mut self, peer: Peer) -> PeerKey {
        self.len += 1;
        match self.free.pop() {
            Some(key) => {
                self.slots[key as usize] = Some(Box::new(peer));
                key
            }
            None => {
                self.slots.push(Some(Box::new(peer)));
                (self.slots.len() - 1) as PeerKey
            }
        }
    }

    fn remove(&mut self, key: PeerKey) -> Option<Box<Peer>> {
        let peer = self.slots.get_mut(key as usize)?.take()?;
        self.len -= 1;
        self.free.push(key);
        Some(peer)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter(&self) -> impl Iterator<Item = (PeerKey, &Peer)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(k, p)| Some((k as PeerKey, p.as_deref()?)))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (PeerKey, &mut Peer)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(k, p)| Some((k as PeerKey, p.as_deref_mut()?)))
    }

    fn keys(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.iter().map(|(k, _)| k)
    }
}

/// The BitTorrent logic of one torrent: see the module documentation.
pub struct Driver {
    config: DriverConfig,
    picker: Picker<PeerKey>,
    choker: Choker<PeerKey>,
    /// Which pieces each peer is shown, when super-seeding.
    super_seed: Option<SuperSeed<PeerKey>>,
    rng: ChaCha8Rng,
    peers: Slab,
    strikes: HashMap<SocketAddr, u32>,
    banned: HashSet<SocketAddr>,
    /// Per partial piece: who sent each block received so far (ban keys), with
    /// [`DriverConfig::track_senders`]. Addresses, not keys: a key is reused once its peer
    /// is gone, while its blocks still await their piece's check.
    senders: HashMap<u32, Vec<Option<SocketAddr>>>,
    /// Failed downloads of pieces not verified yet.
    failed: HashMap<u32, Vec<FailedAttempt>>,
    /// When a piece last verified (zero before the first): see [`Driver::stalled_for`].
    last_progress: Duration,
    effects: VecDeque<Effect>,
    totals: Totals,
    completed_at: Option<Duration>,
    /// Reused buffers.
    picks: Vec<BlockRef>,
    snapshots: Vec<PeerSnapshot<PeerKey>>,
    keys: Vec<PeerKey>,
}

impl Driver {
    /// A driver over `picker` (whose verified pieces we have), drawing its random choices
    /// (picks, optimistic unchokes) from `rng`.
    pub fn new(config: DriverConfig, picker: Picker<PeerKey>, rng: ChaCha8Rng) -> Self {
        let mut choker = Choker::new(config.choker);
        let complete = picker.is_complete();
        choker.set_seeding(complete);
        let totals = Totals {
            resumed_pieces: picker.have().count(),
            ..Totals::default()
        };
        let super_seed = config
            .super_seed
            .filter(|_| complete)
            .map(|c| SuperSeed::new(picker.geometry().piece_count(), c));
        Driver {
            config,
            picker,
            choker,
            super_seed,
            rng,
            peers: Slab::default(),
            strikes: HashMap::new(),
            banned: HashSet::new(),
            senders: HashMap::new(),
            failed: HashMap::new(),
            last_progress: Duration::ZERO,
            effects: VecDeque::new(),
            totals,
            completed_at: complete.then_some(Duration::ZERO),
            picks: Vec::new(),
            snapshots: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// Sets the listen port advertised to the peers added from now on (BEP 10 `p`), once the
    /// caller has bound its listener.
    pub fn set_listen_port(&mut self, port: u16) {
        self.config.connection.listen_port = Some(port);
    }

    /// The pieces we have (verified).
    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    /// The picker (read-only).
    pub fn picker(&self) -> &Picker<PeerKey> {
        &self.picker
    }

    /// The choker (read-only).
    pub fn choker(&self) -> &Choker<PeerKey> {
        &self.choker
    }

    /// Tells the choker the uplink's capacity in bytes per second, for `--unchoke-slots
    /// auto` (see [`Choker::set_uplink`]; `seed --max-upload-rate`).
    pub fn set_uplink(&mut self, uplink: Option<u64>) {
        self.choker.set_uplink(uplink);
    }

    /// The super-seeding state, when super-seeding.
    pub fn super_seed(&self) -> Option<&SuperSeed<PeerKey>> {
        self.super_seed.as_ref()
    }

    /// Whether every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.picker.is_complete()
    }

    /// When every piece was verified (zero when we started complete).
    pub fn completed_at(&self) -> Option<Duration> {
        self.completed_at
    }

    /// The totals so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// A connected peer.
    pub fn peer(&self, key: PeerKey) -> Option<&Peer> {
        self.peers.get(key)
    }

    /// Where, relative to the driver's own address, the fields live that handling a peer's
    /// message reads (the peer table, the picker, the effect queue): one offset per 64 bytes
    /// of each (adjacent fields merged), for the simulator's prefetch hints.
    pub(crate) fn message_field_offsets() -> Vec<usize> {
        use std::mem::{offset_of, size_of};
        let mut fields = [
            (offset_of!(Driver, peers), size_of::<Slab>()),
            (offset_of!(Driver, picker), size_of::<Picker<PeerKey>>()),
            (offset_of!(Driver, effects), size_of::<VecDeque<Effect>>()),
        ]
        .map(|(start, len)| start..start + len);
        fields.sort_by_key(|r| r.start);
        let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
        for r in fields {
            match merged.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => merged.push(r),
            }
        }
        let mut offsets = Vec::new();
        for r in merged {
            offsets.extend(r.clone().step_by(64));
            offsets.push(r.end - 1);
        }
        offsets
    }

    /// Where the driver keeps peer `key`: the slot holding it and the record itself, for the
    /// simulator's prefetch hints (never dereferenced; stale after the slots grow or the peer
    /// goes, which costs only a wasted load).
    pub(crate) fn peer_addresses(&self, key: PeerKey) -> [usize; 2] {
        let slot = self.peers.slots.as_ptr().wrapping_add(key as usize) as usize;
        let peer = self.peer(key).map_or(0, |p| p as *const Peer as usize);
        [slot, peer]
    }

    /// The connected peers.
    pub fn peers(&self) -> impl Iterator<Item = (PeerKey, &Peer)> {
        self.peers.iter()
    }

    /// How many peers are connected.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The strikes against `addr` (proven bad data: see [`BAN_STRIKES`]).
    pub fn strikes(&self, addr: SocketAddr) -> u32 {
        self.strikes.get(&ban_key(addr)).copied().unwrap_or(0)
    }

    /// Whether `addr` is banned.
    pub fn is_banned(&self, addr: SocketAddr) -> bool {
        self.banned.contains(&ban_key(addr))
    }

    /// Whether the peer has requests queued that [`Driver::next_upload`] would serve.
    pub fn has_queued(&self, key: PeerKey) -> bool {
        self.peers
            .get(key)
            .is_some_and(|p| p.conn.queued_requests() > 0)
    }

    /// The next thing to do, if any.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When the driver next wants [`Driver::on_tick`]: every [`DriverConfig::tick`] where
    /// things time out; else at the choker's next round, at least a tick from `now`.
    pub fn next_tick(&self, now: Duration) -> Duration {
        if self.config.request_timeout.is_some() {
            return now + self.config.tick;
        }
        let mut next = self.choker.next_round_at().unwrap_or(now + CHOKE_INTERVAL);
        if self.super_seed.is_some() {
            // Pieces that did not spread are let go on ticks, as the seed does.
            next = next.min(now + SUPER_SEED_TICK);
        }
        next.max(now + self.config.tick)
    }

    /// A peer completed its handshake `theirs`: returns the key it is known by from now on.
    /// `rtt` is a first guess at its request-to-block time.
    pub fn add_peer(
        &mut self,
        addr: SocketAddr,
        theirs: &Handshake,
        rtt: Duration,
        now: Duration,
    ) -> PeerKey {
        let mut conn =
            Connection::new(self.config.connection.clone(), *self.picker.geometry(), now);
        // A super-seed shows nothing at first (have none with Fast), then its reveals.
        let nothing;
        let shown = if self.super_seed.is_some() {
            nothing = Bitfield::new(self.picker.geometry().piece_count());
            &nothing
        } else {
            self.picker.have()
        };
        conn.on_handshake(theirs, shown, now);
        let peer = Peer {
            addr,
            conn,
            connected_at: now,
            up: RateMeter::new(now),
            down: RateMeter::new(now),
            last_block_at: None,
            rtt,
            wanted: 0,
            closing: false,
        };
        let key = self.peers.insert(peer);
        self.effects.push_back(Effect::Transmit(key));
        if let Some(ss) = &mut self.super_seed {
            ss.add_peer(key);
            self.send_reveals();
        }
        key
    }

    /// Queues the pieces the super-seed revealed since the last call as `have` messages.
    fn send_reveals(&mut self) {
        let Some(ss) = &mut self.super_seed else {
            return;
        };
        let woken: Vec<PeerKey> = ss.woken().collect();
        for k in woken {
            let pieces = ss.take_reveals(k);
            if let Some(p) = self.peers.get_mut(k) {
                for piece in pieces {
                    p.conn.have(piece, self.picker.have());
                }
                self.effects.push_back(Effect::Transmit(k));
            }
        }
    }

    /// What the super-seed learns from a peer's message: its availability, a piece it
    /// announced, or that it holds every piece it was shown.
    fn super_seed_event(&mut self, key: PeerKey, event: SuperSeedEvent, now: Duration) {
        let Some(ss) = &mut self.super_seed else {
            return;
        };
        match event {
            SuperSeedEvent::Availability => {
                if let Some(p) = self.peers.get(key) {
                    ss.on_bitfield(key, p.conn.their_have(), now);
                }
            }
            SuperSeedEvent::Have(piece) => ss.on_have(key, piece, now),
            SuperSeedEvent::NotInterested => ss.on_not_interested(key, now),
        }
        self.send_reveals();
    }

    /// The peer's connection is gone (closed by either side): its pieces no longer count and
    /// its outstanding requests go to the other peers.
    pub fn on_peer_gone(&mut self, key: PeerKey, now: Duration) {
        let Some(peer) = self.peers.remove(key) else {
            return;
        };
        self.picker.peer_left(key, peer.conn.their_have());
        self.choker.peer_left(&key);
        if let Some(ss) = &mut self.super_seed {
            ss.remove_peer(key);
            self.send_reveals();
        }
        if !peer.conn.outstanding().is_empty() {
            self.refill_others(key, now);
        }
    }

    /// Applies one message from the peer. An `Err` means drop the peer (then call
    /// [`Driver::on_peer_gone`]).
    pub fn on_message(
        &mut self,
        key: PeerKey,
        msg: Message,
        now: Duration,
    ) -> Result<(), PeerError> {
        let Some(peer) = self.peers.get_mut(key) else {
            return Err(PeerError::Closing);
        };
        if peer.closing {
            return Err(PeerError::Closing);
        }
        if let Some(sample) = peer.conn.request_age(&msg, now) {
            peer.rtt = (peer.rtt * 7 + sample) / 8;
        }
        let payload = match &msg {
            Message::Piece { data, .. } => data.len() as u64,
            _ => 0,
        };
        let event = peer.conn.on_message(msg, self.picker.have(), now)?;
        if payload > 0 && event.is_none() {
            // A block we did not ask for, or cancelled: thrown away.
            self.totals.wasted += payload * self.config.unit_bytes / u64::from(BLOCK_SIZE);
        }
        // The connection may have queued an answer (a reject, say).
        if peer.conn.pending_messages() > 0 {
            self.effects.push_back(Effect::Transmit(key));
        }
        let super_seed = match &event {
            _ if self.super_seed.is_none() => None,
            Some(Event::Availability) => Some(SuperSeedEvent::Availability),
            Some(Event::Have(piece)) => Some(SuperSeedEvent::Have(*piece)),
            Some(Event::NotInterested) => Some(SuperSeedEvent::NotInterested),
            _ => None,
        };
        match event {
            None => {}
            Some(Event::Availability) => self.on_availability(key, now)?,
            Some(Event::Have(piece)) => self.on_have(key, piece, now),
            Some(Event::Unchoked) | Some(Event::AllowedFast(_)) => self.fill_requests(key, now),
            Some(Event::Choked { dropped }) => {
                for &b in &dropped {
                    self.picker.request_rejected(b, key);
                }
                if !dropped.is_empty() {
                    self.refill_others(key, now);
                }
            }
            Some(Event::Rejected(b)) => {
                self.picker.request_rejected(b, key);
                self.fill_requests(key, now);
                self.refill_others(key, now);
            }
            Some(Event::Block { block, data }) => self.on_block(key, block, data, now),
            Some(Event::RequestQueued(_)) => self.effects.push_back(Effect::Transmit(key)),
            Some(Event::Interested) => self.on_interested(now),
            Some(e @ (Event::ExtendedHandshake(_) | Event::Extended { .. } | Event::Pex(_))) => {
                self.effects.push_back(Effect::Extension(key, e));
            }
            Some(_) => {}
        }
        if let Some(e) = super_seed {
            self.super_seed_event(key, e, now);
        }
        Ok(())
    }

    /// The peer's bitfield (or have all / have none) arrived.
    fn on_availability(&mut self, key: PeerKey, now: Duration) -> Result<(), PeerError> {
        let peer = self.peers.get_mut(key).ok_or(PeerError::Closing)?;
        let has = peer.conn.their_have();
        peer.wanted = self.picker.missing_from(has);
        self.picker
            .peer_bitfield(key, has)
            .map_err(|_| PeerError::BadAvailability)?;
        self.update_interest(key);
        self.fill_requests(key, now);
        Ok(())
    }

    /// The peer announced a piece. It can only make the peer interesting, and only when we
    /// lack the piece, so interest is recomputed only then.
    fn on_have(&mut self, key: PeerKey, piece: u32, now: Duration) {
        let _ = self.picker.peer_have(key, piece);
        if !self.picker.have().has(piece) {
            if let Some(peer) = self.peers.get_mut(key) {
                peer.wanted += 1;
                if !peer.conn.am_interested() {
                    self.update_interest(key);
                }
            }
        }
        self.fill_requests(key, now);
    }

    /// A peer became interested: don't make it wait for the next round when a slot is free.
    /// Unchoked peers that lost interest since (they completed) hold no slot.
    fn on_interested(&mut self, now: Duration) {
        if !self.config.uploads {
            return;
        }
        let peers = &self.peers;
        let room = self
            .choker
            .has_free_slot(|k| peers.get(*k).is_some_and(Peer::wants_data));
        if room {
            self.choke_round(now);
        }
    }

    fn on_block(&mut self, key: PeerKey, block: BlockRef, data: Bytes, now: Duration) {
        let len = data.len() as u64 * self.config.unit_bytes / u64::from(BLOCK_SIZE);
        if let Some(peer) = self.peers.get_mut(key) {
            peer.down.record(len, now);
            peer.last_block_at = Some(now);
        }
        let received = self.picker.block_received(block, key);
        for other in received.cancel {
            if let Some(p) = self.peers.get_mut(other) {
                p.conn.cancel(block);
                self.effects.push_back(Effect::Transmit(other));
            }
        }
        if !received.fresh {
            self.totals.wasted += len;
            self.fill_requests(key, now);
            return;
        }
        self.totals.downloaded += len;
        if self.config.track_senders {
            if let Some(p) = self.peers.get(key) {
                let blocks = self.picker.geometry().block_count(block.piece) as usize;
                let senders = self
                    .senders
                    .entry(block.piece)
                    .or_insert_with(|| vec![None; blocks]);
                if let Some(s) = senders.get_mut((block.offset / BLOCK_SIZE) as usize) {
                    *s = Some(ban_key(p.addr));
                }
            }
        }
        self.effects.push_back(Effect::Store { block, data });
        if received.piece_complete {
            self.effects.push_back(Effect::Verify(block.piece));
        }
        self.fill_requests(key, now);
    }

    /// The hash check of `piece` (asked for with [`Effect::Verify`]) came out `good`: announce
    /// the piece, or fetch it again. Without block digests a failure is blamed only when one
    /// peer sent the whole piece; see [`Driver::on_piece_hashed`].
    pub fn on_piece_verified(&mut self, piece: u32, good: bool, now: Duration) {
        self.on_piece_hashed(piece, good, None, now);
    }

    /// Whether the caller should pass block digests to [`Driver::on_piece_hashed`] for
    /// `piece` checked `good`: for a failed piece, and for a piece that failed before.
    pub fn wants_block_digests(&self, piece: u32, good: bool) -> bool {
        self.config.track_senders && (!good || self.failed.contains_key(&piece))
    }

    /// [`Driver::on_piece_verified`] with the digest of each of the piece's blocks as stored
    /// (in block order) when [`Driver::wants_block_digests`] says so. A failed piece whose
    /// blocks came from one peer strikes it; from several, it is fetched again from a single
    /// peer (whose failure then strikes it), and once the piece verifies every block that
    /// differed from the verified one strikes the peer that sent it.
    pub fn on_piece_hashed(
        &mut self,
        piece: u32,
        good: bool,
        digests: Option<&[BlockDigest]>,
        now: Duration,
    ) {
        if self.picker.have().has(piece) {
            return;
        }
        let senders = self.senders.remove(&piece).unwrap_or_default();
        if good {
            self.blame_by_comparison(piece, digests);
            self.piece_good(piece, now);
        } else {
            self.piece_bad(piece, senders, digests);
        }
    }

    /// The piece verified: the senders of blocks of its failed downloads that differ from the
    /// verified blocks sent bad data.
    fn blame_by_comparison(&mut self, piece: u32, good: Option<&[BlockDigest]>) {
        let Some(attempts) = self.failed.remove(&piece) else {
            return;
        };
        let Some(good) = good else {
            return;
        };
        let mut guilty: Vec<SocketAddr> = Vec::new();
        for a in &attempts {
            for ((sender, digest), right) in a.senders.iter().zip(&a.digests).zip(good) {
                if let Some(who) = sender {
                    if digest != right && !guilty.contains(who) {
                        guilty.push(*who);
                    }
                }
            }
        }
        for who in guilty {
            tracing::warn!(piece, %who, "peer sent a block that differs from the verified piece");
            self.strike(who);
        }
    }

    fn piece_good(&mut self, piece: u32, now: Duration) {
        self.picker.piece_verified(piece);
        self.last_progress = now;
        let complete = self.picker.is_complete();
        // Read every peer's bitfield first, in a loop without stores: the cache misses of
        // the peers' records then overlap instead of coming one after another below.
        let holders = self
            .peers
            .iter()
            .filter(|(_, p)| p.conn.their_have().has(piece))
            .count();
        std::hint::black_box(holders);
        for (k, p) in self.peers.iter_mut() {
            if p.conn.have(piece, self.picker.have()) {
                self.effects.push_back(Effect::Transmit(k));
            }
            // Our new piece can only cost interest, and only in a peer that has it.
            if p.conn.their_have().has(piece) {
                p.wanted -= 1;
                if p.conn.am_interested() {
                    set_interest(k, p, &self.picker, &mut self.effects);
                }
            }
        }
        if complete {
            self.completed_at = Some(now);
            self.choker.set_seeding(true);
            self.effects.push_back(Effect::Completed);
        }
    }

    fn piece_bad(
        &mut self,
        piece: u32,
        senders: Vec<Option<SocketAddr>>,
        digests: Option<&[BlockDigest]>,
    ) {
        self.totals.hash_failures += 1;
        let piece_bytes = u64::from(self.picker.geometry().piece_size(piece));
        self.totals.wasted += piece_bytes * self.config.unit_bytes / u64::from(BLOCK_SIZE);
        self.picker.piece_failed(piece);
        let mut distinct: Vec<SocketAddr> = Vec::new();
        for who in senders.iter().flatten() {
            if !distinct.contains(who) {
                distinct.push(*who);
            }
        }
        if let [who] = distinct[..] {
            tracing::warn!(piece, %who, "piece failed its hash check, every block from one peer; fetching it again");
            self.strike(who);
            return;
        }
        tracing::warn!(
            piece,
            senders = ?distinct,
            "piece failed its hash check, blocks from several peers; fetching it again from one"
        );
        let Some(digests) = digests else {
            return;
        };
        if digests.len() != senders.len()
            || (!self.failed.contains_key(&piece) && self.failed.len() >= MAX_FAILED_PIECES)
        {
            return;
        }
        let attempts = self.failed.entry(piece).or_default();
        if attempts.len() < MAX_ATTEMPTS {
            attempts.push(FailedAttempt {
                senders,
                digests: digests.to_vec(),
            });
        }
    }

    /// Bad data proven to come from `who`: a strike, and at [`DriverConfig::ban_strikes`] a
    /// ban closing its connections.
    fn strike(&mut self, who: SocketAddr) {
        let strikes = self.strikes.entry(who).or_default();
        *strikes += 1;
        let strikes = *strikes;
        if strikes < self.config.ban_strikes || self.banned.contains(&who) {
            return;
        }
        tracing::warn!(%who, strikes, "banning peer for bad data");
        self.banned.insert(who);
        self.totals.banned += 1;
        for (k, p) in self.peers.iter_mut() {
            if ban_key(p.addr) == who && !p.closing {
                p.closing = true;
                self.effects.push_back(Effect::Close(k));
            }
        }
    }

    /// How long the download has gone without progress: no piece verified for that long (zero
    /// once complete). Blocks alone do not count, so a peer that sends bad data or part of a
    /// piece and leaves, again and again, does not keep a download alive. A caller gives up
    /// past its stall timeout.
    pub fn stalled_for(&self, now: Duration) -> Duration {
        if self.picker.is_complete() {
            return Duration::ZERO;
        }
        now.saturating_sub(self.last_progress)
    }

    /// How many connected peers have a piece we lack.
    pub fn useful_peers(&self) -> usize {
        self.peers
            .iter()
            .filter(|(_, p)| !p.closing && p.wanted > 0)
            .count()
    }

    /// How many addresses are banned.
    pub fn banned_count(&self) -> usize {
        self.banned.len()
    }

    /// Sets our interest in the peer from what it has that we lack.
    fn update_interest(&mut self, key: PeerKey) {
        if let Some(p) = self.peers.get_mut(key) {
            set_interest(key, p, &self.picker, &mut self.effects);
        }
    }

    /// Tops up the requests outstanding at the peer.
    fn fill_requests(&mut self, key: PeerKey, now: Duration) {
        let Some(p) = self.peers.get_mut(key) else {
            return;
        };
        if p.closing || self.picker.is_complete() {
            return;
        }
        if p.conn.peer_choking() && p.conn.their_allowed_fast().is_empty() {
            return;
        }
        // The meter counts real bytes; the pipeline counts blocks.
        let rate = p.down.rate(now) * u64::from(BLOCK_SIZE) / self.config.unit_bytes.max(1);
        let rtt = p.rtt.max(self.config.rtt_floor);
        let depth = pipeline_depth(rate, rtt, p.conn.their_reqq());
        let want = (depth as usize)
            .saturating_sub(p.conn.outstanding().len())
            .min(p.conn.request_capacity());
        if want == 0 {
            return;
        }
        self.picks.clear();
        self.picker.pick_into(
            key,
            p.conn.their_have(),
            want,
            &mut self.rng,
            &mut self.picks,
        );
        let mut any = false;
        for &b in &self.picks {
            if p.conn.request(b, now).is_ok() {
                any = true;
            } else {
                self.picker.request_rejected(b, key);
            }
        }
        if any {
            self.effects.push_back(Effect::Transmit(key));
        }
    }

    /// Requests of the peer were released (rejected, dropped by a choke, or the peer left):
    /// the other peers may be asked for them now rather than at the next tick.
    fn refill_others(&mut self, key: PeerKey, now: Duration) {
        if self.picker.is_complete() {
            return;
        }
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        keys.extend(self.peers.keys().filter(|&k| k != key));
        for &k in &keys {
            self.fill_requests(k, now);
        }
        self.keys = keys;
    }

    /// Runs a choke round now and applies it.
    fn choke_round(&mut self, now: Duration) {
        let idle_rates = self.choker.reads_idle_rates();
        self.snapshots.clear();
        self.snapshots.extend(
            self.peers
                .iter()
                .filter(|(_, p)| !p.closing)
                .map(|(key, p)| {
                    let interested = p.conn.peer_interested();
                    let is_seed = p.conn.their_have().is_full();
                    let rated = idle_rates || (interested && !is_seed);
                    PeerSnapshot {
                        key,
                        interested,
                        connected_at: p.connected_at,
                        upload_rate: if rated { p.up.rate(now) } else { 0 },
                        download_rate: if rated { p.down.rate(now) } else { 0 },
                        last_block_at: p.last_block_at,
                        is_seed,
                    }
                }),
        );
        self.choker.set_uploaded(self.totals.uploaded);
        let changes = self.choker.round(now, &self.snapshots, &mut self.rng);
        for k in changes.unchoke {
            if let Some(p) = self.peers.get_mut(k) {
                p.conn.unchoke();
                self.effects.push_back(Effect::Transmit(k));
            }
        }
        for k in changes.choke {
            if let Some(p) = self.peers.get_mut(k) {
                p.conn.choke();
                self.effects.push_back(Effect::Transmit(k));
            }
        }
    }

    /// Periodic work (see [`Driver::next_tick`]): the choke round when due, timeouts, and
    /// every pipeline topped up.
    pub fn on_tick(&mut self, now: Duration) {
        if self.config.uploads && self.choker.next_round_due(now) {
            self.choke_round(now);
        }
        if let Some(ss) = &mut self.super_seed {
            ss.on_tick(now);
            self.send_reveals();
        }
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        keys.extend(self.peers.keys());
        for &k in &keys {
            if let Some(timeout) = self.config.request_timeout {
                self.check_timeouts(k, timeout, now);
            }
            self.fill_requests(k, now);
        }
        self.keys = keys;
    }

    /// Idle and keep-alive timers, and requests outstanding longer than `timeout`.
    fn check_timeouts(&mut self, key: PeerKey, timeout: Duration, now: Duration) {
        let Some(p) = self.peers.get_mut(key) else {
            return;
        };
        if let Some(t) = p.conn.poll_timeout(now) {
            tracing::debug!(addr = %p.addr, "peer timed out: {t:?}");
            if !p.closing {
                p.closing = true;
                self.effects.push_back(Effect::Close(key));
            }
        }
        while let Some(&(b, sent)) = p
            .conn
            .outstanding()
            .iter()
            .find(|(_, sent)| now.saturating_sub(*sent) > timeout)
        {
            let _ = sent;
            p.conn.cancel(b);
            self.picker.request_timed_out(b, key);
        }
        if p.conn.pending_messages() > 0 {
            self.effects.push_back(Effect::Transmit(key));
        }
    }

    /// Queues PEX for peer `key` when due ([`Connection::poll_pex`]); true when a message
    /// was queued (a [`Effect::Transmit`] follows).
    pub fn poll_pex(
        &mut self,
        key: PeerKey,
        now: Duration,
        swarm: &mut crate::protocol::pex::PexSwarm,
        recipient: Option<SocketAddr>,
    ) -> bool {
        let Some(p) = self.peers.get_mut(key) else {
            return false;
        };
        if p.closing || !p.conn.poll_pex(now, swarm, recipient) {
            return false;
        }
        self.effects.push_back(Effect::Transmit(key));
        true
    }

    /// The peer's next control message to send.
    pub fn poll_message(&mut self, key: PeerKey, now: Duration) -> Option<Message> {
        let p = self.peers.get_mut(key)?;
        if p.closing {
            return None;
        }
        p.conn.poll_message(now)
    }

    /// The peer's next request to serve (of a piece we have); call
    /// [`Driver::on_uploaded`] once its bytes are sent.
    pub fn next_upload(&mut self, key: PeerKey, now: Duration) -> Option<BlockRef> {
        let p = self.peers.get_mut(key)?;
        if p.closing {
            return None;
        }
        while let Some(b) = p.conn.pop_request(now) {
            if self.picker.have().has(b.piece) {
                return Some(b);
            }
        }
        None
    }

    /// A block of `len` payload bytes was sent to the peer.
    pub fn on_uploaded(&mut self, key: PeerKey, len: u64, now: Duration) {
        if let Some(p) = self.peers.get_mut(key) {
            p.up.record(len, now);
        }
        self.totals.uploaded += len;
        if self.completed_at.is_none() {
            self.totals.uploaded_while_leeching += len;
        }
    }
}

/// A peer's message the super-seed must hear of.
#[derive(Clone, Copy)]
enum SuperSeedEvent {
    Availability,
    Have(u32),
    NotInterested,
}

/// Sets our interest in peer `key` from what it has that we lack (`Peer::wanted`).
fn set_interest(
    key: PeerKey,
    p: &mut Peer,
    picker: &Picker<PeerKey>,
    effects: &mut VecDeque<Effect>,
) {
    let interested = !picker.is_complete() && p.wanted > 0;
    debug_assert_eq!(
        interested,
        !picker.is_complete() && picker.is_interesting(p.conn.their_have())
    );
    if interested != p.conn.am_interested() {
        p.conn.set_interested(interested);
        effects.push_back(Effect::Transmit(key));
    }
}
