//! Turning a target into a torrent ready to serve: a `.torrent` whose data lives under the
//! data folder, or a file or folder whose torrent is created beside it (as `seedbox create`
//! would), then checked against its piece hashes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::metainfo::{self, CreateOptions, Torrent};
use crate::storage::{self, MappedStorage};

/// A torrent loaded from a target, before its data is checked.
pub struct Loaded {
    /// The metainfo.
    pub torrent: Torrent,
    /// The folder its content lives under.
    pub dir: PathBuf,
    /// The .torrent file's bytes.
    pub bytes: Vec<u8>,
    /// The .torrent file written for a file or folder target.
    pub created: Option<PathBuf>,
}

/// Whether `target` is a `.torrent` file (else a file or folder to share).
pub fn is_torrent_file(target: &Path) -> bool {
    target.is_file() && has_torrent_extension(target)
}

/// Whether `path`'s name ends in `.torrent` (any case).
pub fn has_torrent_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("torrent"))
}

/// Loads a `.torrent` target, or creates the torrent of a file or folder beside it (announcing
/// to `announce`, when given). `web_seeds` go into the torrent's `url-list`: written into a
/// created torrent; added in memory to a loaded one (the file is left alone; the info-hash
/// does not change), so its magnet link and the tracker's pages carry them. A private
/// torrent (BEP 27) gets none.
pub fn load_target(
    target: &Path,
    data: &Path,
    threads: usize,
    announce: Option<String>,
    web_seeds: &[String],
) -> anyhow::Result<Loaded> {
    if is_torrent_file(target) {
        let mut bytes =
            std::fs::read(target).with_context(|| format!("cannot read {}", target.display()))?;
        let invalid = || format!("{} is not a valid .torrent", target.display());
        let mut torrent = Torrent::from_bytes(&bytes).with_context(invalid)?;
        if !web_seeds.is_empty() {
            if torrent.private {
                // BEP 27: a private torrent's data goes to its tracker's peers only; the web
                // seed refuses it too (service::webseed::server::plan).
                tracing::warn!(
                    "{} is private: no web seed added to it, and the web seed does not serve it",
                    target.display()
                );
            } else {
                bytes = metainfo::add_url_list(&bytes, web_seeds).with_context(invalid)?;
                torrent = Torrent::from_bytes(&bytes).with_context(invalid)?;
            }
        }
        return Ok(Loaded {
            torrent,
            dir: data.to_path_buf(),
            bytes,
            created: None,
        });
    }
    let (torrent, bytes, out) = create_beside(target, threads, announce, web_seeds, None)?;
    Ok(Loaded {
        torrent,
        dir: target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        bytes,
        created: Some(out),
    })
}

/// Creates the torrent of `target` and writes it atomically to `out` (default: beside the
/// target, `NAME.torrent`). Returns the torrent, its bytes and where it was written.
pub fn create_beside(
    target: &Path,
    threads: usize,
    announce: Option<String>,
    web_seeds: &[String],
    out: Option<PathBuf>,
) -> anyhow::Result<(Torrent, Vec<u8>, PathBuf)> {
    let scan = metainfo::scan(target)?;
    let options = CreateOptions {
        threads,
        trackers: announce.into_iter().collect(),
        web_seeds: web_seeds.to_vec(),
        ..CreateOptions::default()
    };
    let (bytes, torrent) = metainfo::create(&scan, &options, &Default::default())?;
    let out = out.unwrap_or_else(|| {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        parent.join(format!("{}.torrent", scan.name))
    });
    write_atomically(&out, &bytes)?;
    Ok((torrent, bytes, out))
}

/// Writes `bytes` to `path` through a `.part` file renamed over it, fsynced first, so that a
/// crash leaves either the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The start-up check: every file present with its size and every piece good (with `skip`,
/// only the files are opened; each piece is hashed on its first request).
pub fn check(
    torrent: &Torrent,
    dir: &Path,
    threads: usize,
    skip: bool,
) -> Result<MappedStorage, String> {
    if skip {
        let layout = storage::Layout::of_torrent(torrent, dir);
        return MappedStorage::open(layout).map_err(|e| e.to_string());
    }
    let started = Instant::now();
    let (report, storage) = storage::verify(torrent, dir, threads, &Default::default());
    if let Some(p) = report.file_problems.first() {
        return Err(p.to_string());
    }
    if !report.is_complete() {
        return Err(failed_pieces(torrent, &report));
    }
    tracing::info!(
        "{}: {} pieces checked in {:.2} s",
        torrent.name,
        torrent.piece_count(),
        started.elapsed().as_secs_f64()
    );
    Ok(storage)
}

/// `N of M pieces fail their hash (first: piece P)`.
fn failed_pieces(torrent: &Torrent, report: &storage::VerifyReport) -> String {
    let bad = report.bad_pieces.len() + report.missing_pieces.len();
    let first = report
        .bad_pieces
        .first()
        .or(report.missing_pieces.first())
        .copied()
        .unwrap_or(0);
    format!(
        "{bad} of {} pieces fail their hash (first: piece {first})",
        torrent.piece_count()
    )
}

/// What a re-check of a served torrent's data found.
pub struct Rechecked {
    /// The data, mapped afresh.
    pub storage: MappedStorage,
    /// The pieces that verified, when some failed (`None`: every piece is good).
    pub good: Option<Vec<bool>>,
    /// Which pieces failed, in words, when some did.
    pub failed: Option<String>,
}

/// The re-check of a torrent whose files changed while it was served: [`check`], except that
/// when every file is there at its size and some pieces fail, the torrent keeps the pieces
/// that verify. An error when a file is missing or of another size, or no piece verifies.
pub fn recheck(torrent: &Torrent, dir: &Path, threads: usize) -> Result<Rechecked, String> {
    let started = Instant::now();
    let (report, storage) = storage::verify(torrent, dir, threads, &Default::default());
    if let Some(p) = report.file_problems.first() {
        return Err(p.to_string());
    }
    tracing::info!(
        "{}: {} of {} pieces good at the re-check ({:.2} s)",
        torrent.name,
        report.good_count(),
        torrent.piece_count(),
        started.elapsed().as_secs_f64()
    );
    if report.is_complete() {
        return Ok(Rechecked {
            storage,
            good: None,
            failed: None,
        });
    }
    let failed = failed_pieces(torrent, &report);
    if report.good_count() == 0 {
        return Err(failed);
    }
    Ok(Rechecked {
        storage,
        good: Some(report.good),
        failed: Some(failed),
    })
}
