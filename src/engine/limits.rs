//! Limits that change while the engine runs (a config re-read on SIGHUP): the unchoke slots
//! and the upload limit. The control side sets them; each core reads them in its
//! once-a-second housekeeping (one atomic load when nothing changed) and applies them to its
//! upload bucket and its torrents' chokers. Nothing on a peer's path reads them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::swarm::Slots;

/// The values of the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitValues {
    /// Regular unchoke slots per torrent over all cores (`--unchoke-slots`).
    pub unchoke_slots: Slots,
    /// Upload limit over all cores in bytes per second (`--max-upload-rate`).
    pub max_upload_rate: Option<u64>,
}

/// The running engine's limits and a generation counter bumped by every change.
#[derive(Debug)]
pub struct Limits {
    generation: AtomicU64,
    values: Mutex<LimitValues>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            generation: AtomicU64::new(0),
            values: Mutex::new(LimitValues {
                unchoke_slots: Slots::default(),
                max_upload_rate: None,
            }),
        }
    }
}

impl Limits {
    /// The generation of the values (0: never set).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The values and their generation.
    pub fn get(&self) -> (u64, LimitValues) {
        let v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        (self.generation.load(Ordering::Acquire), *v)
    }

    /// Sets the values; every core applies them within a second.
    pub fn set(&self, values: LimitValues) {
        let mut v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        *v = values;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Sets the values unless they were set already (the engine's start takes its
    /// configuration's, unless a change came first).
    pub(super) fn init(&self, values: LimitValues) {
        let mut v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) == 0 {
            *v = values;
            self.generation.store(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_yields_to_an_earlier_set_and_set_bumps_the_generation() {
        let a = LimitValues {
            unchoke_slots: Slots::Limited(2),
            max_upload_rate: Some(1000),
        };
        let b = LimitValues {
            unchoke_slots: Slots::Unlimited,
            max_upload_rate: None,
        };
        let l = Limits::default();
        assert_eq!(l.generation(), 0);
        l.init(a);
        assert_eq!(l.get(), (1, a));
        l.init(b);
        assert_eq!(l.get(), (1, a), "init does not override");
        l.set(b);
        assert_eq!(l.get(), (2, b));
        let l = Limits::default();
        l.set(b);
        l.init(a);
        assert_eq!(l.get().1, b, "a change before the start wins");
    }
}
