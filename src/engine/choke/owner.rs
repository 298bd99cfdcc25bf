//! The owner of every torrent's choke round (sans-IO: time and randomness passed in).
//!
//! It keeps a view of each torrent's peers on every core (interest from events, upload rates
//! from each core's one-second publication) and runs the torrent's [`Choker`] over all of
//! them: every [`CHOKE_INTERVAL`](crate::swarm::CHOKE_INTERVAL), and early when a slot is
//! free and a choked peer is interested. A round's decisions go out in two phases so that the
//! torrent never has more unchoked peers than its slots, even for a moment across cores: the
//! chokes first, each core acknowledging them ([`ChokeEvent::Applied`]), then the unchokes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::Rng;

use super::PeerKey;
use crate::metainfo::InfoHash;
use crate::swarm::{Choker, ChokerConfig, PeerSnapshot, Slots};

/// A peer as the owner names it: its core and its key there.
pub type CorePeer = (usize, PeerKey);

/// Unchokes held back for acknowledgements this long are sent anyway (a core that stopped
/// does not freeze the torrent's choking).
const ACK_LIMIT: Duration = Duration::from_secs(2);

/// What a core tells the owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChokeEvent {
    /// A peer of `hash` connected on `core` (choked, not interested).
    Joined {
        /// The core it lives on.
        core: usize,
        /// Its torrent.
        hash: InfoHash,
        /// Its key on the core.
        key: PeerKey,
    },
    /// A peer became interested or not interested.
    Interest {
        /// The core it lives on.
        core: usize,
        /// Its torrent.
        hash: InfoHash,
        /// Its key on the core.
        key: PeerKey,
        /// Whether it is interested now.
        interested: bool,
    },
    /// A peer disconnected.
    Left {
        /// The core it lived on.
        core: usize,
        /// Its torrent.
        hash: InfoHash,
        /// Its key on the core.
        key: PeerKey,
    },
    /// The upload rate (bytes per second) to each of the core's peers of `hash`.
    Rates {
        /// The core.
        core: usize,
        /// The torrent.
        hash: InfoHash,
        /// Key and rate of each peer.
        rates: Vec<(PeerKey, u64)>,
        /// Payload bytes the core has sent to the torrent's peers so far (its counter), for
        /// `--unchoke-slots auto`'s measure of what the uplink sends.
        uploaded: u64,
    },
    /// The core applied the chokes of the order tagged `round`.
    Applied {
        /// The core.
        core: usize,
        /// The torrent.
        hash: InfoHash,
        /// The order's [`ChokeOrder::ack`].
        round: u64,
    },
}

/// What one core is told to do for one torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChokeOrder {
    /// The core.
    pub core: usize,
    /// The torrent.
    pub hash: InfoHash,
    /// Peers to choke.
    pub choke: Vec<PeerKey>,
    /// Peers to unchoke.
    pub unchoke: Vec<PeerKey>,
    /// Answer with [`ChokeEvent::Applied`] and this round once applied.
    pub ack: Option<u64>,
}

struct PeerView {
    connected_at: Duration,
    interested: bool,
    rate: u64,
}

/// Unchokes waiting for the cores' acknowledgement of a round's chokes.
struct Pending {
    round: u64,
    awaiting: Vec<usize>,
    unchoke: Vec<CorePeer>,
    since: Duration,
}

/// One torrent's peers over all cores and its choker.
struct TorrentChoke {
    choker: Choker<CorePeer>,
    peers: BTreeMap<CorePeer, PeerView>,
    snapshots: Vec<PeerSnapshot<CorePeer>>,
    /// Each core's first and last published uploaded totals (the counters run from the
    /// torrent's start; what matters is what was sent since this view began).
    uploaded: Vec<Option<(u64, u64)>>,
    rounds: u64,
    pending: Option<Pending>,
}

/// Every torrent's choke round (see the module's documentation).
pub struct ChokeOwner {
    slots: Slots,
    uplink: Option<u64>,
    torrents: HashMap<InfoHash, TorrentChoke>,
}

impl ChokeOwner {
    /// `slots` regular unchoke slots per torrent (plus one optimistic); `uplink`: the upload
    /// limit in bytes per second, if any (for [`Slots::Auto`]).
    pub fn new(slots: Slots, uplink: Option<u64>) -> Self {
        ChokeOwner {
            slots,
            uplink,
            torrents: HashMap::new(),
        }
    }

    /// Peers of `hash` unchoked by the last decisions (the unchokes held for
    /// acknowledgements included).
    pub fn unchoked(&self, hash: &InfoHash) -> Vec<CorePeer> {
        self.torrents
            .get(hash)
            .map(|t| t.choker.unchoked().to_vec())
            .unwrap_or_default()
    }

    /// Applies one event at `now`; decisions it causes are pushed to `out`.
    pub fn on_event<R: Rng + ?Sized>(
        &mut self,
        event: ChokeEvent,
        now: Duration,
        rng: &mut R,
        out: &mut Vec<ChokeOrder>,
    ) {
        match event {
            ChokeEvent::Joined { core, hash, key } => {
                let (slots, uplink) = (self.slots, self.uplink);
                let t = self
                    .torrents
                    .entry(hash)
                    .or_insert_with(|| TorrentChoke::new(slots, uplink));
                t.peers.insert(
                    (core, key),
                    PeerView {
                        connected_at: now,
                        interested: false,
                        rate: 0,
                    },
                );
            }
            ChokeEvent::Interest {
                core,
                hash,
                key,
                interested,
            } => {
                if let Some(t) = self.torrents.get_mut(&hash) {
                    if let Some(p) = t.peers.get_mut(&(core, key)) {
                        p.interested = interested;
                        t.round_if_slot_free(hash, now, rng, out);
                    }
                }
            }
            ChokeEvent::Left { core, hash, key } => {
                if let Some(t) = self.torrents.get_mut(&hash) {
                    if t.peers.remove(&(core, key)).is_some() {
                        t.choker.peer_left(&(core, key));
                        if let Some(p) = &mut t.pending {
                            p.unchoke.retain(|&k| k != (core, key));
                        }
                    }
                    if t.peers.is_empty() {
                        self.torrents.remove(&hash);
                    } else {
                        t.round_if_slot_free(hash, now, rng, out);
                    }
                }
            }
            ChokeEvent::Rates {
                core,
                hash,
                rates,
                uploaded,
            } => {
                if let Some(t) = self.torrents.get_mut(&hash) {
                    if t.uploaded.len() <= core {
                        t.uploaded.resize(core + 1, None);
                    }
                    let first = t.uploaded[core].map_or(uploaded, |(first, _)| first);
                    t.uploaded[core] = Some((first, uploaded));
                    for (key, rate) in rates {
                        if let Some(p) = t.peers.get_mut(&(core, key)) {
                            p.rate = rate;
                        }
                    }
                }
            }
            ChokeEvent::Applied { core, hash, round } => {
                if let Some(t) = self.torrents.get_mut(&hash) {
                    if let Some(p) = &mut t.pending {
                        if p.round == round {
                            p.awaiting.retain(|&c| c != core);
                            if p.awaiting.is_empty() {
                                t.release(hash, out);
                            }
                        }
                    }
                }
            }
        }
    }

    /// New slots and uplink (a config re-read): every torrent's choker takes them, and a
    /// torrent whose slots changed runs a round now (its chokes first, as in every round);
    /// no peer is closed.
    pub fn set_limits<R: Rng + ?Sized>(
        &mut self,
        slots: Slots,
        uplink: Option<u64>,
        now: Duration,
        rng: &mut R,
        out: &mut Vec<ChokeOrder>,
    ) {
        let changed = slots != self.slots;
        self.slots = slots;
        self.uplink = uplink;
        for (&hash, t) in &mut self.torrents {
            t.choker.set_uplink(uplink);
            if changed {
                t.choker.set_slots(slots);
                if t.pending.is_none() {
                    t.round(hash, now, rng, out);
                }
            }
        }
    }

    /// Runs the rounds due at `now` and sends unchokes held too long for acknowledgements.
    pub fn tick<R: Rng + ?Sized>(&mut self, now: Duration, rng: &mut R, out: &mut Vec<ChokeOrder>) {
        for (&hash, t) in &mut self.torrents {
            if let Some(p) = &t.pending {
                if now.saturating_sub(p.since) >= ACK_LIMIT {
                    t.release(hash, out);
                }
            }
            if t.pending.is_none() && t.choker.next_round_due(now) {
                t.round(hash, now, rng, out);
            }
        }
    }
}

impl TorrentChoke {
    fn new(slots: Slots, uplink: Option<u64>) -> Self {
        let mut choker = Choker::new(ChokerConfig {
            slots,
            optimistic: true,
        });
        choker.set_seeding(true);
        choker.set_uplink(uplink);
        TorrentChoke {
            choker,
            peers: BTreeMap::new(),
            snapshots: Vec::new(),
            uploaded: Vec::new(),
            rounds: 0,
            pending: None,
        }
    }

    /// Runs a round now when fewer of the unchoked peers want data than there are slots and a
    /// choked peer is interested (a newcomer does not wait up to 10 s for an idle slot).
    fn round_if_slot_free<R: Rng + ?Sized>(
        &mut self,
        hash: InfoHash,
        now: Duration,
        rng: &mut R,
        out: &mut Vec<ChokeOrder>,
    ) {
        if self.pending.is_some() {
            return;
        }
        let peers = &self.peers;
        let room = self
            .choker
            .has_free_slot(|k| peers.get(k).is_some_and(|p| p.interested));
        let waiting = room
            && peers
                .iter()
                .any(|(k, p)| p.interested && !self.choker.is_unchoked(k));
        if waiting {
            self.round(hash, now, rng, out);
        }
    }

    /// One round over every core's peers. Without chokes the unchokes go out at once; with
    /// some, the chokes go first and the unchokes wait for every choking core's
    /// acknowledgement.
    fn round<R: Rng + ?Sized>(
        &mut self,
        hash: InfoHash,
        now: Duration,
        rng: &mut R,
        out: &mut Vec<ChokeOrder>,
    ) {
        self.snapshots.clear();
        self.snapshots
            .extend(self.peers.iter().map(|(&key, p)| PeerSnapshot {
                interested: p.interested,
                upload_rate: p.rate,
                ..PeerSnapshot::new(key, p.connected_at)
            }));
        let sent = self
            .uploaded
            .iter()
            .flatten()
            .map(|(first, last)| last.saturating_sub(*first));
        self.choker.set_uploaded(sent.sum());
        let changes = self.choker.round(now, &self.snapshots, rng);
        if changes.choke.is_empty() {
            push_orders(hash, &[], &changes.unchoke, None, out);
            return;
        }
        self.rounds += 1;
        let mut awaiting: Vec<usize> = changes.choke.iter().map(|&(c, _)| c).collect();
        awaiting.sort_unstable();
        awaiting.dedup();
        push_orders(hash, &changes.choke, &[], Some(self.rounds), out);
        self.pending = Some(Pending {
            round: self.rounds,
            awaiting,
            unchoke: changes.unchoke,
            since: now,
        });
    }

    /// Sends the unchokes held for acknowledgements.
    fn release(&mut self, hash: InfoHash, out: &mut Vec<ChokeOrder>) {
        if let Some(p) = self.pending.take() {
            push_orders(hash, &[], &p.unchoke, None, out);
        }
    }
}

/// One order per core named in `choke` or `unchoke`.
fn push_orders(
    hash: InfoHash,
    choke: &[CorePeer],
    unchoke: &[CorePeer],
    ack: Option<u64>,
    out: &mut Vec<ChokeOrder>,
) {
    let mut cores: Vec<usize> = choke.iter().chain(unchoke).map(|&(c, _)| c).collect();
    cores.sort_unstable();
    cores.dedup();
    for core in cores {
        let of_core = |list: &[CorePeer]| {
            list.iter()
                .filter(|&&(c, _)| c == core)
                .map(|&(_, k)| k)
                .collect()
        };
        out.push(ChokeOrder {
            core,
            hash,
            choke: of_core(choke),
            unchoke: of_core(unchoke),
            ack,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const HASH: InfoHash = InfoHash([3; 20]);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// The owner and the cores as they apply its orders, one order at a time, checking the
    /// torrent's unchoked count after each.
    struct Swarm {
        owner: ChokeOwner,
        rng: ChaCha8Rng,
        unchoked: BTreeSet<CorePeer>,
        most: usize,
    }

    impl Swarm {
        fn new(slots: Slots) -> Self {
            Swarm {
                owner: ChokeOwner::new(slots, None),
                rng: ChaCha8Rng::seed_from_u64(18),
                unchoked: BTreeSet::new(),
                most: 0,
            }
        }

        fn event(&mut self, event: ChokeEvent, now: Duration) {
            let mut out = Vec::new();
            self.owner.on_event(event, now, &mut self.rng, &mut out);
            self.apply(out, now);
        }

        fn tick(&mut self, now: Duration) {
            let mut out = Vec::new();
            self.owner.tick(now, &mut self.rng, &mut out);
            self.apply(out, now);
        }

        /// Applies orders (the last core's first, as a worst case), feeding acknowledgements
        /// back after all of them.
        fn apply(&mut self, mut orders: Vec<ChokeOrder>, now: Duration) {
            orders.sort_by_key(|o| std::cmp::Reverse(o.core));
            let mut acks = Vec::new();
            for o in orders {
                for k in &o.choke {
                    self.unchoked.remove(&(o.core, *k));
                }
                for k in &o.unchoke {
                    self.unchoked.insert((o.core, *k));
                }
                self.most = self.most.max(self.unchoked.len());
                if let Some(round) = o.ack {
                    acks.push(ChokeEvent::Applied {
                        core: o.core,
                        hash: o.hash,
                        round,
                    });
                }
            }
            for a in acks {
                self.event(a, now);
            }
        }

        fn join(&mut self, core: usize, key: PeerKey, now: Duration) {
            let hash = HASH;
            self.event(ChokeEvent::Joined { core, hash, key }, now);
            self.event(
                ChokeEvent::Interest {
                    core,
                    hash,
                    key,
                    interested: true,
                },
                now,
            );
        }

        fn rates(&mut self, core: usize, rates: Vec<(PeerKey, u64)>, now: Duration) {
            let hash = HASH;
            let uploaded = 0;
            self.event(
                ChokeEvent::Rates {
                    core,
                    hash,
                    rates,
                    uploaded,
                },
                now,
            );
        }
    }

    #[test]
    fn four_slots_on_two_cores_unchoke_at_most_five_and_the_fastest_wherever_they_live() {
        let mut s = Swarm::new(Slots::Limited(4));
        // Five peers on core 0, five on core 1, all interested.
        for k in 0..5 {
            s.join(0, k, secs(0));
            s.join(1, k, secs(0));
        }
        assert_eq!(s.unchoked.len(), 5, "free slots are filled at once");
        // The four fastest all live on core 1 (its peer 0 the slowest there).
        for t in 1..40 {
            let now = secs(t);
            s.rates(0, (0..5).map(|k| (k, 1_000 + k)).collect(), now);
            s.rates(1, (0..5).map(|k| (k, 100_000 * k)).collect(), now);
            s.tick(now);
            assert!(s.most <= 5, "{} unchoked at {t} s", s.most);
            if t >= 10 {
                for k in 1..5 {
                    assert!(s.unchoked.contains(&(1, k)), "{t} s: {:?}", s.unchoked);
                }
                assert_eq!(s.unchoked.len(), 5, "{:?}", s.unchoked);
            }
        }
        assert_eq!(
            s.owner.unchoked(&HASH),
            s.unchoked.iter().copied().collect::<Vec<_>>()
        );
    }

    #[test]
    fn chokes_go_first_and_unchokes_wait_for_every_acknowledgement() {
        let mut owner = ChokeOwner::new(Slots::Limited(1), None);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out = Vec::new();
        let hash = HASH;
        for (core, key) in [(0, 1), (1, 2), (1, 3)] {
            owner.on_event(
                ChokeEvent::Joined { core, hash, key },
                secs(0),
                &mut rng,
                &mut out,
            );
            let interested = true;
            let ev = ChokeEvent::Interest {
                core,
                hash,
                key,
                interested,
            };
            owner.on_event(ev, secs(0), &mut rng, &mut out);
        }
        // One regular plus one optimistic slot: two unchoked, no chokes so no acks needed.
        assert!(out.iter().all(|o| o.choke.is_empty() && o.ack.is_none()));
        assert_eq!(owner.unchoked(&HASH).len(), 2);
        out.clear();
        // (1, 3) takes up twice the bandwidth of everyone: it gets the regular slot at 10 s.
        let rates = vec![(2, 10), (3, 1_000_000)];
        owner.on_event(
            ChokeEvent::Rates {
                core: 1,
                hash,
                rates,
                uploaded: 0,
            },
            secs(9),
            &mut rng,
            &mut out,
        );
        owner.on_event(
            ChokeEvent::Rates {
                core: 0,
                hash,
                rates: vec![(1, 20)],
                uploaded: 0,
            },
            secs(9),
            &mut rng,
            &mut out,
        );
        let before = owner.unchoked(&HASH);
        owner.tick(secs(10), &mut rng, &mut out);
        if !before.contains(&(1, 3)) {
            // Someone is choked for it: only chokes went out, each asking for an ack.
            assert!(!out.is_empty());
            assert!(out.iter().all(|o| o.unchoke.is_empty() && o.ack.is_some()));
            let orders = std::mem::take(&mut out);
            for o in &orders {
                let round = o.ack.unwrap();
                let ev = ChokeEvent::Applied {
                    core: o.core,
                    hash,
                    round,
                };
                owner.on_event(ev, secs(10), &mut rng, &mut out);
            }
            assert!(out.iter().any(|o| o.core == 1 && o.unchoke == vec![3]));
        }
        assert!(owner.unchoked(&HASH).contains(&(1, 3)));
    }

    #[test]
    fn unacknowledged_unchokes_go_out_after_the_limit_and_leavers_are_forgotten() {
        let mut owner = ChokeOwner::new(Slots::Limited(0), None);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut out = Vec::new();
        let hash = HASH;
        for key in 0..3 {
            let core = usize::from(key == 2);
            owner.on_event(
                ChokeEvent::Joined { core, hash, key },
                secs(0),
                &mut rng,
                &mut out,
            );
            let interested = true;
            let ev = ChokeEvent::Interest {
                core,
                hash,
                key,
                interested,
            };
            owner.on_event(ev, secs(0), &mut rng, &mut out);
        }
        // Only the optimistic slot; it rotates at 30 s (chokes with an ack asked).
        let first = owner.unchoked(&HASH);
        assert_eq!(first.len(), 1);
        out.clear();
        let mut t = 10;
        while owner.unchoked(&HASH) == first {
            t += 10;
            owner.tick(secs(t), &mut rng, &mut out);
            assert!(t < 1000);
        }
        assert!(out.iter().all(|o| o.ack.is_some() && o.unchoke.is_empty()));
        out.clear();
        // No acknowledgement: the unchoke waits, then goes out after the limit.
        owner.tick(secs(t + 1), &mut rng, &mut out);
        assert!(out.is_empty());
        owner.tick(secs(t) + ACK_LIMIT, &mut rng, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].unchoke.len(), 1);
        // Every peer leaves: the torrent is forgotten.
        for key in 0..3 {
            let core = usize::from(key == 2);
            owner.on_event(
                ChokeEvent::Left { core, hash, key },
                secs(t + 5),
                &mut rng,
                &mut out,
            );
        }
        assert!(owner.torrents.is_empty());
    }

    #[test]
    fn new_slots_take_effect_at_once_without_closing_anyone() {
        let mut s = Swarm::new(Slots::Limited(1));
        for k in 0..3 {
            s.join(usize::from(k == 2), k, secs(0));
        }
        assert_eq!(s.unchoked.len(), 2, "one regular plus the optimistic");
        let mut out = Vec::new();
        s.owner
            .set_limits(Slots::Unlimited, None, secs(1), &mut s.rng, &mut out);
        s.apply(out, secs(1));
        assert_eq!(s.unchoked.len(), 3, "{:?}", s.unchoked);
        let mut out = Vec::new();
        s.owner
            .set_limits(Slots::Limited(1), None, secs(2), &mut s.rng, &mut out);
        s.apply(out, secs(2));
        s.tick(secs(2) + ACK_LIMIT);
        assert!(s.unchoked.len() <= 2, "{:?}", s.unchoked);
        assert_eq!(s.owner.torrents[&HASH].peers.len(), 3);
    }
}
