//! Changing what a running engine serves: the service's list of torrents and a command
//! channel to every core.
//!
//! Each core keeps its own map of the torrents it serves (no lock on a peer's path); the
//! [`EngineControl`] keeps the service's list behind a mutex that only the control side
//! (watch folder, admin API, announcer) takes, and tells every core what changed with a
//! [`CoreCommand`] on the core's channel, which a task of the core's runtime applies.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::choke::ChokeOrder;
use super::limits::{LimitValues, Limits};
use super::stats::EngineStats;
use super::torrents::{SeedTorrent, TorrentSet};
use crate::metainfo::InfoHash;

/// What a core is told to do. Applied in order on the core's own thread.
#[derive(Clone)]
pub enum CoreCommand {
    /// Serve this torrent: peers asking for it are accepted from now on.
    AddTorrent(Arc<SeedTorrent>),
    /// Stop serving this torrent: close its peers on this core and forget it.
    RemoveTorrent(InfoHash),
    /// Close this torrent's peers (they reconnect and get the current bitfield) but keep
    /// serving it.
    ClosePeers(InfoHash),
    /// The torrent's choke owner's decisions for this core's peers.
    Choke(ChokeOrder),
}

impl std::fmt::Debug for CoreCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoreCommand::AddTorrent(t) => write!(f, "AddTorrent({})", t.info_hash()),
            CoreCommand::RemoveTorrent(h) => write!(f, "RemoveTorrent({h})"),
            CoreCommand::ClosePeers(h) => write!(f, "ClosePeers({h})"),
            CoreCommand::Choke(o) => write!(f, "Choke({o:?})"),
        }
    }
}

/// The receiving end of one core's commands (handed to [`run`](super::run)).
pub struct CoreInbox(pub(super) mpsc::UnboundedReceiver<CoreCommand>);

/// Why a torrent could not be added.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A torrent with this info-hash is already served.
    #[error("torrent {0} is already being seeded")]
    AlreadyPresent(InfoHash),
    /// No torrent with this info-hash is served.
    #[error("no torrent {0}")]
    Unknown(InfoHash),
}

/// The control side of a running engine: its torrents, statistics and each core's channel.
pub struct EngineControl {
    cores: Vec<mpsc::UnboundedSender<CoreCommand>>,
    torrents: Mutex<TorrentSet>,
    stats: Arc<EngineStats>,
    limits: Arc<Limits>,
}

impl EngineControl {
    /// A control for an engine of `cores` cores (with no torrent yet) and the inboxes to hand
    /// to [`run`](super::run). Commands sent before the engine runs wait in the inboxes; each
    /// core applies them before it accepts its first connection.
    pub fn new(cores: usize) -> (Arc<EngineControl>, Vec<CoreInbox>) {
        let cores = cores.max(1);
        let (senders, inboxes) = (0..cores)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                (tx, CoreInbox(rx))
            })
            .unzip();
        let control = EngineControl {
            cores: senders,
            torrents: Mutex::new(TorrentSet::new()),
            stats: Arc::new(EngineStats::new(cores)),
            limits: Arc::new(Limits::default()),
        };
        (Arc::new(control), inboxes)
    }

    /// How many cores.
    pub fn cores(&self) -> usize {
        self.cores.len()
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Arc<EngineStats> {
        &self.stats
    }

    /// The limits that change while serving (unchoke slots, upload limit).
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// Changes the unchoke slots and the upload limit: every core applies them within a
    /// second, to the peers it has (none is dropped) and to those to come.
    pub fn set_limits(&self, values: LimitValues) {
        self.limits.set(values);
    }

    fn set(&self) -> MutexGuard<'_, TorrentSet> {
        self.torrents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every torrent served, in the order added.
    pub fn torrents(&self) -> Vec<Arc<SeedTorrent>> {
        self.set().iter().cloned().collect()
    }

    /// The torrent with this info-hash.
    pub fn get(&self, info_hash: &InfoHash) -> Option<Arc<SeedTorrent>> {
        self.set().get(info_hash).cloned()
    }

    /// How many torrents are served.
    pub fn len(&self) -> usize {
        self.set().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.set().is_empty()
    }

    /// Starts serving `torrent` on every core.
    pub fn add(&self, torrent: Arc<SeedTorrent>) -> Result<(), ControlError> {
        let mut set = self.set();
        let hash = torrent.info_hash();
        set.insert(torrent.clone())
            .map_err(|_| ControlError::AlreadyPresent(hash))?;
        // Sent under the lock, so every core sees adds and removes in the list's order.
        self.broadcast(|| CoreCommand::AddTorrent(torrent.clone()));
        Ok(())
    }

    /// Stops serving the torrent: marks it stopped (its writers stop at their next batch) and
    /// has every core close its peers and forget it. Returns the torrent.
    pub fn remove(&self, info_hash: &InfoHash) -> Result<Arc<SeedTorrent>, ControlError> {
        let mut set = self.set();
        let t = set
            .remove(info_hash)
            .ok_or(ControlError::Unknown(*info_hash))?;
        t.stop("removed".into());
        self.broadcast(|| CoreCommand::RemoveTorrent(*info_hash));
        Ok(t)
    }

    /// Every core's command channel (for the choke owner's thread).
    pub(super) fn core_senders(&self) -> Vec<mpsc::UnboundedSender<CoreCommand>> {
        self.cores.clone()
    }

    /// Sends `command` to core `core` (ignored once the engine has stopped).
    pub fn send(&self, core: usize, command: CoreCommand) {
        if let Some(tx) = self.cores.get(core) {
            let _ = tx.send(command);
        }
    }

    /// Sends a command made by `make` to every core.
    pub fn broadcast(&self, make: impl Fn() -> CoreCommand) {
        for tx in &self.cores {
            let _ = tx.send(make());
        }
    }
}
