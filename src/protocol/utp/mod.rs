//! uTP, the µTorrent transport protocol (BEP 29), sans-IO: [`packet`] is the wire format,
//! [`connection`] one connection's reliability and LEDBAT congestion control, [`socket`] the
//! demultiplexer of one UDP socket. The engine drives them with a UDP socket per core.
//!
//! No crate fits here: the Rust uTP crates own their sockets and tasks on a multi-threaded
//! tokio runtime (librqbit-utp, utp-rs) or block on a std socket (utp), where the engine
//! needs a state machine that a tokio-uring core drives with its own socket and clock.

pub mod connection;
pub mod packet;
pub mod socket;
#[cfg(test)]
mod tests;

pub use connection::{CloseReason, Connection, State, UtpConfig};
pub use packet::{looks_like_utp, Header, PacketError, PacketType, Sack};
pub use socket::{ConnectError, Received, SocketConfig, UtpSocket};
