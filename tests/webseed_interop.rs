//! BEP 19: `seedbox seed --web-seed` serves every torrent's files over plain HTTP. Real
//! clients given a torrent whose only source is the `url-list` seedbox wrote (no tracker, no
//! DHT, no BitTorrent peer) download it byte-exact; `curl -r` ranges give the right bytes;
//! traversal and bad ranges are refused with 4xx while the server keeps serving.

mod seed_support;
mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use seed_support::{assert_same_file, Seed};

/// Seeds `dir/release` (the multi-file release) and `dir/single.bin` as a web seed on a free
/// port; returns the seed and the web seed's URL it printed.
fn web_seed(dir: &Path) -> (Seed, String) {
    support::write_tree(dir, support::MULTI_FILES);
    std::fs::write(dir.join("single.bin"), support::pseudo_random(777_777, 9)).unwrap();
    let seed = Seed::start(
        &[
            "release",
            "single.bin",
            "--web-seed",
            "127.0.0.1:0",
            "--threads",
            "1",
        ],
        dir,
    );
    let url = seed
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("webseed   "))
        .expect("a webseed line")
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );
    let magnet = seed
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("magnet    "))
        .expect("a magnet line");
    assert!(magnet.contains("&ws=http%3A%2F%2F127.0.0.1%3A"), "{magnet}");
    assert!(magnet.contains("&x.pe=127.0.0.1:"), "{magnet}");
    (seed, url)
}

fn assert_same_release(dir: &Path, got: &Path) {
    for (rel, len) in support::MULTI_FILES {
        if *len == 0 && !got.join(rel).exists() {
            continue;
        }
        assert_same_file(&dir.join(rel), &got.join(rel));
    }
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--max-time", "30"])
        .args(args)
        .output()
        .expect("run curl")
}

#[test]
fn libtorrent_downloads_from_the_url_list_alone() {
    seed_support::require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let (_seed, _url) = web_seed(dir.path());
    for (torrent, check) in [("release.torrent", true), ("single.bin.torrent", false)] {
        let dl = support::dir_in(dir.path(), &format!("lt-{torrent}"));
        let mut leech = support::LtPeer::leech(&dir.path().join(torrent), &dl, &[]);
        leech.wait_done(Duration::from_secs(180), torrent);
        if check {
            assert_same_release(dir.path(), &dl);
        } else {
            assert_same_file(&dir.path().join("single.bin"), &dl.join("single.bin"));
        }
    }
}

#[test]
fn aria2c_downloads_from_the_url_list_alone() {
    support::require_binary("aria2c", "aria2");
    let dir = tempfile::tempdir().unwrap();
    let (_seed, _url) = web_seed(dir.path());
    for torrent in ["release.torrent", "single.bin.torrent"] {
        let dl = support::dir_in(dir.path(), &format!("aria-{torrent}"));
        let child = Command::new("aria2c")
            .arg("--dir")
            .arg(&dl)
            .args([
                "--seed-time=0",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--summary-interval=0",
                "--console-log-level=warn",
            ])
            .arg(format!("--listen-port={}", support::free_port()))
            .arg(dir.path().join(torrent))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run aria2c");
        let out = support::wait_with_timeout(child, Duration::from_secs(180));
        assert!(
            out.status.success(),
            "aria2c {torrent}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if torrent == "release.torrent" {
            assert_same_release(dir.path(), &dl);
        } else {
            assert_same_file(&dir.path().join("single.bin"), &dl.join("single.bin"));
        }
    }
}

#[test]
fn curl_ranges_give_the_right_bytes_and_bad_paths_are_refused() {
    support::require_binary("curl", "curl");
    let dir = tempfile::tempdir().unwrap();
    let (seed, url) = web_seed(dir.path());
    let file = |rel: &str| std::fs::read(dir.path().join(rel)).unwrap();
    let big = file("release/big.bin");
    let mid = file("release/b/c/mid.bin");
    let single = file("single.bin");
    let (z, small) = (file("release/z.txt"), file("release/a/small.txt"));
    // The release's content is laid out small.txt, zero.bin, mid.bin, big.bin, z.txt, so a
    // piece (16 KiB) spans the end of one file and the start of the next: ranges at the
    // files' edges read from pieces shared by two files.
    let cases: Vec<(&str, &str, &[u8])> = vec![
        ("release/b/c/mid.bin", "49990-49999", &mid[49_990..]),
        ("release/b/c/mid.bin", "0-9", &mid[..10]),
        ("release/big.bin", "0-20000", &big[..20_001]),
        ("release/big.bin", "299990-", &big[299_990..]),
        ("release/big.bin", "-5", &big[big.len() - 5..]),
        ("release/big.bin", "100000-999999999", &big[100_000..]),
        ("release/z.txt", "0-6", &z[..]),
        ("release/a/small.txt", "500-", &small[500..]),
        ("single.bin", "16383-16384", &single[16_383..16_385]),
        ("single.bin", "700000-", &single[700_000..]),
    ];
    for (path, range, want) in &cases {
        let out = curl(&["-f", "-r", range, &format!("{url}{path}")]);
        assert!(out.status.success(), "{path} {range}: {out:?}");
        assert!(out.stdout == *want, "{path} {range}: wrong bytes");
    }
    // Whole files, and a name that needs percent-encoding.
    let out = curl(&["-f", &format!("{url}release/big.bin")]);
    assert!(out.stdout == big);
    // Refused with 4xx, each on its own connection, and the server keeps serving.
    for (path, status) in [
        ("release/../single.bin", "400"),
        ("release/%2e%2e/single.bin", "400"),
        ("release/%2E%2E%2Fsingle.bin", "400"),
        ("release/b/c/..%2f..%2fbig.bin", "400"),
        ("../../etc/passwd", "400"),
        ("release/nothing", "404"),
        ("release", "404"),
        ("nothing", "404"),
    ] {
        let out = curl(&[
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{url}{path}"),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), status, "{path}");
    }
    for (range, status) in [
        ("bytes=99999999-", "416"),
        ("bytes=5-1", "400"),
        ("bytes=0-1,4-5", "416"),
        ("bytes=99999999999999999999999-", "400"),
    ] {
        let out = curl(&[
            "-H",
            &format!("Range: {range}"),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{url}release/z.txt"),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), status, "{range}");
    }
    let out = curl(&["-f", "-r", "0-9", &format!("{url}release/b/c/mid.bin")]);
    assert!(out.stdout == mid[..10], "still serving after the refusals");
    let (status, err) = seed.terminate();
    assert!(status.success(), "{err}");
    assert!(err.contains("web seed: "), "{err}");
}

/// `seed --web-seed-url` adds the URL to a loaded .torrent's `url-list` (in the magnet link's
/// `ws=`) without changing its info-hash.
#[test]
fn web_seed_url_keeps_the_info_hash() {
    let dir = tempfile::tempdir().unwrap();
    support::write_tree(dir.path(), support::MULTI_FILES);
    let torrent = dir.path().join("r.torrent");
    support::create(&dir.path().join("release"), &torrent, &[]);
    let hash = support::info_hash_hex(&torrent);
    let seed = Seed::start(
        &[
            "r.torrent",
            "--web-seed-url",
            "http://mirror.example/pub/",
            "--threads",
            "1",
        ],
        dir.path(),
    );
    let banner = seed.banner.join("\n");
    assert!(banner.contains(&format!("info-hash {hash}")), "{banner}");
    assert!(
        banner.contains("&ws=http%3A%2F%2Fmirror.example%2Fpub%2F"),
        "{banner}"
    );
}

/// A private torrent (BEP 27) is for its tracker's peers only: the web seed refuses its files
/// (403) and adds no `ws=` to it, while it keeps serving the public one.
#[test]
fn a_private_torrent_is_not_served_over_http() {
    support::require_binary("curl", "curl");
    let dir = tempfile::tempdir().unwrap();
    support::write_tree(dir.path(), support::MULTI_FILES);
    std::fs::write(
        dir.path().join("single.bin"),
        support::pseudo_random(777_777, 9),
    )
    .unwrap();
    let torrent = dir.path().join("r.torrent");
    support::create(&dir.path().join("release"), &torrent, &["--private"]);
    let seed = Seed::start(
        &[
            "r.torrent",
            "single.bin",
            "--web-seed",
            "127.0.0.1:0",
            "--threads",
            "1",
        ],
        dir.path(),
    );
    let url = seed
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("webseed   "))
        .expect("a webseed line")
        .to_owned();
    let magnets: Vec<&String> = seed
        .banner
        .iter()
        .filter(|l| l.starts_with("magnet    "))
        .collect();
    assert_eq!(magnets.len(), 2, "{:?}", seed.banner);
    let private = magnets.iter().find(|m| m.contains("dn=release")).unwrap();
    assert!(!private.contains("ws="), "{private}");
    let (rel, _) = support::MULTI_FILES[0];
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{url}{rel}"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    let out = curl(&["-f", &format!("{url}single.bin")]);
    assert!(out.status.success());
    assert_eq!(out.stdout, support::pseudo_random(777_777, 9));
}
