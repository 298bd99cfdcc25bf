//! Piece availability kept in rarest-first order at O(1) per change.
//!
//! `order` is a permutation of the pieces split into contiguous buckets: bucket 0 holds the
//! pieces we no longer want (we have them), bucket `k >= 1` the wanted pieces that `k - 1` peers
//! have. Changing a piece's count by one moves it across one bucket boundary with a single swap,
//! so a peer's bitfield costs O(pieces) and a `have` O(1); nothing is ever sorted.
//!
//! A word bitmap of the pieces no peer has (`zero`) lets the picker ask "is any of these pieces
//! in the bucket of availability 0?" 64 pieces at a time instead of probing that bucket piece by
//! piece.

/// Where piece `p` lives in a word bitmap laid out as the wire bytes of a bitfield read
/// little-endian: word `p / 64`, whose byte `k` is the wire byte `8 * (p / 64) + k`, in which
/// the first piece is the high bit. Returns the word's index and the piece's bit. (A word of
/// [`super::Bitfield::words`] is the same word byte-swapped.)
pub(crate) fn piece_bit(p: u32) -> (usize, u64) {
    ((p / 64) as usize, 1u64 << ((p % 64) ^ 7))
}

/// A piece's availability count and its position in the rarest-first order.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    count: u32,
    pos: u32,
}

/// Availability counts plus the rarest-first order of the wanted pieces.
#[derive(Clone, Debug)]
pub(crate) struct Availability {
    /// Per piece: how many (non-seed) peers have it, and its index in `order` (side by side,
    /// so a change touches one cache line for both).
    piece: Vec<Entry>,
    /// Pieces grouped by bucket, see the module doc.
    order: Vec<u32>,
    /// `start[k]` is the index in `order` where bucket `k` begins; bucket `k` ends where
    /// bucket `k + 1` begins (or at the end of `order`).
    start: Vec<u32>,
    /// The pieces whose count is 0, wanted or not, laid out as in [`piece_bit`].
    zero: Vec<u64>,
}

impl Availability {
    /// `pieces` wanted pieces, all with availability 0, in the given initial `order` (a
    /// permutation of `0..pieces`; a shuffled one gives random tie-breaking a head start).
    pub(crate) fn new(order: Vec<u32>) -> Self {
        let mut piece = vec![Entry::default(); order.len()];
        for (i, &p) in order.iter().enumerate() {
            piece[p as usize].pos = i as u32;
        }
        let n = order.len();
        let mut zero = vec![u64::MAX; n.div_ceil(64)];
        if n % 64 != 0 {
            if let Some(last) = zero.last_mut() {
                *last = (u64::MAX << (64 - n % 64)).swap_bytes();
            }
        }
        Availability {
            piece,
            order,
            start: vec![0, 0],
            zero,
        }
    }

    /// How many peers have `piece`.
    pub(crate) fn count(&self, piece: u32) -> u32 {
        self.piece[piece as usize].count
    }

    /// Whether any piece set in `pieces` (laid out as in [`piece_bit`]) has count 0.
    pub(crate) fn any_with_count_zero(&self, pieces: &[u64]) -> bool {
        pieces.iter().zip(&self.zero).any(|(p, z)| p & z != 0)
    }

    /// The pieces set in `pieces` (laid out as in [`piece_bit`]) of the lowest count, pushed
    /// to `ties` (cleared first) in index order. Returns that count (`u32::MAX` when `pieces`
    /// is empty) and how many pieces are set in `pieces`.
    pub(crate) fn least_counted(&self, pieces: &[u64], ties: &mut Vec<u32>) -> (u32, u32) {
        ties.clear();
        let mut least = u32::MAX;
        let mut seen = 0;
        for (i, &w) in pieces.iter().enumerate() {
            // In index order: the first piece is the high bit once byte-swapped.
            let mut w = w.swap_bytes();
            while w != 0 {
                let z = w.leading_zeros();
                w &= !(1u64 << (63 - z));
                let p = i as u32 * 64 + z;
                let c = self.piece[p as usize].count;
                seen += 1;
                if c <= least {
                    if c < least {
                        least = c;
                        ties.clear();
                    }
                    ties.push(p);
                }
            }
        }
        (least, seen)
    }

    fn end(&self, bucket: usize) -> u32 {
        self.start
            .get(bucket + 1)
            .copied()
            .unwrap_or(self.order.len() as u32)
    }

    fn swap(&mut self, a: u32, b: u32) {
        let (pa, pb) = (self.order[a as usize], self.order[b as usize]);
        self.order.swap(a as usize, b as usize);
        self.piece[pa as usize].pos = b;
        self.piece[pb as usize].pos = a;
    }

    /// Whether `piece` is still wanted (in a bucket `>= 1`).
    pub(crate) fn is_wanted(&self, piece: u32) -> bool {
        self.piece[piece as usize].pos >= self.start[1]
    }

    /// One more peer has `piece`.
    #[inline(always)]
    pub(crate) fn increment(&mut self, piece: u32) {
        let e = &mut self.piece[piece as usize];
        let c = e.count;
        e.count = c + 1;
        let at = e.pos;
        if c == 0 {
            let (w, bit) = piece_bit(piece);
            self.zero[w] &= !bit;
        }
        if at < self.start[1] {
            return; // not wanted
        }
        let k = c as usize + 1;
        if k + 1 == self.start.len() {
            self.start.push(self.order.len() as u32);
        }
        // Swap to the end of bucket k, then shrink bucket k by one from the right.
        let last = self.start[k + 1] - 1;
        self.swap(at, last);
        self.start[k + 1] -= 1;
    }

    /// One peer fewer has `piece` (ignored when the count is already 0).
    #[inline]
    pub(crate) fn decrement(&mut self, piece: u32) {
        let c = self.piece[piece as usize].count;
        if c == 0 {
            return;
        }
        self.piece[piece as usize].count = c - 1;
        if c == 1 {
            let (w, bit) = piece_bit(piece);
            self.zero[w] |= bit;
        }
        if !self.is_wanted(piece) {
            return;
        }
        self.move_down(piece, c as usize + 1);
    }

    /// Moves `piece` from bucket `k` to bucket `k - 1`.
    fn move_down(&mut self, piece: u32, k: usize) {
        let first = self.start[k];
        self.swap(self.piece[piece as usize].pos, first);
        self.start[k] += 1;
    }

    /// We have `piece` now: it leaves the rarest-first order (its count is still tracked).
    /// O(availability of the piece).
    pub(crate) fn remove(&mut self, piece: u32) {
        if !self.is_wanted(piece) {
            return;
        }
        for k in (1..=self.piece[piece as usize].count as usize + 1).rev() {
            self.move_down(piece, k);
        }
    }

    /// Number of buckets of wanted pieces (availability `0..buckets()`).
    pub(crate) fn buckets(&self) -> usize {
        self.start.len() - 1
    }

    /// The wanted pieces that exactly `availability` peers have, in no particular order.
    pub(crate) fn bucket(&self, availability: usize) -> &[u32] {
        let k = availability + 1;
        if k >= self.start.len() {
            return &[];
        }
        &self.order[self.start[k] as usize..self.end(k) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks every invariant against a brute-force recomputation.
    fn check(a: &Availability, wanted: &[bool]) {
        for (i, &p) in a.order.iter().enumerate() {
            assert_eq!(a.piece[p as usize].pos, i as u32);
        }
        for (p, &w) in wanted.iter().enumerate() {
            assert_eq!(a.is_wanted(p as u32), w, "piece {p}");
        }
        for k in 0..a.buckets() {
            for &p in a.bucket(k) {
                assert_eq!(a.count(p), k as u32);
                assert!(wanted[p as usize]);
            }
        }
        let in_buckets: usize = (0..a.buckets()).map(|k| a.bucket(k).len()).sum();
        assert_eq!(in_buckets, wanted.iter().filter(|&&w| w).count());
        // The bitmap of count 0, spare bits clear; what the picker asks of it.
        let n = a.piece.len();
        assert_eq!(a.zero.len(), n.div_ceil(64));
        for (p, e) in a.piece.iter().enumerate() {
            let (w, bit) = piece_bit(p as u32);
            assert_eq!(a.zero[w] & bit != 0, e.count == 0, "piece {p}");
            let mut one = vec![0u64; a.zero.len()];
            one[w] = bit;
            assert_eq!(a.any_with_count_zero(&one), e.count == 0);
        }
        for spare in n..a.zero.len() * 64 {
            let (w, bit) = piece_bit(spare as u32);
            assert_eq!(a.zero[w] & bit, 0);
        }
        // Least count and its ties, in index order, against a brute force over every piece.
        let mut all = vec![0u64; a.zero.len()];
        for p in 0..n as u32 {
            let (w, bit) = piece_bit(p);
            all[w] |= bit;
        }
        let mut ties = vec![7];
        let (least, seen) = a.least_counted(&all, &mut ties);
        assert_eq!(seen as usize, n);
        let brute = a.piece.iter().map(|e| e.count).min().unwrap_or(u32::MAX);
        assert_eq!(least, brute);
        let brute_ties: Vec<u32> = (0..n as u32).filter(|&p| a.count(p) == brute).collect();
        assert_eq!(ties, brute_ties);
    }

    #[test]
    fn increments_decrements_and_removals_keep_buckets_exact() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 200u32;
        let mut order: Vec<u32> = (0..n).collect();
        order.reverse();
        let mut a = Availability::new(order);
        let mut wanted = vec![true; n as usize];
        check(&a, &wanted);
        let mut counts = vec![0u32; n as usize];
        for step in 0..20_000 {
            let p = rng.gen_range(0..n);
            match rng.gen_range(0..10) {
                0..=5 => {
                    a.increment(p);
                    counts[p as usize] += 1;
                }
                6..=8 => {
                    a.decrement(p);
                    counts[p as usize] = counts[p as usize].saturating_sub(1);
                }
                _ => {
                    if rng.gen_range(0..20) == 0 {
                        a.remove(p);
                        wanted[p as usize] = false;
                    }
                }
            }
            if step % 500 == 0 {
                check(&a, &wanted);
            }
            assert_eq!(a.count(p), counts[p as usize]);
        }
        check(&a, &wanted);
    }

    #[test]
    fn rarest_bucket_comes_first() {
        let mut a = Availability::new((0..5).collect());
        for p in [0, 0, 1, 2, 2, 2, 3] {
            a.increment(p);
        }
        assert_eq!(a.bucket(0), &[4]);
        let mut one = a.bucket(1).to_vec();
        one.sort_unstable();
        assert_eq!(one, vec![1, 3]);
        assert_eq!(a.bucket(2), &[0]);
        assert_eq!(a.bucket(3), &[2]);
        assert!(a.bucket(9).is_empty());
        a.remove(2);
        assert!(a.bucket(3).is_empty());
        assert_eq!(a.count(2), 3);
        a.decrement(2);
        assert_eq!(a.count(2), 2);
        assert_eq!(a.bucket(2), &[0]);
    }
}
