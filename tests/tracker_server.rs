//! The tracker server under bad input and normal use: every malformed request is answered
//! with a bencoded failure or a closed connection, and the server keeps answering afterwards.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use seedbox::metainfo::InfoHash;
use seedbox::protocol::PeerId;
use seedbox::tracker::announce::{ScrapeResponse, TrackerReply};
use seedbox::tracker::registry::RegistryConfig;
use seedbox::tracker::server::{TrackerConfig, TrackerHandle, TrackerServer};
use seedbox::tracker::udp_codec::{Request, Response, UdpAnnounce};
use seedbox::tracker::Event;
use support::{http_connect, http_get, read_http_response, url_encode};

fn config() -> TrackerConfig {
    TrackerConfig {
        threads: 2,
        header_timeout: Duration::from_secs(2),
        ..TrackerConfig::default()
    }
}

fn start() -> TrackerHandle {
    TrackerServer::start(config()).unwrap()
}

fn query(hash: &[u8], peer: u8, port: u16, left: &str) -> String {
    format!(
        "info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}",
        url_encode(hash),
        url_encode(&[peer; 20])
    )
}

fn announce(addr: SocketAddr, q: &str) -> TrackerReply {
    let (status, body) = http_get(addr, &format!("/announce?{q}"));
    assert_eq!(status, "HTTP/1.1 200 OK");
    TrackerReply::decode(&body).unwrap()
}

fn failure(addr: SocketAddr, q: &str) -> String {
    match announce(addr, q) {
        TrackerReply::Failure(f) => f,
        ok => panic!("expected a failure, got {ok:?}"),
    }
}

/// The server still answers: a fresh swarm, two peers, the second sees the first.
fn still_answers(addr: SocketAddr) {
    let hash: [u8; 20] = rand::random();
    let TrackerReply::Ok(_) = announce(addr, &query(&hash, 1, 7001, "5")) else {
        panic!("good announce refused")
    };
    match announce(addr, &query(&hash, 2, 7002, "5")) {
        TrackerReply::Ok(r) => {
            assert_eq!(r.peers.len(), 1);
            assert_eq!(r.peers[0].addr, "127.0.0.1:7001".parse().unwrap());
        }
        f => panic!("{f:?}"),
    }
}

/// Whether the peer closed the connection (EOF or reset) before `deadline`.
fn closed_by(s: &mut TcpStream, deadline: Instant) -> bool {
    let mut sink = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn missing_info_hash_is_a_failure() {
    let t = start();
    let a = t.http_addr().unwrap();
    let q = format!(
        "peer_id={}&port=1&uploaded=0&downloaded=0&left=0",
        url_encode(&[1; 20])
    );
    assert!(failure(a, &q).contains("info_hash"));
    still_answers(a);
}

#[test]
fn info_hash_of_19_bytes_is_a_failure() {
    let t = start();
    let a = t.http_addr().unwrap();
    let f = failure(a, &query(&[7; 19], 1, 1000, "0"));
    assert!(f.contains("info_hash") && f.contains("19"), "{f}");
    still_answers(a);
}

#[test]
fn info_hash_of_21_bytes_is_a_failure() {
    let t = start();
    let a = t.http_addr().unwrap();
    let f = failure(a, &query(&[7; 21], 1, 1000, "0"));
    assert!(f.contains("info_hash") && f.contains("21"), "{f}");
    still_answers(a);
}

#[test]
fn non_numeric_port_is_a_failure() {
    let t = start();
    let a = t.http_addr().unwrap();
    let q = query(&[7; 20], 1, 1000, "0").replace("port=1000", "port=http");
    assert!(failure(a, &q).contains("port"));
    still_answers(a);
}

#[test]
fn negative_left_is_a_failure() {
    let t = start();
    let a = t.http_addr().unwrap();
    let f = failure(a, &query(&[7; 20], 1, 1000, "-1"));
    assert!(f.contains("left") && f.contains("negative"), "{f}");
    still_answers(a);
}

#[test]
fn huge_numwant_is_capped() {
    let t = TrackerServer::start(TrackerConfig {
        registry: RegistryConfig {
            numwant_max: 5,
            ..RegistryConfig::default()
        },
        ..config()
    })
    .unwrap();
    let a = t.http_addr().unwrap();
    for peer in 1..=8u8 {
        announce(a, &query(&[9; 20], peer, 7000 + u16::from(peer), "10"));
    }
    let q = format!("{}&numwant=1000000000", query(&[9; 20], 1, 7001, "10"));
    match announce(a, &q) {
        TrackerReply::Ok(r) => {
            assert_eq!(r.peers.len(), 5);
            assert!(r.peers.iter().all(|p| p.addr.port() != 7001));
        }
        f => panic!("{f:?}"),
    }
    still_answers(a);
}

#[test]
fn one_mebibyte_query_string_closes_the_connection() {
    let t = start();
    let a = t.http_addr().unwrap();
    let mut s = http_connect(a);
    let mut req = format!("GET /announce?{}&pad=", query(&[1; 20], 1, 1, "0")).into_bytes();
    req.resize(1 << 20, b'a');
    req.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\n\r\n");
    // The server stops reading at its head limit, so the write may fail with a reset.
    let _ = s.write_all(&req);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || text.starts_with("HTTP/1.1 431 "),
        "unexpected reply {text:?}"
    );
    assert!(closed_by(&mut s, Instant::now() + Duration::from_secs(5)));
    still_answers(a);
}

#[test]
fn methods_other_than_get_get_405_and_close() {
    let t = start();
    let a = t.http_addr().unwrap();
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let mut s = http_connect(a);
        write!(
            s,
            "{method} /announce?{} HTTP/1.1\r\nHost: t\r\n\r\n",
            query(&[1; 20], 1, 1, "0")
        )
        .unwrap();
        let (status, _) = read_http_response(&mut s);
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert!(closed_by(&mut s, Instant::now() + Duration::from_secs(5)));
    }
    still_answers(a);
}

#[test]
fn headers_dribbled_one_byte_a_second_are_dropped_within_the_timeout() {
    let t = start();
    let a = t.http_addr().unwrap();
    let timeout = config().header_timeout;
    let req = format!(
        "GET /announce?{} HTTP/1.1\r\nHost: t\r\n\r\n",
        query(&[1; 20], 1, 1, "0")
    );
    let mut s = http_connect(a);
    let started = Instant::now();
    let mut sent = 0;
    let closed_at = loop {
        if s.write_all(&req.as_bytes()[sent..sent + 1]).is_err() {
            break started.elapsed();
        }
        sent += 1;
        if closed_by(&mut s, Instant::now() + Duration::from_secs(1)) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < timeout + Duration::from_secs(3),
            "still open after {:?}",
            started.elapsed()
        );
    };
    assert!(sent < req.len());
    assert!(
        closed_at >= timeout - Duration::from_millis(100),
        "closed too early: {closed_at:?}"
    );
    still_answers(a);
}

#[test]
fn keep_alive_and_pipelined_requests() {
    let t = start();
    let a = t.http_addr().unwrap();
    let mut s = http_connect(a);
    let one = format!(
        "GET /announce?{} HTTP/1.1\r\nHost: t\r\n\r\n",
        query(&[4; 20], 1, 7001, "5")
    );
    let two = format!(
        "GET /announce?{} HTTP/1.1\r\nHost: t\r\n\r\n",
        query(&[4; 20], 2, 7002, "5")
    );
    s.write_all(one.as_bytes()).unwrap();
    let (status, _) = read_http_response(&mut s);
    assert_eq!(status, "HTTP/1.1 200 OK");
    // Two requests in one write, answered in order on the same connection.
    s.write_all(format!("{two}{one}").as_bytes()).unwrap();
    for want in [7001, 7002] {
        let (_, body) = read_http_response(&mut s);
        match TrackerReply::decode(&body).unwrap() {
            TrackerReply::Ok(r) => {
                assert_eq!(r.peers.len(), 1);
                assert_eq!(r.peers[0].addr.port(), want);
            }
            f => panic!("{f:?}"),
        }
    }
}

#[test]
fn stopped_removes_and_no_peer_gets_itself() {
    let t = start();
    let a = t.http_addr().unwrap();
    let h = [5u8; 20];
    announce(a, &query(&h, 1, 7001, "5"));
    match announce(a, &query(&h, 1, 7001, "5")) {
        TrackerReply::Ok(r) => assert!(r.peers.is_empty(), "got itself back: {r:?}"),
        f => panic!("{f:?}"),
    }
    announce(a, &format!("{}&event=stopped", query(&h, 1, 7001, "5")));
    match announce(a, &query(&h, 2, 7002, "5")) {
        TrackerReply::Ok(r) => {
            assert!(r.peers.is_empty(), "stopped peer returned: {r:?}");
            assert_eq!(r.incomplete, Some(1));
        }
        f => panic!("{f:?}"),
    }
    let (_, body) = http_get(a, &format!("/scrape?info_hash={}", url_encode(&h)));
    let sc = ScrapeResponse::decode(&body).unwrap();
    assert_eq!(sc.files[0].0, InfoHash(h));
    assert_eq!(sc.files[0].1.incomplete, 1);
}

#[test]
fn ipv6_peers_come_in_peers6_and_dictionary_lists() {
    let t = TrackerServer::start(TrackerConfig {
        http: Some("[::1]:0".parse().unwrap()),
        udp: None,
        ..config()
    })
    .unwrap();
    let a = t.http_addr().unwrap();
    let h = [6u8; 20];
    announce(a, &query(&h, 1, 7001, "5"));
    let (_, body) = http_get(a, &format!("/announce?{}", query(&h, 2, 7002, "5")));
    assert!(body.windows(6).any(|w| w == b"peers6"));
    match TrackerReply::decode(&body).unwrap() {
        TrackerReply::Ok(r) => {
            assert_eq!(r.peers.len(), 1);
            assert_eq!(r.peers[0].addr, "[::1]:7001".parse().unwrap());
        }
        f => panic!("{f:?}"),
    }
    match announce(a, &format!("{}&compact=0", query(&h, 2, 7002, "5"))) {
        TrackerReply::Ok(r) => {
            assert_eq!(r.peers[0].addr, "[::1]:7001".parse().unwrap());
            assert_eq!(r.peers[0].peer_id, Some(PeerId([1; 20])));
        }
        f => panic!("{f:?}"),
    }
}

#[test]
fn whitelist_refuses_other_swarms() {
    let t = TrackerServer::start(TrackerConfig {
        registry: RegistryConfig {
            whitelist: Some([InfoHash([1; 20])].into_iter().collect()),
            ..RegistryConfig::default()
        },
        ..config()
    })
    .unwrap();
    let a = t.http_addr().unwrap();
    assert!(failure(a, &query(&[2; 20], 1, 7001, "5")).contains("not tracked"));
    assert!(matches!(
        announce(a, &query(&[1; 20], 1, 7001, "5")),
        TrackerReply::Ok(_)
    ));
}

#[test]
fn serves_torrent_files_and_an_index() {
    let t = start();
    let a = t.http_addr().unwrap();
    let bytes = support::pseudo_random(5000, 3);
    t.add_torrent_file("my <release>", bytes.clone(), InfoHash([0xcd; 20]))
        .unwrap();
    let (status, body) = http_get(a, "/torrents/my%20%3Crelease%3E.torrent");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, bytes);
    for index in ["/", "/torrents/"] {
        let (status, body) = http_get(a, index);
        assert_eq!(status, "HTTP/1.1 200 OK");
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains("my &lt;release&gt;"), "{html}");
        assert!(html.contains(&format!("magnet:?xt=urn:btih:{}", "cd".repeat(20))));
    }
    assert_eq!(
        http_get(a, "/torrents/other.torrent").0,
        "HTTP/1.1 404 Not Found"
    );
}

// ---------------------------------------------------------------- UDP

fn udp_client(t: &TrackerHandle) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(t.udp_addr().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn udp_ask(s: &UdpSocket, pkt: &[u8]) -> Response {
    s.send(pkt).unwrap();
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf).expect("udp reply");
    Response::parse(&buf[..n], false).unwrap()
}

fn udp_connect(s: &UdpSocket, tid: u32) -> u64 {
    match udp_ask(
        s,
        &Request::Connect {
            transaction_id: tid,
        }
        .encode(),
    ) {
        Response::Connect {
            transaction_id,
            connection_id,
        } => {
            assert_eq!(transaction_id, tid);
            connection_id
        }
        r => panic!("{r:?}"),
    }
}

fn udp_announce_pkt(conn: u64, peer: u8, hash: [u8; 20]) -> Vec<u8> {
    Request::Announce(UdpAnnounce {
        connection_id: conn,
        transaction_id: 99,
        info_hash: InfoHash(hash),
        peer_id: PeerId([peer; 20]),
        downloaded: 0,
        left: 10,
        uploaded: 0,
        event: Event::Started,
        ip: 0,
        key: 5,
        num_want: -1,
        port: 7000 + u16::from(peer),
    })
    .encode()
}

#[test]
fn udp_packets_of_every_wrong_size_are_dropped() {
    let t = start();
    let s = udp_client(&t);
    let conn = udp_connect(&s, 1);
    let connect = Request::Connect { transaction_id: 2 }.encode();
    let announce = udp_announce_pkt(conn, 1, [8; 20]);
    let scrape = Request::Scrape {
        connection_id: conn,
        transaction_id: 3,
        info_hashes: vec![InfoHash([8; 20])],
    }
    .encode();
    let mut tid = 1000;
    let mut sent = 0;
    for (name, base, valid) in [
        (
            "connect",
            &connect,
            &(|n: usize| n == 16) as &dyn Fn(usize) -> bool,
        ),
        ("announce", &announce, &|n: usize| n == 98),
        ("scrape", &scrape, &|n: usize| {
            n >= 36 && (n - 16) % 20 == 0 && n <= 16 + 74 * 20
        }),
    ] {
        for size in 0..=200usize {
            if valid(size) {
                continue;
            }
            // The real header, cut short or padded with an invalid BEP 41 option type.
            let mut pkt = base.clone();
            pkt.resize(size, 0xff);
            s.send(&pkt).unwrap();
            sent += 1;
            // Packets from one socket are handled in order: the next reply must answer this
            // connect, not the malformed packet.
            tid += 1;
            match udp_ask(
                &s,
                &Request::Connect {
                    transaction_id: tid,
                }
                .encode(),
            ) {
                Response::Connect { transaction_id, .. } if transaction_id == tid => {}
                r => panic!("{name} of {size} bytes was answered: {r:?}"),
            }
        }
    }
    assert!(sent > 500);
    // Nothing was registered by the malformed announces.
    assert_eq!(t.swarm_count(), 0);
    match udp_ask(&s, &udp_announce_pkt(udp_connect(&s, 5), 2, [8; 20])) {
        Response::Announce { leechers: 1, .. } => {}
        r => panic!("{r:?}"),
    }
}

#[test]
fn udp_forged_connection_id_is_refused() {
    let t = start();
    let s = udp_client(&t);
    let real = udp_connect(&s, 1);
    for forged in [0u64, real ^ 1, 0x41727101980, rand::random()] {
        match udp_ask(&s, &udp_announce_pkt(forged, 1, [9; 20])) {
            Response::Error {
                transaction_id,
                message,
            } => {
                assert_eq!(transaction_id, 99);
                assert!(message.contains("connection id"), "{message}");
            }
            r => panic!("forged id {forged:#x} accepted: {r:?}"),
        }
    }
    assert_eq!(t.swarm_count(), 0);
    // Another socket's id is forged for this one too.
    let other = udp_client(&t);
    let theirs = udp_connect(&other, 1);
    assert!(matches!(
        udp_ask(&s, &udp_announce_pkt(theirs, 1, [9; 20])),
        Response::Error { .. }
    ));
    // The real id works, and peers meet over UDP.
    assert!(matches!(
        udp_ask(&s, &udp_announce_pkt(real, 1, [9; 20])),
        Response::Announce { leechers: 1, .. }
    ));
    match udp_ask(&other, &udp_announce_pkt(theirs, 2, [9; 20])) {
        Response::Announce { peers, .. } => {
            assert_eq!(peers, vec!["127.0.0.1:7001".parse().unwrap()])
        }
        r => panic!("{r:?}"),
    }
    match udp_ask(
        &s,
        &Request::Scrape {
            connection_id: real,
            transaction_id: 4,
            info_hashes: vec![InfoHash([9; 20])],
        }
        .encode(),
    ) {
        Response::Scrape { stats, .. } => assert_eq!(stats, vec![(0, 0, 2)]),
        r => panic!("{r:?}"),
    }
}

// ---------------------------------------------------------------- CLI

#[test]
fn cli_prints_where_it_listens_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let wl = dir.path().join("whitelist.txt");
    std::fs::write(&wl, format!("{}\n", "ab".repeat(20))).unwrap();
    let mut child = support::seedbox()
        .args(["tracker", "--listen", "127.0.0.1:0", "--interval", "60"])
        .arg("--whitelist")
        .arg(&wl)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("HTTP ")
        .expect("HTTP line")
        .to_owned();
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/announce")
        .parse()
        .unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(line.starts_with("UDP udp://127.0.0.1:"), "{line}");
    match announce(addr, &query(&[0xab; 20], 1, 7001, "0")) {
        TrackerReply::Ok(r) => assert_eq!(r.interval, 60),
        f => panic!("{f:?}"),
    }
    assert!(failure(addr, &query(&[0xac; 20], 1, 7001, "0")).contains("not tracked"));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = support::wait_with_timeout(child, Duration::from_secs(10));
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn cli_refuses_a_bad_whitelist() {
    let dir = tempfile::tempdir().unwrap();
    let wl = dir.path().join("whitelist.txt");
    std::fs::write(&wl, "abcd\n").unwrap();
    let out = support::run(&[
        "tracker",
        "--listen",
        "127.0.0.1:0",
        "--whitelist",
        wl.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}

#[test]
fn cli_serves_the_torrents_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dir_in(dir.path(), "data");
    support::write_tree(&data, &[("song & dance.bin", 100_000)]);
    let torrents = support::dir_in(dir.path(), "torrents");
    let t = torrents.join("song & dance.torrent");
    let o = support::run(&[
        "create",
        data.join("song & dance.bin").to_str().unwrap(),
        "-o",
        t.to_str().unwrap(),
        "--no-date",
        "-q",
    ]);
    assert!(o.status.success());
    let hash = {
        let o = support::run(&["show", "--json", t.to_str().unwrap()]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["info_hash"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut child = support::seedbox()
        .args([
            "tracker",
            "--listen",
            "127.0.0.1:0",
            "--no-udp",
            "--torrents",
        ])
        .arg(&torrents)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .trim_start_matches("HTTP http://")
        .trim_end_matches("/announce")
        .parse()
        .unwrap();
    let (status, body) = http_get(addr, "/torrents/song%20%26%20dance.torrent");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, std::fs::read(&t).unwrap());
    let (_, index) = http_get(addr, "/");
    let index = String::from_utf8(index).unwrap();
    assert!(index.contains("song &amp; dance"), "{index}");
    assert!(
        index.contains(&format!("magnet:?xt=urn:btih:{hash}")),
        "{index}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
