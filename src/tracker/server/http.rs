//! The HTTP side: a small, strict HTTP/1.1 request-head parser and the router (sans-IO,
//! unit-tested), and the per-connection loop on `tokio-uring`.
//!
//! Only `GET` is served (anything else: `405` and close); a request head (request line plus
//! headers) longer than [`TrackerConfig::max_head`](super::TrackerConfig::max_head) gets `431`
//! and close; a head not complete within the header timeout is dropped; request bodies are
//! refused. Keep-alive is the HTTP/1.1 default and pipelined requests are answered in order.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

use super::{Shared, TrackerStats};
use crate::tracker::announce::{
    encode_failure, query_pairs, AnnounceRequest, ScrapeRequest, ScrapeResponse,
};

/// The most headers a request may carry.
pub const MAX_HEADERS: usize = 32;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method, as sent.
    pub method: String,
    /// The request target (path and query), raw.
    pub target: Vec<u8>,
    /// Whether the client wants the connection closed after the reply.
    pub close: bool,
    /// Whether the request announces a body (refused: GET has none here).
    pub has_body: bool,
    /// Bytes of the head, including the blank line.
    pub len: usize,
}

/// Why a request head was refused; each maps to a status and a closed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The head is larger than the limit (or has too many headers).
    #[error("request head too large")]
    TooLarge,
    /// Not HTTP/1.x.
    #[error("malformed request")]
    Malformed,
}

impl HeadError {
    /// The status line of the reply.
    pub fn status(self) -> &'static str {
        match self {
            HeadError::TooLarge => "431 Request Header Fields Too Large",
            HeadError::Malformed => "400 Bad Request",
        }
    }
}

/// Parses a request head from the start of `buf`: `Ok(None)` when more bytes are needed.
/// Only the first `max_head` bytes are looked at.
pub fn parse_head(buf: &[u8], max_head: usize) -> Result<Option<Head>, HeadError> {
    let window = &buf[..buf.len().min(max_head)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let version = req.version.ok_or(HeadError::Malformed)?;
    let mut close = version == 0;
    let mut has_body = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value.to_ascii_lowercase();
            if v.windows(5).any(|w| w == b"close") {
                close = true;
            } else if v.windows(10).any(|w| w == b"keep-alive") {
                close = false;
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length")
                && h.value
                    .iter()
                    .any(|&b| b != b'0' && !b.is_ascii_whitespace()))
        {
            has_body = true;
        }
    }
    Ok(Some(Head {
        method: req.method.ok_or(HeadError::Malformed)?.to_owned(),
        target: req.path.ok_or(HeadError::Malformed)?.as_bytes().to_vec(),
        close,
        has_body,
        len,
    }))
}

/// A reply: status line, content type, body, and whether to close afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// E.g. `200 OK`.
    pub status: &'static str,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// Close the connection after this reply.
    pub close: bool,
}

impl Reply {
    fn new(status: &'static str, content_type: &'static str, body: Vec<u8>) -> Self {
        Reply {
            status,
            content_type,
            body,
            close: false,
        }
    }

    fn text(status: &'static str, body: &str) -> Self {
        Reply::new(
            status,
            "text/plain; charset=utf-8",
            body.as_bytes().to_vec(),
        )
    }

    fn bencode(body: Vec<u8>) -> Self {
        Reply::new("200 OK", "text/plain", body)
    }

    /// Status line, headers and body, ready to write.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.as_bytes());
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(self.content_type.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        out.extend_from_slice(self.body.len().to_string().as_bytes());
        if self.close {
            out.extend_from_slice(b"\r\nConnection: close");
        }
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The reply to a refused head (always closes).
pub fn error_reply(e: HeadError) -> Reply {
    let mut r = Reply::text(e.status(), &format!("{e}\n"));
    r.close = true;
    r
}

/// Answers one request from `peer` (sans-IO: the registry is updated, nothing is written).
pub fn route(head: &Head, peer: SocketAddr, shared: &Shared) -> Reply {
    if head.method != "GET" {
        TrackerStats::bump(&shared.stats.refused);
        let mut r = Reply::text("405 Method Not Allowed", "only GET is served\n");
        r.close = true;
        return r;
    }
    if head.has_body {
        TrackerStats::bump(&shared.stats.refused);
        let mut r = Reply::text("400 Bad Request", "a GET has no body\n");
        r.close = true;
        return r;
    }
    let (path, query) = match head.target.iter().position(|&b| b == b'?') {
        Some(i) => (&head.target[..i], &head.target[i + 1..]),
        None => (&head.target[..], &[][..]),
    };
    let mut reply = match path {
        b"/announce" => announce(query, peer, shared),
        b"/scrape" => scrape(query, shared),
        b"/" | b"/torrents" | b"/torrents/" => Reply::new(
            "200 OK",
            "text/html; charset=utf-8",
            shared.web.index_html().into_bytes(),
        ),
        p => match p
            .strip_prefix(b"/torrents/")
            .map(|n| percent_encoding::percent_decode(n).collect::<Vec<u8>>())
            .and_then(|n| shared.web.file(&String::from_utf8_lossy(&n)))
        {
            Some(bytes) => Reply::new("200 OK", "application/x-bittorrent", bytes.to_vec()),
            None => Reply::text("404 Not Found", "not found\n"),
        },
    };
    reply.close = head.close;
    reply
}

fn announce(query: &[u8], peer: SocketAddr, shared: &Shared) -> Reply {
    let req = match AnnounceRequest::parse_query(query) {
        Ok(r) => r,
        Err(e) => {
            TrackerStats::bump(&shared.stats.refused);
            return Reply::bencode(encode_failure(&e.to_string()));
        }
    };
    let ip = match req.ip {
        Some(ip) if shared.config.trust_ip => ip,
        _ => peer.ip().to_canonical(),
    };
    let addr = SocketAddr::new(ip, req.port);
    match shared.registry.announce(&req, addr, shared.now(), None) {
        Ok(resp) => {
            TrackerStats::bump(&shared.stats.http_announces);
            Reply::bencode(resp.encode(req.compact, req.no_peer_id))
        }
        Err(refusal) => {
            TrackerStats::bump(&shared.stats.refused);
            Reply::bencode(encode_failure(&refusal.to_string()))
        }
    }
}

fn scrape(query: &[u8], shared: &Shared) -> Reply {
    let req = match ScrapeRequest::parse_query(query) {
        Ok(r) => r,
        Err(e) => {
            TrackerStats::bump(&shared.stats.refused);
            return Reply::bencode(encode_failure(&e.to_string()));
        }
    };
    let files = if req.info_hashes.is_empty() {
        // A full scrape only when the query names no info_hash at all (not a misspelt one).
        if shared.config.full_scrape_limit == 0 || query_pairs(query).next().is_some() {
            TrackerStats::bump(&shared.stats.refused);
            return Reply::bencode(encode_failure("scrape needs info_hash"));
        }
        shared.registry.scrape_all(shared.config.full_scrape_limit)
    } else {
        req.info_hashes
            .iter()
            .map(|h| (*h, shared.registry.scrape(h)))
            .collect()
    };
    TrackerStats::bump(&shared.stats.scrapes);
    Reply::bencode(ScrapeResponse { files }.encode())
}

/// Accepts connections until `stop`, serving each on this core.
pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: &mut watch::Receiver<bool>,
) {
    let listener = tokio_uring::net::TcpListener::from_std(listener);
    while !*stop.borrow() {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    TrackerStats::bump(&shared.stats.connections);
                    let limit = shared.config.max_connections;
                    if shared.open.fetch_add(1, Ordering::Relaxed) >= limit {
                        shared.open.fetch_sub(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "refused: {limit} connections open");
                        continue;
                    }
                    let shared = shared.clone();
                    tokio_uring::spawn(async move {
                        serve(stream, peer, &shared).await;
                        shared.open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => {}
        }
    }
}

/// Reads more bytes into `buf`'s spare capacity; `Ok(false)` on end of stream.
async fn read_more(stream: &TcpStream, buf: &mut BytesMut) -> std::io::Result<bool> {
    buf.reserve(2048);
    let taken = std::mem::take(buf);
    let (start, end) = (taken.len(), taken.capacity());
    let (result, slice) = stream.read(taken.slice(start..end)).await;
    *buf = slice.into_inner();
    Ok(result? > 0)
}

/// Serves one connection: requests in order until the client closes, asks to close, sends
/// something refused, or times out.
async fn serve(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let cfg = &shared.config;
    let mut buf = BytesMut::with_capacity(2048);
    loop {
        // The header clock starts with the first byte of a request; before it, the idle one.
        let mut deadline = (!buf.is_empty()).then(|| Instant::now() + cfg.header_timeout);
        let head = loop {
            match parse_head(&buf, cfg.max_head) {
                Ok(Some(head)) => break Ok(head),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            let until = deadline.unwrap_or_else(|| Instant::now() + cfg.idle_timeout);
            match tokio::time::timeout_at(until, read_more(&stream, &mut buf)).await {
                Ok(Ok(true)) => {
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + cfg.header_timeout);
                    }
                }
                Ok(Ok(false)) | Ok(Err(_)) => return,
                Err(_) => {
                    tracing::debug!(%peer, "request head timed out");
                    if !buf.is_empty() {
                        TrackerStats::bump(&shared.stats.refused);
                    }
                    return;
                }
            }
        };
        let reply = match head {
            Ok(head) => {
                let _ = buf.split_to(head.len);
                route(&head, peer, shared)
            }
            Err(e) => {
                TrackerStats::bump(&shared.stats.refused);
                error_reply(e)
            }
        };
        let (result, _) = stream.write_all(reply.encode()).await;
        if result.is_err() || reply.close {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::InfoHash;
    use crate::tracker::announce::TrackerReply;
    use crate::tracker::server::TrackerConfig;

    const MAX: usize = 8192;

    fn get(target: &str) -> Head {
        parse_head(
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
            MAX,
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn parses_a_head_and_its_length() {
        let raw = b"GET /announce?a=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
        let h = parse_head(raw, MAX).unwrap().unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, b"/announce?a=1");
        assert!(!h.close && !h.has_body);
        assert_eq!(&raw[h.len..], b"GET /next");
    }

    #[test]
    fn partial_head_needs_more() {
        assert_eq!(parse_head(b"GET /announce HTTP/1.1\r\nHo", MAX), Ok(None));
        assert_eq!(parse_head(b"", MAX), Ok(None));
    }

    #[test]
    fn head_over_the_limit_is_refused() {
        let mut raw = b"GET /announce?".to_vec();
        raw.resize(MAX, b'a');
        assert_eq!(parse_head(&raw, MAX), Err(HeadError::TooLarge));
        // A complete head that fits is fine, even with a next request behind it.
        let ok = b"GET / HTTP/1.1\r\n\r\n";
        let mut raw = ok.to_vec();
        raw.resize(MAX * 2, b'x');
        assert_eq!(parse_head(&raw, MAX).unwrap().unwrap().len, ok.len());
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&many, MAX), Err(HeadError::TooLarge));
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(
            parse_head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", MAX),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            parse_head(b"GET / SPDY/3\r\n\r\n", MAX),
            Err(HeadError::Malformed)
        );
    }

    #[test]
    fn connection_handling() {
        let p = |raw: &[u8]| parse_head(raw, MAX).unwrap().unwrap();
        assert!(p(b"GET / HTTP/1.0\r\n\r\n").close);
        assert!(!p(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").close);
        assert!(p(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").close);
        assert!(p(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").has_body);
        assert!(!p(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").has_body);
        assert!(p(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").has_body);
    }

    #[test]
    fn reply_encoding() {
        let mut r = Reply::text("200 OK", "hi");
        assert_eq!(
            r.encode(),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nhi"
        );
        r.close = true;
        assert!(String::from_utf8(r.encode())
            .unwrap()
            .contains("\r\nConnection: close\r\n\r\nhi"));
    }

    fn shared() -> Shared {
        Shared::new(TrackerConfig::default())
    }

    fn announce_query(peer: u8, left: u64) -> String {
        format!(
            "/announce?info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left={left}",
            "%01".repeat(20),
            format!("%{peer:02x}").repeat(20),
            6000 + u16::from(peer)
        )
    }

    fn decode(r: &Reply) -> TrackerReply {
        TrackerReply::decode(&r.body).unwrap()
    }

    #[test]
    fn routes_announces_and_peers_meet() {
        let s = shared();
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let r = route(&get(&announce_query(1, 10)), peer, &s);
        assert_eq!(r.status, "200 OK");
        let TrackerReply::Ok(a) = decode(&r) else {
            panic!("{r:?}")
        };
        assert!(a.peers.is_empty());
        let r = route(&get(&announce_query(2, 10)), peer, &s);
        let TrackerReply::Ok(b) = decode(&r) else {
            panic!("{r:?}")
        };
        // The sender's address with the announced port.
        assert_eq!(b.peers.len(), 1);
        assert_eq!(b.peers[0].addr, "127.0.0.1:6001".parse().unwrap());
    }

    #[test]
    fn ip_parameter_only_when_trusted() {
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        for trust in [false, true] {
            let s = Shared::new(TrackerConfig {
                trust_ip: trust,
                ..Default::default()
            });
            route(
                &get(&format!("{}&ip=10.1.2.3", announce_query(1, 10))),
                peer,
                &s,
            );
            let TrackerReply::Ok(b) = decode(&route(&get(&announce_query(2, 10)), peer, &s)) else {
                panic!()
            };
            let want = if trust {
                "10.1.2.3:6001"
            } else {
                "127.0.0.1:6001"
            };
            assert_eq!(b.peers[0].addr, want.parse().unwrap());
        }
    }

    #[test]
    fn ipv4_mapped_senders_are_stored_as_ipv4() {
        let s = shared();
        let mapped: SocketAddr = "[::ffff:127.0.0.9]:1".parse().unwrap();
        route(&get(&announce_query(1, 10)), mapped, &s);
        let TrackerReply::Ok(b) = decode(&route(&get(&announce_query(2, 10)), mapped, &s)) else {
            panic!()
        };
        assert_eq!(b.peers[0].addr, "127.0.0.9:6001".parse().unwrap());
    }

    #[test]
    fn bad_announce_is_a_bencoded_failure() {
        let s = shared();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let r = route(&get("/announce?peer_id=x"), peer, &s);
        assert_eq!(r.status, "200 OK");
        assert!(matches!(decode(&r), TrackerReply::Failure(f) if f.contains("info_hash")));
    }

    #[test]
    fn methods_other_than_get_are_refused() {
        let s = shared();
        let h = parse_head(b"POST /announce HTTP/1.1\r\n\r\n", MAX)
            .unwrap()
            .unwrap();
        let r = route(&h, "127.0.0.1:1".parse().unwrap(), &s);
        assert!(r.status.starts_with("405"));
        assert!(r.close);
    }

    #[test]
    fn scrape_and_web_routes() {
        let s = shared();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        route(&get(&announce_query(1, 0)), peer, &s);
        let r = route(
            &get(&format!("/scrape?info_hash={}", "%01".repeat(20))),
            peer,
            &s,
        );
        let sc = ScrapeResponse::decode(&r.body).unwrap();
        assert_eq!(sc.files[0].1.complete, 1);
        let all = ScrapeResponse::decode(&route(&get("/scrape"), peer, &s).body).unwrap();
        assert_eq!(all.files.len(), 1);
        let r = route(&get("/scrape?info_hash=short"), peer, &s);
        assert!(matches!(decode(&r), TrackerReply::Failure(_)));
        s.web
            .add("a b", b"d4:infod4:name1:xee".to_vec(), InfoHash([9; 20]))
            .unwrap();
        let r = route(&get("/torrents/a%20b.torrent"), peer, &s);
        assert_eq!(r.status, "200 OK");
        assert_eq!(r.content_type, "application/x-bittorrent");
        assert_eq!(r.body, b"d4:infod4:name1:xee");
        assert!(route(&get("/torrents/nope.torrent"), peer, &s)
            .status
            .starts_with("404"));
        assert!(route(&get("/elsewhere"), peer, &s)
            .status
            .starts_with("404"));
        let index = route(&get("/"), peer, &s);
        assert!(String::from_utf8(index.body).unwrap().contains("a b"));
    }
}
