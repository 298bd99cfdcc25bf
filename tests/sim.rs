//! The simulator against queueing theory, its determinism, and the protocol effects it must
//! reproduce (rarest first vs sequential, tit-for-tat vs free riders). Run in release mode:
//! `cargo test --release --test sim`.

use std::time::Duration;

use seedbox::sim::{self, ChokerKind, Mode, PeerClass, Phase, Report, SimConfig};
use seedbox::swarm::Strategy;

const MBIT: u64 = 125_000;

fn phase(per_minute: f64, hours: f64) -> Phase {
    Phase {
        per_second: per_minute / 60.0,
        duration: Duration::from_secs_f64(hours * 3600.0),
        fixed: false,
    }
}

/// The lecture's client-server setting: 10^6 bytes from a 1 Mbit/s origin, clients with
/// downlinks far above the origin's share so the origin is the only bottleneck.
fn client_server(per_minute: f64, hours: f64, seed: u64) -> SimConfig {
    SimConfig {
        mode: Mode::ClientServer,
        size: 1_000_000,
        seed_up: MBIT,
        classes: vec![PeerClass {
            weight: 1.0,
            down: 100 * MBIT,
            up: MBIT,
        }],
        arrivals: vec![phase(per_minute, hours)],
        rtt: (Duration::from_millis(2), Duration::from_millis(10)),
        rng_seed: seed,
        ..SimConfig::default()
    }
}

fn mean_against_ps(per_minute: f64, hours: f64) {
    let cfg = client_server(per_minute, hours, 11);
    let r = sim::run(&cfg).unwrap();
    let service = 8.0; // 8 Mbit at 1 Mbit/s
    let rho = per_minute / 60.0 * service;
    let expected = service / (1.0 - rho);
    let t = &r.total;
    assert!(t.arrivals >= 20_000, "only {} arrivals", t.arrivals);
    assert_eq!(t.completions, t.arrivals);
    let mean = t.mean_s.unwrap();
    let err = (mean - expected).abs() / expected;
    assert!(
        err < 0.10,
        "load {rho}: simulated mean {mean:.2} s, M/G/1-PS {expected:.2} s ({:.1}% off)",
        err * 100.0
    );
    // Everything came from the origin.
    assert_eq!(t.origin_bytes, t.arrivals * 1_000_000);
    assert_eq!(t.share_ratio, 0.0);
}

#[test]
fn client_server_is_processor_sharing_at_load_0_8() {
    // 6/min for 60 h: about 21,600 arrivals, mean 8 / (1 - 0.8) = 40 s.
    mean_against_ps(6.0, 60.0);
}

#[test]
fn client_server_is_processor_sharing_at_load_0_4() {
    // 3/min for 120 h: about 21,600 arrivals, mean 8 / (1 - 0.4) = 13.3 s.
    mean_against_ps(3.0, 120.0);
}

#[test]
fn client_server_overload_grows_without_bound() {
    // 12/min is load 1.6: late arrivals of the surge wait far longer than early ones.
    let mut cfg = client_server(6.0, 1.0, 3);
    cfg.arrivals.push(phase(12.0, 1.0));
    let r = sim::run(&cfg).unwrap();
    let surge = &r.phases[1];
    assert!(surge.max_s.unwrap() > 10.0 * r.phases[0].p95_s.unwrap());
    let late: Vec<f64> = r
        .peers
        .iter()
        .filter(|p| p.arrival_s > 6600.0)
        .filter_map(|p| p.download_s())
        .collect();
    let early: Vec<f64> = r
        .peers
        .iter()
        .filter(|p| (3600.0..4200.0).contains(&p.arrival_s))
        .filter_map(|p| p.download_s())
        .collect();
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        avg(&late) > 3.0 * avg(&early),
        "{} vs {}",
        avg(&late),
        avg(&early)
    );
}

fn outputs(r: &Report) -> (String, Vec<u8>, Vec<u8>) {
    let mut peers = Vec::new();
    let mut timeline = Vec::new();
    r.write_peers_csv(&mut peers).unwrap();
    r.write_timeline_csv(&mut timeline).unwrap();
    (r.to_json(), peers, timeline)
}

fn small_swarm(seed: u64) -> SimConfig {
    SimConfig {
        piece_length: 16 * 1024,
        arrivals: vec![phase(6.0, 1.0 / 6.0), phase(60.0, 1.0 / 6.0)],
        linger: Duration::from_secs(20),
        free_riders: 0.1,
        rng_seed: seed,
        ..SimConfig::default()
    }
}

#[test]
fn same_seed_same_bytes() {
    let a = outputs(&sim::run(&small_swarm(5)).unwrap());
    let b = outputs(&sim::run(&small_swarm(5)).unwrap());
    assert!(a == b, "two runs with the same seed differ");
    let c = outputs(&sim::run(&small_swarm(6)).unwrap());
    assert!(a.1 != c.1, "another seed gave the same peers");
    assert!(a.0.contains("\"phases\""));
    for key in [
        "arrivals",
        "completions",
        "mean_s",
        "p50_s",
        "p95_s",
        "max_s",
        "origin_bytes",
    ] {
        assert!(a.0.contains(&format!("\"{key}\"")), "{key} missing");
    }
}

/// A flash crowd of fast peers on a slow origin.
fn crowd(picker: Strategy) -> Report {
    let cfg = SimConfig {
        piece_length: 16 * 1024,
        classes: vec![PeerClass {
            weight: 1.0,
            down: 10 * MBIT,
            up: 2 * MBIT,
        }],
        arrivals: vec![phase(120.0, 2.0 / 60.0)],
        picker,
        rng_seed: 9,
        ..SimConfig::default()
    };
    sim::run(&cfg).unwrap()
}

#[test]
fn rarest_first_beats_sequential_on_time_to_the_last_piece() {
    let rarest = crowd(Strategy::RarestFirst);
    let sequential = crowd(Strategy::Sequential);
    let (r, s) = (
        rarest.last_piece_out_s.unwrap(),
        sequential.last_piece_out_s.unwrap(),
    );
    assert!(r * 1.5 < s, "rarest {r:.1} s, sequential {s:.1} s");
    assert!(rarest.total.mean_s.unwrap() < sequential.total.mean_s.unwrap());
}

/// Mean download times of (free riders, contributors).
fn free_rider_times(choker: ChokerKind) -> (f64, f64) {
    let cfg = SimConfig {
        piece_length: 16 * 1024,
        arrivals: vec![phase(6.0, 1.0 / 6.0), phase(60.0, 1.0 / 3.0)],
        free_riders: 0.2,
        choker,
        rng_seed: 4,
        ..SimConfig::default()
    };
    let r = sim::run(&cfg).unwrap();
    let mean = |fr: bool| {
        let v: Vec<f64> = r
            .peers
            .iter()
            .filter(|p| p.free_rider == fr)
            .filter_map(|p| p.download_s())
            .collect();
        assert!(v.len() > 150, "{} peers", v.len());
        v.iter().sum::<f64>() / v.len() as f64
    };
    (mean(true), mean(false))
}

#[test]
fn free_riders_finish_later_only_under_tit_for_tat() {
    let (fr, co) = free_rider_times(ChokerKind::Standard);
    assert!(
        fr > 1.08 * co,
        "standard choker: free riders {fr:.1} s, contributors {co:.1} s"
    );
    let (fr, co) = free_rider_times(ChokerKind::Unlimited);
    assert!(
        fr < 1.04 * co,
        "unlimited: free riders {fr:.1} s, contributors {co:.1} s"
    );
}
