//! The virtual clock and its event queue.
//!
//! Time is an integer number of nanoseconds since the start of the run ([`Nanos`]); events
//! at the same instant run in the order they were scheduled (a sequence number breaks ties),
//! so a run depends only on its configuration and random seed.

use std::time::Duration;

/// Virtual time in nanoseconds since the start of the run.
pub type Nanos = u64;

/// Nanoseconds in a second.
pub const SECOND: Nanos = 1_000_000_000;

/// `Duration` to virtual nanoseconds (saturating).
pub fn nanos(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Virtual nanoseconds to the `Duration` the engine's sans-IO types take.
pub fn duration(t: Nanos) -> Duration {
    Duration::from_nanos(t)
}

/// Virtual nanoseconds to seconds.
pub fn secs(t: Nanos) -> f64 {
    t as f64 / SECOND as f64
}

/// Asks the CPU to start loading the cache line holding `addr`: a hint that never faults and
/// changes nothing. A big run's peers and connections are tens of MB touched at random, so the
/// event loop prefetches what the next events will touch while the current one runs.
#[inline(always)]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` does not dereference its address and cannot fault whatever it
    // is; the SSE it needs is part of x86_64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Children per heap node: four 16-byte keys are 64 bytes, one or two cache lines to read
/// per level, and the heap is half as deep as a binary one.
const ARITY: usize = 4;

/// Low bits of a key that name the event's slot.
const SLOT_BITS: u32 = 28;
/// Mask of the slot bits.
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
/// First sequence number that no longer fits above the slot bits: reaching it renumbers the
/// waiting events (see [`EventQueue::renumber`]).
const SEQ_END: u64 = 1 << (64 - SLOT_BITS);

/// A heap entry, 16 bytes whatever the event (which waits in a slot): the time in the high 64
/// bits, then the sequence number, then the slot. Sequence numbers are unique, so comparing
/// keys as integers orders events by time, then by scheduling order, and no two keys are equal.
type Key = u128;

fn key(at: Nanos, seq: u64, slot: u64) -> Key {
    (u128::from(at) << 64) | u128::from((seq << SLOT_BITS) | slot)
}

fn key_at(k: Key) -> Nanos {
    (k >> 64) as u64
}

fn key_slot(k: Key) -> usize {
    (k as u64 & SLOT_MASK) as usize
}

/// A priority queue of events on the virtual clock: a 4-ary min-heap of [`Key`]s, the events
/// themselves in slots reused through a free list.
pub struct EventQueue<E> {
    heap: Vec<Key>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
    now: Nanos,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            now: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// The time of the event popped last.
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// Schedules `event` at `at` (never before now).
    ///
    /// # Panics
    ///
    /// If 2^28 events would be waiting at once.
    #[inline(always)]
    pub fn push(&mut self, at: Nanos, event: E) {
        let at = at.max(self.now);
        if self.seq + 1 == SEQ_END {
            self.renumber();
        }
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                // The slot is empty: nothing to drop.
                std::mem::forget(self.slots[s as usize].replace(event));
                u64::from(s)
            }
            None => {
                let s = self.slots.len() as u64;
                assert!(
                    s <= SLOT_MASK,
                    "event queue: more than 2^{SLOT_BITS} events waiting"
                );
                self.slots.push(Some(event));
                s
            }
        };
        self.sift_up(key(at, self.seq, slot));
    }

    /// Takes the earliest event and advances the clock to it.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<(Nanos, E)> {
        let last = self.heap.pop()?;
        let top = match self.heap.first() {
            Some(&top) => {
                self.sift_down(last);
                top
            }
            None => last,
        };
        let at = key_at(top);
        self.now = at;
        let slot = key_slot(top);
        let event = self.slots[slot].take().expect("queued event");
        self.free.push(slot as u32);
        Some((at, event))
    }

    /// The earliest event, which [`EventQueue::pop`] takes next unless an earlier one is
    /// pushed first.
    pub fn peek(&self) -> Option<&E> {
        let top = *self.heap.first()?;
        self.slots[key_slot(top)].as_ref()
    }

    /// The event after [`EventQueue::peek`]'s, as things stand: the earliest of the root's
    /// children (the second smallest key of a heap is always one of them). For prefetch hints.
    pub fn peek_second(&self) -> Option<&E> {
        let kids = self.heap.get(1..self.heap.len().min(1 + ARITY))?;
        let k = *kids.iter().min()?;
        self.slots[key_slot(k)].as_ref()
    }

    /// Prefetches the slots of the events that can come after [`EventQueue::peek_second`]'s
    /// (the root's children, and the first child's children), so that reading them one
    /// or two events later does not wait on memory.
    pub fn prefetch_upcoming(&self) {
        let n = self.heap.len();
        for &k in &self.heap[n.min(1)..n.min(1 + ARITY + ARITY)] {
            prefetch(self.slots.as_ptr().wrapping_add(key_slot(k)) as usize);
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Appends `k` and moves it up to its place.
    fn sift_up(&mut self, k: Key) {
        self.heap.push(k);
        let h = self.heap.as_mut_ptr();
        let mut i = self.heap.len() - 1;
        // SAFETY: `i` starts at the last index and only moves to parents, so every index read
        // or written is below `len`.
        unsafe {
            while i > 0 {
                let parent = (i - 1) / ARITY;
                let p = *h.add(parent);
                if p < k {
                    break;
                }
                *h.add(i) = p;
                i = parent;
            }
            *h.add(i) = k;
        }
    }

    /// Fills the hole the root left with `k` (the former last entry): moves the smallest
    /// child up until `k` is smaller than every child.
    fn sift_down(&mut self, k: Key) {
        let n = self.heap.len();
        let h = self.heap.as_mut_ptr();
        let mut i = 0;
        // SAFETY: `i` is the hole, always below `n` (it starts at the root of a non-empty heap
        // and moves to a child only after that child was read); children are read only below
        // `n`. `ARITY * i + 1 + ARITY` cannot overflow: `n` entries of 16 bytes fit in memory.
        unsafe {
            loop {
                let c = ARITY * i + 1;
                if c + ARITY > n {
                    break;
                }
                let kids = h.add(c);
                let a = usize::from(*kids.add(1) < *kids);
                let b = 2 + usize::from(*kids.add(3) < *kids.add(2));
                let m = if *kids.add(b) < *kids.add(a) { b } else { a };
                let mk = *kids.add(m);
                if k < mk {
                    *h.add(i) = k;
                    return;
                }
                *h.add(i) = mk;
                i = c + m;
            }
            // The last parent may have fewer than `ARITY` children.
            let c = ARITY * i + 1;
            if c < n {
                let mut m = c;
                for j in c + 1..n {
                    if *h.add(j) < *h.add(m) {
                        m = j;
                    }
                }
                let mk = *h.add(m);
                if mk < k {
                    *h.add(i) = mk;
                    i = m;
                }
            }
            *h.add(i) = k;
        }
    }

    /// Gives the waiting events the sequence numbers 1, 2, ... in their order, so numbering
    /// can go on: the pop order does not change. Runs once every 2^36 pushes.
    #[cold]
    fn renumber(&mut self) {
        // A sorted array is a valid heap.
        self.heap.sort_unstable();
        for (seq, k) in (1..).zip(self.heap.iter_mut()) {
            *k = key(key_at(*k), seq, key_slot(*k) as u64);
        }
        self.seq = self.heap.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn earliest_first_then_fifo() {
        let mut q = EventQueue::default();
        q.push(5, "b");
        q.push(3, "a");
        q.push(5, "c");
        q.push(9, "d");
        assert_eq!(q.pop(), Some((3, "a")));
        // Scheduling in the past clamps to now.
        q.push(1, "e");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(3, "e"), (5, "b"), (5, "c"), (9, "d")]);
        assert!(q.is_empty());
        assert_eq!(q.now(), 9);
    }

    /// The obvious queue: a map from (time, scheduling order) to the event.
    #[derive(Default)]
    struct Reference {
        map: BTreeMap<(Nanos, u64), u32>,
        seq: u64,
        now: Nanos,
    }

    impl Reference {
        fn push(&mut self, at: Nanos, e: u32) {
            self.seq += 1;
            self.map.insert((at.max(self.now), self.seq), e);
        }
        fn pop(&mut self) -> Option<(Nanos, u32)> {
            let ((at, _), e) = self.map.pop_first()?;
            self.now = at;
            Some((at, e))
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Push at now plus this (which may be negative: in the past).
        Push(i64),
        Pop,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            // Few distinct times, so many ties; some in the past.
            3 => (-3i64..6).prop_map(Op::Push),
            2 => (-100i64..1000).prop_map(Op::Push),
            4 => Just(Op::Pop),
        ];
        proptest::collection::vec(op, 0..600)
    }

    /// Runs `ops` on both queues (the event queue starting at sequence number `seq`) and
    /// checks every pop, then drains both.
    fn same_as_reference(ops: &[Op], seq: u64) {
        let mut q = EventQueue {
            seq,
            ..Default::default()
        };
        let mut r = Reference::default();
        for (e, op) in (0u32..).zip(ops) {
            match *op {
                Op::Push(d) => {
                    let at = q.now().saturating_add_signed(d);
                    q.push(at, e);
                    r.push(at, e);
                }
                Op::Pop => assert_eq!(q.pop(), r.pop()),
            }
            assert_eq!(q.len(), r.map.len());
            assert_eq!(q.now(), r.now);
            let mut next = r.map.values();
            assert_eq!(q.peek(), next.next());
            assert_eq!(q.peek_second(), next.next());
            q.prefetch_upcoming();
        }
        loop {
            let got = q.pop();
            assert_eq!(got, r.pop());
            if got.is_none() {
                break;
            }
        }
        assert!(q.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn pops_like_reference(ops in ops()) {
            same_as_reference(&ops, 0);
        }

        /// Sequence numbers run out (and the queue renumbers) in the middle of the ops.
        #[test]
        fn renumbering_keeps_order(ops in ops(), left in 0u64..200) {
            same_as_reference(&ops, SEQ_END - 1 - left);
        }
    }

    #[test]
    fn renumbers_when_sequence_numbers_run_out() {
        let mut q = EventQueue {
            seq: SEQ_END - 3,
            ..Default::default()
        };
        for (at, e) in [(7, 0), (5, 1), (7, 2), (5, 3), (6, 4)] {
            q.push(at, e);
        }
        // The third push renumbered the two before it.
        assert!(q.seq < 10);
        assert_eq!(q.pop(), Some((5, 1)));
        q.push(0, 5);
        q.push(7, 6);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(5, 3), (5, 5), (6, 4), (7, 0), (7, 2), (7, 6)]);
    }

    #[test]
    fn big_heap_like_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut q = EventQueue::default();
        let mut r = Reference::default();
        for e in 0..400_000u32 {
            // Grow to about 20,000 waiting, then shrink.
            let push = if e < 200_000 {
                rng.gen_bool(0.55)
            } else {
                rng.gen_bool(0.45)
            };
            if push {
                let at = q.now() + rng.gen_range(0..140_000_000) / 10_000_000 * 10_000_000;
                q.push(at, e);
                r.push(at, e);
            } else {
                assert_eq!(q.pop(), r.pop());
            }
        }
        while let Some(got) = q.pop() {
            assert_eq!(Some(got), r.pop());
        }
        assert!(r.map.is_empty());
    }
}
