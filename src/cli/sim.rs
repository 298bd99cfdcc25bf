//! `seedbox sim`: run the swarm simulator and write its summary, CSVs and plots.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::units::{parse_duration, parse_peer_class, parse_rate, parse_schedule, parse_size};
use crate::metainfo::auto_piece_length;
use crate::sim::{
    self, ChokerKind, Mode, PeerClass, Phase, Report, SimConfig, UnitChoice, AUTO_MAX_UNITS,
};
use crate::swarm::{Slots, Strategy};

/// Delivery mode.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    /// BitTorrent swarming.
    Swarm,
    /// Every client fetches from the origin alone, as from a web server.
    ClientServer,
}

/// Piece picker.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PickerArg {
    /// Rarest first (random first pieces, random ties).
    Rarest,
    /// Uniformly random.
    Random,
    /// In index order.
    Sequential,
}

/// Choker.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ChokerArg {
    /// Tit-for-tat: `--peer-unchoke-slots` regular slots at the peers, `--unchoke-slots` at
    /// the origin, and one optimistic unchoke.
    Standard,
    /// Unchoke every interested peer, at the peers and at the origin.
    Unlimited,
}

/// Transfer unit.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum UnitArg {
    /// Blocks for small releases, pieces (or groups of pieces) for big ones.
    Auto,
    /// 16 KiB blocks.
    Block,
    /// Pieces (grouped beyond 4096).
    Piece,
}

/// The parameters shared by `seedbox sim` and `seedbox plan`'s reproducing command lines.
#[derive(Debug, Args, Clone)]
pub struct SimArgs {
    /// Swarming, or client-server delivery from the origin alone.
    #[arg(long, value_enum, default_value = "swarm")]
    pub mode: ModeArg,
    /// Release size in bytes (`1000000`, `1MB`, `32MiB`, `50GiB`).
    #[arg(long, value_parser = parse_size, default_value = "1000000")]
    pub size: u64,
    /// Piece length in bytes (default: `seedbox create`'s automatic piece length for
    /// `--size`, libtorrent's rule: 16 KiB for 1 MB, 512 KiB for 1 GiB).
    #[arg(long, value_parser = parse_size)]
    pub piece_length: Option<u64>,
    /// The origin seed's uplink (`1Mbit`, `384kbit`, `10Gbit`, `2MB/s`).
    #[arg(long, value_parser = parse_rate, default_value = "1Mbit")]
    pub seed_up: u64,
    /// Every peer's uplink (ignored when --peer-class is given).
    #[arg(long, value_parser = parse_rate, default_value = "384kbit")]
    pub peer_up: u64,
    /// Every peer's downlink (ignored when --peer-class is given). A downlink below
    /// --peer-up caps every download, and gets a warning.
    #[arg(long, value_parser = parse_rate, default_value = "1.5Mbit")]
    pub peer_down: u64,
    /// A weighted class of peers, `WEIGHT:DOWN/UP` (repeat for a mix), e.g.
    /// `--peer-class 0.6:20Mbit/2Mbit --peer-class 0.4:100Mbit/20Mbit`.
    #[arg(long, value_parser = parse_peer_class)]
    pub peer_class: Vec<PeerClass>,
    /// Arrivals: phases separated by commas, Poisson (`RATE for DURATION`, e.g.
    /// `6/min for 1h, 120/min for 1h, 6/min for 1h`) or on a fixed schedule
    /// (`COUNT every DURATION`: `30 every 2s` is 30 arrivals exactly 2 s apart, the first at
    /// the start of the phase).
    #[arg(long, value_parser = parse_schedule_arg, default_value = "6/min for 1h")]
    pub arrivals: Schedule,
    /// How long a peer seeds after completing (swarm mode).
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    pub linger: Duration,
    /// Most connections a peer keeps (j).
    #[arg(long, default_value_t = 50)]
    pub max_peers: u32,
    /// The origin seed's regular unchoke slots, as `seedbox seed --unchoke-slots`, besides
    /// one optimistic unchoke: `auto` (the seed's default; the origin's uplink counts as its
    /// --max-upload-rate), N, or `unlimited`.
    #[arg(long, value_name = "auto|N|unlimited", default_value = "auto")]
    pub unchoke_slots: Slots,
    /// Every peer's regular unchoke slots (k), as `seedbox get --unchoke-slots` (4 by
    /// default).
    #[arg(long, value_name = "auto|N|unlimited", default_value = "4")]
    pub peer_unchoke_slots: Slots,
    /// The origin super-seeds (BEP 16), as `seedbox seed --super-seed` (swarm mode).
    #[arg(long)]
    pub super_seed: bool,
    /// Piece picker of every peer.
    #[arg(long, value_enum, default_value = "rarest")]
    pub picker: PickerArg,
    /// Choker of every peer and of the origin.
    #[arg(long, value_enum, default_value = "standard")]
    pub choker: ChokerArg,
    /// Fraction of peers that never upload and leave on completion.
    #[arg(long, default_value_t = 0.0)]
    pub free_riders: f64,
    /// Seed of the random generator (same seed, same run).
    #[arg(long, default_value_t = 1)]
    pub rng_seed: u64,
    /// Round-trip times of links, drawn uniformly from `MIN..MAX` (or one value).
    #[arg(long, value_parser = parse_rtt, default_value = "20ms..140ms")]
    pub rtt: (Duration, Duration),
    /// Transfer unit.
    #[arg(long, value_enum, default_value = "auto")]
    pub unit: UnitArg,
    /// Most transfer units: beyond it whole pieces are grouped into coarser units (faster,
    /// less exact; the output names the unit used).
    #[arg(long, default_value_t = AUTO_MAX_UNITS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_units: u64,
}

/// Arguments of `seedbox sim`.
#[derive(Debug, Args)]
pub struct SimCmd {
    /// Simulation parameters.
    #[command(flatten)]
    pub params: SimArgs,
    /// Write peers.csv, timeline.csv, summary.json and SVG plots to this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// An arrival schedule on the command line.
#[derive(Clone, Debug)]
pub struct Schedule(pub Vec<Phase>);

/// Parses `--arrivals`.
pub fn parse_schedule_arg(s: &str) -> Result<Schedule, String> {
    parse_schedule(s).map(Schedule)
}

fn parse_rtt(s: &str) -> Result<(Duration, Duration), String> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (parse_duration(a)?, parse_duration(b)?);
            if a > b {
                return Err(format!("`{s}`: the range is reversed"));
            }
            Ok((a, b))
        }
        None => {
            let d = parse_duration(s)?;
            Ok((d, d))
        }
    }
}

/// A warning when peers download (`down`, bytes per second) slower than they upload (`up`):
/// every download is then capped by the downlink whatever the swarm offers, which is how a
/// mistyped or forgotten `--peer-down` (1.5 Mbit/s by default in `sim`) shows.
pub fn downlink_warning(down: u64, up: u64, flag: &str) -> Option<String> {
    (down < up).then(|| {
        format!(
            "peers download at {:.3} Mbit/s, less than they upload ({:.3} Mbit/s): every \
             download is capped by that downlink; set {flag} if that is not meant",
            down as f64 * 8.0 / 1e6,
            up as f64 * 8.0 / 1e6,
        )
    })
}

impl SimArgs {
    /// `--piece-length`, or `seedbox create`'s automatic piece length for `--size`.
    pub fn piece_length(&self) -> u64 {
        self.piece_length
            .unwrap_or_else(|| u64::from(auto_piece_length(self.size)))
    }

    /// A warning when a peer's downlink is below its uplink (see [`downlink_warning`]).
    pub fn downlink_warning(&self) -> Option<String> {
        if self.peer_class.is_empty() {
            return downlink_warning(self.peer_down, self.peer_up, "--peer-down");
        }
        self.peer_class
            .iter()
            .find_map(|c| downlink_warning(c.down, c.up, "--peer-class WEIGHT:DOWN/UP"))
    }

    /// The simulator configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<SimConfig> {
        let classes = if self.peer_class.is_empty() {
            vec![PeerClass {
                weight: 1.0,
                down: self.peer_down,
                up: self.peer_up,
            }]
        } else {
            self.peer_class.clone()
        };
        let cfg = SimConfig {
            mode: match self.mode {
                ModeArg::Swarm => Mode::Swarm,
                ModeArg::ClientServer => Mode::ClientServer,
            },
            size: self.size,
            piece_length: u32::try_from(self.piece_length())
                .context("--piece-length must fit in 32 bits")?,
            seed_up: self.seed_up,
            classes,
            arrivals: self.arrivals.0.clone(),
            linger: self.linger,
            max_peers: self.max_peers,
            unchoke_slots: self.unchoke_slots,
            peer_unchoke_slots: self.peer_unchoke_slots,
            super_seed: self.super_seed,
            picker: match self.picker {
                PickerArg::Rarest => Strategy::RarestFirst,
                PickerArg::Random => Strategy::Random,
                PickerArg::Sequential => Strategy::Sequential,
            },
            choker: match self.choker {
                ChokerArg::Standard => ChokerKind::Standard,
                ChokerArg::Unlimited => ChokerKind::Unlimited,
            },
            free_riders: self.free_riders,
            rng_seed: self.rng_seed,
            rtt: self.rtt,
            unit: match self.unit {
                UnitArg::Auto => UnitChoice::Auto,
                UnitArg::Block => UnitChoice::Block,
                UnitArg::Piece => UnitChoice::Piece,
            },
            max_units: self.max_units,
            ..SimConfig::default()
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Runs one simulation with a progress bar on a terminal; wall-clock figures go to stderr.
pub fn simulate(
    cfg: &SimConfig,
    quiet: bool,
    label: &str,
    multi: Option<&MultiProgress>,
) -> anyhow::Result<Report> {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let end = cfg.schedule_length().as_secs().max(1);
    let mut bar = ProgressBar::with_draw_target(Some(end), target);
    if let (Some(multi), false) = (multi, quiet) {
        bar = multi.add(bar);
    }
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} s virtual  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let started = Instant::now();
    let report = sim::run_with_progress(cfg, &mut |p| {
        let wall = started.elapsed().as_secs_f64().max(1e-3);
        bar.set_position(p.now.as_secs().min(end));
        bar.set_message(format!(
            "{} peers alive, {:.1} M events/s",
            p.alive,
            p.events as f64 / wall / 1e6
        ));
    })?;
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    if !quiet {
        let line = format!(
            "{label}: {} events in {wall:.2} s wall ({:.2} M events/s)",
            report.events,
            report.events as f64 / wall.max(1e-9) / 1e6
        );
        match multi {
            // Printed above the bars still running, instead of through them.
            Some(multi) if !multi.is_hidden() => multi.println(line)?,
            _ => eprintln!("{line}"),
        }
    }
    Ok(report)
}

/// Set by [`reexec_with_huge_pages`] in the process it starts (and by a user who wants glibc's
/// defaults): no second re-execution.
const NO_HUGE_PAGES_REEXEC: &str = "SEEDBOX_NO_HUGE_PAGES_REEXEC";

/// Restarts the process once with glibc's malloc backing its heap with transparent huge
/// pages (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, which glibc reads only at start-up), when
/// the kernel gives them on request only (`madvise` mode). A big simulation touches tens of
/// MB of small allocations at random, and 2 MiB pages spare it most of its TLB misses (see
/// `bench-results/flash-crowd.md`, "Speed", session 9). Nothing happens with a
/// `GLIBC_TUNABLES` of the user's own, with `SEEDBOX_NO_HUGE_PAGES_REEXEC` set, with THP
/// `always` (the heap gets them anyway) or `never`, and when the exec fails (the run goes on
/// with small pages). Results do not depend on it.
pub fn reexec_with_huge_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("GLIBC_TUNABLES").is_some()
            || std::env::var_os(NO_HUGE_PAGES_REEXEC).is_some()
        {
            return;
        }
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if !thp.contains("[madvise]") {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        let err = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
            .env(NO_HUGE_PAGES_REEXEC, "1")
            .exec();
        tracing::debug!(
            "re-executing {} for huge pages failed: {err}",
            exe.display()
        );
    }
}

/// Runs `seedbox sim`.
pub fn run(args: SimCmd) -> anyhow::Result<ExitCode> {
    reexec_with_huge_pages();
    if let Some(w) = args.params.downlink_warning() {
        eprintln!("warning: {w}");
    }
    let cfg = args.params.config()?;
    let report = simulate(&cfg, args.quiet, "sim", None)?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
            let p = dir.join(name);
            Ok(std::io::BufWriter::new(
                std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?,
            ))
        };
        report.write_peers_csv(file("peers.csv")?)?;
        report.write_timeline_csv(file("timeline.csv")?)?;
        std::fs::write(dir.join("summary.json"), report.to_json() + "\n")?;
        sim::plot::download_times(&report, &dir.join("download-times.svg"))?;
        sim::plot::swarm_size(&report, &dir.join("swarm-size.svg"))?;
    }
    if args.json {
        outln!("{}", report.to_json());
    } else {
        out!("{}", report.summary());
    }
    Ok(ExitCode::SUCCESS)
}
