//! A deterministic discrete-event swarm simulator for capacity planning (`seedbox sim`,
//! `seedbox plan`).
//!
//! Peers run the engine's own sans-IO logic: the [`Picker`](crate::swarm::Picker), the
//! [`Choker`](crate::swarm::Choker), the [`RateMeter`](crate::swarm::RateMeter)s and the
//! [`Connection`](crate::protocol::Connection) state machine, driven as the leecher session
//! drives them, on a virtual clock ([`event`]) over a simulated network ([`network`]):
//! per-peer uplink and downlink shared equally among active transfers, a round-trip time
//! per link, and a simulated tracker handing out random peers. Arrivals come from Poisson
//! phases ([`arrivals`]). Every random choice (arrivals, peer classes, free riders, link
//! delays, tracker lists, first pieces, rarest-first ties, optimistic unchokes) comes from
//! one ChaCha generator seeded with [`SimConfig::rng_seed`], so a configuration always gives
//! the same run.
//!
//! Transfer unit: releases of up to [`AUTO_MAX_BLOCKS`] 16 KiB blocks move block by block
//! as on the wire; larger ones move whole pieces (or groups of pieces, to keep at most
//! [`SimConfig::max_units`] units, [`AUTO_MAX_UNITS`] by default), the engine's types then
//! seeing one block per unit ([`Units`]). The report says which.

pub mod arrivals;
pub mod config;
pub mod event;
pub mod network;
pub mod peer;
pub mod plan;
pub mod plot;
pub mod report;
pub mod swarm;
pub mod syndrome;

pub use config::{
    ChokerKind, Mode, PeerClass, Phase, SimConfig, SimError, UnitChoice, UnitKind, Units,
    AUTO_MAX_BLOCKS, AUTO_MAX_UNITS,
};
pub use report::{OriginSummary, PeerRecord, PhaseSummary, Report, TimelineRow};
pub use swarm::{run, run_with_progress, Progress};
pub use syndrome::{Warning, WarningKind};
