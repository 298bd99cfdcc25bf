//! The I/O half of the tracker client: one blocking announce over HTTP or UDP (BEP 15).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use crate::tracker::udp_codec::{Request, Response, UdpAnnounce};
use crate::tracker::{AnnounceRequest, AnnounceResponse, Peer, TrackerReply};

/// Largest HTTP reply read.
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

/// Fetches `url` (`http://` only) with a plain HTTP/1.0 GET: the body of a 200 reply, at most
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

/// One GET of `full` (an `http://` URL); errors name `url`. Returns the status code, the
/// status line and the body.
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
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let head = format!(
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: seedbox/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // Headers get 16 KiB on top of the body limit.
    let limit = max_len.saturating_add(16 * 1024);
    loop {
        if Instant::now() > deadline {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "reply too slow",
            )));
        }
        let n = stream.read(&mut chunk).map_err(io)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
        if reply.len() > limit {
            return Err(AnnounceError::BadReply {
                url: url.to_owned(),
                why: format!("reply over {max_len} bytes"),
            });
        }
    }
    let bad = |why: &str| AnnounceError::BadReply {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let status_line = reply[..split]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let status = String::from_utf8_lossy(status_line).into_owned();
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply[split + 4..].to_vec();
    if body.len() > max_len {
        return Err(bad(&format!("reply over {max_len} bytes")));
    }
    Ok((code, status, body))
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
    let ipv6 = addr.is_ipv6();
    let mut rng = rand::thread_rng();
    let mut buf = [0u8; 2048];
    let mut exchange = |packet: Request, tid: u32| -> Result<Response, AnnounceError> {
        let bytes = packet.encode();
        for attempt in 0..=t.udp_retries {
            socket.send(&bytes).map_err(io)?;
            let wait = t.udp_base.saturating_mul(1 << attempt.min(8));
            let deadline = Instant::now() + wait;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                socket
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .map_err(io)?;
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(io(e)),
                };
                match Response::parse(&buf[..n], ipv6) {
                    Ok(r) if r.transaction_id() == tid => return Ok(r),
                    _ => continue, // stray or malformed: keep waiting
                }
            }
        }
        Err(io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer",
        )))
    };
    let tid: u32 = rand::Rng::gen(&mut rng);
    let connection_id = match exchange(
        Request::Connect {
            transaction_id: tid,
        },
        tid,
    )? {
        Response::Connect { connection_id, .. } => connection_id,
        Response::Error { message, .. } => {
            return Err(AnnounceError::Refused {
                url: url.to_owned(),
                reason: message,
            })
        }
        _ => {
            return Err(AnnounceError::BadReply {
                url: url.to_owned(),
                why: "not a connect reply".into(),
            })
        }
    };
    let tid: u32 = rand::Rng::gen(&mut rng);
    let packet = Request::Announce(UdpAnnounce {
        connection_id,
        transaction_id: tid,
        info_hash: req.info_hash,
        peer_id: req.peer_id,
        downloaded: req.downloaded,
        left: req.left,
        uploaded: req.uploaded,
        event: req.event,
        ip: 0,
        key: rand::Rng::gen(&mut rng),
        num_want: req.numwant.map_or(-1, |n| n as i32),
        port: req.port,
    });
    match exchange(packet, tid)? {
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
    use super::http_error;

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
