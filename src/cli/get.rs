//! `seedbox get`.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `seedbox get`.
#[derive(Debug, Args)]
pub struct GetArgs {}

/// Runs `seedbox get`.
pub fn run(_args: GetArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("get")
}
