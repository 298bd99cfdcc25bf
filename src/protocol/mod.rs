//! The peer wire protocol (BEP 3, 6, 10), sans-IO.

mod peer_id;

pub use peer_id::{PeerId, CLIENT_PREFIX};
