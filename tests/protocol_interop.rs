//! The sans-IO peer protocol (`seedbox::protocol`) against a real peer, libtorrent 2.x, over
//! loopback TCP: the test drives `Handshake`, `MessageDecoder`, `Connection` and `piece_header`
//! with plain blocking sockets, once downloading from a libtorrent seed and once seeding to a
//! libtorrent leecher, and compares the bytes exactly.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use seedbox::metainfo::Torrent;
use seedbox::protocol::wire::piece_header;
use seedbox::protocol::{
    Connection, ConnectionConfig, Event, Handshake, MessageDecoder, PeerId, RequestError,
};
use seedbox::swarm::{Bitfield, BlockRef};
use sha1::{Digest, Sha1};
use support::*;

/// Creates a v1 torrent of the file `path` with 32 KiB pieces, using libtorrent itself.
const LT_CREATE: &str = r#"
import sys, os, libtorrent as lt
path, out = sys.argv[1], sys.argv[2]
fs = lt.file_storage()
lt.add_files(fs, path)
ct = lt.create_torrent(fs, 32768, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
open(out, 'wb').write(lt.bencode(ct.generate()))
"#;

/// 9 full pieces and a short 10th whose last block is short too.
const LEN: usize = 9 * 32768 + 5089;

const OUR_ID: PeerId = PeerId(*b"-SB0100-interop-test");

/// Writes `dir/seed/data.bin` and a torrent of it; returns the data and the torrent.
fn setup(dir: &Path) -> (Vec<u8>, Torrent, String) {
    let seed_dir = dir_in(dir, "seed");
    let data = pseudo_random(LEN, 42);
    std::fs::write(seed_dir.join("data.bin"), &data).unwrap();
    let torrent_path = dir.join("data.torrent");
    python(
        LT_CREATE,
        &[
            seed_dir.join("data.bin").to_str().unwrap(),
            torrent_path.to_str().unwrap(),
        ],
    );
    let torrent = Torrent::load(&torrent_path).expect("load libtorrent's torrent");
    assert_eq!(torrent.piece_count(), 10);
    (data, torrent, torrent_path.to_str().unwrap().to_owned())
}

/// Blocking socket plus receive buffer, bounded by a deadline.
struct Wire {
    stream: TcpStream,
    buf: BytesMut,
    start: Instant,
    deadline: Instant,
}

impl Wire {
    fn new(stream: TcpStream, limit: Duration) -> Wire {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let start = Instant::now();
        Wire {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            start,
            deadline: start + limit,
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Reads what is available; `Ok(false)` on EOF. Panics past the deadline.
    fn fill(&mut self) -> std::io::Result<bool> {
        assert!(Instant::now() < self.deadline, "interop exchange timed out");
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The peer's handshake; `None` when it closes the connection first or sends something
    /// else (libtorrent tries an encrypted handshake first, then falls back to plaintext).
    fn handshake(&mut self) -> Option<Handshake> {
        loop {
            if let Some(hs) = Handshake::decode(&mut self.buf).ok()? {
                return Some(hs);
            }
            if !matches!(self.fill(), Ok(true)) {
                return None;
            }
        }
    }

    fn flush(&mut self, conn: &mut Connection) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        while let Some(m) = conn.poll_message(self.now()) {
            m.encode(&mut out);
        }
        self.stream.write_all(&out)
    }
}

#[test]
fn download_from_a_libtorrent_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent, torrent_path) = setup(dir.path());
    let seed_dir = dir.path().join("seed");
    let peer = LtPeer::start(&[
        "--torrent",
        &torrent_path,
        "--save",
        seed_dir.to_str().unwrap(),
        "--mode",
        "seed",
    ]);
    // libtorrent prints LISTEN a moment before it accepts peers for the torrent: it closes
    // connections made right away, so retry for a few seconds.
    let (mut wire, theirs) = (0..50)
        .find_map(|_| {
            let stream = TcpStream::connect(("127.0.0.1", peer.port)).expect("connect");
            let mut wire = Wire::new(stream, Duration::from_secs(30));
            let ours = Handshake::new(torrent.info_hash, OUR_ID).encode();
            wire.stream.write_all(&ours).ok()?;
            match wire.handshake() {
                Some(hs) => Some((wire, hs)),
                None => {
                    std::thread::sleep(Duration::from_millis(100));
                    None
                }
            }
        })
        .expect("libtorrent never completed a handshake");
    assert_eq!(theirs.info_hash, torrent.info_hash);

    let geometry = torrent.geometry();
    let have = Bitfield::new(geometry.piece_count());
    let mut conn = Connection::new(ConnectionConfig::default(), geometry, wire.now());
    conn.on_handshake(&theirs, &have, wire.now());
    wire.flush(&mut conn).unwrap();

    let decoder = MessageDecoder::for_piece_count(geometry.piece_count());
    let mut pending: Vec<BlockRef> = (0..geometry.piece_count())
        .flat_map(|p| geometry.blocks(p).collect::<Vec<_>>())
        .rev()
        .collect();
    let total_blocks = pending.len();
    let mut received = 0;
    let mut content = vec![0u8; LEN];
    while received < total_blocks {
        loop {
            let msg = match decoder.decode(&mut wire.buf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) if !e.is_fatal() => continue,
                Err(e) => panic!("libtorrent sent bad bytes: {e}"),
            };
            let event = conn
                .on_message(msg, &have, wire.now())
                .unwrap_or_else(|v| panic!("libtorrent violated the protocol: {v}"));
            match event {
                Some(Event::Availability) | Some(Event::Have(_)) => conn.set_interested(true),
                Some(Event::Block { block, data }) => {
                    let at = geometry.piece_offset(block.piece) as usize + block.offset as usize;
                    content[at..at + data.len()].copy_from_slice(&data);
                    received += 1;
                }
                Some(Event::Choked { dropped }) => pending.extend(dropped),
                Some(Event::Rejected(b)) => pending.push(b),
                _ => {}
            }
        }
        while let Some(&b) = pending.last() {
            match conn.request(b, wire.now()) {
                Ok(()) => {
                    pending.pop();
                }
                Err(RequestError::Choked | RequestError::PipelineFull) => break,
                Err(e) => panic!("cannot request {b:?}: {e}"),
            }
        }
        wire.flush(&mut conn).unwrap();
        if received == total_blocks {
            break;
        }
        assert!(wire.fill().unwrap(), "libtorrent closed the connection");
    }

    assert!(conn.fast(), "libtorrent supports the Fast extension");
    assert!(conn.extension_protocol());
    assert!(conn.their_have().is_full());
    let ext = conn
        .their_extensions()
        .expect("libtorrent's extension handshake");
    assert!(ext.client.is_some() && ext.reqq.is_some(), "{ext:?}");
    assert_eq!(conn.unexpected_blocks(), 0);
    for p in 0..geometry.piece_count() {
        let start = geometry.piece_offset(p) as usize;
        let piece = &content[start..start + geometry.piece_size(p) as usize];
        let hash: [u8; 20] = Sha1::digest(piece).into();
        assert_eq!(&hash, torrent.piece_hash(p), "piece {p} hash");
    }
    assert!(content == data, "downloaded bytes differ from the seed's");
}

/// What a served connection saw, for the assertions after the download.
#[derive(Default, Debug)]
struct Served {
    fast: bool,
    extension_protocol: bool,
    client: Option<String>,
    blocks: usize,
    refused_handshakes: usize,
    violations: Vec<String>,
}

/// Serves one connection from `data` until the peer closes it.
fn serve(stream: TcpStream, torrent: &Torrent, data: &[u8], served: &Mutex<Served>) {
    let mut wire = Wire::new(stream, Duration::from_secs(60));
    let Some(theirs) = wire.handshake() else {
        served.lock().unwrap().refused_handshakes += 1;
        return;
    };
    if theirs.info_hash != torrent.info_hash {
        served
            .lock()
            .unwrap()
            .violations
            .push("wrong info-hash".into());
        return;
    }
    wire.stream
        .write_all(&Handshake::new(torrent.info_hash, OUR_ID).encode())
        .unwrap();
    let geometry = torrent.geometry();
    let have = Bitfield::full(geometry.piece_count());
    let mut conn = Connection::new(ConnectionConfig::default(), geometry, wire.now());
    conn.on_handshake(&theirs, &have, wire.now());
    let decoder = MessageDecoder::for_piece_count(geometry.piece_count());
    loop {
        loop {
            let msg = match decoder.decode(&mut wire.buf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) if !e.is_fatal() => continue,
                Err(e) => {
                    served.lock().unwrap().violations.push(e.to_string());
                    return;
                }
            };
            match conn.on_message(msg, &have, wire.now()) {
                Ok(Some(Event::Interested)) => conn.unchoke(),
                Ok(Some(Event::ExtendedHandshake(hs))) => {
                    served.lock().unwrap().client = hs.client.clone();
                }
                Ok(_) => {}
                Err(v) => {
                    served.lock().unwrap().violations.push(v.to_string());
                    return;
                }
            }
        }
        if wire.flush(&mut conn).is_err() {
            break;
        }
        while let Some(b) = conn.pop_request(wire.now()) {
            let at = geometry.piece_offset(b.piece) as usize + b.offset as usize;
            let header = piece_header(b.piece, b.offset, b.length);
            let block = &data[at..at + b.length as usize];
            if wire.stream.write_all(&header).is_err() || wire.stream.write_all(block).is_err() {
                break;
            }
            served.lock().unwrap().blocks += 1;
        }
        if conn.poll_timeout(wire.now()).is_some() || !matches!(wire.fill(), Ok(true)) {
            break;
        }
    }
    let mut s = served.lock().unwrap();
    s.fast |= conn.fast();
    s.extension_protocol |= conn.extension_protocol();
}

#[test]
fn seed_to_a_libtorrent_leecher() {
    let dir = tempfile::tempdir().unwrap();
    let (data, torrent, torrent_path) = setup(dir.path());
    let leech_dir = dir_in(dir.path(), "leech");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let our_port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let served = Arc::new(Mutex::new(Served::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acceptor = {
        let (served, stop) = (served.clone(), stop.clone());
        let torrent = Arc::new(torrent);
        let data = Arc::new(data.clone());
        std::thread::spawn(move || {
            let mut handlers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let (served, torrent, data) =
                            (served.clone(), torrent.clone(), data.clone());
                        handlers.push(std::thread::spawn(move || {
                            serve(stream, &torrent, &data, &served)
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            for h in handlers {
                let _ = h.join();
            }
        })
    };
    let mut peer = LtPeer::start(&[
        "--torrent",
        &torrent_path,
        "--save",
        leech_dir.to_str().unwrap(),
        "--mode",
        "leech",
        "--connect",
        &format!("127.0.0.1:{our_port}"),
        "--timeout",
        "60",
    ]);
    let done = peer.wait_for("DONE", Duration::from_secs(60));
    drop(peer);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    acceptor.join().unwrap();
    let served = served.lock().unwrap();
    assert!(done.is_some(), "libtorrent did not complete: {served:?}");
    assert!(served.violations.is_empty(), "{served:?}");
    assert!(served.fast && served.extension_protocol, "{served:?}");
    assert!(served.client.is_some(), "{served:?}");
    assert!(
        served.blocks >= 19,
        "every block served at least once: {served:?}"
    );
    let got = std::fs::read(leech_dir.join("data.bin")).unwrap();
    assert!(got == data, "libtorrent's copy differs from ours");
    eprintln!("served: {served:?}");
}
