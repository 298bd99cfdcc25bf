//! `seedbox sim`.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `seedbox sim`.
#[derive(Debug, Args)]
pub struct SimArgs {}

/// Runs `seedbox sim`.
pub fn run(_args: SimArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("sim")
}
