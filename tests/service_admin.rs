//! `seedbox seed --admin` on the real service: the torrent list, adding a .torrent by POST
//! while serving (a real libtorrent leecher then downloads it byte-exact), /metrics parsed by
//! Python's prometheus_client with the uploaded bytes matching what the leecher got, removing
//! a torrent over the API (its peers go, the other keeps serving), and bad requests refused
//! while the service keeps running.

mod seed_support;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use seed_support::{assert_same_file, create_release, lt_leech, require_libtorrent, RawPeer, Seed};

/// One HTTP request without a token; returns the status line and body.
fn request(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> (String, String) {
    support::http_request(addr, method, target, body, None)
}

#[test]
fn admin_api_adds_lists_meters_and_removes_on_the_running_service() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    create_release(dir.path(), "a.bin", 1 << 20, 1);
    create_release(dir.path(), "b.bin", 1 << 20, 2);
    let mut seed = Seed::start(
        &[
            "a.bin.torrent",
            "--threads",
            "2",
            "--stats-every",
            "0",
            "--admin",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let admin = seed.admin();
    let hash_a = support::info_hash_hex(&dir.path().join("a.bin.torrent"));
    let hash_b = support::info_hash_hex(&dir.path().join("b.bin.torrent"));

    let (status, list) = request(admin, "GET", "/api/v1/torrents", b"");
    assert!(
        status.contains("200") && list.contains(&hash_a),
        "{status} {list}"
    );
    assert!(!list.contains(&hash_b));

    // B added over the API while serving; a real leecher downloads it.
    let torrent_b = std::fs::read(dir.path().join("b.bin.torrent")).unwrap();
    let (status, body) = request(admin, "POST", "/api/v1/torrents", &torrent_b);
    assert!(status.contains("20"), "{status} {body}");
    let dl_b = dir.path().join("dl-b");
    lt_leech(
        &dir.path().join("b.bin.torrent"),
        &dl_b,
        seed.addr,
        Duration::from_secs(60),
    );
    assert_same_file(&dir.path().join("b.bin"), &dl_b.join("b.bin"));
    // Uploaded bytes match what the leecher received, within one block per peer.
    let (status, text) = request(admin, "GET", "/metrics", b"");
    assert!(status.contains("200"), "{status}");
    let up = support::prometheus_sample(
        &support::prometheus_parse(&text),
        "seedbox_torrent_uploaded_bytes",
        "seedbox_torrent_uploaded_bytes_total",
        &[("info_hash", &hash_b)],
    );
    let len = (1u64 << 20) as f64;
    assert!(up >= len && up <= len + 16384.0, "uploaded {up}");

    // Bad requests: 4xx with a JSON error, and the service keeps serving.
    let garbage = vec![0xA5u8; 1 << 20];
    let (status, _) = request(admin, "POST", "/api/v1/torrents", &garbage);
    assert!(status.contains(" 4"), "{status}");
    let (status, body) = request(
        admin,
        "DELETE",
        &format!("/api/v1/torrents/{}", "0".repeat(40)),
        b"",
    );
    assert!(
        status.contains("404") && body.contains("error"),
        "{status} {body}"
    );
    seed.assert_alive();

    // A peer of A; removing A closes it, and B keeps serving.
    let hash_a_bytes: [u8; 20] = hex_bytes(&hash_a);
    let mut peer = RawPeer::handshake(seed.addr, hash_a_bytes, true);
    let (status, body) = request(admin, "DELETE", &format!("/api/v1/torrents/{hash_a}"), b"");
    assert!(status.contains("20"), "{status} {body}");
    peer.expect_closed(Duration::from_secs(10));
    let (_, list) = request(admin, "GET", "/api/v1/torrents", b"");
    assert!(!list.contains(&hash_a) && list.contains(&hash_b), "{list}");
    let dl_b2 = dir.path().join("dl-b2");
    lt_leech(
        &dir.path().join("b.bin.torrent"),
        &dl_b2,
        seed.addr,
        Duration::from_secs(60),
    );
    assert_same_file(&dir.path().join("b.bin"), &dl_b2.join("b.bin"));
    let (status, _) = seed.terminate();
    assert!(status.success(), "{status}");
}

fn hex_bytes(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}
