//! `seedbox seed --super-seed` (BEP 16): on the wire it shows a peer nothing at first, then a
//! few pieces with `have`; a swarm of libtorrent leechers that also trade among themselves
//! completes byte-exact from it.

mod seed_support;

use std::path::Path;
use std::process::Command;

use seed_support::{assert_same_file, data, require_libtorrent, RawPeer, Seed, PYTHON};

const HAVE: u8 = 4;
const BITFIELD: u8 = 5;
const HAVE_ALL: u8 = 0x0e;
const HAVE_NONE: u8 = 0x0f;

/// A 1 MiB file and its torrent in 16 KiB pieces (64 pieces).
fn release(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("release.bin"), data(1 << 20, 16)).unwrap();
    let torrent = dir.join("release.torrent");
    let st = Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "release.bin", "--piece-length", "16384", "-o"])
        .arg(&torrent)
        .current_dir(dir)
        .status()
        .expect("run seedbox create");
    assert!(st.success());
    torrent
}

#[test]
fn a_super_seed_shows_have_none_then_two_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = release(dir.path());
    let seed = Seed::start(&[torrent.to_str().unwrap(), "--super-seed"], dir.path());
    let info_hash = seed.info_hash(0);
    for fast in [true, false] {
        let mut peer = RawPeer::handshake(seed.addr, info_hash, fast);
        let mut haves = Vec::new();
        let mut first = None;
        while haves.len() < 2 {
            let Some((id, payload)) = peer.read_message().expect("read") else {
                continue;
            };
            assert!(
                id != HAVE_ALL && id != BITFIELD,
                "a super-seed sent message {id}"
            );
            first.get_or_insert(id);
            if id == HAVE {
                haves.push(u32::from_be_bytes(payload[..4].try_into().unwrap()));
            }
        }
        if fast {
            assert_eq!(first, Some(HAVE_NONE));
        }
        assert_ne!(haves[0], haves[1]);
    }
}

#[test]
fn libtorrent_leechers_complete_from_a_super_seed() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let torrent = release(dir.path());
    let seed = Seed::start(
        &[torrent.to_str().unwrap(), "--super-seed", "--threads", "2"],
        dir.path(),
    );
    let n = 5;
    let base = dir.path().join("leechers");
    let out = Command::new(PYTHON)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed_support/lt_swarm.py"))
        .arg(&torrent)
        .arg(&base)
        .arg(seed.addr.ip().to_string())
        .arg(seed.addr.port().to_string())
        .arg(n.to_string())
        .arg("240")
        .output()
        .expect("run the libtorrent swarm");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "libtorrent swarm failed:\n{text}");
    eprintln!("{text}");
    for i in 0..n {
        assert_same_file(
            &dir.path().join("release.bin"),
            &base.join(i.to_string()).join("release.bin"),
        );
    }
    let origin: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("origin "))
        .and_then(|v| v.trim().parse().ok())
        .expect("origin line");
    // A normal seed may send the whole file to every leecher; a super-seed shows each piece
    // to one peer at a time, which fetches the rest from the others.
    assert!(
        origin < n * (1 << 20) / 2,
        "the super-seed sent {origin} bytes to {n} leechers of 1 MiB:\n{text}"
    );
    let (status, _) = seed.terminate();
    assert!(status.success());
}
