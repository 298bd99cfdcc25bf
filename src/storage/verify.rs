//! Checking data on disk against a torrent: what `seedbox verify` and a seed's start-up
//! check report.

use std::path::Path;
use std::sync::atomic::AtomicU64;

use super::{hash_pieces, FileProblem, Layout, MappedStorage};
use crate::metainfo::Torrent;

/// The outcome of checking a torrent's data.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Missing, short, long or unreadable files.
    pub file_problems: Vec<FileProblem>,
    /// Pieces whose SHA-1 does not match (all their bytes are on disk).
    pub bad_pieces: Vec<u32>,
    /// Pieces with bytes missing on disk.
    pub missing_pieces: Vec<u32>,
    /// Per piece: verified good.
    pub good: Vec<bool>,
    /// Files (indices into the torrent's files, padding excluded) that touch a bad or missing
    /// piece, with those pieces.
    pub bad_files: Vec<(usize, Vec<u32>)>,
}

impl VerifyReport {
    /// Whether everything is complete and correct.
    pub fn is_complete(&self) -> bool {
        self.file_problems.is_empty()
            && self.bad_pieces.is_empty()
            && self.missing_pieces.is_empty()
    }

    /// Verified pieces.
    pub fn good_count(&self) -> usize {
        self.good.iter().filter(|g| **g).count()
    }
}

/// Checks the content of `torrent` below `save_dir` on `threads` threads.
pub fn verify(
    torrent: &Torrent,
    save_dir: &Path,
    threads: usize,
    progress: &AtomicU64,
) -> (VerifyReport, MappedStorage) {
    let layout = Layout::of_torrent(torrent, save_dir);
    let (storage, file_problems) = MappedStorage::open_lenient(layout);
    storage.advise_sequential();
    let hashes = hash_pieces(&storage, threads, progress);
    let mut good = vec![false; hashes.len()];
    let mut bad_pieces = Vec::new();
    let mut missing_pieces = Vec::new();
    for (i, h) in hashes.iter().enumerate() {
        match h {
            None => missing_pieces.push(i as u32),
            Some(h) if h == torrent.piece_hash(i as u32) => good[i] = true,
            Some(_) => bad_pieces.push(i as u32),
        }
    }
    let bad_files = torrent
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.padding)
        .filter_map(|(i, _)| {
            let bad: Vec<u32> = storage
                .layout()
                .pieces_of_file(i)
                .filter(|&p| !good[p as usize])
                .collect();
            (!bad.is_empty()).then_some((i, bad))
        })
        .collect();
    let report = VerifyReport {
        file_problems,
        bad_pieces,
        missing_pieces,
        good,
        bad_files,
    };
    (report, storage)
}
