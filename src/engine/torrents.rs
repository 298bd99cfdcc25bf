//! The torrents a seed serves, shared read-only by every core.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::metainfo::{InfoHash, Torrent};
use crate::protocol::Message;
use crate::storage::MappedStorage;
use crate::swarm::{Bitfield, PieceGeometry};

/// One torrent being seeded: its metadata, its verified, mapped data and the pre-encoded
/// `bitfield` message every new peer gets.
pub struct SeedTorrent {
    /// The metainfo.
    pub torrent: Torrent,
    /// The data, mapped read-only.
    pub storage: MappedStorage,
    /// Piece and block sizes.
    pub geometry: PieceGeometry,
    /// Index in the [`TorrentSet`] (for per-torrent statistics).
    pub index: usize,
    bitfield_message: Bytes,
}

impl SeedTorrent {
    /// A complete torrent, ready to serve (the caller has checked the data).
    pub fn new(torrent: Torrent, storage: MappedStorage, index: usize) -> Self {
        let geometry = torrent.geometry();
        let full = Bitfield::full(geometry.piece_count());
        let mut buf = BytesMut::new();
        Message::Bitfield(Bytes::copy_from_slice(full.as_bytes())).encode(&mut buf);
        SeedTorrent {
            torrent,
            storage,
            geometry,
            index,
            bitfield_message: buf.freeze(),
        }
    }

    /// The info-hash.
    pub fn info_hash(&self) -> InfoHash {
        self.torrent.info_hash
    }

    /// The encoded `bitfield` message with every piece set.
    pub fn bitfield_message(&self) -> Bytes {
        self.bitfield_message.clone()
    }
}

/// Every torrent served, by info-hash. Immutable once built; shared behind an `Arc`.
#[derive(Default)]
pub struct TorrentSet {
    torrents: Vec<Arc<SeedTorrent>>,
    by_hash: HashMap<InfoHash, usize>,
}

impl TorrentSet {
    /// Builds the set; a second torrent with an info-hash already present is ignored and
    /// returned in the error list.
    pub fn new(list: Vec<(Torrent, MappedStorage)>) -> (TorrentSet, Vec<Torrent>) {
        let mut set = TorrentSet::default();
        let mut duplicates = Vec::new();
        for (torrent, storage) in list {
            if set.by_hash.contains_key(&torrent.info_hash) {
                duplicates.push(torrent);
                continue;
            }
            let index = set.torrents.len();
            set.by_hash.insert(torrent.info_hash, index);
            set.torrents
                .push(Arc::new(SeedTorrent::new(torrent, storage, index)));
        }
        (set, duplicates)
    }

    /// The torrent with this info-hash.
    pub fn get(&self, info_hash: &InfoHash) -> Option<&Arc<SeedTorrent>> {
        self.by_hash.get(info_hash).map(|&i| &self.torrents[i])
    }

    /// All torrents, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<SeedTorrent>> {
        self.torrents.iter()
    }

    /// How many torrents.
    pub fn len(&self) -> usize {
        self.torrents.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.torrents.is_empty()
    }
}
