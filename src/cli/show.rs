//! `seedbox show`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::metainfo::Torrent;

/// Arguments of `seedbox show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The JSON description of a torrent (also used by other commands' `--json`).
pub fn torrent_json(t: &Torrent) -> serde_json::Value {
    let files: Vec<_> = t
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.display_path(),
                "length": f.length,
                "offset": f.offset,
                "padding": f.padding,
            })
        })
        .collect();
    json!({
        "name": t.name,
        "info_hash": t.info_hash.to_hex(),
        "info_hash_v2": t.info_hash_v2.map(hex::encode),
        "piece_length": t.piece_length,
        "piece_count": t.piece_count(),
        "total_length": t.total_length,
        "multi_file": t.multi_file,
        "private": t.private,
        "files": files,
        "trackers": t.trackers(),
        "announce_list": t.announce_list,
        "web_seeds": t.url_list,
        "comment": t.comment,
        "created_by": t.created_by,
        "creation_date": t.creation_date,
        "source": t.source,
        "magnet": t.magnet(),
    })
}

/// Runs `seedbox show`.
pub fn run(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let t = Torrent::load(&args.torrent)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&torrent_json(&t))?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("name          {}", t.name);
    outln!("info-hash     {}", t.info_hash);
    if let Some(v2) = t.info_hash_v2 {
        outln!("info-hash v2  {}", hex::encode(v2));
    }
    outln!("piece length  {}", t.piece_length);
    outln!("pieces        {}", t.piece_count());
    outln!("total size    {} bytes", t.total_length);
    if t.private {
        outln!("private       yes");
    }
    for (i, tier) in t.announce_list.iter().enumerate() {
        outln!("tier {i:<8} {}", tier.join(" "));
    }
    if t.announce_list.is_empty() {
        if let Some(a) = &t.announce {
            outln!("announce      {a}");
        }
    }
    for w in &t.url_list {
        outln!("web seed      {w}");
    }
    if let Some(c) = &t.comment {
        outln!("comment       {c}");
    }
    if let Some(c) = &t.created_by {
        outln!("created by    {c}");
    }
    if let Some(d) = t.creation_date {
        outln!("creation date {d}");
    }
    if let Some(s) = &t.source {
        outln!("source        {s}");
    }
    outln!("magnet        {}", t.magnet());
    let shown: Vec<_> = t.files.iter().filter(|f| !f.padding).collect();
    outln!("files         {}", shown.len());
    for f in shown {
        outln!("  {:>14}  {}", f.length, f.display_path());
    }
    Ok(ExitCode::SUCCESS)
}
