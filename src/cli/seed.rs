//! `seedbox seed`.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `seedbox seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {}

/// Runs `seedbox seed`.
pub fn run(_args: SeedArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("seed")
}
