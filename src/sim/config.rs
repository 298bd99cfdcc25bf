//! What to simulate: the release, the origin, the peers, the arrivals and the protocol knobs.

use std::time::Duration;

use crate::swarm::{PieceGeometry, Slots, Strategy, BLOCK_SIZE};

/// How the content is delivered.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// BitTorrent: peers trade pieces with each other and with the origin seed.
    Swarm,
    /// A web server: every client fetches from the origin alone; clients never upload.
    ClientServer,
}

/// Which choker every peer (and the origin, in swarm mode) runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChokerKind {
    /// Tit-for-tat: the best reciprocators in the regular slots plus one optimistic unchoke;
    /// [`SimConfig::peer_unchoke_slots`] slots at the peers, [`SimConfig::unchoke_slots`] at
    /// the origin.
    Standard,
    /// Every interested peer is unchoked (no incentive), at the peers and at the origin.
    Unlimited,
}

/// The unit the simulated network moves: one transfer is one unit.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitChoice {
    /// Pick by size: blocks up to [`AUTO_MAX_BLOCKS`] blocks (and at most
    /// [`SimConfig::max_units`]), then pieces up to [`SimConfig::max_units`] pieces, then
    /// groups of whole pieces.
    Auto,
    /// 16 KiB blocks, as on the wire.
    Block,
    /// Whole pieces (or groups of pieces when there are more than
    /// [`SimConfig::max_units`]).
    Piece,
}

/// Releases of at most this many 16 KiB blocks are simulated block by block.
pub const AUTO_MAX_BLOCKS: u64 = 4096;
/// The default of [`SimConfig::max_units`]: at most this many units when simulating at
/// piece granularity; more pieces are grouped.
pub const AUTO_MAX_UNITS: u64 = 4096;

/// A class of peers: its share of arrivals and its access link.
#[derive(Clone, Copy, PartialEq, Debug, serde::Serialize)]
pub struct PeerClass {
    /// Relative weight among classes (need not sum to 1).
    pub weight: f64,
    /// Downlink, bytes per second.
    pub down: u64,
    /// Uplink, bytes per second.
    pub up: u64,
}

/// One phase of the arrival schedule: Poisson arrivals, or arrivals on a fixed schedule.
#[derive(Clone, Copy, PartialEq, Debug, serde::Serialize)]
pub struct Phase {
    /// Mean arrivals per second (for a fixed phase, exactly one every `1 / per_second` s).
    pub per_second: f64,
    /// How long the phase lasts.
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    /// Arrivals exactly `1 / per_second` apart, the first at the start of the phase (the
    /// command line's `30 every 2s`), instead of Poisson.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fixed: bool,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Everything a simulation run depends on. The same config gives the same run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SimConfig {
    /// Swarm or client-server.
    pub mode: Mode,
    /// Release size in bytes.
    pub size: u64,
    /// Piece length in bytes.
    pub piece_length: u32,
    /// The origin's uplink, bytes per second.
    pub seed_up: u64,
    /// Peer classes (at least one).
    pub classes: Vec<PeerClass>,
    /// Arrival schedule: Poisson phases one after another.
    pub arrivals: Vec<Phase>,
    /// How long a peer stays as a seed after completing (swarm mode).
    #[serde(serialize_with = "ser_secs")]
    pub linger: Duration,
    /// Most connections a peer keeps (the origin accepts any number).
    pub max_peers: u32,
    /// The origin's regular unchoke slots (`seedbox seed --unchoke-slots`; `auto`, the
    /// seed's default, with the origin's uplink as its `--max-upload-rate`).
    #[serde(serialize_with = "ser_display")]
    pub unchoke_slots: Slots,
    /// Every peer's regular unchoke slots (`seedbox get --unchoke-slots`, 4 by default).
    #[serde(serialize_with = "ser_display")]
    pub peer_unchoke_slots: Slots,
    /// The origin super-seeds (BEP 16, `seedbox seed --super-seed`; swarm mode only).
    pub super_seed: bool,
    /// Piece picking strategy of every peer.
    #[serde(serialize_with = "ser_strategy")]
    pub picker: Strategy,
    /// Choker of every peer and of the origin (swarm mode).
    pub choker: ChokerKind,
    /// Fraction of arrivals that never upload and leave as soon as they complete.
    pub free_riders: f64,
    /// Seed of the one random generator of the run.
    pub rng_seed: u64,
    /// Round-trip times of links are drawn uniformly between these two.
    #[serde(serialize_with = "ser_rtt")]
    pub rtt: (Duration, Duration),
    /// Transfer unit.
    pub unit: UnitChoice,
    /// Most units at piece granularity: beyond it consecutive pieces are grouped into units
    /// of whole pieces (a coarser, faster and less exact run). Left out of the JSON at its
    /// default, [`AUTO_MAX_UNITS`].
    #[serde(skip_serializing_if = "is_default_max_units")]
    pub max_units: u64,
    /// Stop this long after the last phase even if leechers remain (they count as unfinished).
    #[serde(serialize_with = "ser_secs")]
    pub drain: Duration,
    /// Peers returned by the simulated tracker per announce.
    pub numwant: u32,
    /// Stop early once more than 5% of the expected arrivals have taken longer than this
    /// (used by `plan` to reject an uplink quickly); `None` runs to the end.
    #[serde(skip)]
    pub abort_after: Option<Duration>,
}

fn is_default_max_units(n: &u64) -> bool {
    *n == AUTO_MAX_UNITS
}

fn ser_strategy<S: serde::Serializer>(st: &Strategy, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(strategy_name(*st))
}

fn ser_rtt<S: serde::Serializer>(r: &(Duration, Duration), s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(2))?;
    seq.serialize_element(&r.0.as_secs_f64())?;
    seq.serialize_element(&r.1.as_secs_f64())?;
    seq.end()
}

/// The command-line name of a picker strategy.
pub fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::RarestFirst => "rarest",
        Strategy::Sequential => "sequential",
        Strategy::Random => "random",
    }
}

impl Default for SimConfig {
    /// The lecture's setting: a 1 MB file (10^6 bytes) in 256 KiB pieces from a 1 Mbit/s
    /// origin, 6 arrivals a minute for an hour; the origin and the peers choke as `seed`
    /// and `get` do by default (`auto` and 4 slots).
    fn default() -> Self {
        SimConfig {
            mode: Mode::Swarm,
            size: 1_000_000,
            piece_length: 256 * 1024,
            seed_up: 125_000,
            classes: vec![PeerClass {
                weight: 1.0,
                down: 1_500_000 / 8,
                up: 384_000 / 8,
            }],
            arrivals: vec![Phase {
                per_second: 0.1,
                duration: Duration::from_secs(3600),
                fixed: false,
            }],
            linger: Duration::ZERO,
            max_peers: 50,
            unchoke_slots: Slots::Auto,
            peer_unchoke_slots: Slots::Limited(4),
            super_seed: false,
            picker: Strategy::RarestFirst,
            choker: ChokerKind::Standard,
            free_riders: 0.0,
            rng_seed: 1,
            rtt: (Duration::from_millis(20), Duration::from_millis(140)),
            unit: UnitChoice::Auto,
            max_units: AUTO_MAX_UNITS,
            drain: Duration::from_secs(24 * 3600),
            numwant: 50,
            abort_after: None,
        }
    }
}

/// A configuration the simulator cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// A parameter out of range; the message names it.
    #[error("invalid simulation parameter: {0}")]
    Invalid(String),
}

/// The kind of transfer unit a run used.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitKind {
    /// 16 KiB blocks of real pieces.
    Block,
    /// Whole pieces.
    Piece,
    /// Groups of consecutive whole pieces.
    PieceGroup,
}

/// How the release is cut into transfer units, and the geometry the engine's sans-IO types
/// see. At block granularity that is the real geometry. At piece (or coarser) granularity the
/// picker and connections see one 16 KiB block per unit, and the network charges each unit
/// its real size ([`Units::real_bytes`]).
#[derive(Clone, Copy, Debug)]
pub struct Units {
    /// Block, piece or group of pieces.
    pub kind: UnitKind,
    /// Bytes of a full unit.
    pub unit_bytes: u64,
    /// Number of units.
    pub count: u64,
    /// Geometry handed to the picker and connections.
    pub geometry: PieceGeometry,
    total: u64,
}

impl Units {
    /// Chooses the unit for `cfg`.
    pub fn for_config(cfg: &SimConfig) -> Result<Units, SimError> {
        if cfg.size == 0 {
            return Err(SimError::Invalid("size must be positive".into()));
        }
        if cfg.piece_length == 0 {
            return Err(SimError::Invalid("piece length must be positive".into()));
        }
        if cfg.max_units == 0 {
            return Err(SimError::Invalid("max units must be at least 1".into()));
        }
        let blocks = cfg.size.div_ceil(u64::from(BLOCK_SIZE));
        let pieces = cfg.size.div_ceil(u64::from(cfg.piece_length));
        let by_block = match cfg.unit {
            UnitChoice::Block => true,
            UnitChoice::Piece => false,
            UnitChoice::Auto => blocks <= AUTO_MAX_BLOCKS.min(cfg.max_units),
        };
        if by_block {
            if cfg.unit == UnitChoice::Block
                && cfg.max_units != AUTO_MAX_UNITS
                && blocks > cfg.max_units
            {
                return Err(SimError::Invalid(format!(
                    "{blocks} blocks by block is more than max units {}; max units groups \
                     pieces, so leave the unit to auto or piece",
                    cfg.max_units
                )));
            }
            if pieces > u64::from(u32::MAX) || blocks > 50_000_000 {
                return Err(SimError::Invalid(format!(
                    "{blocks} blocks is too many to simulate block by block"
                )));
            }
            return Ok(Units {
                kind: UnitKind::Block,
                unit_bytes: u64::from(BLOCK_SIZE),
                count: blocks,
                geometry: PieceGeometry::new(cfg.piece_length, cfg.size),
                total: cfg.size,
            });
        }
        let group = pieces.div_ceil(cfg.max_units).max(1);
        let unit_bytes = group * u64::from(cfg.piece_length);
        let count = cfg.size.div_ceil(unit_bytes);
        Ok(Units {
            kind: if group == 1 {
                UnitKind::Piece
            } else {
                UnitKind::PieceGroup
            },
            unit_bytes,
            count,
            geometry: PieceGeometry::new(BLOCK_SIZE, count * u64::from(BLOCK_SIZE)),
            total: cfg.size,
        })
    }

    /// Real bytes a transfer of `block` (in [`Units::geometry`]) stands for.
    pub fn real_bytes(&self, block: crate::swarm::BlockRef) -> u64 {
        match self.kind {
            UnitKind::Block => u64::from(block.length),
            _ => {
                let start = u64::from(block.piece) * self.unit_bytes;
                self.total.saturating_sub(start).min(self.unit_bytes)
            }
        }
    }

    /// One line for the output: "62 blocks of 16 KiB" or "1000 pieces of 4 MiB".
    pub fn describe(&self) -> String {
        let what = match self.kind {
            UnitKind::Block => "blocks",
            UnitKind::Piece => "pieces",
            UnitKind::PieceGroup => "piece groups",
        };
        format!("{} {what} of {}", self.count, human_bytes(self.unit_bytes))
    }
}

/// `16 KiB`, `4 MiB`, `1000000 B`.
pub fn human_bytes(b: u64) -> String {
    const K: u64 = 1024;
    if b >= K * K * K && b % (K * K * K) == 0 {
        format!("{} GiB", b / (K * K * K))
    } else if b >= K * K && b % (K * K) == 0 {
        format!("{} MiB", b / (K * K))
    } else if b >= K && b % K == 0 {
        format!("{} KiB", b / K)
    } else {
        format!("{b} B")
    }
}

impl SimConfig {
    /// Checks the parameters the simulator relies on.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: &str| Err(SimError::Invalid(m.to_owned()));
        if self.classes.is_empty()
            || self
                .classes
                .iter()
                .any(|c| !c.weight.is_finite() || c.weight <= 0.0)
        {
            return bad("at least one peer class with a positive weight");
        }
        if self.classes.iter().any(|c| c.down == 0) {
            return bad("peer downlinks must be positive");
        }
        if self.seed_up == 0 {
            return bad("the origin uplink must be positive");
        }
        if self.arrivals.is_empty()
            || self
                .arrivals
                .iter()
                .any(|p| !p.per_second.is_finite() || p.per_second < 0.0)
        {
            return bad("the arrival schedule needs phases with non-negative rates");
        }
        if !(0.0..1.0).contains(&self.free_riders) {
            return bad("free riders must be a fraction in [0, 1)");
        }
        if self.max_peers == 0 {
            return bad("max peers must be at least 1");
        }
        if self.rtt.0 > self.rtt.1 {
            return bad("rtt range is reversed");
        }
        if self.super_seed && self.mode != Mode::Swarm {
            return bad("super-seeding needs swarm mode");
        }
        Units::for_config(self).map(|_| ())
    }

    /// Expected number of arrivals over the schedule.
    pub fn expected_arrivals(&self) -> f64 {
        self.arrivals
            .iter()
            .map(|p| p.per_second * p.duration.as_secs_f64())
            .sum()
    }

    /// Length of the arrival schedule.
    pub fn schedule_length(&self) -> Duration {
        self.arrivals.iter().map(|p| p.duration).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_choice() {
        let mut c = SimConfig::default();
        let u = Units::for_config(&c).unwrap();
        assert_eq!(u.kind, UnitKind::Block);
        assert_eq!(u.count, 62);
        assert_eq!(u.geometry.piece_count(), 4);
        c.size = 50 << 30;
        c.piece_length = 4 << 20;
        let u = Units::for_config(&c).unwrap();
        assert_eq!(u.kind, UnitKind::PieceGroup);
        assert_eq!(u.unit_bytes, 16 << 20);
        assert_eq!(u.count, 3200);
        assert_eq!(u.geometry.piece_count(), 3200);
        let last = u.geometry.block(3199, 0);
        assert_eq!(u.real_bytes(last), 16 << 20);
        c.size = 1000 * (1 << 20) + 5;
        c.piece_length = 1 << 20;
        let u = Units::for_config(&c).unwrap();
        assert_eq!(u.kind, UnitKind::Piece);
        assert_eq!(u.count, 1001);
        assert_eq!(u.real_bytes(u.geometry.block(1000, 0)), 5);
        assert_eq!(u.describe(), "1001 pieces of 1 MiB");
    }

    #[test]
    fn max_units_groups_whole_pieces() {
        // 1,000 pieces of 256 KiB: capped at 250 units, four pieces a unit, as if the pieces
        // were 1 MiB; a cap above the piece count leaves pieces alone.
        let mut c = SimConfig {
            size: 250 << 20,
            ..SimConfig::default()
        };
        assert_eq!(
            Units::for_config(&c).unwrap().describe(),
            "1000 pieces of 256 KiB"
        );
        c.max_units = 250;
        let u = Units::for_config(&c).unwrap();
        assert_eq!(u.kind, UnitKind::PieceGroup);
        assert_eq!(u.describe(), "250 piece groups of 1 MiB");
        c.max_units = 300;
        assert_eq!(
            Units::for_config(&c).unwrap().count,
            250,
            "groups of 4: at most 300"
        );
        c.max_units = 200;
        assert_eq!(
            Units::for_config(&c).unwrap().count,
            200,
            "groups of 5 whole pieces"
        );
        c.max_units = 1000;
        assert_eq!(Units::for_config(&c).unwrap().kind, UnitKind::Piece);
        // A small release goes block by block only while its blocks fit under the cap.
        let mut small = SimConfig::default();
        assert_eq!(Units::for_config(&small).unwrap().kind, UnitKind::Block);
        small.max_units = 10;
        assert_eq!(
            Units::for_config(&small).unwrap().describe(),
            "4 pieces of 256 KiB"
        );
        small.unit = UnitChoice::Block;
        assert!(small.validate().is_err(), "blocks cannot be grouped");
        small.max_units = 62;
        assert_eq!(Units::for_config(&small).unwrap().count, 62);
        small.max_units = 0;
        assert!(small.validate().is_err());
    }
}
