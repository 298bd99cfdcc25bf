//! Peer exchange (BEP 11, `ut_pex`) against libtorrent: a libtorrent leecher that knows only
//! `seedbox seed` learns a third peer from seedbox's PEX and connects to it; `seedbox get`
//! learns a seed from a libtorrent peer's PEX and downloads from it; private torrents never
//! speak PEX; a PEX message of 10,000 entries costs its sender the connection and nothing
//! else.

mod seed_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use seed_support::{assert_same_file, data, require_libtorrent, RawPeer, Seed};
use support::LtPeer;

const EXTENDED: u8 = 20;

/// A 4 MiB file in 16 KiB pieces and its torrent (`private` with `--private`).
fn release(dir: &Path, private: bool) -> PathBuf {
    std::fs::write(dir.join("release.bin"), data(4 << 20, 19)).unwrap();
    let torrent = dir.join(if private {
        "private.torrent"
    } else {
        "release.torrent"
    });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seedbox"));
    cmd.args(["create", "release.bin", "--piece-length", "16384", "-o"])
        .arg(&torrent)
        .current_dir(dir);
    if private {
        cmd.arg("--private");
    }
    assert!(cmd.status().expect("run seedbox create").success());
    torrent
}

fn folder(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits for a PEERS line of `peer` holding `needle`; returns the line.
fn wait_for_peer(peer: &mut LtPeer, needle: &str, limit: Duration) -> Result<String, String> {
    let start = std::time::Instant::now();
    let mut last = String::new();
    while start.elapsed() < limit {
        match peer.wait_for("PEERS", Duration::from_secs(5)) {
            Some(line) if line.contains(needle) => return Ok(line),
            Some(line) => last = line,
            None => {}
        }
    }
    Err(last)
}

#[test]
fn a_libtorrent_leecher_learns_a_third_peer_from_seedbox_pex() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let torrent = release(dir.path(), false);
    let seed = Seed::start(&[torrent.to_str().unwrap()], dir.path());
    let seed_addr = format!("127.0.0.1:{}", seed.addr.port());
    let t = torrent.to_str().unwrap();
    // The third peer: a slow libtorrent leecher that knows only seedbox and ignores PEX, so
    // that it never dials the leecher under test itself.
    let mut third = LtPeer::leech(
        &torrent,
        &folder(dir.path(), "third"),
        &[
            "--connect",
            &seed_addr,
            "--plaintext",
            "--disable-pex",
            "--report-peers",
            "--download-limit",
            "20000",
            "--stay",
            "--timeout",
            "300",
        ],
    );
    wait_for_peer(
        &mut third,
        &format!("{seed_addr}/"),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|last| panic!("the third peer did not connect to seedbox: {last}"));
    // The leecher under test: it too knows only seedbox.
    let mut leecher = LtPeer::leech(
        &torrent,
        &folder(dir.path(), "leecher"),
        &[
            "--connect",
            &seed_addr,
            "--plaintext",
            "--report-peers",
            "--download-limit",
            "40000",
            "--stay",
            "--timeout",
            "300",
        ],
    );
    let want = format!("127.0.0.1:{}/pex/out", third.port);
    let line = wait_for_peer(&mut leecher, &want, Duration::from_secs(150)).unwrap_or_else(|last| {
        panic!("the leecher did not connect to the third peer (want {want}); last: {last}; torrent {t}")
    });
    assert!(line.contains(&format!("{seed_addr}/-/out")), "{line}");
}

#[test]
fn seedbox_get_learns_a_seed_from_a_libtorrent_peers_pex() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let torrent = release(dir.path(), false);
    let src = dir.path().join("release.bin");
    // A libtorrent seed, known only to a slow libtorrent leecher; `seedbox get` knows only
    // the leecher, which can give it little (20 kB/s in): the file comes from the seed.
    let lt_seed = LtPeer::seed(&torrent, dir.path(), &["--plaintext"]);
    let seed_addr = format!("127.0.0.1:{}", lt_seed.port);
    let mut middle = LtPeer::leech(
        &torrent,
        &folder(dir.path(), "middle"),
        &[
            "--connect",
            &seed_addr,
            "--plaintext",
            "--report-peers",
            "--download-limit",
            "20000",
            "--stay",
            "--timeout",
            "300",
        ],
    );
    wait_for_peer(
        &mut middle,
        &format!("{seed_addr}/"),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|last| panic!("the middle peer did not connect to the seed: {last}"));
    let out = folder(dir.path(), "got");
    let get = Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .arg("get")
        .arg(&torrent)
        .args(["--output"])
        .arg(&out)
        .args(["--peer", &format!("127.0.0.1:{}", middle.port)])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--linger",
            "0s",
            "--stall-timeout",
            "120s",
            "--no-tracker",
            "-q",
        ])
        .env("SEEDBOX_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run seedbox get");
    let o = support::wait_with_timeout(get, Duration::from_secs(180));
    assert!(
        o.status.success(),
        "seedbox get failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_same_file(&src, &out.join("release.bin"));
}

/// The bencoded extension handshake the seed sends a raw peer that offers BEP 10.
fn seedbox_extension_handshake(seed: &Seed, info_hash: [u8; 20]) -> (RawPeer, Vec<u8>) {
    let mut p = RawPeer::connect(seed.addr, None);
    send_ext_handshake(&mut p, info_hash);
    let mut theirs = [0u8; 68];
    std::io::Read::read_exact(&mut p.stream, &mut theirs).expect("the seed's handshake");
    loop {
        let payload = p.wait_for(EXTENDED);
        if payload[0] == 0 {
            return (p, payload[1..].to_vec());
        }
    }
}

/// Our handshake with BEP 10 and Fast, then our extension handshake (ut_pex as 1, port 1).
fn send_ext_handshake(p: &mut RawPeer, info_hash: [u8; 20]) {
    let mut h = vec![19];
    h.extend_from_slice(b"BitTorrent protocol");
    h.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
    h.extend_from_slice(&info_hash);
    h.extend_from_slice(b"-XX0000-rawpexpeer00");
    p.write(&h);
    let mut ext = vec![0u8];
    ext.extend_from_slice(b"d1:md6:ut_pexi1ee1:pi1ee");
    p.write(&RawPeer::message(EXTENDED, &ext));
}

#[test]
fn a_private_torrent_never_speaks_pex() {
    let dir = tempfile::tempdir().unwrap();
    let private = release(dir.path(), true);
    let public = release(dir.path(), false);
    let seed = Seed::start(
        &[private.to_str().unwrap(), public.to_str().unwrap()],
        dir.path(),
    );
    let (_, hs) = seedbox_extension_handshake(&seed, seed.info_hash(1));
    assert!(
        contains(&hs, b"6:ut_pex"),
        "{}",
        String::from_utf8_lossy(&hs)
    );
    let (_, hs) = seedbox_extension_handshake(&seed, seed.info_hash(0));
    assert!(
        !contains(&hs, b"ut_pex"),
        "{}",
        String::from_utf8_lossy(&hs)
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A `ut_pex` message (under `their_id`) adding `n` IPv4 peers from 10.0.0.0 on, port 6881.
fn pex_message(n: u32, their_id: u8) -> Vec<u8> {
    pex_message_from(n, their_id, 0x0a00_0000, 6881)
}

/// A `ut_pex` message (under `their_id`) adding `n` IPv4 peers from `first` on, at `port`.
fn pex_message_from(n: u32, their_id: u8, first: u32, port: u16) -> Vec<u8> {
    let mut added = Vec::with_capacity(6 * n as usize);
    for i in 0..n {
        added.extend_from_slice(&(first + i).to_be_bytes());
        added.extend_from_slice(&port.to_be_bytes());
    }
    let mut body = vec![their_id];
    body.extend_from_slice(format!("d5:added{}:", added.len()).as_bytes());
    body.extend_from_slice(&added);
    body.extend_from_slice(format!("7:added.f{}:", n).as_bytes());
    body.extend_from_slice(&vec![0u8; n as usize]);
    body.push(b'e');
    RawPeer::message(EXTENDED, &body)
}

/// The id the seed asked ut_pex messages under, from its extension handshake.
fn pex_id(hs: &[u8]) -> u8 {
    let at = hs
        .windows(8)
        .position(|w| w == b"6:ut_pex")
        .expect("ut_pex advertised");
    let rest = &hs[at + 9..];
    let end = rest.iter().position(|&b| b == b'e').unwrap();
    std::str::from_utf8(&rest[..end]).unwrap().parse().unwrap()
}

#[test]
fn a_pex_message_of_ten_thousand_entries_drops_its_sender_only() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = release(dir.path(), false);
    let seed = Seed::start(&[torrent.to_str().unwrap()], dir.path());
    let info_hash = seed.info_hash(0);
    // 2,000 entries fit a message: read up to the cap, the rest ignored, the peer kept.
    let (mut kept, hs) = seedbox_extension_handshake(&seed, info_hash);
    let id = pex_id(&hs);
    kept.write(&pex_message(2_000, id));
    // 10,000 entries (70 kB) are more than any message of this torrent may be: dropped.
    let (mut flooder, _) = seedbox_extension_handshake(&seed, info_hash);
    flooder.write(&pex_message(10_000, id));
    flooder.expect_closed(Duration::from_secs(30));
    // The peer that sent 2,000 is still served, and so is a new one.
    kept.get_unchoked();
    kept.write(&RawPeer::request(0, 0, 16384));
    let block = kept.wait_for(seed_support::msg::PIECE);
    assert_eq!(&block[8..], &data(4 << 20, 19)[..16384]);
    let mut fresh = RawPeer::handshake(seed.addr, info_hash, true);
    fresh.get_unchoked();
    fresh.write(&RawPeer::request(1, 0, 16384));
    let block = fresh.wait_for(seed_support::msg::PIECE);
    assert_eq!(&block[8..], &data(4 << 20, 19)[16384..32768]);
}

#[test]
fn seedbox_get_keeps_downloading_through_pex_floods() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let torrent = release(dir.path(), false);
    let src = dir.path().join("release.bin");
    // A libtorrent seed at 150 kB/s: the 4 MiB take the get about 25 s, time for the floods.
    let lt_seed = LtPeer::seed(
        &torrent,
        dir.path(),
        &["--plaintext", "--upload-limit", "150000"],
    );
    let port = support::free_port();
    let out = folder(dir.path(), "got");
    let get = Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .arg("get")
        .arg(&torrent)
        .arg("--output")
        .arg(&out)
        .args(["--peer", &format!("127.0.0.1:{}", lt_seed.port)])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--linger", "0s"])
        .args(["--stall-timeout", "120s", "--no-tracker", "-q"])
        .env("SEEDBOX_LOG", "seedbox::engine::download=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run seedbox get");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let info_hash: [u8; 20] = hex::decode(support::info_hash_hex(&torrent))
        .unwrap()
        .try_into()
        .unwrap();
    let connect = || loop {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // 2,000 entries (closed ports on 127.1.x.x): read up to the cap, dialled, refused.
    let mut kept = RawPeer { stream: connect() };
    send_ext_handshake(&mut kept, info_hash);
    let mut theirs = [0u8; 68];
    std::io::Read::read_exact(&mut kept.stream, &mut theirs).expect("the get's handshake");
    let hs = loop {
        let p = kept.wait_for(EXTENDED);
        if p[0] == 0 {
            break p[1..].to_vec();
        }
    };
    let id = pex_id(&hs);
    kept.write(&pex_message_from(2_000, id, 0x7f01_0000, 9));
    // 10,000 entries: more than a message may hold, the sender is dropped.
    let mut flooder = RawPeer { stream: connect() };
    send_ext_handshake(&mut flooder, info_hash);
    flooder.write(&pex_message_from(10_000, id, 0x7f02_0000, 9));
    flooder.expect_closed(Duration::from_secs(30));
    let o = support::wait_with_timeout(get, Duration::from_secs(180));
    assert!(
        o.status.success(),
        "seedbox get failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_same_file(&src, &out.join("release.bin"));
    // The 2,000 were read up to the cap (and the 10,000 never parsed).
    let log = String::from_utf8_lossy(&o.stderr);
    let pex_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ut_pex message"))
        .collect();
    assert_eq!(pex_lines.len(), 1, "{log}");
    assert!(
        pex_lines[0].contains("offered=100 ignored=1900"),
        "{}",
        pex_lines[0]
    );
}
