//! Torrents added to and removed from a running engine through its per-core command channel
//! (`EngineControl`), with raw TCP peers from the test: a torrent added while serving is
//! served at once, a removed one has its peers closed on every core and new ones refused,
//! and the others keep serving; per-torrent counters (summed over cores) count what was sent.

mod seed_support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seed_support::{data, msg, RawPeer};
use seedbox::engine::{self, EngineConfig, EngineControl, SeedTorrent, Shutdown};
use seedbox::metainfo::{self, CreateOptions};
use seedbox::storage::{Layout, MappedStorage};

const CORES: usize = 2;

/// A torrent of one file of `len` bytes in `dir`, opened for serving (checked lazily).
fn seed_torrent(dir: &Path, name: &str, len: usize, salt: u64) -> Arc<SeedTorrent> {
    let path = dir.join(name);
    std::fs::write(&path, data(len, salt)).unwrap();
    let scan = metainfo::scan(&path).unwrap();
    let options = CreateOptions {
        piece_length: Some(16 * 1024),
        ..CreateOptions::default()
    };
    let (_, torrent) = metainfo::create(&scan, &options, &Default::default()).unwrap();
    let storage = MappedStorage::open(Layout::of_torrent(&torrent, dir)).unwrap();
    Arc::new(SeedTorrent::new(torrent, storage, CORES, false))
}

struct Engine {
    control: Arc<EngineControl>,
    addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Engine {
    fn start(initial: &[Arc<SeedTorrent>]) -> Engine {
        let (control, inboxes) = EngineControl::new(CORES);
        for t in initial {
            control.add(t.clone()).unwrap();
        }
        let listeners = engine::bind_reuseport("127.0.0.1:0".parse().unwrap(), CORES).unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let shutdown = Shutdown::new();
        let config = EngineConfig {
            threads: CORES,
            unchoke_slots: seedbox::swarm::Slots::Unlimited,
            ..EngineConfig::default()
        };
        let thread = {
            let (control, shutdown) = (control.clone(), shutdown.clone());
            std::thread::spawn(move || engine::run(config, &control, inboxes, listeners, &shutdown))
        };
        Engine {
            control,
            addr,
            shutdown,
            thread: Some(thread),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

/// Handshakes, gets unchoked and receives one block of piece 0.
fn download_block(addr: SocketAddr, t: &SeedTorrent) -> RawPeer {
    let mut p = RawPeer::handshake(addr, t.info_hash().0, true);
    p.get_unchoked();
    p.write(&RawPeer::request(0, 0, 16 * 1024));
    let piece = p.wait_for(msg::PIECE);
    assert_eq!(piece.len(), 8 + 16 * 1024);
    p
}

/// Whether the seed hangs up on `p` within `limit` (reading and discarding what comes).
fn closed_within(p: &mut RawPeer, limit: Duration) -> bool {
    let started = Instant::now();
    p.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while started.elapsed() < limit {
        match p.read_message() {
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return true,
        }
    }
    false
}

/// Waits up to 30 s for `cond` (generous: the machine may be loaded).
fn eventually(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn torrents_are_added_and_removed_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let a = seed_torrent(dir.path(), "a.bin", 256 * 1024, 1);
    let b = seed_torrent(dir.path(), "b.bin", 256 * 1024, 2);
    let engine = Engine::start(std::slice::from_ref(&a));

    // B is unknown until added; then it is served at once.
    let mut early = RawPeer::connect(engine.addr, None);
    early.send_handshake(b.info_hash().0, true);
    assert!(closed_within(&mut early, Duration::from_secs(10)));
    engine.control.add(b.clone()).unwrap();
    assert!(engine.control.add(b.clone()).is_err(), "added twice");
    // Several connections, so that both cores (SO_REUSEPORT spreads them) have peers of each.
    let mut peers_a: Vec<_> = (0..4).map(|_| download_block(engine.addr, &a)).collect();
    let mut peers_b: Vec<_> = (0..4).map(|_| download_block(engine.addr, &b)).collect();
    // The counters are added once the write returns, which may be just after the peer read.
    eventually(
        || a.counters.uploaded() == 4 * 16 * 1024,
        "A's uploaded count",
    );
    eventually(
        || b.counters.uploaded() == 4 * 16 * 1024,
        "B's uploaded count",
    );
    assert_eq!(engine.control.torrents().len(), 2);

    // Removing A closes its peers on every core; B's peers are untouched.
    engine.control.remove(&a.info_hash()).unwrap();
    assert!(a.is_stopped());
    for p in &mut peers_a {
        assert!(
            closed_within(p, Duration::from_secs(10)),
            "A's peer still open"
        );
    }
    let mut late = RawPeer::connect(engine.addr, None);
    late.send_handshake(a.info_hash().0, true);
    assert!(
        closed_within(&mut late, Duration::from_secs(10)),
        "A still accepted"
    );
    for p in &mut peers_b {
        p.write(&RawPeer::request(1, 0, 16 * 1024));
        let piece = p.wait_for(msg::PIECE);
        assert_eq!(&piece[..4], &1u32.to_be_bytes());
    }
    eventually(
        || b.counters.uploaded() == 8 * 16 * 1024,
        "B's uploaded count",
    );
    assert_eq!(engine.control.torrents().len(), 1);
    // Peer counts are published by each core about once a second.
    eventually(
        || b.counters.peers() == 4 && b.counters.unchoked() == 4,
        "B's 4 peers, unchoked",
    );
    assert_eq!(a.counters.peers(), 0);

    // A comes back (a fresh torrent over the same data).
    let a2 = seed_torrent(dir.path(), "a.bin", 256 * 1024, 1);
    assert_eq!(a2.info_hash(), a.info_hash());
    engine.control.add(a2.clone()).unwrap();
    // Kept open until counted: a peer that hangs up at once can end its connection's task
    // before the write's completion is counted (the reader's EOF wins the select).
    let _peer = download_block(engine.addr, &a2);
    eventually(|| a2.counters.uploaded() == 16 * 1024, "A's new count");
}
