//! Encrypted connections (MSE/PE) with real libtorrent: a libtorrent leecher that only speaks
//! encrypted downloads from `seedbox seed`, and `seedbox get` downloads from a libtorrent seed
//! that only speaks encrypted, byte-exact; plain handshakes are refused under `require`.

mod support;

#[path = "seed_support/mod.rs"]
mod seed_support;

use std::path::Path;
use std::time::Duration;

use seed_support::{RawPeer, Seed};
use support::*;

fn info_hash(torrent: &Path) -> [u8; 20] {
    let hex = info_hash_hex(torrent);
    hex::decode(hex).unwrap().try_into().unwrap()
}

/// A forced-encryption libtorrent leecher (`level`: rc4 or both) downloads a file that
/// `seedbox seed ARGS` created.
fn libtorrent_forced_leech(level: &str, seed_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("enc.bin"), pseudo_random(3_000_017, 22)).unwrap();
    let mut args = vec!["enc.bin", "--threads", "2"];
    args.extend_from_slice(seed_args);
    let seed = Seed::start(&args, dir.path());
    let torrent = dir.path().join("enc.bin.torrent");
    let dl = dir_in(dir.path(), "dl");
    let addr = seed.addr.to_string();
    let mut lt = LtPeer::leech(
        &torrent,
        &dl,
        &["--connect", &addr, "--forced-encryption", level],
    );
    lt.wait_done(
        Duration::from_secs(60),
        &format!("forced-{level} leecher against seed {seed_args:?}"),
    );
    assert_same_file(&dir.path().join("enc.bin"), &dl.join("enc.bin"));
}

#[test]
fn a_libtorrent_leecher_forced_to_rc4_downloads_from_seed() {
    libtorrent_forced_leech("rc4", &[]);
}

#[test]
fn a_forced_libtorrent_leecher_offering_both_gets_the_obfuscation_header_only() {
    // `allow` selects `plaintext` when offered: the header is obfuscated, the rest plain.
    libtorrent_forced_leech("both", &[]);
    // `require` selects `rc4`.
    libtorrent_forced_leech("both", &["--encryption", "require"]);
}

#[test]
fn get_downloads_from_a_libtorrent_seed_that_requires_rc4() {
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir_in(dir.path(), "seed");
    write_tree(&seed_dir, &[("enc.bin", 2_500_009)]);
    let t = dir.path().join("enc.torrent");
    create(&seed_dir.join("enc.bin"), &t, &[]);
    let lt = LtPeer::seed(&t, &seed_dir, &["--forced-encryption", "rc4"]);
    for policy in ["require", "prefer"] {
        let out = dir_in(dir.path(), policy);
        let child = seedbox()
            .args(["get", t.to_str().unwrap(), "-o", out.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--no-tracker", "--json"])
            .args(["--peer", &format!("127.0.0.1:{}", lt.port)])
            .args(["--encryption", policy])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let o = wait_with_timeout(child, Duration::from_secs(90));
        assert!(
            o.status.success(),
            "{policy}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_same_file(&seed_dir.join("enc.bin"), &out.join("enc.bin"));
    }
}

#[test]
fn require_refuses_a_plain_handshake_and_get_prefer_talks_to_seed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("req.bin"), pseudo_random(1_000_003, 23)).unwrap();
    let seed = Seed::start(
        &["req.bin", "--threads", "1", "--encryption", "require"],
        dir.path(),
    );
    let torrent = dir.path().join("req.bin.torrent");
    let mut plain = RawPeer::connect(seed.addr, None);
    plain.send_handshake(info_hash(&torrent), true);
    assert_eq!(
        plain.expect_closed(Duration::from_secs(10)),
        0,
        "answered a plain handshake"
    );
    // seedbox to seedbox, encrypted both ways.
    let out = dir_in(dir.path(), "out");
    let child = seedbox()
        .args([
            "get",
            torrent.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--listen", "127.0.0.1:0", "--no-tracker", "--json"])
        .args(["--peer", &seed.addr.to_string(), "--encryption", "prefer"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_with_timeout(child, Duration::from_secs(60));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_file(&dir.path().join("req.bin"), &out.join("req.bin"));
}
