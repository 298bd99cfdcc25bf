//! `seedbox verify`.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `seedbox verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {}

/// Runs `seedbox verify`.
pub fn run(_args: VerifyArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("verify")
}
