//! The I/O half of the tracker client: one blocking announce over HTTP or UDP (BEP 15).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::http_pool::IdleConnections;
use super::http_reply::{parse_reply, Reply, ReplyError};
use super::udp_ids::UdpConnectionIds;

use crate::tracker::udp_codec::{Request, Response, UdpAnnounce};
use crate::tracker::{AnnounceRequest, AnnounceResponse, Peer, TrackerReply};

/// Largest HTTP reply body read.
const MAX_REPLY: usize = 1 << 20;

/// Why an announce failed.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The URL cannot be used.
    #[error("unsupported tracker URL {0}")]
    Url(String),
    /// Network trouble.
    #[error("{url}: {source}")]
    Io {
        /// The tracker.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The tracker's reply is malformed.
    #[error("{url}: bad reply: {why}")]
    BadReply {
        /// The tracker.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The tracker refused (`failure reason`, or a UDP error packet).
    #[error("{url}: tracker says: {reason}")]
    Refused {
        /// The tracker.
        url: String,
        /// Its words.
        reason: String,
    },
}

/// Timeouts of one announce.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// HTTP: connect + whole exchange.
    pub http: Duration,
    /// UDP: the first wait; doubled per retry (BEP 15 uses 15 s).
    pub udp_base: Duration,
    /// UDP: retries after the first send.
    pub udp_retries: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            http: Duration::from_secs(15),
            udp_base: Duration::from_secs(15),
            udp_retries: 3,
        }
    }
}

/// Announces `req` to `url` (`http://` or `udp://`).
pub fn announce(
    url: &str,
    req: &AnnounceRequest,
    t: Timeouts,
) -> Result<AnnounceResponse, AnnounceError> {
    if let Some(rest) = url.strip_prefix("http://") {
        http_announce(url, rest, req, t.http)
    } else if let Some(rest) = url.strip_prefix("udp://") {
        udp_announce(url, rest, req, t)
    } else {
        Err(AnnounceError::Url(url.to_owned()))
    }
}

fn resolve(url: &str, hostport: &str, default_port: u16) -> Result<SocketAddr, AnnounceError> {
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    };
    with_port
        .to_socket_addrs()
        .map_err(|source| AnnounceError::Io {
            url: url.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| AnnounceError::Url(url.to_owned()))
}

fn http_announce(
    url: &str,
    rest: &str,
    req: &AnnounceRequest,
    timeout: Duration,
) -> Result<AnnounceResponse, AnnounceError> {
    let path = match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    let full = format!("http://{}{sep}{}", rest_with_path(rest), req.to_query());
    let (code, status, body) = http_get_raw(url, &full, MAX_REPLY, timeout)?;
    let bad = |why: &str| AnnounceError::BadReply {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    match TrackerReply::decode(&body) {
        Ok(TrackerReply::Ok(r)) if code == 200 => Ok(r),
        Ok(TrackerReply::Failure(reason)) => Err(AnnounceError::Refused {
            url: url.to_owned(),
            reason,
        }),
        _ if code != 200 => Err(bad(&http_error(&status, &body))),
        Ok(TrackerReply::Ok(_)) => Err(bad(&format!("HTTP status {}", status.trim()))),
        Err(e) => Err(bad(&e.to_string())),
    }
}

/// Most bytes of an error reply's body quoted in the error.
const ERROR_BODY_QUOTE: usize = 120;

/// An HTTP error reply in words: `HTTP 404 Not Found: <the body's start>`, the body's bytes
/// as text on one line (control characters as spaces), cut at [`ERROR_BODY_QUOTE`].
fn http_error(status_line: &str, body: &[u8]) -> String {
    // "HTTP/1.1 404 Not Found" -> "404 Not Found".
    let status = status_line
        .trim()
        .split_once(' ')
        .map_or(status_line.trim(), |(_, s)| s.trim());
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_QUOTE)]);
    let mut quote: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    quote = quote.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.len() > ERROR_BODY_QUOTE {
        quote.push_str("...");
    }
    if quote.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {quote}")
    }
}

/// `rest` (after `http://`) with a path, `/` when it has none.
fn rest_with_path(rest: &str) -> String {
    if rest.contains('/') {
        rest.to_owned()
    } else {
        format!("{rest}/")
    }
}

/// Fetches `url` (`http://` only) with a plain HTTP/1.1 GET: the body of a 200 reply, at most
/// `max_len` bytes, within `timeout`. Used to fetch a `.torrent` from a web site, such as the
/// tracker's `/torrents/` pages.
pub fn http_get(url: &str, max_len: usize, timeout: Duration) -> Result<Vec<u8>, AnnounceError> {
    let (code, status, body) = http_get_raw(url, url, max_len, timeout)?;
    if code != 200 {
        return Err(AnnounceError::BadReply {
            url: url.to_owned(),
            why: format!("HTTP status {}", status.trim()),
        });
    }
    Ok(body)
}

/// One GET of `full` (an `http://` URL) over HTTP/1.1 keep-alive; errors name `url`. Returns
/// the status code, the status line and the body. An idle connection to the same tracker is
/// reused when there is one; a reused connection that fails before its reply (the server
/// closed it meanwhile) is replaced once by a new one. A connection whose reply allows it
/// goes back to the idle pool ([`http_pool`](super::http_pool)).
fn http_get_raw(
    url: &str,
    full: &str,
    max_len: usize,
    timeout: Duration,
) -> Result<(u16, String, Vec<u8>), AnnounceError> {
    let rest = full
        .strip_prefix("http://")
        .ok_or_else(|| AnnounceError::Url(url.to_owned()))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = resolve(url, hostport, 80)?;
    let io = |source| AnnounceError::Io {
        url: url.to_owned(),
        source,
    };
    let deadline = Instant::now() + timeout;
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: seedbox/{}\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(stream) = take_idle_connection(addr) {
        match http_exchange(&stream, head.as_bytes(), deadline, max_len) {
            Ok(reply) => return Ok(finish_exchange(addr, stream, reply)),
            // The server closed the idle connection under us: try a new one.
            Err(ExchangeError::Io(_) | ExchangeError::Reply(ReplyError::Truncated))
                if Instant::now() < deadline => {}
            Err(e) => return Err(e.into_announce_error(url)),
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let stream =
        TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1))).map_err(io)?;
    let _ = stream.set_nodelay(true);
    let reply = http_exchange(&stream, head.as_bytes(), deadline, max_len)
        .map_err(|e| e.into_announce_error(url))?;
    Ok(finish_exchange(addr, stream, reply))
}

/// How one request on one connection failed.
enum ExchangeError {
    Io(std::io::Error),
    Reply(ReplyError),
}

impl ExchangeError {
    fn into_announce_error(self, url: &str) -> AnnounceError {
        match self {
            ExchangeError::Io(source) => AnnounceError::Io {
                url: url.to_owned(),
                source,
            },
            ExchangeError::Reply(e) => AnnounceError::BadReply {
                url: url.to_owned(),
                why: e.to_string(),
            },
        }
    }
}

/// Sends `head` on `stream` and reads one reply, all before `deadline`.
fn http_exchange(
    mut stream: &TcpStream,
    head: &[u8],
    deadline: Instant,
    max_len: usize,
) -> Result<Reply, ExchangeError> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                ExchangeError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "reply too slow",
                ))
            })
    };
    stream
        .set_write_timeout(Some(left()?))
        .map_err(ExchangeError::Io)?;
    stream.write_all(head).map_err(ExchangeError::Io)?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(ExchangeError::Io)?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(ExchangeError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "reply too slow",
                )))
            }
            Err(e) => return Err(ExchangeError::Io(e)),
        };
        reply.extend_from_slice(&chunk[..n]);
        if let Some(r) = parse_reply(&reply, n == 0, max_len).map_err(ExchangeError::Reply)? {
            return Ok(r);
        }
    }
}

/// The reply as (code, status line, body); the connection goes back to the idle pool when the
/// reply allows it.
fn finish_exchange(addr: SocketAddr, stream: TcpStream, reply: Reply) -> (u16, String, Vec<u8>) {
    if reply.keep_alive {
        put_idle_connection(addr, stream);
    }
    (reply.code, reply.status_line, reply.body)
}

/// Idle keep-alive connections to HTTP trackers, shared by every announce of the process.
static HTTP_IDLE: std::sync::LazyLock<(Instant, Mutex<IdleConnections<TcpStream>>)> =
    std::sync::LazyLock::new(|| (Instant::now(), Mutex::new(IdleConnections::new())));

/// An idle connection to `tracker` that the server has not closed, if the pool has one.
fn take_idle_connection(tracker: SocketAddr) -> Option<TcpStream> {
    let (epoch, pool) = &*HTTP_IDLE;
    loop {
        let stream = pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(tracker, epoch.elapsed())?;
        if still_open(&stream) {
            return Some(stream);
        }
    }
}

fn put_idle_connection(tracker: SocketAddr, stream: TcpStream) {
    let (epoch, pool) = &*HTTP_IDLE;
    // A refused connection is dropped, which closes it.
    let _ = pool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .put(tracker, stream, epoch.elapsed());
}

/// Whether an idle connection can carry a request: nothing to read (a closed one reads its
/// end, and an idle one has no business sending anything).
fn still_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let open = matches!(
        stream.peek(&mut [0u8; 1]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    open && stream.set_nonblocking(false).is_ok()
}

/// One UDP tracker's socket, for request/response exchanges (BEP 15's retries).
struct UdpExchange<'a> {
    url: &'a str,
    socket: UdpSocket,
    ipv6: bool,
    /// The first wait; each retry doubles it.
    base: Duration,
    buf: [u8; 2048],
}

impl UdpExchange<'_> {
    fn io(&self, source: std::io::Error) -> AnnounceError {
        AnnounceError::Io {
            url: self.url.to_owned(),
            source,
        }
    }

    /// Sends `packet` and waits for the answer with transaction id `tid`, sending again
    /// `retries` times with doubled waits; stray or malformed datagrams are skipped.
    fn exchange(
        &mut self,
        packet: Request,
        tid: u32,
        retries: u32,
    ) -> Result<Response, AnnounceError> {
        let bytes = packet.encode();
        for attempt in 0..=retries {
            self.socket.send(&bytes).map_err(|e| self.io(e))?;
            let wait = self.base.saturating_mul(1 << attempt.min(8));
            let deadline = Instant::now() + wait;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                self.socket
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .map_err(|e| self.io(e))?;
                let n = match self.socket.recv(&mut self.buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(self.io(e)),
                };
                match Response::parse(&self.buf[..n], self.ipv6) {
                    Ok(r) if r.transaction_id() == tid => return Ok(r),
                    _ => continue, // stray or malformed: keep waiting
                }
            }
        }
        Err(self.io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer",
        )))
    }

    /// Asks for a connection id (BEP 15's connect).
    fn connect(&mut self, retries: u32, rng: &mut impl rand::Rng) -> Result<u64, AnnounceError> {
        let tid: u32 = rng.gen();
        match self.exchange(
            Request::Connect {
                transaction_id: tid,
            },
            tid,
            retries,
        )? {
            Response::Connect { connection_id, .. } => Ok(connection_id),
            Response::Error { message, .. } => Err(AnnounceError::Refused {
                url: self.url.to_owned(),
                reason: message,
            }),
            _ => Err(AnnounceError::BadReply {
                url: self.url.to_owned(),
                why: "not a connect reply".into(),
            }),
        }
    }
}

fn udp_announce(
    url: &str,
    rest: &str,
    req: &AnnounceRequest,
    t: Timeouts,
) -> Result<AnnounceResponse, AnnounceError> {
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr = resolve(url, hostport, 80)?;
    let io = |source| AnnounceError::Io {
        url: url.to_owned(),
        source,
    };
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .unwrap();
    let socket = UdpSocket::bind(bind).map_err(io)?;
    socket.connect(addr).map_err(io)?;
    let mut udp = UdpExchange {
        url,
        socket,
        ipv6: addr.is_ipv6(),
        base: t.udp_base,
        buf: [0u8; 2048],
    };
    let mut rng = rand::thread_rng();
    // A connection id received from this tracker within the minute is used again, with one
    // try: refused or unanswered, it is forgotten and a new one asked for.
    if let Some(connection_id) = cached_connection_id(addr) {
        let tid: u32 = rand::Rng::gen(&mut rng);
        let packet = udp_announce_packet(connection_id, tid, req, &mut rng);
        if let Ok(reply @ Response::Announce { .. }) = udp.exchange(packet, tid, 0) {
            return announce_reply(url, reply);
        }
        forget_connection_id(addr);
    }
    let connection_id = udp.connect(t.udp_retries, &mut rng)?;
    remember_connection_id(addr, connection_id);
    let tid: u32 = rand::Rng::gen(&mut rng);
    let packet = udp_announce_packet(connection_id, tid, req, &mut rng);
    let reply = udp.exchange(packet, tid, t.udp_retries)?;
    if matches!(reply, Response::Error { .. }) {
        forget_connection_id(addr);
    }
    announce_reply(url, reply)
}

/// The connection ids of UDP trackers, shared by every announce of the process.
static UDP_CONNECTION_IDS: std::sync::LazyLock<(Instant, Mutex<UdpConnectionIds>)> =
    std::sync::LazyLock::new(|| (Instant::now(), Mutex::new(UdpConnectionIds::new())));

fn with_connection_ids<T>(f: impl FnOnce(&mut UdpConnectionIds, Duration) -> T) -> T {
    let (epoch, ids) = &*UDP_CONNECTION_IDS;
    let mut ids = ids.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut ids, epoch.elapsed())
}

fn cached_connection_id(tracker: SocketAddr) -> Option<u64> {
    with_connection_ids(|ids, now| ids.get(tracker, now))
}

fn remember_connection_id(tracker: SocketAddr, id: u64) {
    with_connection_ids(|ids, now| ids.insert(tracker, id, now));
}

fn forget_connection_id(tracker: SocketAddr) {
    with_connection_ids(|ids, _| ids.forget(tracker));
}

fn udp_announce_packet(
    connection_id: u64,
    transaction_id: u32,
    req: &AnnounceRequest,
    rng: &mut impl rand::Rng,
) -> Request {
    Request::Announce(UdpAnnounce {
        connection_id,
        transaction_id,
        info_hash: req.info_hash,
        peer_id: req.peer_id,
        downloaded: req.downloaded,
        left: req.left,
        uploaded: req.uploaded,
        event: req.event,
        ip: 0,
        key: rng.gen(),
        num_want: req.numwant.map_or(-1, |n| n as i32),
        port: req.port,
    })
}

/// The announce's result from a UDP tracker's reply to it.
fn announce_reply(url: &str, reply: Response) -> Result<AnnounceResponse, AnnounceError> {
    match reply {
        Response::Announce {
            interval,
            leechers,
            seeders,
            peers,
            ..
        } => Ok(AnnounceResponse {
            interval,
            min_interval: None,
            complete: Some(seeders),
            incomplete: Some(leechers),
            peers: peers
                .into_iter()
                .map(|addr| Peer {
                    addr,
                    peer_id: None,
                })
                .collect(),
            warning: None,
        }),
        Response::Error { message, .. } => Err(AnnounceError::Refused {
            url: url.to_owned(),
            reason: message,
        }),
        _ => Err(AnnounceError::BadReply {
            url: url.to_owned(),
            why: "not an announce reply".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::InfoHash;
    use crate::protocol::PeerId;
    use crate::tracker::Event;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// A UDP tracker on loopback that counts the packets it gets, hands out connection id
    /// `epoch` (which `refuse_old` bumps per connect, refusing announces with an older one).
    fn fake_udp_tracker(refuse_old: bool) -> (SocketAddr, Arc<[AtomicU32; 2]>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let counts: Arc<[AtomicU32; 2]> = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let seen = counts.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut epoch = 1000u64;
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let reply = match Request::parse(&buf[..n]) {
                    Ok(Request::Connect { transaction_id }) => {
                        seen[0].fetch_add(1, Ordering::SeqCst);
                        if refuse_old {
                            epoch += 1;
                        }
                        Response::Connect {
                            transaction_id,
                            connection_id: epoch,
                        }
                    }
                    Ok(Request::Announce(a)) if a.connection_id == epoch => {
                        seen[1].fetch_add(1, Ordering::SeqCst);
                        Response::Announce {
                            transaction_id: a.transaction_id,
                            interval: 1800,
                            leechers: 0,
                            seeders: 1,
                            peers: vec![],
                        }
                    }
                    Ok(Request::Announce(a)) => Response::Error {
                        transaction_id: a.transaction_id,
                        message: "bad connection id".into(),
                    },
                    _ => continue,
                };
                let _ = socket.send_to(&reply.encode(), from);
            }
        });
        (addr, counts)
    }

    fn request(n: u8) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([n; 20]),
            peer_id: PeerId([1; 20]),
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: Event::Started,
            numwant: None,
            compact: true,
            no_peer_id: false,
            key: None,
            ip: None,
        }
    }

    #[test]
    fn announces_to_one_udp_tracker_share_its_connection_id() {
        let (addr, counts) = fake_udp_tracker(false);
        let url = format!("udp://{addr}/announce");
        for n in 0..5 {
            let r = announce(&url, &request(n), Timeouts::default()).unwrap();
            assert_eq!(r.interval, 1800);
        }
        assert_eq!(counts[0].load(Ordering::SeqCst), 1, "one connect");
        assert_eq!(counts[1].load(Ordering::SeqCst), 5, "five announces");
    }

    #[test]
    fn a_refused_connection_id_is_replaced_by_a_new_connect() {
        let (addr, counts) = fake_udp_tracker(true);
        let url = format!("udp://{addr}/announce");
        announce(&url, &request(1), Timeouts::default()).unwrap();
        // The tracker's ids changed under us: the cached one is refused, and the announce
        // still succeeds with a fresh id.
        with_connection_ids(|ids, now| ids.insert(addr, 1, now));
        announce(&url, &request(2), Timeouts::default()).unwrap();
        assert_eq!(counts[0].load(Ordering::SeqCst), 2);
        assert_eq!(counts[1].load(Ordering::SeqCst), 2);
    }

    /// How a fake HTTP tracker treats its connections after each reply.
    #[derive(Clone, Copy)]
    enum AfterReply {
        /// Keep the connection for the next request.
        KeepAlive,
        /// Say `Connection: close` and close.
        SayCloseAndClose,
        /// Promise keep-alive, then close anyway (as a server whose idle timeout ran out).
        CloseWithoutSaying,
    }

    /// An HTTP tracker on loopback answering every GET with a bencoded announce reply
    /// (chunked when `chunked`); counts the connections it accepted and the requests it
    /// answered.
    fn fake_http_tracker(after: AfterReply, chunked: bool) -> (SocketAddr, Arc<[AtomicU32; 2]>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counts: Arc<[AtomicU32; 2]> = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let seen = counts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                seen[0].fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        seen[1].fetch_add(1, Ordering::SeqCst);
                        let body = b"d8:intervali900e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
                        let close = matches!(after, AfterReply::SayCloseAndClose);
                        let mut reply = format!(
                            "HTTP/1.1 200 OK\r\n{}{}\r\n",
                            if close { "Connection: close\r\n" } else { "" },
                            if chunked {
                                "Transfer-Encoding: chunked\r\n".to_owned()
                            } else {
                                format!("Content-Length: {}\r\n", body.len())
                            }
                        )
                        .into_bytes();
                        if chunked {
                            reply.extend_from_slice(b"5\r\n");
                            reply.extend_from_slice(&body[..5]);
                            reply.extend_from_slice(
                                format!("\r\n{:x}\r\n", body.len() - 5).as_bytes(),
                            );
                            reply.extend_from_slice(&body[5..]);
                            reply.extend_from_slice(b"\r\n0\r\n\r\n");
                        } else {
                            reply.extend_from_slice(body);
                        }
                        if conn.write_all(&reply).is_err() {
                            return;
                        }
                        if !matches!(after, AfterReply::KeepAlive) {
                            return;
                        }
                    }
                });
            }
        });
        (addr, counts)
    }

    fn five_http_announces(addr: SocketAddr) {
        let url = format!("http://{addr}/announce");
        for n in 0..5 {
            let r = announce(&url, &request(n), Timeouts::default()).unwrap();
            assert_eq!((r.interval, r.peers.len()), (900, 1));
        }
    }

    #[test]
    fn announces_to_one_http_tracker_share_a_keep_alive_connection() {
        for chunked in [false, true] {
            let (addr, counts) = fake_http_tracker(AfterReply::KeepAlive, chunked);
            five_http_announces(addr);
            assert_eq!(counts[0].load(Ordering::SeqCst), 1, "one connection");
            assert_eq!(counts[1].load(Ordering::SeqCst), 5, "five requests");
        }
    }

    #[test]
    fn a_tracker_that_closes_gets_a_new_connection_per_announce() {
        for after in [AfterReply::SayCloseAndClose, AfterReply::CloseWithoutSaying] {
            let (addr, counts) = fake_http_tracker(after, false);
            five_http_announces(addr);
            assert_eq!(counts[0].load(Ordering::SeqCst), 5);
            assert_eq!(counts[1].load(Ordering::SeqCst), 5);
        }
    }

    #[test]
    fn an_http_error_names_its_status_and_quotes_the_body_on_one_line() {
        assert_eq!(
            http_error("HTTP/1.1 404 Not Found\r", b"no such\r\n torrent"),
            "HTTP 404 Not Found: no such torrent"
        );
        assert_eq!(
            http_error("HTTP/1.0 502 Bad Gateway", b""),
            "HTTP 502 Bad Gateway"
        );
        let long = vec![b'x'; 5000];
        let e = http_error("HTTP/1.1 500 Oops", &long);
        assert!(e.ends_with("...") && e.len() < 160, "{e}");
        // Not text: replaced, never a panic.
        let e = http_error("HTTP/1.1 500 Oops", &[0xff, 0xfe, b'a', 0]);
        assert!(e.starts_with("HTTP 500 Oops: ") && e.contains('a'), "{e}");
    }
}
