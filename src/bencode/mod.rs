//! Bencode (BEP 3), sans-IO.
//!
//! [`decode`] parses a buffer into a borrowed [`Value`] tree that remembers the exact bytes
//! (and byte offset) every value came from, so callers can hash a value as it stands in the
//! file (the info-hash rule) instead of a re-encoding. [`Owned`] builds values to encode, with
//! dictionary keys always written in sorted order.
//!
//! The decoder is lenient where real files are (unsorted or duplicate keys are kept as found)
//! and strict where safety needs it (nesting depth, integer syntax, truncation, trailing data),
//! and every error names the byte offset it happened at.
//!
//! Trailing data: [`decode`] refuses bytes after the value, and tracker replies and peer
//! messages go through it, since a tail there means a misframed body or message. Only a
//! `.torrent` file is read with [`decode_prefix`] and its tail ignored with a warning, as
//! libtorrent and other mainstream clients load such files (the tail is outside the info-hash).

mod decode;
mod encode;

pub use decode::{decode, decode_prefix, DecodeError, DecodeErrorKind, Kind, Value, MAX_DEPTH};
pub use encode::Owned;
