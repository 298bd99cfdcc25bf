//! Crash safety of `seedbox get` (issue 21 item 4): SIGKILL at random points, a disk without
//! room for the rest of a download, and a peer that sends bad piece data.
//!
//! `get` keeps no resume file: a restart re-hashes what is on disk (src/storage/writable.rs),
//! so a piece counts as done only when its bytes on disk hash right. These tests hold it to
//! that: no restart loses a piece that was good on disk, none counts a bad piece as done, and
//! only what was missing on disk is fetched again.

mod support;

#[path = "support/fake_seed.rs"]
mod fake_seed;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_seed::{FakeSeed, Misbehaviour};
use rand::{Rng, SeedableRng};
use support::*;

const PIECE: usize = 64 << 10;

/// `seedbox verify --json` of the content below `data`.
fn verify(torrent: &Path, data: &Path) -> serde_json::Value {
    let out = seedbox()
        .args(["verify", torrent.to_str().unwrap(), "-d"])
        .arg(data)
        .args(["--json", "-q"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}), {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Pieces of `file` equal to the same pieces of `source` (a cheap look at the disk while
/// `get` runs; `verify` is the judge afterwards).
fn good_pieces(file: &Path, source: &[u8]) -> usize {
    let on_disk = std::fs::read(file).unwrap_or_default();
    on_disk
        .chunks(PIECE)
        .zip(source.chunks(PIECE))
        .filter(|(a, b)| a == b)
        .count()
}

fn get_command(torrent: &Path, out: &Path, seed_port: u16) -> Command {
    let mut cmd = seedbox();
    cmd.args(["get", torrent.to_str().unwrap(), "-o"])
        .arg(out)
        .args(["--listen", "127.0.0.1:0", "--quiet"])
        .args(["--peer", &format!("127.0.0.1:{seed_port}")])
        .env("SEEDBOX_LOG", "info");
    cmd
}

/// The `resumed=N` of get's "resume: pieces already verified on disk" log line (0 without it).
fn resumed_in_log(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter(|l| l.contains("pieces already verified on disk"))
        .find_map(|l| l.split("resumed=").nth(1))
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// A single-file torrent of `len` bytes in 64 KiB pieces, and a libtorrent seed of it limited
/// to `rate` bytes/s: (dir, torrent, source bytes, seed).
fn slow_seed(len: usize, rate: u64) -> (tempfile::TempDir, PathBuf, Vec<u8>, LtPeer) {
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir_in(dir.path(), "seed");
    write_tree(&seed_dir, &[("big.bin", len)]);
    let t = dir.path().join("big.torrent");
    create(&seed_dir.join("big.bin"), &t, &["-l", "64K"]);
    let source = std::fs::read(seed_dir.join("big.bin")).unwrap();
    let seed = LtPeer::seed(&t, &seed_dir, &["--upload-limit", &rate.to_string()]);
    (dir, t, source, seed)
}

/// Starts `get`, waits until at least `at_least` pieces are good on disk (plus a random few
/// milliseconds, so the kill lands anywhere between writes), SIGKILLs it and returns its log.
fn get_then_kill(
    cmd: &mut Command,
    file: &Path,
    source: &[u8],
    at_least: usize,
    rng: &mut impl Rng,
) -> String {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while good_pieces(file, source) < at_least && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(rng.gen_range(0..200)));
    let _ = child.kill(); // SIGKILL
    child.wait().unwrap();
    std::fs::read_to_string(log.path()).unwrap()
}

#[test]
fn get_killed_five_times_at_random_points_loses_no_good_piece_and_ends_byte_exact() {
    let seed_value: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("kill points from seed {seed_value}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed_value);
    // 8 MiB in 128 pieces at 1 MiB/s: about 8 s of transfer spread over the five runs.
    let (dir, t, source, seed) = slow_seed(8 << 20, 1 << 20);
    let pieces = source.len().div_ceil(PIECE) as u64;
    let out = dir.path().join("out");
    let file = out.join("big.bin");
    let mut good_after_kill = 0u64;
    for round in 0..5 {
        let target = good_after_kill as usize + rng.gen_range(4..=20);
        let log = get_then_kill(
            &mut get_command(&t, &out, seed.port),
            &file,
            &source,
            target,
            &mut rng,
        );
        // What the restart counted as done is exactly what was good on disk when the previous
        // run died: no bad piece marked done, no good piece thrown away.
        assert_eq!(
            resumed_in_log(&log),
            good_after_kill,
            "round {round} (seed {seed_value}) resumed a different set than verify found: {log}"
        );
        let v = verify(&t, &out);
        let good = v["good_pieces"].as_u64().unwrap();
        assert!(
            good >= good_after_kill,
            "round {round} (seed {seed_value}): the kill lost good pieces: {good} < \
             {good_after_kill}"
        );
        assert!(good < pieces, "round {round} finished before the kill: {v}");
        good_after_kill = good;
    }
    let o = wait_with_timeout(
        get_command(&t, &out, seed.port)
            .args(["--json", "--linger", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["resumed_pieces"], good_after_kill, "{report}");
    // Only the pieces missing on disk are fetched again (one peer, so no duplicate blocks).
    let missing = (pieces - good_after_kill) * PIECE as u64;
    let downloaded = report["downloaded"].as_u64().unwrap();
    assert!(
        downloaded <= missing,
        "fetched {downloaded} bytes for {missing} missing: {report}"
    );
    assert_eq!(report["hash_failures"], 0, "{report}");
    assert_same_file(&dir.path().join("seed/big.bin"), &file);
    assert_eq!(verify(&t, &out)["ok"], true);
}

/// A small tmpfs mounted for the test's lifetime (needs root, as CI has).
struct TmpfsMount(PathBuf);

impl TmpfsMount {
    fn new(at: &Path, size_kib: u64) -> TmpfsMount {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "this test needs root to mount a small tmpfs");
        TmpfsMount(at.to_owned())
    }

    fn resize(&self, size_kib: u64) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size_kib}k")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A partial download on a disk without room for the rest (here: moved there as a sparse
/// file, as `cp` and `rsync --sparse` do; a `get` that started on that disk itself reserves
/// every block up front and fails before fetching anything, see get_interop.rs).
#[test]
fn a_full_disk_is_a_clear_error_keeps_good_pieces_and_resumes_once_there_is_room() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let (dir, t, source, seed) = slow_seed(4 << 20, 1 << 20);
    let elsewhere = dir.path().join("elsewhere");
    get_then_kill(
        &mut get_command(&t, &elsewhere, seed.port),
        &elsewhere.join("big.bin"),
        &source,
        16,
        &mut rng,
    );
    let good = verify(&t, &elsewhere)["good_pieces"].as_u64().unwrap();
    assert!(good >= 16, "{good}");

    let small = dir_in(dir.path(), "small");
    // Room for the good pieces and a little more, not for the whole 4 MiB.
    let mount = TmpfsMount::new(&small, good * 64 + 512);
    let cp = Command::new("cp")
        .arg("--sparse=always")
        .arg(elsewhere.join("big.bin"))
        .arg(small.join("big.bin"))
        .status()
        .unwrap();
    assert!(cp.success());
    let full = wait_with_timeout(
        get_command(&t, &small, seed.port)
            .args(["--json", "--linger", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{err}");
    assert!(err.contains("not enough disk space"), "{err}");
    let claimed: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap_or_default();
    // With --json the error comes as {"error": ...} and nothing else: no report of progress.
    assert!(
        claimed.is_null()
            || claimed
                .as_object()
                .is_some_and(|o| o.len() == 1 && o.contains_key("error")),
        "no report may claim anything: {claimed}"
    );
    // Read with read(2), not `verify`: verify maps the file, and a read fault on a hole of a
    // full tmpfs needs a page, which is SIGBUS.
    assert_eq!(
        good_pieces(&small.join("big.bin"), &source) as u64,
        good,
        "the failed start lost good pieces"
    );

    mount.resize(8 << 10);
    let o = wait_with_timeout(
        get_command(&t, &small, seed.port)
            .args(["--json", "--linger", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["resumed_pieces"], good, "{report}");
    assert_same_file(&dir.path().join("seed/big.bin"), &small.join("big.bin"));
}

/// A fake seed that corrupts one block of every piece it serves, beside a good libtorrent
/// seed: `get` bans it after `BAN_STRIKES` failed pieces (the documented rule), finishes from
/// the good seed byte-exact, and reports the failures and the bytes they wasted.
#[test]
fn a_peer_sending_bad_data_is_banned_and_the_wasted_bytes_reported() {
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir_in(dir.path(), "seed");
    write_tree(&seed_dir, &[("data.bin", 2 << 20)]);
    let t = dir.path().join("data.torrent");
    create(&seed_dir.join("data.bin"), &t, &["-l", "32K"]);
    let torrent = seedbox::metainfo::Torrent::load(&t).unwrap();
    let content = std::fs::read(seed_dir.join("data.bin")).unwrap();
    let bad = FakeSeed::start(&torrent, content, Misbehaviour::CorruptEveryPiece);
    let good = LtPeer::seed(&t, &seed_dir, &[]);
    let out = dir.path().join("out");
    let o = wait_with_timeout(
        seedbox()
            .args(["get", t.to_str().unwrap(), "-o"])
            .arg(&out)
            .args(["--listen", "127.0.0.1:0", "--json", "--linger", "0"])
            .args(["--peer", &format!("127.0.0.1:{}", bad.port)])
            .args(["--peer", &format!("127.0.0.1:{}", good.port)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failures = report["hash_failures"].as_u64().unwrap();
    let strikes = u64::from(seedbox::engine::download::BAN_STRIKES);
    assert!(failures >= strikes, "{report}");
    assert_eq!(report["banned"], 1, "{report}");
    assert!(stderr.contains("banning peer for bad data"), "{stderr}");
    // Every failed piece's bytes were fetched for nothing.
    let wasted = report["wasted"].as_u64().unwrap();
    assert!(wasted >= failures * (32 << 10), "{report}");
    assert_same_file(&seed_dir.join("data.bin"), &out.join("data.bin"));
}
