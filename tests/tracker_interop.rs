//! Real clients find each other only through `seedbox tracker` (no DHT, no LPD, no PEX, no
//! direct connect): a libtorrent seed and an aria2 leecher over HTTP, a transmission seed and
//! a libtorrent leecher over UDP; the download must be byte-exact.

mod support;

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use seedbox::tracker::announce::ScrapeResponse;
use support::*;

/// A `seedbox tracker` process on loopback, killed on drop.
struct Tracker {
    child: std::process::Child,
    http: String,
    udp: String,
}

impl Tracker {
    fn start() -> Tracker {
        let mut child = seedbox()
            .args(["tracker", "--listen", "127.0.0.1:0", "--interval", "30"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = |prefix: &str| {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            l.trim()
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("expected {prefix:?}, got {l:?}"))
                .to_owned()
        };
        let http = line("HTTP ");
        let udp = line("UDP ");
        Tracker { child, http, udp }
    }

    /// Waits until the tracker counts `seeds` seeds in the swarm of `torrent` (HTTP scrape).
    ///
    /// A leecher that announces before the seed has announced gets no peers, and libtorrent
    /// then waits its `min_announce_interval` (5 minutes) before asking again, while
    /// transmission, seeding, does not dial the leecher it is told about: the test would
    /// time out on the order of the two first announces, not on the tracker.
    fn wait_for_seeds(&self, torrent: &std::path::Path, seeds: u32) {
        let hash = hex::decode(info_hash_hex(torrent)).unwrap();
        let target = format!("/scrape?info_hash={}", url_encode(&hash));
        let addr: std::net::SocketAddr = self
            .http
            .strip_prefix("http://")
            .and_then(|r| r.split('/').next())
            .unwrap()
            .parse()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = http_get(addr, &target);
            let scrape = ScrapeResponse::decode(&body).expect("a scrape reply");
            let complete = scrape.files.first().map_or(0, |(_, f)| f.complete);
            if complete >= seeds {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the tracker still counts {complete} seeds after 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 3 MB release announcing to `url` in a fresh folder: (folder, its content's folder, the
/// torrent).
fn release_announcing(url: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir_in(dir.path(), "seed");
    write_tree(&seed_dir, &[("release.bin", 3_000_017)]);
    let t = dir.path().join("release.torrent");
    create(
        &seed_dir.join("release.bin"),
        &t,
        &["-l", "64K", "--no-date", "--announce", url],
    );
    (dir, seed_dir, t)
}

#[test]
fn libtorrent_seed_and_aria2_meet_through_seedbox_tracker_http() {
    require_binary("aria2c", "aria2");
    let tracker = Tracker::start();
    let (dir, seed_dir, t) = release_announcing(&tracker.http);
    let _seed = LtPeer::seed(&t, &seed_dir, &["--tracker"]);
    let out = dir_in(dir.path(), "aria2");
    let child = std::process::Command::new("aria2c")
        .arg(format!("--dir={}", out.display()))
        .args([
            "--seed-time=0",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--disable-ipv6=true",
            "--file-allocation=none",
            "--summary-interval=0",
            "--console-log-level=warn",
        ])
        .arg(format!("--listen-port={}", free_port()))
        .arg(&t)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_with_timeout(child, Duration::from_secs(120));
    assert_eq!(
        o.status.code(),
        Some(0),
        "aria2c: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_same_file(&seed_dir.join("release.bin"), &out.join("release.bin"));
}

/// aria2 speaks UDP trackers only with DHT on, so over UDP the second client is transmission
/// (the seed) and libtorrent downloads.
#[test]
fn transmission_seed_and_libtorrent_meet_through_seedbox_tracker_udp() {
    let tracker = Tracker::start();
    let (dir, seed_dir, t) = release_announcing(&tracker.udp);
    let _seed = Transmission::seed(&t, &seed_dir);
    tracker.wait_for_seeds(&t, 1);
    let out = dir_in(dir.path(), "lt");
    let mut leech = LtPeer::leech(&t, &out, &["--tracker"]);
    leech.wait_done(Duration::from_secs(120), "from transmission");
    assert_same_file(&seed_dir.join("release.bin"), &out.join("release.bin"));
}
