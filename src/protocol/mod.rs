//! The peer wire protocol (BEP 3, 6, 10), sans-IO.
//!
//! [`wire`] holds the byte format: the handshake, [`Message`] and the framing
//! [`MessageDecoder`]; [`extension`] the BEP 10 extension handshake; [`connection`] the
//! per-peer state machine shared by the seed server, the leecher and the simulator;
//! [`allowed_fast_set`] BEP 6's canonical allowed-fast pieces; [`mse`] the encrypted
//! handshake (MSE/PE) and its RC4 stream; [`utp`] the uTP transport (BEP 29);
//! [`ut_metadata`] BEP 9's metadata exchange; [`pex`] BEP 11's peer exchange.

mod allowed_fast;
pub mod connection;
pub mod extension;
pub mod mse;
mod peer_id;
pub mod pex;
pub mod ut_metadata;
pub mod utp;
pub mod wire;

pub use allowed_fast::allowed_fast_set;
pub use connection::{
    Connection, ConnectionConfig, Event, RequestError, Timeout, Violation, MAX_THEIR_ALLOWED_FAST,
};
pub use extension::{ExtendedHandshake, ExtensionError};
pub use peer_id::{PeerId, CLIENT_PREFIX};
pub use wire::{Handshake, Message, MessageDecoder, Reserved, WireError};
