//! Read-only torrent data over `memmap2` mappings: what seeding, `verify` and `create` read.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{Advice, Mmap, MmapOptions};

use super::layout::{Extent, Layout};
use crate::swarm::BlockRef;

/// Why a file of a torrent cannot be read as it should.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    /// The file does not exist.
    #[error("{}: missing", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists with another size.
    #[error("{}: {actual} bytes, expected {expected}", path.display())]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// Size on disk.
        actual: u64,
        /// Size in the torrent.
        expected: u64,
    },
    /// The file exists but cannot be opened or mapped.
    #[error("{}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        reason: String,
    },
}

impl FileProblem {
    /// The file concerned.
    pub fn path(&self) -> &PathBuf {
        match self {
            FileProblem::Missing { path }
            | FileProblem::WrongSize { path, .. }
            | FileProblem::Unreadable { path, .. } => path,
        }
    }
}

/// A mapping shared by `Bytes` handles: blocks handed to the network keep it alive.
struct SharedMap(Arc<Mmap>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One file's data: a mapping of the bytes that exist, possibly fewer than expected.
enum FileData {
    /// Mapped: `bytes` views the whole mapping (`available` bytes); `file` and `identity` are
    /// kept to notice a file truncated, replaced or rewritten under the mapping.
    Mapped {
        map: Arc<Mmap>,
        bytes: Bytes,
        file: File,
        identity: FileIdentity,
    },
    /// Nothing to read (zero-length, missing or unreadable file).
    Nothing,
    /// A padding file: reads as zeros.
    Padding,
}

/// Torrent data mapped read-only. Shared between cores behind an `Arc`; reads never lock.
pub struct MappedStorage {
    layout: Layout,
    data: Vec<FileData>,
    /// How many bytes of each file can be read (for verify of short files).
    available: Vec<u64>,
}

/// What identifies a file's content on disk at mapping time: device, inode, size and
/// modification time (seconds and nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub len: u64,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub mtime: (i64, i64),
}

impl FileIdentity {
    /// The identity in `meta`.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// Zeros for padding files.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// A range of the content that cannot be read (a missing or short file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bytes {offset}..{end} of the torrent are not available on disk")]
pub struct Unavailable {
    /// Start of the range asked for.
    pub offset: u64,
    /// End of the range asked for.
    pub end: u64,
}

impl MappedStorage {
    /// Maps every file; the first missing, short or unreadable file is an error. What a seed
    /// needs: every byte present.
    pub fn open(layout: Layout) -> Result<MappedStorage, FileProblem> {
        let (storage, problems) = Self::open_lenient(layout);
        match problems.into_iter().next() {
            Some(p) => Err(p),
            None => Ok(storage),
        }
    }

    /// Maps whatever exists and lists what does not (missing files, wrong sizes). Reads of the
    /// missing parts fail with [`Unavailable`]. What `verify` needs.
    pub fn open_lenient(layout: Layout) -> (MappedStorage, Vec<FileProblem>) {
        let mut data = Vec::with_capacity(layout.files().len());
        let mut available = Vec::with_capacity(layout.files().len());
        let mut problems = Vec::new();
        for slot in layout.files() {
            if slot.padding {
                data.push(FileData::Padding);
                available.push(slot.length);
                continue;
            }
            let (file_data, avail) = match map_file(&slot.path, slot.length) {
                Ok((d, avail, problem)) => {
                    problems.extend(problem);
                    (d, avail)
                }
                Err(problem) => {
                    problems.push(problem);
                    (FileData::Nothing, 0)
                }
            };
            data.push(file_data);
            available.push(avail);
        }
        let storage = MappedStorage {
            layout,
            data,
            available,
        };
        (storage, problems)
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Each file's identity when it was mapped (`None` for padding, and for a file that is
    /// empty, missing or unreadable), in layout order.
    pub fn identities(&self) -> Vec<Option<FileIdentity>> {
        self.data
            .iter()
            .map(|d| match d {
                FileData::Mapped { identity, .. } => Some(*identity),
                _ => None,
            })
            .collect()
    }

    /// Calls `f` with each slice of content bytes `offset..offset+length`, in order, without
    /// copying. Fails (possibly after some calls) when part of the range is not on disk.
    pub fn for_each_slice(
        &self,
        offset: u64,
        length: u64,
        mut f: impl FnMut(&[u8]),
    ) -> Result<(), Unavailable> {
        let unavailable = Unavailable {
            offset,
            end: offset + length,
        };
        for Extent {
            file,
            file_offset,
            length,
        } in self.layout.extents(offset, length)
        {
            if file_offset + length > self.available[file] {
                return Err(unavailable);
            }
            match &self.data[file] {
                FileData::Mapped { bytes, .. } => {
                    let start = file_offset as usize;
                    f(&bytes[start..start + length as usize]);
                }
                FileData::Padding => {
                    let mut left = length as usize;
                    while left > 0 {
                        let n = left.min(ZEROS.len());
                        f(&ZEROS[..n]);
                        left -= n;
                    }
                }
                FileData::Nothing => return Err(unavailable),
            }
        }
        Ok(())
    }

    /// Whether every byte of piece `piece` is on disk.
    pub fn piece_available(&self, piece: u32) -> bool {
        self.layout
            .piece_extents(piece)
            .all(|e| e.file_offset + e.length <= self.available[e.file])
    }

    /// SHA-1 of piece `piece`, or `None` when part of it is not on disk.
    pub fn hash_piece(&self, piece: u32) -> Option<[u8; 20]> {
        use sha1::{Digest, Sha1};
        let g = self.layout.geometry();
        let mut hasher = Sha1::new();
        self.for_each_slice(g.piece_offset(piece), u64::from(g.piece_size(piece)), |s| {
            hasher.update(s)
        })
        .ok()?;
        Some(hasher.finalize().into())
    }

    /// The bytes of `block`, without copying when it lies inside one file (the usual case);
    /// a block that spans files or padding is assembled into a new buffer. `None` when the
    /// block is outside the torrent or not on disk.
    pub fn block(&self, block: BlockRef) -> Option<Bytes> {
        let g = self.layout.geometry();
        if !g.is_valid_request(block, u32::MAX) {
            return None;
        }
        let offset = g.piece_offset(block.piece) + u64::from(block.offset);
        let length = u64::from(block.length);
        let mut extents = self.layout.extents(offset, length);
        let first = extents.next()?;
        if first.length == length {
            if first.file_offset + length > self.available[first.file] {
                return None;
            }
            if let FileData::Mapped { bytes, .. } = &self.data[first.file] {
                let start = first.file_offset as usize;
                return Some(bytes.slice(start..start + length as usize));
            }
        }
        let mut out = Vec::with_capacity(length as usize);
        self.for_each_slice(offset, length, |s| out.extend_from_slice(s))
            .ok()?;
        Some(Bytes::from(out))
    }

    /// Checks that every mapped file is still what was mapped: same size (a shorter file turns
    /// reads of the mapping past its end into SIGBUS), same inode at the same path (not
    /// replaced) and same modification time (not rewritten). Two `fstat`s and a `stat` per
    /// file: cheap enough to run every second.
    pub fn check_files(&self) -> Result<(), FileProblem> {
        for (slot, d) in self.layout.files().iter().zip(&self.data) {
            let FileData::Mapped { file, identity, .. } = d else {
                continue;
            };
            let path = &slot.path;
            let changed = |what: &str| FileProblem::Unreadable {
                path: path.clone(),
                reason: format!("{what} while being seeded"),
            };
            let now = file.metadata().map_err(|e| FileProblem::Unreadable {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if now.len() != identity.len {
                return Err(FileProblem::WrongSize {
                    path: path.clone(),
                    actual: now.len(),
                    expected: identity.len,
                });
            }
            if FileIdentity::of(&now).mtime != identity.mtime {
                return Err(changed("modified"));
            }
            match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(FileProblem::Missing { path: path.clone() })
                }
                Err(e) => {
                    return Err(FileProblem::Unreadable {
                        path: path.clone(),
                        reason: e.to_string(),
                    })
                }
                Ok(m) => {
                    let at_path = FileIdentity::of(&m);
                    if (at_path.dev, at_path.ino) != (identity.dev, identity.ino) {
                        return Err(changed("replaced"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends the bytes of `block` to `out` as views of the mappings (one per file extent,
    /// zeros for padding), never copying and never reading the mapping in user space: the
    /// kernel copies them when they are sent, so a file truncated meanwhile makes the send fail
    /// with `EFAULT` instead of raising SIGBUS. Returns false (leaving `out` as it was) when the
    /// block is outside the torrent or not on disk.
    pub fn block_parts(&self, block: BlockRef, out: &mut Vec<Bytes>) -> bool {
        let g = self.layout.geometry();
        if !g.is_valid_request(block, u32::MAX) {
            return false;
        }
        let offset = g.piece_offset(block.piece) + u64::from(block.offset);
        self.range_parts(offset, u64::from(block.length), out)
    }

    /// [`MappedStorage::block_parts`] for any byte range `offset..offset + length` of the
    /// content (a web seed's HTTP range): views of the mappings, zeros for padding, never a
    /// copy. Returns false (leaving `out` as it was) when the range is outside the content or
    /// not on disk.
    pub fn range_parts(&self, offset: u64, length: u64, out: &mut Vec<Bytes>) -> bool {
        let total = self.layout.geometry().total_length();
        match offset.checked_add(length) {
            Some(end) if end <= total => {}
            _ => return false,
        }
        let before = out.len();
        for e in self.layout.extents(offset, length) {
            if e.file_offset + e.length > self.available[e.file] {
                out.truncate(before);
                return false;
            }
            match &self.data[e.file] {
                FileData::Mapped { bytes, .. } => {
                    let start = e.file_offset as usize;
                    out.push(bytes.slice(start..start + e.length as usize));
                }
                FileData::Padding => {
                    let mut left = e.length as usize;
                    while left > 0 {
                        let n = left.min(ZEROS.len());
                        out.push(Bytes::from_static(&ZEROS[..n]));
                        left -= n;
                    }
                }
                FileData::Nothing => {
                    out.truncate(before);
                    return false;
                }
            }
        }
        true
    }

    /// SHA-1 of piece `piece` read with `pread` rather than through the mapping, so a file
    /// truncated meanwhile gives `None` instead of SIGBUS. `None` also when part of the piece
    /// is not on disk or cannot be read.
    pub fn hash_piece_pread(&self, piece: u32) -> Option<[u8; 20]> {
        use sha1::{Digest, Sha1};
        use std::os::unix::fs::FileExt;
        let mut hasher = Sha1::new();
        let mut buf = vec![0u8; 256 * 1024];
        for e in self.layout.piece_extents(piece) {
            match &self.data[e.file] {
                FileData::Mapped { file, .. } => {
                    let mut done = 0u64;
                    while done < e.length {
                        let n = (e.length - done).min(buf.len() as u64) as usize;
                        file.read_exact_at(&mut buf[..n], e.file_offset + done)
                            .ok()?;
                        hasher.update(&buf[..n]);
                        done += n as u64;
                    }
                }
                FileData::Padding => {
                    let mut left = e.length as usize;
                    while left > 0 {
                        let n = left.min(ZEROS.len());
                        hasher.update(&ZEROS[..n]);
                        left -= n;
                    }
                }
                FileData::Nothing => return None,
            }
        }
        Some(hasher.finalize().into())
    }

    /// Hints the kernel that the files will be read front to back (verify, create).
    pub fn advise_sequential(&self) {
        for d in &self.data {
            if let FileData::Mapped { map, .. } = d {
                let _ = map.advise(Advice::Sequential);
            }
        }
    }

    /// Asks for transparent huge pages on every mapping (`madvise(MADV_HUGEPAGE)`). Whether the
    /// kernel backs page-cache files with them depends on its build and the filesystem (see
    /// `tuning.md`); the advice itself is harmless. Returns the mappings advised and the first
    /// error.
    pub fn advise_huge_pages(&self) -> (usize, Option<std::io::Error>) {
        let mut advised = 0;
        let mut first_error = None;
        for d in &self.data {
            if let FileData::Mapped { map, .. } = d {
                match map.advise(Advice::HugePage) {
                    Ok(()) => advised += 1,
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        (advised, first_error)
    }

    /// Maps piece `piece`'s pages into the page tables now (`MADV_POPULATE_READ`, reading
    /// from disk what is not cached), so that whoever reads the piece next takes no page
    /// faults. Errors (an old kernel, a file shrunk under the mapping) are ignored: the reader
    /// then faults as usual and sees the problem itself.
    pub fn populate(&self, piece: u32) {
        self.for_each_mapped_range(piece, |map, offset, len| {
            let _ = map.advise_range(Advice::PopulateRead, offset, len);
        });
    }

    /// Drops piece `piece`'s pages from the page tables (`MADV_DONTNEED`; the data stays in
    /// the page cache and a later read maps it again). Tearing down the page tables of a
    /// whole populated mapping at once costs about 0.1 s per 2 GiB when it is unmapped;
    /// released piece by piece behind the hashers, that work overlaps with hashing.
    pub fn release(&self, piece: u32) {
        self.for_each_mapped_range(piece, |map, offset, len| {
            // SAFETY: the mapping is a read-only shared mapping of a file, for which
            // MADV_DONTNEED only unmaps pages: their contents stay in the page cache, and any
            // later read (here or through a `Bytes` view) sees the same file bytes.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
            };
        });
    }

    /// Hints the kernel that piece `piece` will be read soon (a request for a cold piece).
    pub fn advise_will_need(&self, piece: u32) {
        self.for_each_mapped_range(piece, |map, offset, len| {
            let _ = map.advise_range(Advice::WillNeed, offset, len);
        });
    }

    /// Calls `f` with each mapping piece `piece` lies in and the piece's offset and length
    /// within it (padding and unmapped files skipped): what the `madvise` hints above act on.
    fn for_each_mapped_range(&self, piece: u32, mut f: impl FnMut(&Mmap, usize, usize)) {
        for e in self.layout.piece_extents(piece) {
            if let FileData::Mapped { map, .. } = &self.data[e.file] {
                f(map, e.file_offset as usize, e.length as usize);
            }
        }
    }
}

/// Maps one file. Returns the data, how many of the expected bytes exist, and a size problem.
fn map_file(
    path: &PathBuf,
    expected: u64,
) -> Result<(FileData, u64, Option<FileProblem>), FileProblem> {
    let unreadable = |e: std::io::Error| FileProblem::Unreadable {
        path: path.clone(),
        reason: e.to_string(),
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FileProblem::Missing { path: path.clone() })
        }
        Err(e) => return Err(unreadable(e)),
    };
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(FileProblem::Unreadable {
            path: path.clone(),
            reason: "not a regular file".into(),
        });
    }
    let actual = meta.len();
    let problem = (actual != expected).then(|| FileProblem::WrongSize {
        path: path.clone(),
        actual,
        expected,
    });
    let avail = actual.min(expected);
    if avail == 0 {
        return Ok((FileData::Nothing, 0, problem));
    }
    // SAFETY: the mapping is read-only. Another process truncating the file turns reads past
    // its new end into SIGBUS; the seed server guards against that (see the engine).
    let map = unsafe { MmapOptions::new().len(avail as usize).map(&file) }.map_err(unreadable)?;
    let map = Arc::new(map);
    let bytes = Bytes::from_owner(SharedMap(map.clone()));
    let identity = FileIdentity::of(&meta);
    Ok((
        FileData::Mapped {
            map,
            bytes,
            file,
            identity,
        },
        avail,
        problem,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::layout::FileSlot;
    use super::*;

    fn setup(
        contents: &[Option<&[u8]>],
        expected: &[u64],
        piece_length: u32,
    ) -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let mut offset = 0;
        let mut files = Vec::new();
        for (i, (c, &len)) in contents.iter().zip(expected).enumerate() {
            let path = dir.path().join(format!("f{i}"));
            if let Some(c) = c {
                std::fs::write(&path, c).unwrap();
            }
            files.push(FileSlot {
                path,
                offset,
                length: len,
                padding: false,
            });
            offset += len;
        }
        (dir, Layout::new(files, piece_length))
    }

    #[test]
    fn blocks_inside_one_file_are_views_and_spanning_blocks_are_assembled() {
        let (_d, layout) = setup(&[Some(b"abcdef"), Some(b""), Some(b"ghij")], &[6, 0, 4], 8);
        let s = MappedStorage::open(layout).unwrap();
        let b = s
            .block(BlockRef {
                piece: 0,
                offset: 1,
                length: 3,
            })
            .unwrap();
        assert_eq!(&b[..], b"bcd");
        let b = s
            .block(BlockRef {
                piece: 0,
                offset: 4,
                length: 4,
            })
            .unwrap();
        assert_eq!(&b[..], b"efgh");
        let b = s
            .block(BlockRef {
                piece: 1,
                offset: 0,
                length: 2,
            })
            .unwrap();
        assert_eq!(&b[..], b"ij");
        assert!(s
            .block(BlockRef {
                piece: 1,
                offset: 0,
                length: 3
            })
            .is_none());
        assert!(s
            .block(BlockRef {
                piece: 2,
                offset: 0,
                length: 1
            })
            .is_none());
    }

    #[test]
    fn lenient_open_reports_missing_and_short_files() {
        let (_d, layout) = setup(&[Some(b"abcd"), None, Some(b"xy")], &[4, 4, 4], 4);
        let (s, problems) = MappedStorage::open_lenient(layout.clone());
        assert_eq!(problems.len(), 2);
        assert!(matches!(problems[0], FileProblem::Missing { .. }));
        assert!(matches!(
            problems[1],
            FileProblem::WrongSize {
                actual: 2,
                expected: 4,
                ..
            }
        ));
        assert!(s.hash_piece(0).is_some());
        assert!(s.hash_piece(1).is_none());
        assert!(s.hash_piece(2).is_none());
        assert!(MappedStorage::open(layout).is_err());
    }

    #[test]
    fn padding_reads_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"xy").unwrap();
        let files = vec![
            FileSlot {
                path: a,
                offset: 0,
                length: 2,
                padding: false,
            },
            FileSlot {
                path: dir.path().join("pad"),
                offset: 2,
                length: 2,
                padding: true,
            },
        ];
        let s = MappedStorage::open(Layout::new(files, 4)).unwrap();
        let b = s
            .block(BlockRef {
                piece: 0,
                offset: 0,
                length: 4,
            })
            .unwrap();
        assert_eq!(&b[..], b"xy\0\0");
    }

    #[test]
    fn block_parts_views_each_file_without_copying() {
        let (_d, layout) = setup(&[Some(b"abcde"), Some(b"fgh")], &[5, 3], 4);
        let s = MappedStorage::open(layout).unwrap();
        let mut out = Vec::new();
        // Piece 1 is bytes 4..8: "e" from the first file, "fgh" from the second.
        let b = BlockRef {
            piece: 1,
            offset: 0,
            length: 4,
        };
        assert!(s.block_parts(b, &mut out));
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0][..], b"e");
        assert_eq!(&out[1][..], b"fgh");
        let past = BlockRef {
            piece: 2,
            offset: 0,
            length: 1,
        };
        assert!(!s.block_parts(past, &mut out));
        assert_eq!(out.len(), 2, "nothing added on failure");
    }

    #[test]
    fn pread_hash_matches_the_mapped_hash() {
        let (_d, layout) = setup(&[Some(b"abcde"), Some(b"fgh")], &[5, 3], 4);
        let s = MappedStorage::open(layout).unwrap();
        for p in 0..2 {
            assert_eq!(s.hash_piece_pread(p), s.hash_piece(p));
            assert!(s.hash_piece_pread(p).is_some());
        }
    }

    #[test]
    fn check_files_notices_truncation_and_replacement() {
        let (d, layout) = setup(&[Some(b"abcdefgh"), Some(b"ijkl")], &[8, 4], 4);
        let s = MappedStorage::open(layout.clone()).unwrap();
        assert_eq!(s.check_files(), Ok(()));
        std::fs::OpenOptions::new()
            .write(true)
            .open(d.path().join("f0"))
            .unwrap()
            .set_len(2)
            .unwrap();
        assert!(matches!(
            s.check_files(),
            Err(FileProblem::WrongSize {
                actual: 2,
                expected: 8,
                ..
            })
        ));
        // Truncated: the pread hash fails instead of faulting.
        assert_eq!(s.hash_piece_pread(1), None);

        std::fs::write(d.path().join("f0"), b"abcdefgh").unwrap();
        let s = MappedStorage::open(layout).unwrap();
        assert_eq!(s.check_files(), Ok(()));
        let f1 = d.path().join("f1");
        let tmp = d.path().join("new");
        std::fs::write(&tmp, b"IJKL").unwrap();
        std::fs::rename(&tmp, &f1).unwrap();
        let e = s.check_files().unwrap_err();
        assert!(e.to_string().contains("replaced"), "{e}");
    }
}
