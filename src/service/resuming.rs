//! The service's use of resume data (`--state DIR`): trusting it at load when every file is
//! unchanged, saving it after each full check, forgetting it when the data changes.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::load::{self, Loaded};
use super::resume::{self, Current, ResumeData, SavedFile, StateDir, Verdict};
use super::Service;
use crate::metainfo::{InfoHash, Torrent};
use crate::storage::{Layout, MappedStorage};
use crate::swarm::Bitfield;

/// Nanoseconds since the epoch, now.
pub(super) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// The newest modification time of the files under `path` (recursively).
fn newest_mtime(path: &Path) -> i64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    let mut newest = mtime_ns(&meta);
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                newest = newest.max(newest_mtime(&e.path()));
            }
        }
    }
    newest
}

/// Waits, when files were written less than [`resume::RACY_MARGIN`] ago, until they are
/// that old (so that the check can be saved as resume data); returns when the check starts,
/// in nanoseconds since the epoch.
fn settle<'a>(paths: impl Iterator<Item = &'a Path>) -> i64 {
    let newest = paths.map(newest_mtime).max().unwrap_or(0);
    let wait = resume::settle_wait(newest, now_ns());
    if !wait.is_zero() {
        tracing::debug!("files written {wait:?} ago: waiting before the check");
        std::thread::sleep(wait);
    }
    now_ns()
}

/// `dir` made absolute (resume data records absolute paths).
pub(super) fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

impl Service {
    fn state(&self) -> Option<&StateDir> {
        self.config.state.as_deref()
    }

    /// Loads `target` like [`load::load_target`]. With a state folder, a file or folder whose
    /// torrent was created before and whose files are unchanged gets its torrent from the
    /// resume data, without hashing it again.
    pub fn load_target(&self, target: &Path) -> anyhow::Result<Loaded> {
        let config = &self.config;
        let Some(state) = self.state().filter(|_| !load::is_torrent_file(target)) else {
            return load::load_target(
                target,
                &config.data,
                config.threads,
                self.announce_url(),
                &config.web_seeds,
            );
        };
        if let Some(loaded) = self.created_before(state, target) {
            return Ok(loaded);
        }
        let started = settle(std::iter::once(target));
        let loaded = load::load_target(
            target,
            &config.data,
            config.threads,
            self.announce_url(),
            &config.web_seeds,
        )?;
        self.created_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(loaded.torrent.info_hash, started);
        Ok(loaded)
    }

    /// The torrent created from `target` at an earlier start, when its resume data says so
    /// (whether its files are unchanged is decided by [`Service::check_and_serve`]).
    fn created_before(&self, state: &StateDir, target: &Path) -> Option<Loaded> {
        let source = std::fs::canonicalize(target).ok()?;
        let saved = state.find_source(&source)?;
        let bytes = saved.torrent?;
        let torrent = Torrent::from_bytes(&bytes).ok()?;
        let dir = source.parent()?.to_path_buf();
        let out = dir.join(format!("{}.torrent", torrent.name));
        if std::fs::read(&out).ok().as_deref() != Some(&bytes[..]) {
            load::write_atomically(&out, &bytes).ok()?;
        }
        let loaded = Loaded {
            torrent,
            dir,
            bytes,
            created: Some(out),
        };
        // Files changed: create the torrent anew (of the new content).
        self.resume_storage(&loaded, false)?;
        Some(loaded)
    }

    /// The data of `loaded`, mapped, when its resume data says every piece was verified and
    /// every file is unchanged since; otherwise `None` (the reason logged), and the resume
    /// data is forgotten until the full check saves it again.
    pub(super) fn try_resume(&self, loaded: &Loaded) -> Option<MappedStorage> {
        self.resume_storage(loaded, true)
    }

    /// [`Service::try_resume`]; without `log`, only decides (nothing logged or forgotten).
    fn resume_storage(&self, loaded: &Loaded, log: bool) -> Option<MappedStorage> {
        let state = self.state()?;
        let torrent = &loaded.torrent;
        let hash = torrent.info_hash;
        let saved = state.load(&hash)?;
        let layout = Layout::of_torrent(torrent, &absolute(&loaded.dir));
        let storage = match MappedStorage::open(layout) {
            Ok(s) => s,
            Err(e) => {
                if log {
                    tracing::warn!(
                        "{} ({hash}): resume data not used: {e}; full check",
                        torrent.name
                    );
                    state.remove(&hash);
                }
                return None;
            }
        };
        let files: Vec<SavedFile> = storage
            .layout()
            .files()
            .iter()
            .zip(storage.identities())
            .map(|(f, id)| SavedFile {
                path: f.path.clone(),
                stat: id.as_ref().map(Into::into),
            })
            .collect();
        let now = Current {
            info_hash: hash,
            piece_count: torrent.piece_count(),
            files: &files,
        };
        let why = match resume::decide(&saved, &now) {
            Verdict::Trust(good) if good.is_full() => {
                if !log {
                    return Some(storage);
                }
                tracing::info!(
                    "{} ({hash}): resume data used: {} pieces verified before and every file \
                     unchanged (size, mtime, inode); serving without a re-hash",
                    torrent.name,
                    good.len()
                );
                return Some(storage);
            }
            Verdict::Trust(good) => format!(
                "only {} of {} pieces were verified",
                good.count(),
                good.len()
            ),
            Verdict::Recheck(why) => why,
        };
        if log {
            tracing::warn!(
                "{} ({hash}): resume data not used: {why}; full check",
                torrent.name
            );
            state.remove(&hash);
        }
        None
    }

    /// Waits for freshly written files to age (see [`settle`]) before a full check of
    /// `torrent` under `dir`; returns when the check starts (0 without a state folder).
    pub(super) fn before_check(&self, torrent: &Torrent, dir: &Path) -> i64 {
        if self.state().is_none() {
            return 0;
        }
        let layout = Layout::of_torrent(torrent, dir);
        settle(layout.files().iter().map(|f| f.path.as_path()))
    }

    /// When the creation of the torrent `hash` (from a file or folder) started, if it was
    /// created by [`Service::load_target`].
    pub(super) fn creation_started(&self, hash: &InfoHash) -> Option<i64> {
        self.created_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hash)
    }

    /// Saves the resume data of a torrent whose every piece was just verified, by a check
    /// (or creation) that started at `started_ns`; `created`: the .torrent bytes of a torrent
    /// created from `source`.
    pub(super) fn save_resume(
        &self,
        torrent: &Torrent,
        storage: &MappedStorage,
        started_ns: i64,
        created: Option<(&Path, &[u8])>,
    ) {
        let Some(state) = self.state() else {
            return;
        };
        let paths: Vec<PathBuf> = storage
            .layout()
            .files()
            .iter()
            .map(|f| absolute(&f.path))
            .collect();
        let files = match resume::files_to_save(&paths, &storage.identities(), started_ns) {
            Ok(f) => f,
            Err(why) => {
                tracing::info!(
                    "{}: resume data not saved: {why}; the next start checks it in full",
                    torrent.name
                );
                return;
            }
        };
        let data = ResumeData {
            info_hash: torrent.info_hash,
            verified: Bitfield::full(torrent.piece_count()),
            files,
            source: created.and_then(|(s, _)| std::fs::canonicalize(s).ok()),
            torrent: created.map(|(_, b)| b.to_vec()),
        };
        match state.save(&data) {
            Ok(()) => tracing::info!(
                "{} ({}): resume data saved ({} pieces verified)",
                torrent.name,
                torrent.info_hash,
                torrent.piece_count()
            ),
            Err(e) => tracing::warn!("{}: cannot save its resume data: {e}", torrent.name),
        }
    }

    /// Forgets a torrent's resume data (its data changed, is being re-checked, or it was
    /// removed).
    pub(super) fn forget_resume(&self, hash: &InfoHash) {
        if let Some(state) = self.state() {
            state.remove(hash);
        }
    }
}
