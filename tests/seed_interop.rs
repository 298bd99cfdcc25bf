//! `seedbox seed` serving real clients: a libtorrent leecher downloads single-file and
//! multi-file torrents and the bytes compare equal.

mod seed_support;

use std::path::Path;
use std::time::Duration;

use seed_support::{assert_same_file, data, lt_leech, RawPeer, Seed};

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
    // Created from the file, its pieces were hashed once: no second full check.
    assert!(err.contains("hashed while creating"), "{err}");
    assert!(
        !err.contains("pieces checked"),
        "hashed twice at start: {err}"
    );
}

/// The tuning knobs on together (a small send buffer, TCP_NOTSENT_LOWAT, pinned workers, huge
/// page advice): the seed still serves the file byte for byte, and says it pinned and advised.
#[test]
fn every_tuning_knob_on_still_serves_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tuned.bin"), data(6_000_011, 9)).unwrap();
    let seed = Seed::start(
        &[
            "tuned.bin",
            "--threads",
            "2",
            "--send-buffer",
            "64KiB",
            "--notsent-lowat",
            "16KiB",
            "--pin-cores",
            "--huge-pages",
        ],
        dir.path(),
    );
    let dl = dir.path().join("dl");
    lt_leech(
        &dir.path().join("tuned.bin.torrent"),
        &dl,
        seed.addr,
        Duration::from_secs(60),
    );
    assert_same_file(&dir.path().join("tuned.bin"), &dl.join("tuned.bin"));
    let (status, err) = seed.terminate();
    assert!(status.success(), "exit {status}: {err}");
    assert!(err.contains("core 0 pinned to CPU"), "{err}");
    assert!(err.contains("advised MADV_HUGEPAGE"), "{err}");
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

#[test]
fn skip_check_serves_good_data() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.bin"), data(2_000_003, 21)).unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "-l", "16K", "s.bin"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let seed = Seed::start(&["s.bin.torrent", "--skip-check"], dir.path());
    let dl = dir.path().join("dl");
    lt_leech(
        &dir.path().join("s.bin.torrent"),
        &dl,
        seed.addr,
        Duration::from_secs(60),
    );
    assert_same_file(&dir.path().join("s.bin"), &dl.join("s.bin"));
    let (_, err) = seed.terminate();
    assert!(!err.contains("fails its hash"), "{err}");
}

#[test]
fn skip_check_never_serves_a_bad_piece() {
    use seed_support::{msg, RawPeer};
    let dir = tempfile::tempdir().unwrap();
    let good = data(1_000_000, 22);
    std::fs::write(dir.path().join("c.bin"), &good).unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "-l", "16K", "c.bin"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // Corrupt piece 5 after creating the torrent.
    let mut bad = good.clone();
    bad[5 * 16384 + 100] ^= 0xff;
    std::fs::write(dir.path().join("c.bin"), &bad).unwrap();
    let seed = Seed::start(&["c.bin.torrent", "--skip-check"], dir.path());
    // With Fast: the bad piece's block is rejected, good blocks are served.
    let mut p = RawPeer::handshake(seed.addr, seed.info_hash(0), true);
    p.get_unchoked();
    p.write(&RawPeer::request(5, 0, 16384));
    let rejected = p.wait_for(msg::REJECT);
    assert_eq!(&rejected[..4], &5u32.to_be_bytes());
    p.write(&RawPeer::request(5, 0, 16384));
    p.wait_for(msg::REJECT);
    p.write(&RawPeer::request(6, 0, 16384));
    let block = p.wait_for(msg::PIECE);
    assert_eq!(&block[8..], &good[6 * 16384..7 * 16384]);
    // Without Fast: the peer asking for the bad piece is choked instead.
    let mut q = RawPeer::handshake(seed.addr, seed.info_hash(0), false);
    q.get_unchoked();
    q.write(&RawPeer::request(5, 0, 16384));
    loop {
        match q.read_message().expect("the seed answers") {
            Some((id, _)) if id == msg::CHOKE => break,
            Some((id, _)) => assert_ne!(id, msg::PIECE, "a bad piece was served"),
            None => {}
        }
    }
    let (_, err) = seed.terminate();
    assert!(err.contains("piece 5 fails its hash"), "{err}");
    assert!(err.contains("refused 3 requests of bad pieces"), "{err}");
}

#[test]
fn a_truncated_file_stops_its_torrent_and_the_others_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.bin"), data(32 << 20, 31)).unwrap();
    std::fs::write(dir.path().join("b.bin"), data(3_000_001, 32)).unwrap();
    // Slow enough that the download of a.bin is under way when the file shrinks.
    let mut seed = Seed::start(
        &[
            "a.bin",
            "b.bin",
            "--threads",
            "2",
            "--max-upload-rate",
            "20MB/s",
        ],
        dir.path(),
    );
    let leech_a = {
        let torrent = dir.path().join("a.bin.torrent");
        let save = dir.path().join("dl-a");
        let addr = seed.addr;
        std::thread::spawn(move || {
            std::process::Command::new(seed_support::PYTHON)
                .arg(seed_support::leech_script())
                .arg(torrent)
                .arg(save)
                .arg(addr.ip().to_string())
                .arg(addr.port().to_string())
                .arg("4")
                .output()
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("a.bin"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let _ = leech_a.join();
    seed.assert_alive();
    let dl = dir.path().join("dl-b");
    lt_leech(
        &dir.path().join("b.bin.torrent"),
        &dl,
        seed.addr,
        Duration::from_secs(60),
    );
    assert_same_file(&dir.path().join("b.bin"), &dl.join("b.bin"));
    seed.assert_alive();
    let (status, err) = seed.terminate();
    assert!(
        err.contains("stopped seeding a.bin") && err.contains("1048576 bytes"),
        "{err}"
    );
    assert_eq!(status.code(), Some(1), "{err}");
}

/// `--send-zc-threshold 0`: every write goes out with io_uring's zero-copy `SENDMSG_ZC`. Peers
/// that hang up mid-block (failed zero-copy sends) disturb nothing, a libtorrent leecher gets
/// the file byte for byte, and the seed still exits cleanly on SIGTERM.
#[test]
fn zero_copy_sends_serve_libtorrent_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("z.bin"), data(5_000_011, 41)).unwrap();
    let seed = Seed::start(
        &["z.bin", "--threads", "2", "--send-zc-threshold", "0"],
        dir.path(),
    );
    for _ in 0..10 {
        let mut p = RawPeer::handshake(seed.addr, seed.info_hash(0), true);
        p.get_unchoked();
        let mut all = Vec::new();
        for i in 0..16u32 {
            all.extend_from_slice(&RawPeer::request(i, 0, 16384));
        }
        p.write(&all);
        let mut part = [0u8; 1000];
        std::io::Read::read_exact(&mut p.stream, &mut part).unwrap();
    }
    let dl = dir.path().join("dl");
    lt_leech(
        &dir.path().join("z.bin.torrent"),
        &dl,
        seed.addr,
        Duration::from_secs(60),
    );
    assert_same_file(&dir.path().join("z.bin"), &dl.join("z.bin"));
    let (status, err) = seed.terminate();
    assert!(status.success(), "exit {status}: {err}");
    // Each core logs its count on exit: the blocks went out zero-copy.
    let notified: u64 = err
        .lines()
        .filter_map(|l| l.split("zero-copy sends: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(notified > 10, "{notified} zero-copy sends:\n{err}");
}
