//! `seedbox tracker`.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `seedbox tracker`.
#[derive(Debug, Args)]
pub struct TrackerArgs {}

/// Runs `seedbox tracker`.
pub fn run(_args: TrackerArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("tracker")
}
