//! The admin HTTP server over real sockets, against a mock backend: the JSON API, `/metrics`
//! read by the real Prometheus parser (Debian's python3-prometheus-client), the status page
//! rendered by headless Debian chromium, the bearer token, and bad input that must get a JSON
//! 4xx while the server keeps serving.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use seedbox::metainfo::{InfoHash, Torrent};
use seedbox::service::admin::{
    AdminBackend, AdminConfig, AdminError, AdminServer, CoreMetrics, EngineTotals, MetricsSnapshot,
    StartError, Token, TorrentState, TorrentStatus,
};
use serde_json::Value;
use support::{chromium, prometheus_parse, prometheus_sample as sample};

const TOKEN: &str = "test-token-0123456789abcdef";

/// A backend holding a list of torrents; rates move with every listing so charts have a shape.
#[derive(Default)]
struct Mock {
    torrents: Mutex<Vec<TorrentStatus>>,
    polls: AtomicU64,
}

fn status(byte: u8, name: &str, state: TorrentState) -> TorrentStatus {
    TorrentStatus {
        info_hash: InfoHash([byte; 20]),
        name: name.into(),
        size: 4_700_000_000 / u64::from(byte),
        state,
        uploaded: 123_456_789 * u64::from(byte),
        upload_rate: 0.0,
        peers: 12 + u64::from(byte),
        unchoked_peers: 4,
        announces: 7,
        announce_failures: u64::from(byte == 2),
    }
}

impl Mock {
    fn new(list: Vec<TorrentStatus>) -> Arc<Mock> {
        Arc::new(Mock {
            torrents: Mutex::new(list),
            polls: AtomicU64::new(0),
        })
    }

    fn find(&self, h: &InfoHash, state: TorrentState) -> Result<TorrentStatus, AdminError> {
        let mut list = self.torrents.lock().unwrap();
        let t = list
            .iter_mut()
            .find(|t| t.info_hash == *h)
            .ok_or(AdminError::NotFound(*h))?;
        t.state = state;
        Ok(t.clone())
    }
}

impl AdminBackend for Mock {
    fn torrents(&self) -> Vec<TorrentStatus> {
        let n = self.polls.fetch_add(1, Ordering::Relaxed) as f64;
        let mut list = self.torrents.lock().unwrap().clone();
        for (i, t) in list.iter_mut().enumerate() {
            if t.state == TorrentState::Seeding {
                let phase = n / 3.0 + i as f64;
                t.upload_rate = 40e6 * (1.2 + phase.sin()) / (i as f64 + 1.0);
            }
        }
        list
    }

    fn add_torrent_file(&self, bytes: &[u8]) -> Result<TorrentStatus, AdminError> {
        let t =
            Torrent::from_bytes(bytes).map_err(|e| AdminError::InvalidTorrent(e.to_string()))?;
        let mut list = self.torrents.lock().unwrap();
        if list.iter().any(|s| s.info_hash == t.info_hash) {
            return Err(AdminError::AlreadyExists(t.info_hash));
        }
        let s = TorrentStatus {
            info_hash: t.info_hash,
            name: t.name.clone(),
            size: t.total_length,
            state: TorrentState::Checking,
            uploaded: 0,
            upload_rate: 0.0,
            peers: 0,
            unchoked_peers: 0,
            announces: 0,
            announce_failures: 0,
        };
        list.push(s.clone());
        Ok(s)
    }

    fn add_data_path(&self, path: &Path) -> Result<TorrentStatus, AdminError> {
        if !path.exists() {
            return Err(AdminError::InvalidPath(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let mut s = status(0x77, &path.display().to_string(), TorrentState::Checking);
        s.uploaded = 0;
        self.torrents.lock().unwrap().push(s.clone());
        Ok(s)
    }

    fn remove(&self, h: &InfoHash) -> Result<(), AdminError> {
        let mut list = self.torrents.lock().unwrap();
        let n = list.len();
        list.retain(|t| t.info_hash != *h);
        if list.len() == n {
            return Err(AdminError::NotFound(*h));
        }
        Ok(())
    }

    fn pause(&self, h: &InfoHash) -> Result<TorrentStatus, AdminError> {
        self.find(h, TorrentState::Paused)
    }

    fn resume(&self, h: &InfoHash) -> Result<TorrentStatus, AdminError> {
        self.find(h, TorrentState::Seeding)
    }

    fn recheck(&self, h: &InfoHash) -> Result<TorrentStatus, AdminError> {
        self.find(h, TorrentState::Rechecking)
    }

    fn metrics(&self) -> MetricsSnapshot {
        let torrents = self.torrents();
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        latency.record_n(40, 10).unwrap();
        latency.record_n(300, 5).unwrap();
        latency.record_n(30_000, 2).unwrap();
        latency.record(3_000_000).unwrap();
        MetricsSnapshot {
            totals: EngineTotals {
                uploaded: torrents.iter().map(|t| t.uploaded).sum(),
                bytes_sent: 999_999_999,
                blocks_sent: 61_035,
                connections: 5,
                accepted: 9,
                dropped: 1,
                rejected: 2,
                announces: 14,
                announce_failures: 1,
            },
            torrents,
            cores: vec![
                CoreMetrics {
                    bytes_sent: 600_000_000,
                    connections: 3,
                    accepted: 5,
                },
                CoreMetrics {
                    bytes_sent: 399_999_999,
                    connections: 2,
                    accepted: 4,
                },
            ],
            latency_us: Some(latency),
        }
    }
}

fn two_torrents() -> Vec<TorrentStatus> {
    vec![
        status(1, "debian-13.2.0-amd64-netinst.iso", TorrentState::Seeding),
        status(
            2,
            "dataset \"imagenet\" <v2> \\ shard\n7",
            TorrentState::Seeding,
        ),
        status(
            3,
            "game-build-4711",
            TorrentState::Stopped {
                reason: "data file deleted: /srv/data/game-build-4711/pack.bin".into(),
            },
        ),
        status(
            4,
            "ubuntu-24.04-live-server-amd64.iso",
            TorrentState::Paused,
        ),
    ]
}

fn start(mock: Arc<Mock>, token: Option<&str>) -> AdminServer {
    let mut config = AdminConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        token.map(|t| Token::new(t).unwrap()),
    );
    config.request_timeout = Duration::from_secs(2);
    config.max_connections = 4;
    AdminServer::start(config, mock).expect("admin server starts")
}

/// A reply read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `{"error": ...}` message of a refusal, checking it is JSON.
    fn error(&self) -> String {
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{}",
            self.head
        );
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {:?}", self))
            .to_owned()
    }
}

/// Sends raw bytes, then reads the reply to the end of the connection.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may refuse before reading everything; the reply is still there to read.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse_reply(&out)
}

fn parse_reply(out: &[u8]) -> Reply {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no reply head in {:?}", String::from_utf8_lossy(out)));
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    Reply {
        status,
        head,
        body: out[split + 4..].to_vec(),
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let mut bytes = req.into_bytes();
    match body {
        Some((ctype, b)) => {
            bytes.extend_from_slice(
                format!(
                    "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                )
                .as_bytes(),
            );
            bytes.extend_from_slice(b);
        }
        None => bytes.extend_from_slice(b"\r\n"),
    }
    raw(addr, &bytes)
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, None, None)
}

fn minimal_torrent(name: &str) -> Vec<u8> {
    let mut t = format!(
        "d4:infod6:lengthi5e4:name{}:{name}12:piece lengthi16384e6:pieces20:",
        name.len()
    )
    .into_bytes();
    t.extend_from_slice(&[7u8; 20]);
    t.extend_from_slice(b"ee");
    t
}

#[test]
fn the_api_lists_adds_pauses_resumes_rechecks_and_removes() {
    let mock = Mock::new(two_torrents());
    let server = start(mock.clone(), None);
    let addr = server.local_addr();

    let list = get(addr, "/api/v1/torrents");
    assert_eq!(list.status, 200);
    let v = list.json();
    assert_eq!(v.as_array().unwrap().len(), 4);
    assert_eq!(v[0]["info_hash"], "01".repeat(20));
    assert_eq!(v[0]["name"], "debian-13.2.0-amd64-netinst.iso");
    assert_eq!(v[0]["state"], "seeding");
    assert!(v[0]["upload_rate"].as_f64().unwrap() > 0.0);
    assert_eq!(v[2]["state"], "stopped");
    assert!(v[2]["reason"].as_str().unwrap().contains("deleted"));

    let torrent = minimal_torrent("release-2.0.tar");
    let added = request(
        addr,
        "POST",
        "/api/v1/torrents",
        None,
        Some(("application/x-bittorrent", &torrent)),
    );
    assert_eq!(added.status, 201, "{added:?}");
    assert_eq!(added.json()["name"], "release-2.0.tar");
    assert_eq!(added.json()["state"], "checking");
    let hash = added.json()["info_hash"].as_str().unwrap().to_owned();
    let again = request(
        addr,
        "POST",
        "/api/v1/torrents",
        None,
        Some(("application/octet-stream", &torrent)),
    );
    assert_eq!(again.status, 409);
    assert!(again.error().contains("already added"));

    let dir = tempfile::tempdir().unwrap();
    let body = serde_json::json!({ "path": dir.path() }).to_string();
    let by_path = request(
        addr,
        "POST",
        "/api/v1/torrents",
        None,
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(by_path.status, 201, "{by_path:?}");
    let missing = request(
        addr,
        "POST",
        "/api/v1/torrents",
        None,
        Some(("application/json", b"{\"path\": \"/no/such/release\"}")),
    );
    assert_eq!(missing.status, 422);
    assert!(missing.error().contains("/no/such/release"));

    for (action, state) in [
        ("pause", "paused"),
        ("resume", "seeding"),
        ("recheck", "rechecking"),
    ] {
        let r = request(
            addr,
            "POST",
            &format!("/api/v1/torrents/{hash}/{action}"),
            None,
            None,
        );
        assert_eq!(r.status, 200, "{action}: {r:?}");
        assert_eq!(r.json()["state"], state);
    }
    let one = get(addr, &format!("/api/v1/torrents/{hash}"));
    assert_eq!(one.json()["state"], "rechecking");

    let del = request(
        addr,
        "DELETE",
        &format!("/api/v1/torrents/{hash}"),
        None,
        None,
    );
    assert_eq!(del.status, 200);
    assert_eq!(del.json()["removed"], hash);
    let gone = request(
        addr,
        "DELETE",
        &format!("/api/v1/torrents/{hash}"),
        None,
        None,
    );
    assert_eq!(gone.status, 404);
    assert!(gone.error().contains(&hash));
    assert_eq!(
        get(addr, "/api/v1/torrents")
            .json()
            .as_array()
            .unwrap()
            .len(),
        5
    );
    server.stop();
}

#[test]
fn keep_alive_serves_pipelined_requests_in_order() {
    let server = start(Mock::new(two_torrents()), None);
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(
        b"GET /api/v1/torrents HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200"]);
}

#[test]
fn metrics_parse_with_the_prometheus_client_parser() {
    let server = start(Mock::new(two_torrents()), Some(TOKEN));
    let addr = server.local_addr();
    let reply = request(addr, "GET", "/metrics", Some(TOKEN), None);
    assert_eq!(reply.status, 200);
    assert!(reply
        .head
        .contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    let text = String::from_utf8(reply.body).unwrap();
    let f = prometheus_parse(&text);

    // Counters lose `_total` in the family name; the sample keeps it.
    assert_eq!(f["seedbox_uploaded_bytes"]["type"], "counter");
    let uploaded = sample(
        &f,
        "seedbox_uploaded_bytes",
        "seedbox_uploaded_bytes_total",
        &[],
    );
    assert_eq!(uploaded, (123_456_789u64 * 10) as f64);
    assert_eq!(f["seedbox_peers"]["type"], "gauge");
    assert_eq!(sample(&f, "seedbox_peers", "seedbox_peers", &[]), 5.0);
    assert_eq!(
        sample(
            &f,
            "seedbox_announce_failures",
            "seedbox_announce_failures_total",
            &[]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &f,
            "seedbox_torrents",
            "seedbox_torrents",
            &[("state", "seeding")]
        ),
        2.0
    );

    // Per torrent, with the awkward name escaped and read back intact.
    let awkward = "dataset \"imagenet\" <v2> \\ shard\n7";
    let hash2 = "02".repeat(20);
    let labels = [("info_hash", hash2.as_str()), ("name", awkward)];
    assert_eq!(
        sample(
            &f,
            "seedbox_torrent_uploaded_bytes",
            "seedbox_torrent_uploaded_bytes_total",
            &labels
        ),
        (123_456_789u64 * 2) as f64
    );
    assert_eq!(
        sample(
            &f,
            "seedbox_torrent_peers",
            "seedbox_torrent_peers",
            &labels
        ),
        14.0
    );
    assert_eq!(
        sample(
            &f,
            "seedbox_torrent_unchoked_peers",
            "seedbox_torrent_unchoked_peers",
            &labels
        ),
        4.0
    );
    assert_eq!(
        sample(
            &f,
            "seedbox_torrent_announce_failures",
            "seedbox_torrent_announce_failures_total",
            &labels
        ),
        1.0
    );
    assert_eq!(
        sample(
            &f,
            "seedbox_torrent_state",
            "seedbox_torrent_state",
            &[("info_hash", &"03".repeat(20)), ("state", "stopped")]
        ),
        1.0
    );

    // Per core.
    assert_eq!(
        sample(
            &f,
            "seedbox_core_sent_bytes",
            "seedbox_core_sent_bytes_total",
            &[("core", "1")]
        ),
        399_999_999.0
    );
    assert_eq!(
        sample(
            &f,
            "seedbox_core_peers",
            "seedbox_core_peers",
            &[("core", "0")]
        ),
        3.0
    );

    // The latency histogram: cumulative buckets ending in +Inf == _count.
    let h = &f["seedbox_request_latency_seconds"];
    assert_eq!(h["type"], "histogram");
    let buckets: Vec<(f64, f64)> = h["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[0] == "seedbox_request_latency_seconds_bucket")
        .map(|s| {
            let le = s[1]["le"].as_str().unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, s[2].as_f64().unwrap())
        })
        .collect();
    assert!(buckets.len() > 10);
    assert!(buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    let le = |bound: f64| buckets.iter().find(|b| b.0 == bound).unwrap().1;
    assert_eq!(le(0.00005), 10.0);
    assert_eq!(le(0.0005), 15.0);
    assert_eq!(le(0.05), 17.0);
    assert_eq!(le(f64::INFINITY), 18.0);
    let count = sample(
        &f,
        "seedbox_request_latency_seconds",
        "seedbox_request_latency_seconds_count",
        &[],
    );
    assert_eq!(count, 18.0);
    let sum = sample(
        &f,
        "seedbox_request_latency_seconds",
        "seedbox_request_latency_seconds_sum",
        &[],
    );
    assert!((sum - 3.0619).abs() < 0.01, "{sum}");
    server.stop();
}

#[test]
fn the_token_is_required_when_configured_and_checked() {
    let server = start(Mock::new(two_torrents()), Some(TOKEN));
    let addr = server.local_addr();
    for path in ["/api/v1/torrents", "/metrics"] {
        let none = get(addr, path);
        assert_eq!(none.status, 401, "{path}");
        assert!(none.error().contains("token"));
        assert!(none.head.contains("WWW-Authenticate: Bearer"));
        let wrong = request(addr, "GET", path, Some("test-token-0123456789abcdeX"), None);
        assert_eq!(wrong.status, 401);
        let prefix = request(addr, "GET", path, Some(&TOKEN[..TOKEN.len() - 1]), None);
        assert_eq!(prefix.status, 401);
        assert_eq!(request(addr, "GET", path, Some(TOKEN), None).status, 200);
    }
    let hash = "01".repeat(20);
    let del = request(
        addr,
        "DELETE",
        &format!("/api/v1/torrents/{hash}"),
        None,
        None,
    );
    assert_eq!(del.status, 401);
    let list = request(addr, "GET", "/api/v1/torrents", Some(TOKEN), None);
    assert_eq!(
        list.json().as_array().unwrap().len(),
        4,
        "nothing was removed"
    );
    // The page holds no data and is served without the token.
    assert_eq!(get(addr, "/").status, 200);
    server.stop();

    // Loopback without a token is served.
    let open = start(Mock::new(two_torrents()), None);
    assert_eq!(get(open.local_addr(), "/api/v1/torrents").status, 200);
    assert_eq!(get(open.local_addr(), "/metrics").status, 200);
    open.stop();

    // Any other address without a token does not start (the check comes before binding).
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:9090"] {
        let config = AdminConfig::new(addr.parse().unwrap(), None);
        match AdminServer::start(config, Mock::new(Vec::new())) {
            Err(e @ StartError::TokenRequired(_)) => {
                assert!(e.to_string().contains("--admin-token-file"), "{e}")
            }
            Err(e) => panic!("{addr}: wrong error {e}"),
            Ok(_) => panic!("{addr}: started without a token"),
        }
    }
}

#[test]
fn bad_input_gets_a_json_4xx_and_the_server_keeps_serving() {
    let mock = Mock::new(two_torrents());
    let server = start(mock.clone(), None);
    let addr = server.local_addr();
    let still_serving = || {
        let r = get(addr, "/api/v1/torrents");
        assert_eq!(r.status, 200);
        assert_eq!(r.json().as_array().unwrap().len(), 4);
    };

    // 1 MB of garbage posted as a torrent: read whole, refused as neither .torrent nor JSON.
    let garbage: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = request(
        addr,
        "POST",
        "/api/v1/torrents",
        None,
        Some(("application/octet-stream", &garbage)),
    );
    assert_eq!(r.status, 400, "{:?}", r.head);
    assert!(r.error().contains("neither a .torrent"));
    // The same megabyte starting like a bencoded dictionary reaches the parser, which refuses it.
    let mut dict = garbage.clone();
    dict[0] = b'd';
    let r = request(
        addr,
        "POST",
        "/api/v1/torrents",
        None,
        Some(("application/x-bittorrent", &dict)),
    );
    assert_eq!(r.status, 422);
    assert!(r.error().contains("invalid torrent"));
    still_serving();

    // A body over the limit is refused from its Content-Length, before it is read.
    let big = vec![b'x'; 5 << 20];
    let r = request(
        addr,
        "POST",
        "/api/v1/torrents",
        None,
        Some(("application/x-bittorrent", &big)),
    );
    assert_eq!(r.status, 413);
    assert!(r.error().contains("too large"));
    still_serving();

    let hash = "01".repeat(20);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(), 400, "malformed"),
        (b"DELETE /api/v1/torrents/not-a-hash HTTP/1.1\r\n\r\n".to_vec(), 400, "bad info-hash"),
        (format!("DELETE /api/v1/torrents/{}zz HTTP/1.1\r\n\r\n", &hash[..38]).into_bytes(), 400, "bad info-hash"),
        (b"GET /api/v1/nothing HTTP/1.1\r\n\r\n".to_vec(), 404, "no such endpoint"),
        (b"GET /wp-login.php HTTP/1.1\r\n\r\n".to_vec(), 404, "no such endpoint"),
        (format!("POST /api/v1/torrents/{hash}/explode HTTP/1.1\r\nContent-Length: 0\r\n\r\n").into_bytes(), 404, "no such endpoint"),
        (b"PUT /api/v1/torrents HTTP/1.1\r\n\r\n".to_vec(), 405, "not allowed"),
        (b"POST /api/v1/torrents HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(), 411, "Content-Length"),
        (b"POST /api/v1/torrents HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(), 400, "empty body"),
        (b"POST /api/v1/torrents HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"path\": 12}".to_vec(), 400, "bad JSON"),
        (format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(10_000)).into_bytes(), 431, "too large"),
    ];
    for (bytes, want, text) in cases {
        let r = raw(addr, &bytes);
        assert_eq!(
            r.status,
            want,
            "{}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        );
        let e = r.error();
        assert!(e.contains(text), "{e}");
    }
    still_serving();

    // A request that stops halfway gets 408 once its time is up, and frees its slot.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    slow.write_all(b"POST /api/v1/torrents HTTP/1.1\r\nContent-Length: 100\r\n\r\nd4:inf")
        .unwrap();
    let mut out = Vec::new();
    let _ = slow.read_to_end(&mut out);
    let r = parse_reply(&out);
    assert_eq!(r.status, 408);
    assert!(r.error().contains("in time"));
    assert!(
        mock.torrents.lock().unwrap().len() == 4,
        "nothing was added"
    );
    still_serving();
    server.stop();
}

#[test]
fn connections_over_the_limit_get_503_and_the_limit_frees_up() {
    let server = start(Mock::new(two_torrents()), None);
    let addr = server.local_addr();
    // Four idle keep-alive connections fill the limit of this test server.
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(b"GET /api/v1/torrents HTTP/1.1\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 12];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"HTTP/1.1 200");
            s
        })
        .collect();
    let r = get(addr, "/api/v1/torrents");
    assert_eq!(r.status, 503);
    assert!(r.error().contains("too many"));
    drop(idle);
    let mut ok = false;
    for _ in 0..100 {
        if get(addr, "/api/v1/torrents").status == 200 {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok, "closed connections give their slots back");
}

#[test]
fn expect_100_continue_gets_its_continue() {
    let server = start(Mock::new(Vec::new()), None);
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let torrent = minimal_torrent("continued");
    s.write_all(
        format!(
            "POST /api/v1/torrents HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            torrent.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut first = [0u8; 25];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(&torrent).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let r = parse_reply(&out);
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["name"], "continued");
}

#[test]
fn the_status_page_renders_its_torrents_in_headless_chromium() {
    let mock = Mock::new(two_torrents());
    let server = start(mock.clone(), Some(TOKEN));
    // The token travels in the fragment, which the browser never sends to the server.
    let url = format!("http://{}/#token={TOKEN}", server.local_addr());
    let dir = tempfile::tempdir().unwrap();

    let out = chromium(&dir.path().join("profile-dom"), &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("data-loaded=\"1\""),
        "the page did not load its torrents: status {:?}\nstderr: {}\ndom: {dom}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "debian-13.2.0-amd64-netinst.iso",
        "game-build-4711",
        "ubuntu-24.04-live-server-amd64.iso",
    ] {
        assert!(dom.contains(name), "{name} not in the DOM");
    }
    // The awkward name is shown as text, escaped, never parsed as markup.
    assert!(
        dom.contains("dataset \"imagenet\" &lt;v2&gt; \\ shard"),
        "{dom}"
    );
    assert!(!dom.contains("<v2>"));
    assert!(dom.contains("data file deleted"));
    assert!(dom.contains("class=\"badge s-paused\""));
    // The chart has been drawn from several polls.
    assert!(dom.contains("<polyline"), "no chart line: {dom}");
    assert!(
        mock.polls.load(Ordering::Relaxed) >= 2,
        "the page polled the API"
    );

    let shot = std::env::var_os("SEEDBOX_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("status.png"));
    let out = chromium(
        &dir.path().join("profile-shot"),
        &[
            "--window-size=1400,1000",
            &format!("--screenshot={}", shot.display()),
            &url,
        ],
    );
    assert!(
        out.status.success(),
        "screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 20_000, "a blank page: {} bytes", png.len());
    server.stop();
}
