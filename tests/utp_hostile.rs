//! Hostile uTP input against `seedbox seed` (issue 23): junk datagrams, packets with forged
//! connection ids, a SYN flood, and peers that ask for data and then shut their receive
//! window to 0. After each, the seed is alive, its anonymous memory within a bound, and a
//! libtorrent leecher with TCP off (uTP only) downloads the file byte-exact from it. The RSS
//! figures are printed (`-- --nocapture`) for bench-results/utp.md.

mod seed_support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use seed_support::{assert_same_file, data, lt_leech_over, Seed};

const ST_DATA: u8 = 0;
const ST_FIN: u8 = 1;
const ST_STATE: u8 = 2;
const ST_RESET: u8 = 3;
const ST_SYN: u8 = 4;

/// A xorshift stream: the test's "random" bytes, the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A uTP packet (BEP 29 header, no extension).
fn packet(kind: u8, conn_id: u16, seq: u16, ack: u16, wnd: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![(kind << 4) | 1, 0];
    p.extend_from_slice(&conn_id.to_be_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u32;
    p.extend_from_slice(&now.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(&wnd.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ack.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A received packet's type, seq_nr and payload (extensions skipped).
fn parse(d: &[u8]) -> Option<(u8, u16, &[u8])> {
    if d.len() < 20 || d[0] & 0x0f != 1 {
        return None;
    }
    let seq = u16::from_be_bytes([d[16], d[17]]);
    let (mut ext, mut at) = (d[1], 20);
    while ext != 0 {
        let next = *d.get(at)?;
        let len = *d.get(at + 1)? as usize;
        at += 2 + len;
        ext = next;
    }
    Some((d[0] >> 4, seq, d.get(at..)?))
}

/// Sockets on 127.0.0.1 the floods are sent from (the seed sees as many peers).
fn senders(n: usize) -> Vec<UdpSocket> {
    (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect()
}

/// The seed's anonymous RSS once it stopped growing (two readings 300 ms apart within 64 KiB,
/// 5 s at most): the datagrams sent may still be in its receive queue.
fn settled_rss(seed: &Seed) -> u64 {
    let mut last = seed.rss_anon_kib();
    for _ in 0..16 {
        std::thread::sleep(Duration::from_millis(300));
        let now = seed.rss_anon_kib();
        if now.abs_diff(last) < 64 {
            return now;
        }
        last = now;
    }
    last
}

fn junk(seed: SocketAddr, rng: &mut Rng, count: usize) {
    let socks = senders(16);
    let mut buf = [0u8; 1500];
    for i in 0..count {
        let len = (rng.next() % 1500) as usize;
        for b in buf[..len].iter_mut() {
            *b = rng.next() as u8;
        }
        // Half of it starts like a uTP header (version 1, a valid type), so that it goes
        // through the packet parser and the demultiplexer, not straight to the DHT hook.
        if i % 2 == 0 && len > 0 {
            buf[0] = ((rng.next() % 5) as u8) << 4 | 1;
        }
        let _ = socks[i % socks.len()].send_to(&buf[..len], seed);
        pace(i);
    }
}

fn forged_ids(seed: SocketAddr, rng: &mut Rng, count: usize) {
    let socks = senders(64);
    for i in 0..count {
        let kind = [ST_DATA, ST_FIN, ST_STATE, ST_RESET][i % 4];
        let r = rng.next();
        let p = packet(
            kind,
            r as u16,
            (r >> 16) as u16,
            (r >> 32) as u16,
            1 << 20,
            b"forged",
        );
        let _ = socks[i % socks.len()].send_to(&p, seed);
        pace(i);
    }
}

fn syn_flood(seed: SocketAddr, rng: &mut Rng, count: usize) {
    let socks = senders(256);
    for i in 0..count {
        let p = packet(ST_SYN, rng.next() as u16, 1, 0, 1 << 20, &[]);
        let _ = socks[i % socks.len()].send_to(&p, seed);
        pace(i);
    }
}

/// A pause every 2,000 datagrams: the floods must reach the seed, not overflow its socket's
/// receive queue (which would only measure the kernel dropping them).
fn pace(i: usize) {
    if i % 2000 == 1999 {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A uTP peer that completes the handshakes, waits to be unchoked, requests every block of
/// the torrent and from then on advertises a receive window of 0.
struct ZeroWindowPeer {
    sock: UdpSocket,
    send_id: u16,
    seq: u16,
    ack: u16,
    stream: Vec<u8>,
}

impl ZeroWindowPeer {
    fn connect(seed: SocketAddr, id: u16) -> ZeroWindowPeer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut peer = ZeroWindowPeer {
            sock,
            send_id: id.wrapping_add(1),
            seq: 1,
            ack: 0,
            stream: Vec::new(),
        };
        let syn = packet(ST_SYN, id, 1, 0, 1 << 20, &[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no answer to the SYN");
            peer.sock.send_to(&syn, seed).unwrap();
            let mut buf = [0u8; 2048];
            if let Ok((n, _)) = peer.sock.recv_from(&mut buf) {
                if let Some((ST_STATE, seq, _)) = parse(&buf[..n]) {
                    peer.ack = seq.wrapping_sub(1);
                    break;
                }
            }
        }
        peer.seq = 2;
        peer
    }

    fn send(&mut self, seed: SocketAddr, payload: &[u8], wnd: u32) {
        let p = packet(ST_DATA, self.send_id, self.seq, self.ack, wnd, payload);
        self.seq = self.seq.wrapping_add(1);
        self.sock.send_to(&p, seed).unwrap();
    }

    /// Reads for `for_` at most, acking in-order data with window `wnd`; true once the
    /// stream holds an unchoke (after the 68-byte handshake).
    fn pump(&mut self, seed: SocketAddr, wnd: u32, for_: Duration) -> bool {
        let end = Instant::now() + for_;
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let Some((kind, seq, payload)) = parse(&buf[..n]) else {
                continue;
            };
            if kind == ST_DATA && seq == self.ack.wrapping_add(1) {
                self.ack = seq;
                self.stream.extend_from_slice(payload);
            }
            let state = packet(ST_STATE, self.send_id, self.seq, self.ack, wnd, &[]);
            self.sock.send_to(&state, seed).unwrap();
            if self.unchoked() {
                return true;
            }
        }
        self.unchoked()
    }

    fn unchoked(&self) -> bool {
        let mut at = 68;
        while at + 4 <= self.stream.len() {
            let len = u32::from_be_bytes(self.stream[at..at + 4].try_into().unwrap()) as usize;
            if len >= 1 && self.stream.get(at + 4) == Some(&1) {
                return true;
            }
            at += 4 + len;
        }
        false
    }
}

/// Message `id` with `payload`, length-prefixed.
fn message(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    m.push(id);
    m.extend_from_slice(payload);
    m
}

/// `count` peers each request every block of the 1-piece-per-16 KiB torrent of `len` bytes
/// and then shut their window. Returns them with how many bytes each had received when its
/// window went to 0.
fn zero_windows(
    seed: SocketAddr,
    info_hash: [u8; 20],
    len: usize,
    count: usize,
) -> Vec<(ZeroWindowPeer, usize)> {
    let mut peers = Vec::new();
    for i in 0..count {
        let mut p = ZeroWindowPeer::connect(seed, 40_000 + 2 * i as u16);
        let mut hello = vec![19u8];
        hello.extend_from_slice(b"BitTorrent protocol");
        hello.extend_from_slice(&[0; 8]);
        hello.extend_from_slice(&info_hash);
        hello.extend_from_slice(&[b'z'; 19]);
        hello.push(i as u8);
        hello.extend_from_slice(&message(2, &[])); // interested
        p.send(seed, &hello, 1 << 20);
        assert!(
            p.pump(seed, 1 << 20, Duration::from_secs(20)),
            "zero-window peer {i} was not unchoked"
        );
        let mut requests = Vec::new();
        let blocks = len.div_ceil(16 << 10);
        for b in 0..blocks {
            let mut r = (b as u32).to_be_bytes().to_vec(); // piece (16 KiB pieces)
            r.extend_from_slice(&0u32.to_be_bytes());
            let size = (len - b * (16 << 10)).min(16 << 10) as u32;
            r.extend_from_slice(&size.to_be_bytes());
            requests.extend_from_slice(&message(6, &r));
        }
        // The requests themselves carry window 0: the seed learns it before it reads them.
        let at_close = p.stream.len();
        for chunk in requests.chunks(1300) {
            p.send(seed, chunk, 0);
        }
        peers.push((p, at_close));
    }
    // Keep acking with a window of 0 for a while: the seed sees live peers that take nothing.
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        for (p, _) in peers.iter_mut() {
            p.pump(seed, 0, Duration::from_millis(20));
        }
    }
    peers
}

/// A flood: its name, and what sends it.
type Phase<'a> = (&'a str, &'a dyn Fn(&mut Rng));

/// Anonymous RSS the seed may reach at any point (it starts near 1.2 MiB; 16 peers at
/// window 0 may each hold a 1 MiB uTP send buffer).
const RSS_CEILING_KIB: u64 = 64 * 1024;

/// Asserts the seed is alive and serving: a libtorrent leecher over uTP only (TCP off both
/// ways) downloads the file byte-exact within 30 s (the flood's half-open connections must
/// not keep its SYN out). Returns the leecher's seconds.
fn assert_serves(seed: &mut Seed, dir: &std::path::Path, round: &str) -> f64 {
    seed.assert_alive();
    let save = dir.join(format!("lt-{round}"));
    std::fs::create_dir_all(&save).unwrap();
    let log = lt_leech_over(
        &dir.join("h.bin.torrent"),
        &save,
        seed.addr,
        Duration::from_secs(30),
        "utp",
    );
    assert!(log.contains("done"), "after {round}: {log}");
    assert_same_file(&dir.join("h.bin"), &save.join("h.bin"));
    std::fs::remove_dir_all(&save).unwrap();
    log.split_whitespace()
        .skip_while(|w| *w != "in")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Prints the RSS after `what` and asserts it grew by less than `growth_kib` and stays
/// under [`RSS_CEILING_KIB`]; returns it.
fn check_rss(seed: &Seed, what: &str, last: u64, growth_kib: u64) -> u64 {
    let now = settled_rss(seed);
    println!(
        "RSS anon after {what}: {now} kB ({:+} kB)",
        now as i64 - last as i64
    );
    assert!(now < last + growth_kib, "{what}: {last} -> {now} kB");
    assert!(now < RSS_CEILING_KIB, "{what}: {now} kB");
    now
}

#[test]
fn hostile_utp_input_keeps_memory_bounded_and_the_seed_serving() {
    let dir = tempfile::tempdir().unwrap();
    let len = 4 << 20;
    std::fs::write(dir.path().join("h.bin"), data(len, 43)).unwrap();
    let seed_dir = dir.path();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "h.bin", "-l", "16K", "-q"])
        .current_dir(seed_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut seed = Seed::start(
        &[
            "h.bin.torrent",
            "--data",
            ".",
            "--threads",
            "1",
            "--no-dht",
            "--unchoke-slots",
            "unlimited",
        ],
        seed_dir,
    );
    let addr = seed.addr;
    let info_hash = seed.info_hash(0);
    let mut rng = Rng(0x5eed_b0c5);
    let start = settled_rss(&seed);
    println!("RSS anon at start: {start} kB");
    let secs = assert_serves(&mut seed, seed_dir, "start");
    println!("libtorrent uTP download of 4 MiB at start: {secs:.2} s");
    let mut last = check_rss(&seed, "a first libtorrent download", start, 16 * 1024);
    let phases: [Phase; 3] = [
        ("100,000 junk datagrams", &|rng| junk(addr, rng, 100_000)),
        ("100,000 packets with forged connection ids", &|rng| {
            forged_ids(addr, rng, 100_000)
        }),
        ("a SYN flood of 50,000 SYNs from 256 ports", &|rng| {
            syn_flood(addr, rng, 50_000)
        }),
    ];
    for (what, send) in phases {
        send(&mut rng);
        // Nothing of these is kept but the bounded half-open connections of the flood.
        last = check_rss(&seed, what, last, 16 * 1024);
        let secs = assert_serves(&mut seed, seed_dir, what);
        println!("libtorrent uTP download of 4 MiB after {what}: {secs:.2} s");
    }
    let peers = zero_windows(addr, info_hash, len, 16);
    // Each peer asked for all 4 MiB; at window 0 the seed may only probe it now and then
    // (one packet per retransmission timeout, 500 ms at least).
    for (i, (p, at_close)) in peers.iter().enumerate() {
        let pushed = p.stream.len() - at_close;
        assert!(
            pushed <= 32 << 10,
            "peer {i} at window 0 got {pushed} bytes"
        );
    }
    let pushed: usize = peers.iter().map(|(p, at)| p.stream.len() - at).sum();
    println!("bytes sent to the 16 zero-window peers while at window 0: {pushed}");
    // At most the send buffer (1 MiB) and the requests queued per connection.
    check_rss(
        &seed,
        "16 peers requesting 4 MiB each at window 0",
        last,
        16 * 2 * 1024,
    );
    // Still serving while they hold their connections.
    let secs = assert_serves(&mut seed, seed_dir, "zero windows");
    println!("libtorrent uTP download of 4 MiB beside them: {secs:.2} s");
    drop(peers);
    println!("RSS anon at the end: {} kB", settled_rss(&seed));
    let (status, err) = seed.terminate();
    assert!(status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
