//! The virtual clock and its event queue.
//!
//! Time is an integer number of nanoseconds since the start of the run ([`Nanos`]); events
//! at the same instant run in the order they were scheduled (a sequence number breaks ties),
//! so a run depends only on its configuration and random seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
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

/// A heap entry: 24 bytes whatever the event, so sifting stays cheap; the event itself
/// waits in a slot.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    at: Nanos,
    seq: u64,
    slot: u32,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    /// Reversed, so the max-heap pops the earliest (then first scheduled) event.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

/// A priority queue of events on the virtual clock.
pub struct EventQueue<E> {
    heap: BinaryHeap<Key>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
    now: Nanos,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
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
    pub fn push(&mut self, at: Nanos, event: E) {
        let at = at.max(self.now);
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(event);
                s
            }
            None => {
                self.slots.push(Some(event));
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(Key {
            at,
            seq: self.seq,
            slot,
        });
    }

    /// Takes the earliest event and advances the clock to it.
    pub fn pop(&mut self) -> Option<(Nanos, E)> {
        let k = self.heap.pop()?;
        self.now = k.at;
        let event = self.slots[k.slot as usize].take().expect("queued event");
        self.free.push(k.slot);
        Some((k.at, event))
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
