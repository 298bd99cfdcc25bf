//! The simulated origin seed chokes and super-seeds with the engine's own sans-IO code
//! (`swarm::Choker` with `--unchoke-slots auto|N|unlimited`, `swarm::SuperSeed`), as
//! `seedbox seed` does. Run in release mode: `cargo test --release --test sim_origin`.

use std::time::Duration;

use seedbox::sim::{self, PeerClass, Phase, SimConfig};
use seedbox::swarm::Slots;

const MBIT: u64 = 125_000;

/// `count` arrivals `every` apart, the first at time zero.
fn fixed(count: u32, every: Duration) -> Phase {
    Phase {
        per_second: 1.0 / every.as_secs_f64(),
        duration: every * count,
        fixed: true,
    }
}

/// A 100 Mbit/s origin and 40 peers of 5 Mbit/s each way arriving within 4 s: with 4 + 1
/// slots the origin can fill only a quarter of its uplink.
fn big_origin(slots: Slots) -> SimConfig {
    SimConfig {
        size: 32 << 20,
        piece_length: 256 * 1024,
        seed_up: 100 * MBIT,
        classes: vec![PeerClass {
            weight: 1.0,
            down: 5 * MBIT,
            up: 5 * MBIT,
        }],
        arrivals: vec![fixed(40, Duration::from_millis(100))],
        unchoke_slots: slots,
        rng_seed: 3,
        ..SimConfig::default()
    }
}

#[test]
fn auto_is_the_default_and_opens_more_slots_than_four_while_the_origin_has_room() {
    assert_eq!(SimConfig::default().unchoke_slots, Slots::Auto);
    assert_eq!(SimConfig::default().peer_unchoke_slots, Slots::Limited(4));
    let auto = sim::run(&big_origin(Slots::Auto)).unwrap();
    let four = sim::run(&big_origin(Slots::Limited(4))).unwrap();
    for r in [&auto, &four] {
        assert_eq!(r.unfinished, 0, "{}", r.summary());
    }
    assert_eq!(auto.origin.unchoke_slots, "auto");
    assert!(auto.origin.seed_default);
    assert_eq!(four.origin.unchoke_slots, "4");
    assert!(!four.origin.seed_default);
    // 4 regular slots and one optimistic: never more than 5 unchoked.
    assert!(four.origin.unchoked_max <= 5, "{}", four.summary());
    assert!(
        auto.origin.unchoked_max > 5 && auto.origin.unchoked_mean > four.origin.unchoked_mean,
        "auto {:?}\n4 {:?}",
        auto.origin,
        four.origin
    );
    assert!(
        auto.origin.utilisation_mean > four.origin.utilisation_mean * 1.5,
        "auto {:?}\n4 {:?}",
        auto.origin,
        four.origin
    );
    assert!(
        auto.total.mean_s.unwrap() < four.total.mean_s.unwrap(),
        "auto\n{}\n4\n{}",
        auto.summary(),
        four.summary()
    );
    assert!(auto.summary().contains(
        "origin: --unchoke-slots auto (seedbox seed's default; its uplink as --max-upload-rate)"
    ));
    assert!(auto.to_json().contains("\"unchoke_slots\": \"auto\""));
    // Unlimited unchokes everyone who wants data.
    let all = sim::run(&big_origin(Slots::Unlimited)).unwrap();
    assert_eq!(all.origin.unchoke_slots, "unlimited");
    assert!(all.origin.unchoked_max > 20, "{:?}", all.origin);
}

/// Auto grows while the origin has room and growing helps: on a 5 Mbit/s origin that 4 + 1
/// peers of 5 Mbit/s fill it holds near 4 (it spread the uplink over up to 19 before, which
/// is not faster), where a 100 Mbit/s origin unchokes many more; the runs are reproducible.
#[test]
fn auto_stops_growing_on_a_small_origin() {
    let small = |slots| SimConfig {
        seed_up: 5 * MBIT,
        ..big_origin(slots)
    };
    let small_run = sim::run(&small(Slots::Auto)).unwrap();
    let small_four = sim::run(&small(Slots::Limited(4))).unwrap();
    let big = sim::run(&big_origin(Slots::Auto)).unwrap();
    assert!(
        small_run.origin.unchoked_max <= 9,
        "{}",
        small_run.summary()
    );
    assert!(
        small_run.total.mean_s.unwrap() <= small_four.total.mean_s.unwrap(),
        "auto\n{}\n4\n{}",
        small_run.summary(),
        small_four.summary()
    );
    assert!(big.origin.unchoked_max >= 20, "{}", big.summary());
    assert_eq!(
        small_run.to_json(),
        sim::run(&small(Slots::Auto)).unwrap().to_json()
    );
}

/// `tests/super_seed_interop.rs`'s setting: 6 peers arriving 0.2 s apart, 4 MiB in 128
/// pieces from a 1 MB/s origin, peers leaving once complete.
fn release(super_seed: bool, seed: u64) -> SimConfig {
    SimConfig {
        size: 4 << 20,
        piece_length: 32 * 1024,
        seed_up: 1_000_000,
        classes: vec![PeerClass {
            weight: 1.0,
            down: 10_000 * MBIT,
            up: 100 * MBIT,
        }],
        arrivals: vec![fixed(6, Duration::from_millis(200))],
        rtt: (Duration::from_millis(1), Duration::from_millis(1)),
        super_seed,
        rng_seed: seed,
        ..SimConfig::default()
    }
}

/// As measured on real `seedbox get` processes (1.01x and 1.02x the file super-seeding,
/// 1.42x and 1.46x normally): the super-seed sends each piece about once.
#[test]
fn a_super_seeding_origin_serves_everyone_and_sends_each_piece_about_once() {
    let file = (4u64 << 20) as f64;
    for seed in 1..=3 {
        let s = sim::run(&release(true, seed)).unwrap();
        let n = sim::run(&release(false, seed)).unwrap();
        assert_eq!(s.unfinished, 0, "{}", s.summary());
        assert_eq!(n.unfinished, 0, "{}", n.summary());
        assert!(s.origin.super_seed && !n.origin.super_seed);
        assert!(s.summary().contains("super-seed on"), "{}", s.summary());
        let (s_files, n_files) = (
            s.total.origin_bytes as f64 / file,
            n.total.origin_bytes as f64 / file,
        );
        assert!(
            s_files < 1.2 && n_files > 1.3,
            "super {s_files}, normal {n_files}"
        );
        // Reproducible with the super-seed too.
        assert_eq!(
            s.to_json(),
            sim::run(&release(true, seed)).unwrap().to_json()
        );
    }
}

#[test]
fn super_seeding_needs_swarm_mode() {
    let cfg = SimConfig {
        mode: sim::Mode::ClientServer,
        ..release(true, 1)
    };
    assert!(sim::run(&cfg).is_err());
}
