//! The missing-piece syndrome (Hajek and Zhu, 2011) in the simulator: the runs that must be
//! flagged are, those that must not are not, on both sides of the stability boundary. Run
//! in release mode: `cargo test --release --test sim_syndrome`.

use std::time::Duration;

use seedbox::metainfo::auto_piece_length;
use seedbox::sim::{self, Phase, Report, SimConfig, UnitChoice, WarningKind};
use seedbox::swarm::Slots;

fn phase(per_minute: f64, minutes: f64) -> Phase {
    Phase {
        per_second: per_minute / 60.0,
        duration: Duration::from_secs_f64(minutes * 60.0),
        fixed: false,
    }
}

/// The lecture's setting (1 MB, 1 Mbit/s origin, 384 kbit/s up and 1.5 Mbit/s down peers,
/// linger 0) with `piece_length` and one arrival phase.
fn lecture(piece_length: u32, per_minute: f64, minutes: f64) -> SimConfig {
    SimConfig {
        piece_length,
        arrivals: vec![phase(per_minute, minutes)],
        ..SimConfig::default()
    }
}

fn flagged(r: &Report) -> bool {
    r.warnings
        .iter()
        .any(|w| w.kind == WarningKind::MissingPieceSyndrome)
}

/// The mean count of leechers and of the club over the timeline rows from `from_s` to
/// `to_s`.
fn mean_between(r: &Report, from_s: f64, to_s: f64) -> (f64, f64) {
    let rows: Vec<_> = r
        .timeline
        .iter()
        .filter(|row| row.t_s >= from_s && row.t_s < to_s)
        .collect();
    let n = rows.len().max(1) as f64;
    (
        rows.iter().map(|row| row.leechers as f64).sum::<f64>() / n,
        rows.iter().map(|row| row.club as f64).sum::<f64>() / n,
    )
}

#[test]
fn the_lecture_surge_in_four_pieces_is_flagged_and_in_16_kib_pieces_is_not() {
    // 120 arrivals a minute (3 minutes of the lecture's surge hour).
    let four = sim::run(&lecture(256 * 1024, 120.0, 3.0)).unwrap();
    assert_eq!(four.units, 62, "block by block");
    assert!(flagged(&four), "{}", four.summary());
    let w = &four.warnings[0];
    assert_eq!(w.phase, 1);
    assert!(w.club >= 100 && w.club * 2 >= w.leechers, "{w:?}");
    assert!(four.summary().contains("warning: missing-piece syndrome"));
    // `create`'s piece length for 1 MB: 16 KiB, 62 pieces.
    let small = sim::run(&lecture(auto_piece_length(1_000_000), 120.0, 3.0)).unwrap();
    assert!(!flagged(&small), "{}", small.summary());
    // Peers finishing together may miss the same last piece for a moment, but while peers
    // arrive such a club never holds most of the swarm. Once arrivals stop (180 s) the last
    // few leechers often all wait for the same piece: that is the drain, not the syndrome.
    assert!(
        small
            .timeline
            .iter()
            .filter(|r| r.t_s < 180.0)
            .all(|r| r.club < 10 || r.club * 2 < r.leechers),
        "{}",
        small.summary()
    );
    assert!(small.total.p95_s.unwrap() < 120.0);
}

/// Hajek and Zhu: with peers leaving on completion, the swarm is stable when peers arrive
/// more slowly than the seed uploads pieces, and the one club grows without bound when they
/// arrive faster. Here 4 pieces of 256 KiB from a 1 Mbit/s origin: 125,000 / 262,144 = 0.48
/// pieces a second, 28.6 a minute.
#[test]
fn hajek_zhu_boundary_at_four_pieces_and_linger_zero() {
    // The classic 4 + 1 slots at the origin, the setting of the boundary table in
    // bench-results/seed-strategy.md (with the `auto` rule before it gave slots back, the
    // 0.7x run was flagged; not re-checked with the rule that does).
    let base = |per_minute, minutes| SimConfig {
        unit: UnitChoice::Piece,
        unchoke_slots: Slots::Limited(4),
        ..lecture(256 * 1024, per_minute, minutes)
    };
    // Below (20 a minute, 0.7 of the seed's rate) for three hours: stable.
    let below = sim::run(&base(20.0, 180.0)).unwrap();
    assert!(!flagged(&below), "{}", below.summary());
    let (second_hour, second_club) = mean_between(&below, 3600.0, 7200.0);
    let (third_hour, third_club) = mean_between(&below, 7200.0, 10_800.0);
    assert!(
        third_hour < second_hour * 1.3 + 10.0 && third_club < second_club * 1.3 + 10.0,
        "leechers {second_hour:.0} then {third_hour:.0}, club {second_club:.0} then {third_club:.0}"
    );
    // Well above (60 a minute, 2.1 times the seed's rate) for 15 minutes: the club grows.
    let above = sim::run(&base(60.0, 15.0)).unwrap();
    assert!(flagged(&above), "{}", above.summary());
    let club_at = |t: f64| {
        above
            .timeline
            .iter()
            .find(|r| r.t_s >= t)
            .map(|r| r.club)
            .unwrap()
    };
    assert!(club_at(900.0) > club_at(450.0) + 100, "{}", above.summary());
}

#[test]
fn sim_json_carries_a_machine_readable_warning() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args([
            "sim",
            "-q",
            "--json",
            "--piece-length",
            "256KiB",
            "--arrivals",
            "120/min for 3m",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let w = &v["warnings"][0];
    assert_eq!(w["kind"], "missing-piece-syndrome");
    assert_eq!(w["phase"], 1);
    assert!(w["club"].as_u64().unwrap() >= 100);
    assert!(w["message"].as_str().unwrap().contains("same piece"));
    // The default piece length (16 KiB for 1 MB): no warnings key at all.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["sim", "-q", "--json", "--arrivals", "120/min for 3m"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("warnings").is_none(), "{v}");
}
