//! A torrent's files laid end to end, and the mapping from byte ranges to file extents.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::metainfo::Torrent;
use crate::swarm::PieceGeometry;

/// One file of the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSlot {
    /// Where the file is on disk.
    pub path: PathBuf,
    /// Offset of its first byte in the torrent's content.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// A padding file: reads as zeros, never exists on disk.
    pub padding: bool,
}

/// A contiguous part of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Index of the file in the layout.
    pub file: usize,
    /// Offset inside that file.
    pub file_offset: u64,
    /// Length in bytes (never zero).
    pub length: u64,
}

/// Files laid end to end under a piece geometry.
#[derive(Clone, Debug)]
pub struct Layout {
    files: Vec<FileSlot>,
    geometry: PieceGeometry,
}

impl Layout {
    /// A layout from files whose offsets are already contiguous, starting at 0.
    ///
    /// # Panics
    /// If the offsets are not contiguous (a bug in the caller, not bad input: metainfo
    /// parsing computes the offsets itself).
    pub fn new(files: Vec<FileSlot>, piece_length: u32) -> Layout {
        let mut next = 0;
        for f in &files {
            assert_eq!(f.offset, next, "file offsets must be contiguous");
            next += f.length;
        }
        Layout {
            files,
            geometry: PieceGeometry::new(piece_length, next),
        }
    }

    /// The layout of `torrent` whose content lives below `save_dir` (as `save_dir/name`).
    pub fn of_torrent(torrent: &Torrent, save_dir: &Path) -> Layout {
        let files = torrent
            .files
            .iter()
            .map(|f| FileSlot {
                path: torrent.file_path(save_dir, f),
                offset: f.offset,
                length: f.length,
                padding: f.padding,
            })
            .collect();
        Layout::new(files, torrent.piece_length)
    }

    /// The files.
    pub fn files(&self) -> &[FileSlot] {
        &self.files
    }

    /// The piece geometry.
    pub fn geometry(&self) -> PieceGeometry {
        self.geometry
    }

    /// The file extents covering `length` bytes from content offset `offset`, in order.
    /// Zero-length files never appear. The range must lie inside the content.
    pub fn extents(&self, offset: u64, length: u64) -> impl Iterator<Item = Extent> + '_ {
        let end = offset + length;
        debug_assert!(end <= self.geometry.total_length());
        // First file whose end is past `offset`.
        let first = self
            .files
            .partition_point(|f| f.offset + f.length <= offset);
        self.files[first..]
            .iter()
            .enumerate()
            .take_while(move |(_, f)| f.offset < end)
            .filter(|(_, f)| f.length > 0)
            .map(move |(i, f)| {
                let start = offset.max(f.offset);
                let stop = end.min(f.offset + f.length);
                Extent {
                    file: first + i,
                    file_offset: start - f.offset,
                    length: stop - start,
                }
            })
    }

    /// The extents of piece `piece`.
    pub fn piece_extents(&self, piece: u32) -> impl Iterator<Item = Extent> + '_ {
        let g = self.geometry;
        self.extents(g.piece_offset(piece), u64::from(g.piece_size(piece)))
    }

    /// The pieces that hold bytes of file `file` (empty for a zero-length file).
    pub fn pieces_of_file(&self, file: usize) -> Range<u32> {
        let f = &self.files[file];
        if f.length == 0 {
            return 0..0;
        }
        let pl = u64::from(self.geometry.piece_length());
        let first = (f.offset / pl) as u32;
        let last = ((f.offset + f.length - 1) / pl) as u32;
        first..last + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(lengths: &[u64], piece_length: u32) -> Layout {
        let mut offset = 0;
        let files = lengths
            .iter()
            .enumerate()
            .map(|(i, &length)| {
                let slot = FileSlot {
                    path: PathBuf::from(format!("f{i}")),
                    offset,
                    length,
                    padding: false,
                };
                offset += length;
                slot
            })
            .collect();
        Layout::new(files, piece_length)
    }

    #[test]
    fn pieces_span_files_and_skip_empty_ones() {
        let l = layout(&[10, 0, 25, 0, 5], 16);
        let p0: Vec<Extent> = l.piece_extents(0).collect();
        assert_eq!(
            p0,
            vec![
                Extent {
                    file: 0,
                    file_offset: 0,
                    length: 10
                },
                Extent {
                    file: 2,
                    file_offset: 0,
                    length: 6
                },
            ]
        );
        let p2: Vec<Extent> = l.piece_extents(2).collect();
        assert_eq!(
            p2,
            vec![
                Extent {
                    file: 2,
                    file_offset: 22,
                    length: 3
                },
                Extent {
                    file: 4,
                    file_offset: 0,
                    length: 5
                },
            ]
        );
        assert_eq!(l.pieces_of_file(0), 0..1);
        assert_eq!(l.pieces_of_file(1), 0..0);
        assert_eq!(l.pieces_of_file(2), 0..3);
        assert_eq!(l.pieces_of_file(4), 2..3);
    }

    #[test]
    fn extents_cover_every_byte_once() {
        let lengths = [3, 0, 17, 1, 0, 40, 2];
        let l = layout(&lengths, 7);
        let total: u64 = lengths.iter().sum();
        let mut seen = 0;
        for p in 0..l.geometry().piece_count() {
            for e in l.piece_extents(p) {
                let f = &l.files()[e.file];
                assert_eq!(f.offset + e.file_offset, seen);
                assert!(e.file_offset + e.length <= f.length);
                seen += e.length;
            }
        }
        assert_eq!(seen, total);
    }
}
