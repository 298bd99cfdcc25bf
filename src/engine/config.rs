//! Engine settings.

use std::time::Duration;

/// How the engine treats peers. Built by `seedbox seed` from its flags.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Worker threads (one io_uring runtime and listener each).
    pub threads: usize,
    /// Unchoke slots per torrent; `None` unchokes every interested peer.
    pub unchoke_slots: Option<u32>,
    /// Maximum simultaneous peer connections over all cores.
    pub max_peers: usize,
    /// Outstanding requests kept per peer (advertised as `reqq`); more are rejected.
    pub request_queue: u32,
    /// Blocks coalesced into one vectored write.
    pub blocks_per_write: usize,
    /// Time allowed for a new connection to send its handshake.
    pub handshake_timeout: Duration,
    /// A peer silent for this long is dropped.
    pub idle_timeout: Duration,
    /// A write that makes no progress for this long drops the peer (it does not read).
    pub send_timeout: Duration,
    /// Control bytes (rejects, haves, ...) allowed to pile up for a peer that does not read.
    pub max_pending_control: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            threads: 1,
            unchoke_slots: Some(4),
            max_peers: 10_000,
            request_queue: 500,
            blocks_per_write: 16,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            send_timeout: Duration::from_secs(30),
            max_pending_control: 256 * 1024,
        }
    }
}
