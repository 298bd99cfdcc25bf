//! The BitTorrent peer wire format (BEP 3, with the Fast extension of BEP 6 and the extension
//! protocol message of BEP 10): the handshake, the message enum, its encoder and a framing
//! decoder over `BytesMut`. Pure functions of bytes, no I/O.

mod decoder;
mod handshake;
mod message;

pub use decoder::{default_max_message_len, MessageDecoder};
pub use handshake::{Handshake, Reserved, HANDSHAKE_LEN, PROTOCOL_STRING};
pub use message::{piece_header, Message, PIECE_HEADER_LEN};

use thiserror::Error;

/// What is wrong with bytes a peer sent.
///
/// Every variant but [`WireError::UnknownMessage`] means the stream can no longer be trusted
/// and the connection should be dropped; see [`WireError::is_fatal`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer than 68 bytes were given to [`Handshake::parse`].
    #[error("handshake truncated: got {0} of 68 bytes")]
    HandshakeTruncated(usize),
    /// The handshake does not start with `\x13BitTorrent protocol` (an encrypted or
    /// non-BitTorrent connection).
    #[error("handshake does not start with \"\\x13BitTorrent protocol\" (pstrlen byte {pstrlen})")]
    BadProtocolString {
        /// The first byte received, where 19 was expected.
        pstrlen: u8,
    },
    /// A length prefix of 0xFFFFFFFF: never a valid message.
    #[error("message length prefix 0xFFFFFFFF is invalid")]
    InvalidLengthPrefix,
    /// A length prefix above the decoder's maximum.
    #[error("message of {length} bytes exceeds the maximum of {max} bytes")]
    MessageTooLong {
        /// The announced length.
        length: u32,
        /// The decoder's maximum.
        max: u32,
    },
    /// A message id this codec does not know; its bytes were consumed, so the caller may
    /// ignore it and keep decoding.
    #[error("unknown message id {id} ({length} byte message skipped)")]
    UnknownMessage {
        /// The message id.
        id: u8,
        /// Its length (id byte included).
        length: u32,
    },
    /// A known message whose payload has the wrong size.
    #[error("{message} message with a {actual} byte payload (expected {expected})")]
    BadPayloadLength {
        /// The message name.
        message: &'static str,
        /// The expected payload size, e.g. `"12"` or `"at least 8"`.
        expected: &'static str,
        /// The payload size received (id byte excluded).
        actual: u32,
    },
}

impl WireError {
    /// Whether the connection must be dropped. Only an unknown message id can be ignored.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, WireError::UnknownMessage { .. })
    }
}
