//! The simulation proper: peers driving the engine's picker, choker and connection state
//! machine over the simulated network, the way `engine/download/session.rs` drives them over
//! sockets.
//!
//! Differences from the session, all because nothing is lost or corrupted in the simulated
//! network: pieces are not hashed (every complete piece verifies), there are no request
//! timeouts, keep-alives or idle timeouts, and control messages are not queued behind data
//! (they take the link's one-way delay; a unit takes its transfer time plus that delay).
//! Peers that both have everything disconnect, as clients do; a leecher with fewer than
//! half its `max_peers` connections asks the tracker again at most every
//! [`REANNOUNCE_INTERVAL`].
//!
//! Cost, not model: the messages one end sends at one instant (they share the link's delay)
//! are queued as one event and handled in order with a flush after each, which gives the
//! same run as one event per message; only the run's event count is lower. Every `have` is
//! still its own delivery, the instant its piece completes plus the one-way delay: batching
//! `have`s over time was tried and changes the results (see `bench-results/flash-crowd.md`,
//! "Speed"). As in the engine, a peer that has the piece already is not sent its `have`
//! (see `Connection::have`): about half of all `have`s.

use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::metainfo::InfoHash;
use crate::protocol::{Connection, ConnectionConfig, Event, Handshake, Message, PeerId, Reserved};
use crate::swarm::{
    pipeline_depth, BlockRef, Choker, ChokerConfig, PeerSnapshot, Picker, PickerConfig, RateMeter,
    Slots, BLOCK_SIZE, CHOKE_INTERVAL,
};

use super::arrivals::Arrivals;
use super::config::{ChokerKind, Mode, SimConfig, SimError, Units};
use super::event::{duration, nanos, prefetch, EventQueue, Nanos, SECOND};
use super::network::{Due, FlowId, Network};
use super::peer::{End, Hints, Link, LinkIdx, Live, Peer, PeerIdx, ORIGIN};
use super::report::{Report, TimelineRow};

/// A leecher short of connections asks the tracker again at most this often.
pub const REANNOUNCE_INTERVAL: Duration = Duration::from_secs(30);
/// Virtual time between two rows of the timeline.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

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
    picks: Vec<BlockRef>,
    snaps: Vec<PeerSnapshot<PeerIdx>>,
    snap_links: Vec<LinkIdx>,
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
            picks: Vec::new(),
            snaps: Vec::new(),
            snap_links: Vec::new(),
        };
        // The origin: a seed from time zero, in the tracker's list.
        let mut picker = Picker::new(units.geometry, PickerConfig::default(), &mut rng);
        for p in 0..units.geometry.piece_count() {
            picker.piece_verified(p);
        }
        let choker_cfg = match cfg.mode {
            Mode::ClientServer => ChokerConfig {
                slots: Slots::Unlimited,
                optimistic: false,
            },
            Mode::Swarm => sim.peer_choker(),
        };
        let mut choker = Choker::new(choker_cfg);
        choker.set_seeding(true);
        let (lo, hi) = (nanos(cfg.rtt.0), nanos(cfg.rtt.1));
        sim.net.add_host(cfg.seed_up, u64::MAX / 4);
        sim.peers.push(Peer {
            arrival: 0,
            finish: Some(0),
            left: None,
            class: 0,
            free_rider: false,
            latency: (lo + hi) / 8,
            bytes_up: 0,
            bytes_down: 0,
            live: Some(Box::new(Live {
                picker,
                choker,
                links: Vec::new(),
                last_announce: 0,
            })),
        });
        sim.member_pos.push(u32::MAX);
        sim.alive_pos.push(u32::MAX);
        if cfg.mode == Mode::Swarm {
            sim.member_pos[0] = 0;
            sim.members.push(ORIGIN);
        }
        sim.rng = rng;
        Ok(sim)
    }

    fn peer_choker(&self) -> ChokerConfig {
        match self.cfg.choker {
            ChokerKind::Standard => ChokerConfig {
                slots: Slots::Limited(self.cfg.unchoke_slots),
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
    /// that may not be in cache yet: for a delivery, the hot lines of the receiving end (see
    /// [`End`]'s layout) and the other end's first line; for a unit sent, its flow. Only a
    /// hint: a wrong address costs a wasted load.
    fn prefetch_event(&self, ev: &Ev) {
        match *ev {
            Ev::Deliver { link, to, .. } => self.prefetch_end(link, usize::from(to)),
            Ev::Sent { flow, .. } => prefetch(self.net.flow_address(flow)),
            _ => {}
        }
    }

    /// Prefetches the hot lines of end `side` of `link` and the first line of the other end.
    fn prefetch_end(&self, link: LinkIdx, side: usize) {
        // `Option<Link>` keeps its payload at offset 0 (the niche is in the link's vectors;
        // a test checks it).
        let base = self.links.as_ptr().wrapping_add(link as usize) as usize;
        let ends = base + std::mem::offset_of!(Link, ends);
        let end = ends + side * std::mem::size_of::<End>();
        prefetch(end);
        prefetch(end + std::mem::offset_of!(End, down));
        let conn = end + std::mem::offset_of!(End, conn);
        for line in 0..3 {
            prefetch(conn + 64 * line);
        }
        prefetch(ends + (1 - side) * std::mem::size_of::<End>());
    }

    /// Prefetches what the next event will touch beyond what [`Sim::prefetch_event`] loaded
    /// one event earlier, reading that. For a delivery: the receiving peer's [`Peer`] and
    /// [`Live`] (the picker's fields) from the addresses the end holds ([`Hints`]), and for a
    /// message that names a piece the picker's records of it and its bit in the connection's
    /// record of the other end's pieces. For a unit sent: the sending end and both hosts.
    fn prefetch_deep(&self, ev: &Ev) {
        let (link, to, msgs) = match ev {
            Ev::Deliver { link, to, msgs, .. } => (*link, usize::from(*to), msgs),
            Ev::Sent { flow, .. } => {
                // A queued completion always names a flow that exists (flows are reused, never
                // removed).
                let f = self.net.flow(*flow);
                self.prefetch_end(f.link, usize::from(f.side));
                prefetch(self.net.host_address(f.sender));
                prefetch(self.net.host_address(f.receiver));
                return;
            }
            _ => return,
        };
        let Some(link) = self.links[link as usize].as_ref() else {
            return;
        };
        let end = &link.ends[to];
        prefetch(self.peers.as_ptr().wrapping_add(end.peer as usize) as usize);
        for line in 0..6 {
            prefetch(end.hints.live + 64 * line);
        }
        let piece = match msgs {
            Batch::One(Message::Have(piece)) | Batch::One(Message::Piece { piece, .. }) => *piece,
            Batch::One(Message::Request(b)) => b.piece,
            _ => return,
        };
        prefetch(end.conn.their_have().byte_address(piece));
        for a in end.hints.lines.of(piece) {
            prefetch(a);
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
        let picker = Picker::new(
            self.units.geometry,
            PickerConfig {
                strategy: cfg.picker,
                ..PickerConfig::default()
            },
            &mut self.rng,
        );
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
                picker,
                choker: Choker::new(self.peer_choker()),
                links: Vec::new(),
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
        let now = duration(self.now);
        let hints = |peer: PeerIdx| {
            self.live(peer).map_or(Hints::default(), |live| Hints {
                live: live as *const Live as usize,
                lines: live.picker.piece_lines(),
            })
        };
        let end = |peer| End {
            peer,
            hints: hints(peer),
            conn: Connection::new(self.conn_cfg.clone(), self.units.geometry, now),
            up: RateMeter::new(now),
            down: RateMeter::new(now),
            connected_at: now,
            last_block_at: None,
            rtt: duration(2 * one_way),
            flow: None,
            sending: None,
            wanted: 0,
        };
        let link = Link {
            one_way,
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

    fn on_connect(&mut self, l: LinkIdx) {
        let now = duration(self.now);
        let link = self.links[l as usize].as_mut().expect("checked");
        for side in 0..2 {
            let end = &mut link.ends[side];
            let live = self.peers[end.peer as usize]
                .live
                .as_deref()
                .expect("linked peers are live");
            end.conn
                .on_handshake(&self.handshake, live.picker.have(), now);
            end.connected_at = now;
            self.dirty.push((l, side as u8));
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
        for side in 0..2 {
            let end = &link.ends[side];
            let remote = link.ends[1 - side].peer;
            let Some(live) = self.peers[end.peer as usize].live.as_deref_mut() else {
                continue;
            };
            live.picker.peer_left(remote, end.conn.their_have());
            live.choker.peer_left(&remote);
            if let Some(i) = live.links.iter().position(|&x| x == l) {
                live.links.remove(i);
            }
            // Released requests go to the other connections now.
            if !end.conn.outstanding().is_empty() {
                self.refill_others(end.peer, l);
            }
        }
    }

    /// Requests of `p` were released (rejected, dropped by a choke, or their connection
    /// closed): its connections other than `except` may ask for them now (mirrors
    /// `Session::refill_others`).
    fn refill_others(&mut self, p: PeerIdx, except: LinkIdx) {
        let Some(live) = self.live(p) else {
            return;
        };
        if live.picker.is_complete() {
            return;
        }
        let others = live.links.clone();
        for o in others {
            if o != except {
                let s = self.side(o, p);
                self.fill_requests(o, s);
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
        peer.live = None;
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
        live.choker.set_seeding(true);
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
        let Some(live) = self.live(p) else {
            return;
        };
        let now_d = duration(self.now);
        let free_rider = self.peers[p as usize].free_rider;
        if !free_rider && live.choker.next_round_due(now_d) {
            self.choke_round(p);
        }
        let live = self.live(p).expect("live");
        let complete = live.picker.is_complete();
        if self.cfg.mode == Mode::Swarm
            && p != ORIGIN
            && !complete
            && self.now - live.last_announce >= nanos(REANNOUNCE_INTERVAL)
            && self.starving(live)
        {
            self.make_room(p);
            self.announce(p);
        }
        let live = self.live(p).expect("live");
        if !complete {
            let links = live.links.clone();
            for l in links {
                let s = self.side(l, p);
                self.fill_requests(l, s);
            }
        }
        let live = self.live(p).expect("live");
        let next = live
            .choker
            .next_round_at()
            .map_or(self.now + nanos(CHOKE_INTERVAL), nanos)
            .max(self.now + SECOND);
        self.queue.push(next, Ev::Tick { peer: p });
    }

    /// Whether a leecher needs more peers: fewer than half its connection limit, or some
    /// piece it lacks is held by none of its peers.
    fn starving(&self, live: &Live) -> bool {
        if live.links.len() < (self.cfg.max_peers as usize / 2).max(1) {
            return true;
        }
        let picker = &live.picker;
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
        let useless: Vec<LinkIdx> = live
            .links
            .iter()
            .copied()
            .filter(|&l| {
                self.links[l as usize].as_ref().is_some_and(|x| {
                    let e = &x.ends[x.side_of(p)];
                    e.conn.is_handshaken() && !e.conn.am_interested() && !e.conn.peer_interested()
                })
            })
            .collect();
        for l in useless {
            self.close_link(l);
        }
    }

    // ---- messages (mirrors Session::on_message) ----

    fn flush(&mut self) {
        let now = duration(self.now);
        let mut dirty = std::mem::take(&mut self.dirty);
        for &(l, side) in &dirty {
            let Some(link) = self.links[l as usize].as_mut() else {
                continue;
            };
            let gen = self.link_gen[l as usize];
            let at = self.now + link.one_way;
            let conn = &mut link.ends[side as usize].conn;
            let Some(first) = conn.poll_message(now) else {
                continue;
            };
            let msgs = match conn.poll_message(now) {
                None => Batch::One(first),
                Some(second) => {
                    let mut v = vec![first, second];
                    v.extend(std::iter::from_fn(|| conn.poll_message(now)));
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

    /// The peer at end `side` of `l` and that end.
    fn parts(&mut self, l: LinkIdx, side: usize) -> Option<(&mut Live, &mut End)> {
        let end = &mut self.links[l as usize].as_mut()?.ends[side];
        let live = self.peers[end.peer as usize].live.as_deref_mut()?;
        Some((live, end))
    }

    fn on_message(&mut self, l: LinkIdx, to: usize, msg: Message) {
        let now = duration(self.now);
        let key = match self.links[l as usize].as_ref() {
            Some(link) => link.ends[1 - to].peer,
            None => return,
        };
        let Some((live, end)) = self.parts(l, to) else {
            return;
        };
        let p = end.peer;
        if let Some(sample) = end.conn.request_age(&msg, now) {
            end.rtt = (end.rtt * 7 + sample) / 8;
        }
        let event = match end.conn.on_message(msg, live.picker.have(), now) {
            Ok(e) => e,
            Err(_) => {
                // Cannot happen between two engine state machines; drop the peer as the
                // session would.
                self.close_link(l);
                return;
            }
        };
        self.dirty.push((l, to as u8));
        match event {
            None => {}
            Some(Event::Availability) => {
                let ok = self.parts(l, to).is_some_and(|(live, end)| {
                    end.wanted = live.picker.missing_from(end.conn.their_have());
                    live.picker
                        .peer_bitfield(key, end.conn.their_have())
                        .is_ok()
                });
                if !ok {
                    self.close_link(l);
                    return;
                }
                self.update_interest(l, to);
                self.fill_requests(l, to);
            }
            Some(Event::Have(piece)) => {
                // A `have` can only make the peer interesting, and only for a piece we lack
                // (interest is brought up to date after every change of either bitfield), so
                // `update_interest`'s scan is needed only then.
                let may_interest = self.parts(l, to).is_some_and(|(live, end)| {
                    let _ = live.picker.peer_have(key, piece);
                    if live.picker.have().has(piece) {
                        return false;
                    }
                    end.wanted += 1;
                    !end.conn.am_interested()
                });
                if may_interest {
                    self.update_interest(l, to);
                }
                if let Some((live, end)) = self.parts(l, to) {
                    debug_assert_eq!(
                        end.conn.am_interested(),
                        !live.picker.is_complete()
                            && live.picker.is_interesting(end.conn.their_have())
                    );
                }
                self.fill_requests(l, to);
            }
            Some(Event::Unchoked) | Some(Event::AllowedFast(_)) => self.fill_requests(l, to),
            Some(Event::Choked { dropped }) => {
                if let Some((live, _)) = self.parts(l, to) {
                    for &b in &dropped {
                        live.picker.request_rejected(b, key);
                    }
                }
                if !dropped.is_empty() {
                    self.refill_others(p, l);
                }
            }
            Some(Event::Rejected(b)) => {
                if let Some((live, _)) = self.parts(l, to) {
                    live.picker.request_rejected(b, key);
                }
                self.fill_requests(l, to);
                self.refill_others(p, l);
            }
            Some(Event::Block { block, .. }) => self.on_block(l, to, block),
            Some(Event::RequestQueued(_)) => self.start_send(l, to),
            Some(Event::Interested) => {
                let free_rider = self.peers[p as usize].free_rider;
                // As `Session`: unchoked peers that lost interest since hold no slot.
                let room = self.live(p).is_some_and(|live| {
                    live.choker.has_free_slot(|&k| {
                        live.links.iter().any(|&x| {
                            self.links[x as usize].as_ref().is_some_and(|link| {
                                let s = link.side_of(p);
                                let end = &link.ends[s];
                                link.ends[1 - s].peer == k
                                    && end.conn.peer_interested()
                                    && !end.conn.their_have().is_full()
                            })
                        })
                    })
                });
                if !free_rider && room {
                    self.choke_round(p);
                }
            }
            Some(_) => {}
        }
    }

    fn on_block(&mut self, l: LinkIdx, to: usize, block: BlockRef) {
        let now = duration(self.now);
        let len = self.units.real_bytes(block);
        let link = self.links[l as usize].as_mut().expect("checked");
        let key = link.ends[1 - to].peer;
        let end = &mut link.ends[to];
        let p = end.peer;
        end.down.record(len, now);
        end.last_block_at = Some(now);
        let peer = &mut self.peers[p as usize];
        peer.bytes_down += len;
        let live = peer.live.as_deref_mut().expect("live");
        let received = live.picker.block_received(block, key);
        for other in received.cancel {
            let found = live.links.iter().copied().find(|&o| {
                self.links[o as usize]
                    .as_ref()
                    .is_some_and(|x| x.ends[1 - x.side_of(p)].peer == other)
            });
            if let Some(o) = found {
                let x = self.links[o as usize].as_mut().expect("found");
                let s = x.side_of(p);
                x.ends[s].conn.cancel(block);
                self.dirty.push((o, s as u8));
            }
        }
        if !received.fresh {
            self.wasted += len;
            self.fill_requests(l, to);
            return;
        }
        if received.piece_complete {
            self.piece_complete(p, block.piece);
        }
        self.fill_requests(l, to);
    }

    /// Every block of `piece` arrived; in the simulator it always verifies.
    fn piece_complete(&mut self, p: PeerIdx, piece: u32) {
        let live = self.peers[p as usize].live.as_deref_mut().expect("live");
        live.picker.piece_verified(piece);
        let links = std::mem::take(&mut live.links);
        // Read every connection's record of the other end's pieces first, in a loop without
        // stores: the cache misses of the connections (about ten) then overlap instead of
        // coming one after another in the loop below.
        let mut theirs = 0u32;
        for &l in &links {
            if let Some(link) = self.links[l as usize].as_ref() {
                let end = &link.ends[link.side_of(p)];
                theirs += u32::from(end.conn.their_have().has(piece) && end.wanted > 0);
            }
        }
        std::hint::black_box(theirs);
        for &l in &links {
            let Some(link) = self.links[l as usize].as_mut() else {
                continue;
            };
            let s = link.side_of(p);
            let end = &mut link.ends[s];
            let ours = self.peers[p as usize]
                .live
                .as_deref()
                .expect("live")
                .picker
                .have();
            if end.conn.have(piece, ours) {
                self.dirty.push((l, s as u8));
            }
            // Our new piece can only cost interest, and only in a peer that has it.
            let theirs_too = end.conn.their_have().has(piece);
            if theirs_too {
                end.wanted -= 1;
            }
            let recheck = theirs_too && end.conn.am_interested();
            if recheck {
                self.update_interest(l, s);
            }
        }
        let live = self.peers[p as usize].live.as_deref_mut().expect("live");
        live.links = links;
        if live.picker.is_complete() {
            self.on_complete(p);
        }
    }

    fn update_interest(&mut self, l: LinkIdx, side: usize) {
        let Some(link) = self.links[l as usize].as_mut() else {
            return;
        };
        let end = &mut link.ends[side];
        let Some(live) = self.peers[end.peer as usize].live.as_deref() else {
            return;
        };
        let interested = !live.picker.is_complete() && end.wanted > 0;
        debug_assert_eq!(
            interested,
            !live.picker.is_complete() && live.picker.is_interesting(end.conn.their_have())
        );
        if interested != end.conn.am_interested() {
            end.conn.set_interested(interested);
            self.dirty.push((l, side as u8));
        }
    }

    /// Tops up the requests outstanding on one connection (mirrors `Session::fill_requests`).
    fn fill_requests(&mut self, l: LinkIdx, side: usize) {
        let now = duration(self.now);
        let Some(link) = self.links[l as usize].as_mut() else {
            return;
        };
        let key = link.ends[1 - side].peer;
        let end = &mut link.ends[side];
        let Some(live) = self.peers[end.peer as usize].live.as_deref_mut() else {
            return;
        };
        if live.picker.is_complete() || !end.conn.is_handshaken() {
            return;
        }
        if end.conn.peer_choking() && end.conn.their_allowed_fast().is_empty() {
            return;
        }
        // The meter counts real bytes; the pipeline is sized in units.
        let rate = end.down.rate(now) * u64::from(BLOCK_SIZE) / self.units.unit_bytes.max(1);
        let reqq = end.conn.their_reqq();
        let depth = pipeline_depth(rate, end.rtt.max(Duration::from_millis(20)), reqq);
        let want = (depth as usize)
            .saturating_sub(end.conn.outstanding().len())
            .min(end.conn.request_capacity());
        if want == 0 {
            return;
        }
        self.picks.clear();
        live.picker.pick_into(
            key,
            end.conn.their_have(),
            want,
            &mut self.rng,
            &mut self.picks,
        );
        let mut any = false;
        for &b in &self.picks {
            if end.conn.request(b, now).is_ok() {
                any = true;
            } else {
                live.picker.request_rejected(b, key);
            }
        }
        if any {
            self.dirty.push((l, side as u8));
        }
    }

    /// Runs a choke round for `p` and applies it (mirrors `Session::choke_round`).
    fn choke_round(&mut self, p: PeerIdx) {
        let now = duration(self.now);
        let Some(live) = self.peers[p as usize].live.as_deref_mut() else {
            return;
        };
        self.snaps.clear();
        self.snap_links.clear();
        for &l in &live.links {
            let Some(link) = self.links[l as usize].as_ref() else {
                continue;
            };
            let s = link.side_of(p);
            let end = &link.ends[s];
            if !end.conn.is_handshaken() {
                continue;
            }
            self.snaps.push(PeerSnapshot {
                key: link.ends[1 - s].peer,
                interested: end.conn.peer_interested(),
                connected_at: end.connected_at,
                upload_rate: end.up.rate(now),
                download_rate: end.down.rate(now),
                last_block_at: end.last_block_at,
                is_seed: end.conn.their_have().is_full(),
            });
            self.snap_links.push(l);
        }
        let changes = live.choker.round(now, &self.snaps, &mut self.rng);
        for (keys, unchoke) in [(changes.unchoke, true), (changes.choke, false)] {
            for k in keys {
                let Some(i) = self.snaps.iter().position(|s| s.key == k) else {
                    continue;
                };
                let l = self.snap_links[i];
                let link = self.links[l as usize].as_mut().expect("live link");
                let s = link.side_of(p);
                if unchoke {
                    link.ends[s].conn.unchoke();
                } else {
                    link.ends[s].conn.choke();
                }
                self.dirty.push((l, s as u8));
            }
        }
    }

    // ---- data ----

    /// The next queued request this end can serve.
    fn next_request(&mut self, l: LinkIdx, side: usize) -> Option<BlockRef> {
        let now = duration(self.now);
        let link = self.links[l as usize].as_mut()?;
        let end = &mut link.ends[side];
        let live = self.peers[end.peer as usize].live.as_deref()?;
        while let Some(b) = end.conn.pop_request(now) {
            if live.picker.have().has(b.piece) {
                return Some(b);
            }
        }
        None
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
        end.up.record(bytes, now);
        let sender = end.peer;
        self.peers[sender as usize].bytes_up += bytes;
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
                .map(|l| l.picker.have()),
        );
        self.timeline.push(TimelineRow {
            t_s: t,
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

    fn report(self) -> Report {
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
