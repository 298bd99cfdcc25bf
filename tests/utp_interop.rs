//! uTP (BEP 29) against a real client: libtorrent with TCP disabled both ways downloads from
//! `seedbox seed --utp`, byte-exact.

mod seed_support;

use std::time::Duration;

use seed_support::{assert_same_file, data, lt_leech_over, Seed};

#[test]
fn libtorrent_with_tcp_off_downloads_from_seed_over_utp() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.bin"), data(2_000_003, 29)).unwrap();
    let seed = Seed::start(&["u.bin", "--utp"], dir.path());
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
