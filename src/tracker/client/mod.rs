//! The tracker client used by `seed` and `get`: a sans-IO [`Schedule`] (events, intervals,
//! BEP 12 tiers, backoff, early announces) driven by a small announcer thread that does the
//! blocking HTTP or UDP exchange ([`transport`]), so announces never stall a peer core.

pub mod http_pool;
pub mod http_reply;
mod many;
mod schedule;
pub mod transport;
pub mod udp_ids;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use many::ManySchedules;
pub use schedule::{Due, Schedule, DEFAULT_INTERVAL, DEFAULT_MIN_INTERVAL, RETRY_BASE, RETRY_MAX};
pub use transport::{announce, http_get, AnnounceError, Timeouts};

use crate::metainfo::InfoHash;
use crate::protocol::PeerId;
use crate::tracker::{AnnounceRequest, Event};

/// What the announcer reports: the torrent's live counters, written by the engine.
#[derive(Debug, Default)]
pub struct AnnounceStats {
    /// Payload bytes uploaded since start.
    pub uploaded: AtomicU64,
    /// Payload bytes downloaded since start.
    pub downloaded: AtomicU64,
    /// Bytes still missing.
    pub left: AtomicU64,
    /// Set to ask for an early announce (too few useful peers).
    pub want_peers: AtomicBool,
    /// Announces answered by a tracker.
    pub announces: AtomicU64,
    /// Announces that failed (no answer, or an error from the tracker).
    pub failures: AtomicU64,
    /// Why the last failed announce failed (cleared by an answer).
    last_error: std::sync::Mutex<Option<String>>,
}

impl AnnounceStats {
    /// Why the last announce failed, unless one was answered since.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok()?.clone()
    }

    fn set_last_error(&self, e: Option<String>) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = e;
        }
    }
}

/// A running announcer for one torrent.
pub struct TrackerClient {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    peers: Receiver<Vec<SocketAddr>>,
    /// Signalled after every announce that returned peers (see [`TrackerClient::peers_arrived`]).
    arrived: Arc<tokio::sync::Notify>,
    /// The counters announced.
    pub stats: Arc<AnnounceStats>,
}

/// Who we are in announces.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Our listen port.
    pub port: u16,
}

impl TrackerClient {
    /// Starts announcing to `tiers` (announce-list tiers, or `[[announce]]`).
    pub fn spawn(
        tiers: Vec<Vec<String>>,
        me: Identity,
        stats: Arc<AnnounceStats>,
    ) -> TrackerClient {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, peers) = std::sync::mpsc::channel();
        let arrived = Arc::new(tokio::sync::Notify::new());
        let thread = {
            let (stop, stats, arrived) = (stop.clone(), stats.clone(), arrived.clone());
            std::thread::Builder::new()
                .name("announcer".into())
                .spawn(move || announcer(tiers, me, stats, stop, tx, arrived))
                .expect("spawn announcer thread")
        };
        TrackerClient {
            stop,
            thread: Some(thread),
            peers,
            arrived,
            stats,
        }
    }

    /// Resolves once an announce has returned peers since the last call (at once if one did
    /// while nobody was waiting), so a caller on an async runtime can take
    /// [`new_peers`](Self::new_peers) as soon as the tracker answers instead of at its next
    /// timer tick.
    pub async fn peers_arrived(&self) {
        self.arrived.notified().await
    }

    /// Peers received since the last call.
    pub fn new_peers(&self) -> Vec<SocketAddr> {
        self.peers.try_iter().flatten().collect()
    }

    /// Sends `stopped` (best effort, a few seconds at most) and ends the thread.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TrackerClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn request(me: &Identity, stats: &AnnounceStats, event: Event) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: me.info_hash,
        peer_id: me.peer_id,
        port: me.port,
        uploaded: stats.uploaded.load(Ordering::Relaxed),
        downloaded: stats.downloaded.load(Ordering::Relaxed),
        left: stats.left.load(Ordering::Relaxed),
        event,
        numwant: Some(50),
        compact: true,
        no_peer_id: true,
        key: None,
        ip: None,
    }
}

fn announcer(
    tiers: Vec<Vec<String>>,
    me: Identity,
    stats: Arc<AnnounceStats>,
    stop: Arc<AtomicBool>,
    tx: Sender<Vec<SocketAddr>>,
    arrived: Arc<tokio::sync::Notify>,
) {
    let start = Instant::now();
    let mut schedule = Schedule::new(tiers, &mut rand::thread_rng());
    let mut was_complete = stats.left.load(Ordering::Relaxed) == 0;
    while !stop.load(Ordering::Relaxed) {
        let now = start.elapsed();
        let complete = stats.left.load(Ordering::Relaxed) == 0;
        if complete && !was_complete {
            schedule.completed(now);
        }
        was_complete = complete;
        if stats.want_peers.swap(false, Ordering::Relaxed) {
            schedule.want_peers(now);
        }
        if let Some(due) = schedule.poll(now) {
            let req = request(&me, &stats, due.event);
            match announce(&due.url, &req, Timeouts::default()) {
                Ok(resp) => {
                    stats.announces.fetch_add(1, Ordering::Relaxed);
                    stats.set_last_error(None);
                    tracing::info!(
                        url = %due.url, event = due.event.as_str(), peers = resp.peers.len(),
                        interval = resp.interval, "announced"
                    );
                    if let Some(w) = &resp.warning {
                        tracing::warn!(url = %due.url, "tracker warning: {w}");
                    }
                    let now = start.elapsed();
                    schedule.succeeded(
                        now,
                        Duration::from_secs(u64::from(resp.interval)),
                        resp.min_interval.map(|m| Duration::from_secs(u64::from(m))),
                    );
                    if !resp.peers.is_empty() {
                        let _ = tx.send(resp.peers.iter().map(|p| p.addr).collect());
                        arrived.notify_one();
                    }
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("announce failed: {e}");
                    stats.set_last_error(Some(e.to_string()));
                    schedule.failed(start.elapsed());
                }
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let quick = Timeouts {
        http: Duration::from_secs(3),
        udp_base: Duration::from_secs(1),
        udp_retries: 1,
    };
    for url in schedule.stop_targets() {
        let req = request(&me, &stats, Event::Stopped);
        match announce(&url, &req, quick) {
            Ok(_) => tracing::info!(%url, "announced stopped"),
            Err(e) => tracing::debug!("stopped announce failed: {e}"),
        }
    }
}
