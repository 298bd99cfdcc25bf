//! One peer connection on one core: the handshake, then a reader (this task) that decodes
//! messages and queues requests, and a writer task that turns the queue into vectored writes
//! straight from the memory map.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

use super::send;
use super::stats::CoreStats;
use super::torrents::SeedTorrent;
use super::worker::CoreContext;
use crate::protocol::{ExtendedHandshake, Handshake, Message, MessageDecoder, WireError};
use crate::swarm::{BlockRef, BLOCK_SIZE};

/// Bytes read per receive.
const READ_CHUNK: usize = 16 * 1024;
/// A keep-alive goes out after this long without sending anything.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(60);

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
    #[error("unknown info-hash {0}")]
    UnknownTorrent(crate::metainfo::InfoHash),
    #[error("protocol error: {0}")]
    Wire(WireError),
    #[error("invalid request {0:?}")]
    BadRequest(BlockRef),
    #[error("silent for {0:?}")]
    Idle(Duration),
    #[error("does not read: {0} bytes of control messages pending")]
    ControlBacklog(usize),
    #[error("writer stopped")]
    WriterStopped,
}

impl PeerError {
    /// Misbehaviour (counted as a drop) rather than an ordinary disconnect.
    fn is_misbehaviour(&self) -> bool {
        !matches!(self, PeerError::Io(_) | PeerError::Closed)
    }
}

/// A queued request.
struct Queued {
    block: BlockRef,
    arrived: Instant,
}

/// What the reader and the writer of one connection share (same thread, no lock).
struct PeerState {
    /// Encoded control messages waiting to go out before the next blocks.
    control: BytesMut,
    /// Requests accepted, in arrival order.
    queue: VecDeque<Queued>,
    choked: bool,
    fast: bool,
    /// Set by either side to end the connection.
    closed: bool,
}

/// Runs a connection to the end. Errors are logged, never propagated: one peer cannot disturb
/// another.
pub(super) async fn serve(stream: TcpStream, addr: SocketAddr, ctx: &CoreContext) {
    let counters = ctx.counters();
    CoreStats::add(&counters.peers, 1);
    let result = serve_inner(stream, addr, ctx).await;
    counters
        .peers
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    match result {
        Ok(()) => tracing::debug!(%addr, "peer left"),
        Err(e) => {
            if e.is_misbehaviour() {
                CoreStats::add(&counters.dropped, 1);
            }
            tracing::debug!(%addr, "peer dropped: {e}");
        }
    }
}

async fn serve_inner(
    stream: TcpStream,
    addr: SocketAddr,
    ctx: &CoreContext,
) -> Result<(), PeerError> {
    let _ = stream.set_nodelay(true);
    let stream = Rc::new(stream);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let handshake = tokio::time::timeout(
        ctx.config.handshake_timeout,
        read_handshake(&stream, &mut buf),
    )
    .await
    .map_err(|_| PeerError::HandshakeTimeout(ctx.config.handshake_timeout))??;
    let torrent = ctx
        .torrents
        .get(&handshake.info_hash)
        .ok_or(PeerError::UnknownTorrent(handshake.info_hash))?
        .clone();
    let fast = handshake.reserved.supports_fast();
    let mut control = BytesMut::with_capacity(256);
    control.extend_from_slice(&Handshake::new(torrent.info_hash(), ctx.peer_id).encode());
    if handshake.reserved.supports_extension_protocol() {
        ExtendedHandshake::seedbox(
            ctx.config.request_queue,
            Some(ctx.listen_port),
            Some(addr.ip()),
        )
        .to_message()
        .encode(&mut control);
    }
    if fast {
        Message::HaveAll.encode(&mut control);
    } else {
        control.extend_from_slice(&torrent.bitfield_message());
    }
    let state = Rc::new(RefCell::new(PeerState {
        control,
        queue: VecDeque::new(),
        choked: true,
        fast,
        closed: false,
    }));
    let wake = Rc::new(Notify::new());
    wake.notify_one();
    let writer = write_loop(
        stream.clone(),
        state.clone(),
        wake.clone(),
        torrent.clone(),
        ctx,
    );
    let reader = read_loop(&stream, &state, &wake, &torrent, ctx, buf);
    // Both halves run on this task; whichever ends first ends the connection.
    let result = tokio::select! {
        r = reader => r,
        r = writer => r,
    };
    state.borrow_mut().closed = true;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    result
}

async fn read_handshake(stream: &TcpStream, buf: &mut BytesMut) -> Result<Handshake, PeerError> {
    loop {
        if let Some(h) = Handshake::decode(buf).map_err(PeerError::Handshake)? {
            return Ok(h);
        }
        read_more(stream, buf).await?;
    }
}

/// Appends what the socket has to `buf` (no copy: the kernel writes into its spare capacity).
async fn read_more(stream: &TcpStream, buf: &mut BytesMut) -> Result<(), PeerError> {
    buf.reserve(READ_CHUNK);
    let taken = std::mem::take(buf);
    let start = taken.len();
    let end = taken.capacity();
    let (result, slice) = stream.read(taken.slice(start..end)).await;
    *buf = slice.into_inner();
    match result? {
        0 => Err(PeerError::Closed),
        _ => Ok(()),
    }
}

async fn read_loop(
    stream: &TcpStream,
    state: &RefCell<PeerState>,
    wake: &Notify,
    torrent: &SeedTorrent,
    ctx: &CoreContext,
    mut buf: BytesMut,
) -> Result<(), PeerError> {
    let decoder = MessageDecoder::for_piece_count(torrent.geometry.piece_count());
    let idle = ctx.config.idle_timeout;
    loop {
        let mut woke = false;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(m)) => woke |= handle(m, state, torrent, ctx)?,
                Ok(None) => break,
                Err(e) if !e.is_fatal() => continue,
                Err(e) => return Err(PeerError::Wire(e)),
            }
        }
        if woke {
            wake.notify_one();
        }
        {
            let s = state.borrow();
            if s.closed {
                return Err(PeerError::WriterStopped);
            }
            if s.control.len() > ctx.config.max_pending_control {
                return Err(PeerError::ControlBacklog(s.control.len()));
            }
        }
        tokio::time::timeout(idle, read_more(stream, &mut buf))
            .await
            .map_err(|_| PeerError::Idle(idle))??;
    }
}

/// Applies one message; returns whether the writer has something new to send.
fn handle(
    m: Message,
    state: &RefCell<PeerState>,
    torrent: &SeedTorrent,
    ctx: &CoreContext,
) -> Result<bool, PeerError> {
    let mut s = state.borrow_mut();
    match m {
        // Until the choker is wired in: every interested peer is unchoked.
        Message::Interested if s.choked => {
            s.choked = false;
            Message::Unchoke.encode(&mut s.control);
            return Ok(true);
        }
        Message::Request(block) => {
            if block.length > BLOCK_SIZE || !torrent.geometry.is_valid_request(block, BLOCK_SIZE) {
                return Err(PeerError::BadRequest(block));
            }
            if s.choked || s.queue.len() >= ctx.config.request_queue as usize {
                CoreStats::add(&ctx.counters().rejected, 1);
                if s.fast {
                    Message::RejectRequest(block).encode(&mut s.control);
                    return Ok(true);
                }
                return Ok(false);
            }
            if block.offset == 0 {
                torrent.storage.advise_will_need(block.piece);
            }
            s.queue.push_back(Queued {
                block,
                arrived: Instant::now(),
            });
            return Ok(true);
        }
        Message::Cancel(block) => {
            if let Some(i) = s.queue.iter().position(|q| q.block == block) {
                s.queue.remove(i);
                if s.fast {
                    // BEP 6: a cancelled request is answered with a piece or a reject.
                    Message::RejectRequest(block).encode(&mut s.control);
                    return Ok(true);
                }
            }
        }
        Message::Extended { id: 0, payload } => {
            if let Ok(h) = ExtendedHandshake::parse(&payload) {
                tracing::debug!(client = ?h.client, reqq = ?h.reqq, "extension handshake");
            }
        }
        // A seed needs nothing else a peer says.
        _ => {}
    }
    Ok(false)
}

async fn write_loop(
    stream: Rc<TcpStream>,
    state: Rc<RefCell<PeerState>>,
    wake: Rc<Notify>,
    torrent: Arc<SeedTorrent>,
    ctx: &CoreContext,
) -> Result<(), PeerError> {
    let counters = ctx.counters();
    let mut blocks: Vec<(BlockRef, Bytes)> = Vec::with_capacity(ctx.config.blocks_per_write);
    let mut arrivals: Vec<Instant> = Vec::with_capacity(ctx.config.blocks_per_write);
    loop {
        let mut segments = {
            let mut s = state.borrow_mut();
            if s.closed {
                return Err(PeerError::WriterStopped);
            }
            blocks.clear();
            arrivals.clear();
            while blocks.len() < ctx.config.blocks_per_write {
                let Some(q) = s.queue.pop_front() else { break };
                let Some(data) = torrent.storage.block(q.block) else {
                    // Validated on arrival, so only a vanished file gets here.
                    tracing::warn!(block = ?q.block, "block not readable");
                    continue;
                };
                blocks.push((q.block, data));
                arrivals.push(q.arrived);
            }
            if blocks.is_empty() && s.control.is_empty() {
                None
            } else {
                Some(send::gather(&mut s.control, &blocks))
            }
        };
        let Some(segments) = segments.as_mut() else {
            if tokio::time::timeout(KEEPALIVE_EVERY, wake.notified())
                .await
                .is_err()
            {
                Message::KeepAlive.encode(&mut state.borrow_mut().control);
            }
            continue;
        };
        let mut left: usize = segments.iter().map(Bytes::len).sum();
        let total = left;
        while left > 0 {
            let timeout = ctx.config.send_timeout;
            let (result, written) = match tokio::time::timeout(
                timeout,
                stream.writev(std::mem::take(segments)),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => {
                    return Err(PeerError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no write progress in {timeout:?}"),
                    )))
                }
            };
            *segments = written;
            let n = result?;
            if n == 0 {
                return Err(PeerError::Closed);
            }
            left = send::consume(segments, n);
        }
        CoreStats::add(&counters.bytes_sent, total as u64);
        if !blocks.is_empty() {
            CoreStats::add(&counters.blocks_sent, blocks.len() as u64);
            let payload: usize = blocks.iter().map(|(_, d)| d.len()).sum();
            CoreStats::add(&counters.torrent_bytes[torrent.index], payload as u64);
            let now = Instant::now();
            let mut h = ctx.latency.borrow_mut();
            for a in &arrivals {
                let us = now.duration_since(*a).as_micros() as u64;
                let _ = h.record(us.max(1));
            }
        }
    }
}
