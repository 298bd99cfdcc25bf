//! Serving as a web seed (BEP 19): `seedbox seed --web-seed ADDR:PORT` serves every torrent's
//! files as plain HTTP with `Range` support, read from the same mappings the peer wire sends
//! from, so that clients given a `url-list` pointing here (`create --web-seed URL`,
//! `seed --web-seed-url URL`) download over HTTP.
//!
//! Paths follow BEP 19 for a URL ending in `/`: `/NAME` for a single-file torrent,
//! `/NAME/dir/file` for a file of a multi-file torrent, percent-encoded. Request parsing, path
//! and range resolution and reply heads are sans-IO ([`http`], [`resolve_file`]); per-client
//! limits too ([`limits`]); the listener is in [`server`], on a thread of its own.

pub mod http;
pub mod limits;
pub mod server;

use std::sync::Arc;

use crate::engine::SeedTorrent;
use crate::metainfo::Torrent;
pub use http::{ByteRange, Refusal, WebRequest};
pub use server::{WebSeedConfig, WebSeedServer, WebSeedStats};

/// Where the web seed finds the torrents it serves.
pub trait WebSeedCatalog: Send + Sync {
    /// The torrent named `name` that is being served now (not paused, stopped or being
    /// re-checked).
    fn find(&self, name: &str) -> Option<Arc<SeedTorrent>>;
}

/// The file a request's path components name in `torrent` (whose name is `components[0]`):
/// its offset in the content and its length. A padding file or a folder is not a file.
pub fn resolve_file(torrent: &Torrent, components: &[String]) -> Result<(u64, u64), Refusal> {
    let not_found = || {
        Refusal::new(
            404,
            format!("{} has no file /{}", torrent.name, components.join("/")),
        )
    };
    match components.split_first() {
        Some((name, rest)) if *name == torrent.name => {
            if !torrent.multi_file {
                return match (rest.is_empty(), torrent.files.first()) {
                    (true, Some(f)) => Ok((f.offset, f.length)),
                    _ => Err(not_found()),
                };
            }
            torrent
                .files
                .iter()
                .find(|f| !f.padding && f.path == rest)
                .map(|f| (f.offset, f.length))
                .ok_or_else(not_found)
        }
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::{NewFile, TorrentBuilder};

    fn torrent(files: Option<Vec<(&str, u64)>>) -> Torrent {
        let (length, files) = match files {
            Some(f) => (
                f.iter().map(|(_, l)| l).sum(),
                Some(
                    f.into_iter()
                        .map(|(p, length)| NewFile {
                            path: p.split('/').map(String::from).collect(),
                            length,
                        })
                        .collect::<Vec<_>>(),
                ),
            ),
            None => (100, None),
        };
        let pieces = (length.div_ceil(16384) as usize).max(1);
        let b = TorrentBuilder {
            name: "rel ease".into(),
            files,
            length,
            piece_length: 16384,
            pieces: vec![0; 20 * pieces],
            ..Default::default()
        };
        Torrent::from_bytes(&b.encode()).unwrap()
    }

    fn c(p: &str) -> Vec<String> {
        p.split('/').map(String::from).collect()
    }

    #[test]
    fn single_file_is_its_name() {
        let t = torrent(None);
        assert_eq!(resolve_file(&t, &c("rel ease")), Ok((0, 100)));
        assert_eq!(resolve_file(&t, &c("rel ease/x")).unwrap_err().status, 404);
        assert_eq!(resolve_file(&t, &c("other")).unwrap_err().status, 404);
    }

    #[test]
    fn multi_file_paths_name_files_not_folders() {
        let t = torrent(Some(vec![
            ("a.bin", 10),
            ("sub/b.bin", 20),
            ("sub/c.bin", 5),
        ]));
        assert_eq!(resolve_file(&t, &c("rel ease/a.bin")), Ok((0, 10)));
        assert_eq!(resolve_file(&t, &c("rel ease/sub/b.bin")), Ok((10, 20)));
        assert_eq!(resolve_file(&t, &c("rel ease/sub/c.bin")), Ok((30, 5)));
        for missing in [
            "rel ease",
            "rel ease/sub",
            "rel ease/b.bin",
            "rel ease/sub/b.bin/x",
        ] {
            assert_eq!(
                resolve_file(&t, &c(missing)).unwrap_err().status,
                404,
                "{missing}"
            );
        }
    }
}
