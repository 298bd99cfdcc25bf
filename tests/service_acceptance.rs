//! Issue 17's acceptance on the real service, `seed --admin --admin-token-file --state`
//! (the watch folder is not on main yet: the second release is added over the admin API):
//! two releases downloaded byte-exact by real libtorrent leechers, /metrics parsed by
//! prometheus_client with the uploaded bytes matching, the torrent list, bad input refused
//! while serving, one release removed (its peers go, the other keeps serving), a restart served
//! from the resume data, and one byte changed while stopped: that torrent re-checked and its
//! pieces never served.

mod seed_support;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use seed_support::{assert_same_file, data, lt_leech, require_libtorrent, RawPeer, Seed};

const TOKEN: &str = "acceptance-token-0123456789";
const LEN: usize = 3 << 20;

fn create(dir: &Path, name: &str, salt: u64) {
    std::fs::write(dir.join(name), data(LEN, salt)).unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "-l", "16K", name])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

fn start(dir: &Path, targets: &[&str]) -> (Seed, SocketAddr) {
    let mut args = targets.to_vec();
    args.extend([
        "--admin",
        "127.0.0.1:0",
        "--admin-token-file",
        "token",
        "--state",
        "state",
        "--threads",
        "2",
        "--stats-every",
        "0",
    ]);
    let seed = Seed::start(&args, dir);
    let admin = seed
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("admin     http://"))
        .expect("admin line in the banner")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    (seed, admin)
}

/// One HTTP request with `token`; returns the status line and body.
fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
    token: &str,
) -> (String, String) {
    use std::io::Write;
    let mut s = support::http_connect(addr);
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let (status, body) = support::read_http_response(&mut s);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Every `seedbox_torrent_uploaded_bytes_total` sample by info-hash, as prometheus_client's
/// text parser reads /metrics.
fn uploaded(admin: SocketAddr) -> Vec<(String, f64)> {
    let (status, text) = request(admin, "GET", "/metrics", b"", TOKEN);
    assert!(status.contains("200"), "{status}");
    let script = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as f\n\
for fam in f(sys.stdin.read()):\n    for s in fam.samples:\n        if s.name == 'seedbox_torrent_uploaded_bytes_total':\n            print(s.labels['info_hash'], s.value)\n";
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "/metrics does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (h, v) = l.split_once(' ').unwrap();
            (h.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn hex20(hex: &str) -> [u8; 20] {
    hex::decode(hex).unwrap().try_into().unwrap()
}

fn leech(dir: &Path, name: &str, into: &str, addr: SocketAddr) {
    lt_leech(
        &dir.join(format!("{name}.torrent")),
        &dir.join(into),
        addr,
        Duration::from_secs(120),
    );
    assert_same_file(&dir.join(name), &dir.join(into).join(name));
}

#[test]
fn seed_box_service_acceptance() {
    require_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    create(dir, "a.bin", 1);
    create(dir, "b.bin", 2);
    let a = support::info_hash_hex(&dir.join("a.bin.torrent"));
    let b = support::info_hash_hex(&dir.join("b.bin.torrent"));

    let (mut seed, admin) = start(dir, &["a.bin.torrent"]);
    let torrent_b = std::fs::read(dir.join("b.bin.torrent")).unwrap();
    let (status, body) = request(admin, "POST", "/api/v1/torrents", &torrent_b, TOKEN);
    assert!(status.contains(" 20"), "{status} {body}");
    let (status, list) = request(admin, "GET", "/api/v1/torrents", b"", TOKEN);
    assert!(
        status.contains("200") && list.contains(&a) && list.contains(&b),
        "{status} {list}"
    );

    // A real leecher per release, byte-exact; uploaded bytes within one block of what each
    // received (one leecher, one peer each).
    leech(dir, "a.bin", "dl-a", seed.addr);
    leech(dir, "b.bin", "dl-b", seed.addr);
    let up = uploaded(admin);
    for h in [&a, &b] {
        let v = up.iter().find(|(x, _)| x == h).map(|x| x.1);
        let v = v.unwrap_or_else(|| panic!("no uploaded series for {h}: {up:?}"));
        assert!(v >= LEN as f64 && v <= (LEN + 16384) as f64, "{h}: {v}");
    }

    // Bad input while serving: a wrong token, a 1 MB garbage POST, a data path that does not
    // exist. Each refused with a clear error; the service keeps serving.
    let (status, body) = request(admin, "GET", "/api/v1/torrents", b"", "wrong-token-000000");
    assert!(status.contains("401"), "{status} {body}");
    let (status, body) = request(admin, "POST", "/api/v1/torrents", &[0xA5; 1 << 20], TOKEN);
    assert!(
        status.contains(" 4") && body.contains("error"),
        "{status} {body}"
    );
    let missing = format!(r#"{{"path": "{}"}}"#, dir.join("deleted.bin").display());
    let (status, body) = request(admin, "POST", "/api/v1/torrents", missing.as_bytes(), TOKEN);
    assert!(
        status.contains(" 4") && body.contains("does not exist"),
        "{status} {body}"
    );
    seed.assert_alive();

    // Remove A: its peer goes, B keeps serving.
    let mut peer_a = RawPeer::handshake(seed.addr, hex20(&a), true);
    let (status, body) = request(
        admin,
        "DELETE",
        &format!("/api/v1/torrents/{a}"),
        b"",
        TOKEN,
    );
    assert!(status.contains(" 20"), "{status} {body}");
    peer_a.expect_closed(Duration::from_secs(30));
    leech(dir, "b.bin", "dl-b2", seed.addr);
    let (status, log) = seed.terminate();
    assert!(status.success(), "{status}\n{log}");

    // Restart with both: B served from its resume data with no re-hash; A (removed, so its
    // resume data forgotten) checked in full.
    let (seed, admin) = start(dir, &["a.bin.torrent", "b.bin.torrent"]);
    let (_, list) = request(admin, "GET", "/api/v1/torrents", b"", TOKEN);
    assert!(list.contains(&a) && list.contains(&b), "{list}");
    leech(dir, "b.bin", "dl-b3", seed.addr);
    let (status, log) = seed.terminate();
    assert!(status.success(), "{status}\n{log}");
    let line = |h: &str, what: &str| log.lines().any(|l| l.contains(h) && l.contains(what));
    assert!(line(&b, "resume data used"), "{log}");
    assert!(
        line(&a, "resume data saved") && !line(&a, "resume data used"),
        "{log}"
    );

    // One byte of A changed while stopped: A re-checked (only A), refused, never served; B
    // still from its resume data, and served.
    let path = dir.join("a.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[LEN / 2] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let (seed, _) = start(dir, &["a.bin.torrent", "b.bin.torrent"]);
    let mut peer_a = RawPeer::connect(seed.addr, None);
    peer_a.send_handshake(hex20(&a), true);
    assert_eq!(
        peer_a.expect_closed(Duration::from_secs(30)),
        0,
        "nothing of A is served"
    );
    leech(dir, "b.bin", "dl-b4", seed.addr);
    let (_, log) = seed.terminate();
    let line = |h: &str, what: &str| log.lines().any(|l| l.contains(h) && l.contains(what));
    assert!(line(&a, "modified since verified"), "{log}");
    assert!(line(&a, "fail their hash"), "{log}");
    assert!(line(&b, "resume data used"), "{log}");
    let checked = |name: &str| {
        log.lines()
            .any(|l| l.contains(&format!("{name}: ")) && l.contains("pieces checked"))
    };
    assert!(!checked("b.bin"), "{log}");
}
