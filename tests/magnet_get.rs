//! `seedbox get MAGNET` (BEP 9 fetching) against a libtorrent seed found through the magnet's
//! `tr=` tracker, its `x.pe=` peer or `--peer`, and against lying or oversized metadata.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::*;

/// A multi-file release with 32 KiB pieces: (dir, torrent, info-hash hex).
fn release(extra: &[&str]) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir_in(dir.path(), "seed");
    write_tree(&seed, MULTI_FILES);
    let t = dir.path().join("release.torrent");
    let mut args = vec!["-l", "32K"];
    args.extend_from_slice(extra);
    create(&seed.join("release"), &t, &args);
    let hash = info_hash_hex(&t);
    (dir, t, hash)
}

/// Runs `seedbox get LINK -o OUT ARGS`; returns (exit code, stderr).
fn get(link: &str, out: &Path, args: &[&str]) -> (Option<i32>, String) {
    let child = seedbox()
        .args(["get", link, "-o"])
        .arg(out)
        .args(["--listen", "127.0.0.1:0", "-q"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_with_timeout(child, Duration::from_secs(90));
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_release(dir: &Path, out: &Path, hash: &str) {
    for (rel, _) in MULTI_FILES {
        assert_same_file(&dir.join("seed").join(rel), &out.join(rel));
    }
    let written = out.join("release.torrent");
    assert_eq!(info_hash_hex(&written), hash, "the .torrent written beside");
}

#[test]
fn fetches_from_a_libtorrent_seed_given_by_peer_and_by_x_pe() {
    let (dir, t, hash) = release(&[]);
    let seed = LtPeer::seed(&t, &dir.path().join("seed"), &[]);
    let addr = format!("127.0.0.1:{}", seed.port);
    let link = format!("magnet:?xt=urn:btih:{hash}&dn=release");
    let out = dir_in(dir.path(), "by-peer");
    let (code, err) = get(&link, &out, &["--peer", &addr]);
    assert_eq!(code, Some(0), "{err}");
    assert_release(dir.path(), &out, &hash);
    let out = dir_in(dir.path(), "by-x-pe");
    let (code, err) = get(&format!("{link}&x.pe={addr}"), &out, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_release(dir.path(), &out, &hash);
}

#[test]
fn fetches_from_a_libtorrent_seed_found_through_the_magnets_tracker() {
    // The info-hash does not depend on the announce URL: whitelist it first.
    let (_, _, hash) = release(&[]);
    let tracker = Opentracker::start(std::slice::from_ref(&hash));
    let url = tracker.http_url();
    let (dir, t, hash2) = release(&["-a", &url]);
    assert_eq!(hash, hash2);
    let _seed = LtPeer::seed(&t, &dir.path().join("seed"), &["--tracker"]);
    let link = format!(
        "magnet:?xt=urn:btih:{hash}&dn=release&tr={}",
        url_encode(url.as_bytes())
    );
    let out = dir_in(dir.path(), "out");
    let (code, err) = get(&link, &out, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_release(dir.path(), &out, &hash);
}

/// A peer that speaks just enough BEP 10 / BEP 9 to announce `size` bytes of metadata and
/// serve `content` (which does not hash to the info-hash) for it. Returns its address.
fn lying_peer(
    info_hash: [u8; 20],
    size: u64,
    content: Vec<u8>,
    served: Option<std::sync::mpsc::Sender<()>>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let content = content.clone();
            let served = served.clone();
            std::thread::spawn(move || {
                let mut hs = [0u8; 68];
                if s.read_exact(&mut hs).is_err() {
                    return;
                }
                let mut ours = b"\x13BitTorrent protocol".to_vec();
                ours.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
                ours.extend_from_slice(&info_hash);
                ours.extend_from_slice(b"-XX0000-lyingpeer000");
                let ext = format!("d1:md11:ut_metadatai3ee13:metadata_sizei{size}ee");
                let send = |s: &mut std::net::TcpStream, id: u8, payload: &[u8]| {
                    let mut m = (2 + payload.len() as u32).to_be_bytes().to_vec();
                    m.push(20);
                    m.push(id);
                    m.extend_from_slice(payload);
                    s.write_all(&m)
                };
                if s.write_all(&ours).is_err() || send(&mut s, 0, ext.as_bytes()).is_err() {
                    return;
                }
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).is_err() {
                        return;
                    }
                    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                    if s.read_exact(&mut body).is_err() {
                        return;
                    }
                    // A request from seedbox (under our ut_metadata id, 3): piece N.
                    if body.len() < 2 || body[0] != 20 || body[1] != 3 {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&body[2..]).into_owned();
                    let Some(piece) = text
                        .split("5:piecei")
                        .nth(1)
                        .and_then(|r| r.split('e').next())
                        .and_then(|n| n.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    let start = piece * 16384;
                    let end = (start + 16384).min(content.len());
                    let mut payload =
                        format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{size}ee")
                            .into_bytes();
                    payload.extend_from_slice(&content[start.min(end)..end]);
                    if send(&mut s, 2, &payload).is_err() {
                        return;
                    }
                    if end == content.len() {
                        if let Some(tx) = &served {
                            let _ = tx.send(());
                        }
                    }
                }
            });
        }
    });
    addr
}

fn hash_bytes(hex_hash: &str) -> [u8; 20] {
    hex::decode(hex_hash).unwrap().try_into().unwrap()
}

#[test]
fn a_lying_peer_is_dropped_and_another_asked() {
    let (dir, t, hash) = release(&[]);
    let size = seedbox::metainfo::Torrent::load(&t)
        .unwrap()
        .info_bytes
        .len();
    let (served, lied) = std::sync::mpsc::channel();
    let liar = lying_peer(
        hash_bytes(&hash),
        size as u64,
        vec![0x5a; size],
        Some(served),
    );
    // The honest seed listens only once the liar has served its whole lie, so the lie is
    // always checked first; get asks the honest address again after it failed to connect.
    let port = free_port();
    let link = format!("magnet:?xt=urn:btih:{hash}&x.pe={liar}");
    let out = dir_in(dir.path(), "out");
    let getter = {
        let (link, out) = (link.clone(), out.clone());
        std::thread::spawn(move || get(&link, &out, &["--peer", &format!("127.0.0.1:{port}")]))
    };
    lied.recv_timeout(Duration::from_secs(30))
        .expect("the liar was asked");
    let _seed = LtPeer::seed(&t, &dir.path().join("seed"), &["--port", &port.to_string()]);
    let (code, err) = getter.join().unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("does not match the info-hash"), "{err}");
    assert_release(dir.path(), &out, &hash);
}

#[test]
fn metadata_of_4_gib_is_refused_and_the_timeout_is_a_clear_error() {
    let hash = "ab".repeat(20);
    let liar = lying_peer(hash_bytes(&hash), 4 << 30, Vec::new(), None);
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (code, err) = get(
        &format!("magnet:?xt=urn:btih:{hash}&x.pe={liar}"),
        dir.path(),
        &["--metadata-timeout", "3s"],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("4294967296 bytes is over the"), "{err}");
    assert!(err.contains("no peer sent the metadata"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
