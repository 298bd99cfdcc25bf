//! `seedbox bench`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::bench::{run_load, sha1_throughput, LoadConfig, Sha1Impl};
use crate::metainfo::Torrent;

/// Arguments of `seedbox bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub what: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load a seed with synthetic leechers and measure what it serves.
    Load(LoadArgs),
    /// The SHA-1 ceiling: bytes in memory hashed per second (the bound for create/verify).
    Sha1(Sha1Args),
}

/// Arguments of `seedbox bench load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The seed's address (IP:PORT).
    pub addr: SocketAddr,
    /// The .torrent the seed serves.
    #[arg(long, value_name = "T")]
    pub torrent: PathBuf,
    /// Connections.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub conns: usize,
    /// Measurement window in seconds (after the warm-up).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up in seconds before measuring.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub warmup: f64,
    /// Requests kept in flight per connection.
    #[arg(long, value_name = "Q", default_value_t = 64)]
    pub queue: usize,
    /// Bind connections to this range of source addresses, round robin
    /// (e.g. 127.0.0.2-127.0.0.250), so per-IP limits of the seed do not distort the figure.
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_ip_range)]
    pub source_ips: Option<IpRange>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Random seed for block choice.
    #[arg(long, default_value_t = 1)]
    pub rng_seed: u64,
    /// Read piece payloads into memory, as a real client would, instead of discarding them
    /// in the kernel (`MSG_TRUNC`, the default, which leaves more CPU to a seed on the same
    /// machine).
    #[arg(long)]
    pub copy_payload: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A range of source addresses.
#[derive(Clone, Debug)]
pub struct IpRange(pub Vec<IpAddr>);

fn parse_ip_range(s: &str) -> Result<IpRange, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected FIRST-LAST, like 127.0.0.2-127.0.0.250")?;
    let a: std::net::Ipv4Addr = a.parse().map_err(|e| format!("{a}: {e}"))?;
    let b: std::net::Ipv4Addr = b.parse().map_err(|e| format!("{b}: {e}"))?;
    let (a, b) = (u32::from(a), u32::from(b));
    if b < a || b - a > 65_535 {
        return Err("the range must be ascending and at most 65,536 addresses".into());
    }
    Ok(IpRange((a..=b).map(|n| IpAddr::V4(n.into())).collect()))
}

/// Arguments of `seedbox bench sha1`.
#[derive(Debug, Args)]
pub struct Sha1Args {
    /// Threads hashing at once.
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: usize,
    /// Piece length in bytes.
    #[arg(short = 'l', long, default_value_t = 1 << 20)]
    pub piece_length: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Measure ring's SHA-1 instead of the `sha1` crate's.
    #[arg(long)]
    pub ring: bool,
}

/// Runs `seedbox bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchCommand::Load(a) => return load(a),
        BenchCommand::Sha1(a) => {
            let which = if a.ring {
                Sha1Impl::Ring
            } else {
                Sha1Impl::Sha1Crate
            };
            let rate = sha1_throughput(
                which,
                a.piece_length,
                a.threads,
                Duration::from_secs_f64(a.seconds),
            );
            outln!(
                "sha1 {:?} threads={} piece_length={} {:.3} GB/s",
                which,
                a.threads,
                a.piece_length,
                rate / 1e9
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load(a: LoadArgs) -> anyhow::Result<ExitCode> {
    let torrent = Torrent::load(&a.torrent)?;
    let config = LoadConfig {
        target: a.addr,
        info_hash: torrent.info_hash,
        geometry: torrent.geometry(),
        conns: a.conns.max(1),
        queue: a.queue.max(1),
        warmup: Duration::from_secs_f64(a.warmup),
        duration: Duration::from_secs_f64(a.duration),
        threads: a.threads.unwrap_or_else(crate::storage::available_threads),
        source_ips: a.source_ips.map(|r| r.0).unwrap_or_default(),
        copy_payload: a.copy_payload,
        rng_seed: a.rng_seed,
    };
    let report = run_load(&config)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "{} connections ({} connected), queue {}: {:.3} Gbit/s, {:.0} blocks/s over {:.1} s",
            report.conns,
            report.connected,
            report.queue,
            report.gbit_per_s,
            report.blocks_per_s,
            report.seconds
        );
        let l = &report.latency_us;
        outln!(
            "request-to-block latency: p50 {} us, p99 {} us, p99.9 {} us, max {} us ({} samples)",
            l.p50,
            l.p99,
            l.p999,
            l.max,
            l.count
        );
        if let Some(to) = report.queue_capped_to {
            outln!(
                "queue capped: {} connections kept {to} requests in flight (the seed's reqq), not {}",
                report.queue_capped_conns, report.queue
            );
        }
        outln!("errors: {}", report.errors);
        let timeline: Vec<String> = report
            .timeline_gbit_per_s
            .iter()
            .map(|g| format!("{g:.2}"))
            .collect();
        outln!("per second (Gbit/s): {}", timeline.join(" "));
    }
    if report.connected == 0 {
        anyhow::bail!("no connection to {} completed the handshake", a.addr);
    }
    Ok(ExitCode::SUCCESS)
}
