//! Writable torrent data for downloading: files created and preallocated, blocks written
//! into shared mappings, flushed at completion.
//!
//! Preallocation (`posix_fallocate`) reserves every block up front, so a full disk is a clear
//! error before the download starts instead of a SIGBUS on a mapped write halfway through.
//! Resume needs no separate record: a restart re-hashes what is on disk (see
//! [`super::verify`]), so only verified bytes are ever counted as done, whenever the previous
//! run was killed.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use memmap2::{MmapOptions, MmapRaw};

use super::{Layout, MappedStorage};

/// Why writable storage could not be set up or written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Creating, sizing or mapping a file failed.
    #[error("cannot prepare {}: {source}", path.display())]
    Prepare {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not enough free space for the whole torrent.
    #[error("not enough disk space for {}: {source}", path.display())]
    NoSpace {
        /// The file that did not fit.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Flushing to disk failed.
    #[error("cannot flush {}: {source}", path.display())]
    Flush {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A write outside the torrent.
    #[error("write of {length} bytes at {offset} is outside the torrent")]
    OutOfRange {
        /// Content offset.
        offset: u64,
        /// Length.
        length: usize,
    },
}

/// Torrent files mapped for writing. Writes to distinct ranges may come from several threads
/// at once; the caller must not write a range while it is read (a piece is hashed only once
/// all its blocks are in, and is never written again after that).
pub struct WritableStorage {
    layout: Layout,
    maps: Vec<Option<MmapRaw>>,
}

// SAFETY: the mappings are plain shared memory; the documented contract above (no write to a
// range while it is being read or written elsewhere) is what keeps accesses race-free.
unsafe impl Sync for WritableStorage {}
unsafe impl Send for WritableStorage {}

impl WritableStorage {
    /// Creates missing folders and files, grows each file to its size with real blocks
    /// reserved, and maps them. Existing content is kept (resume). Also returns a read-only
    /// view of the same files, for hashing and serving verified pieces.
    pub fn open(layout: Layout) -> Result<(WritableStorage, MappedStorage), WriteError> {
        let mut maps = Vec::with_capacity(layout.files().len());
        for slot in layout.files() {
            if slot.padding {
                maps.push(None);
                continue;
            }
            let prepare = |source| WriteError::Prepare {
                path: slot.path.clone(),
                source,
            };
            if let Some(parent) = slot.path.parent() {
                std::fs::create_dir_all(parent).map_err(prepare)?;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&slot.path)
                .map_err(prepare)?;
            preallocate(&file, slot.length).map_err(|source| {
                if source.raw_os_error() == Some(libc::ENOSPC) {
                    WriteError::NoSpace {
                        path: slot.path.clone(),
                        source,
                    }
                } else {
                    WriteError::Prepare {
                        path: slot.path.clone(),
                        source,
                    }
                }
            })?;
            if slot.length == 0 {
                maps.push(None);
                continue;
            }
            let map = MmapOptions::new()
                .len(slot.length as usize)
                .map_raw(&file)
                .map_err(prepare)?;
            maps.push(Some(map));
        }
        let read_view = MappedStorage::open(layout.clone()).map_err(|p| WriteError::Prepare {
            path: p.path().clone(),
            source: std::io::Error::other(p.to_string()),
        })?;
        Ok((WritableStorage { layout, maps }, read_view))
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Writes `data` at content offset `offset` (padding parts are skipped).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), WriteError> {
        let total = self.layout.geometry().total_length();
        if offset + data.len() as u64 > total {
            return Err(WriteError::OutOfRange {
                offset,
                length: data.len(),
            });
        }
        let mut done = 0usize;
        for e in self.layout.extents(offset, data.len() as u64) {
            let part = &data[done..done + e.length as usize];
            if let Some(map) = &self.maps[e.file] {
                // SAFETY: the extent lies inside the mapping (the layout and the mapping have
                // the file's length); the caller guarantees no concurrent access to the range.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        part.as_ptr(),
                        map.as_mut_ptr().add(e.file_offset as usize),
                        part.len(),
                    );
                }
            }
            done += e.length as usize;
        }
        Ok(())
    }

    /// Flushes every file to disk (at completion, and before reporting pieces as durable).
    pub fn flush(&self) -> Result<(), WriteError> {
        for (slot, map) in self.layout.files().iter().zip(&self.maps) {
            if let Some(map) = map {
                map.flush().map_err(|source| WriteError::Flush {
                    path: slot.path.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

/// Grows `file` to `length` bytes with blocks reserved (`posix_fallocate`); falls back to a
/// plain (sparse) resize on file systems without it.
fn preallocate(file: &File, length: u64) -> std::io::Result<()> {
    let current = file.metadata()?.len();
    if current > length {
        file.set_len(length)?;
    }
    if length == 0 {
        return Ok(());
    }
    // SAFETY: a plain syscall on an open descriptor.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, length as libc::off_t) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(length),
        err => Err(std::io::Error::from_raw_os_error(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::FileSlot;
    use super::*;
    use crate::swarm::BlockRef;

    #[test]
    fn writes_across_files_and_reads_back_through_the_read_view() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            FileSlot {
                path: dir.path().join("x/a"),
                offset: 0,
                length: 5,
                padding: false,
            },
            FileSlot {
                path: dir.path().join("x/empty"),
                offset: 5,
                length: 0,
                padding: false,
            },
            FileSlot {
                path: dir.path().join("pad"),
                offset: 5,
                length: 3,
                padding: true,
            },
            FileSlot {
                path: dir.path().join("b"),
                offset: 8,
                length: 4,
                padding: false,
            },
        ];
        let (w, r) = WritableStorage::open(Layout::new(files, 8)).unwrap();
        w.write(0, b"hello\0\0\0wo").unwrap();
        w.write(10, b"rl").unwrap();
        w.flush().unwrap();
        let piece0 = r
            .block(BlockRef {
                piece: 0,
                offset: 0,
                length: 8,
            })
            .unwrap();
        assert_eq!(&piece0[..], b"hello\0\0\0");
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"worl");
        assert!(dir.path().join("x/empty").exists());
        assert!(!dir.path().join("pad").exists());
        assert!(w.write(11, b"xy").is_err());
    }

    #[test]
    fn keeps_existing_content_for_resume() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"abc").unwrap();
        let files = vec![FileSlot {
            path: dir.path().join("a"),
            offset: 0,
            length: 6,
            padding: false,
        }];
        let (_w, r) = WritableStorage::open(Layout::new(files, 8)).unwrap();
        let b = r
            .block(BlockRef {
                piece: 0,
                offset: 0,
                length: 6,
            })
            .unwrap();
        assert_eq!(&b[..], b"abc\0\0\0");
    }
}
