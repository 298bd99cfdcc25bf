//! The HTTP and UDP tracker server: the I/O edge around the sans-IO [`Registry`](crate::tracker::Registry), announce
//! and UDP codecs.
//!
//! Thread-per-core like the seed engine: one `tokio-uring` runtime per worker thread, each
//! with its own `SO_REUSEPORT` TCP listener and UDP socket on the same ports, so the kernel
//! spreads clients over the cores. The swarms live in a [`ShardedRegistry`] (independently
//! locked shards chosen by info-hash), shared by every core; a lock is held only for the
//! registry update itself, never across I/O. Each core also sweeps its share of the shards
//! for peers silent for one and a half intervals.
//!
//! ```no_run
//! use seedbox::tracker::server::{TrackerConfig, TrackerServer};
//! let tracker = TrackerServer::start(TrackerConfig::default())?;
//! println!("announce to {}", tracker.announce_url().unwrap());
//! # Ok::<(), seedbox::tracker::server::ServerError>(())
//! ```

pub mod http;
pub mod sharded;
pub mod udp;
pub mod web;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::metainfo::InfoHash;
use crate::tracker::conn_id::{ConnectionIds, DEFAULT_WINDOW};
use crate::tracker::registry::RegistryConfig;

pub use sharded::ShardedRegistry;
pub use web::WebTorrents;

/// Settings of a tracker server.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Where the HTTP side (announce, scrape, web pages) listens; `None` for no HTTP.
    pub http: Option<SocketAddr>,
    /// Where the UDP side (BEP 15) listens; `None` for no UDP.
    pub udp: Option<SocketAddr>,
    /// Worker threads (0: one per available core).
    pub threads: usize,
    /// Intervals, `numwant` default and cap, whitelist.
    pub registry: RegistryConfig,
    /// Whether an announce's `ip` parameter (HTTP) or field (UDP) is believed. Off by
    /// default: anyone could otherwise point a swarm at a third party.
    pub trust_ip: bool,
    /// How long a client may take to send a whole request head once it started one.
    pub header_timeout: Duration,
    /// How long an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// The most bytes of a request line plus headers.
    pub max_head: usize,
    /// Open HTTP connections over all cores; more are closed at once.
    pub max_connections: usize,
    /// Registry shards (independent locks).
    pub shards: usize,
    /// The most swarms a full scrape (no `info_hash`) lists; 0 refuses full scrapes.
    pub full_scrape_limit: usize,
    /// UDP connection ids live between one and two of these windows.
    pub conn_id_window: Duration,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            udp: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            threads: 0,
            registry: RegistryConfig::default(),
            trust_ip: false,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_head: 8 * 1024,
            max_connections: 20_000,
            shards: 64,
            full_scrape_limit: 1000,
            conn_id_window: DEFAULT_WINDOW,
        }
    }
}

/// Why the tracker could not start, or refused a call.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding a listening socket failed.
    #[error("cannot listen on {proto} {addr}: {source}")]
    Bind {
        /// `tcp` or `udp`.
        proto: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Starting a worker thread failed.
    #[error("cannot start a tracker thread: {0}")]
    Thread(std::io::Error),
    /// Neither HTTP nor UDP was asked for.
    #[error("the tracker needs an HTTP or a UDP address")]
    NothingToListenOn,
    /// A torrent name that cannot be a file name in `/torrents/`.
    #[error("bad torrent name {0:?} (empty, or contains `/`)")]
    BadName(String),
}

/// Counters of a running tracker.
#[derive(Debug, Default)]
pub struct TrackerStats {
    /// HTTP announces answered with peers.
    pub http_announces: AtomicU64,
    /// UDP announces answered with peers.
    pub udp_announces: AtomicU64,
    /// Scrapes answered (HTTP and UDP).
    pub scrapes: AtomicU64,
    /// Requests refused with a failure or error reply, or dropped.
    pub refused: AtomicU64,
    /// HTTP connections accepted.
    pub connections: AtomicU64,
}

impl TrackerStats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every core shares.
#[derive(Debug)]
pub struct Shared {
    /// The settings.
    pub config: TrackerConfig,
    /// The swarms.
    pub registry: ShardedRegistry,
    /// UDP connection ids.
    pub conn_ids: ConnectionIds,
    /// The `.torrent` files served on the web side.
    pub web: WebTorrents,
    /// Counters.
    pub stats: TrackerStats,
    /// Open HTTP connections.
    pub open: AtomicUsize,
    started: Instant,
}

impl Shared {
    /// Builds the shared state (no sockets); tests drive the sans-IO handlers with it.
    pub fn new(config: TrackerConfig) -> Self {
        Shared {
            registry: ShardedRegistry::new(&config.registry, config.shards),
            conn_ids: ConnectionIds::random(config.conn_id_window),
            web: WebTorrents::default(),
            stats: TrackerStats::default(),
            open: AtomicUsize::new(0),
            config,
            started: Instant::now(),
        }
    }

    /// Time since the tracker started (the registry's clock).
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Starts trackers.
#[derive(Debug)]
pub struct TrackerServer;

impl TrackerServer {
    /// Binds the sockets and starts the worker threads. Returns once the tracker answers.
    pub fn start(config: TrackerConfig) -> Result<TrackerHandle, ServerError> {
        if config.http.is_none() && config.udp.is_none() {
            return Err(ServerError::NothingToListenOn);
        }
        let threads = if config.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.threads
        };
        let mut tcp: Vec<Option<TcpListener>> = (0..threads).map(|_| None).collect();
        let mut http_addr = None;
        if let Some(addr) = config.http {
            let ls = crate::engine::bind_reuseport(addr, threads).map_err(|source| {
                ServerError::Bind {
                    proto: "tcp",
                    addr,
                    source,
                }
            })?;
            http_addr = Some(ls[0].local_addr().map_err(|source| ServerError::Bind {
                proto: "tcp",
                addr,
                source,
            })?);
            for (slot, l) in tcp.iter_mut().zip(ls) {
                *slot = Some(l);
            }
        }
        let mut udp_socks: Vec<Option<UdpSocket>> = (0..threads).map(|_| None).collect();
        let mut udp_addr = None;
        if let Some(addr) = config.udp {
            // Port 0 on the HTTP address: share the HTTP port when it is free for UDP.
            let same_port = match (addr.port(), http_addr) {
                (0, Some(h)) if h.ip() == addr.ip() => udp::bind_reuseport(h, threads).ok(),
                _ => None,
            };
            let ss = match same_port {
                Some(ss) => Ok(ss),
                None => udp::bind_reuseport(addr, threads),
            }
            .map_err(|source| ServerError::Bind {
                proto: "udp",
                addr,
                source,
            })?;
            udp_addr = Some(ss[0].local_addr().map_err(|source| ServerError::Bind {
                proto: "udp",
                addr,
                source,
            })?);
            for (slot, s) in udp_socks.iter_mut().zip(ss) {
                *slot = Some(s);
            }
        }
        let shared = Arc::new(Shared::new(config));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut workers = Vec::with_capacity(threads);
        for (core, (tcp, udp)) in tcp.into_iter().zip(udp_socks).enumerate() {
            let (shared, stop) = (shared.clone(), stop_rx.clone());
            let t = std::thread::Builder::new()
                .name(format!("seedbox-tracker-{core}"))
                .spawn(move || {
                    tokio_uring::start(core_main(core, threads, tcp, udp, shared, stop));
                });
            match t {
                Ok(t) => workers.push(t),
                Err(e) => {
                    stop_tx.send_replace(true);
                    for w in workers {
                        let _ = w.join();
                    }
                    return Err(ServerError::Thread(e));
                }
            }
        }
        tracing::info!(?http_addr, ?udp_addr, threads, "tracker listening");
        Ok(TrackerHandle {
            shared,
            http_addr,
            udp_addr,
            stop: stop_tx,
            workers,
        })
    }
}

async fn core_main(
    core: usize,
    cores: usize,
    tcp: Option<TcpListener>,
    udp: Option<UdpSocket>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = Vec::new();
    if let Some(sock) = udp {
        tasks.push(tokio_uring::spawn(udp::serve(sock, shared.clone())));
    }
    tasks.push(tokio_uring::spawn(expire_loop(core, cores, shared.clone())));
    match tcp {
        Some(l) => http::accept_loop(l, shared, &mut stop).await,
        None => {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        }
    }
    for t in tasks {
        t.abort();
    }
}

/// Sweeps shards `core, core + cores, ...` for expired peers, a few times per interval.
async fn expire_loop(core: usize, cores: usize, shared: Arc<Shared>) {
    let every = Duration::from_secs(u64::from(shared.config.registry.interval / 4).clamp(1, 60));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = shared.now();
        let mut removed = 0;
        for i in (core..shared.registry.shard_count()).step_by(cores.max(1)) {
            removed += shared.registry.expire_shard(i, now);
        }
        if removed > 0 {
            tracing::debug!(core, removed, "expired peers");
        }
    }
}

/// A running tracker; stops (and joins its threads) on [`TrackerHandle::stop`] or drop.
#[derive(Debug)]
pub struct TrackerHandle {
    shared: Arc<Shared>,
    http_addr: Option<SocketAddr>,
    udp_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl TrackerHandle {
    /// The bound HTTP address (the real port when 0 was asked for).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// `http://ADDR/announce`, when HTTP is on.
    pub fn announce_url(&self) -> Option<String> {
        self.http_addr.map(|a| format!("http://{a}/announce"))
    }

    /// `udp://ADDR/announce`, when UDP is on.
    pub fn udp_url(&self) -> Option<String> {
        self.udp_addr.map(|a| format!("udp://{a}/announce"))
    }

    /// Serves `bytes` as `/torrents/NAME.torrent` and lists it on the index page (a trailing
    /// `.torrent` in `name` is dropped). Replaces a torrent of the same name.
    pub fn add_torrent_file(
        &self,
        name: &str,
        bytes: Vec<u8>,
        info_hash: InfoHash,
    ) -> Result<(), ServerError> {
        self.shared.web.add(name, bytes, info_hash)
    }

    /// Stops serving a torrent file; returns whether it was there.
    pub fn remove_torrent_file(&self, name: &str) -> bool {
        self.shared.web.remove(name)
    }

    /// The counters.
    pub fn stats(&self) -> &TrackerStats {
        &self.shared.stats
    }

    /// Number of swarms with peers.
    pub fn swarm_count(&self) -> usize {
        self.shared.registry.swarm_count()
    }

    /// Stops every worker and waits for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.send_replace(true);
        for w in self.workers.drain(..) {
            if let Err(e) = w.join() {
                tracing::error!("tracker thread panicked: {e:?}");
            }
        }
    }
}

impl Drop for TrackerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A whitelist line that is not a hex info-hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {text:?} is not a 40-digit hex info-hash")]
pub struct WhitelistError {
    /// 1-based line number.
    pub line: usize,
    /// The offending line (truncated to 60 characters).
    pub text: String,
}

/// Parses a whitelist: hex info-hashes one per line (opentracker's format); blank lines and
/// lines starting with `#` are skipped, surrounding spaces ignored.
pub fn parse_whitelist(text: &str) -> Result<std::collections::HashSet<InfoHash>, WhitelistError> {
    let mut out = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let h = InfoHash::from_hex(t).ok_or_else(|| WhitelistError {
            line: i + 1,
            text: t.chars().take(60).collect(),
        })?;
        out.insert(h);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist_parsing() {
        let a = "ab".repeat(20);
        let b = "0123456789ABCDEF0123456789abcdef01234567";
        let w = parse_whitelist(&format!("# swarms\n{a}\n\n  {b}  \n{a}\n")).unwrap();
        assert_eq!(w.len(), 2);
        assert!(w.contains(&InfoHash([0xab; 20])));
        let e = parse_whitelist(&format!("{a}\nnot-a-hash\n")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse_whitelist(&"ab".repeat(19)).is_err());
        assert!(parse_whitelist(&"ab".repeat(21)).is_err());
    }
}
