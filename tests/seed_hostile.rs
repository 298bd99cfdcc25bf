//! Hostile peers against `seedbox seed`, each over raw TCP from the test: the seed drops (or
//! refuses) the offender, its memory stays bounded, and a libtorrent leecher on the same seed
//! process still downloads the file byte for byte afterwards.

mod seed_support;

use std::path::Path;
use std::time::Duration;

use seed_support::{assert_same_file, data, lt_leech, msg, RawPeer, Seed};

/// 3 MiB in 16 KiB pieces (`seedbox create -l 16K`): 192 pieces.
const LEN: usize = 3 << 20;
const PIECES: u32 = 192;

fn start(dir: &Path, extra: &[&str]) -> Seed {
    start_sized(dir, LEN, extra)
}

/// [`start`] with a file of `len` bytes (still 16 KiB pieces).
fn start_sized(dir: &Path, len: usize, extra: &[&str]) -> Seed {
    std::fs::write(dir.join("f.bin"), data(len, 77)).unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "-l", "16K", "f.bin"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut args = vec!["f.bin.torrent", "--threads", "2", "--stats-every", "0"];
    args.extend_from_slice(extra);
    Seed::start(&args, dir)
}

/// A well-behaved peer still gets the whole file, and the seed lives.
fn well_behaved_still_downloads(dir: &Path, seed: &mut Seed) {
    seed.assert_alive();
    let dl = dir.join("dl");
    lt_leech(
        &dir.join("f.bin.torrent"),
        &dl,
        seed.addr,
        Duration::from_secs(60),
    );
    assert_same_file(&dir.join("f.bin"), &dl.join("f.bin"));
    seed.assert_alive();
}

#[test]
fn wrong_info_hash_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = start(dir.path(), &[]);
    let mut p = RawPeer::connect(seed.addr, None);
    p.send_handshake([7u8; 20], true);
    assert_eq!(
        p.expect_closed(Duration::from_secs(10)),
        0,
        "no handshake back"
    );
    well_behaved_still_downloads(dir.path(), &mut seed);
}

#[test]
fn garbage_handshake_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = start(dir.path(), &[]);
    let mut p = RawPeer::connect(seed.addr, None);
    p.write(&data(68, 5));
    p.expect_closed(Duration::from_secs(10));
    well_behaved_still_downloads(dir.path(), &mut seed);
}

#[test]
fn max_length_prefix_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = start(dir.path(), &[]);
    let before = seed.rss_anon_kib();
    let mut p = RawPeer::handshake(seed.addr, seed.info_hash(0), true);
    p.write(&[0xff, 0xff, 0xff, 0xff, 7]);
    p.write(&[0u8; 4096]);
    p.expect_closed(Duration::from_secs(10));
    let after = seed.rss_anon_kib();
    assert!(
        after < before + 32 * 1024,
        "RssAnon {before} -> {after} KiB"
    );
    well_behaved_still_downloads(dir.path(), &mut seed);
}

#[test]
fn request_past_the_end_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = start(dir.path(), &[]);
    let mut p = RawPeer::handshake(seed.addr, seed.info_hash(0), true);
    p.get_unchoked();
    p.write(&RawPeer::request(PIECES + 3, 0, 16384));
    p.expect_closed(Duration::from_secs(10));
    // Inside the last piece's index but past the end of the data.
    let mut p = RawPeer::handshake(seed.addr, seed.info_hash(0), true);
    p.get_unchoked();
    p.write(&RawPeer::request(PIECES - 1, 16384, 16384));
    p.expect_closed(Duration::from_secs(10));
    well_behaved_still_downloads(dir.path(), &mut seed);
}

#[test]
fn one_mib_request_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = start(dir.path(), &[]);
    let mut p = RawPeer::handshake(seed.addr, seed.info_hash(0), false);
    p.get_unchoked();
    // A valid block first: it is served.
    p.write(&RawPeer::request(0, 0, 16384));
    let block = p.wait_for(msg::PIECE);
    assert_eq!(&block[8..], &data(LEN, 77)[..16384]);
    p.write(&RawPeer::request(0, 0, 1 << 20));
    p.expect_closed(Duration::from_secs(10));
    well_behaved_still_downloads(dir.path(), &mut seed);
}

/// 100,000 requests (every block of the torrent over and over), without reading: more than
/// the queue (`reqq`, 64 here) arrive at once, so the peer is dropped (without Fast: a queue
/// overflow; with Fast: its rejects pile up unread); memory stays bounded.
fn flood(fast: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = start(dir.path(), &["--request-queue", "64"]);
    let before = seed.rss_anon_kib();
    let mut p = RawPeer::connect(seed.addr, Some(16 * 1024));
    p.send_handshake(seed.info_hash(0), fast);
    let mut theirs = [0u8; 68];
    std::io::Read::read_exact(&mut p.stream, &mut theirs).unwrap();
    p.get_unchoked();
    let mut all = Vec::with_capacity(100_000 * 17);
    for i in 0..100_000u32 {
        all.extend_from_slice(&RawPeer::request(i % PIECES, 0, 16384));
    }
    p.stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    p.write(&all);
    let read = p.expect_closed(Duration::from_secs(20));
    // Served only what the socket buffers held before the peer was dropped.
    assert!(read < 32 << 20, "{read} bytes served");
    let after = seed.rss_anon_kib();
    assert!(
        after < before + 32 * 1024,
        "RssAnon {before} -> {after} KiB"
    );
    well_behaved_still_downloads(dir.path(), &mut seed);
}

#[test]
fn request_flood_with_fast_is_bounded_and_dropped() {
    flood(true);
}

#[test]
fn request_flood_without_fast_is_bounded_and_dropped() {
    flood(false);
}

#[test]
fn stalled_reader_is_dropped_after_the_send_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Distinct blocks (the seed serves a duplicate of a queued request once), 24 MiB in all:
    // far more than the socket buffers hold (tcp_wmem's maximum is 4 MiB here); then the peer
    // stops reading.
    const STALL_LEN: usize = 24 << 20;
    let blocks = (STALL_LEN / 16384) as u32;
    let mut seed = start_sized(
        dir.path(),
        STALL_LEN,
        &[
            "--send-timeout",
            "1s",
            "--request-queue",
            &blocks.to_string(),
        ],
    );
    let mut p = RawPeer::connect(seed.addr, Some(16 * 1024));
    p.send_handshake(seed.info_hash(0), false);
    let mut theirs = [0u8; 68];
    std::io::Read::read_exact(&mut p.stream, &mut theirs).unwrap();
    p.get_unchoked();
    let mut all = Vec::new();
    for i in 0..blocks {
        all.extend_from_slice(&RawPeer::request(i, 0, 16384));
    }
    p.write(&all);
    // Reading would un-stall the writer: leave the seed ample time (8 send timeouts) to give
    // up first, even on a loaded machine.
    std::thread::sleep(Duration::from_secs(8));
    let read = p.expect_closed(Duration::from_secs(10));
    assert!(
        read < STALL_LEN as u64,
        "{read} bytes: the seed did not give up on the stalled peer"
    );
    well_behaved_still_downloads(dir.path(), &mut seed);
    let (_, err) = seed.terminate();
    assert!(
        err.contains("dropped 1") || err.contains("dropped 2"),
        "{err}"
    );
}

#[test]
fn peer_disconnecting_mid_block_does_not_disturb() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = start(dir.path(), &[]);
    for _ in 0..20 {
        let mut p = RawPeer::handshake(seed.addr, seed.info_hash(0), true);
        p.get_unchoked();
        let mut all = Vec::new();
        for i in 0..100u32 {
            all.extend_from_slice(&RawPeer::request(i, 0, 16384));
        }
        p.write(&all);
        let mut part = [0u8; 1000];
        std::io::Read::read_exact(&mut p.stream, &mut part).unwrap();
        drop(p);
    }
    well_behaved_still_downloads(dir.path(), &mut seed);
}

/// Idle connections in the hostile-peer test: half never send a handshake, half send one and
/// then nothing.
const IDLE: usize = 2000;

/// Raises this process's soft descriptor limit to at least `want` (up to the hard limit);
/// panics if the hard limit is lower.
fn raise_own_nofile_limit(want: u64) {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        assert!(
            lim.rlim_max >= want,
            "this test needs {want} descriptors; the hard limit is {}",
            lim.rlim_max
        );
        if lim.rlim_cur < want {
            lim.rlim_cur = lim.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// The soft `Max open files` of a process.
fn nofile_soft_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Sockets a process holds open.
fn open_sockets(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn many_idle_connections_time_out_and_do_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = start(
        dir.path(),
        &["--handshake-timeout", "8", "--idle-timeout", "10"],
    );
    // The seed raises its own limit (it inherits ours, which may be 1024); ours after it.
    let pid = seed.child.id();
    let seed_limit = nofile_soft_limit(pid);
    assert!(
        seed_limit > IDLE as u64 + 100,
        "the seed's descriptor limit is {seed_limit}"
    );
    raise_own_nofile_limit(IDLE as u64 + 200);
    let before = seed.rss_anon_kib();
    let info_hash = seed.info_hash(0);
    let idle: Vec<RawPeer> = (0..IDLE)
        .map(|i| {
            if i % 2 == 0 {
                RawPeer::connect(seed.addr, None)
            } else {
                RawPeer::handshake(seed.addr, info_hash, true)
            }
        })
        .collect();
    // Every one accepted and held by the seed before the well-behaved peer starts.
    let start = std::time::Instant::now();
    loop {
        let held = open_sockets(pid);
        if held >= IDLE {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the seed holds {held} sockets, not the {IDLE} idle connections"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let held = seed.rss_anon_kib();
    eprintln!(
        "{IDLE} idle connections held after {:?}: RssAnon {before} -> {held} KiB",
        start.elapsed()
    );
    // Served while the idle ones are connected.
    well_behaved_still_downloads(dir.path(), &mut seed);
    // Each closed by the seed (handshake or idle timeout), none left open.
    for mut p in idle {
        p.expect_closed(Duration::from_secs(30));
    }
    // Bounded: 16 KiB of receive buffer and some state per connection, well under 32 KiB.
    assert!(
        held < before + (IDLE as u64) * 32,
        "RssAnon {before} KiB -> {held} KiB with {IDLE} idle connections"
    );
    let start = std::time::Instant::now();
    while open_sockets(pid) > 10 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the seed still holds {} sockets",
            open_sockets(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    seed.assert_alive();
}

/// Peers that connect and never handshake do not hold the exit: on SIGTERM the seed shuts
/// their sockets down too (they are in no torrent yet) instead of waiting out its 2 s grace
/// and dropping its runtimes with their receives in flight.
#[test]
fn peers_still_in_their_handshake_do_not_hold_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let seed = start(dir.path(), &[]);
    let pid = seed.child.id();
    let listening = open_sockets(pid);
    let silent: Vec<RawPeer> = (0..8).map(|_| RawPeer::connect(seed.addr, None)).collect();
    let start = std::time::Instant::now();
    while open_sockets(pid) < listening + silent.len() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the seed holds {} sockets, not its {listening} and the {} silent connections",
            open_sockets(pid),
            silent.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = std::time::Instant::now();
    let (status, err) = seed.terminate();
    let took = start.elapsed();
    assert!(status.success(), "exit {status}: {err}");
    // `terminate` polls every 100 ms; without the shutdown the exit takes over 2 s.
    assert!(took < Duration::from_secs(1), "exit took {took:?}: {err}");
    drop(silent);
}

#[test]
fn max_upload_rate_holds_the_seed_back() {
    let dir = tempfile::tempdir().unwrap();
    // 3 MiB at 1 MB/s (two cores, 0.5 MB/s each, bursts of 64 KiB): at least 2.5 s.
    let mut seed = start(dir.path(), &["--max-upload-rate", "1MB/s"]);
    let started = std::time::Instant::now();
    well_behaved_still_downloads(dir.path(), &mut seed);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "3 MiB came in {took:?} despite a 1 MB/s limit"
    );
}
