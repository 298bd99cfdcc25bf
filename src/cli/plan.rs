//! `seedbox plan`.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `seedbox plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {}

/// Runs `seedbox plan`.
pub fn run(_args: PlanArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("plan")
}
