//! `seedbox bench`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::bench::{sha1_throughput, Sha1Impl};

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
    /// The SHA-1 ceiling: bytes in memory hashed per second (the bound for create/verify).
    Sha1(Sha1Args),
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
            println!(
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
