//! `seedbox create`.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `seedbox create`.
#[derive(Debug, Args)]
pub struct CreateArgs {}

/// Runs `seedbox create`.
pub fn run(_args: CreateArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("create")
}
