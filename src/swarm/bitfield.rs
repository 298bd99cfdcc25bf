//! Piece bitfields (BEP 3 layout: piece 0 is the high bit of byte 0).

/// A fixed-length set of pieces.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Bitfield {
    bytes: Storage,
    len: u32,
    count: u32,
}

/// Bitfields of up to this many bytes are held in the value itself: a peer's record then
/// holds its pieces, with no second allocation to load.
const INLINE_BYTES: usize = 24;

/// The bytes of a bitfield: in place when they fit, else on the heap. Which one depends only
/// on the length, so equal bitfields have equal storage.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Storage {
    /// The first `len.div_ceil(8)` bytes are the bitfield's, the rest zero.
    Inline([u8; INLINE_BYTES]),
    Heap(Box<[u8]>),
}

impl Default for Storage {
    fn default() -> Self {
        Storage::Inline([0; INLINE_BYTES])
    }
}

impl Storage {
    fn zeroed(bytes: usize) -> Self {
        if bytes <= INLINE_BYTES {
            Storage::Inline([0; INLINE_BYTES])
        } else {
            Storage::Heap(vec![0; bytes].into_boxed_slice())
        }
    }
}

impl Bitfield {
    /// An empty bitfield of `len` pieces.
    pub fn new(len: u32) -> Self {
        Bitfield {
            bytes: Storage::zeroed((len as usize).div_ceil(8)),
            len,
            count: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        let n = (self.len as usize).div_ceil(8);
        match &self.bytes {
            Storage::Inline(b) => &b[..n],
            Storage::Heap(b) => b,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let n = (self.len as usize).div_ceil(8);
        match &mut self.bytes {
            Storage::Inline(b) => &mut b[..n],
            Storage::Heap(b) => b,
        }
    }

    /// A full bitfield of `len` pieces (a seed's).
    pub fn full(len: u32) -> Self {
        let mut b = Bitfield::new(len);
        for byte in b.bytes_mut() {
            *byte = 0xff;
        }
        b.clear_spare_bits();
        b.count = len;
        b
    }

    /// Builds a bitfield from its wire bytes. `None` when the length is wrong or a spare bit
    /// past the last piece is set (BEP 3 says to drop such a peer).
    pub fn from_bytes(bytes: &[u8], len: u32) -> Option<Self> {
        if bytes.len() != (len as usize).div_ceil(8) {
            return None;
        }
        let mut b = Bitfield::new(len);
        b.bytes_mut().copy_from_slice(bytes);
        let before: u32 = b.bytes().iter().map(|x| x.count_ones()).sum();
        b.clear_spare_bits();
        let after: u32 = b.bytes().iter().map(|x| x.count_ones()).sum();
        if before != after {
            return None;
        }
        b.count = after;
        Some(b)
    }

    fn clear_spare_bits(&mut self) {
        let spare = (self.len as usize).div_ceil(8) * 8 - self.len as usize;
        if spare > 0 {
            if let Some(last) = self.bytes_mut().last_mut() {
                *last &= 0xffu8 << spare;
            }
        }
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes()
    }

    /// Number of pieces the bitfield covers.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when it covers no pieces.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pieces set.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True when every piece is set.
    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    /// Whether `piece` is set (false when out of range).
    pub fn has(&self, piece: u32) -> bool {
        piece < self.len && self.bytes()[(piece / 8) as usize] & (0x80 >> (piece % 8)) != 0
    }

    /// Sets `piece`; returns true if it was not set before. Out-of-range pieces are ignored.
    pub fn set(&mut self, piece: u32) -> bool {
        if piece >= self.len || self.has(piece) {
            return false;
        }
        self.bytes_mut()[(piece / 8) as usize] |= 0x80 >> (piece % 8);
        self.count += 1;
        true
    }

    /// Clears `piece`; returns true if it was set before.
    pub fn unset(&mut self, piece: u32) -> bool {
        if !self.has(piece) {
            return false;
        }
        self.bytes_mut()[(piece / 8) as usize] &= !(0x80 >> (piece % 8));
        self.count -= 1;
        true
    }

    /// Iterates the set pieces in ascending order.
    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        // A byte at a time, skipping empty ones: spare bits are always zero.
        self.bytes().iter().enumerate().flat_map(|(i, &byte)| {
            let mut bits = byte;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let z = bits.leading_zeros();
                bits &= !(0x80 >> z);
                Some(i as u32 * 8 + z)
            })
        })
    }

    /// The bitfield as 64-bit words, `len.div_ceil(64)` of them: piece `p` is bit
    /// `63 - p % 64` of word `p / 64` (the wire layout read big-endian), spare bits zero.
    /// For whole-set operations a word at a time.
    pub fn words(&self) -> impl Iterator<Item = u64> + '_ {
        let whole = self.bytes().chunks_exact(8);
        let rest = whole.remainder();
        let last = (!rest.is_empty()).then(|| {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            u64::from_be_bytes(w)
        });
        whole
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .chain(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_has_count() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0));
        assert!(!b.set(0));
        assert!(b.set(9));
        assert!(!b.set(10));
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(b.count(), 2);
        assert!(b.unset(0));
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![9]);
    }

    #[test]
    fn ones_lists_the_set_pieces_in_order() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for len in [0u32, 1, 7, 8, 9, 63, 64, 65, 1000] {
            let mut b = Bitfield::new(len);
            for p in 0..len {
                if rng.gen_bool(0.3) {
                    b.set(p);
                }
            }
            let expected: Vec<u32> = (0..len).filter(|&p| b.has(p)).collect();
            assert_eq!(b.ones().collect::<Vec<_>>(), expected, "len {len}");
            let full = Bitfield::full(len);
            assert_eq!(full.ones().count() as u32, len);
        }
    }

    #[test]
    fn words_put_piece_zero_in_the_top_bit() {
        let mut b = Bitfield::new(130);
        for p in [0, 63, 64, 129] {
            b.set(p);
        }
        let w: Vec<u64> = b.words().collect();
        assert_eq!(w, vec![1 << 63 | 1, 1 << 63, 1 << 62]);
        assert_eq!(Bitfield::new(0).words().count(), 0);
        let full: Vec<u64> = Bitfield::full(70).words().collect();
        assert_eq!(full, vec![u64::MAX, 0b111111 << 58]);
    }

    #[test]
    fn full_and_spare_bits() {
        let b = Bitfield::full(10);
        assert_eq!(b.as_bytes(), &[0xff, 0xc0]);
        assert!(b.is_full());
        assert!(Bitfield::from_bytes(&[0xff, 0xc0], 10).is_some());
        assert!(Bitfield::from_bytes(&[0xff, 0xe0], 10).is_none());
        assert!(Bitfield::from_bytes(&[0xff], 10).is_none());
        assert_eq!(Bitfield::from_bytes(&[0xff, 0xc0], 10).unwrap().count(), 10);
    }
}
