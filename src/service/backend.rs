//! The running service behind the admin API: [`AdminBackend`] on [`Service`].

use std::path::Path;
use std::sync::Arc;

use super::admin::{
    AdminBackend, AdminError, CoreMetrics, EngineTotals, MetricsSnapshot, TorrentStatus,
};
use super::load;
use super::Service;
use crate::metainfo::{InfoHash, Torrent};

/// The service as the admin server sees it.
pub struct ServiceBackend(pub Arc<Service>);

impl ServiceBackend {
    fn status(&self, hash: &InfoHash) -> Result<TorrentStatus, AdminError> {
        self.0.status(hash).ok_or(AdminError::NotFound(*hash))
    }

    fn known(&self, hash: &InfoHash) -> Result<(), AdminError> {
        self.status(hash).map(|_| ())
    }
}

impl AdminBackend for ServiceBackend {
    fn torrents(&self) -> Vec<TorrentStatus> {
        self.0.torrents()
    }

    fn add_torrent_file(&self, torrent: &[u8]) -> Result<TorrentStatus, AdminError> {
        let parsed =
            Torrent::from_bytes(torrent).map_err(|e| AdminError::InvalidTorrent(e.to_string()))?;
        if self.0.get(&parsed.info_hash).is_some() {
            return Err(AdminError::AlreadyExists(parsed.info_hash));
        }
        let seed = self
            .0
            .add_torrent_bytes(torrent.to_vec())
            .map_err(|e| AdminError::InvalidTorrent(format!("{e:#}")))?;
        self.status(&seed.info_hash())
    }

    fn add_data_path(&self, path: &Path) -> Result<TorrentStatus, AdminError> {
        if !path.exists() {
            return Err(AdminError::InvalidPath(format!(
                "{} does not exist",
                path.display()
            )));
        }
        if load::is_torrent_file(path) {
            return Err(AdminError::InvalidPath(format!(
                "{} is a .torrent: POST its bytes instead",
                path.display()
            )));
        }
        let seed = self.0.add_target(path).map_err(|e| {
            let text = format!("{e:#}");
            if text.contains("already being seeded") {
                AdminError::Conflict(text)
            } else {
                AdminError::InvalidPath(text)
            }
        })?;
        self.status(&seed.info_hash())
    }

    fn remove(&self, info_hash: &InfoHash) -> Result<(), AdminError> {
        self.known(info_hash)?;
        self.0
            .remove(info_hash)
            .map(|_| ())
            .map_err(|_| AdminError::NotFound(*info_hash))
    }

    fn pause(&self, info_hash: &InfoHash) -> Result<TorrentStatus, AdminError> {
        self.known(info_hash)?;
        self.0
            .pause(info_hash)
            .map_err(|e| AdminError::Conflict(format!("{e:#}")))?;
        self.status(info_hash)
    }

    fn resume(&self, info_hash: &InfoHash) -> Result<TorrentStatus, AdminError> {
        self.known(info_hash)?;
        self.0
            .resume(info_hash)
            .map_err(|e| AdminError::Conflict(format!("{e:#}")))?;
        self.status(info_hash)
    }

    fn recheck(&self, info_hash: &InfoHash) -> Result<TorrentStatus, AdminError> {
        self.known(info_hash)?;
        self.0
            .start_recheck(info_hash)
            .map_err(|e| AdminError::Unavailable(format!("{e:#}")))?;
        self.status(info_hash)
    }

    fn metrics(&self) -> MetricsSnapshot {
        let torrents = self.0.torrents();
        let engine = self.0.engine().stats();
        let snap = engine.snapshot();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let cores = engine
            .cores()
            .iter()
            .map(|c| CoreMetrics {
                bytes_sent: load(&c.bytes_sent),
                connections: load(&c.peers),
                accepted: load(&c.accepted),
            })
            .collect();
        let (up, ann, fail) = self.0.removed_totals();
        let totals = EngineTotals {
            uploaded: up + torrents.iter().map(|t| t.uploaded).sum::<u64>(),
            bytes_sent: snap.bytes_sent,
            blocks_sent: snap.blocks_sent,
            connections: snap.peers,
            accepted: snap.accepted,
            dropped: snap.dropped,
            rejected: snap.rejected,
            announces: ann + torrents.iter().map(|t| t.announces).sum::<u64>(),
            announce_failures: fail + torrents.iter().map(|t| t.announce_failures).sum::<u64>(),
        };
        MetricsSnapshot {
            totals,
            torrents,
            cores,
            latency_us: snap.latency,
        }
    }
}
