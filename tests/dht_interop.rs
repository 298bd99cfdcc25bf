//! BEP 5 on loopback with no tracker: libtorrent sessions and seedbox find each other
//! through the DHT alone. A libtorrent DHT node (tests/dht_support/lt_dht.py) is the only
//! bootstrap node; libtorrent's restrictions on nodes sharing an IP are lifted (see
//! /work/shared/reference/real-peers.md). Also: private torrents never reach the DHT, and
//! junk packets and a get_peers flood neither crash the node nor go unanswered forever.

mod seed_support;
mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use seed_support::{assert_same_file, create_release, require_libtorrent, RawPeer, Seed};

/// A libtorrent DHT session (lt_dht.py), killed on drop.
struct LtDht {
    child: Child,
    lines: Receiver<String>,
    /// Its DHT's UDP port.
    port: u16,
    /// Every line read so far.
    seen: Vec<String>,
}

impl LtDht {
    fn start(args: &[&str]) -> LtDht {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dht_support/lt_dht.py");
        let mut child = Command::new(support::python_libtorrent())
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start lt_dht.py");
        let lines = support::line_reader(child.stdout.take().unwrap());
        let mut node = LtDht {
            child,
            lines,
            port: 0,
            seen: Vec::new(),
        };
        let line = node
            .wait_for("DHT ", Duration::from_secs(30))
            .expect("the libtorrent DHT node did not start");
        node.port = line[4..].trim().parse().unwrap();
        node
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits up to `timeout` for a line starting with `prefix`.
    fn wait_for(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits up to `timeout` for a line containing `text`.
    fn wait_for_text(&mut self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }
}

impl Drop for LtDht {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn magnet_of(hash_hex: &str) -> String {
    format!("magnet:?xt=urn:btih:{hash_hex}")
}

/// What a libtorrent node (lt_dht.py) prints when `seed` announces to it.
fn announce_line(seed: &Seed) -> String {
    format!("incoming dht announce: 127.0.0.1:{}", seed.addr.port())
}

/// `name` (`len` bytes) and its private torrent `name.torrent` in `dir`; its info-hash (hex).
fn private_release(dir: &Path, name: &str, len: usize, salt: u64) -> String {
    std::fs::write(dir.join(name), seed_support::data(len, salt)).unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "-l", "16K", "--private", name])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success());
    support::info_hash_hex(&dir.join(format!("{name}.torrent")))
}

/// `name` (`len` bytes) and its trackerless torrent `name.torrent` in `dir`.
fn release(dir: &Path, name: &str, len: usize, salt: u64) -> String {
    create_release(dir, name, len, salt);
    let torrent = dir.join(format!("{name}.torrent"));
    let bytes = std::fs::read(&torrent).unwrap();
    assert!(
        !bytes.windows(10).any(|w| w == b"8:announce"),
        "the torrent names no tracker"
    );
    support::info_hash_hex(&torrent)
}

#[test]
fn libtorrent_finds_a_seedbox_seed_through_the_dht_alone() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let hash = release(dir.path(), "film.bin", 3_000_000, 19);
    let router = LtDht::start(&["node"]);
    let state = support::dir_in(dir.path(), "state");
    let mut seed = Seed::start(
        &[
            "film.bin.torrent",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--dht-bootstrap",
            &router.addr(),
            "--state",
            state.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        seed.banner
            .iter()
            .any(|l| l.starts_with("dht       udp 127.0.0.1:")),
        "{:?}",
        seed.banner
    );
    let got = support::dir_in(dir.path(), "lt");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dht_support/lt_dht.py");
    let leecher = Command::new(support::python_libtorrent())
        .arg(script)
        .args(["leech", &magnet_of(&hash), got.to_str().unwrap(), "120"])
        .arg(router.addr())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = support::wait_with_timeout(leecher, Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("DONE"),
        "libtorrent did not download through the DHT: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_file(&dir.path().join("film.bin"), &got.join("film.bin"));
    seed.assert_alive();
    // The routing table is saved in --state at exit, the router in it.
    let (status, _) = seed.terminate();
    assert!(status.success(), "{status:?}");
    let nodes = std::fs::read_to_string(state.join("dht.nodes")).expect("dht.nodes saved");
    assert!(nodes.lines().any(|l| l == router.addr()), "{nodes}");
}

#[test]
fn seedbox_get_finds_a_libtorrent_seed_through_the_dht_alone() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let hash = release(dir.path(), "album.bin", 2_500_000, 5);
    let router = LtDht::start(&["node"]);
    let torrent = dir.path().join("album.bin.torrent");
    let mut lt_seed = LtDht::start(&[
        "seed",
        torrent.to_str().unwrap(),
        dir.path().to_str().unwrap(),
        &router.addr(),
    ]);
    // The router holds the seed once it announced.
    assert!(
        lt_seed.wait_for_text("BOOTSTRAPPED", Duration::from_secs(60)),
        "the libtorrent seed did not bootstrap: {:?}",
        lt_seed.seen
    );
    let got = support::dir_in(dir.path(), "got");
    let child = Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["get", &magnet_of(&hash), "--no-tracker", "-q", "--listen"])
        .args(["127.0.0.1:0", "--dht-bootstrap", &router.addr(), "-o"])
        .arg(&got)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = support::wait_with_timeout(child, Duration::from_secs(180));
    assert!(
        out.status.success(),
        "seedbox get did not download through the DHT: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_file(&dir.path().join("album.bin"), &got.join("album.bin"));
    let nodes = std::fs::read_to_string(got.join(".seedbox-dht.nodes")).expect("nodes saved");
    assert!(nodes.lines().any(|l| l == router.addr()), "{nodes}");
}

#[test]
fn private_torrents_never_reach_the_dht() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let public = release(dir.path(), "public.bin", 100_000, 1);
    let secret = private_release(dir.path(), "secret.bin", 100_000, 2);
    let mut router = LtDht::start(&["node"]);
    let _seed = Seed::start(
        &[
            "secret.bin.torrent",
            "public.bin.torrent",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--dht-bootstrap",
            &router.addr(),
        ],
        dir.path(),
    );
    assert!(
        router.wait_for_text(&announce_line(&_seed), Duration::from_secs(60)),
        "the public torrent was not announced: {:?}",
        router.seen
    );
    // Both torrents were added before the DHT's first announce; give the private one time.
    router.wait_for_text(&secret, Duration::from_secs(3));
    let all = router.seen.join("\n");
    assert!(all.contains(&public), "{all}");
    assert!(
        !all.contains(&secret),
        "the private torrent reached the DHT: {all}"
    );
}

#[test]
fn peers_learn_the_seeds_dht_node_from_its_port_message_public_torrents_only() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let open = release(dir.path(), "open.bin", 100_000, 3);
    let closed = private_release(dir.path(), "closed.bin", 100_000, 4);
    // No reachable bootstrap node: the libtorrent peers can only learn the seed's node from
    // the BEP 5 `port` message after the handshake (their own tables start empty).
    let mut seed = Seed::start(
        &[
            "open.bin.torrent",
            "closed.bin.torrent",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--dht-bootstrap",
            "127.0.0.1:9",
        ],
        dir.path(),
    );
    let peer = seed.addr.to_string();
    let torrent = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let save = support::dir_in(dir.path(), "lt");
    let mut lt = LtDht::start(&[
        "peer",
        &torrent("open.bin.torrent"),
        save.to_str().unwrap(),
        &peer,
    ]);
    assert!(
        lt.wait_for("NODES 1", Duration::from_secs(30)).is_some(),
        "libtorrent did not add the seed's DHT node: {:?}",
        lt.seen
    );
    // On the wire: the DHT bit and a `port` message carrying the node's port for the public
    // torrent, neither for the private one.
    let dht_port = dht_of(&seed).port();
    let hash = |hex: &str| -> [u8; 20] { hex::decode(hex).unwrap().try_into().unwrap() };
    assert_eq!(
        port_message_of(seed.addr, hash(&open)),
        (true, Some(dht_port))
    );
    assert_eq!(port_message_of(seed.addr, hash(&closed)), (false, None));
    seed.assert_alive();
}

/// Handshakes with the seed at `addr` for `info_hash` as a DHT node and reads its first
/// messages for 2 s: whether its handshake set the DHT bit, and the port of its `port`
/// message, if one came.
fn port_message_of(addr: SocketAddr, info_hash: [u8; 20]) -> (bool, Option<u16>) {
    let mut peer = RawPeer::connect(addr, None);
    peer.send_handshake_reserved(info_hash, [0, 0, 0, 0, 0, 0, 0, 0x05]);
    let mut theirs = [0u8; 68];
    std::io::Read::read_exact(&mut peer.stream, &mut theirs).expect("the seed's handshake");
    let dht_bit = theirs[27] & 0x01 != 0;
    // Its first messages come at once; the read that waits 2 s for more ends the list.
    peer.stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut port = None;
    while let Ok(message) = peer.read_message() {
        if let Some((9, payload)) = message {
            port = Some(u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
    (dht_bit, port)
}

/// A KRPC query from `id` (bencoded by hand).
fn query(tid: &[u8], q: &str, args: &[(&str, &[u8])]) -> Vec<u8> {
    let mut a = b"d".to_vec();
    let mut sorted = args.to_vec();
    sorted.push(("id", &[7u8; 20]));
    sorted.sort();
    for (k, v) in sorted {
        a.extend(format!("{}:{k}{}:", k.len(), v.len()).as_bytes());
        a.extend(v);
    }
    a.push(b'e');
    let mut m = b"d1:a".to_vec();
    m.extend(a);
    m.extend(format!("1:q{}:{q}1:t{}:", q.len(), tid.len()).as_bytes());
    m.extend(tid);
    m.extend(b"1:y1:qe");
    m
}

/// Whether the node at `to` answers a ping from `sock` within `timeout`.
fn answers_ping(sock: &UdpSocket, to: SocketAddr, timeout: Duration) -> bool {
    answers_ping_with(sock, to, b"pin1", timeout)
}

/// [`answers_ping`] with the transaction id `tid`, which the answer, sent from `to`, must
/// echo.
fn answers_ping_with(sock: &UdpSocket, to: SocketAddr, tid: &[u8], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    let mut echo = format!("1:t{}:", tid.len()).into_bytes();
    echo.extend_from_slice(tid);
    while Instant::now() < deadline {
        sock.send_to(&query(tid, "ping", &[]), to).unwrap();
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                if from == to
                    && buf[..n].windows(echo.len()).any(|w| w == echo.as_slice())
                    && buf[..n].ends_with(b"1:y1:re")
                {
                    return true;
                }
            }
        }
    }
    false
}

/// A seed of one release of `len` bytes whose DHT has no reachable bootstrap node, its
/// torrent's info-hash (hex), its DHT's address and a socket to query it from (50 ms reads).
fn lone_dht_seed(
    dir: &Path,
    name: &str,
    len: usize,
    salt: u64,
) -> (Seed, String, SocketAddr, UdpSocket) {
    let hash = release(dir, name, len, salt);
    let torrent = format!("{name}.torrent");
    let seed = Seed::start(
        &[
            &torrent,
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--dht-bootstrap",
            "127.0.0.1:9",
        ],
        dir,
    );
    let dht = dht_of(&seed);
    (seed, hash, dht, query_socket())
}

/// The seed's DHT address, from its banner.
fn dht_of(seed: &Seed) -> SocketAddr {
    seed.banner
        .iter()
        .find_map(|l| l.strip_prefix("dht       udp "))
        .expect("a dht line")
        .parse()
        .unwrap()
}

/// A socket to query a DHT node from (50 ms reads).
fn query_socket() -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    sock
}

#[test]
fn the_dht_answers_on_the_listen_port_while_utp_peers_download_from_it() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    release(dir.path(), "u.bin", 4_000_037, 23);
    // Two cores: two uTP sockets share the port, each getting the senders the kernel hashes
    // to it; either hands KRPC messages to the DHT.
    let mut seed = Seed::start(
        &[
            "u.bin.torrent",
            "--threads",
            "2",
            "--dht-bootstrap",
            "127.0.0.1:9",
        ],
        dir.path(),
    );
    assert_eq!(dht_of(&seed), seed.addr, "the DHT is on the listen port");
    let lt = support::dir_in(dir.path(), "lt");
    let leech = {
        let (torrent, lt, addr) = (dir.path().join("u.bin.torrent"), lt.clone(), seed.addr);
        std::thread::spawn(move || {
            seed_support::lt_leech_over(&torrent, &lt, addr, Duration::from_secs(120), "utp")
        })
    };
    // Pings from 8 source ports (about 4 per core), answered from the listen port, again
    // and again while libtorrent, TCP off, downloads over uTP from the same port.
    let askers: Vec<UdpSocket> = (0..8).map(|_| query_socket()).collect();
    let mut rounds = 0;
    loop {
        let finished = leech.is_finished();
        for (i, sock) in askers.iter().enumerate() {
            let tid = [i as u8, rounds as u8];
            assert!(
                answers_ping_with(sock, seed.addr, &tid, Duration::from_secs(15)),
                "ping {i} of round {rounds} unanswered on the listen port"
            );
        }
        rounds += 1;
        if finished {
            break;
        }
    }
    let out = leech.join().unwrap();
    assert!(out.contains("done"), "{out}");
    assert_same_file(&dir.path().join("u.bin"), &lt.join("u.bin"));
    seed.assert_alive();
    let (status, err) = seed.terminate();
    assert!(status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn get_speaks_dht_on_its_listen_port_while_it_fetches_a_magnets_metadata() {
    // With uTP (get's default) the listen port's UDP is uTP's socket; before the download's
    // uTP driver runs, the DHT must still hear its replies there: a ping to the listen port
    // is answered from it.
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["get", &magnet_of(&"ab".repeat(20)), "--no-tracker", "-q"])
        .args([
            "--metadata-timeout",
            "60s",
            "--dht-bootstrap",
            "127.0.0.1:9",
        ])
        .args(["--listen", &listen.to_string(), "-o"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sock = query_socket();
    let answered = answers_ping(&sock, listen, Duration::from_secs(20));
    let mut child = child;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        answered,
        "get's DHT did not answer on its listen port {listen}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dht_port_gives_the_dht_its_own_port_and_without_utp_it_binds_the_listen_port() {
    let dir = tempfile::tempdir().unwrap();
    release(dir.path(), "d.bin", 30_011, 29);
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let seed = Seed::start(
        &[
            "d.bin.torrent",
            "--dht-port",
            &port.to_string(),
            "--dht-bootstrap",
            "127.0.0.1:9",
        ],
        dir.path(),
    );
    let own: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(dht_of(&seed), own);
    let sock = query_socket();
    assert!(answers_ping(&sock, own, Duration::from_secs(15)));
    // The listen port's uTP sockets hand KRPC to no one then: unanswered.
    assert!(!answers_ping(&sock, seed.addr, Duration::from_secs(3)));
    let (status, err) = seed.terminate();
    assert!(status.success(), "{err}");

    // --no-utp: the DHT binds the listen port's UDP itself.
    let seed = Seed::start(
        &[
            "d.bin.torrent",
            "--no-utp",
            "--dht-bootstrap",
            "127.0.0.1:9",
        ],
        dir.path(),
    );
    assert_eq!(dht_of(&seed), seed.addr);
    assert!(answers_ping(&sock, seed.addr, Duration::from_secs(15)));
    let (status, err) = seed.terminate();
    assert!(status.success(), "{err}");
}

#[test]
fn junk_packets_and_a_get_peers_flood_are_survived_and_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let (mut seed, hash, dht, sock) = lone_dht_seed(dir.path(), "x.bin", 50_000, 3);
    assert!(answers_ping(&sock, dht, Duration::from_secs(10)));
    // libtorrent's transaction ids are 2 bytes: answered, echoed as sent.
    assert!(answers_ping_with(
        &sock,
        dht,
        b"A>",
        Duration::from_secs(10)
    ));
    // Junk: random bytes, truncated and malformed bencode, wrong types, huge lengths.
    let mut junk: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"d".to_vec(),
        b"de".to_vec(),
        b"d1:y1:qe".to_vec(),
        b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe".to_vec(),
        b"d1:ad2:id20:".to_vec(),
        b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes99999999:e1:t2:zz1:y1:re".to_vec(),
        b"i-99999999999999999999999e".to_vec(),
        b"l".repeat(1000),
        query(b"gp", "get_peers", &[("info_hash", b"short")]),
        query(
            b"an",
            "announce_peer",
            &[
                ("info_hash", &[1; 20]),
                ("port", b"x"),
                ("token", b"forged"),
            ],
        ),
    ];
    for i in 0..200u64 {
        junk.push(seed_support::data(1 + (i as usize * 37) % 1400, i));
    }
    for _ in 0..20 {
        for j in &junk {
            let _ = sock.send_to(j, dht);
        }
    }
    // A flood of get_peers from one address, paced so that the kernel drops none (100 every
    // 50 ms for 1 s): answered up to the burst and the sustained rate, not all.
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    flood
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let reader = flood.try_clone().unwrap();
    let counter = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut answered = 0;
        while let Ok((n, _)) = reader.recv_from(&mut buf) {
            if buf[..n].windows(7).any(|w| w == b"5:token") {
                answered += 1;
            }
        }
        answered
    });
    let info_hash = hex::decode(&hash).unwrap();
    for round in 0..20u32 {
        for i in 0..100u32 {
            let tid = (round * 100 + i).to_be_bytes();
            let _ = flood.send_to(&query(&tid, "get_peers", &[("info_hash", &info_hash)]), dht);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let answered = counter.join().unwrap();
    assert!(answered > 0, "no get_peers answered");
    assert!(
        answered < 500,
        "{answered} of 2000 get_peers from one address answered: no rate limit"
    );
    seed.assert_alive();
    // Once the flood stops, the address is answered again.
    assert!(answers_ping(&sock, dht, Duration::from_secs(15)));
    seed.assert_alive();
}

/// An `announce_peer` query for `info_hash` at `port` with `token`.
fn announce_query(tid: &[u8], info_hash: &[u8; 20], port: u16, token: &[u8]) -> Vec<u8> {
    let mut m = b"d1:ad2:id20:".to_vec();
    m.extend([7u8; 20]);
    m.extend(b"9:info_hash20:");
    m.extend(info_hash);
    m.extend(format!("4:porti{port}e5:token{}:", token.len()).as_bytes());
    m.extend(token);
    m.extend(format!("e1:q13:announce_peer1:t{}:", tid.len()).as_bytes());
    m.extend(tid);
    m.extend(b"1:y1:qe");
    m
}

/// Sends `packet` to `to` (again every 500 ms) until a reply echoing `tid` comes, within 10 s.
fn ask(sock: &UdpSocket, to: SocketAddr, tid: &[u8], packet: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut echo = format!("1:t{}:", tid.len()).into_bytes();
    echo.extend_from_slice(tid);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        sock.send_to(packet, to).unwrap();
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if buf[..n].windows(echo.len()).any(|w| w == echo) {
                    return buf[..n].to_vec();
                }
            }
        }
    }
    panic!("no reply to {}", String::from_utf8_lossy(tid));
}

/// The byte string after `key` in a bencoded reply.
fn string_after(reply: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let at = reply.windows(key.len()).position(|w| w == key)? + key.len();
    let colon = reply[at..].iter().position(|&b| b == b':')? + at;
    let len: usize = std::str::from_utf8(&reply[at..colon]).ok()?.parse().ok()?;
    reply.get(colon + 1..colon + 1 + len).map(<[u8]>::to_vec)
}

#[test]
fn a_forged_token_stores_no_peer_and_a_real_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let (seed, _, dht, sock) = lone_dht_seed(dir.path(), "t.bin", 20_000, 5);
    let hash = [0x5au8; 20];
    let peer_of = |port: u16| {
        let mut compact = b"6:".to_vec();
        compact.extend([127, 0, 0, 1]);
        compact.extend(port.to_be_bytes());
        compact
    };
    let holds = |port: u16, tid: &[u8]| {
        let reply = ask(
            &sock,
            dht,
            tid,
            &query(tid, "get_peers", &[("info_hash", &hash)]),
        );
        let want = peer_of(port);
        reply.windows(want.len()).any(|w| w == want.as_slice())
    };

    // A forged token: refused (an error reply), and nothing stored.
    let reply = ask(
        &sock,
        dht,
        b"f1",
        &announce_query(b"f1", &hash, 4444, b"forged"),
    );
    assert!(
        reply.windows(6).any(|w| w == b"1:y1:e"),
        "a forged token is answered with an error: {}",
        String::from_utf8_lossy(&reply)
    );
    assert!(!holds(4444, b"g1"), "a forged token stored a peer");

    // The token a get_peers handed out: stored, and handed to the next asker.
    let reply = ask(
        &sock,
        dht,
        b"g2",
        &query(b"g2", "get_peers", &[("info_hash", &hash)]),
    );
    let token = string_after(&reply, b"5:token").expect("a token");
    let reply = ask(
        &sock,
        dht,
        b"a1",
        &announce_query(b"a1", &hash, 5555, &token),
    );
    assert!(
        reply.windows(6).any(|w| w == b"1:y1:r"),
        "a real token is refused: {}",
        String::from_utf8_lossy(&reply)
    );
    assert!(holds(5555, b"g3"), "a real token stored no peer");
    assert!(!holds(4444, b"g4"));
    drop(seed);
}

#[test]
fn a_paused_torrent_leaves_the_dht_and_is_announced_again_once_resumed() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let hash = release(dir.path(), "p.bin", 100_000, 41);
    let mut router = LtDht::start(&["node"]);
    let seed = Seed::start(
        &[
            "p.bin.torrent",
            "--threads",
            "1",
            "--dht-bootstrap",
            &router.addr(),
            "--admin",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let announce = announce_line(&seed);
    assert!(
        router.wait_for_text(&announce, Duration::from_secs(60)),
        "not announced: {:?}",
        router.seen
    );
    // Paused: taken out of the announce schedule, so that resuming announces it at once
    // (the schedule would otherwise keep its next announce, 15 minutes away).
    for action in ["pause", "resume"] {
        let target = format!("/api/v1/torrents/{hash}/{action}");
        let (status, body) = support::http_request(seed.admin(), "POST", &target, b"", None);
        assert!(status.contains("200"), "{action}: {status} {body}");
    }
    assert!(
        router.wait_for_text(&announce, Duration::from_secs(60)),
        "the resumed torrent was not announced again: {:?}",
        router.seen
    );
    let (status, err) = seed.terminate();
    assert!(status.success(), "{err}");
}
