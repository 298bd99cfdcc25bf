//! `seedbox plan`: size the origin uplink (and seedbox cores) for a release by bisection
//! over simulations, with swarming and with client-server delivery.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::MultiProgress;

use super::sim::{
    parse_schedule_arg, reexec_with_huge_pages, simulate, ChokerArg, ModeArg, PickerArg, Schedule,
    SimArgs, UnitArg,
};
use super::units::{parse_duration, parse_rate, parse_size};
use crate::metainfo::auto_piece_length;
use crate::sim::plan::{smallest_uplink, Sized};
use crate::sim::AUTO_MAX_UNITS;
use crate::swarm::Slots;

/// Arguments of `seedbox plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Release size in bytes (`1000000`, `1MB`, `50GiB`).
    #[arg(long, value_parser = parse_size)]
    pub size: u64,
    /// Arrivals, as `seedbox sim --arrivals`: phases separated by commas, Poisson
    /// (`RATE for DURATION`, e.g. `6/min for 1h, 120/min for 1h`) or on a fixed schedule
    /// (`COUNT every DURATION`).
    #[arg(long, value_parser = parse_schedule_arg)]
    pub arrivals: Schedule,
    /// Every peer's uplink.
    #[arg(long, value_parser = parse_rate)]
    pub peer_up: u64,
    /// Every peer's downlink.
    #[arg(long, value_parser = parse_rate)]
    pub peer_down: u64,
    /// The 95th percentile download time to stay under, in every phase.
    #[arg(long, value_parser = parse_duration)]
    pub target_p95: Duration,
    /// How long peers seed after completing.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    pub linger: Duration,
    /// Seed throughput of one seedbox core, which turns the origin uplink into cores (default:
    /// the first `per core:` line of a bench-results/*.md in the working directory, else the
    /// figure of bench-results/seed-throughput.md built into this binary; the answer names
    /// which).
    #[arg(long, value_parser = parse_rate)]
    pub per_core: Option<u64>,
    /// Piece length in bytes (default: `seedbox create`'s automatic piece length for
    /// `--size`).
    #[arg(long, value_parser = parse_size)]
    pub piece_length: Option<u64>,
    /// The origin seed's regular unchoke slots, as `seedbox seed --unchoke-slots` (swarm
    /// delivery): `auto` (the seed's default; the origin's uplink counts as its
    /// --max-upload-rate), N, or `unlimited`.
    #[arg(long, value_name = "auto|N|unlimited", default_value = "auto")]
    pub unchoke_slots: Slots,
    /// The origin super-seeds (BEP 16), as `seedbox seed --super-seed` (swarm delivery).
    #[arg(long)]
    pub super_seed: bool,
    /// Seed of the random generator.
    #[arg(long, default_value_t = 1)]
    pub rng_seed: u64,
    /// Most transfer units per simulation: beyond it whole pieces are grouped into coarser
    /// units (faster, less exact), as `seedbox sim --max-units`.
    #[arg(long, default_value_t = AUTO_MAX_UNITS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_units: u64,
    /// Print the answer as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

/// One line of the plan: delivery mode, its answer, its worst p95 and the command that
/// reproduces it.
type Row = (&'static str, Sized, f64, String, Option<Syndrome>);

/// The highest origin uplink at which a run of the bisection showed the missing-piece
/// syndrome, and its warning.
type Syndrome = (u64, crate::sim::Warning);

fn mbit(bytes_per_s: u64) -> f64 {
    bytes_per_s as f64 * 8.0 / 1e6
}

/// The seed throughput record of the tree this binary was built from: `plan` falls back on
/// its figure when the working directory has no `bench-results/` of its own (an installed
/// binary run anywhere).
const BUILT_IN_RECORD: &str = include_str!("../../bench-results/seed-throughput.md");

/// The rate of the first line `per core: 2.5 Gbit/s` (any rate `parse_rate` reads) in
/// `text`, as the seed throughput benchmark records it.
fn per_core_in(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let i = line.to_ascii_lowercase().find("per core:")?;
        let rest = line[i + "per core:".len()..].trim();
        let word: String = rest.split_whitespace().take(2).collect();
        parse_rate(&word).ok()
    })
}

/// The per-core seed throughput and where it was read: the first `per core:` line of
/// `bench-results/*.md` in the working directory (a benchmark run here), else the figure of
/// `bench-results/seed-throughput.md` built into the binary.
fn per_core_from_bench_results() -> Option<(u64, String)> {
    let mut files: Vec<_> = std::fs::read_dir(Path::new("bench-results"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    files
        .iter()
        .find_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            Some((per_core_in(&text)?, f.display().to_string()))
        })
        .or_else(|| {
            per_core_in(BUILT_IN_RECORD).map(|r| {
                (
                    r,
                    "bench-results/seed-throughput.md, built into this binary".to_owned(),
                )
            })
        })
}

/// Runs `seedbox plan`.
pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    reexec_with_huge_pages();
    if let Some(w) = super::sim::downlink_warning(args.peer_down, args.peer_up, "--peer-down") {
        eprintln!("warning: {w}");
    }
    let schedule_text = schedule_text(&args);
    let piece_length = args
        .piece_length
        .unwrap_or_else(|| u64::from(auto_piece_length(args.size)));
    // The two delivery modes are independent bisections: one thread each (the runs and the
    // answers are the same as one after the other; only the wall time changes).
    let multi = MultiProgress::new();
    let sizing = Sizing {
        args: &args,
        piece_length,
        schedule_text: &schedule_text,
        multi: &multi,
    };
    let rows: Vec<Row> = std::thread::scope(|scope| {
        let client_server = scope
            .spawn(|| sizing.size_mode("client-server", ModeArg::ClientServer, "client-server"));
        let swarm = sizing.size_mode("swarm", ModeArg::Swarm, "swarm");
        let client_server = client_server
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        anyhow::Ok(vec![swarm?, client_server?])
    })?;
    let per_core = match args.per_core {
        Some(r) => Some((r, "--per-core".to_owned())),
        None => per_core_from_bench_results(),
    };
    let answer = Answer {
        args: &args,
        schedule_text: &schedule_text,
        piece_length,
        rows: &rows,
        per_core: per_core.as_ref(),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&answer.json())?);
    } else {
        answer.print_text();
    }
    Ok(ExitCode::SUCCESS)
}

/// The arrival schedule as `--arrivals` takes it, for the reproducing commands.
fn schedule_text(args: &PlanArgs) -> String {
    let parts: Vec<String> = args
        .arrivals
        .0
        .iter()
        .map(|p| {
            if p.fixed {
                format!(
                    "{} every {}s",
                    (p.duration.as_secs_f64() * p.per_second).round(),
                    1.0 / p.per_second
                )
            } else {
                format!(
                    "{}/min for {}s",
                    p.per_second * 60.0,
                    p.duration.as_secs_f64()
                )
            }
        })
        .collect();
    parts.join(", ")
}

/// What sizing one delivery mode's origin needs.
struct Sizing<'a> {
    args: &'a PlanArgs,
    piece_length: u64,
    schedule_text: &'a str,
    multi: &'a MultiProgress,
}

impl Sizing<'_> {
    /// The simulator's arguments for `mode` (the origin's uplink is what the bisection sets).
    fn sim_args(&self, mode: ModeArg) -> SimArgs {
        let args = self.args;
        SimArgs {
            mode,
            size: args.size,
            piece_length: Some(self.piece_length),
            seed_up: 125_000,
            peer_up: args.peer_up,
            peer_down: args.peer_down,
            peer_class: Vec::new(),
            arrivals: args.arrivals.clone(),
            linger: args.linger,
            max_peers: 50,
            unchoke_slots: args.unchoke_slots,
            peer_unchoke_slots: Slots::Limited(4),
            super_seed: args.super_seed && matches!(mode, ModeArg::Swarm),
            picker: PickerArg::Rarest,
            choker: ChokerArg::Standard,
            free_riders: 0.0,
            rng_seed: args.rng_seed,
            rtt: (Duration::from_millis(20), Duration::from_millis(140)),
            unit: UnitArg::Auto,
            max_units: args.max_units,
        }
    }

    /// The smallest origin uplink meeting the target in `mode`, with the worst phase's p95,
    /// the command reproducing it and the first syndrome seen; a failed sizing names the
    /// syndrome when one explains it.
    fn size_mode(&self, name: &'static str, mode: ModeArg, flag: &str) -> anyhow::Result<Row> {
        let args = self.args;
        let cfg = self.sim_args(mode).config()?;
        let mut n = 0;
        let mut syndrome: Option<Syndrome> = None;
        let sized = smallest_uplink(&cfg, args.target_p95, &mut |c| {
            n += 1;
            let label = format!("{name} #{n} at {:.3} Mbit/s", mbit(c.seed_up));
            let report = simulate(c, args.quiet, &label, Some(self.multi))
                .map_err(|e| crate::sim::SimError::Invalid(e.to_string()))?;
            if let Some(w) = report.warnings.first() {
                if !syndrome.as_ref().is_some_and(|(up, _)| *up >= c.seed_up) {
                    syndrome = Some((c.seed_up, w.clone()));
                }
            }
            Ok(report)
        });
        let sized = match sized {
            Ok(sized) => sized,
            Err(e) => match syndrome
                .as_ref()
                .or(check_failure(&cfg, self.multi, name)?.as_ref())
            {
                Some((up, w)) => anyhow::bail!(
                    "{e}\n{}",
                    syndrome_advice(name, *up, w, None, args, self.piece_length)
                ),
                None => return Err(e.into()),
            },
        };
        let worst_p95 = sized
            .report
            .phases
            .iter()
            .filter_map(|p| p.p95_s)
            .fold(0.0, f64::max);
        let cmd = self.command(mode, flag, sized.uplink);
        Ok((name, sized, worst_p95, cmd, syndrome))
    }

    /// The `seedbox sim` command reproducing the sized run of `mode` at `uplink`.
    fn command(&self, mode: ModeArg, flag: &str, uplink: u64) -> String {
        let args = self.args;
        let mut cmd = format!(
            "seedbox sim --mode {flag} --size {} --piece-length {} --seed-up {}bit \
             --peer-up {}bit --peer-down {}bit --arrivals '{}' --linger {}s --rng-seed {}",
            args.size,
            self.piece_length,
            uplink * 8,
            args.peer_up * 8,
            args.peer_down * 8,
            self.schedule_text,
            args.linger.as_secs_f64(),
            args.rng_seed
        );
        if matches!(mode, ModeArg::Swarm) {
            cmd += &format!(" --unchoke-slots {}", args.unchoke_slots);
            if args.super_seed {
                cmd += " --super-seed";
            }
        }
        if args.max_units != AUTO_MAX_UNITS {
            cmd += &format!(" --max-units {}", args.max_units);
        }
        cmd
    }
}

/// What `plan` found, for printing.
struct Answer<'a> {
    args: &'a PlanArgs,
    schedule_text: &'a str,
    piece_length: u64,
    rows: &'a [Row],
    /// Seed throughput of one core, and where it was read.
    per_core: Option<&'a (u64, String)>,
}

impl Answer<'_> {
    /// The slots the swarm's origin was simulated with, in words.
    fn origin_text(&self) -> String {
        let a = self.args;
        let default = if a.unchoke_slots == Slots::Auto {
            " (seedbox seed's default; its uplink as --max-upload-rate)"
        } else {
            ""
        };
        format!(
            "origin (swarm): seedbox seed --unchoke-slots {}{default}, super-seed {}; \
             peers: seedbox get --unchoke-slots 4",
            a.unchoke_slots,
            if a.super_seed { "on" } else { "off" }
        )
    }

    fn cores(&self, uplink: u64) -> Option<u64> {
        self.per_core.map(|(r, _)| uplink.div_ceil((*r).max(1)))
    }

    fn print_text(&self) {
        let a = self.args;
        outln!(
            "plan: {} bytes, arrivals {}, peers {:.3}/{:.3} Mbit/s down/up, linger {} s, \
             target p95 {} s in every phase",
            a.size,
            self.schedule_text,
            mbit(a.peer_down),
            mbit(a.peer_up),
            a.linger.as_secs_f64(),
            a.target_p95.as_secs_f64()
        );
        outln!("{}", self.origin_text());
        outln!(
            "{:<14} {:>16} {:>12} {:>12} {:>6} {:>6}",
            "delivery",
            "origin Mbit/s",
            "worst p95 s",
            "origin GB",
            "cores",
            "runs"
        );
        for (name, s, p95, _, _) in self.rows {
            let cores = self
                .cores(s.uplink)
                .map_or_else(|| "n/a".to_owned(), |c| c.to_string());
            outln!(
                "{:<14} {:>16.3} {:>12.1} {:>12.3} {:>6} {:>6}",
                name,
                mbit(s.uplink),
                p95,
                s.report.total.origin_bytes as f64 / 1e9,
                cores,
                s.runs
            );
        }
        if let Some((_, s, _, _, _)) = self.rows.iter().find(|r| r.0 == "swarm") {
            outln!("at the swarm answer, {}", s.report.origin.describe());
        }
        match self.per_core {
            Some((r, from)) => outln!(
                "cores: origin uplink / {:.3} Mbit/s per core ({from})",
                mbit(*r)
            ),
            None => outln!(
                "cores: n/a (no `per core:` throughput in bench-results/*.md; pass --per-core RATE)"
            ),
        }
        outln!("reproduce:");
        for (name, s, _, _, syndrome) in self.rows {
            if let Some((up, w)) = syndrome {
                outln!(
                    "{}",
                    syndrome_advice(name, *up, w, Some(s.uplink), a, self.piece_length)
                );
            }
        }
        for (_, _, _, cmd, _) in self.rows {
            outln!("  {cmd}");
        }
    }

    /// The `--json` object: the question, the origin assumed, and one answer per delivery.
    fn json(&self) -> serde_json::Value {
        let a = self.args;
        let answers: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|(name, s, p95, cmd, syndrome)| {
                let swarm = *name == "swarm";
                serde_json::json!({
                    "delivery": name,
                    "origin_bytes_per_s": s.uplink,
                    "origin_mbit_s": mbit(s.uplink),
                    "worst_p95_s": p95,
                    "origin_bytes": s.report.total.origin_bytes,
                    "cores": self.cores(s.uplink),
                    "runs": s.runs,
                    "origin": s.report.origin,
                    "warning": syndrome.as_ref().map(|(up, w)| serde_json::json!({
                        "at_origin_bytes_per_s": up,
                        "warning": w,
                        "advice": syndrome_advice(name, *up, w, Some(s.uplink), a, self.piece_length),
                    })),
                    "super_seed": swarm && a.super_seed,
                    "reproduce": cmd,
                })
            })
            .collect();
        serde_json::json!({
            "size": a.size,
            "piece_length": self.piece_length,
            "arrivals": self.schedule_text,
            "peer_up_bytes_per_s": a.peer_up,
            "peer_down_bytes_per_s": a.peer_down,
            "linger_s": a.linger.as_secs_f64(),
            "target_p95_s": a.target_p95.as_secs_f64(),
            "origin": {
                "unchoke_slots": a.unchoke_slots.to_string(),
                "seed_default": a.unchoke_slots == Slots::Auto,
                "super_seed": a.super_seed,
                "uplink_as_max_upload_rate": true,
                "described": self.origin_text(),
            },
            "peer_unchoke_slots": "4",
            "cores_from": self.per_core.map(|(_, from)| from),
            "answers": answers,
        })
    }
}

/// When no uplink met the target and no run of the bisection (each stopped early once the
/// target was missed) showed the missing-piece syndrome: one run to the end at the peak
/// demand (the release's size times the highest arrival rate), whose warning explains the
/// failure if it has one.
fn check_failure(
    base: &crate::sim::SimConfig,
    multi: &MultiProgress,
    name: &str,
) -> anyhow::Result<Option<Syndrome>> {
    let peak = base
        .arrivals
        .iter()
        .map(|p| p.per_second)
        .fold(0.0, f64::max);
    let mut cfg = base.clone();
    cfg.seed_up = ((peak * base.size as f64) as u64).max(16_000);
    cfg.abort_after = None;
    let label = format!("{name} check at {:.3} Mbit/s", mbit(cfg.seed_up));
    let report = simulate(&cfg, true, &label, Some(multi))?;
    Ok(report.warnings.first().map(|w| (cfg.seed_up, w.clone())))
}

/// What `plan` tells its user when a run of the bisection showed the missing-piece syndrome
/// at origin uplink `flagged_at`: where it showed and what would fix it.
fn syndrome_advice(
    mode: &str,
    flagged_at: u64,
    w: &crate::sim::Warning,
    answer: Option<u64>,
    args: &PlanArgs,
    piece_length: u64,
) -> String {
    let pieces = args.size.div_ceil(piece_length.max(1));
    let mut fixes = Vec::new();
    if args.linger.is_zero() {
        fixes.push("peers that linger after completing (--linger 30s)".to_owned());
    }
    if piece_length > 16 * 1024 {
        fixes.push(format!(
            "more pieces ({pieces} now; --piece-length {} gives {})",
            piece_length / 4,
            args.size.div_ceil(piece_length / 4)
        ));
    }
    if !args.super_seed {
        fixes.push("a super-seeding origin (BEP 16, --super-seed)".to_owned());
    }
    if let Some(answer) = answer {
        fixes.push(format!(
            "a bigger origin: {:.3} Mbit/s or more, this plan's answer",
            mbit(answer)
        ));
    }
    format!(
        "warning ({mode}): the missing-piece syndrome at {:.3} Mbit/s of origin: {} of {} \
         leechers missed only the same piece at {:.0} s (phase {}). Peers arrive faster than \
         the origin spreads its rarest piece, and the swarm does not recover. What would fix \
         it: {}.",
        mbit(flagged_at),
        w.club,
        w.leechers,
        w.t_s,
        w.phase,
        fixes.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_per_core_line_of_a_record() {
        assert_eq!(
            per_core_in(
                "intro\nCapacity: per core: 2.5 Gbit/s (64 connections)\nper core: 1 Mbit/s"
            ),
            Some(312_500_000)
        );
        assert_eq!(per_core_in("no figure here\nper core: fast"), None);
    }

    #[test]
    fn the_built_in_record_has_a_per_core_figure() {
        assert!(per_core_in(BUILT_IN_RECORD).is_some_and(|r| r > 0));
    }

    #[test]
    fn syndrome_advice_names_the_fixes_that_apply() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            plan: PlanArgs,
        }
        let args = |extra: &[&str]| {
            let mut v = vec![
                "plan",
                "--size",
                "1000000",
                "--arrivals",
                "120/min for 1h",
                "--peer-up",
                "384kbit",
                "--peer-down",
                "1.5Mbit",
                "--target-p95",
                "60s",
            ];
            v.extend_from_slice(extra);
            Cmd::parse_from(v).plan
        };
        let w = crate::sim::Warning {
            kind: crate::sim::WarningKind::MissingPieceSyndrome,
            phase: 1,
            t_s: 600.0,
            club: 90,
            leechers: 100,
            piece: Some(2),
            message: String::new(),
        };
        let text = syndrome_advice("swarm", 125_000, &w, Some(250_000), &args(&[]), 262_144);
        assert!(
            text.contains("at 1.000 Mbit/s of origin: 90 of 100 leechers"),
            "{text}"
        );
        for fix in [
            "--linger 30s",
            "--piece-length 65536 gives 16",
            "super-seeding",
            "2.000 Mbit/s or more",
        ] {
            assert!(text.contains(fix), "{fix}: {text}");
        }
        // Already lingering, already in 16 KiB pieces, no answer: neither fix is offered again.
        let text = syndrome_advice(
            "swarm",
            125_000,
            &w,
            None,
            &args(&["--linger", "30s"]),
            16_384,
        );
        for absent in ["--linger", "--piece-length", "bigger origin"] {
            assert!(!text.contains(absent), "{absent}: {text}");
        }
        assert!(text.contains("super-seeding"));
    }
}
