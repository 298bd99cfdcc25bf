//! `seedbox verify`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use crate::metainfo::Torrent;
use crate::storage::{self, FileProblem};

/// Arguments of `seedbox verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The folder holding the torrent's content under its name (a client's save path).
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    pub data: PathBuf,
    /// Hashing threads (default: all cores).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Runs `seedbox verify`: exit 0 only when every file is present with its size and every
/// piece matches.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let torrent = Torrent::load(&args.torrent)?;
    let threads = args.threads.unwrap_or_else(storage::available_threads);
    let quiet = args.quiet || args.json;
    let (report, _) =
        super::progress::with_byte_progress("verifying", torrent.total_length, quiet, |p| {
            storage::verify(&torrent, &args.data, threads, p)
        });
    let secs = started.elapsed().as_secs_f64();
    let ok = report.is_complete();
    if args.json {
        let problems: Vec<_> = report
            .file_problems
            .iter()
            .map(|p| match p {
                FileProblem::Missing { path } => json!({"path": path, "problem": "missing"}),
                FileProblem::WrongSize {
                    path,
                    actual,
                    expected,
                } => json!({"path": path, "problem": "wrong size", "actual": actual, "expected": expected}),
                FileProblem::Unreadable { path, reason } => {
                    json!({"path": path, "problem": "unreadable", "reason": reason})
                }
            })
            .collect();
        let bad_files: Vec<_> = report
            .bad_files
            .iter()
            .map(|(i, pieces)| json!({"path": torrent.files[*i].display_path(), "pieces": pieces}))
            .collect();
        let out = json!({
            "ok": ok,
            "name": torrent.name,
            "info_hash": torrent.info_hash.to_hex(),
            "pieces": torrent.piece_count(),
            "good_pieces": report.good_count(),
            "bad_pieces": report.bad_pieces,
            "missing_pieces": report.missing_pieces,
            "file_problems": problems,
            "bad_files": bad_files,
            "seconds": secs,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for p in &report.file_problems {
            outln!("file problem: {p}");
        }
        for (i, pieces) in &report.bad_files {
            outln!(
                "bad file: {} (pieces {})",
                torrent.files[*i].display_path(),
                ranges(pieces)
            );
        }
        if !report.bad_pieces.is_empty() {
            outln!("bad pieces: {}", ranges(&report.bad_pieces));
        }
        if !report.missing_pieces.is_empty() {
            outln!("missing pieces: {}", ranges(&report.missing_pieces));
        }
        outln!(
            "{}: {}/{} pieces good, {} bytes checked in {secs:.2} s",
            if ok { "OK" } else { "FAILED" },
            report.good_count(),
            torrent.piece_count(),
            torrent.total_length
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FAILURE)
    })
}

/// `1-3,7` style listing of sorted piece numbers.
fn ranges(pieces: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        let start = pieces[i];
        let mut end = start;
        while i + 1 < pieces.len() && pieces[i + 1] == end + 1 {
            i += 1;
            end = pieces[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}
