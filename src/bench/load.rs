//! `seedbox bench load`: synthetic leechers that keep a seed busy and measure what it serves.
//!
//! Each connection handshakes, declares interest, keeps `queue` requests in flight for random
//! blocks across the whole torrent and throws the data away: piece payloads are discarded in
//! the kernel (`recv` with `MSG_TRUNC`, which TCP honours without copying), so on a shared
//! machine the load generator leaves the CPU to the seed it measures; `copy_payload` reads
//! them into memory instead, as a real client would. A seed that advertises a smaller
//! request queue (`reqq` in its BEP 10 extension handshake) gets that many instead: more would
//! be refused, or taken as a request flood. Connections are spread over one
//! `tokio-uring` runtime per worker thread, like the seed server. Throughput is measured on the
//! wall clock over the measurement window (after a warm-up), from counters sampled once a
//! second: never a sum of per-connection averages.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};

use crate::engine::sockets::OpenSockets;
use crate::metainfo::InfoHash;
use crate::protocol::extension::{ExtendedHandshake, EXTENDED_HANDSHAKE_ID};
use crate::protocol::wire::{Handshake, Message, MessageDecoder};
use crate::protocol::PeerId;
use crate::swarm::{BlockRef, PieceGeometry, BLOCK_SIZE};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The seed to load.
    pub target: SocketAddr,
    /// The torrent it seeds.
    pub info_hash: InfoHash,
    /// Its geometry.
    pub geometry: PieceGeometry,
    /// Connections.
    pub conns: usize,
    /// Requests in flight per connection.
    pub queue: usize,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Measurement window.
    pub duration: Duration,
    /// Worker threads.
    pub threads: usize,
    /// Source addresses to bind, round robin (empty: the kernel's choice).
    pub source_ips: Vec<IpAddr>,
    /// Random seed for block choice.
    pub rng_seed: u64,
    /// Read piece payloads into user memory (as a client would) instead of discarding them
    /// in the kernel.
    pub copy_payload: bool,
}

/// Counters shared by the workers (one set per worker, summed on read).
#[derive(Default)]
struct WorkerCounters {
    payload_bytes: AtomicU64,
    blocks: AtomicU64,
    connected: AtomicU64,
    errors: AtomicU64,
    /// Connections whose queue the seed's `reqq` capped.
    capped: AtomicU64,
    /// The smallest `reqq` below `queue` seen (`u64::MAX`: none).
    min_reqq: AtomicU64,
}

impl WorkerCounters {
    fn new() -> Self {
        WorkerCounters {
            min_reqq: AtomicU64::new(u64::MAX),
            ..WorkerCounters::default()
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadReport {
    /// Connections asked for.
    pub conns: usize,
    /// Connections that completed the handshake.
    pub connected: u64,
    /// Requests in flight per connection asked for (`--queue`).
    pub queue: usize,
    /// Connections that kept fewer in flight because the seed advertised a smaller `reqq`.
    pub queue_capped_conns: u64,
    /// The smallest such `reqq` (what those connections kept in flight), if any.
    pub queue_capped_to: Option<u64>,
    /// Measurement window in seconds (wall clock).
    pub seconds: f64,
    /// Payload bytes received in the window.
    pub payload_bytes: u64,
    /// Payload throughput in Gbit/s over the window.
    pub gbit_per_s: f64,
    /// Blocks per second over the window.
    pub blocks_per_s: f64,
    /// Request-to-block latency percentiles in microseconds.
    pub latency_us: LatencySummary,
    /// Connection errors (refused, reset, protocol errors).
    pub errors: u64,
    /// Payload Gbit/s in each second of the window.
    pub timeline_gbit_per_s: Vec<f64>,
}

/// Latency percentiles.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
    /// Samples.
    pub count: u64,
}

/// Runs the load and reports. Blocks the calling thread for warm-up + duration.
pub fn run_load(config: &LoadConfig) -> std::io::Result<LoadReport> {
    let threads = config.threads.max(1).min(config.conns.max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<WorkerCounters>> = (0..threads)
        .map(|_| Arc::new(WorkerCounters::new()))
        .collect();
    let mut workers = Vec::new();
    for t in 0..threads {
        let conns: Vec<usize> = (t..config.conns).step_by(threads).collect();
        let config = config.clone();
        let stop = stop.clone();
        let measuring = measuring.clone();
        let counters = counters[t].clone();
        workers.push(std::thread::spawn(move || {
            tokio_uring::start(worker(config, conns, stop, measuring, counters))
        }));
    }
    let sum = |f: &dyn Fn(&WorkerCounters) -> u64| counters.iter().map(|c| f(c)).sum::<u64>();
    std::thread::sleep(config.warmup);
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let start_bytes = sum(&|c| c.payload_bytes.load(Ordering::Relaxed));
    let start_blocks = sum(&|c| c.blocks.load(Ordering::Relaxed));
    let mut timeline = Vec::new();
    let mut last = start_bytes;
    let mut last_t = start;
    while start.elapsed() < config.duration {
        let next = last_t + Duration::from_secs(1);
        let end = (start + config.duration).min(next);
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        let bytes = sum(&|c| c.payload_bytes.load(Ordering::Relaxed));
        let dt = now.duration_since(last_t).as_secs_f64();
        timeline.push((bytes - last) as f64 * 8.0 / dt / 1e9);
        last = bytes;
        last_t = now;
    }
    let seconds = start.elapsed().as_secs_f64();
    let bytes = sum(&|c| c.payload_bytes.load(Ordering::Relaxed)) - start_bytes;
    let blocks = sum(&|c| c.blocks.load(Ordering::Relaxed)) - start_blocks;
    stop.store(true, Ordering::Relaxed);
    let mut hist = new_histogram();
    for w in workers {
        if let Ok(Ok(h)) = w.join() {
            let _ = hist.add(h);
        }
    }
    Ok(LoadReport {
        conns: config.conns,
        connected: sum(&|c| c.connected.load(Ordering::Relaxed)),
        queue: config.queue,
        queue_capped_conns: sum(&|c| c.capped.load(Ordering::Relaxed)),
        queue_capped_to: counters
            .iter()
            .map(|c| c.min_reqq.load(Ordering::Relaxed))
            .min()
            .filter(|&m| m != u64::MAX),
        seconds,
        payload_bytes: bytes,
        gbit_per_s: bytes as f64 * 8.0 / seconds / 1e9,
        blocks_per_s: blocks as f64 / seconds,
        latency_us: LatencySummary {
            p50: hist.value_at_quantile(0.5),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
            count: hist.len(),
        },
        errors: sum(&|c| c.errors.load(Ordering::Relaxed)),
        timeline_gbit_per_s: timeline,
    })
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

async fn worker(
    config: LoadConfig,
    conns: Vec<usize>,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
    counters: Arc<WorkerCounters>,
) -> std::io::Result<Histogram<u64>> {
    let hist = Rc::new(std::cell::RefCell::new(new_histogram()));
    let config = Rc::new(config);
    let sockets = Rc::new(OpenSockets::default());
    let mut tasks = Vec::new();
    for index in conns {
        let config = config.clone();
        let (stop, measuring, counters, hist, sockets) = (
            stop.clone(),
            measuring.clone(),
            counters.clone(),
            hist.clone(),
            sockets.clone(),
        );
        tasks.push(tokio_uring::spawn(async move {
            let result = connection(
                &config, index, &stop, &measuring, &counters, &hist, &sockets,
            )
            .await;
            if let Err(e) = result {
                if !stop.load(Ordering::Relaxed) {
                    tracing::debug!("connection {index}: {e}");
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The runtime must not be dropped with a receive still in flight: tokio-uring then frees
    // memory the kernel may still write (seen as glibc's "corrupted double-linked list" abort
    // at the end of a 512-connection run). shutdown(2) completes every pending receive, so
    // each task sees its socket end and returns; wait for all of them.
    sockets.shutdown_all();
    let all = await_all(tasks);
    if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
        tracing::warn!("some connections did not end within {SHUTDOWN_GRACE:?} of the stop");
    }
    let h = hist.borrow().clone();
    Ok(h)
}

/// How long the workers wait for their connections to end after the stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Awaits every task in turn (they run concurrently anyway; this only waits for the last).
async fn await_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

fn connect_std(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<std::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.connect(&target.into())?;
    socket.set_nodelay(true)?;
    Ok(socket.into())
}

/// One synthetic leecher.
async fn connection(
    config: &LoadConfig,
    index: usize,
    stop: &AtomicBool,
    measuring: &AtomicBool,
    counters: &WorkerCounters,
    hist: &std::cell::RefCell<Histogram<u64>>,
    sockets: &Rc<OpenSockets>,
) -> std::io::Result<()> {
    let source =
        (!config.source_ips.is_empty()).then(|| config.source_ips[index % config.source_ips.len()]);
    let std_stream = connect_std(config.target, source)?;
    let stream = tokio_uring::net::TcpStream::from_std(std_stream);
    let _registered = sockets.register(stream.as_raw_fd());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.rng_seed ^ index as u64);
    let (mut reader, mut buf) = handshake(&stream, config, &mut rng).await?;
    counters.connected.fetch_add(1, Ordering::Relaxed);

    let mut events = Vec::new();
    // Whatever came after the handshake in the same reads.
    reader.drain(&mut events).map_err(std::io::Error::other)?;
    let mut state = Requests {
        inflight: std::collections::HashMap::with_capacity(config.queue * 2),
        unchoked: false,
        queue: config.queue,
    };
    let mut requests = BytesMut::new();
    let fd = stream.as_raw_fd();
    // Without --copy-payload reads are small: a message head and a little payload, the rest
    // of which `pump` discards in the kernel.
    if !config.copy_payload {
        buf = vec![0u8; HEAD_READ];
    }
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // What the last read parsed.
        state.apply(&mut events, config, measuring, counters, hist);
        state.top_up(config, &mut rng, &mut requests);
        if !requests.is_empty() {
            let chunk = requests.split().freeze();
            let (res, _) = stream.write_all(chunk).await;
            res?;
        }
        let (res, b) = stream.read(buf).await;
        buf = b;
        let n = res?;
        if n == 0 {
            return Err(std::io::Error::other("seed closed the connection"));
        }
        reader
            .feed(&buf[..n], &mut events)
            .map_err(std::io::Error::other)?;
        if !config.copy_payload {
            pump(fd, &mut reader, &mut buf, &mut events)?;
        }
    }
}

/// Sends our handshake and `interested`, and reads the seed's handshake: the reader holding
/// whatever came after it, and the read buffer.
async fn handshake(
    stream: &tokio_uring::net::TcpStream,
    config: &LoadConfig,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> std::io::Result<(StreamReader, Vec<u8>)> {
    let peer_id = PeerId::generate(rng);
    let hs = Handshake::new(config.info_hash, peer_id).encode().to_vec();
    let mut out = BytesMut::new();
    Message::Interested.encode(&mut out);
    let mut first = hs;
    first.extend_from_slice(&out);
    let (res, _) = stream.write_all(first).await;
    res?;

    let mut reader = StreamReader::new(config.geometry.piece_count());
    let mut buf = vec![0u8; 256 * 1024];
    while reader.pending.len() < 68 {
        let (res, b) = stream.read(buf).await;
        buf = b;
        let n = res?;
        if n == 0 {
            return Err(std::io::Error::other("closed during handshake"));
        }
        reader.pending.extend_from_slice(&buf[..n]);
    }
    let theirs = Handshake::decode(&mut reader.pending)
        .map_err(std::io::Error::other)?
        .ok_or_else(|| std::io::Error::other("short handshake"))?;
    if theirs.info_hash != config.info_hash {
        return Err(std::io::Error::other(
            "seed answered with another info-hash",
        ));
    }
    Ok((reader, buf))
}

/// One synthetic leecher's requests.
struct Requests {
    /// Outstanding requests and when each was sent.
    inflight: std::collections::HashMap<BlockRef, Instant>,
    unchoked: bool,
    /// Requests kept in flight: --queue, or the seed's reqq when smaller.
    queue: usize,
}

impl Requests {
    /// Applies what the last read parsed: blocks (latency and counts), chokes, rejects, reqq.
    fn apply(
        &mut self,
        events: &mut Vec<Event>,
        config: &LoadConfig,
        measuring: &AtomicBool,
        counters: &WorkerCounters,
        hist: &std::cell::RefCell<Histogram<u64>>,
    ) {
        for ev in events.drain(..) {
            match ev {
                Event::Block(block) => {
                    if let Some(sent) = self.inflight.remove(&block) {
                        if measuring.load(Ordering::Relaxed) {
                            let us = sent.elapsed().as_micros() as u64;
                            let _ = hist.borrow_mut().record(us.max(1));
                        }
                    }
                    counters
                        .payload_bytes
                        .fetch_add(u64::from(block.length), Ordering::Relaxed);
                    counters.blocks.fetch_add(1, Ordering::Relaxed);
                }
                Event::Unchoke => self.unchoked = true,
                Event::Choke => {
                    self.unchoked = false;
                    self.inflight.clear();
                }
                Event::Rejected(block) => {
                    self.inflight.remove(&block);
                }
                Event::Reqq(reqq) => {
                    let capped = effective_queue(config.queue, reqq);
                    if capped < config.queue && self.queue == config.queue {
                        counters.capped.fetch_add(1, Ordering::Relaxed);
                        counters
                            .min_reqq
                            .fetch_min(capped as u64, Ordering::Relaxed);
                    }
                    self.queue = capped;
                }
            }
        }
    }

    /// Encodes random block requests into `out` until `queue` are in flight (when unchoked).
    fn top_up(
        &mut self,
        config: &LoadConfig,
        rng: &mut rand_chacha::ChaCha8Rng,
        out: &mut BytesMut,
    ) {
        let pieces = config.geometry.piece_count();
        if !self.unchoked || pieces == 0 {
            return;
        }
        while self.inflight.len() < self.queue {
            let piece = rng.gen_range(0..pieces);
            let index = rng.gen_range(0..config.geometry.block_count(piece));
            let block = config.geometry.block(piece, index);
            if self.inflight.insert(block, Instant::now()).is_none() {
                Message::Request(block).encode(out);
            }
        }
    }
}

/// Bytes read at a time when payloads are discarded in the kernel: a piece header (13 bytes)
/// and a little payload, or a piece of a longer control message.
const HEAD_READ: usize = 256;

/// Blocks parsed before `pump` hands back to the request loop.
const PUMP_BATCH: usize = 32;

/// Reads what the socket already holds without waiting: piece payloads are discarded in the
/// kernel, message heads are read into `buf` and parsed. Returns when the socket is drained
/// (`EAGAIN`) or after [`PUMP_BATCH`] events, so requests are topped up as blocks arrive.
fn pump(
    fd: std::os::fd::RawFd,
    reader: &mut StreamReader,
    buf: &mut [u8],
    events: &mut Vec<Event>,
) -> std::io::Result<()> {
    let closed = || std::io::Error::other("seed closed the connection");
    loop {
        while reader.skip > 0 {
            match discard_now(fd, reader.skip) {
                Ok(0) => return Err(closed()),
                Ok(n) => reader.skip -= n.min(reader.skip),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        if events.len() >= PUMP_BATCH {
            return Ok(());
        }
        match recv_now(fd, buf) {
            Ok(0) => return Err(closed()),
            Ok(n) => reader
                .feed(&buf[..n], events)
                .map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// A non-blocking `recv` into `buf`.
fn recv_now(fd: std::os::fd::RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    recv_flags(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
}

/// A non-blocking `recv` of at most `len` bytes discarded in the kernel: `MSG_TRUNC`, which a
/// TCP socket honours without copying the data anywhere.
fn discard_now(fd: std::os::fd::RawFd, len: usize) -> std::io::Result<usize> {
    recv_flags(
        fd,
        std::ptr::null_mut(),
        len,
        libc::MSG_DONTWAIT | libc::MSG_TRUNC,
    )
}

fn recv_flags(
    fd: std::os::fd::RawFd,
    ptr: *mut libc::c_void,
    len: usize,
    flags: libc::c_int,
) -> std::io::Result<usize> {
    // SAFETY: the two callers pass either `len` writable bytes of a borrowed buffer or a null
    // pointer with MSG_TRUNC, for which TCP writes nothing.
    let n = unsafe { libc::recv(fd, ptr, len, flags) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// What the load generator cares about in the stream.
enum Event {
    Block(BlockRef),
    Unchoke,
    Choke,
    Rejected(BlockRef),
    /// The seed's extension handshake advertised this request queue depth.
    Reqq(u32),
}

/// Requests to keep in flight: `queue`, capped by the seed's advertised `reqq` (at least 1).
fn effective_queue(queue: usize, reqq: u32) -> usize {
    queue.min(reqq.max(1) as usize)
}

/// A stream parser that skips piece payloads without copying them.
struct StreamReader {
    decoder: MessageDecoder,
    pending: BytesMut,
    /// Payload bytes of the current piece message still to skip.
    skip: usize,
}

impl StreamReader {
    fn new(piece_count: u32) -> Self {
        StreamReader {
            decoder: MessageDecoder::for_piece_count(piece_count),
            pending: BytesMut::with_capacity(64 * 1024),
            skip: 0,
        }
    }

    /// Parses `data` into `events`. Only message heads (and whole non-piece messages) are
    /// copied into `pending`: piece payloads are skipped where they lie in `data`.
    fn feed(
        &mut self,
        mut data: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), crate::protocol::wire::WireError> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
            }
            if data.is_empty() {
                return Ok(());
            }
            let n = self.wanted().min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.drain(events)?;
        }
    }

    /// Bytes to append to `pending` before [`StreamReader::drain`] can make progress: the rest
    /// of a length prefix and id, of a piece header, or of a whole other message (at least 1).
    fn wanted(&self) -> usize {
        let p = &self.pending;
        if p.len() < 5 {
            return 5 - p.len();
        }
        let len = u32::from_be_bytes(p[0..4].try_into().unwrap()) as usize;
        let whole = if len == 0 {
            4
        } else if p[4] == 7 {
            13
        } else {
            4 + len
        };
        whole.saturating_sub(p.len()).max(1)
    }

    fn drain(&mut self, events: &mut Vec<Event>) -> Result<(), crate::protocol::wire::WireError> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.pending.len());
                let _ = self.pending.split_to(n);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(());
                }
            }
            let is_piece = self.pending.len() >= 5
                && self.pending[0..4] != [0, 0, 0, 0]
                && self.pending[4] == 7;
            if is_piece {
                if self.pending.len() < 13 {
                    return Ok(()); // wait for the whole piece header
                }
                // A piece message: take the header, skip the payload as it streams by.
                let len = u32::from_be_bytes(self.pending[0..4].try_into().unwrap());
                if !(9..=BLOCK_SIZE + 9).contains(&len) {
                    return Err(crate::protocol::wire::WireError::MessageTooLong {
                        length: len,
                        max: BLOCK_SIZE + 9,
                    });
                }
                let piece = u32::from_be_bytes(self.pending[5..9].try_into().unwrap());
                let offset = u32::from_be_bytes(self.pending[9..13].try_into().unwrap());
                let _ = self.pending.split_to(13);
                self.skip = len as usize - 9;
                events.push(Event::Block(BlockRef {
                    piece,
                    offset,
                    length: len - 9,
                }));
                continue;
            }
            let decoded = match self.decoder.decode(&mut self.pending) {
                Err(e) if !e.is_fatal() => continue,
                other => other?,
            };
            match decoded {
                None => return Ok(()),
                Some(Message::Unchoke) => events.push(Event::Unchoke),
                Some(Message::Choke) => events.push(Event::Choke),
                Some(Message::RejectRequest(b)) => events.push(Event::Rejected(b)),
                Some(Message::Extended { id, payload }) if id == EXTENDED_HANDSHAKE_ID => {
                    // An unreadable handshake leaves the queue as asked.
                    if let Some(reqq) = ExtendedHandshake::parse(&payload).ok().and_then(|h| h.reqq)
                    {
                        events.push(Event::Reqq(reqq));
                    }
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_reqq_caps_the_queue() {
        assert_eq!(effective_queue(64, 16), 16);
        assert_eq!(effective_queue(64, 500), 64);
        assert_eq!(effective_queue(64, 0), 1);
    }

    #[test]
    fn the_extension_handshake_yields_reqq() {
        let mut bytes = BytesMut::new();
        Message::Extended {
            id: EXTENDED_HANDSHAKE_ID,
            payload: ExtendedHandshake::seedbox(16, None, None).encode().into(),
        }
        .encode(&mut bytes);
        Message::Unchoke.encode(&mut bytes);
        let mut reader = StreamReader::new(10);
        let mut events = Vec::new();
        reader.feed(&bytes, &mut events).unwrap();
        assert!(matches!(events[..], [Event::Reqq(16), Event::Unchoke]));
    }

    /// A stream cut at every byte boundary parses to the same events, and piece payloads never
    /// enter `pending` (only heads are copied).
    #[test]
    fn any_cut_parses_the_same_without_buffering_payloads() {
        let mut bytes = BytesMut::new();
        Message::Unchoke.encode(&mut bytes);
        let blocks = [
            BlockRef {
                piece: 1,
                offset: 0,
                length: BLOCK_SIZE,
            },
            BlockRef {
                piece: 2,
                offset: BLOCK_SIZE,
                length: 100,
            },
        ];
        for b in blocks {
            bytes.extend_from_slice(&crate::protocol::wire::piece_header(
                b.piece, b.offset, b.length,
            ));
            bytes.extend_from_slice(&vec![0xAB; b.length as usize]);
            Message::KeepAlive.encode(&mut bytes);
        }
        Message::RejectRequest(blocks[0]).encode(&mut bytes);
        Message::Choke.encode(&mut bytes);
        let summary = |events: &[Event]| -> Vec<String> {
            events
                .iter()
                .map(|e| match e {
                    Event::Block(b) => format!("block {b:?}"),
                    Event::Unchoke => "unchoke".into(),
                    Event::Choke => "choke".into(),
                    Event::Rejected(b) => format!("rejected {b:?}"),
                    Event::Reqq(r) => format!("reqq {r}"),
                })
                .collect()
        };
        let mut whole = StreamReader::new(10);
        let mut expected = Vec::new();
        whole.feed(&bytes, &mut expected).unwrap();
        assert_eq!(expected.len(), 5);
        for cut in (0..bytes.len()).step_by(7) {
            let mut r = StreamReader::new(10);
            let mut events = Vec::new();
            r.feed(&bytes[..cut], &mut events).unwrap();
            assert!(
                r.pending.len() <= 17,
                "cut {cut}: {} buffered",
                r.pending.len()
            );
            r.feed(&bytes[cut..], &mut events).unwrap();
            assert_eq!(summary(&events), summary(&expected), "cut {cut}");
        }
    }

    /// Over a real TCP socket, `pump` discards payloads in the kernel and still finds every
    /// message after them: 200 piece messages of mixed lengths, with control messages
    /// between, arrive as the same events in order, whatever the write sizes.
    #[test]
    fn pump_discards_payloads_in_the_kernel_and_keeps_the_framing() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        let mut bytes = BytesMut::new();
        let mut want = Vec::new();
        for i in 0..200u32 {
            let length = [BLOCK_SIZE, 1, 5000, BLOCK_SIZE - 1][i as usize % 4];
            let b = BlockRef {
                piece: i,
                offset: i * 7,
                length,
            };
            bytes.extend_from_slice(&crate::protocol::wire::piece_header(
                b.piece, b.offset, b.length,
            ));
            bytes.extend_from_slice(&vec![i as u8; length as usize]);
            want.push(format!("{b:?}"));
            if i % 50 == 49 {
                Message::Unchoke.encode(&mut bytes);
                want.push("unchoke".into());
            }
        }
        let writer = std::thread::spawn(move || {
            // Odd write sizes, so heads and payloads are cut everywhere.
            for chunk in bytes.chunks(7919) {
                tx.write_all(chunk).unwrap();
            }
            tx // kept open: a close would end the stream with an error
        });
        let mut reader = StreamReader::new(1000);
        let mut buf = vec![0u8; HEAD_READ];
        let mut events = Vec::new();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < want.len() {
            assert!(Instant::now() < deadline, "stalled after {got:?}");
            pump(rx.as_raw_fd(), &mut reader, &mut buf, &mut events).unwrap();
            for e in events.drain(..) {
                got.push(match e {
                    Event::Block(b) => format!("{b:?}"),
                    Event::Unchoke => "unchoke".into(),
                    _ => "other".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(writer.join().unwrap());
        assert_eq!(got, want);
        assert_eq!(reader.skip, 0);
        assert!(reader.pending.is_empty());
    }
}
