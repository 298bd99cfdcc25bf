//! `seedbox seed --state DIR`: resume data spares unchanged torrents their check at the next
//! start (a libtorrent leecher then downloads byte-exact), a torrent whose file changed is
//! checked in full (only it), a bad piece is never served, and damaged resume data is never
//! trusted.

mod seed_support;
mod support;

use std::path::Path;
use std::time::Duration;

use seed_support::{assert_same_file, create_release, lt_leech, require_libtorrent, RawPeer, Seed};

fn start(dir: &Path) -> Seed {
    Seed::start(
        &[
            "a.bin.torrent",
            "b.bin.torrent",
            "--state",
            "state",
            "--threads",
            "2",
            "--stats-every",
            "0",
        ],
        dir,
    )
}

fn stop(seed: Seed) -> String {
    let (status, err) = seed.terminate();
    assert!(status.success(), "{status}\n{err}");
    err
}

/// The lines of `log` about `hash` that contain `what`.
fn count(log: &str, hash: &str, what: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(hash) && l.contains(what))
        .count()
}

fn hex20(hex: &str) -> [u8; 20] {
    hex::decode(hex).unwrap().try_into().unwrap()
}

#[test]
fn restart_serves_unchanged_torrents_without_a_rehash_and_rechecks_a_changed_one() {
    require_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    create_release(dir, "a.bin", 3 << 20, 1);
    create_release(dir, "b.bin", 2 << 20, 2);
    let a = support::info_hash_hex(&dir.join("a.bin.torrent"));
    let b = support::info_hash_hex(&dir.join("b.bin.torrent"));

    // First start: full checks, resume data saved for both.
    let log = stop(start(dir));
    assert_eq!(count(&log, &a, "resume data saved"), 1, "{log}");
    assert_eq!(count(&log, &b, "resume data saved"), 1, "{log}");

    // Second start: both served from the resume data, nothing hashed; a leecher gets A.
    let seed = start(dir);
    lt_leech(
        &dir.join("a.bin.torrent"),
        &dir.join("dl-a"),
        seed.addr,
        Duration::from_secs(120),
    );
    assert_same_file(&dir.join("a.bin"), &dir.join("dl-a/a.bin"));
    let log = stop(seed);
    assert_eq!(count(&log, &a, "resume data used"), 1, "{log}");
    assert_eq!(count(&log, &b, "resume data used"), 1, "{log}");
    assert!(!log.contains("pieces checked"), "{log}");

    // One byte of B changed while stopped (same size): B is checked in full and refused,
    // A still trusted and served; no piece of B is served.
    let path = dir.join("b.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40_000] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let seed = start(dir);
    let mut peer_b = RawPeer::connect(seed.addr, None);
    peer_b.send_handshake(hex20(&b), true);
    peer_b.expect_closed(Duration::from_secs(30));
    lt_leech(
        &dir.join("a.bin.torrent"),
        &dir.join("dl-a2"),
        seed.addr,
        Duration::from_secs(120),
    );
    assert_same_file(&dir.join("a.bin"), &dir.join("dl-a2/a.bin"));
    // Exit status 1: a torrent was refused.
    let (status, log) = seed.terminate();
    assert_eq!(status.code(), Some(1), "{log}");
    assert_eq!(count(&log, &a, "resume data used"), 1, "{log}");
    assert_eq!(count(&log, &b, "modified since verified"), 1, "{log}");
    assert_eq!(
        count(&log, &b, "fail their hash (first: piece 2)"),
        1,
        "{log}"
    );
    assert!(!dir.join(format!("state/{b}.resume")).exists());

    // B's byte restored: its full check passes again (with a new mtime) and is saved.
    bytes[40_000] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let log = stop(start(dir));
    assert_eq!(count(&log, &b, "resume data saved"), 1, "{log}");
}

#[test]
fn damaged_or_foreign_resume_data_is_never_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    create_release(dir, "a.bin", 1 << 20, 3);
    create_release(dir, "b.bin", 1 << 20, 4);
    let a = support::info_hash_hex(&dir.join("a.bin.torrent"));
    let b = support::info_hash_hex(&dir.join("b.bin.torrent"));
    // Killed (SIGKILL, by drop) once serving: the resume data written before is whole.
    {
        let _seed = start(dir);
    }
    let state = dir.join("state");
    let file_a = state.join(format!("{a}.resume"));
    let file_b = state.join(format!("{b}.resume"));
    let good = std::fs::read(&file_a).unwrap();
    // A cut short (as a non-atomic write interrupted would leave it); B's replaced by A's.
    std::fs::write(&file_a, &good[..good.len() / 2]).unwrap();
    std::fs::copy(&file_a, dir.join("a-cut")).unwrap();
    std::fs::write(&file_b, &good).unwrap();
    let log = stop(start(dir));
    assert!(
        log.contains(&format!("{a}.resume: resume data not used")),
        "{log}"
    );
    assert!(log.contains("resume data of another torrent"), "{log}");
    assert!(!log.contains("resume data used"), "{log}");
    assert_eq!(log.matches("pieces checked").count(), 2, "{log}");
    // Both saved again after their checks; the next start trusts them.
    let log = stop(start(dir));
    assert_eq!(log.matches("resume data used").count(), 2, "{log}");
    // A second process on the same state folder is refused with a clear error.
    let seed = start(dir);
    let out = support::seedbox()
        .args(["seed", "a.bin.torrent", "--state", "state", "--no-tracker"])
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("in use by another seedbox"),
        "{err}"
    );
    stop(seed);
}
