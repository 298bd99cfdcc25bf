//! The downloader behind `seedbox get`: a full BitTorrent leecher on the engine's building
//! blocks (the sans-IO [`Connection`](crate::protocol::Connection), picker and choker, the
//! memory-mapped storage and zero-copy block sending), which lingers as a seed.
//!
//! One download runs on one core: its peers share the picker and storage without locks (a
//! leecher's rate is bounded by the network, not by one core's protocol work; hashing a piece
//! inline costs well under a millisecond). Pieces are hashed as their last block is written,
//! announced with `have` only once verified; a restart re-hashes what is on disk, so only
//! verified bytes ever count as done.

mod peer;
mod session;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;

use crate::engine::dial::dial;
use crate::engine::transport::PeerTransport;
use crate::engine::utp::UtpDriver;
use crate::metainfo::Torrent;
use crate::protocol::mse::EncryptionPolicy;
use crate::protocol::utp::SocketConfig;
use crate::protocol::{ConnectionConfig, PeerId};
use crate::storage::{hash_pieces, Layout, WritableStorage, WriteError, WriteMode};
use crate::swarm::{ChokerConfig, Driver, DriverConfig, Picker, PickerConfig, Slots, TICK};
use crate::tracker::client::{AnnounceStats, Identity, TrackerClient};

pub use crate::swarm::{Totals, BAN_STRIKES};

/// When a completed download stops seeding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Linger {
    /// Seed this long after completion (`0`: exit at once).
    For(Duration),
    /// Seed until uploaded / total size reaches this ratio.
    Ratio(f64),
    /// Seed until interrupted.
    Forever,
}

/// What to download and how.
#[derive(Clone, Debug)]
pub struct DownloadConfig {
    /// The torrent.
    pub torrent: Arc<Torrent>,
    /// The save folder (the content goes to `save_dir/name`).
    pub save_dir: PathBuf,
    /// Peers to connect to besides the tracker's.
    pub peers: Vec<SocketAddr>,
    /// Most connected peers.
    pub max_peers: usize,
    /// Where to accept incoming peers.
    pub listen: SocketAddr,
    /// After completion.
    pub linger: Linger,
    /// Regular unchoke slots.
    pub unchoke_slots: Slots,
    /// Upload limit in bytes per second.
    pub max_upload_rate: Option<u64>,
    /// Hashing threads for the start-up recheck.
    pub threads: usize,
    /// Random seed (peer id, picker, choker); `None` for entropy.
    pub rng_seed: Option<u64>,
    /// Tracker tiers to announce to (empty: none).
    pub trackers: Vec<Vec<String>>,
    /// The DHT node the torrent is announced to and its peers looked up in (none for a
    /// private torrent or with `--no-dht`).
    pub dht: Option<Arc<crate::dht::DhtNode>>,
    /// How blocks are written to the files.
    pub write_mode: WriteMode,
    /// Plain or encrypted (MSE/PE) connections.
    pub encryption: EncryptionPolicy,
    /// Give up when no piece has verified for this long before completion (`None`: never).
    pub stall_timeout: Option<Duration>,
}

/// The tracker tiers of a torrent: `announce-list` when present (BEP 12), else `announce`.
pub fn tracker_tiers(torrent: &Torrent) -> Vec<Vec<String>> {
    if !torrent.announce_list.is_empty() {
        torrent.announce_list.clone()
    } else {
        torrent.announce.iter().map(|a| vec![a.clone()]).collect()
    }
}

/// How a download ended.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DownloadReport {
    /// Whether every piece is verified on disk.
    pub complete: bool,
    /// Seconds from start to completion, if it completed.
    pub seconds_to_complete: Option<f64>,
    /// Seconds the whole run took.
    pub seconds: f64,
    /// Totals.
    #[serde(flatten)]
    pub totals: Totals,
    /// The port we listened on.
    pub listen_port: u16,
}

/// Why a download could not run.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The storage could not be prepared (a full disk lands here, before anything starts).
    #[error(transparent)]
    Storage(#[from] WriteError),
    /// The listen socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing data failed during the download.
    #[error("download stopped: {0}")]
    Fatal(String),
    /// No piece verified for the stall timeout.
    #[error("download stalled: {0}")]
    Stalled(String),
    /// The runtime could not start.
    #[error("io_uring runtime: {0}")]
    Runtime(std::io::Error),
}

/// Progress the caller can draw (bytes verified, rates, peers), updated once a second.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Verified bytes.
    pub have_bytes: u64,
    /// Total bytes.
    pub total_bytes: u64,
    /// Download rate, bytes/s.
    pub down_rate: u64,
    /// Upload rate, bytes/s.
    pub up_rate: u64,
    /// Connected peers.
    pub peers: usize,
    /// Completed.
    pub complete: bool,
}

/// Runs a download to the end of its linger. `progress` is called once a second; `stop`
/// ends the run early (SIGINT).
pub fn run(
    config: DownloadConfig,
    port: PeerPort,
    mut progress: impl FnMut(&Progress),
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<DownloadReport, DownloadError> {
    let torrent = config.torrent.clone();
    let layout = Layout::of_torrent(&torrent, &config.save_dir);
    let existed = layout
        .files()
        .iter()
        .any(|f| !f.padding && std::fs::metadata(&f.path).is_ok_and(|m| m.len() > 0));
    let missing: Vec<PathBuf> = layout
        .files()
        .iter()
        .filter(|f| !f.padding && std::fs::symlink_metadata(&f.path).is_err())
        .map(|f| f.path.clone())
        .collect();
    let (writer, reader) = WritableStorage::open_with(layout, config.write_mode)?;
    let reader = Arc::new(reader);
    let mut rng = match config.rng_seed {
        Some(s) => rand_chacha::ChaCha8Rng::seed_from_u64(s),
        None => rand_chacha::ChaCha8Rng::from_entropy(),
    };
    let mut picker = Picker::new(torrent.geometry(), PickerConfig::default(), &mut rng);
    let mut resumed = 0u32;
    if existed {
        // Resume: whatever is on disk and hashes right is ours; nothing else is.
        let hashes = hash_pieces(&reader, config.threads, &AtomicU64::new(0));
        for (i, h) in hashes.iter().enumerate() {
            if h.as_ref() == Some(torrent.piece_hash(i as u32)) {
                picker.piece_verified(i as u32);
                resumed += 1;
            }
        }
        tracing::info!(resumed, "resume: pieces already verified on disk");
    }
    let choker = ChokerConfig {
        slots: config.unchoke_slots,
        optimistic: true,
    };
    let peer_id = PeerId::generate(&mut rng);
    let driver = Driver::new(
        DriverConfig::network(
            ConnectionConfig {
                // Peers given only a magnet link fetch the info dictionary from us (BEP 9).
                metadata: Some(bytes::Bytes::from(config.torrent.info_bytes.clone())),
                // Peer exchange (BEP 11), never for a private torrent (BEP 27).
                pex: !config.torrent.private,
                // Our DHT port to peers that run a node too (BEP 5), as the PEX rule.
                dht_port: config
                    .dht
                    .as_ref()
                    .filter(|_| !config.torrent.private)
                    .map(|d| d.local_addr().port()),
                ..ConnectionConfig::default()
            },
            choker,
        ),
        picker,
        rng,
    );
    let mut session = session::Session::new(
        torrent.clone(),
        writer,
        reader,
        driver,
        peer_id,
        config.max_upload_rate,
    );
    session.add_candidates(config.peers.iter().copied());
    let session = Rc::new(RefCell::new(session));
    let result = tokio_uring::start(drive(config, port, session, &mut progress, stop));
    let stalled_empty = matches!(&result, Err(DownloadError::Stalled(_))) && !existed;
    if stalled_empty
        || matches!(
            &result,
            Err(DownloadError::Listen { .. } | DownloadError::Runtime(_))
        )
    {
        // Nothing was downloaded: the files this run created would be empty leftovers.
        for path in &missing {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

async fn drive(
    config: DownloadConfig,
    port: PeerPort,
    session: Rc<RefCell<session::Session>>,
    progress: &mut impl FnMut(&Progress),
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<DownloadReport, DownloadError> {
    let listener = tokio_uring::net::TcpListener::from_std(port.tcp);
    let listen_port = listener
        .local_addr()
        .map_err(|source| DownloadError::Listen {
            addr: config.listen,
            source,
        })?
        .port();
    let (utp, utp_acceptor) = start_utp(port.udp, port.others, &config, &session);
    {
        let mut s = session.borrow_mut();
        s.driver.set_listen_port(listen_port);
        s.set_listen(SocketAddr::new(config.listen.ip(), listen_port));
    }
    tracing::debug!(listen_port, "listening");
    let listener_fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    spawn_tcp_acceptor(listener, &config, &session);
    let total = config.torrent.total_length;
    let tracker = start_tracker(&config, &session, listen_port);
    let dht_feed = config.dht.as_ref().map(|d| {
        let hash = config.torrent.info_hash;
        d.announce(hash, listen_port);
        d.lookup(hash)
    });
    let result = run_loop(
        &config,
        &session,
        progress,
        &stop,
        listen_port,
        (tracker.as_ref(), dht_feed.as_ref()),
        total,
    )
    .await;
    if let Some(d) = &config.dht {
        d.remove(config.torrent.info_hash);
    }
    // Complete the accept in flight (EINVAL) so it is reaped before the runtime drops.
    // SAFETY: the listener is open: the accept task holding it runs until the runtime drops.
    unsafe { libc::shutdown(listener_fd, libc::SHUT_RD) };
    // Every connection's socket, handshaking ones included, is shut down and its task awaited
    // (2 s at most), with the listener's `accept`: dropping the runtime with receives in
    // flight lets tokio-uring free buffers the kernel may still write (see `engine::sockets`).
    let sockets = session.borrow().sockets.clone();
    sockets.end_all(Duration::from_secs(2)).await;
    // uTP streams end with their driver (reads and writes fail), and its receive in flight
    // completes before the runtime drops.
    session.borrow_mut().utp = None;
    if let Some(driver) = &utp {
        driver.stop().await;
    }
    if let Some(a) = utp_acceptor {
        a.abort();
    }
    if let Some(t) = tracker {
        // Sends `stopped`; blocks this thread for a few seconds at most, at exit.
        t.shutdown();
    }
    result
}

/// Starts uTP on the listen port's UDP (the same driver as one core of `seed`), handing what
/// is not uTP to `others`, and the task that admits its incoming peers.
fn start_utp(
    udp: Option<std::net::UdpSocket>,
    others: Option<crate::engine::utp::DatagramHandoff>,
    config: &DownloadConfig,
    session: &Rc<RefCell<session::Session>>,
) -> (Option<Rc<UtpDriver>>, Option<tokio::task::JoinHandle<()>>) {
    let utp = udp.map(|sock| {
        let driver = UtpDriver::start(sock, SocketConfig::default(), rand::random::<u64>());
        if let Some(others) = others {
            driver.set_datagram_sink(Box::new(move |from, datagram| others(from, datagram)));
        }
        driver
    });
    session.borrow_mut().utp = utp.clone();
    let acceptor = utp.clone().map(|driver| {
        tokio_uring::spawn(accept_utp(
            driver,
            session.clone(),
            config.max_peers,
            config.encryption,
        ))
    });
    (utp, acceptor)
}

/// Admits incoming TCP peers until the listener is shut down.
fn spawn_tcp_acceptor(
    listener: tokio_uring::net::TcpListener,
    config: &DownloadConfig,
    session: &Rc<RefCell<session::Session>>,
) {
    let session = session.clone();
    let max_peers = config.max_peers;
    let encryption = config.encryption;
    tokio_uring::spawn(async move {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                // The listener was shut down at exit.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(_) => continue,
            };
            admit_incoming(
                &session,
                PeerTransport::Tcp(stream),
                addr,
                max_peers,
                encryption,
            );
        }
    });
}

/// Starts announcing to the torrent's trackers, when it has any.
fn start_tracker(
    config: &DownloadConfig,
    session: &Rc<RefCell<session::Session>>,
    listen_port: u16,
) -> Option<TrackerClient> {
    if config.trackers.is_empty() {
        return None;
    }
    let s = session.borrow();
    // The first announce must carry the real `left` (what the recheck left to fetch): a
    // tracker that sends no seeds to seeds would otherwise take us for a seed and answer
    // without the peers we need.
    let have_bytes = s.verified_bytes();
    let stats = AnnounceStats::default();
    stats.left.store(
        config.torrent.total_length - have_bytes,
        std::sync::atomic::Ordering::Relaxed,
    );
    Some(TrackerClient::spawn(
        config.trackers.clone(),
        Identity {
            info_hash: s.torrent.info_hash,
            peer_id: s.peer_id,
            port: listen_port,
        },
        Arc::new(stats),
    ))
}

/// How long a dialled peer has to connect (TCP or uTP).
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries at binding a TCP listener and the same port's UDP when the port is left to the
/// kernel (port 0): the port it picks for TCP may be taken on UDP.
const BIND_TRIES: usize = 16;
/// Receive queue of the uTP socket (best effort; as `seed`'s per-core sockets).
const UTP_RECV_BUFFER: usize = 4 << 20;

/// The peer port of a download: its TCP listener and, with uTP, the same port's UDP socket
/// and who takes the datagrams there that are not uTP (the DHT's, which shares the port).
pub struct PeerPort {
    /// The listener peers connect to over TCP.
    pub tcp: std::net::TcpListener,
    /// The uTP socket on the same port (`None`: TCP only).
    pub udp: Option<std::net::UdpSocket>,
    /// Takes the datagrams on `udp` that are not uTP; none: dropped.
    pub others: Option<crate::engine::utp::DatagramHandoff>,
}

/// Binds the TCP listener on `listen` and, with `utp`, a UDP socket on the same port (with
/// port 0, a port free on both).
pub fn bind_peer_port(listen: SocketAddr, utp: bool) -> Result<PeerPort, DownloadError> {
    let listen_error = |source| DownloadError::Listen {
        addr: listen,
        source,
    };
    let mut tries = 0;
    loop {
        tries += 1;
        let tcp = std::net::TcpListener::bind(listen).map_err(listen_error)?;
        if !utp {
            return Ok(PeerPort {
                tcp,
                udp: None,
                others: None,
            });
        }
        let bound = tcp.local_addr().map_err(listen_error)?;
        match crate::engine::listen::bind_reuseport_udp(bound, 1, UTP_RECV_BUFFER) {
            Ok(mut socks) => {
                return Ok(PeerPort {
                    tcp,
                    udp: socks.pop(),
                    others: None,
                })
            }
            Err(e) if listen.port() == 0 && tries < BIND_TRIES => {
                tracing::debug!("udp {bound} taken ({e}); another port");
            }
            Err(e) => {
                return Err(listen_error(std::io::Error::new(
                    e.kind(),
                    format!("uTP on udp {bound}: {e} (--no-utp: TCP only)"),
                )))
            }
        }
    }
}

/// Takes the uTP connections peers open to us, like the TCP accept loop.
async fn accept_utp(
    driver: Rc<UtpDriver>,
    session: Rc<RefCell<session::Session>>,
    max_peers: usize,
    encryption: EncryptionPolicy,
) {
    while let Some((stream, addr)) = driver.accept().await {
        admit_incoming(
            &session,
            PeerTransport::Utp(stream),
            addr,
            max_peers,
            encryption,
        );
    }
}

/// Runs a peer that connected to us (TCP or uTP), unless it is banned, already connected
/// from that address, or the session holds `max_peers`; otherwise the stream is dropped.
fn admit_incoming(
    session: &Rc<RefCell<session::Session>>,
    stream: PeerTransport,
    addr: SocketAddr,
    max_peers: usize,
    encryption: EncryptionPolicy,
) {
    let mut s = session.borrow_mut();
    if s.is_banned(addr) || s.connected.len() >= max_peers || !s.connected.insert(addr) {
        return;
    }
    drop(s);
    tokio_uring::spawn(peer::run_peer(
        session.clone(),
        stream,
        addr,
        peer::Side::Incoming,
        encryption,
    ));
}

/// Why a download stalled, in words: what the peers and the trackers gave.
fn stall_message(s: &session::Session, limit: Duration, tracker: Option<&TrackerClient>) -> String {
    use std::sync::atomic::Ordering;
    let d = &s.driver;
    let missing = d.picker().geometry().piece_count() - d.have().count();
    let mut msg = format!(
        "no piece verified for {:?} ({} of {} pieces missing); {} peers connected, {} of them with a missing piece",
        limit,
        missing,
        d.picker().geometry().piece_count(),
        d.peer_count(),
        d.useful_peers(),
    );
    if d.banned_count() > 0 {
        msg += &format!(", {} banned for bad data", d.banned_count());
    }
    match tracker {
        None => msg += "; no tracker (only --peer)",
        Some(t) => {
            let ok = t.stats.announces.load(Ordering::Relaxed);
            let failed = t.stats.failures.load(Ordering::Relaxed);
            msg += &format!("; tracker: {ok} announces answered, {failed} failed");
            if let Some(e) = t.stats.last_error() {
                msg += &format!(" (last: {e})");
            }
        }
    }
    msg
}

#[allow(clippy::too_many_arguments)]
async fn run_loop(
    config: &DownloadConfig,
    session: &Rc<RefCell<session::Session>>,
    progress: &mut impl FnMut(&Progress),
    stop: &std::sync::atomic::AtomicBool,
    listen_port: u16,
    (tracker, dht): (Option<&TrackerClient>, Option<&crate::dht::PeerFeed>),
    total: u64,
) -> Result<DownloadReport, DownloadError> {
    let mut next_tick = tokio::time::Instant::now() + TICK;
    let completed = session.borrow().completed.clone();
    loop {
        dial_candidates(config, session);
        match wait_for_peers(
            config,
            session,
            next_tick,
            &completed,
            listen_port,
            tracker,
            dht,
        )
        .await
        {
            Wake::PeersArrived => continue,
            Wake::Completed => {
                // Between ticks: only whether the download ends now (`--linger 0`).
                let mut s = session.borrow_mut();
                let now = s.now();
                if let Some(report) =
                    check_end(config, &mut s, now, stop, (listen_port, tracker), total)?
                {
                    return Ok(report);
                }
                continue;
            }
            Wake::Tick => {}
        }
        next_tick = tokio::time::Instant::now() + TICK;
        let mut s = session.borrow_mut();
        s.tick();
        let now = s.now();
        report_progress(&mut s, now, progress, tracker, total);
        if let Some(report) = check_end(config, &mut s, now, stop, (listen_port, tracker), total)? {
            return Ok(report);
        }
    }
}

/// Dials candidates while there is room for more peers.
fn dial_candidates(config: &DownloadConfig, session: &Rc<RefCell<session::Session>>) {
    loop {
        let next = {
            let mut s = session.borrow_mut();
            if s.connected.len() >= config.max_peers {
                None
            } else {
                let a = s.candidates.pop_front();
                if let Some(a) = a {
                    s.connected.insert(a);
                }
                a
            }
        };
        let Some(addr) = next else { break };
        let session = session.clone();
        let encryption = config.encryption;
        tokio_uring::spawn(async move {
            let (utp, utp_first) = {
                let s = session.borrow();
                (s.utp.clone(), s.utp_first(addr))
            };
            match dial(addr, utp.as_ref(), utp_first, DIAL_TIMEOUT).await {
                Ok(stream) => {
                    peer::run_peer(session, stream, addr, peer::Side::Outgoing, encryption).await
                }
                Err(e) => {
                    tracing::debug!(%addr, "dial: {e}");
                    session.borrow_mut().connection_ended(addr)
                }
            }
        });
    }
}

/// What ended [`wait_for_peers`].
enum Wake {
    /// The tick is due.
    Tick,
    /// The tracker or the DHT gave peers (already added as candidates).
    PeersArrived,
    /// The last piece was verified.
    Completed,
}

/// Waits for the tick at `next_tick`, for the tracker's or the DHT's answer, or for the
/// download to complete. Peers that arrive are dialled at once: a newcomer would otherwise
/// wait up to a whole tick for the peers of its first announce (the `--peer` addresses are
/// dialled at once anyway).
async fn wait_for_peers(
    config: &DownloadConfig,
    session: &Rc<RefCell<session::Session>>,
    next_tick: tokio::time::Instant,
    completed: &tokio::sync::Notify,
    listen_port: u16,
    tracker: Option<&TrackerClient>,
    dht: Option<&crate::dht::PeerFeed>,
) -> Wake {
    tokio::select! {
        _ = tokio::time::sleep_until(next_tick) => Wake::Tick,
        _ = completed.notified() => Wake::Completed,
        _ = async { tracker.expect("guarded").peers_arrived().await }, if tracker.is_some() => {
            session.borrow_mut().add_candidates(tracker.expect("guarded").new_peers());
            Wake::PeersArrived
        }
        _ = async { dht.expect("guarded").arrived().await }, if dht.is_some() => {
            let listen = config.listen.ip();
            // Our own announce comes back in the answers.
            let others = dht.expect("guarded").take().into_iter().filter(|p| {
                !(p.port() == listen_port && (p.ip().is_loopback() || p.ip() == listen))
            });
            session.borrow_mut().add_candidates(others);
            Wake::PeersArrived
        }
    }
}

/// After a tick: the tracker's stats and its new peers, and the caller's progress report.
fn report_progress(
    s: &mut session::Session,
    now: Duration,
    progress: &mut impl FnMut(&Progress),
    tracker: Option<&TrackerClient>,
    total: u64,
) {
    use std::sync::atomic::Ordering;
    let have_bytes = s.verified_bytes();
    if let Some(t) = tracker {
        let totals = s.driver.totals();
        t.stats.uploaded.store(totals.uploaded, Ordering::Relaxed);
        t.stats
            .downloaded
            .store(totals.downloaded, Ordering::Relaxed);
        t.stats.left.store(total - have_bytes, Ordering::Relaxed);
        if !s.is_complete() && s.peer_count() < 5 {
            t.stats.want_peers.store(true, Ordering::Relaxed);
        }
        let fresh = t.new_peers();
        s.add_candidates(fresh);
    }
    progress(&Progress {
        have_bytes,
        total_bytes: total,
        down_rate: s.down_total.rate(now),
        up_rate: s.up_total.rate(now),
        peers: s.peer_count(),
        complete: s.is_complete(),
    });
}

/// After a tick: whether the download ends (a fatal error, a stall, done lingering, or
/// stopped), with its report.
fn check_end(
    config: &DownloadConfig,
    s: &mut session::Session,
    now: Duration,
    stop: &std::sync::atomic::AtomicBool,
    (listen_port, tracker): (u16, Option<&TrackerClient>),
    total: u64,
) -> Result<Option<DownloadReport>, DownloadError> {
    if let Some(e) = s.fatal.take() {
        return Err(DownloadError::Fatal(e));
    }
    if let Some(limit) = config.stall_timeout {
        if s.driver.stalled_for(now) >= limit {
            return Err(DownloadError::Stalled(stall_message(s, limit, tracker)));
        }
    }
    let completed_at = s.driver.completed_at();
    let done_lingering = match (completed_at, config.linger) {
        (None, _) => false,
        (Some(at), Linger::For(d)) => now.saturating_sub(at) >= d,
        (Some(_), Linger::Ratio(r)) => s.driver.totals().uploaded as f64 >= r * total as f64,
        (Some(_), Linger::Forever) => false,
    };
    if !done_lingering && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(None);
    }
    let report = DownloadReport {
        complete: s.is_complete(),
        seconds_to_complete: completed_at.map(|d| d.as_secs_f64()),
        seconds: now.as_secs_f64(),
        totals: s.driver.totals().clone(),
        listen_port,
    };
    if s.is_complete() {
        if let Err(e) = s.writer.flush() {
            return Err(DownloadError::Fatal(e.to_string()));
        }
    }
    Ok(Some(report))
}
