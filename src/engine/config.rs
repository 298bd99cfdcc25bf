//! Engine settings.

use std::time::Duration;

use crate::protocol::mse::EncryptionPolicy;
use crate::protocol::PeerId;
use crate::swarm::Slots;

/// How the engine treats peers. Built by `seedbox seed` from its flags.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Worker threads (one io_uring runtime and listener each).
    pub threads: usize,
    /// Regular unchoke slots per torrent over all cores, plus one optimistic unchoke: one
    /// choke round per torrent ranks its peers wherever they live ([`choke`](super::choke));
    /// [`Slots::Auto`] grows them from the upload rates (and `max_upload_rate`);
    /// [`Slots::Unlimited`] unchokes every interested peer.
    pub unchoke_slots: Slots,
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
    /// A keep-alive goes out after this long without sending anything.
    pub keepalive_interval: Duration,
    /// A write that makes no progress for this long drops the peer (it does not read).
    pub send_timeout: Duration,
    /// Upload limit in bytes per second over all cores (each core gets an equal share).
    pub max_upload_rate: Option<u64>,
    /// Writes of more than this many bytes go out with `IORING_OP_SENDMSG_ZC` (zero-copy,
    /// see [`zerocopy`](super::zerocopy)); `None`: every write is a `writev`.
    pub send_zc_threshold: Option<usize>,
    /// `SO_SNDBUF` of accepted sockets in bytes (`None`: the kernel's autotuning).
    pub send_buffer: Option<usize>,
    /// `TCP_NOTSENT_LOWAT` of accepted sockets in bytes (`None`: the system default,
    /// `net.ipv4.tcp_notsent_lowat`).
    pub notsent_lowat: Option<u32>,
    /// Pin worker thread `i` to the `i`-th CPU the process may run on.
    pub pin_cores: bool,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Plain and encrypted (MSE/PE) connections accepted.
    pub encryption: EncryptionPolicy,
    /// Our DHT node's UDP port, sent to peers that run a DHT node too (BEP 5 `port`); none
    /// without a DHT. Never sent for private torrents.
    pub dht_port: Option<u16>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            threads: 1,
            unchoke_slots: Slots::Limited(4),
            max_peers: 10_000,
            request_queue: 500,
            blocks_per_write: 16,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            max_upload_rate: None,
            send_zc_threshold: None,
            send_buffer: None,
            notsent_lowat: None,
            pin_cores: false,
            peer_id: PeerId::generate(&mut rand::thread_rng()),
            encryption: EncryptionPolicy::default(),
            dht_port: None,
        }
    }
}

/// One core's share of an upload limit over `threads` cores.
pub fn split_rate(rate: Option<u64>, threads: usize) -> Option<u64> {
    rate.map(|r| (r / threads.max(1) as u64).max(1))
}
