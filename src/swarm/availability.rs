//! Piece availability kept in rarest-first order at O(1) per change.
//!
//! `order` is a permutation of the pieces split into contiguous buckets: bucket 0 holds the
//! pieces we no longer want (we have them), bucket `k >= 1` the wanted pieces that `k - 1` peers
//! have. Changing a piece's count by one moves it across one bucket boundary with a single swap,
//! so a peer's bitfield costs O(pieces) and a `have` O(1); nothing is ever sorted.

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
}

impl Availability {
    /// `pieces` wanted pieces, all with availability 0, in the given initial `order` (a
    /// permutation of `0..pieces`; a shuffled one gives random tie-breaking a head start).
    pub(crate) fn new(order: Vec<u32>) -> Self {
        let mut piece = vec![Entry::default(); order.len()];
        for (i, &p) in order.iter().enumerate() {
            piece[p as usize].pos = i as u32;
        }
        Availability {
            piece,
            order,
            start: vec![0, 0],
        }
    }

    /// How many peers have `piece`.
    pub(crate) fn count(&self, piece: u32) -> u32 {
        self.piece[piece as usize].count
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
    pub(crate) fn increment(&mut self, piece: u32) {
        let e = &mut self.piece[piece as usize];
        let c = e.count;
        e.count = c + 1;
        let at = e.pos;
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
    pub(crate) fn decrement(&mut self, piece: u32) {
        let c = self.piece[piece as usize].count;
        if c == 0 {
            return;
        }
        self.piece[piece as usize].count = c - 1;
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
    }

    #[test]
    fn increments_decrements_and_removals_keep_buckets_exact() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 200u32;
        let mut a = Availability::new((0..n).collect());
        let mut wanted = vec![true; n as usize];
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
