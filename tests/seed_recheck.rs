//! A served torrent whose file changes (issue 22 item 3): it stops, is re-checked in the
//! background (SIGHUP here, the schedule otherwise), and then serves again the pieces that
//! verify, announcing only those in its bitfield; a failed piece is never served. A libtorrent
//! leecher checks each step: a `touch` serves everything again, bytes changed in two pieces
//! serve all but those two, the bytes restored serve everything, and a truncated file restored
//! serves everything. The admin API and `/metrics` report each state (`partial` with the count
//! of unserved pieces while the two are refused).

mod seed_support;
mod support;

use std::io::{Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use seed_support::{assert_same_file, data, lt_leech, require_libtorrent, RawPeer, Seed};

const PIECE: usize = 16 << 10;
const PIECES: usize = 64;
/// Pieces whose bytes the test changes.
const CHANGED: [usize; 2] = [5, 40];

/// What a fresh connection is told the seed has.
#[derive(Debug, PartialEq)]
enum Announced {
    /// The connection was closed: the torrent is not served (stopped or being re-checked).
    Nothing,
    /// `have all`.
    All,
    /// A bitfield.
    Bits(Vec<u8>),
}

/// Connects with a Fast-extension handshake and reads what the seed announces.
fn announced(addr: SocketAddr, info_hash: [u8; 20]) -> Announced {
    use std::io::Read;
    let mut p = RawPeer::connect(addr, None);
    p.send_handshake(info_hash, true);
    let mut theirs = [0u8; 68];
    if p.stream.read_exact(&mut theirs).is_err() {
        return Announced::Nothing;
    }
    loop {
        match p.read_message() {
            Ok(Some((0x0e, _))) => return Announced::All,
            Ok(Some((5, bits))) => return Announced::Bits(bits),
            Ok(Some((0x0f, _))) => return Announced::Bits(vec![0; PIECES / 8]),
            Ok(_) => continue,
            Err(_) => return Announced::Nothing,
        }
    }
}

/// Polls until the seed announces `want` (at most 60 s).
fn wait_announced(addr: SocketAddr, info_hash: [u8; 20], want: &Announced) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = announced(addr, info_hash);
        if got == *want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s the seed still announces {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends SIGHUP (re-check now) until the seed announces `want` (at most 120 s): a SIGHUP
/// that comes while a re-check runs is skipped.
fn recheck_until(seed: &Seed, info_hash: [u8; 20], want: &Announced) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(seed.child.id() as i32, libc::SIGHUP) };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if announced(seed.addr, info_hash) == *want {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            Instant::now() < deadline,
            "not re-checked to {want:?} within 120 s"
        );
    }
}

/// The torrent's `state` and `unserved_pieces` from the admin API, and its
/// `seedbox_torrent_unserved_pieces` sample from `/metrics`.
fn reported(admin: SocketAddr) -> (String, u64, String) {
    let (status, body) = support::http_get(admin, "/api/v1/torrents");
    assert!(status.contains("200"), "{status}");
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let t = &list[0];
    let (status, metrics) = support::http_get(admin, "/metrics");
    assert!(status.contains("200"), "{status}");
    let sample = String::from_utf8(metrics)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("seedbox_torrent_unserved_pieces{"))
        .expect("an unserved-pieces sample")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    (
        t["state"].as_str().unwrap().to_owned(),
        t["unserved_pieces"].as_u64().unwrap(),
        sample,
    )
}

/// Overwrites `len` bytes at `at` in place (same size, new mtime).
fn write_at(path: &Path, at: usize, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at as u64)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

/// The bitfield of every piece but `CHANGED`.
fn all_but_changed() -> Vec<u8> {
    let mut bits = vec![0xffu8; PIECES / 8];
    for p in CHANGED {
        bits[p / 8] &= !(0x80 >> (p % 8));
    }
    bits
}

/// A libtorrent leecher that downloads what it can from `addr`: it stops once it has `want`
/// pieces and nothing more came for 3 s. Prints `pieces 0101...` and `failed N` (bytes that
/// failed libtorrent's hash check).
const PARTIAL_LEECHER: &str = r#"
import sys, time
import libtorrent as lt
torrent, save, host, port, want, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
ses = lt.session({
    'enable_outgoing_utp': False, 'enable_incoming_utp': False, 'enable_dht': False,
    'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'listen_interfaces': '127.0.0.1:0', 'allow_multiple_connections_per_ip': True,
})
p = lt.add_torrent_params()
p.ti = lt.torrent_info(torrent)
p.save_path = save
h = ses.add_torrent(p)
h.connect_peer((host, port))
start = last = time.time()
reached = None
while time.time() - start < limit:
    s = h.status()
    if s.num_pieces >= want and reached is None:
        reached = time.time()
    if reached is not None and time.time() - reached > 3:
        break
    if s.num_peers == 0 and time.time() - last > 1:
        h.connect_peer((host, port))
        last = time.time()
    time.sleep(0.05)
s = h.status()
print('pieces', ''.join('1' if x else '0' for x in s.pieces))
print('failed', s.total_failed_bytes)
ses.remove_torrent(h)
time.sleep(1)
"#;

#[test]
fn a_changed_file_serves_again_the_pieces_that_verify_and_never_one_that_fails() {
    require_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let original = data(PIECES * PIECE - 1000, 7);
    let path = dir.join("a.bin");
    std::fs::write(&path, &original).unwrap();
    support::create(&path, &dir.join("a.torrent"), &["-l", "16K"]);
    let torrent = dir.join("a.torrent");
    let seed = Seed::start(
        &[
            "a.torrent",
            "--threads",
            "2",
            "--stats-every",
            "0",
            "--admin",
            "127.0.0.1:0",
        ],
        dir,
    );
    let hash = seed.info_hash(0);
    let admin = seed.admin();
    wait_announced(seed.addr, hash, &Announced::All);
    assert_eq!(reported(admin), ("seeding".into(), 0, "0".into()));

    // `touch`: stopped, then re-checked: every piece good, all served again.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(3))
        .unwrap();
    drop(f);
    wait_announced(seed.addr, hash, &Announced::Nothing);
    recheck_until(&seed, hash, &Announced::All);
    lt_leech(
        &torrent,
        &dir.join("dl1"),
        seed.addr,
        Duration::from_secs(120),
    );
    assert_same_file(&path, &dir.join("dl1/a.bin"));

    // 16 bytes changed in two pieces: the 62 others are announced and served, those two
    // never (libtorrent would count a bad one in its failed bytes).
    for p in CHANGED {
        let at = p * PIECE + 100;
        let flipped: Vec<u8> = original[at..at + 16].iter().map(|b| b ^ 0x5a).collect();
        write_at(&path, at, &flipped);
    }
    wait_announced(seed.addr, hash, &Announced::Nothing);
    recheck_until(&seed, hash, &Announced::Bits(all_but_changed()));
    assert_eq!(reported(admin), ("partial".into(), 2, "2".into()));
    let save = dir.join("dl2");
    let out = support::python(
        PARTIAL_LEECHER,
        &[
            torrent.to_str().unwrap(),
            save.to_str().unwrap(),
            &seed.addr.ip().to_string(),
            &seed.addr.port().to_string(),
            &(PIECES - CHANGED.len()).to_string(),
            "120",
        ],
    );
    let want: String = (0..PIECES)
        .map(|p| if CHANGED.contains(&p) { '0' } else { '1' })
        .collect();
    assert!(out.contains(&format!("pieces {want}\n")), "{out}");
    assert!(out.contains("failed 0\n"), "{out}");
    let got = std::fs::read(save.join("a.bin")).unwrap();
    for p in (0..PIECES).filter(|p| !CHANGED.contains(p)) {
        let range = p * PIECE..((p + 1) * PIECE).min(original.len());
        assert!(got[range.clone()] == original[range], "piece {p} differs");
    }

    // The bytes restored: the change is noticed, and the re-check serves every piece.
    for p in CHANGED {
        let at = p * PIECE + 100;
        write_at(&path, at, &original[at..at + 16]);
    }
    wait_announced(seed.addr, hash, &Announced::Nothing);
    recheck_until(&seed, hash, &Announced::All);
    assert_eq!(reported(admin), ("seeding".into(), 0, "0".into()));
    lt_leech(
        &torrent,
        &dir.join("dl3"),
        seed.addr,
        Duration::from_secs(120),
    );
    assert_same_file(&path, &dir.join("dl3/a.bin"));

    // Truncated (nothing served: a file of the wrong size), then restored: served again.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(original.len() as u64 / 2)
        .unwrap();
    wait_announced(seed.addr, hash, &Announced::Nothing);
    std::fs::write(&path, &original).unwrap();
    recheck_until(&seed, hash, &Announced::All);
    lt_leech(
        &torrent,
        &dir.join("dl4"),
        seed.addr,
        Duration::from_secs(120),
    );
    assert_same_file(&path, &dir.join("dl4/a.bin"));

    let (_, log) = seed.terminate();
    assert!(
        log.contains("2 of 64 pieces fail their hash (first: piece 5): serving the 62 that verify"),
        "{log}"
    );
}
