//! A parsed, validated torrent.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::file_tree::check_file_tree;
use super::path::{component_problem, relative_path};
use super::{magnet::magnet_link, InfoHash, MetainfoError};
use crate::bencode::{self, Kind, Value};
use crate::swarm::PieceGeometry;

/// Largest `.torrent` file accepted: 64 MiB (the largest real ones are a few MiB).
pub const MAX_TORRENT_FILE_SIZE: u64 = 64 * 1024 * 1024;
/// Largest piece length accepted: 256 MiB.
pub const MAX_PIECE_LENGTH: i64 = 256 * 1024 * 1024;
/// Largest file, and largest torrent, accepted: 1 PiB.
pub const MAX_CONTENT_LENGTH: u64 = 1 << 50;
/// Most files accepted in one torrent.
pub const MAX_FILES: usize = 1_000_000;

/// One file of a torrent, laid end to end with the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components below the torrent's root (for a single-file torrent, just its name).
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the file's first byte in the torrent's content.
    pub offset: u64,
    /// A BEP 47 padding file (`attr` holds `p`): counted in the piece layout, never on disk.
    pub padding: bool,
}

impl FileEntry {
    /// The path components joined with `/`, for display.
    pub fn display_path(&self) -> String {
        self.path.join("/")
    }
}

/// A torrent's metainfo, validated: every path is safe and the hashes match the layout.
#[derive(Clone, Debug)]
pub struct Torrent {
    /// SHA-1 of the info dictionary as it stands in the file.
    pub info_hash: InfoHash,
    /// SHA-256 of the info dictionary, for hybrid v1+v2 torrents (`meta version` 2).
    pub info_hash_v2: Option<[u8; 32]>,
    /// The suggested name of the file (single-file) or root folder (multi-file).
    pub name: String,
    /// Whether the content is a folder of files (`files`) rather than one file (`length`).
    pub multi_file: bool,
    /// Piece length in bytes.
    pub piece_length: u32,
    /// The files, padding included, in torrent order.
    pub files: Vec<FileEntry>,
    /// Sum of all file lengths, padding included.
    pub total_length: u64,
    /// BEP 27 private flag.
    pub private: bool,
    /// `source` key of the info dictionary (private trackers use it to make hashes unique).
    pub source: Option<String>,
    /// `announce`.
    pub announce: Option<String>,
    /// `announce-list` tiers (BEP 12).
    pub announce_list: Vec<Vec<String>>,
    /// `url-list` web seeds (BEP 19).
    pub url_list: Vec<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date`, seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    /// The info dictionary's bytes exactly as in the file.
    pub info_bytes: Vec<u8>,
    piece_hashes: Vec<[u8; 20]>,
}

#[derive(Deserialize)]
struct RawInfo {
    name: Option<ByteBuf>,
    #[serde(rename = "name.utf-8")]
    name_utf8: Option<ByteBuf>,
    #[serde(rename = "piece length")]
    piece_length: Option<i64>,
    pieces: Option<ByteBuf>,
    length: Option<i64>,
    files: Option<Vec<RawFile>>,
    private: Option<i64>,
    source: Option<ByteBuf>,
    #[serde(rename = "meta version")]
    meta_version: Option<i64>,
}

#[derive(Deserialize)]
struct RawFile {
    length: i64,
    path: Vec<ByteBuf>,
    #[serde(rename = "path.utf-8")]
    path_utf8: Option<Vec<ByteBuf>>,
    attr: Option<ByteBuf>,
}

impl Torrent {
    /// Reads and parses a `.torrent` file.
    pub fn load(path: &Path) -> Result<Torrent, LoadError> {
        let io = |source| LoadError::Io {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_TORRENT_FILE_SIZE {
            return Err(LoadError::Invalid {
                path: path.to_owned(),
                source: MetainfoError::FileTooLarge {
                    size,
                    limit: MAX_TORRENT_FILE_SIZE,
                },
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Torrent::from_bytes(&bytes).map_err(|source| LoadError::Invalid {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses and validates a torrent from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Torrent, MetainfoError> {
        if bytes.len() as u64 > MAX_TORRENT_FILE_SIZE {
            return Err(MetainfoError::FileTooLarge {
                size: bytes.len() as u64,
                limit: MAX_TORRENT_FILE_SIZE,
            });
        }
        // A tail after the root dictionary is ignored with a warning, as libtorrent and other
        // mainstream clients ignore it: the info-hash covers only the `info` value, so the tail
        // cannot change what is transferred. Everything else bencoded (tracker replies, peer
        // messages) stays strict.
        let (root, end) = bencode::decode_prefix(bytes)?;
        if end != bytes.len() {
            tracing::warn!(
                trailing_bytes = bytes.len() - end,
                offset = end,
                "torrent file has data after its root dictionary; ignoring it"
            );
        }
        if !matches!(root.kind, Kind::Dict(_)) {
            return Err(MetainfoError::NotADictionary(root.type_name()));
        }
        let info = root.get("info").ok_or(MetainfoError::MissingInfo)?;
        if !matches!(info.kind, Kind::Dict(_)) {
            return Err(MetainfoError::InvalidInfo(format!(
                "`info` is a {}, not a dictionary",
                info.type_name()
            )));
        }
        let raw: RawInfo = serde_bencode::from_bytes(info.raw)
            .map_err(|e| MetainfoError::InvalidInfo(e.to_string()))?;
        let mut torrent = Self::from_info(raw, info.raw)?;
        if torrent.info_hash_v2.is_some() {
            check_file_tree(info, &torrent.files)?;
        } else if info.get("file tree").is_some() {
            return Err(MetainfoError::InvalidInfo(
                "a `file tree` (v2) without `meta version` 2".into(),
            ));
        }
        torrent.read_top_level(&root);
        Ok(torrent)
    }

    fn from_info(raw: RawInfo, info_bytes: &[u8]) -> Result<Torrent, MetainfoError> {
        let name_bytes = raw
            .name_utf8
            .or(raw.name)
            .ok_or_else(|| MetainfoError::InvalidInfo("missing `name`".into()))?;
        let name = checked_component(&name_bytes, "name")?;
        let piece_length = match raw.piece_length {
            None => return Err(MetainfoError::InvalidInfo("missing `piece length`".into())),
            Some(p) if p <= 0 || p > MAX_PIECE_LENGTH => return Err(MetainfoError::PieceLength(p)),
            Some(p) => p as u32,
        };
        if let Some(version) = raw.meta_version.filter(|&v| v != 1 && v != 2) {
            return Err(MetainfoError::InvalidInfo(format!(
                "unknown `meta version` {version}"
            )));
        }
        let pieces = match raw.pieces {
            Some(p) => p.into_vec(),
            None if raw.meta_version == Some(2) => return Err(MetainfoError::V2Only),
            None => return Err(MetainfoError::InvalidInfo("missing `pieces`".into())),
        };

        let (multi_file, files) = checked_layout(raw.length, raw.files, &name)?;
        let total_length = files
            .last()
            .map(|f| f.offset + f.length)
            .unwrap_or_default();
        check_piece_count(&pieces, total_length, piece_length)?;
        let piece_hashes = pieces
            .chunks_exact(20)
            .map(|c| c.try_into().expect("20-byte chunk"))
            .collect();

        let info_hash_v2 = (raw.meta_version == Some(2)).then(|| {
            let digest = ring::digest::digest(&ring::digest::SHA256, info_bytes);
            digest.as_ref().try_into().expect("32-byte SHA-256")
        });

        Ok(Torrent {
            info_hash: InfoHash::of(info_bytes),
            info_hash_v2,
            name,
            multi_file,
            piece_length,
            files,
            total_length,
            private: raw.private == Some(1),
            source: raw.source.map(|s| lossy(&s)),
            announce: None,
            announce_list: Vec::new(),
            url_list: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            info_bytes: info_bytes.to_vec(),
            piece_hashes,
        })
    }

    /// Reads the optional top-level keys leniently: a malformed optional key is ignored, as
    /// other clients do, since it cannot change what is downloaded.
    fn read_top_level(&mut self, root: &Value<'_>) {
        let text = |key: &str| root.get(key).and_then(|v| v.as_bytes()).map(lossy);
        self.announce = text("announce").filter(|s| !s.is_empty());
        self.comment = text("comment");
        self.created_by = text("created by");
        self.creation_date = root.get("creation date").and_then(Value::as_int);
        if let Some(tiers) = root.get("announce-list").and_then(Value::as_list) {
            self.announce_list = tiers
                .iter()
                .filter_map(Value::as_list)
                .map(|tier| {
                    tier.iter()
                        .filter_map(Value::as_bytes)
                        .map(lossy)
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                })
                .filter(|tier| !tier.is_empty())
                .collect();
        }
        self.url_list = match root.get("url-list").map(|v| &v.kind) {
            Some(Kind::Bytes(b)) if !b.is_empty() => vec![lossy(b)],
            Some(Kind::List(items)) => items
                .iter()
                .filter_map(Value::as_bytes)
                .map(lossy)
                .collect(),
            _ => Vec::new(),
        };
    }

    /// The piece and block geometry.
    pub fn geometry(&self) -> PieceGeometry {
        PieceGeometry::new(self.piece_length, self.total_length)
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_hashes.len() as u32
    }

    /// The expected SHA-1 of piece `piece`.
    pub fn piece_hash(&self, piece: u32) -> &[u8; 20] {
        &self.piece_hashes[piece as usize]
    }

    /// Every tracker URL: the `announce-list` tiers in order (BEP 12 says to use them instead
    /// of `announce` when present), else `announce`; duplicates removed.
    pub fn trackers(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let all = self
            .announce_list
            .iter()
            .flatten()
            .chain(self.announce.iter());
        for url in all {
            if seen.insert(url.as_str()) {
                out.push(url.clone());
            }
        }
        out
    }

    /// The magnet link: trackers as `tr=`, web seeds (`url-list`) as `ws=`.
    pub fn magnet(&self) -> String {
        self.magnet_with_peers(&[])
    }

    /// The magnet link with `peers` as `x.pe=` (a seed's own address, so that a client
    /// finds it with no tracker).
    pub fn magnet_with_peers(&self, peers: &[std::net::SocketAddr]) -> String {
        let mut link = magnet_link(
            &self.info_hash,
            self.info_hash_v2.as_ref(),
            &self.name,
            &self.trackers(),
        );
        for ws in &self.url_list {
            link.push_str("&ws=");
            link.extend(percent_encoding::utf8_percent_encode(
                ws,
                super::magnet::PARAM,
            ));
        }
        for peer in peers {
            link.push_str(&format!("&x.pe={peer}"));
        }
        link
    }

    /// Where the content lives below a save folder: `DIR/name` (a file or a folder).
    pub fn content_root(&self, save_dir: &Path) -> PathBuf {
        save_dir.join(&self.name)
    }

    /// The on-disk path of `file` below a save folder.
    pub fn file_path(&self, save_dir: &Path, file: &FileEntry) -> PathBuf {
        if self.multi_file {
            self.content_root(save_dir).join(relative_path(&file.path))
        } else {
            self.content_root(save_dir)
        }
    }
}

/// A `.torrent` file that could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The content is not a usable torrent.
    #[error("{}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: MetainfoError,
    },
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn checked_component(bytes: &[u8], what: &str) -> Result<String, MetainfoError> {
    if let Some(reason) = component_problem(bytes) {
        return Err(MetainfoError::UnsafePath {
            path: lossy(bytes),
            what: what.to_owned(),
            reason,
        });
    }
    Ok(lossy(bytes))
}

fn checked_length(length: i64, what: &str) -> Result<u64, MetainfoError> {
    if length < 0 {
        return Err(MetainfoError::NegativeLength {
            what: what.to_owned(),
            length,
        });
    }
    let length = length as u64;
    if length > MAX_CONTENT_LENGTH {
        return Err(MetainfoError::LengthTooLarge {
            what: what.to_owned(),
            length,
            limit: MAX_CONTENT_LENGTH,
        });
    }
    Ok(length)
}

/// The files of a single-file (`length`) or multi-file (`files`) torrent, exactly one of them,
/// with checked lengths; true for multi-file.
fn checked_layout(
    length: Option<i64>,
    files: Option<Vec<RawFile>>,
    name: &str,
) -> Result<(bool, Vec<FileEntry>), MetainfoError> {
    match (length, files) {
        (Some(_), Some(_)) => Err(MetainfoError::Shape(
            "both `length` and `files` are present",
        )),
        (None, None) => Err(MetainfoError::Shape("neither `length` nor `files`")),
        (Some(length), None) => {
            let length = checked_length(length, "the file")?;
            let file = FileEntry {
                path: vec![name.to_owned()],
                length,
                offset: 0,
                padding: false,
            };
            Ok((false, vec![file]))
        }
        (None, Some(raw_files)) => Ok((true, checked_files(raw_files)?)),
    }
}

/// The content is not empty nor over [`MAX_CONTENT_LENGTH`], and `pieces` holds one 20-byte
/// hash per piece of it.
fn check_piece_count(
    pieces: &[u8],
    total_length: u64,
    piece_length: u32,
) -> Result<(), MetainfoError> {
    if total_length > MAX_CONTENT_LENGTH {
        return Err(MetainfoError::LengthTooLarge {
            what: "the torrent".into(),
            length: total_length,
            limit: MAX_CONTENT_LENGTH,
        });
    }
    if total_length == 0 {
        return Err(MetainfoError::EmptyContent);
    }
    if pieces.len() % 20 != 0 {
        return Err(MetainfoError::PiecesNotMultipleOf20(pieces.len()));
    }
    let expected = total_length.div_ceil(u64::from(piece_length));
    let found = pieces.len() / 20;
    if found as u64 != expected {
        return Err(MetainfoError::PieceCountMismatch {
            found,
            expected,
            total_length,
            piece_length,
        });
    }
    Ok(())
}

fn checked_files(raw_files: Vec<RawFile>) -> Result<Vec<FileEntry>, MetainfoError> {
    if raw_files.is_empty() {
        return Err(MetainfoError::Shape("`files` is empty"));
    }
    if raw_files.len() > MAX_FILES {
        return Err(MetainfoError::TooManyFiles(raw_files.len()));
    }
    let mut files = Vec::with_capacity(raw_files.len());
    let mut offset = 0u64;
    let mut seen_files = HashSet::new();
    let mut seen_dirs = HashSet::new();
    for (index, raw) in raw_files.into_iter().enumerate() {
        let what = format!("file {index}");
        let length = checked_length(raw.length, &what)?;
        let padding = raw.attr.is_some_and(|a| a.contains(&b'p'));
        let components = raw.path_utf8.unwrap_or(raw.path);
        if components.is_empty() {
            return Err(MetainfoError::UnsafePath {
                path: String::new(),
                what,
                reason: "empty path",
            });
        }
        let mut path = Vec::with_capacity(components.len());
        for c in &components {
            if let Some(reason) = component_problem(c) {
                let joined: Vec<String> = components.iter().map(|c| lossy(c)).collect();
                return Err(MetainfoError::UnsafePath {
                    path: joined.join("/"),
                    what,
                    reason,
                });
            }
            path.push(lossy(c));
        }
        if !padding {
            let joined = path.join("/");
            for end in 1..path.len() {
                seen_dirs.insert(path[..end].join("/"));
            }
            if seen_dirs.contains(&joined) || !seen_files.insert(joined.clone()) {
                return Err(MetainfoError::DuplicatePath(joined));
            }
        }
        files.push(FileEntry {
            path,
            length,
            offset,
            padding,
        });
        offset = offset
            .checked_add(length)
            .filter(|&o| o <= MAX_CONTENT_LENGTH)
            .ok_or_else(|| MetainfoError::LengthTooLarge {
                what: "the torrent".into(),
                length: offset.saturating_add(length),
                limit: MAX_CONTENT_LENGTH,
            })?;
    }
    if let Some(dup) = seen_files.iter().find(|f| seen_dirs.contains(*f)) {
        return Err(MetainfoError::DuplicatePath(dup.clone()));
    }
    Ok(files)
}
