//! The simulation proper: peers running the engine's own torrent [`Driver`] (the one
//! `seedbox get` runs over sockets) over the simulated network and clock.
//!
//! The drivers run with [`DriverConfig::simulated`]: nothing is lost or corrupted in the
//! simulated network, so every complete piece verifies, nothing times out, and control
//! messages are not queued behind data (they take the link's one-way delay; a unit takes its
//! transfer time plus that delay). Peers that both have everything disconnect, as clients do;
//! a leecher with fewer than half its `max_peers` connections asks the tracker again at most
//! every [`REANNOUNCE_INTERVAL`].
//!
//! Cost, not model: the messages one end sends at one instant (they share the link's delay)
//! are queued as one event and handled in order with a flush after each, which gives the
//! same run as one event per message; only the run's event count is lower. Every `have` is
//! still its own delivery, the instant its piece completes plus the one-way delay.

use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::metainfo::InfoHash;
use crate::protocol::{ConnectionConfig, Handshake, Message, PeerId, Reserved};
use crate::swarm::{
    BlockRef, ChokerConfig, Driver, DriverConfig, Effect, PeerKey, Picker, PickerConfig, Slots,
    SuperSeedConfig, BLOCK_SIZE, CHOKE_INTERVAL,
};

use super::arrivals::Arrivals;
use super::config::{ChokerKind, Mode, SimConfig, SimError, Units};
use super::event::{duration, nanos, prefetch, EventQueue, Nanos};
use super::network::{Due, FlowId, Network};
use super::peer::{End, Link, LinkIdx, Live, Peer, PeerIdx, ORIGIN};
use super::report::{Report, TimelineRow};

/// A leecher short of connections asks the tracker again at most this often.
pub const REANNOUNCE_INTERVAL: Duration = Duration::from_secs(30);
/// Virtual time between two rows of the timeline.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// Cache lines of a driver's record of one peer (see [`Sim::prefetch_deep`]).
const PEER_RECORD_LINES: usize = std::mem::size_of::<crate::swarm::Peer>().div_ceil(64);

static ZEROS: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];

/// Where a long run stands, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Virtual time reached.
    pub now: Duration,
    /// When the arrival schedule ends (the run goes on until the last leecher finishes).
    pub schedule_end: Duration,
    /// Peers in the swarm (leechers and lingering seeds).
    pub alive: usize,
    /// Events processed so far.
    pub events: u64,
}

enum Ev {
    Arrival,
    Connect {
        link: LinkIdx,
        gen: u32,
    },
    Deliver {
        link: LinkIdx,
        gen: u32,
        to: u8,
        msgs: Batch,
    },
    Sent {
        flow: FlowId,
        tgen: u32,
    },
    Tick {
        peer: PeerIdx,
    },
    Leave {
        peer: PeerIdx,
    },
    Sample,
}

/// The messages one end sent at one instant: they arrive together (same one-way delay) and
/// are handled in order, exactly as one event each would be, for one heap entry.
enum Batch {
    One(Message),
    Many(Vec<Message>),
}

/// Offsets within a [`Live`] that handling a message reads (see [`Sim::prefetch_deep`]).
fn live_offsets() -> Vec<usize> {
    let driver = std::mem::offset_of!(Live, driver);
    let mut offsets: Vec<usize> = Driver::message_field_offsets()
        .into_iter()
        .map(|o| driver + o)
        .collect();
    offsets.push(std::mem::offset_of!(Live, link_of));
    offsets
}

/// Runs a simulation to the end.
pub fn run(cfg: &SimConfig) -> Result<Report, SimError> {
    run_with_progress(cfg, &mut |_| {})
}

/// Runs a simulation, calling `progress` every few tens of thousands of events.
pub fn run_with_progress(
    cfg: &SimConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, SimError> {
    cfg.validate()?;
    let mut sim = Sim::new(cfg)?;
    sim.run(progress);
    Ok(sim.report())
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    units: Units,
    /// Protocol randomness: first pieces, rarest-first ties, optimistic unchokes, tracker
    /// lists.
    rng: ChaCha8Rng,
    /// Who arrives when, in which class, free rider or not, with which delay: a stream of its
    /// own, so runs that differ only in capacities see the same arrivals.
    arrival_rng: ChaCha8Rng,
    now: Nanos,
    queue: EventQueue<Ev>,
    net: Network,
    peers: Vec<Peer>,
    links: Vec<Option<Link>>,
    link_gen: Vec<u32>,
    free_links: Vec<LinkIdx>,
    /// Peers the tracker knows (swarm mode; the origin included), with positions.
    members: Vec<PeerIdx>,
    member_pos: Vec<u32>,
    /// Peers in the swarm other than the origin, with positions.
    alive: Vec<PeerIdx>,
    alive_pos: Vec<u32>,
    arrivals: Arrivals,
    arrivals_done: bool,
    hard_end: Nanos,
    handshake: Handshake,
    conn_cfg: ConnectionConfig,
    leechers: usize,
    seeds: usize,
    late_finished: u64,
    aborted: bool,
    origin_bytes: Vec<u64>,
    origin_served: Vec<bool>,
    origin_served_count: u64,
    last_piece_out: Option<Nanos>,
    wasted: u64,
    events: u64,
    timeline: Vec<TimelineRow>,
    dirty: Vec<(LinkIdx, u8)>,
    due: Vec<Due>,
    /// Per flow: the sending end's [`End::hints`] when its current send started, so that a
    /// unit's completion can prefetch the sender's driver record (hints only).
    flow_hints: Vec<[usize; 3]>,
    /// Offsets within a [`Live`] of what handling a message reads: the driver's fields
    /// ([`Driver::message_field_offsets`]) and the link of each key.
    live_offsets: Vec<usize>,
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a SimConfig) -> Result<Self, SimError> {
        let units = Units::for_config(cfg)?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.rng_seed);
        let arrivals = Arrivals::new(&cfg.arrivals);
        let hard_end = arrivals.end().saturating_add(nanos(cfg.drain));
        let reserved = Reserved::default().with_fast(true);
        let conn_cfg = ConnectionConfig {
            reserved,
            ..ConnectionConfig::default()
        };
        let mut handshake = Handshake::new(InfoHash([0; 20]), PeerId([0; 20]));
        handshake.reserved = reserved;
        let mut sim = Sim {
            cfg,
            units,
            rng: ChaCha8Rng::seed_from_u64(0),
            arrival_rng: ChaCha8Rng::seed_from_u64(cfg.rng_seed ^ 0x5eed_b0c5_a771_7a15),
            now: 0,
            queue: EventQueue::default(),
            net: Network::default(),
            peers: Vec::new(),
            links: Vec::new(),
            link_gen: Vec::new(),
            free_links: Vec::new(),
            members: Vec::new(),
            member_pos: Vec::new(),
            alive: Vec::new(),
            alive_pos: Vec::new(),
            arrivals,
            arrivals_done: false,
            hard_end,
            handshake,
            conn_cfg,
            leechers: 0,
            seeds: 0,
            late_finished: 0,
            aborted: false,
            origin_bytes: vec![0; cfg.arrivals.len()],
            origin_served: vec![false; units.count as usize],
            origin_served_count: 0,
            last_piece_out: None,
            wasted: 0,
            events: 0,
            timeline: Vec::new(),
            dirty: Vec::new(),
            due: Vec::new(),
            flow_hints: Vec::new(),
            live_offsets: live_offsets(),
        };
        sim.add_origin(&mut rng);
        sim.rng = rng;
        Ok(sim)
    }

    /// Adds the origin: a seed from time zero, in the tracker's list (peer [`ORIGIN`]).
    fn add_origin(&mut self, rng: &mut ChaCha8Rng) {
        let mut picker = Picker::new(self.units.geometry, PickerConfig::default(), rng);
        for p in 0..self.units.geometry.piece_count() {
            picker.piece_verified(p);
        }
        let choker_cfg = match self.cfg.mode {
            Mode::ClientServer => ChokerConfig {
                slots: Slots::Unlimited,
                optimistic: false,
            },
            Mode::Swarm => self.choker(self.cfg.unchoke_slots),
        };
        let mut driver = self.driver(choker_cfg, true, picker, self.cfg.super_seed, rng);
        // As `seed --max-upload-rate` with the origin's uplink: `auto` grows while it is
        // unsaturated.
        driver.set_uplink(Some(self.cfg.seed_up));
        let (lo, hi) = (nanos(self.cfg.rtt.0), nanos(self.cfg.rtt.1));
        self.net.add_host(self.cfg.seed_up, u64::MAX / 4);
        self.peers.push(Peer {
            arrival: 0,
            finish: Some(0),
            left: None,
            class: 0,
            free_rider: false,
            latency: (lo + hi) / 8,
            bytes_up: 0,
            bytes_down: 0,
            live: Some(Box::new(Live {
                driver,
                links: Vec::new(),
                link_of: Vec::new(),
                last_announce: 0,
            })),
        });
        self.member_pos.push(u32::MAX);
        self.alive_pos.push(u32::MAX);
        if self.cfg.mode == Mode::Swarm {
            self.member_pos[0] = 0;
            self.members.push(ORIGIN);
        }
    }

    /// A peer's driver over `picker`, with its own random stream drawn from `rng`.
    fn driver(
        &self,
        choker: ChokerConfig,
        uploads: bool,
        picker: Picker<PeerKey>,
        super_seed: bool,
        rng: &mut ChaCha8Rng,
    ) -> Driver {
        let config = DriverConfig {
            uploads,
            super_seed: super_seed.then(SuperSeedConfig::default),
            ..DriverConfig::simulated(self.conn_cfg.clone(), choker, self.units.unit_bytes)
        };
        Driver::new(config, picker, ChaCha8Rng::seed_from_u64(rng.gen()))
    }

    /// The choker of the standard kind with `slots` regular slots, or the unlimited one.
    fn choker(&self, slots: Slots) -> ChokerConfig {
        match self.cfg.choker {
            ChokerKind::Standard => ChokerConfig {
                slots,
                optimistic: true,
            },
            ChokerKind::Unlimited => ChokerConfig {
                slots: Slots::Unlimited,
                optimistic: false,
            },
        }
    }

    fn run(&mut self, progress: &mut dyn FnMut(&Progress)) {
        self.schedule_next_arrival();
        self.queue.push(0, Ev::Sample);
        self.queue.push(0, Ev::Tick { peer: ORIGIN });
        while let Some((at, ev)) = self.queue.pop() {
            if at > self.hard_end {
                self.now = self.hard_end;
                break;
            }
            self.now = at;
            self.events += 1;
            // Two events ahead: the one after next gets its end's lines loaded; the next one,
            // whose end was loaded that way one event ago, the lines its end points to.
            self.queue.prefetch_upcoming();
            if let Some(after) = self.queue.peek_second() {
                self.prefetch_event(after);
            }
            if let Some(next) = self.queue.peek() {
                self.prefetch_event(next);
                self.prefetch_deep(next);
            }
            self.handle(ev);
            self.flush();
            if self.events % 65_536 == 0 {
                progress(&Progress {
                    now: duration(self.now),
                    schedule_end: duration(self.arrivals.end()),
                    alive: self.alive.len(),
                    events: self.events,
                });
            }
            if self.finished() {
                break;
            }
        }
        self.sample();
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Arrival => self.arrival(),
            Ev::Connect { link, gen } => {
                if self.link_ok(link, gen) {
                    self.on_connect(link);
                }
            }
            Ev::Deliver {
                link,
                gen,
                to,
                msgs,
            } => match msgs {
                Batch::One(msg) => {
                    if self.link_ok(link, gen) {
                        self.on_message(link, usize::from(to), msg);
                    }
                }
                Batch::Many(msgs) => {
                    for msg in msgs {
                        // As if each message were its own event: flush what the previous
                        // one caused, and stop where the run would have stopped.
                        if !self.link_ok(link, gen) || self.finished() {
                            break;
                        }
                        self.on_message(link, usize::from(to), msg);
                        self.flush();
                    }
                }
            },
            Ev::Sent { flow, tgen } => {
                if self.net.is_current(flow, tgen) {
                    self.on_sent(flow);
                }
            }
            Ev::Tick { peer } => self.tick(peer),
            Ev::Leave { peer } => self.leave(peer),
            Ev::Sample => {
                self.sample();
                self.check_abort();
                self.queue
                    .push(self.now + nanos(SAMPLE_INTERVAL), Ev::Sample);
            }
        }
    }

    /// Prefetches the first lines `ev` will touch that can be found without reading memory
    /// that may not be in cache yet: a delivery's link, a unit sent's flow. Only a hint: a
    /// wrong address costs a wasted load.
    fn prefetch_event(&self, ev: &Ev) {
        match *ev {
            Ev::Deliver { link, .. } => {
                prefetch(self.links.as_ptr().wrapping_add(link as usize) as usize);
            }
            Ev::Sent { flow, .. } => {
                prefetch(self.net.flow_address(flow));
                prefetch(self.flow_hints.as_ptr().wrapping_add(flow as usize) as usize);
            }
            _ => {}
        }
    }

    /// Prefetches what the next event will touch beyond what [`Sim::prefetch_event`] loaded
    /// one event earlier, reading that: for a delivery, the receiving end's driver (see
    /// [`Sim::prefetch_end`]); for a unit sent, its link and hosts and the sending end's driver.
    fn prefetch_deep(&self, ev: &Ev) {
        match *ev {
            Ev::Deliver { link, to, .. } => {
                if let Some(link) = self.links[link as usize].as_ref() {
                    let end = &link.ends[usize::from(to)];
                    self.prefetch_end(end.peer, end.hints);
                }
            }
            Ev::Sent { flow, .. } => {
                // A queued completion always names a flow that exists (flows are reused,
                // never removed).
                let f = self.net.flow(flow);
                prefetch(self.links.as_ptr().wrapping_add(f.link as usize) as usize);
                prefetch(self.net.host_address(f.sender));
                prefetch(self.net.host_address(f.receiver));
                // The sender's driver serves its next request.
                let hints = self.flow_hints.get(flow as usize).copied();
                self.prefetch_end(f.sender, hints.unwrap_or([0; 3]));
            }
            _ => {}
        }
    }

    /// Prefetches peer `p`'s record and, from an end's [`End::hints`] (zero before the
    /// handshakes), what its driver reads to handle a message on that connection: the
    /// driver's fields, the connection's slot and the whole record (a message may touch any
    /// part of it).
    fn prefetch_end(&self, p: PeerIdx, [live, slot, record]: [usize; 3]) {
        prefetch(self.peers.as_ptr().wrapping_add(p as usize) as usize);
        if live == 0 {
            return;
        }
        for &offset in &self.live_offsets {
            prefetch(live + offset);
        }
        prefetch(slot);
        for line in 0..PEER_RECORD_LINES {
            prefetch(record + 64 * line);
        }
    }

    /// Whether the run is over (aborted, or every arrival came and no leecher is left).
    fn finished(&self) -> bool {
        self.aborted || (self.arrivals_done && self.leechers == 0)
    }

    fn link_ok(&self, link: LinkIdx, gen: u32) -> bool {
        self.link_gen[link as usize] == gen && self.links[link as usize].is_some()
    }

    fn schedule_next_arrival(&mut self) {
        match self.arrivals.next(&mut self.arrival_rng) {
            Some(t) => self.queue.push(t, Ev::Arrival),
            None => self.arrivals_done = true,
        }
    }

    // ---- peers arriving and leaving ----

    fn arrival(&mut self) {
        let cfg = self.cfg;
        let total: f64 = cfg.classes.iter().map(|c| c.weight).sum();
        let mut x = self.arrival_rng.gen::<f64>() * total;
        let mut class = cfg.classes.len() - 1;
        for (i, c) in cfg.classes.iter().enumerate() {
            if x < c.weight {
                class = i;
                break;
            }
            x -= c.weight;
        }
        let free_rider = cfg.mode == Mode::Swarm && self.arrival_rng.gen::<f64>() < cfg.free_riders;
        let (lo, hi) = (nanos(cfg.rtt.0) / 4, nanos(cfg.rtt.1) / 4);
        let latency = if hi > lo {
            self.arrival_rng.gen_range(lo..=hi)
        } else {
            lo
        };
        let c = cfg.classes[class];
        let up = if free_rider || cfg.mode == Mode::ClientServer {
            0
        } else {
            c.up
        };
        let idx = self.net.add_host(up, c.down);
        debug_assert_eq!(idx as usize, self.peers.len());
        let mut rng = std::mem::replace(&mut self.rng, ChaCha8Rng::seed_from_u64(0));
        let picker = Picker::new(
            self.units.geometry,
            PickerConfig {
                strategy: cfg.picker,
                ..PickerConfig::default()
            },
            &mut rng,
        );
        let choker = self.choker(self.cfg.peer_unchoke_slots);
        let driver = self.driver(choker, !free_rider, picker, false, &mut rng);
        self.rng = rng;
        self.peers.push(Peer {
            arrival: self.now,
            finish: None,
            left: None,
            class: class as u16,
            free_rider,
            latency,
            bytes_up: 0,
            bytes_down: 0,
            live: Some(Box::new(Live {
                driver,
                links: Vec::new(),
                link_of: Vec::new(),
                last_announce: self.now,
            })),
        });
        self.member_pos.push(u32::MAX);
        self.alive_pos.push(self.alive.len() as u32);
        self.alive.push(idx);
        if cfg.mode == Mode::Swarm {
            self.member_pos[idx as usize] = self.members.len() as u32;
            self.members.push(idx);
        }
        self.leechers += 1;
        self.announce(idx);
        self.queue
            .push(self.now + nanos(CHOKE_INTERVAL), Ev::Tick { peer: idx });
        self.schedule_next_arrival();
    }

    fn live(&self, p: PeerIdx) -> Option<&Live> {
        self.peers[p as usize].live.as_deref()
    }

    fn live_mut(&mut self, p: PeerIdx) -> Option<&mut Live> {
        self.peers[p as usize].live.as_deref_mut()
    }

    fn linked(&self, a: PeerIdx, b: PeerIdx) -> bool {
        self.live(a).is_some_and(|l| {
            l.links.iter().any(|&k| {
                self.links[k as usize]
                    .as_ref()
                    .is_some_and(|x| x.ends[0].peer == b || x.ends[1].peer == b)
            })
        })
    }

    /// Asks the simulated tracker for random peers and connects to those with room.
    fn announce(&mut self, p: PeerIdx) {
        let max = self.cfg.max_peers as usize;
        let now = self.now;
        if let Some(l) = self.live_mut(p) {
            l.last_announce = now;
        }
        if self.cfg.mode == Mode::ClientServer {
            if !self.linked(p, ORIGIN) {
                self.connect(p, ORIGIN);
            }
            return;
        }
        let n = self.members.len();
        if n <= 1 {
            return;
        }
        let want = (self.cfg.numwant as usize + 1).min(n);
        let picks = rand::seq::index::sample(&mut self.rng, n, want);
        for i in picks.iter() {
            let c = self.members[i];
            if c == p {
                continue;
            }
            if self.live(p).map_or(0, |l| l.links.len()) >= max {
                break;
            }
            if self.linked(p, c) {
                continue;
            }
            if c != ORIGIN && self.live(c).map_or(usize::MAX, |l| l.links.len()) >= max {
                continue; // refused: full
            }
            if self.peers[c as usize].finish.is_some() && self.peers[p as usize].finish.is_some() {
                continue;
            }
            self.connect(p, c);
        }
    }

    /// Opens a connection; the handshakes complete one round trip later.
    fn connect(&mut self, a: PeerIdx, b: PeerIdx) {
        let one_way = self.peers[a as usize].latency + self.peers[b as usize].latency;
        let end = |peer| End {
            peer,
            key: 0,
            hints: [0; 3],
            flow: None,
            sending: None,
        };
        let link = Link {
            one_way,
            connected: false,
            ends: [end(a), end(b)],
        };
        let idx = match self.free_links.pop() {
            Some(i) => {
                self.links[i as usize] = Some(link);
                i
            }
            None => {
                self.links.push(Some(link));
                self.link_gen.push(0);
                (self.links.len() - 1) as LinkIdx
            }
        };
        for p in [a, b] {
            if let Some(l) = self.live_mut(p) {
                l.links.push(idx);
            }
        }
        let gen = self.link_gen[idx as usize];
        self.queue
            .push(self.now + 2 * one_way, Ev::Connect { link: idx, gen });
    }

    /// The handshakes completed: each end's driver learns the link.
    fn on_connect(&mut self, l: LinkIdx) {
        let now = duration(self.now);
        let link = self.links[l as usize].as_mut().expect("checked");
        link.connected = true;
        let rtt = duration(2 * link.one_way);
        let peers = [link.ends[0].peer, link.ends[1].peer];
        for side in 0..2 {
            let (p, remote) = (peers[side], peers[1 - side]);
            let live = self.peers[p as usize]
                .live
                .as_deref_mut()
                .expect("linked peers are live");
            let key = live
                .driver
                .add_peer(peer_address(remote), &self.handshake, rtt, now);
            let k = key as usize;
            if live.link_of.len() <= k {
                live.link_of.resize(k + 1, 0);
            }
            live.link_of[k] = l;
            link.ends[side].key = key;
            let [slot, record] = live.driver.peer_addresses(key);
            link.ends[side].hints = [live as *const Live as usize, slot, record];
        }
        for p in peers {
            self.apply(p);
        }
    }

    fn close_link(&mut self, l: LinkIdx) {
        let Some(link) = self.links[l as usize].take() else {
            return;
        };
        self.link_gen[l as usize] = self.link_gen[l as usize].wrapping_add(1);
        self.free_links.push(l);
        for end in &link.ends {
            if let Some(f) = end.flow {
                self.net.stop(f, self.now, &mut self.due);
            }
        }
        let now = duration(self.now);
        for end in &link.ends {
            let Some(live) = self.peers[end.peer as usize].live.as_deref_mut() else {
                continue;
            };
            if let Some(i) = live.links.iter().position(|&x| x == l) {
                live.links.remove(i);
            }
            if link.connected {
                // Released requests go to the other connections now.
                live.driver.on_peer_gone(end.key, now);
                self.apply(end.peer);
            }
        }
    }

    /// Does what peer `p`'s driver asked for.
    fn apply(&mut self, p: PeerIdx) {
        let now = duration(self.now);
        loop {
            let Some(live) = self.peers[p as usize].live.as_deref_mut() else {
                return;
            };
            let Some(effect) = live.driver.poll_effect() else {
                return;
            };
            match effect {
                Effect::Transmit(key) => {
                    let l = live.link_of[key as usize];
                    let side = self.side(l, p);
                    // One flush drains the end: a second entry would find nothing.
                    if self.dirty.last() != Some(&(l, side as u8)) {
                        self.dirty.push((l, side as u8));
                    }
                    self.start_send(l, side);
                }
                // Nothing is corrupted in the simulated network.
                Effect::Verify(piece) => live.driver.on_piece_verified(piece, true, now),
                Effect::Close(key) => {
                    let l = live.link_of[key as usize];
                    self.close_link(l);
                }
                Effect::Completed => self.on_complete(p),
                Effect::Store { .. } | Effect::Extension(..) => {}
            }
        }
    }

    fn side(&self, l: LinkIdx, p: PeerIdx) -> usize {
        self.links[l as usize].as_ref().map_or(0, |x| x.side_of(p))
    }

    fn leave(&mut self, p: PeerIdx) {
        let Some(live) = self.peers[p as usize].live.as_deref() else {
            return;
        };
        let links = live.links.clone();
        for l in links {
            self.close_link(l);
        }
        let pos = self.member_pos[p as usize];
        if pos != u32::MAX {
            let last = *self.members.last().expect("non-empty");
            self.members.swap_remove(pos as usize);
            if last != p {
                self.member_pos[last as usize] = pos;
            }
            self.member_pos[p as usize] = u32::MAX;
        }
        let pos = self.alive_pos[p as usize];
        if pos != u32::MAX {
            let last = *self.alive.last().expect("non-empty");
            self.alive.swap_remove(pos as usize);
            if last != p {
                self.alive_pos[last as usize] = pos;
            }
            self.alive_pos[p as usize] = u32::MAX;
        }
        let peer = &mut self.peers[p as usize];
        if peer.finish.is_some() {
            self.seeds -= 1;
        } else {
            self.leechers -= 1;
        }
        peer.left = Some(self.now);
        if let Some(live) = peer.live.take() {
            self.wasted += live.driver.totals().wasted;
        }
    }

    fn on_complete(&mut self, p: PeerIdx) {
        let now = self.now;
        let peer = &mut self.peers[p as usize];
        peer.finish = Some(now);
        if let Some(target) = self.cfg.abort_after {
            if now - peer.arrival > nanos(target) {
                self.late_finished += 1;
            }
        }
        let leave_now =
            self.cfg.mode == Mode::ClientServer || peer.free_rider || self.cfg.linger.is_zero();
        self.leechers -= 1;
        self.seeds += 1;
        let live = peer.live.as_deref_mut().expect("live");
        if leave_now {
            self.queue.push(now, Ev::Leave { peer: p });
            return;
        }
        self.queue
            .push(now + nanos(self.cfg.linger), Ev::Leave { peer: p });
        // Two seeds have nothing to trade.
        let links = live.links.clone();
        for l in links {
            let Some(link) = self.links[l as usize].as_ref() else {
                continue;
            };
            let remote = link.ends[1 - link.side_of(p)].peer;
            if self.peers[remote as usize].finish.is_some() {
                self.close_link(l);
            }
        }
    }

    fn tick(&mut self, p: PeerIdx) {
        let now = duration(self.now);
        let Some(live) = self.live_mut(p) else {
            return;
        };
        live.driver.on_tick(now);
        let complete = live.driver.is_complete();
        let next = nanos(live.driver.next_tick(now));
        self.apply(p);
        if let Some(live) = self.live(p) {
            if self.cfg.mode == Mode::Swarm
                && p != ORIGIN
                && !complete
                && self.now - live.last_announce >= nanos(REANNOUNCE_INTERVAL)
                && self.starving(live)
            {
                self.make_room(p);
                self.announce(p);
            }
        }
        self.queue.push(next, Ev::Tick { peer: p });
    }

    /// Whether a leecher needs more peers: fewer than half its connection limit, or some
    /// piece it lacks is held by none of its peers.
    fn starving(&self, live: &Live) -> bool {
        if live.links.len() < (self.cfg.max_peers as usize / 2).max(1) {
            return true;
        }
        let picker = live.driver.picker();
        (0..self.units.geometry.piece_count())
            .any(|piece| !picker.have().has(piece) && picker.availability(piece) == 0)
    }

    /// At its connection limit, a starving leecher drops the connections useless both ways
    /// (neither side interested) to make room for the tracker's next peers.
    fn make_room(&mut self, p: PeerIdx) {
        let Some(live) = self.live(p) else {
            return;
        };
        if live.links.len() < self.cfg.max_peers as usize {
            return;
        }
        let useless: Vec<LinkIdx> =
            live.links
                .iter()
                .copied()
                .filter(|&l| {
                    self.links[l as usize].as_ref().is_some_and(|x| {
                        let end = &x.ends[x.side_of(p)];
                        x.connected
                            && live.driver.peer(end.key).is_some_and(|c| {
                                !c.conn.am_interested() && !c.conn.peer_interested()
                            })
                    })
                })
                .collect();
        for l in useless {
            self.close_link(l);
        }
    }

    // ---- messages ----

    fn flush(&mut self) {
        let now = duration(self.now);
        let mut dirty = std::mem::take(&mut self.dirty);
        for &(l, side) in &dirty {
            let Some(link) = self.links[l as usize].as_mut() else {
                continue;
            };
            let gen = self.link_gen[l as usize];
            let at = self.now + link.one_way;
            let end = &link.ends[side as usize];
            let key = end.key;
            let Some(live) = self.peers[end.peer as usize].live.as_deref_mut() else {
                continue;
            };
            let driver = &mut live.driver;
            let Some(first) = driver.poll_message(key, now) else {
                continue;
            };
            let msgs = match driver.poll_message(key, now) {
                None => Batch::One(first),
                Some(second) => {
                    let mut v = vec![first, second];
                    v.extend(std::iter::from_fn(|| driver.poll_message(key, now)));
                    Batch::Many(v)
                }
            };
            self.queue.push(
                at,
                Ev::Deliver {
                    link: l,
                    gen,
                    to: 1 - side,
                    msgs,
                },
            );
        }
        dirty.clear();
        self.dirty = dirty;
        for d in self.due.drain(..) {
            self.queue.push(
                d.at,
                Ev::Sent {
                    flow: d.id,
                    tgen: d.tgen,
                },
            );
        }
    }

    /// A message arrives at end `to` of `l`: its peer's driver handles it.
    fn on_message(&mut self, l: LinkIdx, to: usize, msg: Message) {
        let now = duration(self.now);
        let Some(link) = self.links[l as usize].as_ref() else {
            return;
        };
        let (p, key) = (link.ends[to].peer, link.ends[to].key);
        if let Message::Piece {
            piece,
            offset,
            data,
        } = &msg
        {
            let block = BlockRef {
                piece: *piece,
                offset: *offset,
                length: data.len() as u32,
            };
            self.peers[p as usize].bytes_down += self.units.real_bytes(block);
        }
        let Some(live) = self.peers[p as usize].live.as_deref_mut() else {
            return;
        };
        if live.driver.on_message(key, msg, now).is_err() {
            // Cannot happen between two engine drivers; drop the peer as `get` would.
            self.close_link(l);
            return;
        }
        self.apply(p);
    }

    // ---- data ----

    /// The next queued request this end can serve.
    fn next_request(&mut self, l: LinkIdx, side: usize) -> Option<BlockRef> {
        let now = duration(self.now);
        let end = &self.links[l as usize].as_ref()?.ends[side];
        let live = self.peers[end.peer as usize].live.as_deref_mut()?;
        live.driver.next_upload(end.key, now)
    }

    fn start_send(&mut self, l: LinkIdx, side: usize) {
        let busy = self.links[l as usize]
            .as_ref()
            .map_or(true, |x| x.ends[side].flow.is_some());
        if busy {
            return;
        }
        let Some(b) = self.next_request(l, side) else {
            return;
        };
        let bytes = self.units.real_bytes(b);
        let link = self.links[l as usize].as_mut().expect("checked");
        let (sender, receiver) = (link.ends[side].peer, link.ends[1 - side].peer);
        let f = self.net.start(
            sender,
            receiver,
            l,
            side as u8,
            bytes,
            self.now,
            &mut self.due,
        );
        link.ends[side].flow = Some(f);
        link.ends[side].sending = Some(b);
        let hints = link.ends[side].hints;
        let f = f as usize;
        if self.flow_hints.len() <= f {
            self.flow_hints.resize(f + 1, [0; 3]);
        }
        self.flow_hints[f] = hints;
    }

    fn on_sent(&mut self, f: FlowId) {
        let now = duration(self.now);
        let (l, side) = {
            let flow = self.net.flow(f);
            (flow.link, usize::from(flow.side))
        };
        let gen = self.link_gen[l as usize];
        let Some(link) = self.links[l as usize].as_mut() else {
            return;
        };
        let end = &mut link.ends[side];
        let Some(block) = end.sending.take() else {
            return;
        };
        let bytes = self.units.real_bytes(block);
        let sender = end.peer;
        let peer = &mut self.peers[sender as usize];
        peer.bytes_up += bytes;
        if let Some(live) = peer.live.as_deref_mut() {
            live.driver.on_uploaded(end.key, bytes, now);
        }
        if sender == ORIGIN {
            let phase = self.arrivals.phase_of(self.now);
            self.origin_bytes[phase] += bytes;
            let unit = if self.units.kind == super::config::UnitKind::Block {
                (self.units.geometry.piece_offset(block.piece) + u64::from(block.offset))
                    / u64::from(BLOCK_SIZE)
            } else {
                u64::from(block.piece)
            };
            if let Some(seen) = self.origin_served.get_mut(unit as usize) {
                if !*seen {
                    *seen = true;
                    self.origin_served_count += 1;
                    if self.origin_served_count == self.units.count {
                        self.last_piece_out = Some(self.now);
                    }
                }
            }
        }
        let msg = Message::Piece {
            piece: block.piece,
            offset: block.offset,
            data: Bytes::from_static(&ZEROS[..block.length as usize]),
        };
        self.queue.push(
            self.now + link.one_way,
            Ev::Deliver {
                link: l,
                gen,
                to: 1 - side as u8,
                msgs: Batch::One(msg),
            },
        );
        match self.next_request(l, side) {
            Some(b) => {
                let bytes = self.units.real_bytes(b);
                let link = self.links[l as usize].as_mut().expect("checked");
                link.ends[side].sending = Some(b);
                self.net.next_unit(f, bytes, self.now, &mut self.due);
            }
            None => {
                let link = self.links[l as usize].as_mut().expect("checked");
                link.ends[side].flow = None;
                self.net.stop(f, self.now, &mut self.due);
            }
        }
    }

    // ---- measurement ----

    fn sample(&mut self) {
        let t = super::event::secs(self.now);
        if self.timeline.last().is_some_and(|r| r.t_s == t) {
            return;
        }
        let origin = self.net.upload_rate(ORIGIN);
        let aggregate: f64 = origin
            + self
                .alive
                .iter()
                .map(|&p| self.net.upload_rate(p))
                .sum::<f64>();
        let club = super::syndrome::count_club(
            self.alive
                .iter()
                .filter_map(|&p| self.live(p))
                .map(|l| l.driver.have()),
        );
        let origin_unchoked = self
            .live(ORIGIN)
            .map_or(0, |l| l.driver.choker().unchoked().len() as u64);
        self.timeline.push(TimelineRow {
            t_s: t,
            origin_unchoked,
            leechers: self.leechers as u64,
            seeds: self.seeds as u64,
            // `+ 0.0` turns the -0.0 of an empty sum into 0.0.
            origin_utilisation: origin / self.cfg.seed_up as f64 + 0.0,
            aggregate_bytes_per_s: aggregate + 0.0,
            club: club.size,
            club_piece: club.piece,
        });
    }

    fn check_abort(&mut self) {
        let Some(target) = self.cfg.abort_after else {
            return;
        };
        let target = nanos(target);
        let running_late = self
            .alive
            .iter()
            .filter(|&&p| {
                let peer = &self.peers[p as usize];
                peer.finish.is_none() && self.now - peer.arrival > target
            })
            .count() as u64;
        let allowed = (self.cfg.expected_arrivals() * 0.05).ceil().max(1.0) as u64;
        if self.late_finished + running_late > allowed {
            self.aborted = true;
        }
    }

    fn report(mut self) -> Report {
        for peer in &self.peers {
            if let Some(live) = peer.live.as_deref() {
                self.wasted += live.driver.totals().wasted;
            }
        }
        Report::build(
            self.cfg,
            &self.units,
            &self.arrivals,
            &self.peers[1..],
            self.origin_bytes,
            self.timeline,
            super::report::RunFacts {
                end: self.now,
                events: self.events,
                aborted: self.aborted,
                last_piece_out: self.last_piece_out,
                wasted: self.wasted,
                origin_bytes_total: self.peers[0].bytes_up,
            },
        )
    }
}

/// The address a simulated peer's driver knows it by (strikes and bans would apply to it).
fn peer_address(p: PeerIdx) -> std::net::SocketAddr {
    std::net::SocketAddr::from((std::net::Ipv4Addr::from(p), 6881))
}
