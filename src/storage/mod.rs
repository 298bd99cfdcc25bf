//! Torrent data over memory-mapped files: files laid end to end ([`Layout`]), pieces mapped to
//! file extents, read-only mappings for seeding with `madvise` hints ([`MappedStorage`]), and
//! parallel piece hashing ([`hash_pieces`]), and preallocated writable mappings for downloads
//! ([`WritableStorage`]).

mod hasher;
mod layout;
mod mapped;
mod verify;
mod writable;

pub use hasher::{available_threads, hash_pieces};
pub use layout::{Extent, FileSlot, Layout};
pub use mapped::{FileIdentity, FileProblem, MappedStorage, Unavailable};
pub use verify::{verify, VerifyReport};
pub use writable::{WritableStorage, WriteError, WriteMode};
