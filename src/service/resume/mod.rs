//! Resume data for `seed --state DIR`: per torrent, the pieces verified and each file's
//! size, modification time and inode at the time they were verified, so that a restart with
//! unchanged files serves at once instead of hashing every byte again.
//!
//! This module is the sans-IO part: the data ([`ResumeData`]), its versioned bencode
//! encoding ([`ResumeData::encode`], [`ResumeData::decode`]) and the decision to trust it or
//! re-check ([`decide`], [`racy`]). [`store`] reads and writes it (atomically) in the state
//! folder.

mod codec;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

use crate::metainfo::InfoHash;
use crate::storage::FileIdentity;
use crate::swarm::Bitfield;

pub use codec::ResumeError;
pub use store::StateDir;

/// The version of the resume data format this build writes and reads.
pub const VERSION: i64 = 1;

/// How long after a file's last modification its pieces may be trusted on a later start.
/// Timestamps are coarse (a kernel tick, up to 10 ms on Linux file systems): a write in the
/// same tick as the one whose time was recorded would leave the modification time unchanged.
/// A file modified less than this before its check started is re-checked on the next start.
pub const RACY_MARGIN: Duration = Duration::from_secs(1);

/// What identifies a file's content: size, modification time and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Inode number.
    pub inode: u64,
}

impl From<&FileIdentity> for FileStat {
    fn from(id: &FileIdentity) -> Self {
        FileStat {
            size: id.len,
            mtime_ns: id
                .mtime
                .0
                .saturating_mul(1_000_000_000)
                .saturating_add(id.mtime.1),
            inode: id.ino,
        }
    }
}

/// One file of a torrent as it was when its pieces were verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedFile {
    /// Where it is on disk (absolute).
    pub path: PathBuf,
    /// Its identity; `None` for a file with no bytes on disk (padding, or empty).
    pub stat: Option<FileStat>,
}

/// A torrent's resume data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeData {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The pieces hashed and found good (only those: a piece never hashed is never set).
    pub verified: Bitfield,
    /// Every file of the torrent, in its order.
    pub files: Vec<SavedFile>,
    /// The file or folder a torrent was created from (`seed PATH`), to find its resume data
    /// without hashing it again to know its info-hash.
    pub source: Option<PathBuf>,
    /// The .torrent bytes of a torrent created from `source`.
    pub torrent: Option<Vec<u8>>,
}

/// What to do with a torrent whose resume data was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every file is as it was: these pieces were verified and need no hashing.
    Trust(Bitfield),
    /// Something differs: hash every piece (the reason, for the log).
    Recheck(String),
}

/// The torrent as it is now: what the resume data is compared with.
pub struct Current<'a> {
    /// Its info-hash.
    pub info_hash: InfoHash,
    /// Its piece count.
    pub piece_count: u32,
    /// Each file's path and its identity now (`None`: no bytes on disk).
    pub files: &'a [SavedFile],
}

/// Decides whether `saved` can be trusted for the torrent as it is `now`: the same torrent,
/// the same files at the same paths, each with the same size, modification time and inode.
pub fn decide(saved: &ResumeData, now: &Current<'_>) -> Verdict {
    if saved.info_hash != now.info_hash {
        return Verdict::Recheck(format!(
            "the resume data is for another torrent ({})",
            saved.info_hash
        ));
    }
    if saved.verified.len() != now.piece_count {
        return Verdict::Recheck(format!(
            "the resume data has {} pieces, the torrent {}",
            saved.verified.len(),
            now.piece_count
        ));
    }
    if saved.files.len() != now.files.len() {
        return Verdict::Recheck(format!(
            "the resume data has {} files, the torrent {}",
            saved.files.len(),
            now.files.len()
        ));
    }
    for (was, is) in saved.files.iter().zip(now.files) {
        if was.path != is.path {
            return Verdict::Recheck(format!(
                "{} was verified at {}",
                is.path.display(),
                was.path.display()
            ));
        }
        if let Some(why) = changed(was.stat, is.stat) {
            return Verdict::Recheck(format!("{}: {why}", is.path.display()));
        }
    }
    Verdict::Trust(saved.verified.clone())
}

/// How a file's identity changed, if it did.
fn changed(was: Option<FileStat>, is: Option<FileStat>) -> Option<String> {
    match (was, is) {
        (None, None) => None,
        (Some(_), None) => Some("now missing or empty".into()),
        (None, Some(_)) => Some("had no bytes when verified".into()),
        (Some(w), Some(i)) if w.size != i.size => {
            Some(format!("size changed ({} -> {} bytes)", w.size, i.size))
        }
        (Some(w), Some(i)) if w.mtime_ns != i.mtime_ns => Some(format!(
            "modified since verified (mtime {} -> {} ns)",
            w.mtime_ns, i.mtime_ns
        )),
        (Some(w), Some(i)) if w.inode != i.inode => Some(format!(
            "replaced since verified (inode {} -> {})",
            w.inode, i.inode
        )),
        _ => None,
    }
}

/// Whether a file with identity `stat` may have been written, in the same timestamp tick,
/// after a check that started at `check_started_ns` (nanoseconds since the epoch) read it:
/// its modification time is less than [`RACY_MARGIN`] before the check (or after it). Its
/// pieces must then not be saved as verified.
pub fn racy(stat: &FileStat, check_started_ns: i64) -> bool {
    stat.mtime_ns > check_started_ns.saturating_sub(RACY_MARGIN.as_nanos() as i64)
}

/// How long to wait before checking files whose newest modification time is `newest_ns`, at
/// `now_ns`, for the check not to be [`racy`]: until the files are [`RACY_MARGIN`] old, when
/// they were written in the last margin. A time further in the future than one margin (a
/// clock set back) is not waited for: such files are simply not trusted later.
pub fn settle_wait(newest_ns: i64, now_ns: i64) -> Duration {
    let margin = RACY_MARGIN.as_nanos() as i64;
    let ready = newest_ns.saturating_add(margin);
    if ready <= now_ns || newest_ns > now_ns.saturating_add(margin) {
        return Duration::ZERO;
    }
    // A nanosecond more: `racy` compares strictly.
    Duration::from_nanos((ready - now_ns) as u64 + 1)
}

/// The files of a torrent whose pieces were verified in a check that started at
/// `check_started_ns`, with the identities its storage recorded, or why they cannot be saved
/// as verified (a file written too close to the check: see [`racy`]).
pub fn files_to_save(
    paths: &[PathBuf],
    identities: &[Option<FileIdentity>],
    check_started_ns: i64,
) -> Result<Vec<SavedFile>, String> {
    let mut files = Vec::with_capacity(paths.len());
    for (path, id) in paths.iter().zip(identities) {
        let stat = id.as_ref().map(FileStat::from);
        if let Some(s) = &stat {
            if racy(s, check_started_ns) {
                return Err(format!(
                    "{} was modified less than {} s before it was checked",
                    path.display(),
                    RACY_MARGIN.as_secs_f64()
                ));
            }
        }
        files.push(SavedFile {
            path: path.clone(),
            stat,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests;
