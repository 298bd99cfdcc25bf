//! Simulated peers and the connections between them.
//!
//! A peer holds the engine's own [`Picker`] and [`Choker`]; each end of a connection holds
//! the engine's [`Connection`] state machine plus the [`RateMeter`]s and timestamps the
//! leecher session keeps per peer (`engine/download/session.rs`).

use std::time::Duration;

use crate::protocol::Connection;
use crate::swarm::{BlockRef, Choker, Picker, PieceLines, RateMeter};

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
    /// The engine's piece picker, keyed by remote peer index.
    pub picker: Picker<PeerIdx>,
    /// The engine's choker, keyed by remote peer index.
    pub choker: Choker<PeerIdx>,
    /// Its connections, in the order they were made.
    pub links: Vec<LinkIdx>,
    /// When it last asked the tracker for peers.
    pub last_announce: Nanos,
}

/// One end of a connection: what a peer knows about the peer at the other end.
///
/// `repr(C)`, as [`Link`]: the small fields every message reads first, then the download
/// meter `fill_requests` reads, then the connection (its own hot fields first), then the upload
/// meter, so the simulator can prefetch an end before its event runs.
#[repr(C)]
pub struct End {
    /// The peer at this end.
    pub peer: PeerIdx,
    /// How many pieces the other end has that this end's peer lacks: this end is interested
    /// exactly when it is non-zero (`Picker::is_interesting`, kept up to date piece by piece
    /// instead of rescanning both bitfields).
    pub wanted: u32,
    /// The flow sending this end's current unit, if any.
    pub flow: Option<FlowId>,
    /// Smoothed request-to-block time (as the session keeps it, for pipeline depth).
    pub rtt: Duration,
    /// The unit being sent.
    pub sending: Option<BlockRef>,
    /// When a block last arrived from the other end.
    pub last_block_at: Option<Duration>,
    /// Where this end's peer's [`Live`] and picker records are, for prefetch hints only.
    pub hints: Hints,
    /// What this end receives from the other.
    pub down: RateMeter,
    /// The engine's connection state machine.
    pub conn: Connection,
    /// What this end uploads to the other.
    pub up: RateMeter,
    /// When the handshake completed.
    pub connected_at: Duration,
}

/// Addresses of the state a message to an end's peer will touch besides the end itself,
/// taken when the connection is made (a live peer's state never moves) and used only as
/// prefetch hints (see `Sim::prefetch_deep`): never dereferenced.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hints {
    /// The peer's [`Live`].
    pub live: usize,
    /// Its picker's per-piece records.
    pub lines: PieceLines,
}

/// A connection between two peers (`repr(C)`: see [`End`]).
#[repr(C)]
pub struct Link {
    /// One-way delay of every message.
    pub one_way: Nanos,
    /// The two ends; end `i` sends to end `1 - i`.
    pub ends: [End; 2],
}

impl Link {
    /// Which end belongs to `peer`.
    pub fn side_of(&self, peer: PeerIdx) -> usize {
        usize::from(self.ends[0].peer != peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConnectionConfig;
    use crate::swarm::PieceGeometry;

    /// `Sim::prefetch_event` computes an end's address from the slot's: that needs the link
    /// at offset 0 of its `Option`.
    #[test]
    fn an_optional_link_keeps_its_payload_at_offset_zero() {
        let geometry = PieceGeometry::new(16384, 16384 * 4);
        let end = |peer| End {
            peer,
            wanted: 0,
            flow: None,
            rtt: Duration::ZERO,
            sending: None,
            last_block_at: None,
            hints: Hints::default(),
            down: RateMeter::new(Duration::ZERO),
            conn: Connection::new(ConnectionConfig::default(), geometry, Duration::ZERO),
            up: RateMeter::new(Duration::ZERO),
            connected_at: Duration::ZERO,
        };
        let slot = Some(Link {
            one_way: 0,
            ends: [end(1), end(2)],
        });
        let link = slot.as_ref().expect("some") as *const Link as usize;
        assert_eq!(link, &slot as *const Option<Link> as usize);
    }
}
