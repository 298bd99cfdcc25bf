//! Writing new torrents (what `seedbox create` produces).

use crate::bencode::Owned;

/// One file of a torrent to write.
#[derive(Clone, Debug)]
pub struct NewFile {
    /// Path components below the torrent's root folder.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
}

/// Everything a new v1 torrent holds. [`TorrentBuilder::encode`] writes it with sorted keys,
/// so the same fields always give the same bytes.
#[derive(Clone, Debug, Default)]
pub struct TorrentBuilder {
    /// The name of the file or root folder.
    pub name: String,
    /// For a single file: `None`; for a folder: its files in order.
    pub files: Option<Vec<NewFile>>,
    /// For a single file: its length.
    pub length: u64,
    /// Piece length.
    pub piece_length: u32,
    /// Concatenated 20-byte piece hashes.
    pub pieces: Vec<u8>,
    /// Tracker URLs; the first is `announce`, all go in `announce-list`, one per tier.
    pub trackers: Vec<String>,
    /// Web seeds (`url-list`).
    pub web_seeds: Vec<String>,
    /// BEP 27 private flag.
    pub private: bool,
    /// `comment`.
    pub comment: Option<String>,
    /// `source` (inside the info dictionary, so it changes the info-hash).
    pub source: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date` (seconds since the epoch); `None` leaves it out.
    pub creation_date: Option<i64>,
}

impl TorrentBuilder {
    /// The bencoded info dictionary.
    pub fn info(&self) -> Owned {
        let mut info = Owned::dict()
            .insert("name", self.name.as_str())
            .insert("piece length", i64::from(self.piece_length))
            .insert("pieces", self.pieces.clone());
        match &self.files {
            None => info = info.insert("length", self.length as i64),
            Some(files) => {
                let list = files
                    .iter()
                    .map(|f| {
                        let path = f.path.iter().map(|c| Owned::from(c.as_str())).collect();
                        Owned::dict()
                            .insert("length", f.length as i64)
                            .insert("path", Owned::List(path))
                    })
                    .collect();
                info = info.insert("files", Owned::List(list));
            }
        }
        if self.private {
            info = info.insert("private", 1i64);
        }
        if let Some(source) = &self.source {
            info = info.insert("source", source.as_str());
        }
        info
    }

    /// The whole `.torrent` file.
    pub fn encode(&self) -> Vec<u8> {
        let mut root = Owned::dict().insert("info", self.info());
        if let Some(first) = self.trackers.first() {
            root = root.insert("announce", first.as_str());
        }
        if self.trackers.len() > 1 {
            let tiers = self
                .trackers
                .iter()
                .map(|t| Owned::List(vec![Owned::from(t.as_str())]))
                .collect();
            root = root.insert("announce-list", Owned::List(tiers));
        }
        if !self.web_seeds.is_empty() {
            let seeds = self
                .web_seeds
                .iter()
                .map(|s| Owned::from(s.as_str()))
                .collect();
            root = root.insert("url-list", Owned::List(seeds));
        }
        if let Some(comment) = &self.comment {
            root = root.insert("comment", comment.as_str());
        }
        if let Some(created_by) = &self.created_by {
            root = root.insert("created by", created_by.as_str());
        }
        if let Some(date) = self.creation_date {
            root = root.insert("creation date", date);
        }
        root.encode()
    }
}
