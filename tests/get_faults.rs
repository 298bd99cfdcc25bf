//! `seedbox get` facing faults in the field: a seed serving bad data beside a good one, no
//! usable peer, trackers answering with HTTP errors, Ctrl-C.

mod support;

#[path = "seed_support/mod.rs"]
mod seed_support;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use seed_support::Seed;
use support::*;

/// Pieces of `data.bin` whose bytes the lying seed flips.
const BAD_PIECES: [u64; 6] = [1, 4, 7, 9, 14, 22];
const PIECE: u64 = 64 << 10;

/// Flips 16 bytes in the middle of each of `BAD_PIECES` of `path`, in place.
fn flip_pieces(path: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    for piece in BAD_PIECES {
        let at = piece * PIECE + PIECE / 2 + 100;
        let mut bytes = [0u8; 16];
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut bytes).unwrap();
        for b in &mut bytes {
            *b ^= 0xa5;
        }
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&bytes).unwrap();
    }
    f.sync_all().unwrap();
}

/// Runs `seedbox get TORRENT -o OUT --json --linger 0 ARGS`, killed after `limit`.
fn get(torrent: &Path, out: &Path, args: &[&str], limit: Duration) -> std::process::Output {
    let child = seedbox()
        .arg("get")
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args(["--listen", "127.0.0.1:0", "--json", "--linger", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_timeout(child, limit)
}

/// The case: a good seedbox seed and a libtorrent seed whose data has 16 bytes
/// flipped in 6 pieces after libtorrent checked it, so it serves them bad. Blocks of a piece
/// come from both seeds; a failed piece used to strike both and ban the good seed too, and
/// `get` then hung. Every run must finish byte-exact with the good seed never banned.
#[test]
fn a_seed_with_flipped_bytes_never_gets_the_good_seed_banned() {
    let dir = tempfile::tempdir().unwrap();
    let good_dir = dir_in(dir.path(), "good");
    let bad_dir = dir_in(dir.path(), "bad");
    let len = 24 * PIECE as usize - 1000;
    std::fs::write(good_dir.join("data.bin"), pseudo_random(len, 22)).unwrap();
    std::fs::copy(good_dir.join("data.bin"), bad_dir.join("data.bin")).unwrap();
    let t = dir.path().join("data.torrent");
    create(&good_dir.join("data.bin"), &t, &["-l", "64K"]);
    let liar = LtPeer::seed(&t, &bad_dir, &["--check", "--plaintext"]);
    flip_pieces(&bad_dir.join("data.bin"));
    let good = Seed::start(
        &[t.to_str().unwrap(), "--data", good_dir.to_str().unwrap()],
        dir.path(),
    );
    let peers = [format!("127.0.0.1:{}", liar.port), good.addr.to_string()];
    let (mut failures, mut liar_banned) = (0, 0);
    for run in 0..20 {
        let out = dir.path().join(format!("out{run}"));
        let o = get(
            &t,
            &out,
            &[
                "--peer",
                &peers[0],
                "--peer",
                &peers[1],
                "--stall-timeout",
                "60s",
            ],
            Duration::from_secs(120),
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "run {run}: {stderr}");
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_same_file(&good_dir.join("data.bin"), &out.join("data.bin"));
        // The good seed is never blamed: no strike (a failed piece of its blocks alone, a
        // block differing from the verified piece) and no ban.
        for line in stderr.lines().filter(|l| {
            l.contains("banning peer")
                || l.contains("every block from one peer")
                || l.contains("differs from the verified")
        }) {
            assert!(
                !line.contains(&peers[1]),
                "run {run}: good seed blamed: {line}\n{stderr}"
            );
        }
        if stderr
            .lines()
            .any(|l| l.contains("banning peer") && l.contains(&peers[0]))
        {
            liar_banned += 1;
        }
        assert!(
            report["banned"].as_u64().unwrap() <= 1,
            "run {run}: {report}"
        );
        // Every failed piece counts in `wasted` (it was 0 whatever failed).
        let hash_failures = report["hash_failures"].as_u64().unwrap();
        assert!(
            report["wasted"].as_u64().unwrap() >= hash_failures * PIECE,
            "run {run}: {report}"
        );
        failures += hash_failures;
        std::fs::remove_dir_all(&out).unwrap();
    }
    eprintln!("20 runs: {failures} hash failures, the liar banned in {liar_banned}");
    // The liar's bad pieces were met and it was found out (else the test proves nothing).
    assert!(failures > 0, "no piece ever failed");
    assert!(liar_banned > 0, "the liar was never banned in 20 runs");
}

/// A torrent of 1 MiB whose announce URL is `announce`, in `dir`.
fn torrent_announcing(dir: &Path, announce: &str) -> std::path::PathBuf {
    let data = dir_in(dir, "data");
    std::fs::write(data.join("data.bin"), pseudo_random(1 << 20, 5)).unwrap();
    let t = dir.join("data.torrent");
    create(&data.join("data.bin"), &t, &["--announce", announce]);
    t
}

/// An address where nothing listens.
fn closed_port() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn no_usable_peer_for_the_stall_timeout_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = format!("http://{}/announce", closed_port());
    let t = torrent_announcing(dir.path(), &tracker);
    let out = dir.path().join("out");
    let started = Instant::now();
    let o = get(
        &t,
        &out,
        &["--peer", &closed_port(), "--stall-timeout", "3s"],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(50));
    assert!(
        stderr.contains("stalled: no piece verified for 3s"),
        "{stderr}"
    );
    assert!(stderr.contains("0 peers connected"), "{stderr}");
    assert!(stderr.contains("tracker: 0 announces answered"), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report["error"].as_str().unwrap().contains("stalled"));
    assert!(
        !out.join("data.bin").exists(),
        "an empty file was left behind"
    );
}

/// Serves every HTTP request on a fresh port with `reply`; returns the announce URL.
fn http_server(reply: &'static str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/announce", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply.as_bytes());
        }
    });
    url
}

#[test]
fn a_tracker_http_error_is_reported_with_its_status_and_body() {
    for (reply, want) in [
        (
            "HTTP/1.1 404 Not Found\r\nContent-Length: 25\r\n\r\nno such torrent, sorry :(",
            "HTTP 404 Not Found: no such torrent, sorry :(",
        ),
        (
            "HTTP/1.0 500 Internal Server Error\r\n\r\n<html>Traceback: boom</html>",
            "HTTP 500 Internal Server Error: <html>Traceback: boom</html>",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let t = torrent_announcing(dir.path(), &http_server(reply));
        let o = get(
            &t,
            &dir.path().join("out"),
            &["--stall-timeout", "3s"],
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(!stderr.contains("not bencode"), "{stderr}");
    }
}

#[test]
fn ctrl_c_on_get_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let t = torrent_announcing(dir.path(), &format!("http://{}/announce", closed_port()));
    let out = dir.path().join("out");
    let child = seedbox()
        .arg("get")
        .arg(&t)
        .arg("-o")
        .arg(&out)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-tracker",
            "--peer",
            &closed_port(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The file is created once the download runs, after the handler is installed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !out.join("data.bin").exists() {
        assert!(Instant::now() < deadline, "get did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = wait_with_timeout(child, Duration::from_secs(30));
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
