//! uTP (BEP 29) against real clients: libtorrent with TCP disabled both ways downloads from
//! `seedbox seed` (uTP is on by default), Transmission with its defaults too, and `seedbox get`
//! downloads from a libtorrent seed with TCP disabled, all byte-exact.

mod seed_support;
mod support;

use std::time::Duration;

use seed_support::{assert_same_file, data, lt_leech_over, Seed};

#[test]
fn libtorrent_with_tcp_off_downloads_from_seed_over_utp() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.bin"), data(2_000_003, 29)).unwrap();
    let seed = Seed::start(&["u.bin"], dir.path());
    let lt = dir.path().join("lt");
    std::fs::create_dir_all(&lt).unwrap();
    let out = lt_leech_over(
        &dir.path().join("u.bin.torrent"),
        &lt,
        seed.addr,
        Duration::from_secs(60),
        "utp",
    );
    assert!(out.contains("done"), "{out}");
    assert_same_file(&dir.path().join("u.bin"), &lt.join("u.bin"));
    let (status, err) = seed.terminate();
    assert!(status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// This machine's address on its default route (Transmission dials no loopback peer a tracker
/// names, so the tracker must see the seed at a real address).
fn outbound_ip() -> std::net::IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("192.0.2.1:9")
        .expect("a default route (Transmission needs a peer address that is not loopback)");
    let ip = s.local_addr().unwrap().ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "no address but loopback: {ip}"
    );
    ip
}

/// Transmission 3.00 with its default settings (uTP on, encryption preferred) finds the seed
/// through the embedded tracker and downloads byte-exact. It dials uTP only and never falls
/// back to TCP, so this proves the seed's uTP.
#[test]
fn transmission_with_default_settings_downloads_from_seed() {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v transmission-cli"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "needs transmission-cli: apt-get install -y transmission-cli"
    );
    let ip = outbound_ip();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.bin"), data(3_000_017, 31)).unwrap();
    let port = 20_000 + rand_port();
    let tracker = format!("{ip}:{}", port + 1);
    let seed = Seed::start_announcing(
        &[
            "t.bin",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--tracker-listen",
            &tracker,
        ],
        dir.path(),
    );
    let (dl, home) = (dir.path().join("dl"), dir.path().join("home"));
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let mut tr = std::process::Command::new("transmission-cli")
        .arg("-w")
        .arg(&dl)
        .arg("-g")
        .arg(home.join("config"))
        // Its own peer port (not a uTP or encryption setting): other tests may run one.
        .args(["-p", &(20_000 + rand_port()).to_string()])
        .arg(dir.path().join("t.bin.torrent"))
        .env("HOME", &home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run transmission-cli");
    let want = std::fs::read(dir.path().join("t.bin")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let done = loop {
        if std::fs::read(dl.join("t.bin")).is_ok_and(|got| got == want) {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = tr.kill();
    let _ = tr.wait();
    let (status, err) = seed.terminate();
    assert!(
        done,
        "transmission did not download t.bin in 180 s; seed log:\n{err}"
    );
    assert!(status.success(), "{err}");
}

fn rand_port() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (t.subsec_nanos() ^ std::process::id()) as u16 % 20_000
}

/// Runs `seedbox get TORRENT -o OUT --peer 127.0.0.1:PORT --json EXTRA` (120 s at most):
/// (exit code, JSON report, stderr).
fn get(
    torrent: &std::path::Path,
    out: &std::path::Path,
    port: u16,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let child = support::seedbox()
        .arg("get")
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-dht",
            "--no-tracker",
            "--json",
        ])
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = support::wait_with_timeout(child, Duration::from_secs(120));
    let report = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code(),
        report,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `seedbox get` downloads byte-exact from a libtorrent seed with TCP disabled both ways
/// (`enable_incoming_tcp` and `enable_outgoing_tcp` off): only uTP reaches it. The control:
/// `get --no-utp` against the same seed gets nothing and gives up at its stall timeout,
/// which shows the seed refuses TCP and that `--no-utp` turns uTP off.
#[test]
fn get_downloads_from_a_libtorrent_seed_with_tcp_off() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("g.bin"), data(3_000_019, 37)).unwrap();
    let t = dir.path().join("g.torrent");
    support::create(&src.join("g.bin"), &t, &["-l", "32K"]);
    let seed = support::LtPeer::seed(&t, &src, &["--transport", "utp"]);

    let tcp_only = dir.path().join("tcp-only");
    let (code, report, err) = get(
        &t,
        &tcp_only,
        seed.port,
        &["--no-utp", "--stall-timeout", "8s"],
    );
    assert_eq!(code, Some(1), "get --no-utp: {report} {err}");
    assert!(err.contains("stalled"), "{err}");
    assert!(
        !tcp_only.join("g.bin").exists(),
        "a file left by a get that got nothing"
    );

    let out = dir.path().join("out");
    let (code, report, err) = get(&t, &out, seed.port, &["--linger", "0"]);
    assert_eq!(code, Some(0), "{report} {err}");
    assert_eq!(report["complete"], true, "{report}");
    assert_same_file(&src.join("g.bin"), &out.join("g.bin"));
}
