//! Simulated peers and the connections between them.
//!
//! A peer in the swarm holds the engine's own torrent [`Driver`] (picker, choker, connection
//! state machines), exactly as `seedbox get` does; the simulator is its network and clock.
//! Each end of a connection knows the key its peer's driver gave the connection.

use crate::swarm::{BlockRef, Driver, PeerKey};

use super::event::Nanos;
use super::network::FlowId;

/// Index of a peer; 0 is the origin seed.
pub type PeerIdx = u32;
/// Index of a link slot.
pub type LinkIdx = u32;

/// The origin seed's index.
pub const ORIGIN: PeerIdx = 0;

/// One peer over its whole life (the heavy state is dropped when it leaves).
pub struct Peer {
    /// Arrival time.
    pub arrival: Nanos,
    /// When it had every piece.
    pub finish: Option<Nanos>,
    /// When it left.
    pub left: Option<Nanos>,
    /// Index of its peer class.
    pub class: u16,
    /// Never uploads; leaves on completion.
    pub free_rider: bool,
    /// One-way delay of its access link (a link's delay is the sum of both ends').
    pub latency: Nanos,
    /// Payload bytes uploaded.
    pub bytes_up: u64,
    /// Payload bytes received (duplicates included).
    pub bytes_down: u64,
    /// Protocol state while it is in the swarm.
    pub live: Option<Box<Live>>,
}

/// The protocol state of a peer in the swarm.
pub struct Live {
    /// The engine's torrent driver.
    pub driver: Driver,
    /// Its connections, in the order they were made.
    pub links: Vec<LinkIdx>,
    /// The link of each of the driver's peer keys.
    pub link_of: Vec<LinkIdx>,
    /// When it last asked the tracker for peers.
    pub last_announce: Nanos,
}

/// One end of a connection: the peer there and what it is sending.
pub struct End {
    /// The peer at this end.
    pub peer: PeerIdx,
    /// The key of the connection in the peer's driver, once connected.
    pub key: PeerKey,
    /// Where the peer's [`Live`] is and where its driver keeps the connection (the slot and
    /// the record), taken when the handshakes complete, for prefetch hints only: never
    /// dereferenced.
    pub hints: [usize; 3],
    /// The flow sending this end's current unit, if any.
    pub flow: Option<FlowId>,
    /// The unit being sent.
    pub sending: Option<BlockRef>,
}

/// A connection between two peers.
pub struct Link {
    /// One-way delay of every message.
    pub one_way: Nanos,
    /// Whether the handshakes completed (both drivers know the link).
    pub connected: bool,
    /// The two ends; end `i` sends to end `1 - i`.
    pub ends: [End; 2],
}

impl Link {
    /// Which end belongs to `peer`.
    pub fn side_of(&self, peer: PeerIdx) -> usize {
        usize::from(self.ends[0].peer != peer)
    }
}
