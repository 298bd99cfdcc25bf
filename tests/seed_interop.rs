//! `seedbox seed` serving real clients: a libtorrent leecher downloads single-file and
//! multi-file torrents and the bytes compare equal.

mod seed_support;

use std::path::Path;
use std::time::Duration;

use seed_support::{assert_same_file, data, lt_leech, Seed};

#[test]
fn libtorrent_downloads_a_single_file_created_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("single.bin"), data(5_000_017, 1)).unwrap();
    let seed = Seed::start(&["single.bin", "--threads", "2"], dir.path());
    assert!(
        seed.banner.iter().any(|l| l.starts_with("created")),
        "{:?}",
        seed.banner
    );
    assert!(seed
        .banner
        .iter()
        .any(|l| l.starts_with("magnet    magnet:?xt=urn:btih:")));
    let torrent = dir.path().join("single.bin.torrent");
    assert!(torrent.exists(), "torrent written beside the file");
    let dl = dir.path().join("dl");
    lt_leech(&torrent, &dl, seed.addr, Duration::from_secs(60));
    assert_same_file(&dir.path().join("single.bin"), &dl.join("single.bin"));
    let (status, err) = seed.terminate();
    assert!(status.success(), "exit {status}: {err}");
    assert!(err.contains("bytes served"), "{err}");
}

fn write_tree(root: &Path) {
    // Files share pieces (the auto piece length is 256 KiB), one is empty, one is nested.
    let files: [(&str, usize); 5] = [
        ("a.txt", 10_000),
        ("empty", 0),
        ("b.bin", 300_001),
        ("sub/c.bin", 77_777),
        ("sub/deeper/d.bin", 1_000_003),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data(*len, 10 + i as u64)).unwrap();
    }
}

fn assert_same_tree(a: &Path, b: &Path) {
    for name in ["a.txt", "empty", "b.bin", "sub/c.bin", "sub/deeper/d.bin"] {
        assert_same_file(&a.join(name), &b.join(name));
    }
}

#[test]
fn libtorrent_downloads_a_multi_file_torrent_from_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    write_tree(&content.join("tree"));
    // A .torrent made by `seedbox create`, content found under --data.
    let torrent = dir.path().join("tree.torrent");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "-l", "16K", "-o"])
        .arg(&torrent)
        .arg(content.join("tree"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let seed = Seed::start(
        &[
            torrent.to_str().unwrap(),
            "--data",
            content.to_str().unwrap(),
            "--threads",
            "2",
        ],
        dir.path(),
    );
    let dl = dir.path().join("dl");
    lt_leech(&torrent, &dl, seed.addr, Duration::from_secs(60));
    assert_same_tree(&content.join("tree"), &dl.join("tree"));
}

#[test]
fn a_folder_target_gets_its_torrent_beside_it_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(&dir.path().join("tree"));
    let seed = Seed::start(&["tree", "--threads", "1"], dir.path());
    let torrent = dir.path().join("tree.torrent");
    assert!(torrent.exists());
    let dl = dir.path().join("dl");
    lt_leech(&torrent, &dl, seed.addr, Duration::from_secs(60));
    assert_same_tree(&dir.path().join("tree"), &dl.join("tree"));
}

#[test]
fn a_torrent_with_bad_data_is_refused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.bin"), data(100_000, 2)).unwrap();
    std::fs::write(dir.path().join("bad.bin"), data(100_000, 3)).unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "bad.bin"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // Corrupt one byte after creating the torrent.
    let mut bytes = std::fs::read(dir.path().join("bad.bin")).unwrap();
    bytes[50_000] ^= 1;
    std::fs::write(dir.path().join("bad.bin"), bytes).unwrap();
    let seed = Seed::start(&["good.bin", "bad.bin.torrent"], dir.path());
    assert_eq!(
        seed.banner
            .iter()
            .filter(|l| l.starts_with("seeding"))
            .count(),
        1,
        "{:?}",
        seed.banner
    );
    let (_status, err) = seed.terminate();
    assert!(
        err.contains("refusing to seed bad.bin") && err.contains("fail their hash"),
        "{err}"
    );
}

#[test]
fn nothing_to_seed_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.bin"), data(1000, 4)).unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "x.bin"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(dir.path().join("x.bin")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["seed", "x.bin.torrent", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x.bin") && err.contains("missing"), "{err}");
    assert!(err.contains("nothing to seed"), "{err}");
}
