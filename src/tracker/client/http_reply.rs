//! Framing of one HTTP/1.x reply read by the tracker client (sans-IO): where the head ends,
//! how long the body is (`Content-Length`, `chunked`, or up to the end of the connection)
//! and whether the connection may carry the next request (keep-alive).
//!
//! The caller appends what it reads to one buffer and calls [`parse_reply`] after each read
//! (with `at_eof` once the server closed), until it returns a [`Reply`].

/// Most bytes of reply head read.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a reply head.
const MAX_HEADERS: usize = 64;

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code (200, 404, ...).
    pub code: u16,
    /// The status line, e.g. `HTTP/1.1 404 Not Found`.
    pub status_line: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Whether the connection may be used for another request: HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`, and a body whose end
    /// was known without the connection closing.
    pub keep_alive: bool,
}

/// Why a reply cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The head is not HTTP, or a header is malformed.
    #[error("malformed reply head: {0}")]
    Head(String),
    /// The head is over [`MAX_HEAD`] bytes.
    #[error("reply head over {MAX_HEAD} bytes")]
    HeadTooLong,
    /// The body is over the caller's limit.
    #[error("reply over {0} bytes")]
    TooLong(usize),
    /// A bad `Content-Length` or chunk size.
    #[error("bad body framing: {0}")]
    Framing(String),
    /// The server closed before the reply was complete.
    #[error("connection closed before the end of the reply")]
    Truncated,
}

/// How the body's end is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyLength {
    Fixed(usize),
    Chunked,
    UntilClose,
}

/// Parses the reply at the start of `buf`: `Ok(None)` while more bytes are needed, the reply
/// once complete. `at_eof` says the server has closed (a body without a length then ends
/// there). Bodies over `max_body` bytes are refused. Bytes after the reply are ignored (a
/// server does not send unrequested replies; the caller does not reuse such a connection).
pub fn parse_reply(buf: &[u8], at_eof: bool, max_body: usize) -> Result<Option<Reply>, ReplyError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let head_len = match head.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(ReplyError::HeadTooLong)
        }
        Ok(httparse::Status::Partial) if at_eof => return Err(ReplyError::Truncated),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ReplyError::Head(e.to_string())),
    };
    if head_len > MAX_HEAD {
        return Err(ReplyError::HeadTooLong);
    }
    let code = head.code.unwrap_or(0);
    let version = head.version.unwrap_or(0);
    let status_line = String::from_utf8_lossy(
        buf[..head_len]
            .split(|&b| b == b'\n')
            .next()
            .unwrap_or_default(),
    )
    .trim_end()
    .to_owned();
    let mut keep_alive = version == 1;
    let mut length = BodyLength::UntilClose;
    for h in head.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.contains("close") {
                keep_alive = false;
            } else if v.contains("keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.trim().ends_with("chunked") {
                length = BodyLength::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") && length != BodyLength::Chunked {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ReplyError::Framing(format!(
                        "Content-Length {:?}",
                        String::from_utf8_lossy(h.value)
                    ))
                })?;
            if matches!(length, BodyLength::Fixed(m) if m != n) {
                return Err(ReplyError::Framing("two different Content-Lengths".into()));
            }
            length = BodyLength::Fixed(n);
        }
    }
    // No body for these, whatever the headers say (RFC 9112 section 6.3).
    if code == 204 || code == 304 || (100..200).contains(&code) {
        length = BodyLength::Fixed(0);
    }
    let rest = &buf[head_len..];
    let body = match length {
        BodyLength::Fixed(n) if n > max_body => return Err(ReplyError::TooLong(max_body)),
        BodyLength::Fixed(n) if rest.len() >= n => rest[..n].to_vec(),
        BodyLength::Fixed(_) if at_eof => return Err(ReplyError::Truncated),
        BodyLength::Fixed(_) => return Ok(None),
        BodyLength::Chunked => match dechunk(rest, max_body)? {
            Some(body) => body,
            None if at_eof => return Err(ReplyError::Truncated),
            None => return Ok(None),
        },
        BodyLength::UntilClose if rest.len() > max_body => {
            return Err(ReplyError::TooLong(max_body))
        }
        BodyLength::UntilClose if at_eof => {
            keep_alive = false;
            rest.to_vec()
        }
        BodyLength::UntilClose => return Ok(None),
    };
    Ok(Some(Reply {
        code,
        status_line,
        body,
        keep_alive,
    }))
}

/// The body of a complete `chunked` encoding at the start of `buf` (trailers skipped), `None`
/// while incomplete.
fn dechunk(mut buf: &[u8], max_body: usize) -> Result<Option<Vec<u8>>, ReplyError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find_crlf(buf) else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[..line_end])
            .map_err(|_| ReplyError::Framing("chunk size is not text".into()))?;
        // A chunk extension (`;name=value`) is allowed and ignored.
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReplyError::Framing(format!("chunk size {size_text:?}")))?;
        buf = &buf[line_end + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(end) = find_crlf(buf) else {
                    return Ok(None);
                };
                if end == 0 {
                    return Ok(Some(body));
                }
                buf = &buf[end + 2..];
            }
        }
        if body.len().saturating_add(size) > max_body {
            return Err(ReplyError::TooLong(max_body));
        }
        if buf.len() < size.saturating_add(2) {
            return Ok(None);
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Err(ReplyError::Framing("chunk not followed by CRLF".into()));
        }
        body.extend_from_slice(&buf[..size]);
        buf = &buf[size + 2..];
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &[u8]) -> Reply {
        parse_reply(raw, false, 1 << 20).unwrap().unwrap()
    }

    #[test]
    fn a_content_length_reply_on_http_1_1_keeps_the_connection() {
        let r = complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(
            (r.code, r.body.as_slice(), r.keep_alive),
            (200, &b"hello"[..], true)
        );
        assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    }

    #[test]
    fn connection_close_and_http_1_0_do_not_keep_it_unless_asked() {
        let r = complete(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!r.keep_alive);
        let r = complete(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert!(!r.keep_alive);
        let r =
            complete(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok");
        assert!(r.keep_alive);
    }

    #[test]
    fn every_prefix_of_a_reply_asks_for_more() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for n in 0..raw.len() {
            assert_eq!(parse_reply(&raw[..n], false, 100), Ok(None), "prefix {n}");
            assert_eq!(
                parse_reply(&raw[..n], true, 100),
                Err(ReplyError::Truncated),
                "prefix {n} then close"
            );
        }
    }

    #[test]
    fn a_body_without_length_ends_with_the_connection() {
        let raw = b"HTTP/1.1 200 OK\r\n\r\nd8:intervali60ee";
        assert_eq!(parse_reply(raw, false, 100), Ok(None));
        let r = parse_reply(raw, true, 100).unwrap().unwrap();
        assert_eq!(r.body, b"d8:intervali60ee");
        assert!(!r.keep_alive, "the end was the close");
    }

    #[test]
    fn chunked_bodies_are_joined_with_extensions_and_trailers_skipped() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nd8:i\r\nB\r\nntervali60e\r\n1\r\ne\r\n0\r\nX-T: 1\r\n\r\n";
        let r = complete(raw);
        assert_eq!(r.body, b"d8:intervali60ee");
        assert!(r.keep_alive);
        for n in 0..raw.len() {
            assert_eq!(parse_reply(&raw[..n], false, 100), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn oversized_and_malformed_replies_are_refused() {
        assert_eq!(
            parse_reply(
                b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n",
                false,
                100
            ),
            Err(ReplyError::TooLong(100))
        );
        assert_eq!(
            parse_reply(b"HTTP/1.1 200 OK\r\n\r\n", true, 0).map(|r| r.map(|r| r.body)),
            Ok(Some(vec![]))
        );
        assert!(matches!(
            parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false, 100),
            Err(ReplyError::Framing(_))
        ));
        assert!(matches!(
            parse_reply(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                false,
                100
            ),
            Err(ReplyError::Framing(_))
        ));
        assert!(matches!(
            parse_reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false,
                100
            ),
            Err(ReplyError::Framing(_))
        ));
        assert_eq!(
            parse_reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n",
                false,
                100
            ),
            Err(ReplyError::TooLong(100))
        );
        assert!(matches!(
            parse_reply(b"SSH-2.0-OpenSSH\r\n\r\n", false, 100),
            Err(ReplyError::Head(_))
        ));
        let long = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(parse_reply(&long, false, 100), Err(ReplyError::HeadTooLong));
    }

    #[test]
    fn a_204_has_no_body_whatever_it_says() {
        let r = complete(b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n");
        assert!(r.body.is_empty() && r.keep_alive);
    }
}
