//! Torrent metainfo (`.torrent` files): parsing, validation, creation, magnet links.

mod info_hash;

pub use info_hash::InfoHash;
