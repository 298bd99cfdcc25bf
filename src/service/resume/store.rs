//! The state folder: one `INFOHASH.resume` file per torrent, written atomically (a temporary
//! file written and fsynced, renamed over the old one, then the folder fsynced), so that a
//! crash at any moment leaves either the old resume data or the new one. The folder is locked
//! (`flock`) for one process at a time.

use std::fs::File;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::ResumeData;
use crate::metainfo::InfoHash;

/// Resume data files end with this.
const EXTENSION: &str = "resume";

/// The state folder of `seed --state DIR`.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// Holds the `flock` on `DIR/lock` while the process runs.
    _lock: File,
    /// One writer at a time (the upkeep, re-check threads and the admin API may save).
    writing: Mutex<()>,
}

/// Why the state folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// It cannot be created or written.
    #[error("state folder {}: {source}", dir.display())]
    Io {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process holds its lock.
    #[error("state folder {} is in use by another seedbox (its lock file is held)", dir.display())]
    Locked {
        /// The folder.
        dir: PathBuf,
    },
}

impl StateDir {
    /// Opens (creating it if needed) and locks the state folder; removes temporary files a
    /// crash left behind.
    pub fn open(dir: &Path) -> Result<StateDir, StateDirError> {
        let io = |source| StateDirError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let dir = std::fs::canonicalize(dir).map_err(io)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(io)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(StateDirError::Locked { dir });
            }
            return Err(io(e));
        }
        for entry in std::fs::read_dir(&dir).map_err(io)?.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".resume.tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(StateDir {
            dir,
            _lock: lock,
            writing: Mutex::new(()),
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file_of(&self, hash: &InfoHash) -> PathBuf {
        self.dir.join(format!("{hash}.{EXTENSION}"))
    }

    /// The resume data of `hash`: `None` when there is none, or when it cannot be used
    /// (logged with the reason: the torrent is then checked in full).
    pub fn load(&self, hash: &InfoHash) -> Option<ResumeData> {
        let path = self.file_of(hash);
        self.read(&path).filter(|d| {
            let same = d.info_hash == *hash;
            if !same {
                tracing::warn!(
                    "{}: resume data of another torrent ({}); not used, full check",
                    path.display(),
                    d.info_hash
                );
            }
            same
        })
    }

    fn read(&self, path: &Path) -> Option<ResumeData> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("{}: cannot read ({e}); full check", path.display());
                return None;
            }
        };
        match ResumeData::decode(&bytes) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!("{}: resume data not used: {e}; full check", path.display());
                None
            }
        }
    }

    /// The resume data of the torrent created from `source` (the canonical path of a file or
    /// folder given to `seed`), if any.
    pub fn find_source(&self, source: &Path) -> Option<ResumeData> {
        let entries = std::fs::read_dir(&self.dir).ok()?;
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == EXTENSION))
            .filter_map(|p| self.read(&p))
            .find(|d| d.source.as_deref() == Some(source) && d.torrent.is_some())
    }

    /// Writes `data` atomically: a temporary file written and fsynced, renamed over the old
    /// file, and the folder fsynced.
    pub fn save(&self, data: &ResumeData) -> std::io::Result<()> {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.file_of(&data.info_hash);
        let tmp = path.with_extension(format!("{EXTENSION}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&data.encode())?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()
    }

    /// Forgets the resume data of `hash` (its data is being re-checked, changed, or the
    /// torrent removed). The removal is made durable, so that a crash after it cannot bring
    /// the old data back.
    pub fn remove(&self, hash: &InfoHash) {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        match std::fs::remove_file(self.file_of(hash)) {
            Ok(()) => {
                if let Ok(d) = File::open(&self.dir) {
                    let _ = d.sync_all();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove the resume data of {hash}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::resume::{FileStat, SavedFile};
    use crate::swarm::Bitfield;

    fn sample(hash: u8) -> ResumeData {
        let mut verified = Bitfield::new(10);
        verified.set(3);
        ResumeData {
            info_hash: InfoHash([hash; 20]),
            verified,
            files: vec![SavedFile {
                path: "/x/a".into(),
                stat: Some(FileStat {
                    size: 5,
                    mtime_ns: 7,
                    inode: 9,
                }),
            }],
            source: Some("/x/a".into()),
            torrent: Some(b"d4:infod4:name1:aee".to_vec()),
        }
    }

    #[test]
    fn saves_loads_removes_and_locks() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(&tmp.path().join("state")).unwrap();
        assert!(matches!(
            StateDir::open(&tmp.path().join("state")),
            Err(StateDirError::Locked { .. })
        ));
        let d = sample(1);
        dir.save(&d).unwrap();
        assert_eq!(dir.load(&d.info_hash), Some(d.clone()));
        assert_eq!(dir.find_source(Path::new("/x/a")), Some(d.clone()));
        assert_eq!(dir.find_source(Path::new("/x/b")), None);
        dir.remove(&d.info_hash);
        assert_eq!(dir.load(&d.info_hash), None);
    }

    #[test]
    fn a_corrupt_or_misnamed_file_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let d = sample(1);
        dir.save(&d).unwrap();
        let path = dir.file_of(&d.info_hash);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 30;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(dir.load(&d.info_hash), None);
        // Another torrent's data under this torrent's name.
        std::fs::write(&path, sample(2).encode()).unwrap();
        assert_eq!(dir.load(&d.info_hash), None);
        // A temporary file left by a crash is removed at open.
        std::fs::write(path.with_extension("resume.tmp"), b"x").unwrap();
        drop(dir);
        let _dir = StateDir::open(tmp.path()).unwrap();
        assert!(!path.with_extension("resume.tmp").exists());
    }
}
