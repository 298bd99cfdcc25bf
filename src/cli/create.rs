//! `seedbox create`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::metainfo::{self, CreateOptions};

/// Arguments of `seedbox create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file or folder to share.
    pub path: PathBuf,
    /// Where to write the torrent (default: NAME.torrent in the current folder).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// A tracker URL; repeat for several (the first becomes `announce`, each its own tier).
    #[arg(short = 'a', long = "announce", value_name = "URL")]
    pub announce: Vec<String>,
    /// Piece length in bytes (a power of two, 16 KiB to 256 MiB; suffixes K/M accepted) or
    /// `auto`: libtorrent's size rule, the smallest power of two from 16 KiB to 16 MiB at
    /// least ten times the square root of the total size (1 MB: 16 KiB; 1 GiB: 512 KiB;
    /// 100 GiB: 4 MiB; see `auto_piece_length` and tuning.md).
    #[arg(short = 'l', long, value_name = "BYTES|auto", default_value = "auto", value_parser = parse_piece_length)]
    pub piece_length: PieceLength,
    /// Mark the torrent private (BEP 27): peers only from its trackers.
    #[arg(short = 'p', long)]
    pub private: bool,
    /// A comment.
    #[arg(short = 'c', long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// A `source` tag in the info dictionary (changes the info-hash).
    #[arg(short = 's', long, value_name = "TEXT")]
    pub source: Option<String>,
    /// A web seed URL (BEP 19); repeat for several.
    #[arg(short = 'w', long = "web-seed", value_name = "URL")]
    pub web_seed: Vec<String>,
    /// Hashing threads (default: all cores).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Leave out the creation date: the same input and options give a byte-identical torrent.
    #[arg(long)]
    pub no_date: bool,
    /// Overwrite OUT if it exists.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// No progress bar.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// A parsed `--piece-length`.
#[derive(Clone, Copy, Debug)]
pub enum PieceLength {
    /// Chosen from the total size.
    Auto,
    /// Fixed.
    Bytes(u32),
}

fn parse_piece_length(s: &str) -> Result<PieceLength, String> {
    if s == "auto" {
        return Ok(PieceLength::Auto);
    }
    let (digits, mult) = match s.to_ascii_lowercase() {
        t if t.ends_with("kib") || t.ends_with('k') => (
            t.trim_end_matches("kib").trim_end_matches('k').to_owned(),
            1024,
        ),
        t if t.ends_with("mib") || t.ends_with('m') => (
            t.trim_end_matches("mib").trim_end_matches('m').to_owned(),
            1024 * 1024,
        ),
        t => (t, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a number of bytes or `auto`"))?;
    let n = n * mult;
    if !(16 * 1024..=256 * 1024 * 1024).contains(&n) || !n.is_power_of_two() {
        return Err(format!(
            "piece length {n} must be a power of two from 16 KiB to 256 MiB"
        ));
    }
    Ok(PieceLength::Bytes(n as u32))
}

/// Options for the library from the command line.
pub fn options(args: &CreateArgs) -> CreateOptions {
    CreateOptions {
        piece_length: match args.piece_length {
            PieceLength::Auto => None,
            PieceLength::Bytes(n) => Some(n),
        },
        trackers: args.announce.clone(),
        web_seeds: args.web_seed.clone(),
        private: args.private,
        comment: args.comment.clone(),
        source: args.source.clone(),
        no_date: args.no_date,
        threads: args.threads.unwrap_or(0),
    }
}

/// Runs `seedbox create`.
pub fn run(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let scan = metainfo::scan(&args.path)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", scan.name)));
    if output.exists() && !args.force {
        anyhow::bail!(
            "{} already exists (use --force to overwrite)",
            output.display()
        );
    }
    let opts = options(&args);
    let total = scan.total_length();
    let (bytes, torrent) =
        super::progress::with_byte_progress("hashing", total, args.quiet, |p| {
            metainfo::create(&scan, &opts, p)
        })?;
    crate::service::load::write_atomically(&output, &bytes)?;
    let secs = started.elapsed().as_secs_f64();
    outln!("created   {}", output.display());
    outln!("name      {}", torrent.name);
    outln!("info-hash {}", torrent.info_hash);
    outln!(
        "pieces    {} x {} bytes, {} bytes in {} files",
        torrent.piece_count(),
        torrent.piece_length,
        torrent.total_length,
        torrent.files.len()
    );
    outln!("magnet    {}", torrent.magnet());
    tracing::debug!(
        "hashed {total} bytes in {secs:.2} s ({:.2} GB/s)",
        total as f64 / secs / 1e9
    );
    Ok(ExitCode::SUCCESS)
}
