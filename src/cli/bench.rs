//! `seedbox bench`.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `seedbox bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {}

/// Runs `seedbox bench`.
pub fn run(_args: BenchArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("bench")
}
