//! Torrent metainfo (`.torrent` files): parsing, validation, creation, magnet links.
//!
//! Parsing finds the raw span of the `info` dictionary with seedbox's own bencode decoder
//! (so the info-hash is the SHA-1 of the bytes exactly as in the file) and reads the info
//! dictionary's typed view with `serde_bencode`. Validation rejects anything that could make
//! seedbox misbehave: see [`MetainfoError`].

mod builder;
mod create;
mod error;
mod file_tree;
mod info_hash;
pub mod magnet;
mod path;
mod piece_length;
mod torrent;
mod url_list;

pub use builder::{NewFile, TorrentBuilder};
pub use create::{create, scan, scan_layout, CreateError, CreateOptions, Scan};
pub use error::MetainfoError;
pub use info_hash::InfoHash;
pub use magnet::{magnet_link, Magnet, MagnetError};
pub use path::component_problem;
pub use piece_length::{auto_piece_length, AUTO_MAX, AUTO_MIN};
pub use torrent::{
    FileEntry, LoadError, Torrent, MAX_CONTENT_LENGTH, MAX_FILES, MAX_PIECE_LENGTH,
    MAX_TORRENT_FILE_SIZE,
};
pub use url_list::add_url_list;

#[cfg(test)]
mod tests;
