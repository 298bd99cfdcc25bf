//! What a run measured: per-phase download times, origin bytes, share ratios, one record a
//! peer and a timeline; rendered as text, JSON and CSV. Nothing here depends on wall-clock
//! time, so the same configuration gives byte-identical output.

use std::io::{self, Write};

use super::arrivals::Arrivals;
use super::config::{ChokerKind, Mode, SimConfig, UnitKind, Units};
use super::event::{secs, Nanos};
use super::peer::Peer;
use super::syndrome::Warning;
use crate::swarm::Slots;

/// Download-time statistics of one phase (or of the whole run).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PhaseSummary {
    /// Arrivals per minute of the phase (mean of the Poisson process).
    pub per_minute: f64,
    /// When the phase starts, seconds of virtual time.
    pub start_s: f64,
    /// How long it lasts, seconds.
    pub duration_s: f64,
    /// Peers that arrived during the phase.
    pub arrivals: u64,
    /// Of those, how many completed.
    pub completions: u64,
    /// Mean download time of those that completed, seconds (null when none did).
    pub mean_s: Option<f64>,
    /// Median download time.
    pub p50_s: Option<f64>,
    /// 95th percentile (nearest rank).
    pub p95_s: Option<f64>,
    /// Longest download time.
    pub max_s: Option<f64>,
    /// Payload bytes the origin uploaded during the phase (the last phase also counts the
    /// drain after the schedule).
    pub origin_bytes: u64,
    /// Bytes these peers uploaded over bytes they downloaded.
    pub share_ratio: f64,
}

/// One row of `peers.csv`.
#[derive(Clone, Debug)]
pub struct PeerRecord {
    /// Peer number (1 = first arrival).
    pub id: u64,
    /// Peer class index.
    pub class: u16,
    /// Whether it was a free rider.
    pub free_rider: bool,
    /// Arrival, seconds.
    pub arrival_s: f64,
    /// Completion, seconds.
    pub finish_s: Option<f64>,
    /// Payload bytes uploaded.
    pub bytes_up: u64,
    /// Payload bytes downloaded (duplicates included).
    pub bytes_down: u64,
}

impl PeerRecord {
    /// Download time in seconds, if it completed.
    pub fn download_s(&self) -> Option<f64> {
        self.finish_s.map(|f| f - self.arrival_s)
    }
}

/// One row of `timeline.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineRow {
    /// Virtual time, seconds.
    pub t_s: f64,
    /// Peers downloading.
    pub leechers: u64,
    /// Peers lingering as seeds (the origin not counted).
    pub seeds: u64,
    /// Origin upload rate over its uplink.
    pub origin_utilisation: f64,
    /// Sum of every upload rate, bytes per second.
    pub aggregate_bytes_per_s: f64,
    /// Leechers missing only the same one piece (see [`super::syndrome`]).
    pub club: u64,
    /// That piece.
    pub club_piece: Option<u32>,
    /// Peers the origin had unchoked (its choker's list after its last decision).
    pub origin_unchoked: u64,
}

/// How the origin seed was modelled and how it served.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OriginSummary {
    /// Its regular unchoke slots as `seedbox seed --unchoke-slots` takes them (`auto`,
    /// `4`, `unlimited`); `unlimited` under `--choker unlimited` and in client-server mode.
    pub unchoke_slots: String,
    /// Whether those are `seedbox seed`'s default (`auto`).
    pub seed_default: bool,
    /// Whether it super-seeded (BEP 16).
    pub super_seed: bool,
    /// Mean count of unchoked peers over the timeline samples with leechers present.
    pub unchoked_mean: f64,
    /// Most unchoked peers in a sample.
    pub unchoked_max: u64,
    /// Mean share of its uplink used over the timeline samples with leechers present.
    pub utilisation_mean: f64,
    /// Payload bytes it uploaded per peer that completed (null when none did).
    pub bytes_per_completion: Option<f64>,
}

impl OriginSummary {
    fn build(cfg: &SimConfig, timeline: &[TimelineRow], bytes: u64, completions: u64) -> Self {
        let slots = match (cfg.mode, cfg.choker) {
            (Mode::Swarm, ChokerKind::Standard) => cfg.unchoke_slots,
            _ => Slots::Unlimited,
        };
        let busy: Vec<&TimelineRow> = timeline.iter().filter(|r| r.leechers > 0).collect();
        let n = busy.len().max(1) as f64;
        OriginSummary {
            unchoke_slots: slots.to_string(),
            seed_default: slots == Slots::Auto,
            super_seed: cfg.super_seed,
            unchoked_mean: busy.iter().map(|r| r.origin_unchoked as f64).sum::<f64>() / n,
            unchoked_max: busy.iter().map(|r| r.origin_unchoked).max().unwrap_or(0),
            utilisation_mean: busy.iter().map(|r| r.origin_utilisation).sum::<f64>() / n,
            bytes_per_completion: (completions > 0).then(|| bytes as f64 / completions as f64),
        }
    }

    /// One line for the text summary.
    pub fn describe(&self) -> String {
        let default = if self.seed_default {
            " (seedbox seed's default; its uplink as --max-upload-rate)"
        } else {
            ""
        };
        let per_peer = self
            .bytes_per_completion
            .map_or("-".to_owned(), |b| format!("{:.3}", b / 1e6));
        format!(
            "origin: --unchoke-slots {}{default}, super-seed {}: {:.1} peers unchoked on \
             average (at most {}), uplink {:.0}% used while leechers were present, {per_peer} \
             MB sent per completed peer",
            self.unchoke_slots,
            if self.super_seed { "on" } else { "off" },
            self.unchoked_mean,
            self.unchoked_max,
            self.utilisation_mean * 100.0,
        )
    }
}

/// Facts of a run beside the peers themselves.
#[derive(Clone, Copy, Debug)]
pub struct RunFacts {
    /// Virtual time at the end.
    pub end: Nanos,
    /// Events processed.
    pub events: u64,
    /// Stopped early by `abort_after`.
    pub aborted: bool,
    /// When the origin had sent every unit at least once.
    pub last_piece_out: Option<Nanos>,
    /// Duplicate payload bytes thrown away.
    pub wasted: u64,
    /// Payload bytes the origin uploaded over the run.
    pub origin_bytes_total: u64,
}

/// The result of a run. Serialises to the `--json` object (peers and timeline are written
/// as CSV instead).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// The configuration that produced it.
    pub config: SimConfig,
    /// Swarm or client-server.
    pub mode: Mode,
    /// The transfer unit.
    pub unit: UnitKind,
    /// Bytes of a full unit.
    pub unit_bytes: u64,
    /// Units in the release.
    pub units: u64,
    /// Per phase of the schedule.
    pub phases: Vec<PhaseSummary>,
    /// Over the whole run.
    pub total: PhaseSummary,
    /// Arrivals that had not completed when the run stopped.
    pub unfinished: u64,
    /// Virtual time when the origin had uploaded every unit at least once ("time to the
    /// last piece": from then on the swarm could finish without the origin).
    pub last_piece_out_s: Option<f64>,
    /// Virtual time at the end of the run.
    pub end_s: f64,
    /// Events processed.
    pub events: u64,
    /// Stopped early because too many downloads exceeded the planning target.
    pub aborted: bool,
    /// Duplicate payload bytes (end game) thrown away.
    pub wasted_bytes: u64,
    /// The origin: its choker as modelled, and how it served.
    pub origin: OriginSummary,
    /// What the run shows that a planner must know (the missing-piece syndrome); left out of
    /// the JSON when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// One record a peer.
    #[serde(skip)]
    pub peers: Vec<PeerRecord>,
    /// Every 10 s of virtual time.
    #[serde(skip)]
    pub timeline: Vec<TimelineRow>,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn summarise(
    per_minute: f64,
    start_s: f64,
    duration_s: f64,
    peers: &[&PeerRecord],
    origin_bytes: u64,
) -> PhaseSummary {
    let mut times: Vec<f64> = peers.iter().filter_map(|p| p.download_s()).collect();
    times.sort_by(f64::total_cmp);
    let up: u64 = peers.iter().map(|p| p.bytes_up).sum();
    let down: u64 = peers.iter().map(|p| p.bytes_down).sum();
    PhaseSummary {
        per_minute,
        start_s,
        duration_s,
        arrivals: peers.len() as u64,
        completions: times.len() as u64,
        mean_s: (!times.is_empty()).then(|| times.iter().sum::<f64>() / times.len() as f64),
        p50_s: percentile(&times, 0.5),
        p95_s: percentile(&times, 0.95),
        max_s: times.last().copied(),
        origin_bytes,
        share_ratio: if down == 0 {
            0.0
        } else {
            up as f64 / down as f64
        },
    }
}

impl Report {
    /// Gathers the statistics of a finished run.
    pub(crate) fn build(
        cfg: &SimConfig,
        units: &Units,
        arrivals: &Arrivals,
        peers: &[Peer],
        origin_bytes: Vec<u64>,
        timeline: Vec<TimelineRow>,
        facts: RunFacts,
    ) -> Report {
        let records: Vec<PeerRecord> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| PeerRecord {
                id: i as u64 + 1,
                class: p.class,
                free_rider: p.free_rider,
                arrival_s: secs(p.arrival),
                finish_s: p.finish.map(secs),
                bytes_up: p.bytes_up,
                bytes_down: p.bytes_down,
            })
            .collect();
        let mut phases = Vec::new();
        let mut start = 0.0;
        for (i, ph) in cfg.arrivals.iter().enumerate() {
            let these: Vec<&PeerRecord> = records
                .iter()
                .zip(peers)
                .filter(|(_, p)| arrivals.phase_of(p.arrival) == i)
                .map(|(r, _)| r)
                .collect();
            let d = ph.duration.as_secs_f64();
            phases.push(summarise(
                ph.per_second * 60.0,
                start,
                d,
                &these,
                origin_bytes[i],
            ));
            start += d;
        }
        let all: Vec<&PeerRecord> = records.iter().collect();
        let total_rate = if start > 0.0 {
            cfg.expected_arrivals() / start * 60.0
        } else {
            0.0
        };
        let total = summarise(total_rate, 0.0, start, &all, facts.origin_bytes_total);
        let warnings = match cfg.mode {
            Mode::Swarm => super::syndrome::detect(&phases, &timeline),
            Mode::ClientServer => Vec::new(),
        };
        let origin =
            OriginSummary::build(cfg, &timeline, facts.origin_bytes_total, total.completions);
        Report {
            config: cfg.clone(),
            origin,
            mode: cfg.mode,
            unit: units.kind,
            unit_bytes: units.unit_bytes,
            units: units.count,
            unfinished: total.arrivals - total.completions,
            phases,
            total,
            last_piece_out_s: facts.last_piece_out.map(secs),
            end_s: secs(facts.end),
            events: facts.events,
            aborted: facts.aborted,
            wasted_bytes: facts.wasted,
            warnings,
            peers: records,
            timeline,
        }
    }

    /// The one-object JSON summary (`--json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// `peers.csv`: one row a peer.
    pub fn write_peers_csv(&self, mut w: impl Write) -> io::Result<()> {
        writeln!(
            w,
            "peer,class,free_rider,arrival_s,finish_s,download_s,bytes_up,bytes_down"
        )?;
        for p in &self.peers {
            let opt = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.3}"));
            writeln!(
                w,
                "{},{},{},{:.3},{},{},{},{}",
                p.id,
                p.class,
                u8::from(p.free_rider),
                p.arrival_s,
                opt(p.finish_s),
                opt(p.download_s()),
                p.bytes_up,
                p.bytes_down
            )?;
        }
        Ok(())
    }

    /// `timeline.csv`: every 10 s of virtual time.
    pub fn write_timeline_csv(&self, mut w: impl Write) -> io::Result<()> {
        writeln!(
            w,
            "t_s,leechers,seeds,origin_utilisation,aggregate_bytes_per_s,origin_unchoked"
        )?;
        for r in &self.timeline {
            writeln!(
                w,
                "{:.3},{},{},{:.4},{:.0},{}",
                r.t_s,
                r.leechers,
                r.seeds,
                r.origin_utilisation,
                r.aggregate_bytes_per_s,
                r.origin_unchoked
            )?;
        }
        Ok(())
    }

    /// The human summary printed on stdout.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let mbit = |b: u64| b as f64 * 8.0 / 1e6;
        s.push_str(&format!(
            "{} of {} bytes, simulated in {} (unit: {:?}), origin uplink {:.3} Mbit/s, \
             rng seed {}\n",
            match c.mode {
                Mode::Swarm => "swarm",
                Mode::ClientServer => "client-server",
            },
            c.size,
            units_line(self),
            self.unit,
            mbit(c.seed_up),
            c.rng_seed,
        ));
        let f = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.1}"));
        s.push_str(&format!(
            "{:>5} {:>8} {:>9} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>11} {:>6}\n",
            "phase",
            "rate/min",
            "length_s",
            "arrivals",
            "completions",
            "mean_s",
            "p50_s",
            "p95_s",
            "max_s",
            "origin_MB",
            "share"
        ));
        for (i, p) in self
            .phases
            .iter()
            .chain(std::iter::once(&self.total))
            .enumerate()
        {
            let name = if i == self.phases.len() {
                "all".to_owned()
            } else {
                (i + 1).to_string()
            };
            s.push_str(&format!(
                "{:>5} {:>8.1} {:>9.0} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>11.1} {:>6.2}\n",
                name,
                p.per_minute,
                p.duration_s,
                p.arrivals,
                p.completions,
                f(p.mean_s),
                f(p.p50_s),
                f(p.p95_s),
                f(p.max_s),
                p.origin_bytes as f64 / 1e6,
                p.share_ratio
            ));
        }
        s.push_str(&format!(
            "unfinished {}, last piece out of the origin at {} s, end at {:.0} s, {} events{}\n",
            self.unfinished,
            f(self.last_piece_out_s),
            self.end_s,
            self.events,
            if self.aborted {
                " (stopped early: target missed)"
            } else {
                ""
            }
        ));
        s.push_str(&self.origin.describe());
        s.push('\n');
        for w in &self.warnings {
            s.push_str(&format!("warning: {}\n", w.message));
        }
        s
    }
}

fn units_line(r: &Report) -> String {
    let what = match r.unit {
        UnitKind::Block => "blocks",
        UnitKind::Piece => "pieces",
        UnitKind::PieceGroup => "piece groups",
    };
    format!(
        "{} {what} of {}",
        r.units,
        super::config::human_bytes(r.unit_bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(10.0));
        assert_eq!(percentile(&v, 0.95), Some(19.0));
        assert_eq!(percentile(&v, 1.0), Some(20.0));
        assert_eq!(percentile(&[3.0], 0.95), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
