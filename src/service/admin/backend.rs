//! What the admin server needs from the running service: the [`AdminBackend`] trait, the plain
//! data it returns, and the errors it may refuse a request with.
//!
//! Every method is called from the admin server's own thread (never from a worker core) and may
//! block while the service does the work (adding a data path hashes it), so an implementation
//! typically sends a command to the service and waits for its answer.

use std::path::Path;

use hdrhistogram::Histogram;

use crate::metainfo::InfoHash;

/// The service side of the admin API.
pub trait AdminBackend: Send + Sync {
    /// Every torrent, in a stable order (e.g. the order they were added).
    fn torrents(&self) -> Vec<TorrentStatus>;

    /// Adds a torrent from the bytes of a `.torrent` file; its data is looked up where the
    /// service keeps data (`--data`). Returns the new torrent's status.
    fn add_torrent_file(&self, torrent: &[u8]) -> Result<TorrentStatus, AdminError>;

    /// Adds a data file or folder: the service creates its torrent, as `seed PATH` does.
    fn add_data_path(&self, path: &Path) -> Result<TorrentStatus, AdminError>;

    /// Stops seeding a torrent (a `stopped` announce) and forgets it. The data is left alone.
    fn remove(&self, info_hash: &InfoHash) -> Result<(), AdminError>;

    /// Stops serving a torrent's peers but keeps it listed.
    fn pause(&self, info_hash: &InfoHash) -> Result<TorrentStatus, AdminError>;

    /// Serves a paused torrent again.
    fn resume(&self, info_hash: &InfoHash) -> Result<TorrentStatus, AdminError>;

    /// Re-hashes a torrent's data; pieces that fail are no longer served.
    fn recheck(&self, info_hash: &InfoHash) -> Result<TorrentStatus, AdminError>;

    /// Counters for `/metrics`, summed over cores at the moment of the call.
    fn metrics(&self) -> MetricsSnapshot;
}

/// What a torrent is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TorrentState {
    /// Its data is being hashed before it is first served.
    Checking,
    /// Serving peers.
    Seeding,
    /// Listed but not serving (paused through the API).
    Paused,
    /// Serving stopped while its data is hashed again.
    Rechecking,
    /// Serving only the pieces that verified at its last re-check: the others changed on
    /// disk and are neither announced nor served.
    Partial {
        /// Pieces not served.
        unserved_pieces: u32,
    },
    /// Not serving, for the reason given (e.g. its data file was deleted).
    Stopped {
        /// A line an operator can act on.
        reason: String,
    },
}

impl TorrentState {
    /// The state's name in the API and metrics: `checking`, `seeding`, `partial`, `paused`,
    /// `rechecking` or `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            TorrentState::Checking => "checking",
            TorrentState::Seeding => "seeding",
            TorrentState::Paused => "paused",
            TorrentState::Rechecking => "rechecking",
            TorrentState::Partial { .. } => "partial",
            TorrentState::Stopped { .. } => "stopped",
        }
    }

    /// Why the torrent stopped, when it did.
    pub fn reason(&self) -> Option<&str> {
        match self {
            TorrentState::Stopped { reason } => Some(reason),
            _ => None,
        }
    }

    /// Every state name, for metrics that carry one series per state.
    pub const NAMES: [&'static str; 6] = [
        "checking",
        "seeding",
        "partial",
        "paused",
        "rechecking",
        "stopped",
    ];

    /// Pieces not served because they failed their last re-check (0 in any other state).
    pub fn unserved_pieces(&self) -> u32 {
        match self {
            TorrentState::Partial { unserved_pieces } => *unserved_pieces,
            _ => 0,
        }
    }
}

/// One torrent as the API lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct TorrentStatus {
    /// The v1 info-hash.
    pub info_hash: InfoHash,
    /// The torrent's name (its `info.name`).
    pub name: String,
    /// Total size of its files, bytes.
    pub size: u64,
    /// What it is doing.
    pub state: TorrentState,
    /// Payload bytes uploaded since the service started (monotonic while the torrent is listed).
    pub uploaded: u64,
    /// Current upload rate, payload bytes per second.
    pub upload_rate: f64,
    /// Connected peers.
    pub peers: u64,
    /// Peers unchoked now.
    pub unchoked_peers: u64,
    /// Tracker announces sent.
    pub announces: u64,
    /// Tracker announces that failed (no answer, or a failure reason).
    pub announce_failures: u64,
}

/// One worker core's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreMetrics {
    /// Bytes written to peers (all messages), since start.
    pub bytes_sent: u64,
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since start.
    pub accepted: u64,
}

/// Whole-service counters, monotonic over the process's life (they keep counting what removed
/// torrents did, unlike a sum over [`MetricsSnapshot::torrents`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineTotals {
    /// Payload (block) bytes uploaded.
    pub uploaded: u64,
    /// Bytes written to peers, all messages.
    pub bytes_sent: u64,
    /// Blocks sent.
    pub blocks_sent: u64,
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Peers dropped for misbehaviour.
    pub dropped: u64,
    /// Requests rejected.
    pub rejected: u64,
    /// Tracker announces sent.
    pub announces: u64,
    /// Tracker announces that failed.
    pub announce_failures: u64,
}

/// Everything `/metrics` shows, taken at one moment.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// Whole-service totals.
    pub totals: EngineTotals,
    /// Per torrent.
    pub torrents: Vec<TorrentStatus>,
    /// Per worker core, indexed by core.
    pub cores: Vec<CoreMetrics>,
    /// Request arrival to block written, in microseconds, merged over cores (cumulative since
    /// start, as the engine keeps it), when any block was sent.
    pub latency_us: Option<Histogram<u64>>,
}

/// Why the backend refused a request; each maps to an HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No torrent has that info-hash.
    #[error("no torrent with info-hash {0}")]
    NotFound(InfoHash),
    /// The torrent is already in the service.
    #[error("torrent {0} is already added")]
    AlreadyExists(InfoHash),
    /// The `.torrent` bytes do not parse, or its data is not where the service looks for it.
    #[error("invalid torrent: {0}")]
    InvalidTorrent(String),
    /// The data path does not exist, is not readable, or is outside what the service may seed.
    #[error("invalid data path: {0}")]
    InvalidPath(String),
    /// The torrent's state does not allow it (e.g. resuming a torrent that is checking).
    #[error("{0}")]
    Conflict(String),
    /// The service cannot do it now (e.g. it is shutting down).
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl AdminError {
    /// The HTTP status code of the reply.
    pub fn status_code(&self) -> u16 {
        match self {
            AdminError::NotFound(_) => 404,
            AdminError::AlreadyExists(_) | AdminError::Conflict(_) => 409,
            AdminError::InvalidTorrent(_) | AdminError::InvalidPath(_) => 422,
            AdminError::Unavailable(_) => 503,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_statuses() {
        let h = InfoHash([1; 20]);
        assert_eq!(AdminError::NotFound(h).status_code(), 404);
        assert_eq!(AdminError::AlreadyExists(h).status_code(), 409);
        assert_eq!(AdminError::Conflict("x".into()).status_code(), 409);
        assert_eq!(AdminError::InvalidTorrent("x".into()).status_code(), 422);
        assert_eq!(AdminError::InvalidPath("x".into()).status_code(), 422);
        assert_eq!(AdminError::Unavailable("x".into()).status_code(), 503);
        assert!(AdminError::NotFound(h).to_string().contains(&h.to_hex()));
    }

    #[test]
    fn state_names_and_reasons() {
        let stopped = TorrentState::Stopped {
            reason: "data file deleted".into(),
        };
        assert_eq!(stopped.name(), "stopped");
        assert_eq!(stopped.reason(), Some("data file deleted"));
        assert_eq!(TorrentState::Seeding.reason(), None);
        for s in [
            TorrentState::Checking,
            TorrentState::Seeding,
            TorrentState::Paused,
            TorrentState::Rechecking,
            TorrentState::Partial { unserved_pieces: 3 },
            stopped,
        ] {
            assert!(TorrentState::NAMES.contains(&s.name()));
        }
        let partial = TorrentState::Partial { unserved_pieces: 3 };
        assert_eq!(partial.name(), "partial");
        assert_eq!(partial.unserved_pieces(), 3);
        assert_eq!(partial.reason(), None);
        assert_eq!(TorrentState::Seeding.unserved_pieces(), 0);
    }
}
