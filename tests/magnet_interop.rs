//! BEP 9: real clients given only the magnet link `seedbox seed` printed fetch the info
//! dictionary from seedbox and download the release byte-exact. The link carries the
//! embedded tracker (`tr=`), which is how they find the seed.

mod seed_support;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use seed_support::{assert_same_file, Seed};

/// A multi-file release of about 700 KB in `dir/release`, seeded with the embedded tracker on
/// a free port; returns the seed and the magnet link it printed.
fn seed_release(dir: &Path) -> (Seed, String) {
    support::write_tree(dir, support::MULTI_FILES);
    let seed = Seed::start_announcing(
        &[
            "release",
            "--tracker-listen",
            "127.0.0.1:0",
            "--threads",
            "1",
        ],
        dir,
    );
    let magnet = seed
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("magnet    "))
        .expect("a magnet line")
        .to_owned();
    assert!(magnet.contains("&tr=http%3A%2F%2F127.0.0.1%3A"), "{magnet}");
    (seed, magnet)
}

fn assert_same_release(dir: &Path, got: &Path) {
    for (rel, len) in support::MULTI_FILES {
        if *len == 0 && !got.join(rel).exists() {
            // transmission 3.00 does not create empty files.
            continue;
        }
        assert_same_file(&dir.join(rel), &got.join(rel));
    }
}

#[test]
fn libtorrent_downloads_from_the_printed_magnet_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_seed, magnet) = seed_release(dir.path());
    let dl = support::dir_in(dir.path(), "lt");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/discovery_support/lt_magnet.py"
    );
    let out = Command::new(support::python_libtorrent())
        .arg(script)
        .arg(&magnet)
        .arg(&dl)
        .arg("60")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "libtorrent: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("METADATA"), "{text}");
    assert_same_release(dir.path(), &dl);
}

#[test]
fn aria2c_downloads_from_the_printed_magnet_alone() {
    support::require_binary("aria2c", "aria2");
    let dir = tempfile::tempdir().unwrap();
    let (_seed, magnet) = seed_release(dir.path());
    let dl = support::dir_in(dir.path(), "aria");
    let child = Command::new("aria2c")
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
            "--bt-save-metadata=false",
        ])
        .arg(format!("--listen-port={}", support::free_port()))
        .arg(&magnet)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run aria2c");
    let out = support::wait_with_timeout(child, Duration::from_secs(90));
    assert!(
        out.status.success(),
        "aria2c: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_release(dir.path(), &dl);
}

/// transmission 3.00 never dials loopback peers a tracker names (127.0.0.0/8 is a "martian"
/// address to it) but accepts incoming ones. So the printed magnet's tracker tells a
/// lingering `seedbox get` (which holds the release) about transmission, `get` dials it, and
/// transmission fetches the info dictionary from `get` (BEP 9 served by the leecher) and then
/// the data. uTP is off in transmission (it tries uTP first; seedbox speaks TCP).
#[test]
fn transmission_downloads_from_the_printed_magnet_alone() {
    support::require_binary("transmission-daemon", "transmission-daemon");
    support::require_binary("transmission-remote", "transmission-cli");
    let dir = tempfile::tempdir().unwrap();
    let (_seed, magnet) = seed_release(dir.path());
    let dl = support::dir_in(dir.path(), "tr");
    let conf = tempfile::tempdir().unwrap();
    let (peer_port, rpc_port) = (support::free_port(), support::free_port());
    let settings = serde_json::json!({
        "rpc-port": rpc_port, "peer-port": peer_port, "download-dir": dl,
        "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
        "port-forwarding-enabled": false, "rpc-authentication-required": false,
        "rpc-whitelist-enabled": false, "peer-port-random-on-start": false,
        "bind-address-ipv4": "127.0.0.1", "rpc-bind-address": "127.0.0.1",
        "message-level": 1,
    });
    std::fs::write(conf.path().join("settings.json"), settings.to_string()).unwrap();
    let mut daemon = Command::new("transmission-daemon")
        .args(["-f", "-g"])
        .arg(conf.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start transmission-daemon");
    let remote = |args: &[&str]| {
        Command::new("transmission-remote")
            .arg(format!("127.0.0.1:{rpc_port}"))
            .args(args)
            .output()
            .expect("run transmission-remote")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut info = String::new();
    let mut added = false;
    let mut get = None;
    let done = loop {
        if std::time::Instant::now() > deadline {
            break false;
        }
        if !added {
            added = remote(&["-a", &magnet]).status.success();
        } else if get.is_none() {
            // transmission has announced once it has an announce result to show.
            let trackers =
                String::from_utf8_lossy(&remote(&["-t", "1", "-it"]).stdout).into_owned();
            if trackers.contains("Got a list of") {
                get = Some(
                    support::seedbox()
                        .args(["get", "release.torrent", "-o", ".", "--linger", "90s", "-q"])
                        .current_dir(dir.path())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("run seedbox get"),
                );
            }
        } else {
            info = String::from_utf8_lossy(&remote(&["-t", "1", "-i"]).stdout).into_owned();
            if info.contains("Percent Done: 100%") {
                break true;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    if let Some(mut g) = get {
        let _ = g.kill();
        let _ = g.wait();
    }
    assert!(done, "transmission did not complete: {info}");
    assert_same_release(dir.path(), &dl);
}
