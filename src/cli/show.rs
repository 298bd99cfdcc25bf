//! `seedbox show`.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `seedbox show`.
#[derive(Debug, Args)]
pub struct ShowArgs {}

/// Runs `seedbox show`.
pub fn run(_args: ShowArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("show")
}
