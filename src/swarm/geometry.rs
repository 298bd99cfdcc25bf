//! Piece and block geometry of a torrent: how its bytes divide into pieces and 16 KiB blocks.

/// The block size every mainstream client requests (BEP 3 practice): 16 KiB.
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// One block of one piece: the unit of `request`, `piece`, `cancel` and `reject` messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct BlockRef {
    /// Piece index.
    pub piece: u32,
    /// Byte offset inside the piece.
    pub offset: u32,
    /// Length in bytes.
    pub length: u32,
}

/// The sizes of a torrent's pieces and blocks, derived from its piece length and total length.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PieceGeometry {
    piece_length: u32,
    total_length: u64,
    piece_count: u32,
}

impl PieceGeometry {
    /// Geometry of a torrent of `total_length` bytes in pieces of `piece_length` bytes.
    ///
    /// # Panics
    /// When `piece_length` is zero or the piece count does not fit in a `u32`; metainfo
    /// validation rejects such torrents before a geometry is built.
    pub fn new(piece_length: u32, total_length: u64) -> Self {
        assert!(piece_length > 0, "piece length must be positive");
        let piece_count = total_length.div_ceil(u64::from(piece_length));
        let piece_count = u32::try_from(piece_count).expect("piece count fits in u32");
        PieceGeometry {
            piece_length,
            total_length,
            piece_count,
        }
    }

    /// Nominal piece length (every piece but the last has it).
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Total length of the torrent's content in bytes.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Byte offset of piece `piece` in the torrent's content.
    pub fn piece_offset(&self, piece: u32) -> u64 {
        u64::from(piece) * u64::from(self.piece_length)
    }

    /// Size in bytes of piece `piece` (the last one may be short); 0 when out of range.
    pub fn piece_size(&self, piece: u32) -> u32 {
        if piece >= self.piece_count {
            return 0;
        }
        let start = self.piece_offset(piece);
        (self.total_length - start).min(u64::from(self.piece_length)) as u32
    }

    /// Number of 16 KiB blocks in piece `piece`.
    pub fn block_count(&self, piece: u32) -> u32 {
        self.piece_size(piece).div_ceil(BLOCK_SIZE)
    }

    /// The `index`-th block of piece `piece`.
    pub fn block(&self, piece: u32, index: u32) -> BlockRef {
        let offset = index * BLOCK_SIZE;
        let length = self
            .piece_size(piece)
            .saturating_sub(offset)
            .min(BLOCK_SIZE);
        BlockRef {
            piece,
            offset,
            length,
        }
    }

    /// All blocks of piece `piece`, in order.
    pub fn blocks(&self, piece: u32) -> impl Iterator<Item = BlockRef> + '_ {
        (0..self.block_count(piece)).map(move |i| self.block(piece, i))
    }

    /// Whether a peer's request is acceptable: non-empty, at most `max_length` bytes, and inside
    /// the piece it names.
    pub fn is_valid_request(&self, block: BlockRef, max_length: u32) -> bool {
        if block.length == 0 || block.length > max_length {
            return false;
        }
        let size = self.piece_size(block.piece);
        u64::from(block.offset) + u64::from(block.length) <= u64::from(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_piece_and_block_are_short() {
        let g = PieceGeometry::new(32768, 32768 * 2 + 100);
        assert_eq!(g.piece_count(), 3);
        assert_eq!(g.piece_size(2), 100);
        assert_eq!(g.piece_size(3), 0);
        assert_eq!(g.block_count(0), 2);
        assert_eq!(g.block_count(2), 1);
        assert_eq!(g.block(2, 0).length, 100);
        let all: u64 = (0..3)
            .flat_map(|p| g.blocks(p))
            .map(|b| u64::from(b.length))
            .sum();
        assert_eq!(all, g.total_length());
    }

    #[test]
    fn requests_outside_the_piece_are_invalid() {
        let g = PieceGeometry::new(32768, 40000);
        let ok = BlockRef {
            piece: 1,
            offset: 0,
            length: 7232,
        };
        assert!(g.is_valid_request(ok, BLOCK_SIZE));
        assert!(!g.is_valid_request(BlockRef { length: 7233, ..ok }, BLOCK_SIZE));
        assert!(!g.is_valid_request(BlockRef { piece: 2, ..ok }, BLOCK_SIZE));
        assert!(!g.is_valid_request(BlockRef { length: 0, ..ok }, BLOCK_SIZE));
        let big = BlockRef {
            piece: 0,
            offset: 0,
            length: 32768,
        };
        assert!(!g.is_valid_request(big, BLOCK_SIZE));
        let wrap = BlockRef {
            piece: 0,
            offset: u32::MAX,
            length: 2,
        };
        assert!(!g.is_valid_request(wrap, BLOCK_SIZE));
    }

    #[test]
    fn empty_torrent_has_no_pieces() {
        let g = PieceGeometry::new(16384, 0);
        assert_eq!(g.piece_count(), 0);
        assert_eq!(g.piece_size(0), 0);
    }
}
