//! `seedbox seed` announcing through a real tracker (Debian's opentracker) to a second real
//! client (aria2c), which can only find peers through a tracker.

mod seed_support;
mod support;

use std::time::Duration;

use seed_support::{assert_same_file, data, Seed};

#[test]
fn aria2c_downloads_from_seed_via_opentracker() {
    support::require_binary("aria2c", "aria2");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.bin"), data(6_000_011, 41)).unwrap();
    // The tracker must know the info-hash first (whitelist), so make the torrent with a
    // placeholder port, read its info-hash, then remake it with the tracker's port: the
    // announce URL is not in the info dictionary, so the info-hash does not change.
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}/announce");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "-a", &url, "r.bin"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let hash = text
        .lines()
        .find_map(|l| l.strip_prefix("info-hash"))
        .expect("info-hash printed")
        .trim()
        .to_string();
    let tracker = support::Opentracker::start(std::slice::from_ref(&hash));
    let url = tracker.http_url();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "-f", "-a", &url, "r.bin"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&hash));
    let seed = Seed::start_announcing(&["r.bin.torrent", "--threads", "2"], dir.path());
    let dl = dir.path().join("dl");
    std::fs::create_dir_all(&dl).unwrap();
    let child = std::process::Command::new("aria2c")
        .arg("--dir")
        .arg(&dl)
        .args([
            "--seed-time=0",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--bt-tracker-interval=1",
            "--summary-interval=0",
            "--console-log-level=warn",
        ])
        .arg(format!("--listen-port={}", support::free_port()))
        .arg(dir.path().join("r.bin.torrent"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run aria2c");
    let out = support::wait_with_timeout(child, Duration::from_secs(90));
    assert!(
        out.status.success(),
        "aria2c failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_file(&dir.path().join("r.bin"), &dl.join("r.bin"));
    let (_, err) = seed.terminate();
    assert!(err.contains("announced"), "{err}");
}

/// `seedbox seed FILE` alone is a swarm: it creates the torrent announcing to its embedded
/// tracker, serves the .torrent on the tracker's web pages, and peers that know nothing but
/// that URL (seedbox get) or the torrent's announce (libtorrent) find the seed and download.
#[test]
fn seed_of_a_file_is_a_swarm_with_its_own_tracker_and_web_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.bin"), data(3_000_017, 43)).unwrap();
    let port = support::free_port();
    let seed = Seed::start_announcing(
        &["r.bin", "--tracker-listen", &format!("127.0.0.1:{port}")],
        dir.path(),
    );
    let announce = format!("http://127.0.0.1:{port}/announce");
    assert!(
        seed.banner
            .iter()
            .any(|l| l == &format!("tracker   {announce}")),
        "{:?}",
        seed.banner
    );
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["show", "--json", "r.bin.torrent"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&announce));

    // seedbox get, given only the torrent's URL on the tracker's pages.
    let url = format!("http://127.0.0.1:{port}/torrents/r.bin.torrent");
    let out = dir.path().join("got");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args([
            "get",
            &url,
            "--listen",
            "127.0.0.1:0",
            "--linger",
            "0",
            "--json",
            "-o",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = support::wait_with_timeout(child, Duration::from_secs(90));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_file(&dir.path().join("r.bin"), &out.join("r.bin"));

    // libtorrent, announcing to the torrent's tracker.
    let lt = dir.path().join("lt");
    std::fs::create_dir_all(&lt).unwrap();
    let mut leech = support::LtPeer::leech(&dir.path().join("r.bin.torrent"), &lt, &["--tracker"]);
    assert!(
        leech.wait_for("DONE", Duration::from_secs(90)).is_some(),
        "libtorrent did not finish through the embedded tracker"
    );
    assert_same_file(&dir.path().join("r.bin"), &lt.join("r.bin"));
    let (status, err) = seed.terminate();
    assert!(status.success(), "{err}");
}
