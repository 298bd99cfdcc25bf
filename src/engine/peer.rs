//! One peer connection on one core, driven by the sans-IO [`Connection`] (the same state
//! machine as the leecher's): the handshake, then three halves on one task: a reader that
//! decodes messages into the connection, a timer that applies its timeouts and keep-alives,
//! and a writer that turns its outbox and request queue into vectored writes straight from the
//! memory map.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio_uring::net::TcpStream;

use super::choke::core::{PeerHandle, PeerShared, TorrentCore};
use super::choke::PeerKey;
use super::mse::{self, MseFailure, PeerReader};
use super::peer_io::{read_handshake, read_more, ReadError};
use super::send;
use super::stats::CoreStats;
use super::super_seed::{SuperKey, SuperSeeding};
use super::torrents::{PieceState, SeedTorrent};
use super::transport::PeerTransport;
use super::utp::UtpStream;
use super::worker::{CoreContext, CoreTorrent};
use crate::protocol::mse::Rc4;
use crate::protocol::pex::{self, PexSwarm};
use crate::protocol::{
    Connection, ConnectionConfig, Event, Handshake, Message, MessageDecoder, Reserved, Timeout,
    Violation, WireError,
};
use crate::swarm::{BlockRef, RateMeter, BLOCK_SIZE, SUPER_SEED_TICK};

/// Bytes read per receive at first: enough for a handshake (68 bytes, an MSE one up to
/// 608 + 512) and a few dozen requests. An idle peer never needs more, and its buffer stays
/// this small.
const READ_FIRST: usize = 1024;
/// Bytes read per receive at most: a receive that fills its space doubles the next one, up
/// to this (a busy peer's burst of requests, or a 16 KiB extension message).
const READ_CHUNK: usize = 16 * 1024;
/// The timer never re-checks sooner than this (a deadline in the past while the writer is
/// stuck must not spin).
const MIN_TIMER_STEP: Duration = Duration::from_millis(250);

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum PeerError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by the peer")]
    Closed,
    #[error("no handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("bad handshake: {0}")]
    Handshake(WireError),
    #[error("{0}")]
    Mse(MseFailure),
    #[error("unknown info-hash {0}")]
    UnknownTorrent(crate::metainfo::InfoHash),
    #[error("protocol error: {0}")]
    Wire(WireError),
    #[error("protocol violation: {0}")]
    Violation(Violation),
    #[error("{0}")]
    Timeout(Timeout),
    #[error("no write progress in {0:?} (the peer does not read)")]
    SendTimeout(Duration),
    #[error("torrent stopped")]
    TorrentStopped,
    #[error("closed by the engine")]
    ClosedByEngine,
}

impl From<ReadError> for PeerError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => PeerError::Io(e),
            ReadError::Closed => PeerError::Closed,
            ReadError::Handshake(e) => PeerError::Handshake(e),
        }
    }
}

impl PeerError {
    /// Misbehaviour (counted as a drop) rather than an ordinary disconnect.
    fn is_misbehaviour(&self) -> bool {
        !matches!(
            self,
            PeerError::Io(_)
                | PeerError::Closed
                | PeerError::TorrentStopped
                | PeerError::ClosedByEngine
        )
    }
}

/// Runs a TCP connection to the end. Errors are logged, never propagated: one peer cannot
/// disturb another.
pub(super) async fn serve(stream: TcpStream, addr: SocketAddr, ctx: &CoreContext) {
    let _ = stream.set_nodelay(true);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    if let Err(e) = super::tune::tune_socket(fd, &ctx.config) {
        tracing::debug!(%addr, "socket options not applied: {e}");
    }
    let stream = PeerTransport::Tcp(stream);
    let _registered = ctx.sockets.register(fd);
    serve_transport(&stream, addr, ctx).await;
}

/// Runs a uTP connection to the end, like [`serve`].
pub(super) async fn serve_utp(stream: UtpStream, addr: SocketAddr, ctx: &CoreContext) {
    serve_transport(&PeerTransport::Utp(stream), addr, ctx).await;
}

async fn serve_transport(stream: &PeerTransport, addr: SocketAddr, ctx: &CoreContext) {
    let counters = ctx.counters();
    CoreStats::add(&counters.peers, 1);
    let result = serve_inner(stream, addr, ctx).await;
    // Always: a receive still in flight (a dropped read future) holds the descriptor open
    // until it completes, and shutdown(2) completes it.
    stream.shutdown();
    counters
        .peers
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    let transport = stream.name();
    match result {
        Ok(()) => tracing::debug!(%addr, transport, "peer left"),
        Err(e) => {
            if e.is_misbehaviour() {
                CoreStats::add(&counters.dropped, 1);
            }
            tracing::debug!(%addr, transport, "peer dropped: {e}");
        }
    }
}

/// Unregisters a peer from its torrent's choker however the connection ends.
struct Registration<'a> {
    choke: &'a RefCell<TorrentCore>,
    key: PeerKey,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Ok(mut tc) = self.choke.try_borrow_mut() {
            tc.remove(self.key);
        }
    }
}

async fn serve_inner(
    stream: &PeerTransport,
    addr: SocketAddr,
    ctx: &CoreContext,
) -> Result<(), PeerError> {
    let mut buf = BytesMut::with_capacity(READ_FIRST);
    let Accepted {
        named,
        mut encrypt,
        reader,
        handshake,
    } = accept_handshake(stream, &mut buf, ctx).await?;
    if named.is_some_and(|h| h != handshake.info_hash.0) {
        return Err(PeerError::UnknownTorrent(handshake.info_hash));
    }
    let core_torrent = ctx
        .torrent(&handshake.info_hash)
        .ok_or(PeerError::UnknownTorrent(handshake.info_hash))?;
    let (torrent, choke) = (&core_torrent.seed, &core_torrent.choke);
    if torrent.is_stopped() {
        return Err(PeerError::TorrentStopped);
    }
    let now = ctx.now();
    let (conn, ours) = new_connection(ctx, torrent, addr, &handshake, now);
    let control = send_handshake(stream, &ours, &mut encrypt).await?;
    let shared = Rc::new(RefCell::new(PeerShared {
        conn,
        control,
        up: RateMeter::new(now),
        arrivals: VecDeque::new(),
        closed: false,
    }));
    let wake = Rc::new(Notify::new());
    wake.notify_one();
    let key = ctx.next_key();
    choke.borrow_mut().add(
        key,
        PeerHandle {
            shared: shared.clone(),
            wake: wake.clone(),
        },
    );
    let _registration = Registration { choke, key };
    let super_seed = torrent.super_seed.as_ref().map(SuperMember::join);
    let pex = torrent.pex.as_ref().map(|swarm| PexMember {
        swarm,
        ip: addr.ip(),
        utp: stream.is_utp(),
        listen: Cell::new(None),
    });
    let result = {
        let (ss, pm) = (super_seed.as_ref(), pex.as_ref());
        let reader = read_loop(
            &reader,
            &shared,
            &wake,
            &core_torrent,
            ctx,
            key,
            ss,
            pm,
            buf,
        );
        let timer = timer_loop(&shared, &wake, ctx);
        let writer = write_loop(stream, encrypt, &shared, &wake, torrent, ctx);
        let reveals = reveal_loop(ss, &shared, &wake, torrent);
        let exchange = pex_loop(pm, &shared, &wake, ctx);
        // All of them run on this task; whichever ends first ends the connection.
        tokio::select! {
            r = reader => r,
            r = timer => r,
            r = writer => r,
            r = reveals => r,
            r = exchange => r,
        }
    };
    shared.borrow_mut().closed = true;
    result
}

/// What the handshake phase leaves: the info-hash MSE named (none for a plain connection),
/// the cipher of what we send, the reader (decrypting when encrypted) and the peer's
/// handshake.
struct Accepted<'a> {
    named: Option<[u8; 20]>,
    encrypt: Option<Rc4>,
    reader: PeerReader<'a, PeerTransport>,
    handshake: Handshake,
}

/// MSE (or a plain start) and the peer's BitTorrent handshake, within the handshake timeout.
async fn accept_handshake<'a>(
    stream: &'a PeerTransport,
    buf: &mut BytesMut,
    ctx: &CoreContext,
) -> Result<Accepted<'a>, PeerError> {
    let torrent_of = |req2: &[u8; 20]| ctx.torrent_by_skey_hash(req2).map(|h| h.0);
    tokio::time::timeout(ctx.config.handshake_timeout, async {
        let negotiated = mse::accept(stream, buf, READ_FIRST, ctx.config.encryption, &torrent_of)
            .await
            .map_err(|e| match e {
                MseFailure::Read(e) => PeerError::from(e),
                other => PeerError::Mse(other),
            })?;
        let (encrypt, decrypt) = match negotiated.cipher {
            Some(c) => (Some(c.encrypt), Some(c.decrypt)),
            None => (None, None),
        };
        let reader = PeerReader::new(stream, decrypt);
        let handshake = read_handshake(&reader, buf, READ_FIRST).await?;
        Ok::<_, PeerError>(Accepted {
            named: negotiated.info_hash,
            encrypt,
            reader,
            handshake,
        })
    })
    .await
    .map_err(|_| PeerError::HandshakeTimeout(ctx.config.handshake_timeout))?
}

/// The connection to `addr`, which sent `handshake`, seeding `torrent`, with the pieces it
/// is shown queued; and our handshake.
fn new_connection(
    ctx: &CoreContext,
    torrent: &SeedTorrent,
    addr: SocketAddr,
    handshake: &Handshake,
    now: Duration,
) -> (Connection, Handshake) {
    let config = connection_config(ctx, torrent, addr);
    let ours = Handshake {
        reserved: config.handshake_reserved(),
        ..Handshake::new(torrent.info_hash(), ctx.config.peer_id)
    };
    let mut conn = Connection::new(config, torrent.geometry, now);
    // A super-seed shows no piece at first (have none with Fast), then a few with `have`.
    let nothing;
    let shown = if torrent.super_seed.is_some() {
        nothing = crate::swarm::Bitfield::new(torrent.geometry.piece_count());
        &nothing
    } else {
        &torrent.have
    };
    conn.on_handshake(handshake, shown, now);
    (conn, ours)
}

/// The protocol settings of a connection to `addr` that we seed `torrent` to.
fn connection_config(
    ctx: &CoreContext,
    torrent: &SeedTorrent,
    addr: SocketAddr,
) -> ConnectionConfig {
    ConnectionConfig {
        reserved: Reserved::seedbox(),
        max_inbound_requests: ctx.config.request_queue,
        max_outbound_requests: 0,
        handshake_timeout: ctx.config.handshake_timeout,
        idle_timeout: ctx.config.idle_timeout,
        keepalive_interval: ctx.config.keepalive_interval,
        // A seed completes no piece: it never sends `have`.
        send_redundant_haves: false,
        listen_port: Some(ctx.listen_port),
        peer_ip: Some(addr.ip()),
        metadata: Some(torrent.metadata.clone()),
        pex: torrent.pex.is_some(),
        dht_port: ctx.config.dht_port.filter(|_| !torrent.torrent.private),
    }
}

/// Sends our handshake: over uTP at once, in a packet of its own; over TCP it starts the
/// returned control buffer, which the writer sends with what follows.
async fn send_handshake(
    stream: &PeerTransport,
    ours: &Handshake,
    encrypt: &mut Option<Rc4>,
) -> Result<BytesMut, PeerError> {
    let mut control = BytesMut::with_capacity(256);
    if let PeerTransport::Utp(utp) = stream {
        // In a uTP packet of its own: Transmission reads nothing after the handshake in the
        // same packet until another one comes (and we send nothing more until it is
        // interested).
        let mut bytes = ours.encode().to_vec();
        if let Some(rc4) = encrypt {
            rc4.apply(&mut bytes);
        }
        utp.write_all(&bytes).await?;
        utp.end_packet();
    } else {
        control.extend_from_slice(&ours.encode());
    }
    Ok(control)
}

/// A connection's membership of its torrent's super-seeding, left when dropped.
struct SuperMember<'a> {
    shared: &'a SuperSeeding,
    key: SuperKey,
    notify: Arc<Notify>,
}

impl<'a> SuperMember<'a> {
    fn join(shared: &'a SuperSeeding) -> Self {
        let (key, notify) = shared.join();
        SuperMember {
            shared,
            key,
            notify,
        }
    }
}

impl Drop for SuperMember<'_> {
    fn drop(&mut self) {
        self.shared.leave(self.key);
    }
}

/// A connection's membership of its torrent's PEX swarm (at its listen address, once its
/// extension handshake gave the port), left when dropped.
struct PexMember<'a> {
    swarm: &'a Mutex<PexSwarm>,
    ip: std::net::IpAddr,
    utp: bool,
    listen: Cell<Option<SocketAddr>>,
}

impl PexMember<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, PexSwarm> {
        self.swarm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The peer's extension handshake named its listen port: it joins the swarm (once).
    fn joined(&self, port: Option<u16>, seed: bool) {
        let Some(port) = port.filter(|&p| p != 0) else {
            return;
        };
        if self.listen.get().is_some() {
            return;
        }
        let addr = SocketAddr::new(self.ip, port);
        let mut flags = if seed { pex::flags::SEED } else { 0 };
        if self.utp {
            flags |= pex::flags::UTP;
        }
        self.lock().join(addr, flags);
        self.listen.set(Some(addr));
    }

    /// The peer's availability arrived: a seed gets the seed flag (its bitfield usually
    /// follows its extension handshake).
    fn availability(&self, seed: bool) {
        if let (true, Some(addr)) = (seed, self.listen.get()) {
            self.lock().add_flags(addr, pex::flags::SEED);
        }
    }
}

impl Drop for PexMember<'_> {
    fn drop(&mut self) {
        if let Some(addr) = self.listen.get() {
            self.lock().leave(addr);
        }
    }
}

/// Sends the peer our PEX messages when due (pending forever for a private torrent or a peer
/// that does not take `ut_pex`).
async fn pex_loop(
    member: Option<&PexMember<'_>>,
    shared: &RefCell<PeerShared>,
    wake: &Notify,
    ctx: &CoreContext,
) -> Result<(), PeerError> {
    let Some(m) = member else {
        return std::future::pending().await;
    };
    loop {
        let Some(due) = shared.borrow().conn.pex_due() else {
            return std::future::pending().await;
        };
        let wait = due.saturating_sub(ctx.now()).max(Duration::from_secs(1));
        tokio::time::sleep(wait).await;
        let now = ctx.now();
        let queued = {
            let mut s = shared.borrow_mut();
            let mut swarm = m.lock();
            s.conn.poll_pex(now, &mut swarm, m.listen.get())
        };
        if queued {
            wake.notify_one();
        }
    }
}

/// Announces the pieces the super-seed reveals to this peer (pending forever when the torrent
/// is not super-seeded).
async fn reveal_loop(
    member: Option<&SuperMember<'_>>,
    shared: &RefCell<PeerShared>,
    wake: &Notify,
    torrent: &SeedTorrent,
) -> Result<(), PeerError> {
    let Some(m) = member else {
        return std::future::pending().await;
    };
    loop {
        let pieces = m.shared.take_reveals(m.key);
        if !pieces.is_empty() {
            let mut s = shared.borrow_mut();
            for p in pieces {
                s.conn.have(p, &torrent.have);
            }
            drop(s);
            wake.notify_one();
        }
        if tokio::time::timeout(SUPER_SEED_TICK, m.notify.notified())
            .await
            .is_err()
        {
            m.shared.tick();
        }
    }
}

/// What a batch of the peer's messages asks of the connection's other tasks, and what the
/// handling of one message needs besides the connection.
struct Reactions<'a, 'm> {
    torrent: &'a SeedTorrent,
    super_seed: Option<&'a SuperMember<'m>>,
    pex: Option<&'a PexMember<'m>>,
    /// The arrival log never holds more than this (twice the request queue).
    max_arrivals: usize,
    /// A request was queued, or a message: the writer has work.
    wake_writer: bool,
    /// The peer's interest changed to this (the core's choker is told once per batch).
    interest: Option<bool>,
}

impl Reactions<'_, '_> {
    /// Reacts to what one message changed: a request to log and serve, interest for the
    /// choker, availability for super-seeding and PEX.
    fn on_event(&mut self, s: &mut PeerShared, event: Event, now: Duration, arrived: Instant) {
        match event {
            Event::RequestQueued(block) => {
                if block.offset == 0 {
                    self.torrent.advise_will_need(block.piece, now);
                }
                if s.arrivals.len() >= self.max_arrivals {
                    s.arrivals.pop_front();
                }
                s.arrivals.push_back((block, arrived));
                self.wake_writer = true;
            }
            Event::RequestCancelled(block) => {
                if let Some(i) = s.arrivals.iter().position(|(b, _)| *b == block) {
                    s.arrivals.remove(i);
                }
            }
            Event::Interested => self.interest = Some(true),
            Event::NotInterested => {
                self.interest = Some(false);
                if let Some(m) = self.super_seed {
                    m.shared.on_not_interested(m.key);
                }
            }
            Event::Have(piece) => {
                if let Some(m) = self.super_seed {
                    m.shared.on_have(m.key, piece);
                }
            }
            Event::Availability => {
                if let Some(m) = self.super_seed {
                    m.shared.on_bitfield(m.key, s.conn.their_have());
                }
                if let Some(m) = self.pex {
                    m.availability(s.conn.their_have().is_full());
                }
            }
            Event::ExtendedHandshake(h) => {
                tracing::debug!(client = ?h.client, reqq = ?h.reqq, "extension handshake");
                if let Some(m) = self.pex {
                    m.joined(h.port, s.conn.their_have().is_full());
                }
            }
            Event::Pex(p) => {
                // A seed dials no one: what the peer knows is of no use to it.
                tracing::trace!(
                    added = p.message.added.len(),
                    ignored = p.ignored,
                    "ut_pex message"
                );
            }
            _ => {}
        }
    }
}

/// Decodes and handles every whole message in `buf`.
fn handle_messages(
    decoder: &MessageDecoder,
    buf: &mut BytesMut,
    s: &mut PeerShared,
    reactions: &mut Reactions<'_, '_>,
    now: Duration,
) -> Result<(), PeerError> {
    if s.closed {
        return Err(PeerError::ClosedByEngine);
    }
    let arrived = Instant::now();
    loop {
        let m = match decoder.decode(buf) {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) if !e.is_fatal() => continue,
            Err(e) => return Err(PeerError::Wire(e)),
        };
        match s.conn.on_message(m, &reactions.torrent.have, now) {
            Ok(Some(event)) => reactions.on_event(s, event, now, arrived),
            Ok(None) => {}
            // aria2 follows `have none` with a bitfield; a seed never needs the peer's
            // pieces, so a repeated availability message is ignored, not fatal.
            Err(Violation::AvailabilityRepeated(what)) => {
                tracing::debug!("ignored a repeated {what} message");
            }
            Err(v) => return Err(PeerError::Violation(v)),
        }
    }
    reactions.wake_writer |= s.conn.pending_messages() > 0;
    Ok(())
}

/// Reads the peer's messages until the connection ends, telling the writer and the core's
/// choker what they changed.
#[allow(clippy::too_many_arguments)]
async fn read_loop(
    stream: &PeerReader<'_, PeerTransport>,
    shared: &RefCell<PeerShared>,
    wake: &Notify,
    core_torrent: &CoreTorrent,
    ctx: &CoreContext,
    key: PeerKey,
    super_seed: Option<&SuperMember<'_>>,
    pex: Option<&PexMember<'_>>,
    mut buf: BytesMut,
) -> Result<(), PeerError> {
    let torrent = &*core_torrent.seed;
    let decoder = MessageDecoder::for_piece_count(torrent.geometry.piece_count());
    let mut chunk = READ_FIRST;
    loop {
        let mut reactions = Reactions {
            torrent,
            super_seed,
            pex,
            max_arrivals: 2 * ctx.config.request_queue as usize,
            wake_writer: false,
            interest: None,
        };
        handle_messages(
            &decoder,
            &mut buf,
            &mut shared.borrow_mut(),
            &mut reactions,
            ctx.now(),
        )?;
        if let Some(interested) = reactions.interest {
            core_torrent
                .choke
                .borrow_mut()
                .interest_changed(key, interested);
        }
        if reactions.wake_writer {
            wake.notify_one();
        }
        let before = buf.len();
        read_more(stream, &mut buf, chunk).await?;
        if buf.len() - before >= chunk {
            chunk = (2 * chunk).min(READ_CHUNK);
        }
    }
}

/// Applies the connection's timeouts (idle) and queues its keep-alives.
async fn timer_loop(
    shared: &RefCell<PeerShared>,
    wake: &Notify,
    ctx: &CoreContext,
) -> Result<(), PeerError> {
    loop {
        let deadline = shared.borrow().conn.next_deadline();
        let wait = deadline.saturating_sub(ctx.now()).max(MIN_TIMER_STEP);
        tokio::time::sleep(wait).await;
        let mut s = shared.borrow_mut();
        if let Some(t) = s.conn.poll_timeout(ctx.now()) {
            return Err(PeerError::Timeout(t));
        }
        if s.conn.pending_messages() > 0 {
            wake.notify_one();
        }
    }
}

/// What one batch holds besides the bytes: the blocks and when their requests arrived.
struct Batch {
    blocks: Vec<BlockRef>,
    parts: Vec<Bytes>,
    arrivals: Vec<Instant>,
    segments: Vec<Bytes>,
}

async fn write_loop(
    stream: &PeerTransport,
    mut encrypt: Option<Rc4>,
    shared: &RefCell<PeerShared>,
    wake: &Notify,
    torrent: &Arc<SeedTorrent>,
    ctx: &CoreContext,
) -> Result<(), PeerError> {
    let counters = ctx.counters();
    let zero_copy = ctx
        .zero_copy
        .as_ref()
        .zip(ctx.config.send_zc_threshold)
        .map(|(ring, threshold)| send::ZeroCopy { ring, threshold });
    let zero_copy = zero_copy.as_ref();
    // Allocated by the first send: an idle peer holds none of it.
    let mut batch = Batch {
        blocks: Vec::new(),
        parts: Vec::new(),
        arrivals: Vec::new(),
        segments: Vec::new(),
    };
    loop {
        let throttled = fill_batch(shared, torrent, ctx, &mut batch)?;
        if batch.segments.is_empty() {
            match throttled {
                Some(wait) => tokio::time::sleep(wait).await,
                None => wake.notified().await,
            }
            continue;
        }
        if let Some(rc4) = &mut encrypt {
            mse::encrypt_segments(rc4, &mut batch.segments);
        }
        let total: usize = batch.segments.iter().map(Bytes::len).sum();
        let mut left = total;
        while left > 0 {
            let timeout = ctx.config.send_timeout;
            let segments = std::mem::take(&mut batch.segments);
            let (result, written) =
                tokio::time::timeout(timeout, stream.write_segments(zero_copy, segments))
                    .await
                    .map_err(|_| PeerError::SendTimeout(timeout))?;
            batch.segments = written;
            let n = match result {
                Ok(n) => n,
                Err(e) => {
                    if e.raw_os_error() == Some(libc::EFAULT) {
                        // The kernel could not read the mapping: a file shrank under it.
                        torrent.check_files();
                    }
                    return Err(PeerError::Io(e));
                }
            };
            if n == 0 {
                return Err(PeerError::Closed);
            }
            CoreStats::add(&counters.writes, 1);
            left = send::consume(&mut batch.segments, n);
        }
        batch.segments.clear();
        CoreStats::add(&counters.bytes_sent, total as u64);
        if !batch.blocks.is_empty() {
            CoreStats::add(&counters.blocks_sent, batch.blocks.len() as u64);
            let payload: u64 = batch.blocks.iter().map(|b| u64::from(b.length)).sum();
            CoreStats::add(&torrent.counters.core(ctx.core).uploaded, payload);
            let now = Instant::now();
            let mut h = ctx.latency.borrow_mut();
            for a in &batch.arrivals {
                let us = now.duration_since(*a).as_micros() as u64;
                let _ = h.record(us.max(1));
            }
        }
    }
}

/// Takes what the connection has to send now into `batch`: its messages, then up to
/// `blocks_per_write` blocks within the upload limit. Returns how long to wait when blocks are
/// queued but the upload limit holds them back.
fn fill_batch(
    shared: &RefCell<PeerShared>,
    torrent: &SeedTorrent,
    ctx: &CoreContext,
    batch: &mut Batch,
) -> Result<Option<Duration>, PeerError> {
    let counters = ctx.counters();
    let mut guard = shared.borrow_mut();
    let s = &mut *guard;
    if s.closed {
        return Err(PeerError::ClosedByEngine);
    }
    if torrent.is_stopped() {
        return Err(PeerError::TorrentStopped);
    }
    let now = ctx.now();
    encode_control(s, now, counters);
    batch.blocks.clear();
    batch.parts.clear();
    batch.arrivals.clear();
    let mut throttled = None;
    let mut bucket = ctx.bucket.borrow_mut();
    while batch.blocks.len() < ctx.config.blocks_per_write {
        if let Some(b) = bucket.as_mut() {
            let need = u64::from(BLOCK_SIZE);
            if s.conn.queued_requests() > 0 && b.available(now) < need {
                throttled = Some(b.wait_for(need, now));
                break;
            }
        }
        let Some(block) = s.conn.pop_request(now) else {
            break;
        };
        if !is_servable(torrent, block.piece) {
            CoreStats::add(&counters.bad_pieces, 1);
            refuse(s, block, counters);
            continue;
        }
        if !torrent.storage.block_parts(block, &mut batch.parts) {
            tracing::warn!(?block, "{}: block not readable", torrent.torrent.name);
            refuse(s, block, counters);
            continue;
        }
        if let Some(b) = bucket.as_mut() {
            let _ = b.try_take(u64::from(block.length), now);
        }
        s.up.record(u64::from(block.length), now);
        while let Some((b, at)) = s.arrivals.pop_front() {
            if b == block {
                batch.arrivals.push(at);
                break;
            }
        }
        batch.blocks.push(block);
    }
    if !batch.blocks.is_empty() || !s.control.is_empty() {
        send::gather(
            &mut s.control,
            &batch.blocks,
            &batch.parts,
            &mut batch.segments,
        );
    }
    // Messages queued while taking blocks (a choke after a refused request) go after them.
    if s.conn.pending_messages() > 0 {
        let mut tail = BytesMut::with_capacity(64);
        while let Some(m) = s.conn.poll_message(now) {
            m.encode(&mut tail);
        }
        batch.segments.push(tail.freeze());
    }
    Ok(throttled)
}

/// Encodes the connection's queued messages into its control buffer (rejects counted).
fn encode_control(s: &mut PeerShared, now: Duration, counters: &CoreStats) {
    while let Some(m) = s.conn.poll_message(now) {
        if matches!(m, Message::RejectRequest(_)) {
            CoreStats::add(&counters.rejected, 1);
        }
        m.encode(&mut s.control);
    }
}

/// Whether `piece` may be served: verified good, or hashed now if not yet known (a piece that
/// fails is logged once and never served).
fn is_servable(torrent: &SeedTorrent, piece: u32) -> bool {
    match torrent.piece_state(piece) {
        PieceState::Good => true,
        PieceState::Unknown => {
            let state = torrent.verify_piece(piece);
            if state == PieceState::Bad {
                tracing::error!(
                    "{}: piece {} fails its hash; it will not be served",
                    torrent.torrent.name,
                    piece
                );
            }
            state == PieceState::Good
        }
        PieceState::Bad => false,
    }
}

/// Refuses a request we cannot serve (a bad piece, unreadable data): a `reject request` with
/// Fast; without Fast the peer is choked (which drops its queue).
fn refuse(s: &mut PeerShared, block: BlockRef, counters: &CoreStats) {
    CoreStats::add(&counters.rejected, 1);
    if s.conn.fast() {
        Message::RejectRequest(block).encode(&mut s.control);
    } else {
        s.conn.choke();
    }
}
