//! Making a torrent from a file or folder: scan, hash on all cores, encode.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use super::{auto_piece_length, component_problem, NewFile, Torrent, TorrentBuilder};
use crate::storage::{hash_pieces, FileSlot, Layout, MappedStorage};

/// What `seedbox create` can be asked for.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Piece length in bytes; `None` picks [`auto_piece_length`].
    pub piece_length: Option<u32>,
    /// Tracker URLs (the first is `announce`; each gets its own `announce-list` tier).
    pub trackers: Vec<String>,
    /// Web seeds.
    pub web_seeds: Vec<String>,
    /// BEP 27 private flag.
    pub private: bool,
    /// Comment.
    pub comment: Option<String>,
    /// `source` tag.
    pub source: Option<String>,
    /// Leave out `creation date` so the same input gives the same bytes.
    pub no_date: bool,
    /// Hashing threads (0: all cores).
    pub threads: usize,
}

/// A file or folder to share, scanned: files in their stable sorted order.
#[derive(Clone, Debug)]
pub struct Scan {
    /// The torrent's name: the file's or folder's own name.
    pub name: String,
    /// Whether a folder was scanned.
    pub multi_file: bool,
    /// Files: path components below the folder, the path on disk, the length.
    pub files: Vec<(Vec<String>, PathBuf, u64)>,
}

impl Scan {
    /// Total bytes.
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.2).sum()
    }
}

/// Why a torrent could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Reading the input failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A name that cannot go into a torrent.
    #[error("cannot share {}: {reason}", path.display())]
    BadName {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// No bytes to share.
    #[error("nothing to share in {}: no files, or all of them empty", path.display())]
    Empty {
        /// The path.
        path: PathBuf,
    },
    /// A file changed or vanished while it was hashed.
    #[error("{0} (did a file change while it was being hashed?)")]
    Changed(String),
    /// A piece length outside what seedbox accepts.
    #[error("piece length {0} is out of range (16 KiB to 256 MiB, a power of two)")]
    PieceLength(u32),
}

/// Scans `path`: a file, or a folder walked recursively with files sorted by their path
/// components (byte order). Symbolic links to files are followed; links to folders are not
/// (they could loop). Special files (sockets, devices) are skipped.
pub fn scan(path: &Path) -> Result<Scan, CreateError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| CreateError::Io { path: p, source }
    };
    let absolute = std::fs::canonicalize(path).map_err(io(path))?;
    let name = file_name(&absolute)?;
    let meta = std::fs::metadata(&absolute).map_err(io(path))?;
    let mut files = Vec::new();
    let multi_file = meta.is_dir();
    if multi_file {
        walk(&absolute, &mut Vec::new(), &mut files)?;
        files.sort_by(|a, b| a.0.cmp(&b.0));
    } else {
        files.push((vec![name.clone()], absolute.clone(), meta.len()));
    }
    let scan = Scan {
        name,
        multi_file,
        files,
    };
    if scan.total_length() == 0 {
        return Err(CreateError::Empty { path: absolute });
    }
    Ok(scan)
}

fn file_name(path: &Path) -> Result<String, CreateError> {
    let bad = |reason| CreateError::BadName {
        path: path.to_owned(),
        reason,
    };
    let name = path.file_name().ok_or(bad("it has no file name"))?;
    let name = name.to_str().ok_or(bad("its name is not UTF-8"))?;
    if let Some(reason) = component_problem(name.as_bytes()) {
        return Err(bad(reason));
    }
    Ok(name.to_owned())
}

fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, PathBuf, u64)>,
) -> Result<(), CreateError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| CreateError::Io { path: p, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let link_meta = entry.metadata().map_err(io(&path))?;
        let meta = if link_meta.file_type().is_symlink() {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                _ => {
                    tracing::warn!("skipping {}: a link to a folder or nothing", path.display());
                    continue;
                }
            }
        } else {
            link_meta
        };
        let name = file_name(&path)?;
        if meta.is_dir() {
            prefix.push(name);
            walk(&path, prefix, out)?;
            prefix.pop();
        } else if meta.is_file() {
            let mut components = prefix.clone();
            components.push(name);
            out.push((components, path, meta.len()));
        } else {
            tracing::warn!("skipping {}: not a regular file", path.display());
        }
    }
    Ok(())
}

/// The storage layout of a scan, for hashing.
pub fn scan_layout(scan: &Scan, piece_length: u32) -> Layout {
    let mut offset = 0;
    let slots = scan
        .files
        .iter()
        .map(|(_, path, length)| {
            let slot = FileSlot {
                path: path.clone(),
                offset,
                length: *length,
                padding: false,
            };
            offset += length;
            slot
        })
        .collect();
    Layout::new(slots, piece_length)
}

/// Hashes a scan and encodes the torrent. `progress` counts hashed bytes.
pub fn create(
    scan: &Scan,
    options: &CreateOptions,
    progress: &AtomicU64,
) -> Result<(Vec<u8>, Torrent), CreateError> {
    let total = scan.total_length();
    let piece_length = options
        .piece_length
        .unwrap_or_else(|| auto_piece_length(total));
    if !(16 * 1024..=256 * 1024 * 1024).contains(&piece_length) || !piece_length.is_power_of_two() {
        return Err(CreateError::PieceLength(piece_length));
    }
    let storage = MappedStorage::open(scan_layout(scan, piece_length))
        .map_err(|p| CreateError::Changed(p.to_string()))?;
    storage.advise_sequential();
    let threads = if options.threads == 0 {
        crate::storage::available_threads()
    } else {
        options.threads
    };
    let hashes = hash_pieces(&storage, threads, progress);
    let mut pieces = Vec::with_capacity(hashes.len() * 20);
    for (i, h) in hashes.iter().enumerate() {
        let h = h.ok_or_else(|| CreateError::Changed(format!("piece {i} could not be read")))?;
        pieces.extend_from_slice(&h);
    }
    let builder = TorrentBuilder {
        name: scan.name.clone(),
        files: scan.multi_file.then(|| {
            scan.files
                .iter()
                .map(|(path, _, length)| NewFile {
                    path: path.clone(),
                    length: *length,
                })
                .collect()
        }),
        length: total,
        piece_length,
        pieces,
        trackers: options.trackers.clone(),
        web_seeds: options.web_seeds.clone(),
        private: options.private,
        comment: options.comment.clone(),
        source: options.source.clone(),
        created_by: Some(format!("seedbox {}", env!("CARGO_PKG_VERSION"))),
        creation_date: (!options.no_date).then(unix_now),
    };
    let bytes = builder.encode();
    let torrent = Torrent::from_bytes(&bytes)
        .map_err(|e| CreateError::Changed(format!("created an invalid torrent: {e}")))?;
    Ok((bytes, torrent))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
