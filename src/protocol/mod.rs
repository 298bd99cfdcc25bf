//! The peer wire protocol (BEP 3, 6, 10), sans-IO.
//!
//! [`wire`] holds the byte format: the handshake, [`Message`] and the framing
//! [`MessageDecoder`].

mod peer_id;
pub mod wire;

pub use peer_id::{PeerId, CLIENT_PREFIX};
pub use wire::{Handshake, Message, MessageDecoder, Reserved, WireError};
