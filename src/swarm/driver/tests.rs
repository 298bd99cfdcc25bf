//! Drivers exchanging messages in memory on a virtual clock: two-sided behaviour (choking,
//! end game, rejects, `have` suppression, bans) without sockets, Python or the simulator.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::metainfo::InfoHash;
use crate::protocol::{PeerId, Reserved};
use crate::swarm::{PickerConfig, PieceGeometry, Slots};

const ONE_WAY: Duration = Duration::from_millis(25);

/// A message from one driver to another: sent at `at - ONE_WAY`, delivered at `at`.
struct InFlight {
    at: Duration,
    from: usize,
    to: usize,
    msg: Message,
}

/// Drivers `0..n` on a lossless network with a fixed one-way delay. Every message sent is
/// logged.
struct Pair {
    drivers: Vec<Driver>,
    /// `keys[i][j]`: the key driver `i` gave driver `j`.
    keys: Vec<Vec<Option<PeerKey>>>,
    now: Duration,
    next_tick: Duration,
    wire: VecDeque<InFlight>,
    log: Vec<(usize, usize, Message)>,
    /// A driver that corrupts the blocks it serves of these pieces (all when `None`).
    bad_sender: Option<usize>,
    bad_pieces: Option<Vec<u32>>,
    /// What each driver stored, per block.
    stored: Vec<HashMap<BlockRef, Bytes>>,
    geometry: PieceGeometry,
}

/// The torrent's content of `block`: bytes that differ from block to block.
fn content(block: BlockRef) -> Bytes {
    let seed = block.piece.wrapping_mul(2_654_435_761) ^ block.offset;
    (0..block.length)
        .map(|i| (seed.wrapping_add(i).wrapping_mul(31) >> 3) as u8)
        .collect()
}

fn digest(data: &[u8]) -> BlockDigest {
    use sha1::{Digest, Sha1};
    Sha1::digest(data).into()
}

fn address(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 6881))
}

fn handshake() -> Handshake {
    let mut h = Handshake::new(InfoHash([1; 20]), PeerId([2; 20]));
    h.reserved = Reserved::default().with_fast(true);
    h
}

impl Pair {
    /// One driver per entry: a seed (`true`) or an empty leecher, with `slots` upload slots
    /// and no optimistic unchoke.
    fn new(geometry: PieceGeometry, seeds: &[bool], slots: Slots) -> Pair {
        Pair::with_seed(geometry, seeds, slots, 7)
    }

    /// [`Pair::new`] with the drivers' random choices drawn from `seed`.
    fn with_seed(geometry: PieceGeometry, seeds: &[bool], slots: Slots, seed: u64) -> Pair {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let drivers = seeds
            .iter()
            .map(|&seed| {
                let mut picker = Picker::new(geometry, PickerConfig::default(), &mut rng);
                if seed {
                    for p in 0..geometry.piece_count() {
                        picker.piece_verified(p);
                    }
                }
                let connection = ConnectionConfig {
                    reserved: Reserved::default().with_fast(true),
                    ..ConnectionConfig::default()
                };
                let choker = ChokerConfig {
                    slots,
                    optimistic: false,
                };
                let rng = ChaCha8Rng::seed_from_u64(rand::Rng::gen(&mut rng));
                Driver::new(DriverConfig::network(connection, choker), picker, rng)
            })
            .collect();
        Pair {
            drivers,
            keys: vec![vec![None; seeds.len()]; seeds.len()],
            now: Duration::ZERO,
            next_tick: TICK,
            wire: VecDeque::new(),
            log: Vec::new(),
            bad_sender: None,
            bad_pieces: None,
            stored: vec![HashMap::new(); seeds.len()],
            geometry,
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        let now = self.now;
        let rtt = 2 * ONE_WAY;
        self.keys[a][b] = Some(self.drivers[a].add_peer(address(b), &handshake(), rtt, now));
        self.keys[b][a] = Some(self.drivers[b].add_peer(address(a), &handshake(), rtt, now));
    }

    /// Who driver `i` knows as `key`.
    fn remote(&self, i: usize, key: PeerKey) -> usize {
        let j = self.keys[i].iter().position(|&k| k == Some(key));
        j.expect("a connected key")
    }

    /// What driver `i` keeps about driver `j`.
    fn peer(&self, i: usize, j: usize) -> Option<&Peer> {
        self.drivers[i].peer(self.keys[i][j]?)
    }

    /// Carries out every driver's effects: messages and blocks go on the wire.
    fn pump(&mut self) {
        let now = self.now;
        for i in 0..self.drivers.len() {
            while let Some(effect) = self.drivers[i].poll_effect() {
                match effect {
                    Effect::Transmit(k) => self.transmit(i, self.remote(i, k)),
                    Effect::Verify(piece) => {
                        let blocks: Vec<Bytes> = self
                            .geometry
                            .blocks(piece)
                            .map(|b| self.stored[i][&b].clone())
                            .collect();
                        let good = self
                            .geometry
                            .blocks(piece)
                            .zip(&blocks)
                            .all(|(b, data)| *data == content(b));
                        let digests: Vec<BlockDigest> = blocks.iter().map(|d| digest(d)).collect();
                        let d = &mut self.drivers[i];
                        let wanted = d.wants_block_digests(piece, good);
                        d.on_piece_hashed(piece, good, wanted.then_some(&digests[..]), now);
                    }
                    Effect::Close(k) => self.disconnect(i, self.remote(i, k)),
                    Effect::Store { block, data } => {
                        self.stored[i].insert(block, data);
                    }
                    Effect::Completed | Effect::Extension(..) => {}
                }
            }
        }
    }

    fn transmit(&mut self, from: usize, to: usize) {
        let now = self.now;
        let Some(key) = self.keys[from][to] else {
            return;
        };
        let d = &mut self.drivers[from];
        let mut out = Vec::new();
        while let Some(msg) = d.poll_message(key, now) {
            out.push(msg);
        }
        while let Some(b) = d.next_upload(key, now) {
            d.on_uploaded(key, u64::from(b.length), now);
            let mut data = content(b).to_vec();
            let bad = self.bad_sender == Some(from)
                && match &self.bad_pieces {
                    None => true,
                    Some(p) => p.contains(&b.piece),
                };
            if bad {
                data[b.length as usize / 2] ^= 0x5a;
            }
            out.push(Message::Piece {
                piece: b.piece,
                offset: b.offset,
                data: Bytes::from(data),
            });
        }
        for msg in out {
            self.wire.push_back(InFlight {
                at: now + ONE_WAY,
                from,
                to,
                msg,
            });
        }
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        let now = self.now;
        for (x, y) in [(a, b), (b, a)] {
            if let Some(key) = self.keys[x][y].take() {
                self.drivers[x].on_peer_gone(key, now);
            }
        }
        self.wire
            .retain(|m| !(m.from == a && m.to == b || m.from == b && m.to == a));
    }

    /// Runs until `done` holds or `limit` of virtual time passes; false on the limit.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) -> bool {
        loop {
            self.pump();
            if done(self) {
                return true;
            }
            let next_msg = self.wire.front().map(|m| m.at);
            if next_msg.is_some_and(|at| at <= self.next_tick) {
                let m = self.wire.pop_front().expect("some");
                self.now = m.at;
                self.log.push((m.from, m.to, m.msg.clone()));
                let Some(key) = self.keys[m.to][m.from] else {
                    continue;
                };
                if self.drivers[m.to].on_message(key, m.msg, self.now).is_err() {
                    self.disconnect(m.to, m.from);
                }
            } else {
                self.now = self.next_tick;
                self.next_tick += TICK;
                for d in &mut self.drivers {
                    d.on_tick(self.now);
                }
            }
            if self.now > limit {
                return false;
            }
        }
    }

    fn sent(&self, from: usize, to: usize, what: impl Fn(&Message) -> bool) -> usize {
        self.log
            .iter()
            .filter(|(f, t, m)| *f == from && *t == to && what(m))
            .count()
    }
}

fn geometry(pieces: u32, blocks_per_piece: u32) -> PieceGeometry {
    let piece = blocks_per_piece * BLOCK_SIZE;
    PieceGeometry::new(piece, u64::from(pieces) * u64::from(piece))
}

#[test]
fn a_leecher_gets_everything_from_a_seed_and_announces_only_its_last_piece_to_it() {
    let mut pair = Pair::new(geometry(8, 2), &[true, false], Slots::Limited(4));
    pair.connect(0, 1);
    assert!(pair.run_until(Duration::from_secs(60), |p| p.drivers[1].is_complete()));
    let total = pair.geometry.total_length();
    assert_eq!(pair.drivers[1].totals().downloaded, total);
    assert_eq!(pair.drivers[0].totals().uploaded, total);
    assert_eq!(pair.drivers[1].totals().wasted, 0);
    pair.run_until(pair.now + Duration::from_secs(1), |_| false);
    // The seed has every piece: only the piece that completes the download is announced.
    let haves = pair.sent(1, 0, |m| matches!(m, Message::Have(_)));
    assert_eq!(haves, 1);
    // Complete, the leecher loses interest; the seed learns it.
    assert!(!pair.peer(1, 0).expect("connected").conn.am_interested());
    assert!(!pair.peer(0, 1).expect("connected").conn.peer_interested());
}

#[test]
fn a_seed_without_free_slots_keeps_a_leecher_choked() {
    let mut pair = Pair::new(geometry(4, 1), &[true, false], Slots::Limited(0));
    pair.connect(0, 1);
    assert!(!pair.run_until(Duration::from_secs(40), |p| p.drivers[1].have().count() > 0));
    let at_seed = pair.peer(0, 1).expect("connected");
    assert!(at_seed.conn.am_choking());
    assert!(at_seed.conn.peer_interested());
    assert!(pair.drivers[1]
        .peer(0)
        .expect("connected")
        .conn
        .am_interested());
    assert_eq!(pair.sent(1, 0, |m| matches!(m, Message::Request(_))), 0);
}

#[test]
fn one_slot_goes_to_one_leecher_at_a_time_and_passes_on_when_it_completes() {
    let mut pair = Pair::new(geometry(6, 1), &[true, false, false], Slots::Limited(1));
    pair.connect(0, 1);
    pair.connect(0, 2);
    let mut both_unchoked = false;
    let done = pair.run_until(Duration::from_secs(120), |p| {
        let unchoked = |k| p.peer(0, k).is_some_and(|x| !x.conn.am_choking());
        both_unchoked |= unchoked(1) && unchoked(2);
        p.drivers[1].is_complete() && p.drivers[2].is_complete()
    });
    assert!(done);
    assert!(!both_unchoked);
    // Each was unchoked once: the second when the first no longer wanted data.
    assert_eq!(pair.sent(0, 1, |m| matches!(m, Message::Unchoke)), 1);
    assert_eq!(pair.sent(0, 2, |m| matches!(m, Message::Unchoke)), 1);
}

#[test]
fn end_game_cancels_duplicates_and_fast_peers_reject_or_serve_what_was_cancelled() {
    let mut pair = Pair::new(geometry(3, 2), &[true, true, false], Slots::Limited(4));
    pair.connect(0, 2);
    pair.connect(1, 2);
    assert!(pair.run_until(Duration::from_secs(60), |p| p.drivers[2].is_complete()));
    // Let answers in flight land.
    pair.run_until(pair.now + Duration::from_secs(1), |_| false);
    let total = pair.geometry.total_length();
    let leecher = pair.drivers[2].totals();
    assert_eq!(leecher.downloaded, total);
    let cancels: Vec<(usize, BlockRef)> = pair
        .log
        .iter()
        .filter_map(|(f, t, m)| match m {
            Message::Cancel(b) if *f == 2 => Some((*t, *b)),
            _ => None,
        })
        .collect();
    assert!(
        !cancels.is_empty(),
        "the last blocks were asked of both seeds"
    );
    // Every cancelled request was answered anyway: rejected (Fast) or served (wasted).
    for (seed, b) in &cancels {
        let answered = pair.sent(*seed, 2, |m| match m {
            Message::RejectRequest(r) => r == b,
            Message::Piece { piece, offset, .. } => *piece == b.piece && *offset == b.offset,
            _ => false,
        });
        assert_eq!(answered, 1, "{b:?} at seed {seed}");
    }
    let served_twice = pair.sent(0, 2, |m| matches!(m, Message::Piece { .. }))
        + pair.sent(1, 2, |m| matches!(m, Message::Piece { .. }))
        - (pair.geometry.total_length() / u64::from(BLOCK_SIZE)) as usize;
    assert_eq!(leecher.wasted, served_twice as u64 * u64::from(BLOCK_SIZE));
}

#[test]
fn a_peer_whose_pieces_fail_twice_is_banned_and_its_pieces_fetched_elsewhere() {
    let mut pair = Pair::new(geometry(8, 1), &[true, true, false], Slots::Limited(4));
    pair.bad_sender = Some(0);
    pair.connect(0, 2);
    pair.connect(1, 2);
    assert!(pair.run_until(Duration::from_secs(60), |p| p.drivers[2].is_complete()));
    let leecher = &pair.drivers[2];
    assert!(leecher.is_banned(address(0)));
    assert!(!leecher.is_banned(address(1)));
    assert!(pair.peer(2, 0).is_none());
    assert_eq!(leecher.totals().banned, 1);
    assert!(leecher.totals().hash_failures >= 2);
    // Each failed piece's bytes count as wasted (every piece of geometry(8, 1) is whole).
    let piece_bytes = u64::from(leecher.picker().geometry().piece_size(0));
    assert!(leecher.totals().wasted >= leecher.totals().hash_failures * piece_bytes);
}

/// Runs the case: a good seed and a seed whose data is bad in 6 of 16 pieces of 4
/// blocks, pieces mixing blocks of both. Returns the leecher.
fn two_seeds_one_lying(seed: u64) -> Pair {
    let mut pair = Pair::with_seed(
        geometry(16, 4),
        &[true, true, false],
        Slots::Limited(4),
        seed,
    );
    pair.bad_sender = Some(0);
    pair.bad_pieces = Some(vec![1, 3, 5, 8, 13, 15]);
    pair.connect(0, 2);
    pair.connect(1, 2);
    let done = pair.run_until(Duration::from_secs(300), |p| p.drivers[2].is_complete());
    assert!(done, "seed {seed}: not complete");
    pair
}

#[test]
fn bad_data_is_blamed_on_its_sender_only_and_the_download_completes() {
    let mut mixed = 0;
    for seed in 0..20 {
        let pair = two_seeds_one_lying(seed);
        let leecher = &pair.drivers[2];
        assert!(
            !leecher.is_banned(address(1)),
            "seed {seed}: honest seed banned"
        );
        assert_eq!(leecher.strikes(address(1)), 0, "seed {seed}");
        assert!(leecher.totals().hash_failures >= 1, "seed {seed}");
        // The liar is banned once proven twice (its second bad piece, at the latest once
        // the pieces it spoiled verify from the good seed).
        assert!(
            leecher.is_banned(address(0)),
            "seed {seed}: liar not banned"
        );
        // Every stored block is the content.
        for (b, data) in &pair.stored[2] {
            if leecher.have().has(b.piece) {
                assert_eq!(*data, content(*b), "seed {seed}: {b:?}");
            }
        }
        // Some failed pieces had blocks of both seeds (the ambiguous case).
        let senders_of = |piece: u32| {
            let mut from: Vec<usize> = pair
                .log
                .iter()
                .filter(|(_, t, m)| {
                    *t == 2 && matches!(m, Message::Piece { piece: p, .. } if *p == piece)
                })
                .map(|(f, _, _)| *f)
                .collect();
            from.sort_unstable();
            from.dedup();
            from.len()
        };
        mixed += [1, 3, 5, 8, 13, 15]
            .iter()
            .filter(|&&p| senders_of(p) > 1)
            .count();
    }
    assert!(mixed > 0, "no run mixed the blocks of a bad piece");
}

#[test]
fn a_failed_piece_from_several_peers_strikes_nobody_and_is_fetched_from_one() {
    // One bad piece only: the honest seed is never struck.
    for seed in 0..20 {
        let mut pair = Pair::with_seed(
            geometry(8, 4),
            &[true, true, false],
            Slots::Limited(4),
            seed,
        );
        pair.bad_sender = Some(0);
        pair.bad_pieces = Some(vec![2]);
        pair.connect(0, 2);
        pair.connect(1, 2);
        assert!(pair.run_until(Duration::from_secs(300), |p| p.drivers[2].is_complete()));
        let leecher = &pair.drivers[2];
        assert_eq!(leecher.strikes(address(1)), 0, "seed {seed}");
        // One strike per bad download of it at most (a mixed one proven once the piece
        // verifies, one from the liar alone at its failure).
        let failures = leecher.totals().hash_failures;
        assert!(
            u64::from(leecher.strikes(address(0))) <= failures,
            "seed {seed}"
        );
        assert!(leecher.totals().banned <= 1, "seed {seed}");
        assert_eq!(
            pair.stored[2][&pair.geometry.block(2, 0)],
            content(pair.geometry.block(2, 0))
        );
        // After each failure of piece 2, its next blocks all came from one seed.
        let mut failures_seen = 0;
        let mut from: Vec<usize> = Vec::new();
        for (f, t, m) in &pair.log {
            if *t != 2 {
                continue;
            }
            if let Message::Piece { piece: 2, .. } = m {
                from.push(*f);
                if from.len() == 4 {
                    if failures_seen > 0 {
                        assert!(from.iter().all(|x| *x == from[0]), "seed {seed}: {from:?}");
                    }
                    failures_seen += 1;
                    from.clear();
                }
            }
        }
    }
}

#[test]
fn a_seed_holding_the_only_copy_is_not_banned_for_an_ambiguous_failure() {
    // The leecher got piece 0's blocks from a liar and an honest peer; the honest one is the
    // only holder of piece 1. One ambiguous failure must not cost it anything.
    let mut pair = Pair::new(geometry(2, 2), &[true, true, false], Slots::Limited(4));
    pair.bad_sender = Some(0);
    pair.bad_pieces = Some(vec![0]);
    pair.connect(0, 2);
    pair.connect(1, 2);
    let done = pair.run_until(Duration::from_secs(120), |p| p.drivers[2].is_complete());
    assert!(done);
    assert_eq!(pair.drivers[2].strikes(address(1)), 0);
    assert!(!pair.drivers[2].is_banned(address(1)));
}

#[test]
fn a_download_with_no_data_coming_is_stalled_and_one_with_data_is_not() {
    let mut pair = Pair::new(geometry(4, 1), &[true, false], Slots::Limited(0));
    pair.connect(0, 1);
    pair.run_until(Duration::from_secs(40), |_| false);
    assert!(pair.drivers[1].stalled_for(pair.now) >= Duration::from_secs(40));
    assert_eq!(pair.drivers[1].useful_peers(), 1);
    let mut pair = Pair::new(geometry(40, 1), &[true, false], Slots::Limited(4));
    pair.connect(0, 1);
    pair.run_until(Duration::from_secs(1), |p| {
        p.drivers[1].have().count() >= 20
    });
    assert!(pair.drivers[1].stalled_for(pair.now) < Duration::from_secs(1));
}

#[test]
fn blocks_that_never_make_a_verified_piece_are_no_progress() {
    // A liar sends fresh blocks of every piece, all bad: data keeps arriving, but nothing
    // verifies, so the download is stalled from its start on (it used to count from the last
    // fresh block, which a liar reconnecting now and then could keep resetting).
    let mut pair = Pair::new(geometry(8, 4), &[true, false], Slots::Limited(4));
    pair.bad_sender = Some(0);
    pair.connect(0, 1);
    pair.run_until(Duration::from_secs(40), |_| false);
    let leecher = &pair.drivers[1];
    assert!(leecher.totals().downloaded > 0, "the liar sent no block");
    assert!(leecher.totals().hash_failures > 0);
    assert_eq!(leecher.have().count(), 0);
    assert_eq!(leecher.stalled_for(pair.now), pair.now);
    // The first piece that verifies is progress.
    let mut pair = Pair::new(geometry(8, 4), &[true, false], Slots::Limited(4));
    pair.connect(0, 1);
    pair.run_until(Duration::from_secs(40), |p| {
        p.drivers[1].have().count() >= 1
    });
    assert!(pair.drivers[1].stalled_for(pair.now) < Duration::from_millis(1));
}

#[test]
fn a_super_seeding_driver_shows_nothing_then_two_pieces_and_its_leechers_complete() {
    let g = geometry(16, 1);
    let mut pair = Pair::new(g, &[true, false, false], Slots::Limited(4));
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut picker = Picker::new(g, PickerConfig::default(), &mut rng);
    for p in 0..g.piece_count() {
        picker.piece_verified(p);
    }
    let config = DriverConfig {
        super_seed: Some(crate::swarm::SuperSeedConfig::default()),
        ..DriverConfig::network(
            ConnectionConfig {
                reserved: Reserved::default().with_fast(true),
                ..ConnectionConfig::default()
            },
            ChokerConfig {
                slots: Slots::Limited(4),
                optimistic: false,
            },
        )
    };
    pair.drivers[0] = Driver::new(config, picker, rng);
    pair.connect(0, 1);
    pair.connect(0, 2);
    pair.connect(1, 2);
    // Before anything is delivered: have none, then two pieces, to each leecher.
    let d = &mut pair.drivers[0];
    let key = pair.keys[0][1].unwrap();
    let first: Vec<Message> = std::iter::from_fn(|| d.poll_message(key, Duration::ZERO)).collect();
    assert_eq!(first[0], Message::HaveNone, "{first:?}");
    let haves = first
        .iter()
        .filter(|m| matches!(m, Message::Have(_)))
        .count();
    assert_eq!(haves, 2, "{first:?}");
    for m in first {
        pair.wire.push_back(InFlight {
            at: ONE_WAY,
            from: 0,
            to: 1,
            msg: m,
        });
    }
    assert!(pair.run_until(Duration::from_secs(300), |p| {
        p.drivers[1].is_complete() && p.drivers[2].is_complete()
    }));
    for to in [1, 2] {
        let shown = pair.sent(0, to, |m| {
            matches!(m, Message::HaveAll | Message::Bitfield(_))
        });
        assert_eq!(shown, 0, "a super-seed never shows all its pieces");
    }
    // Each piece leaves the origin about once: the leechers trade the rest.
    let total = g.total_length();
    let sent = pair.drivers[0].totals().uploaded;
    assert!(sent < total * 3 / 2, "origin sent {sent} of {total}");
    assert!(pair.drivers[0].super_seed().unwrap().reveals() >= 16);
}
