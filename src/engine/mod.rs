//! The thread-per-core io_uring engine: the I/O edge that runs peer connections.
//!
//! One worker thread per core, each with its own `tokio-uring` runtime and its own
//! `SO_REUSEPORT` listener on the shared port ([`listen`]); a connection lives and dies on the
//! core that accepted it ([`worker`], [`peer`]). Torrent data and metadata are shared read-only
//! behind an `Arc` ([`SeedTorrent`]); torrents are added and removed while serving through
//! each core's command channel ([`control`]); statistics are per-core counters summed
//! on read ([`stats`]). Blocks go from the memory map to the socket as `Bytes` views of the
//! mapping in one vectored write per batch ([`send`]): no user-space copy, no lock.
//! [`download`] is the leecher (`seedbox get`) on the same parts.

pub mod choke;
pub mod config;
pub mod control;
mod dial;
pub mod download;
mod icmp;
pub mod limits;
pub mod listen;
pub mod magnet;
mod mse;
mod peer;
mod peer_io;
pub mod send;
pub mod sockets;
pub mod stats;
pub mod super_seed;
pub mod torrents;
mod transport;
pub mod tune;
pub mod utp;
pub mod worker;
pub mod zerocopy;

pub use config::EngineConfig;
pub use control::{ControlError, CoreCommand, CoreInbox, EngineControl};
pub use limits::{LimitValues, Limits};
pub use listen::{bind_reuseport, raise_nofile_limit};
pub use stats::{EngineStats, StatsSnapshot};
pub use torrents::{PieceState, SeedTorrent, TorrentCounters, TorrentSet};
pub use worker::{run, Shutdown};
