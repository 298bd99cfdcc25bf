//! uTP (BEP 29) against a real client: libtorrent with TCP disabled both ways downloads from
//! `seedbox seed` (uTP is on by default), byte-exact.

mod seed_support;

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
