use std::time::Duration;

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ss(pieces: u32) -> SuperSeed<u32> {
    SuperSeed::new(pieces, SuperSeedConfig::default())
}

fn woken(s: &mut SuperSeed<u32>) -> Vec<u32> {
    s.woken().collect()
}

#[test]
fn each_peer_is_shown_two_pieces_nobody_else_was_shown() {
    let mut s = ss(10);
    s.add_peer(1);
    s.add_peer(2);
    assert_eq!(woken(&mut s), vec![1, 2]);
    let a = s.take_reveals(1);
    let b = s.take_reveals(2);
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    assert!(a.iter().all(|p| !b.contains(p)), "{a:?} {b:?}");
    assert_ne!(a[0], a[1]);
    assert!(s.take_reveals(1).is_empty(), "reveals are taken once");
    assert_eq!(s.reveals(), 4);
}

#[test]
fn a_piece_seen_at_another_peer_releases_the_next_one() {
    let mut s = ss(10);
    s.add_peer(1);
    s.add_peer(2);
    let a = s.take_reveals(1);
    s.take_reveals(2);
    woken(&mut s);
    // Peer 1 completes its first piece: peer 2 still lacks it, so it waits for it to spread.
    s.on_have(1, a[0], secs(1));
    assert!(woken(&mut s).is_empty());
    assert_eq!(s.current(1).len(), 2);
    // Peer 2 announces it: it spread, peer 1 is shown a new piece.
    s.on_have(2, a[0], secs(2));
    assert_eq!(woken(&mut s), vec![1]);
    let next = s.take_reveals(1);
    assert_eq!(next.len(), 1);
    assert!(!a.contains(&next[0]));
    assert!(!s.current(1).contains(&a[0]));
    assert!(s.told(1, a[0]), "a told piece stays told");
}

#[test]
fn the_rarest_piece_is_shown_first() {
    let mut s = ss(8);
    for (k, held) in [(1u32, &[0u32, 1, 2, 3][..]), (2, &[0, 1, 4]), (3, &[0, 5])] {
        s.add_peer(k);
        let mut have = Bitfield::new(8);
        for &p in held {
            have.set(p);
        }
        s.on_bitfield(k, &have, secs(0));
    }
    let score = |s: &SuperSeed<u32>, p: u32| s.availability[p as usize] + s.assigned[p as usize];
    let best = (0..8).map(|p| score(&s, p)).min().unwrap();
    s.add_peer(4);
    let shown = s.take_reveals(4);
    assert_eq!(shown.len(), 2);
    // Each was of the lowest score when it was picked (the second one's own pick raised it).
    assert_eq!(score(&s, shown[0]) - 1, best, "{shown:?}");
    assert!(
        shown.iter().all(|&p| p != 0),
        "the most common piece is never shown first"
    );
}

#[test]
fn the_last_leecher_is_not_kept_waiting() {
    let mut s = ss(10);
    s.add_peer(1);
    let a = s.take_reveals(1);
    woken(&mut s);
    s.on_have(1, a[0], secs(1));
    assert_eq!(woken(&mut s), vec![1], "nobody else to pass the piece to");
    assert_eq!(s.take_reveals(1).len(), 1);
}

#[test]
fn a_piece_that_does_not_spread_is_released_after_the_patience() {
    let mut s = ss(10);
    s.add_peer(1);
    s.add_peer(2);
    let a = s.take_reveals(1);
    s.take_reveals(2);
    woken(&mut s);
    s.on_have(1, a[0], secs(10));
    s.on_tick(secs(10) + SUPER_SEED_PATIENCE - Duration::from_millis(1));
    assert!(woken(&mut s).is_empty());
    s.on_tick(secs(10) + SUPER_SEED_PATIENCE);
    assert_eq!(woken(&mut s), vec![1]);
    assert_eq!(s.take_reveals(1).len(), 1);
}

#[test]
fn not_interested_means_the_told_pieces_are_held() {
    let mut s = ss(10);
    s.add_peer(1);
    s.add_peer(2);
    let a = s.take_reveals(1);
    s.take_reveals(2);
    woken(&mut s);
    s.on_not_interested(1, secs(5));
    // Both pieces count as held by peer 1 now: peer 2 announcing one releases it.
    s.on_have(2, a[1], secs(6));
    assert_eq!(woken(&mut s), vec![1]);
    s.on_tick(secs(5) + SUPER_SEED_PATIENCE);
    assert_eq!(
        s.take_reveals(1).len(),
        2,
        "the other one after the patience"
    );
}

#[test]
fn a_departure_returns_the_pieces_and_frees_the_waiting() {
    let mut s = ss(4);
    s.add_peer(1);
    s.add_peer(2);
    let a = s.take_reveals(1);
    let b = s.take_reveals(2);
    s.on_have(1, a[0], secs(1));
    woken(&mut s);
    s.remove_peer(2);
    // Peer 1 was waiting for a[0] to spread to peer 2, which left.
    assert_eq!(woken(&mut s), vec![1]);
    let next = s.take_reveals(1);
    assert_eq!(next.len(), 1);
    assert!(
        b.contains(&next[0]),
        "peer 2's pieces went back to the pool: {next:?} {b:?}"
    );
}

#[test]
fn seeds_are_shown_nothing_and_a_peer_that_completes_is_forgotten() {
    let mut s = ss(3);
    s.add_peer(1);
    s.take_reveals(1);
    s.on_bitfield(1, &Bitfield::full(3), secs(0));
    assert!(s.current(1).is_empty());
    s.add_peer(2);
    let b = s.take_reveals(2);
    assert_eq!(b.len(), 2);
    for p in 0..3 {
        s.on_have(2, p, secs(1));
    }
    assert!(s.current(2).is_empty());
    s.take_reveals(2);
    s.on_tick(secs(100));
    assert!(s.take_reveals(2).is_empty());
}

#[test]
fn a_peer_told_everything_it_lacks_is_shown_nothing_more() {
    let mut s = ss(2);
    s.add_peer(1);
    assert_eq!(s.take_reveals(1).len(), 2);
    s.on_have(1, 0, secs(1));
    assert!(s.take_reveals(1).is_empty());
}

/// A round-based swarm: each round every leecher takes one piece, from another leecher with
/// upload to spare (each sends one piece a round) when one has a piece it lacks, else from the
/// origin (one piece a round) among the pieces it was told of. Returns the rounds until every
/// leecher completed and the origin's uploads. Without `super_seed` every leecher is told of
/// every piece (a normal seed).
fn swarm(pieces: u32, leechers: u32, super_seed: bool) -> (u64, u64) {
    let mut s = ss(pieces);
    let n = leechers as usize;
    let mut have: Vec<Bitfield> = (0..n).map(|_| Bitfield::new(pieces)).collect();
    let mut told: Vec<Bitfield> = (0..n).map(|_| Bitfield::new(pieces)).collect();
    for k in 0..leechers {
        s.add_peer(k);
    }
    let mut origin = 0;
    for round in 1..100_000u64 {
        let now = secs(round);
        for k in s.woken().collect::<Vec<_>>() {
            for p in s.take_reveals(k) {
                told[k as usize].set(p);
            }
        }
        if !super_seed {
            told.fill(Bitfield::full(pieces));
        }
        let mut got = Vec::new();
        let mut busy = vec![false; n];
        let mut origin_busy = false;
        for i in 0..n {
            let k = (i + round as usize) % n;
            if have[k].is_full() {
                continue;
            }
            let from_peer = (0..pieces).find_map(|p| {
                let j = (0..n).find(|&j| !busy[j] && !have[k].has(p) && have[j].has(p))?;
                Some((j, p))
            });
            if let Some((j, p)) = from_peer {
                busy[j] = true;
                got.push((k, p));
            } else if !origin_busy {
                if let Some(p) = (0..pieces).find(|&p| !have[k].has(p) && told[k].has(p)) {
                    origin_busy = true;
                    origin += 1;
                    got.push((k, p));
                }
            }
        }
        for (k, p) in got {
            have[k].set(p);
            s.on_have(k as u32, p, now);
        }
        s.on_tick(now);
        if have.iter().all(Bitfield::is_full) {
            return (round, origin);
        }
    }
    panic!("the swarm never completed");
}

#[test]
fn a_swarm_completes_with_the_origin_sending_each_piece_about_once() {
    for (pieces, leechers) in [(40, 5), (64, 2), (16, 12), (3, 6), (100, 20)] {
        let (rounds, origin) = swarm(pieces, leechers, true);
        let (normal_rounds, normal) = swarm(pieces, leechers, false);
        eprintln!(
            "{pieces} pieces, {leechers} leechers: origin {origin} in {rounds} rounds \
             (normal seed: {normal} in {normal_rounds})"
        );
        // Two pieces are shown to each leecher at first: with more than half as many
        // leechers as pieces some are shown twice.
        let bound = (u64::from(pieces) * 5 / 4).max(2 * u64::from(leechers));
        assert!(
            origin <= bound && origin <= normal,
            "{pieces} pieces, {leechers} leechers: the origin sent {origin} (normal {normal})"
        );
    }
}
