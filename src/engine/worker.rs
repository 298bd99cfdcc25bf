//! Worker threads: one `tokio-uring` runtime per core, each accepting on its own
//! `SO_REUSEPORT` listener and running the connections it accepted until shutdown.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::watch;

use super::choke::core::TorrentCore;
use super::choke::{ChokeEvent, ChokeOwner, PeerKey};
use super::config::split_rate;
use super::control::{CoreCommand, CoreInbox, EngineControl};
use super::limits::{LimitValues, Limits};
use super::sockets::OpenSockets;
use super::stats::{CoreStats, EngineStats};
use super::torrents::SeedTorrent;
use super::utp::{DatagramHandoff, UtpDriver};
use super::zerocopy::ZeroCopyRing;
use super::{peer, EngineConfig};
use crate::metainfo::InfoHash;
use crate::protocol::utp::SocketConfig;
use crate::swarm::{TokenBucket, BLOCK_SIZE};

/// How often each core checks its choker rounds and stopped torrents.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// Tells every worker to stop: close the listeners and every connection.
#[derive(Clone)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(Arc::new(watch::channel(false).0))
    }
}

impl Shutdown {
    /// A shutdown switch, off.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Stops the engine.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// A torrent as one core serves it: the shared torrent and this core's peers and choker.
#[derive(Clone)]
pub(super) struct CoreTorrent {
    pub seed: Arc<SeedTorrent>,
    pub choke: std::rc::Rc<RefCell<TorrentCore>>,
}

/// What a core's tasks share (one per core, never crosses threads).
pub(super) struct CoreContext {
    pub core: usize,
    pub config: Arc<EngineConfig>,
    pub stats: Arc<EngineStats>,
    pub listen_port: u16,
    /// Open connections over all cores (checked on accept only).
    pub open: Arc<AtomicUsize>,
    /// Request arrival to block written, microseconds.
    pub latency: RefCell<Histogram<u64>>,
    /// The origin of the cores' protocol clock (the same for every core).
    pub epoch: Instant,
    /// The torrents this core serves, by info-hash (changed by [`CoreCommand`]s).
    pub torrents: RefCell<HashMap<InfoHash, CoreTorrent>>,
    /// This core's share of the upload limit.
    pub bucket: RefCell<Option<TokenBucket>>,
    /// The limits that change while serving, and the generation this core applied.
    limits: Arc<Limits>,
    limits_seen: Cell<u64>,
    /// This core's upload share, from `limits` (the slots are the choke owner's).
    core_rate: Cell<Option<u64>>,
    /// This core's ring for zero-copy sends (with `send_zc_threshold`).
    pub zero_copy: Option<std::rc::Rc<ZeroCopyRing>>,
    /// This core's connections' sockets, handshaking ones included, for the exit.
    pub sockets: std::rc::Rc<OpenSockets>,
    /// Where the torrents' choke owner listens.
    pub choke_events: std::sync::mpsc::Sender<ChokeEvent>,
    next_key: Cell<PeerKey>,
}

/// What every core's context shares with the others (each core holds its own clones).
struct CoreShared {
    config: Arc<EngineConfig>,
    stats: Arc<EngineStats>,
    open: Arc<AtomicUsize>,
    epoch: Instant,
    limits: Arc<Limits>,
    choke_events: std::sync::mpsc::Sender<ChokeEvent>,
}

impl CoreContext {
    /// Core `core`'s context, on its own thread: its latency histogram, its share of the
    /// upload limit and its zero-copy ring (when the config asks for zero-copy sends and the
    /// kernel has them).
    fn new(core: usize, listen_port: u16, shared: CoreShared) -> CoreContext {
        let CoreShared {
            config,
            stats,
            open,
            epoch,
            limits,
            choke_events,
        } = shared;
        let latency = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        let (generation, values) = limits.get();
        let uplink = split_rate(values.max_upload_rate, config.threads);
        let bucket = uplink.map(|rate| new_bucket(rate, Duration::ZERO));
        let zero_copy = match config.send_zc_threshold {
            Some(_) => match ZeroCopyRing::new() {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!("no zero-copy sends on core {core}: {e}");
                    None
                }
            },
            None => None,
        };
        CoreContext {
            core,
            config,
            stats,
            listen_port,
            open,
            latency: RefCell::new(latency),
            epoch,
            torrents: RefCell::new(HashMap::new()),
            bucket: RefCell::new(bucket),
            limits,
            limits_seen: Cell::new(generation),
            core_rate: Cell::new(uplink),
            zero_copy,
            sockets: Default::default(),
            choke_events,
            next_key: Cell::new(0),
        }
    }

    pub fn counters(&self) -> &CoreStats {
        self.stats.core(self.core)
    }

    /// Now on this core's protocol clock.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The torrent with this info-hash, if this core serves it.
    pub fn torrent(&self, info_hash: &InfoHash) -> Option<CoreTorrent> {
        self.torrents.borrow().get(info_hash).cloned()
    }

    /// The info-hash of the torrent an encrypted (MSE) handshake names by HASH('req2',
    /// info-hash): a scan comparing 20 bytes per torrent, once per encrypted connection.
    pub fn torrent_by_skey_hash(&self, skey_hash: &[u8; 20]) -> Option<InfoHash> {
        self.torrents
            .borrow()
            .iter()
            .find(|(_, t)| t.seed.skey_hash == *skey_hash)
            .map(|(h, _)| *h)
    }

    /// Applies a command from the control side.
    fn apply(&self, command: CoreCommand) {
        match command {
            CoreCommand::AddTorrent(seed) => {
                let choke = std::rc::Rc::new(RefCell::new(TorrentCore::new(
                    self.core,
                    seed.info_hash(),
                    self.choke_events.clone(),
                    seed.counters.clone(),
                )));
                self.torrents
                    .borrow_mut()
                    .insert(seed.info_hash(), CoreTorrent { seed, choke });
            }
            CoreCommand::RemoveTorrent(hash) => {
                let removed = self.torrents.borrow_mut().remove(&hash);
                if let Some(t) = removed {
                    t.choke.borrow_mut().close_all();
                    let counters = t.seed.counters.core(self.core);
                    counters.peers.store(0, Ordering::Relaxed);
                    counters.unchoked.store(0, Ordering::Relaxed);
                }
            }
            CoreCommand::ClosePeers(hash) => {
                if let Some(t) = self.torrent(&hash) {
                    t.choke.borrow_mut().close_all();
                }
            }
            CoreCommand::Choke(order) => {
                let Some(t) = self.torrent(&order.hash) else {
                    // Removed here since: acknowledge so the owner does not wait.
                    if let Some(round) = order.ack {
                        let (core, hash) = (self.core, order.hash);
                        let _ = self
                            .choke_events
                            .send(ChokeEvent::Applied { core, hash, round });
                    }
                    return;
                };
                t.choke.borrow_mut().apply(&order);
            }
        }
    }

    /// Applies a changed upload limit (a config re-read) to this core's upload bucket; the
    /// choke owner applies changed slots. One atomic load when nothing changed.
    fn refresh_limits(&self, now: Duration) {
        if self.limits.generation() == self.limits_seen.get() {
            return;
        }
        let (generation, values) = self.limits.get();
        self.limits_seen.set(generation);
        let uplink = split_rate(values.max_upload_rate, self.config.threads);
        if self.core_rate.get() == uplink {
            return;
        }
        self.core_rate.set(uplink);
        let mut bucket = self.bucket.borrow_mut();
        match (bucket.as_mut(), uplink) {
            (Some(b), Some(rate)) => b.set_rate(rate, now),
            (None, Some(rate)) => *bucket = Some(new_bucket(rate, now)),
            (_, None) => *bucket = None,
        }
    }

    /// A fresh peer key.
    pub fn next_key(&self) -> PeerKey {
        let k = self.next_key.get();
        self.next_key.set(k + 1);
        k
    }
}

/// An upload bucket of `rate` bytes per second with a burst of 4 blocks: smooth, yet enough
/// to batch writes.
fn new_bucket(rate: u64, now: Duration) -> TokenBucket {
    TokenBucket::new(rate, 4 * u64::from(BLOCK_SIZE), now)
}

/// Runs the engine on one thread per listener until `shutdown` is triggered. Blocks. Core
/// `i` takes its commands from `inboxes[i]` (made with `control`, one per listener): the
/// torrents it serves come from there.
pub fn run(
    config: EngineConfig,
    control: &EngineControl,
    inboxes: Vec<CoreInbox>,
    listeners: Vec<TcpListener>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    run_with_utp(
        config,
        control,
        inboxes,
        listeners,
        UtpSockets::default(),
        shutdown,
    )
}

/// The engine's uTP sockets on the listeners' port and who takes their other datagrams.
#[derive(Default)]
pub struct UtpSockets {
    /// One per core, bound with [`super::listen::bind_reuseport_udp`]; empty: TCP only.
    pub sockets: Vec<std::net::UdpSocket>,
    /// Takes the datagrams that are not uTP (the DHT's, on the same port); none: dropped.
    pub others: Option<DatagramHandoff>,
}

/// Like [`run`], with uTP: core `i` also serves uTP connections on `utp.sockets[i]`.
pub fn run_with_utp(
    config: EngineConfig,
    control: &EngineControl,
    inboxes: Vec<CoreInbox>,
    listeners: Vec<TcpListener>,
    utp: UtpSockets,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let UtpSockets {
        sockets: utp_sockets,
        others,
    } = utp;
    if !utp_sockets.is_empty() && utp_sockets.len() != listeners.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "one uTP socket per listener is needed",
        ));
    }
    let mut utp_sockets = utp_sockets.into_iter();
    if inboxes.len() != listeners.len() || control.cores() != listeners.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "one command inbox per listener is needed",
        ));
    }
    let stats = control.stats().clone();
    control.limits().init(LimitValues {
        unchoke_slots: config.unchoke_slots,
        max_upload_rate: config.max_upload_rate,
    });
    let config = Arc::new(config);
    let open = Arc::new(AtomicUsize::new(0));
    let cpus = if config.pin_cores {
        super::tune::allowed_cpus()?
    } else {
        Vec::new()
    };
    let (choke_events, owner_inbox) = std::sync::mpsc::channel();
    let owner = ChokeOwner::new(config.unchoke_slots, config.max_upload_rate);
    let core_senders = control.core_senders();
    let owner_limits = control.limits().clone();
    // Ends when every core has dropped its sender (the cores have stopped).
    let owner = std::thread::Builder::new()
        .name("seedbox-choke".into())
        .spawn(move || {
            super::choke::owner_thread(owner, owner_inbox, core_senders, owner_limits)
        })?;
    let mut threads = Vec::new();
    // One clock for every core: state shared between cores (a torrent's PEX rounds) is
    // timed on it.
    let epoch = Instant::now();
    for (core, (listener, inbox)) in listeners.into_iter().zip(inboxes).enumerate() {
        let listen_port = listener.local_addr()?.port();
        let utp = utp_sockets.next().map(|s| (s, others.clone()));
        let shared = CoreShared {
            config: config.clone(),
            stats: stats.clone(),
            open: open.clone(),
            epoch,
            limits: control.limits().clone(),
            choke_events: choke_events.clone(),
        };
        let stop = shutdown.subscribe();
        let cpu = super::tune::cpu_for_core(&cpus, core);
        let handle = std::thread::Builder::new()
            .name(format!("seedbox-core-{core}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    match super::tune::pin_current_thread(cpu) {
                        Ok(()) => tracing::info!("core {core} pinned to CPU {cpu}"),
                        Err(e) => tracing::warn!("cannot pin core {core} to CPU {cpu}: {e}"),
                    }
                }
                let ctx = CoreContext::new(core, listen_port, shared);
                tokio_uring::start(core_main(listener, utp, inbox, std::rc::Rc::new(ctx), stop))
            })?;
        threads.push(handle);
    }
    drop(choke_events);
    for t in threads {
        if let Err(e) = t.join() {
            std::panic::resume_unwind(e);
        }
    }
    // Not joined: it ends by itself once the cores' senders are gone, and the engine's exit
    // must not wait on it.
    drop(owner);
    Ok(())
}

async fn core_main(
    listener: TcpListener,
    utp: Option<(std::net::UdpSocket, Option<DatagramHandoff>)>,
    mut inbox: CoreInbox,
    ctx: std::rc::Rc<CoreContext>,
    mut stop: watch::Receiver<bool>,
) {
    // The torrents given before the engine started are served from the first connection on.
    while let Ok(command) = inbox.0.try_recv() {
        ctx.apply(command);
    }
    let commands = {
        let ctx = ctx.clone();
        tokio_uring::spawn(async move {
            while let Some(command) = inbox.0.recv().await {
                ctx.apply(command);
            }
        })
    };
    let listener = tokio_uring::net::TcpListener::from_std(listener);
    let utp = utp.map(|(sock, others)| {
        let seed = rand::random::<u64>() ^ ctx.core as u64;
        let driver = UtpDriver::start(sock, SocketConfig::default(), seed);
        if let Some(others) = others {
            driver.set_datagram_sink(Box::new(move |from, datagram| others(from, datagram)));
        }
        driver
    });
    let utp_acceptor = utp
        .clone()
        .map(|driver| tokio_uring::spawn(accept_utp(driver, ctx.clone())));
    let publisher = tokio_uring::spawn(publish_latency(ctx.clone()));
    let housekeeper = tokio_uring::spawn(housekeeping(ctx.clone()));
    let reaper = ctx.zero_copy.clone().map(|ring| {
        tokio_uring::spawn(async move {
            if let Err(e) = ring.reap().await {
                tracing::error!("zero-copy completions: {e}");
            }
        })
    });
    accept_tcp(&listener, &ctx, &mut stop).await;
    publisher.abort();
    housekeeper.abort();
    commands.abort();
    // The accept dropped by the select is still in flight: shutdown(2) on the listening
    // socket completes it (EINVAL), so the wait below reaps it before the runtime drops.
    // SAFETY: the listener is open (it is dropped at the end of this function).
    unsafe { libc::shutdown(std::os::fd::AsRawFd::as_raw_fd(&listener), libc::SHUT_RD) };
    for t in ctx.torrents.borrow().values() {
        t.choke.borrow_mut().close_all();
    }
    // Peers still in their handshake are in no torrent yet: shut every socket down, which
    // completes each pending receive. Then let the connections end: dropping the runtime
    // with operations in flight lets tokio-uring free buffers the kernel may still write.
    ctx.sockets.end_all(Duration::from_secs(2)).await;
    if let Some(driver) = &utp {
        driver.stop().await;
    }
    if let Some(a) = utp_acceptor {
        a.abort();
    }
    if let (Some(ring), Some(reaper)) = (&ctx.zero_copy, reaper) {
        // Let the closed connections' sends finish (their notifications free the buffers).
        wait_until(|| ring.in_flight() == 0, Duration::from_secs(1)).await;
        reaper.abort();
        let c = ring.counts();
        tracing::info!(
            core = ctx.core,
            "zero-copy sends: {} notified, {} of them copied by the kernel",
            c.notified,
            c.copied
        );
    }
    publish_now(&ctx);
}

/// Serves the TCP connections `listener` accepts until `stop` says so, within the engine's
/// peer limit.
async fn accept_tcp(
    listener: &tokio_uring::net::TcpListener,
    ctx: &std::rc::Rc<CoreContext>,
    stop: &mut watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    CoreStats::add(&ctx.counters().accepted, 1);
                    let limit = ctx.config.max_peers;
                    if ctx.open.fetch_add(1, Ordering::Relaxed) >= limit {
                        ctx.open.fetch_sub(1, Ordering::Relaxed);
                        tracing::debug!(%addr, "refused: {limit} peers already connected");
                        drop(stream);
                        continue;
                    }
                    let ctx = ctx.clone();
                    tokio_uring::spawn(async move {
                        peer::serve(stream, addr, &ctx).await;
                        ctx.open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => {}
        }
    }
}

/// Serves the uTP connections `driver` accepts, like the TCP accept loop.
async fn accept_utp(driver: std::rc::Rc<UtpDriver>, ctx: std::rc::Rc<CoreContext>) {
    while let Some((stream, addr)) = driver.accept().await {
        CoreStats::add(&ctx.counters().accepted, 1);
        let limit = ctx.config.max_peers;
        if ctx.open.fetch_add(1, Ordering::Relaxed) >= limit {
            ctx.open.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(%addr, "uTP refused: {limit} peers already connected");
            continue;
        }
        let ctx = ctx.clone();
        tokio_uring::spawn(async move {
            peer::serve_utp(stream, addr, &ctx).await;
            ctx.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Sleeps in steps of 10 ms until `done()` or `limit` has passed. It sleeps before the first
/// check, so the runtime reaps the completions already posted (a shut-down listener's
/// `accept`) even when `done()` holds at once: for the waits at exit, before the runtime
/// drops.
pub(crate) async fn wait_until(mut done: impl FnMut() -> bool, limit: Duration) {
    const STEP: Duration = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    while waited < limit {
        tokio::time::sleep(STEP).await;
        waited += STEP;
        if done() {
            return;
        }
    }
}

/// Once a second: changed limits applied, the upload rates published to the choke owner,
/// the peers of stopped torrents closed, and each torrent's peer counts on this core
/// published.
async fn housekeeping(ctx: std::rc::Rc<CoreContext>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        tick.tick().await;
        let now = ctx.now();
        ctx.refresh_limits(now);
        // The torrents with peers on this core, cloned out so that a choker round never runs
        // under the map's borrow; the others (most of them on an idle box with many torrents)
        // only get their counts zeroed.
        let torrents: Vec<CoreTorrent> = ctx
            .torrents
            .borrow()
            .values()
            .filter(|t| {
                if t.choke.borrow().len() > 0 {
                    return true;
                }
                let counters = t.seed.counters.core(ctx.core);
                counters.peers.store(0, Ordering::Relaxed);
                counters.unchoked.store(0, Ordering::Relaxed);
                false
            })
            .cloned()
            .collect();
        for t in torrents {
            let mut tc = t.choke.borrow_mut();
            if t.seed.is_stopped() {
                if tc.len() > 0 {
                    tc.close_all();
                }
            } else {
                tc.publish_rates(now);
            }
            let counters = t.seed.counters.core(ctx.core);
            counters.peers.store(tc.len() as u64, Ordering::Relaxed);
            counters
                .unchoked
                .store(tc.unchoked() as u64, Ordering::Relaxed);
        }
    }
}

async fn publish_latency(ctx: std::rc::Rc<CoreContext>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        publish_now(&ctx);
    }
}

fn publish_now(ctx: &CoreContext) {
    let h = ctx.latency.borrow().clone();
    *ctx.counters()
        .latency
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(h);
}
