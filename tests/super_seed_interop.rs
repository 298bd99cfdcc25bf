//! `seedbox seed --super-seed` (BEP 16): on the wire it shows a peer nothing at first, then a
//! few pieces with `have`; a swarm of libtorrent leechers that also trade among themselves
//! completes byte-exact from it, and so does a swarm of `seedbox get` processes (which do not
//! announce to the origin the pieces it revealed to them) leaving as soon as they complete.

mod seed_support;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

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

/// `seedbox get` suppresses `have` for pieces a peer already has, so the origin never hears of
/// the pieces it revealed to a getter from that getter: it must learn of them from the others'
/// `have`s or the getter's `not interested`, or the swarm stalls.
#[test]
fn seedbox_get_leechers_leaving_on_completion_complete_from_a_super_seed() {
    let dir = tempfile::tempdir().unwrap();
    let size = 4usize << 20;
    std::fs::write(dir.path().join("release.bin"), data(size, 17)).unwrap();
    // Rate-limited, so that the getters must trade among themselves; they find each other
    // through the embedded tracker.
    let seed = Seed::start_announcing(
        &[
            "release.bin",
            "--super-seed",
            "--threads",
            "2",
            "--tracker-listen",
            "127.0.0.1:0",
            "--max-upload-rate",
            "1MB/s",
        ],
        dir.path(),
    );
    let torrent = dir.path().join("release.bin.torrent");
    let n = 6;
    let mut getters = Vec::new();
    for i in 0..n {
        let out = dir.path().join(format!("get{i}"));
        let child = Command::new(env!("CARGO_BIN_EXE_seedbox"))
            .args([
                "get",
                torrent.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .args(["--listen", "127.0.0.1:0", "--linger", "0", "--json", "-q"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run seedbox get");
        getters.push((out, child));
        std::thread::sleep(Duration::from_millis(300));
    }
    let (mut down, mut up) = (0u64, 0u64);
    for (i, (out, child)) in getters.into_iter().enumerate() {
        let o = support::wait_with_timeout(child, Duration::from_secs(240));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "get {i}: {err}");
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["complete"], true, "get {i}: {report}");
        down += report["downloaded"].as_u64().unwrap() + report["wasted"].as_u64().unwrap();
        up += report["uploaded"].as_u64().unwrap();
        assert_same_file(&dir.path().join("release.bin"), &out.join("release.bin"));
    }
    // What the getters received and did not send each other came from the origin. In this
    // setup a normal seed sent 1.42-1.46x the file (2 runs), the super-seed 1.01-1.02x.
    let origin = down - up;
    assert!(
        origin < size as u64 * 12 / 10,
        "the super-seed sent {origin} bytes to {n} leechers of {size}"
    );
    let (status, _) = seed.terminate();
    assert!(status.success());
}
