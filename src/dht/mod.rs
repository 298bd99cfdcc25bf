//! The DHT node (BEP 5) of `seed` and `get`: the `mainline` crate's full node, which runs on
//! its own thread, answers `ping`, `find_node`, `get_peers` (with tokens) and
//! `announce_peer`, and keeps the routing table; and one `seedbox-dht` thread
//! (a current-thread tokio runtime) that schedules the announces of our torrents
//! ([`schedule`]), runs the lookups whose peers feed a download ([`PeerFeed`]) and saves the
//! routing table ([`nodes_file`]). Neither thread runs on the worker cores.
//!
//! The node speaks on the listen port's UDP, where peers that learned us from a `get_peers`
//! reply or our announces reach us: through the port uTP's per-core sockets share
//! ([`port`]: the cores hand KRPC datagrams over, the node sends on one of the sockets), or,
//! without uTP, a socket of its own on that port; `--dht-port` gives it its own port.
//!
//! Incoming requests pass a per-address rate limit ([`limit`]) before the crate answers them.
//! Private torrents (BEP 27) are never given to the node: the callers check.
//!
//! The crate is built from vendor/mainline, 8.0.1 with the patches of
//! vendor/mainline/PATCHES.md: 8.0.1 drops every query whose transaction id is not 4 bytes,
//! and libtorrent's are 2; and it binds a socket of its own, where the second patch lets it
//! take a [`mainline::Transport`].

pub mod feed;
pub mod limit;
pub mod nodes_file;
pub mod port;
pub mod schedule;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use mainline::{Dht, Id, RequestFilter, RequestSpecific, ServerSettings};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

pub use feed::PeerFeed;
use limit::RequestLimiter;
use schedule::AnnounceSchedule;

use crate::metainfo::InfoHash;

/// The well-known bootstrap routers (the `--dht-bootstrap` default).
pub const DEFAULT_BOOTSTRAP: [&str; 3] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];
/// Announces in flight at once.
const MAX_ANNOUNCES_IN_FLIGHT: usize = 16;
/// A lookup that found peers is repeated this often while its reader wants peers.
const LOOKUP_EVERY: Duration = Duration::from_secs(60);
/// A lookup that found nothing is repeated after this, doubling up to [`LOOKUP_EVERY`].
const LOOKUP_RETRY_FIRST: Duration = Duration::from_secs(3);
/// The routing table is saved this often (and at shutdown).
const SAVE_EVERY: Duration = Duration::from_secs(5 * 60);

/// How the node starts.
#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// The UDP address to bind (port 0: any free port), unless `shared`.
    pub bind: SocketAddrV4,
    /// The listen port shared with uTP ([`port::SharedPort`]) instead of a socket of its own.
    pub shared: Option<Arc<port::SharedPort>>,
    /// Bootstrap nodes, `HOST:PORT`.
    pub bootstrap: Vec<String>,
    /// Where the routing table is saved and read back from (none: not saved).
    pub nodes_file: Option<PathBuf>,
}

/// Why the node did not start.
#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the DHT's UDP socket {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddrV4,
        /// The error.
        source: std::io::Error,
    },
    /// The thread could not start.
    #[error("cannot start the DHT thread: {0}")]
    Thread(std::io::Error),
}

enum Cmd {
    Announce { hash: InfoHash, port: u16 },
    Remove(InfoHash),
    Lookup { hash: InfoHash, feed: PeerFeed },
    Shutdown(std::sync::mpsc::Sender<()>),
}

/// Counters read by tests and statistics.
#[derive(Debug, Default)]
pub struct DhtStats {
    /// Announces that reached at least one node.
    pub announces: std::sync::atomic::AtomicU64,
    /// Announces that reached none.
    pub announce_failures: std::sync::atomic::AtomicU64,
}

/// A running DHT node.
pub struct DhtNode {
    tx: UnboundedSender<Cmd>,
    shared: Option<Arc<port::SharedPort>>,
    local: SocketAddrV4,
    limiter: Arc<Mutex<RequestLimiter>>,
    stats: Arc<DhtStats>,
}

/// The request filter given to the crate: the per-address rate limit.
#[derive(Debug, Clone)]
struct Limit {
    limiter: Arc<Mutex<RequestLimiter>>,
    start: Instant,
}

impl RequestFilter for Limit {
    fn allow_request(&self, _request: &RequestSpecific, from: SocketAddrV4) -> bool {
        let now = self.start.elapsed();
        self.limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(*from.ip(), now)
    }
}

/// Resolves `HOST:PORT` bootstrap nodes to IPv4 addresses (the crate speaks IPv4 only); a
/// name that does not resolve is logged and skipped.
pub fn resolve_bootstrap(nodes: &[String]) -> Vec<SocketAddrV4> {
    let mut out = Vec::new();
    for n in nodes {
        match n.to_socket_addrs() {
            Ok(addrs) => {
                let before = out.len();
                out.extend(addrs.filter_map(|a| match a {
                    SocketAddr::V4(a) => Some(a),
                    SocketAddr::V6(_) => None,
                }));
                if out.len() == before {
                    tracing::warn!("DHT bootstrap {n}: no IPv4 address");
                }
            }
            Err(e) => tracing::warn!("DHT bootstrap {n}: {e}"),
        }
    }
    out
}

impl std::fmt::Debug for DhtNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhtNode")
            .field("local", &self.local)
            .finish()
    }
}

impl DhtNode {
    /// Binds the UDP socket and starts the node (a full node, answering requests at once,
    /// whatever its address: loopback and private networks included).
    pub fn start(config: DhtConfig) -> Result<DhtNode, DhtError> {
        let mut bootstrap = resolve_bootstrap(&config.bootstrap);
        if let Some(path) = &config.nodes_file {
            let saved = nodes_file::load(path);
            tracing::info!("DHT: {} nodes saved in {}", saved.len(), path.display());
            bootstrap.extend(saved);
        }
        let limiter = Arc::new(Mutex::new(RequestLimiter::new()));
        let filter = Limit {
            limiter: limiter.clone(),
            start: Instant::now(),
        };
        let mut builder = Dht::builder();
        builder
            .server_mode()
            .bind_address(*config.bind.ip())
            .port(config.bind.port())
            .bootstrap(&bootstrap)
            .server_settings(ServerSettings {
                filter: Box::new(filter),
                ..Default::default()
            });
        if let Some(shared) = &config.shared {
            builder.transport(shared.clone());
        }
        let dht = builder.build().map_err(|source| DhtError::Bind {
            addr: config.shared.as_ref().map_or(config.bind, |s| s.local_v4()),
            source,
        })?;
        // The crate's blocking API, once, before its async one takes over.
        #[allow(deprecated)]
        let local = dht.info().local_addr();
        let dht = dht.as_async();
        let stats = Arc::new(DhtStats::default());
        let (tx, rx) = unbounded_channel();
        let driver = Driver {
            dht,
            rx,
            schedule: AnnounceSchedule::new(),
            ports: Default::default(),
            nodes_file: config.nodes_file,
            start: Instant::now(),
            stats: stats.clone(),
        };
        std::thread::Builder::new()
            .name("seedbox-dht".into())
            .spawn(move || driver.run())
            .map_err(DhtError::Thread)?;
        tracing::info!(
            "DHT node on udp {local}, bootstrapping from {} nodes",
            bootstrap.len()
        );
        Ok(DhtNode {
            tx,
            shared: config.shared,
            local,
            limiter,
            stats,
        })
    }

    /// The node's UDP address.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// Announces that we serve `hash` on TCP `port`, now (in turn) and every 15 minutes.
    pub fn announce(&self, hash: InfoHash, port: u16) {
        let _ = self.tx.send(Cmd::Announce { hash, port });
    }

    /// Stops announcing `hash`.
    pub fn remove(&self, hash: InfoHash) {
        let _ = self.tx.send(Cmd::Remove(hash));
    }

    /// Looks up the peers of `hash`, again and again while the feed returned is held.
    pub fn lookup(&self, hash: InfoHash) -> PeerFeed {
        let feed = PeerFeed::new();
        let _ = self.tx.send(Cmd::Lookup {
            hash,
            feed: feed.clone(),
        });
        feed
    }

    /// Incoming requests dropped by the rate limit so far.
    pub fn requests_dropped(&self) -> u64 {
        self.limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dropped
    }

    /// The announce counters.
    pub fn stats(&self) -> &DhtStats {
        &self.stats
    }

    /// Saves the routing table and stops the node (2 s at most).
    pub fn shutdown(&self) {
        if let Some(dropped) = self.shared.as_ref().map(|s| s.dropped()).filter(|&n| n > 0) {
            tracing::info!("DHT: {dropped} KRPC datagrams dropped (the cores' queue was full)");
        }
        let (done, finished) = std::sync::mpsc::channel();
        if self.tx.send(Cmd::Shutdown(done)).is_ok() {
            let _ = finished.recv_timeout(Duration::from_secs(2));
        }
    }
}

/// The `seedbox-dht` thread's state.
struct Driver {
    dht: mainline::async_dht::AsyncDht,
    rx: UnboundedReceiver<Cmd>,
    schedule: AnnounceSchedule,
    ports: std::collections::HashMap<InfoHash, u16>,
    nodes_file: Option<PathBuf>,
    start: Instant,
    stats: Arc<DhtStats>,
}

fn id_of(hash: &InfoHash) -> Id {
    Id::from_bytes(hash.0).expect("20 bytes")
}

impl Driver {
    fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("DHT: cannot start its runtime: {e}");
                return;
            }
        };
        rt.block_on(self.drive());
    }

    async fn drive(mut self) {
        let mut announces = tokio::task::JoinSet::new();
        let mut next_save = tokio::time::Instant::now() + SAVE_EVERY;
        loop {
            let now = self.start.elapsed();
            while announces.len() < MAX_ANNOUNCES_IN_FLIGHT {
                let Some(hash) = self.schedule.pop_due(now) else {
                    break;
                };
                let port = self.ports.get(&hash).copied();
                let dht = self.dht.clone();
                announces.spawn(async move { (hash, dht.announce_peer(id_of(&hash), port).await) });
            }
            let wake = match self.schedule.next_due() {
                Some(due) if announces.len() < MAX_ANNOUNCES_IN_FLIGHT => {
                    tokio::time::Instant::from_std(self.start + due)
                }
                _ => next_save,
            };
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    None => break,
                    Some(Cmd::Shutdown(done)) => {
                        self.save().await;
                        let _ = done.send(());
                        break;
                    }
                    Some(cmd) => self.command(cmd),
                },
                Some(done) = announces.join_next(), if !announces.is_empty() => {
                    let Ok((hash, result)) = done else { continue };
                    self.answered(hash, result.map(|_| ()).map_err(|e| e.to_string()));
                }
                _ = tokio::time::sleep_until(wake.min(next_save)) => {}
            }
            if tokio::time::Instant::now() >= next_save {
                next_save = tokio::time::Instant::now() + SAVE_EVERY;
                self.save().await;
            }
        }
        announces.abort_all();
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Announce { hash, port } => {
                self.ports.insert(hash, port);
                self.schedule.add(hash, self.start.elapsed());
            }
            Cmd::Remove(hash) => {
                self.ports.remove(&hash);
                self.schedule.remove(&hash);
            }
            Cmd::Lookup { hash, feed } => {
                tokio::spawn(lookup(self.dht.clone(), hash, feed));
            }
            Cmd::Shutdown(_) => {}
        }
    }

    fn answered(&mut self, hash: InfoHash, result: Result<(), String>) {
        use std::sync::atomic::Ordering::Relaxed;
        match result {
            Ok(()) => {
                tracing::debug!("DHT: announced {hash}");
                self.stats.announces.fetch_add(1, Relaxed);
                self.schedule.succeeded(&hash);
            }
            Err(e) => {
                tracing::debug!("DHT: announce of {hash} failed: {e}");
                self.stats.announce_failures.fetch_add(1, Relaxed);
                self.schedule.failed(&hash, self.start.elapsed());
            }
        }
    }

    async fn save(&self) {
        let Some(path) = &self.nodes_file else {
            return;
        };
        let nodes = nodes_file::parse(&self.dht.to_bootstrap().await.join("\n"));
        match nodes_file::save(path, &nodes) {
            Ok(()) => tracing::debug!("DHT: {} nodes saved to {}", nodes.len(), path.display()),
            Err(e) => tracing::warn!("DHT: cannot save the nodes to {}: {e}", path.display()),
        }
    }
}

/// Runs get_peers for `hash` until the feed's reader is gone.
async fn lookup(dht: mainline::async_dht::AsyncDht, hash: InfoHash, feed: PeerFeed) {
    let mut retry = LOOKUP_RETRY_FIRST;
    while !feed.abandoned() {
        let mut stream = dht.get_peers(id_of(&hash));
        while let Some(batch) = stream.next().await {
            feed.push(batch.into_iter().map(SocketAddr::V4));
        }
        tracing::debug!("DHT: lookup of {hash}: {} peers found so far", feed.found());
        let wait = if feed.found() > 0 {
            LOOKUP_EVERY
        } else {
            let w = retry;
            retry = (retry * 2).min(LOOKUP_EVERY);
            w
        };
        let until = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < until && !feed.abandoned() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The IPv4 address the DHT binds for a peer listen address: the same address when it is a
/// specific IPv4 one, else every interface.
pub fn bind_ip_for(listen: SocketAddr) -> Ipv4Addr {
    match listen {
        SocketAddr::V4(a) if !a.ip().is_unspecified() => *a.ip(),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}
