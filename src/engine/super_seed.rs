//! BEP 16 super-seeding at the I/O edge: one [`SuperSeed`] per torrent shared by every core's
//! connections, touched only on availability messages, connects and disconnects (never on
//! the send path). A peer whose reveals are decided by an event on another connection (its
//! piece seen spreading there) is woken through its own `Notify`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::swarm::{Bitfield, SuperSeed, SuperSeedConfig};

/// A connection's handle in the shared state.
pub type SuperKey = u64;

struct Inner {
    logic: SuperSeed<SuperKey>,
    wakers: HashMap<SuperKey, Arc<Notify>>,
}

/// The super-seeding state of one torrent over all cores.
pub struct SuperSeeding {
    inner: Mutex<Inner>,
    next_key: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for SuperSeeding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuperSeeding").finish_non_exhaustive()
    }
}

impl SuperSeeding {
    /// Super-seeding of a torrent of `pieces` pieces.
    pub fn new(pieces: u32) -> Self {
        SuperSeeding {
            inner: Mutex::new(Inner {
                logic: SuperSeed::new(pieces, SuperSeedConfig::default()),
                wakers: HashMap::new(),
            }),
            next_key: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Applies `f` to the shared state, then wakes the connections it gave reveals to.
    fn with(&self, f: impl FnOnce(&mut SuperSeed<SuperKey>, Duration)) {
        let now = self.now();
        let mut wake = Vec::new();
        {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let Inner { logic, wakers } = &mut *g;
            f(logic, now);
            for k in logic.woken() {
                if let Some(w) = wakers.get(&k) {
                    wake.push(w.clone());
                }
            }
        }
        for w in wake {
            w.notify_one();
        }
    }

    /// A connection joins (handshake done): its key and the `Notify` that says it has
    /// reveals to send ([`SuperSeeding::take_reveals`]).
    pub fn join(&self) -> (SuperKey, Arc<Notify>) {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            g.wakers.insert(key, notify.clone());
        }
        self.with(|l, _| l.add_peer(key));
        (key, notify)
    }

    /// The connection is gone.
    pub fn leave(&self, key: SuperKey) {
        {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            g.wakers.remove(&key);
        }
        self.with(|l, _| l.remove_peer(key));
    }

    /// The peer's bitfield, have all or have none.
    pub fn on_bitfield(&self, key: SuperKey, have: &Bitfield) {
        self.with(|l, now| l.on_bitfield(key, have, now));
    }

    /// The peer announced `piece`.
    pub fn on_have(&self, key: SuperKey, piece: u32) {
        self.with(|l, now| l.on_have(key, piece, now));
    }

    /// The peer lost interest.
    pub fn on_not_interested(&self, key: SuperKey) {
        self.with(|l, now| l.on_not_interested(key, now));
    }

    /// Releases what waited long enough (see [`SuperSeed::on_tick`]).
    pub fn tick(&self) {
        self.with(|l, now| l.on_tick(now));
    }

    /// The pieces to announce to the peer now.
    pub fn take_reveals(&self, key: SuperKey) -> Vec<u32> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.logic.take_reveals(key)
    }

    /// Reveals made so far (every piece shown to every peer).
    pub fn reveals(&self) -> u64 {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.logic.reveals()
    }
}
