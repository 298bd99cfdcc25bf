//! `seedbox get` against real seeds (libtorrent, transmission) and misbehaving ones.

mod support;

#[path = "support/fake_seed.rs"]
mod fake_seed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fake_seed::{FakeSeed, Misbehaviour};
use support::*;

/// A torrent of MULTI_FILES (32 KiB pieces) in a fresh folder: (dir, torrent path).
fn multi_file_release() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir_in(dir.path(), "seed");
    write_tree(&seed, MULTI_FILES);
    let t = dir.path().join("release.torrent");
    create(&seed.join("release"), &t, &["-l", "32K"]);
    (dir, t)
}

/// Runs `seedbox get TORRENT -o OUT --listen 127.0.0.1:0` with a `--peer` for each of
/// `peers` and `extra`, within 2 minutes.
fn run_get(torrent: &Path, out: &Path, peers: &[String], extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec![
        "get".into(),
        torrent.to_str().unwrap().into(),
        "-o".into(),
        out.to_str().unwrap().into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    for p in peers {
        args.push("--peer".into());
        args.push(p.clone());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = seedbox()
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_timeout(child, Duration::from_secs(120))
}

/// [`run_get`] with `--json`: (exit code, the JSON report, stderr).
fn get(
    torrent: &Path,
    out: &Path,
    peers: &[String],
    extra: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let extra: Vec<&str> = std::iter::once("--json")
        .chain(extra.iter().copied())
        .collect();
    let o = run_get(torrent, out, peers, &extra);
    let report = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code(),
        report,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_same_tree(a: &Path, b: &Path) {
    for (rel, _) in MULTI_FILES {
        let rel = rel.trim_start_matches("release/");
        let x = std::fs::read(a.join(rel)).unwrap();
        let y = std::fs::read(b.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(x == y, "{rel} differs");
    }
}

#[test]
fn downloads_multi_file_from_a_libtorrent_seed() {
    let (dir, t) = multi_file_release();
    let seed = LtPeer::seed(&t, &dir.path().join("seed"), &[]);
    let out = dir.path().join("out");
    let (code, report, err) = get(
        &t,
        &out,
        &[format!("127.0.0.1:{}", seed.port)],
        &["--linger", "0"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["complete"], true);
    assert_same_tree(&dir.path().join("seed/release"), &out.join("release"));
}

#[test]
fn downloads_multi_file_from_a_transmission_seed() {
    let (dir, t) = multi_file_release();
    let tr = Transmission::seed(&t, &dir.path().join("seed"));
    let out = dir.path().join("out");
    let (code, report, err) = get(
        &t,
        &out,
        &[format!("127.0.0.1:{}", tr.peer_port)],
        &["--linger", "0"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["complete"], true);
    assert_same_tree(&dir.path().join("seed/release"), &out.join("release"));
}

fn content_of(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for (rel, _) in MULTI_FILES {
        all.extend(std::fs::read(dir.join(rel)).unwrap());
    }
    all
}

/// `seedbox get` fetches the multi-file release from a misbehaving fake seed and a good
/// libtorrent seed together; returns its report after checking the result is byte-exact.
fn get_beside(misbehaviour: Misbehaviour) -> serde_json::Value {
    let (dir, t) = multi_file_release();
    let torrent = seedbox::metainfo::Torrent::load(&t).unwrap();
    let bad = FakeSeed::start(&torrent, content_of(&dir.path().join("seed")), misbehaviour);
    let good = LtPeer::seed(&t, &dir.path().join("seed"), &[]);
    let out = dir.path().join("out");
    let peers = [
        format!("127.0.0.1:{}", bad.port),
        format!("127.0.0.1:{}", good.port),
    ];
    let (code, report, err) = get(&t, &out, &peers, &["--linger", "0"]);
    assert_eq!(code, Some(0), "{err}");
    assert_same_tree(&dir.path().join("seed/release"), &out.join("release"));
    report
}

#[test]
fn corrupt_blocks_are_refetched_and_the_sender_banned_on_the_second_offence() {
    let report = get_beside(Misbehaviour::CorruptEveryPiece);
    assert!(report["hash_failures"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["banned"], 1, "{report}");
}

#[test]
fn a_peer_disconnecting_mid_block_costs_nothing() {
    let report = get_beside(Misbehaviour::DisconnectMidBlock { blocks: 3 });
    assert_eq!(report["hash_failures"], 0, "{report}");
}

#[test]
fn killed_halfway_resumes_without_refetching_verified_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir_in(dir.path(), "seed");
    write_tree(&seed_dir, &[("big.bin", 8 << 20)]);
    let t = dir.path().join("big.torrent");
    create(&seed_dir.join("big.bin"), &t, &["-l", "64K"]);
    // A seed limited to 2 MiB/s: the 8 MiB download takes about 4 s.
    let seed = LtPeer::seed(&t, &seed_dir, &["--upload-limit", "2097152"]);
    let out = dir.path().join("out");
    let mut child = seedbox()
        .args([
            "get",
            t.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--quiet",
        ])
        .args(["--peer", &format!("127.0.0.1:{}", seed.port)])
        .spawn()
        .unwrap();
    // Kill once a good part of the file is on disk (at least 16 whole pieces equal to the
    // source), rather than after a fixed time that a loaded machine may not honour.
    let source = std::fs::read(seed_dir.join("big.bin")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let on_disk = std::fs::read(out.join("big.bin")).unwrap_or_default();
        let good = on_disk
            .chunks(64 << 10)
            .zip(source.chunks(64 << 10))
            .filter(|(a, b)| a == b)
            .count();
        if good >= 16 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (code, report, err) = get(
        &t,
        &out,
        &[format!("127.0.0.1:{}", seed.port)],
        &["--linger", "0"],
    );
    assert_eq!(code, Some(0), "{err}");
    let resumed = report["resumed_pieces"].as_u64().unwrap();
    assert!(resumed > 0 && resumed < 128, "{report}");
    assert!(report["downloaded"].as_u64().unwrap() < 8 << 20, "{report}");
    assert_same_file(&seed_dir.join("big.bin"), &out.join("big.bin"));
}

#[test]
fn a_full_disk_is_a_clear_error_and_nothing_is_reported_complete() {
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir_in(dir.path(), "seed");
    write_tree(&seed_dir, &[("big.bin", 4 << 20)]);
    let t = dir.path().join("big.torrent");
    create(&seed_dir.join("big.bin"), &t, &[]);
    let small = dir_in(dir.path(), "small");
    let _mount = TmpfsMount::new(&small, "1m");
    let (code, report, err) = get(&t, &small, &["127.0.0.1:9".into()], &["--linger", "0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not enough disk space"), "{err}");
    assert!(
        report.get("complete").is_none(),
        "no report may claim anything: {report}"
    );
    assert!(report["error"]
        .as_str()
        .unwrap()
        .contains("not enough disk space"));
    assert!(
        !small.join("big.bin").exists(),
        "a failed get left a file behind"
    );
}

/// A get that cannot start (its listen port is taken) leaves no empty file behind.
#[test]
fn a_get_that_cannot_listen_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir_in(dir.path(), "seed");
    write_tree(&seed_dir, &[("one.bin", 100_000)]);
    let t = dir.path().join("one.torrent");
    create(&seed_dir.join("one.bin"), &t, &[]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = dir_in(dir.path(), "out");
    let o = run(&[
        "get",
        t.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--listen",
        &taken.local_addr().unwrap().to_string(),
        "--peer",
        "127.0.0.1:9",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("cannot listen"),
        "{v}"
    );
    assert!(
        !out.join("one.bin").exists(),
        "a failed get left a file behind"
    );
}

/// A small tmpfs mounted for the test's lifetime (needs root, as CI has).
struct TmpfsMount(PathBuf);

impl TmpfsMount {
    fn new(at: &Path, size: &str) -> TmpfsMount {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the full-disk test needs root to mount a small tmpfs (mount -t tmpfs)"
        );
        TmpfsMount(at.to_owned())
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Serves `body` at `path` over HTTP on loopback (404 elsewhere) from a thread, for as many
/// requests as come; returns the base URL.
fn serve_http(path: &'static str, body: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head);
            let wanted = head.split_whitespace().nth(1).unwrap_or("");
            let reply = if wanted == path {
                let mut r = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: application/x-bittorrent\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(&body);
                r
            } else {
                b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
            };
            let _ = stream.write_all(&reply);
        }
    });
    base
}

#[test]
fn downloads_from_an_http_url_of_the_torrent_with_mapped_writes() {
    let (dir, t) = multi_file_release();
    let seed = LtPeer::seed(&t, &dir.path().join("seed"), &[]);
    let base = serve_http("/torrents/release.torrent", std::fs::read(&t).unwrap());
    let url = PathBuf::from(format!("{base}/torrents/release.torrent"));
    let out = dir.path().join("out");
    let (code, report, err) = get(
        &url,
        &out,
        &[format!("127.0.0.1:{}", seed.port)],
        &["--linger", "0", "--write-mode", "mapped"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["complete"], true);
    assert_same_tree(&dir.path().join("seed/release"), &out.join("release"));

    // A URL that is not there: one clear line, exit 1, nothing created.
    let missing = PathBuf::from(format!("{base}/torrents/nope.torrent"));
    let out2 = dir.path().join("out2");
    let (code, _, err) = get(&missing, &out2, &[], &["--linger", "0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404"), "{err}");
    assert!(!out2.join("release").exists());
}

#[test]
fn max_upload_rate_holds_back_what_a_lingering_get_serves() {
    let (dir, t) = multi_file_release();
    // The seed ignores PEX too: the get's would tell it of the leecher, which it would dial.
    let seed = LtPeer::seed(&t, &dir.path().join("seed"), &["--disable-pex"]);
    // seedbox get fetches from the libtorrent seed, then lingers, serving at most 100 kB/s.
    let port = free_port();
    let out = dir.path().join("out");
    let getter = seedbox()
        .args([
            "get",
            t.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--peer",
            &format!("127.0.0.1:{}", seed.port),
            "--linger",
            "60s",
            "--max-upload-rate",
            "100kB/s",
            "--quiet",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _getter = Kill(getter);
    // A libtorrent leecher that knows only the get (the libtorrent seed stays up for the get,
    // but neither learns of the other: no tracker, and both ignore the get's PEX).
    let leech_dir = dir_in(dir.path(), "leech");
    let mut leech = LtPeer::leech(
        &t,
        &leech_dir,
        &["--connect", &format!("127.0.0.1:{port}"), "--disable-pex"],
    );
    let done = leech
        .wait_for("DONE", Duration::from_secs(90))
        .expect("the leecher did not finish");
    let seconds: f64 = done[5..].trim().parse().unwrap();
    assert_same_tree(&dir.path().join("seed/release"), &leech_dir.join("release"));
    // 351,009 bytes at 100 kB/s, less a 64 KiB burst: at least 2.8 s (unlimited: well under 1 s).
    let total: usize = MULTI_FILES.iter().map(|(_, n)| n).sum();
    let floor = (total as f64 - 65_536.0) / 100_000.0;
    assert!(
        seconds >= floor * 0.95,
        "{seconds} s < {floor} s: the limit did not hold"
    );
    drop(seed);
}

/// With stderr not a terminal (a log, a pipe) there is no progress bar: `get` prints a
/// progress line instead (the first after a second, then every 10 s), which the old `get`
/// never did.
#[test]
fn without_a_terminal_get_prints_progress_lines() {
    let (dir, t) = multi_file_release();
    // 351 KB at 100 kB/s: about 3.5 s, time for the first line.
    let seed = LtPeer::seed(&t, &dir.path().join("seed"), &["--upload-limit", "100000"]);
    let out = dir.path().join("dl");
    let o = run_get(
        &t,
        &out,
        &[format!("127.0.0.1:{}", seed.port)],
        &["--no-tracker", "--no-dht"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("release: ") && l.contains("% ") && l.contains(" of "))
        .collect();
    assert!(!lines.is_empty(), "no progress line in: {err}");
    assert!(lines[0].contains("peers"), "{}", lines[0]);
    assert_same_tree(&dir.path().join("seed/release"), &out.join("release"));
}
