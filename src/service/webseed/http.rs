//! The web seed's HTTP, sans-IO: request heads parsed from bytes, BEP 19 paths decoded into
//! name components, `Range` headers resolved against a file's length, and reply heads
//! written. Nothing here touches a socket; every function takes bytes and returns values.

use percent_encoding::percent_decode;

/// The largest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

/// The most headers accepted in one request.
const MAX_HEADERS: usize = 32;

/// The most path components accepted (a torrent's name plus its deepest file path).
const MAX_COMPONENTS: usize = 64;

/// A byte range as the client wrote it (one range of a `Range: bytes=...` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=FIRST-` or `bytes=FIRST-LAST` (LAST inclusive).
    From {
        /// First byte.
        first: u64,
        /// Last byte, inclusive, when given.
        last: Option<u64>,
    },
    /// `bytes=-N`: the last N bytes.
    Suffix(u64),
}

/// A parsed GET or HEAD request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebRequest {
    /// HEAD: the reply carries no body.
    pub head_only: bool,
    /// The path's components, percent-decoded: the torrent's name, then the file's path in a
    /// multi-file torrent.
    pub components: Vec<String>,
    /// The range asked for, if any.
    pub range: Option<ByteRange>,
    /// The client asked to close after this reply (or speaks HTTP/1.0 without keep-alive).
    pub close: bool,
}

/// What [`parse_request`] found in the bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request head, and how many bytes of the buffer it used.
    Complete(WebRequest, usize),
    /// More bytes are needed.
    Partial,
}

/// A request refused: the status to answer and why (sent as the body, for people with curl).
/// The connection is closed after it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct Refusal {
    /// The HTTP status (4xx or 5xx).
    pub status: u16,
    /// A clear explanation.
    pub reason: String,
    /// For 416: the length of the file, sent as `Content-Range: bytes */LEN`.
    pub length: Option<u64>,
}

impl Refusal {
    /// A refusal with `status` and `reason`.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
            length: None,
        }
    }
}

/// Parses a request head from the start of `buf`. Only GET and HEAD are served; a request
/// with a body, a head over [`MAX_HEAD`], a path that climbs (`..`, `.`, or a decoded `/`
/// inside a component) or a malformed `Range` is refused.
pub fn parse_request(buf: &[u8]) -> Result<Parsed, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(Refusal::new(431, "request head too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(431, "too many request headers"))
        }
        Err(e) => return Err(Refusal::new(400, format!("malformed request: {e}"))),
    };
    if used > MAX_HEAD {
        return Err(Refusal::new(431, "request head too large"));
    }
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        Some(m) => {
            return Err(Refusal::new(
                405,
                format!("method {m} not allowed: a web seed serves GET and HEAD"),
            ))
        }
        None => return Err(Refusal::new(400, "no method")),
    };
    let http10 = req.version == Some(0);
    let mut close = http10;
    let mut range = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.contains("close") {
                close = true;
            } else if v.contains("keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case("range") {
            if range.is_some() {
                return Err(Refusal::new(400, "more than one Range header"));
            }
            range = Some(parse_range(h.value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("content-length") && h.value.trim_ascii() != b"0")
        {
            return Err(Refusal::new(400, "a web seed request carries no body"));
        }
    }
    let components = decode_path(req.path.unwrap_or(""))?;
    Ok(Parsed::Complete(
        WebRequest {
            head_only,
            components,
            range,
            close,
        },
        used,
    ))
}

/// Splits a request target into percent-decoded path components (BEP 19: `/NAME` or
/// `/NAME/dir/file`). A query string is ignored. Refused: a target not starting with `/`,
/// empty components, `.` and `..` (in any encoding, `%2e%2e` included), a decoded `/`, `\`
/// or NUL inside a component, and text that is not UTF-8.
pub fn decode_path(target: &str) -> Result<Vec<String>, Refusal> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Refusal::new(400, "the request target must be a path"));
    };
    if rest.is_empty() {
        return Err(Refusal::new(404, "no torrent named (ask for /NAME)"));
    }
    let mut out = Vec::new();
    for raw in rest.split('/') {
        if out.len() == MAX_COMPONENTS {
            return Err(Refusal::new(414, "path too deep"));
        }
        let decoded = percent_decode(raw.as_bytes())
            .decode_utf8()
            .map_err(|_| Refusal::new(400, "path is not UTF-8 once decoded"))?;
        match &*decoded {
            "." | ".." => return Err(Refusal::new(400, "path traversal refused")),
            "" => return Err(Refusal::new(400, "empty path component")),
            c if c.contains(['/', '\\', '\0']) => {
                return Err(Refusal::new(
                    400,
                    "path component holds a slash, backslash or NUL: refused",
                ))
            }
            _ => out.push(decoded.into_owned()),
        }
    }
    Ok(out)
}

/// Parses a `Range` header's value: one range of `bytes`. Several ranges (multipart replies)
/// are not served.
pub fn parse_range(value: &[u8]) -> Result<ByteRange, Refusal> {
    let bad = |why: &str| Refusal::new(400, format!("bad Range header: {why}"));
    let text = std::str::from_utf8(value)
        .map_err(|_| bad("not ASCII"))?
        .trim();
    let Some((unit, spec)) = text.split_once('=') else {
        return Err(bad("expected bytes=FIRST-LAST"));
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Err(bad("only bytes ranges are served"));
    }
    if spec.contains(',') {
        return Err(Refusal::new(
            416,
            "several ranges in one request are not served: ask for one at a time",
        ));
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Err(bad("expected bytes=FIRST-LAST"));
    };
    let number = |s: &str| -> Result<u64, Refusal> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not a byte position"));
        }
        s.parse::<u64>().map_err(|_| bad("byte position too large"))
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return Ok(ByteRange::Suffix(number(last)?));
    }
    let first = number(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(number(last)?)
    };
    if last.is_some_and(|l| l < first) {
        return Err(bad("last byte before first"));
    }
    Ok(ByteRange::From { first, last })
}

/// The bytes `start..end` of a file of `len` bytes that `range` asks for (the whole file
/// without a range). A last byte past the end is clamped to the file (RFC 9110); a range
/// starting at or past the end, or an empty suffix, is unsatisfiable: 416.
pub fn resolve_range(range: Option<ByteRange>, len: u64) -> Result<(u64, u64), Refusal> {
    let unsatisfiable = |why: String| Refusal {
        status: 416,
        reason: why,
        length: Some(len),
    };
    match range {
        None => Ok((0, len)),
        Some(ByteRange::Suffix(0)) => Err(unsatisfiable("empty suffix range".into())),
        Some(ByteRange::Suffix(n)) => {
            if len == 0 {
                return Err(unsatisfiable("the file is empty".into()));
            }
            Ok((len.saturating_sub(n), len))
        }
        Some(ByteRange::From { first, last }) => {
            if first >= len {
                return Err(unsatisfiable(format!(
                    "range starts at byte {first}, past the end of a {len}-byte file"
                )));
            }
            let end = last.map_or(len, |l| l.saturating_add(1).min(len));
            Ok((first, end))
        }
    }
}

/// The head of a successful reply: `200` for the whole file, `206` with `Content-Range` for a
/// range (`ranged`), always `Accept-Ranges: bytes`.
pub fn reply_head(start: u64, end: u64, len: u64, ranged: bool, close: bool) -> Vec<u8> {
    let mut s = if ranged {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{len}\r\n",
            end.saturating_sub(1)
        )
    } else {
        "HTTP/1.1 200 OK\r\n".to_string()
    };
    s.push_str("Accept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\n");
    s.push_str(&format!("Content-Length: {}\r\n", end - start));
    s.push_str(if close {
        "Connection: close\r\n"
    } else {
        "Connection: keep-alive\r\n"
    });
    s.push_str("\r\n");
    s.into_bytes()
}

/// A refusal as a whole reply (plain-text body, `Connection: close`; `Retry-After` on 503).
pub fn refusal_reply(r: &Refusal) -> Vec<u8> {
    let body = format!("{}\n", r.reason);
    let mut s = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason_phrase(r.status),
        body.len()
    );
    if let Some(len) = r.length {
        s.push_str(&format!("Content-Range: bytes */{len}\r\n"));
    }
    if r.status == 503 {
        s.push_str("Retry-After: 10\r\n");
    }
    s.push_str("\r\n");
    s.push_str(&body);
    s.into_bytes()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Parsed, Refusal> {
        parse_request(s.as_bytes())
    }

    fn complete(s: &str) -> WebRequest {
        match parse(s) {
            Ok(Parsed::Complete(r, n)) => {
                assert_eq!(n, s.len());
                r
            }
            other => panic!("{s:?}: {other:?}"),
        }
    }

    fn status(s: &str) -> u16 {
        parse(s).unwrap_err().status
    }

    #[test]
    fn get_with_a_range_parses() {
        let r = complete(
            "GET /my%20release/sub/f%C3%A9.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n",
        );
        assert!(!r.head_only && !r.close);
        assert_eq!(r.components, ["my release", "sub", "fé.bin"]);
        assert_eq!(
            r.range,
            Some(ByteRange::From {
                first: 10,
                last: Some(19)
            })
        );
        let r = complete("HEAD /a HTTP/1.0\r\n\r\n");
        assert!(r.head_only && r.close && r.range.is_none());
        let r = complete("GET /a?x=1 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(!r.close);
        assert_eq!(r.components, ["a"]);
        let r = complete("GET /a HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(r.close);
    }

    #[test]
    fn partial_heads_wait_and_pipelined_ones_split() {
        assert_eq!(parse("GET /a HTTP/1.1\r\nHost:"), Ok(Parsed::Partial));
        let two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        match parse(two).unwrap() {
            Parsed::Complete(r, n) => {
                assert_eq!(r.components, ["a"]);
                assert_eq!(n, two.len() / 2);
            }
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn traversal_in_any_spelling_is_refused() {
        for target in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/a/%2e%2e/b",
            "/a/%2E%2E/b",
            "/a/.%2e/b",
            "/a/./b",
            "/a/%2e",
            "/a/%2e%2e%2fetc%2fpasswd",
            "/a/..%5c..%5cwin.ini",
            "/a/b%00c",
            "/a//b",
        ] {
            let req = format!("GET {target} HTTP/1.1\r\n\r\n");
            assert_eq!(status(&req), 400, "{target}");
        }
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 404);
        assert_eq!(status("GET http://h/a HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET /%ff%fe HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn other_bad_requests_get_their_status() {
        assert_eq!(
            status("POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
            405
        );
        assert_eq!(status("GET /a HTTP/1.1\r\nContent-Length: 3\r\n\r\n"), 400);
        assert_eq!(
            status("GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(status("\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03"), 400);
        let long = format!("GET /a HTTP/1.1\r\nX: {}\r\n", "y".repeat(MAX_HEAD));
        assert_eq!(status(&long), 431);
        let many: String = (0..40).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(status(&format!("GET /a HTTP/1.1\r\n{many}\r\n")), 431);
        let deep = "/a".repeat(MAX_COMPONENTS + 1);
        assert_eq!(status(&format!("GET {deep} HTTP/1.1\r\n\r\n")), 414);
        assert_eq!(
            status("GET /a HTTP/1.1\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n"),
            400
        );
    }

    #[test]
    fn range_headers_parse_or_are_refused() {
        let from = |first, last| ByteRange::From { first, last };
        assert_eq!(parse_range(b"bytes=0-0"), Ok(from(0, Some(0))));
        assert_eq!(parse_range(b"bytes=5-"), Ok(from(5, None)));
        assert_eq!(parse_range(b" Bytes = 7 - 9 "), Ok(from(7, Some(9))));
        assert_eq!(parse_range(b"bytes=-100"), Ok(ByteRange::Suffix(100)));
        assert_eq!(
            parse_range(b"bytes=18446744073709551615-"),
            Ok(from(u64::MAX, None))
        );
        for bad in [
            &b"bytes=18446744073709551616-"[..],
            b"bytes=99999999999999999999999-",
            b"bytes=5-4",
            b"bytes=a-b",
            b"bytes=-",
            b"bytes=+1-2",
            b"items=0-1",
            b"bytes 0-1",
            b"bytes=0",
            b"\xff",
        ] {
            assert_eq!(
                parse_range(bad).unwrap_err().status,
                400,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_range(b"bytes=0-1,5-6").unwrap_err().status, 416);
    }

    #[test]
    fn ranges_resolve_against_the_file_length() {
        let from = |first, last| Some(ByteRange::From { first, last });
        assert_eq!(resolve_range(None, 100), Ok((0, 100)));
        assert_eq!(resolve_range(from(0, Some(0)), 100), Ok((0, 1)));
        assert_eq!(resolve_range(from(10, None), 100), Ok((10, 100)));
        assert_eq!(resolve_range(from(90, Some(1000)), 100), Ok((90, 100)));
        assert_eq!(resolve_range(from(90, Some(u64::MAX)), 100), Ok((90, 100)));
        assert_eq!(
            resolve_range(Some(ByteRange::Suffix(10)), 100),
            Ok((90, 100))
        );
        assert_eq!(
            resolve_range(Some(ByteRange::Suffix(1000)), 100),
            Ok((0, 100))
        );
        for unsatisfiable in [
            from(100, None),
            from(u64::MAX, None),
            from(100, Some(200)),
            Some(ByteRange::Suffix(0)),
        ] {
            let r = resolve_range(unsatisfiable, 100).unwrap_err();
            assert_eq!((r.status, r.length), (416, Some(100)), "{unsatisfiable:?}");
        }
        assert_eq!(
            resolve_range(Some(ByteRange::Suffix(1)), 0)
                .unwrap_err()
                .status,
            416
        );
        assert_eq!(resolve_range(None, 0), Ok((0, 0)));
    }

    #[test]
    fn reply_heads_carry_length_and_range() {
        let h = String::from_utf8(reply_head(10, 20, 100, true, false)).unwrap();
        assert!(h.starts_with("HTTP/1.1 206 Partial Content\r\n"));
        assert!(h.contains("Content-Range: bytes 10-19/100\r\n"));
        assert!(h.contains("Content-Length: 10\r\n"));
        assert!(h.contains("Connection: keep-alive\r\n") && h.ends_with("\r\n\r\n"));
        let h = String::from_utf8(reply_head(0, 100, 100, false, true)).unwrap();
        assert!(h.starts_with("HTTP/1.1 200 OK\r\n") && h.contains("Content-Length: 100\r\n"));
        assert!(!h.contains("Content-Range") && h.contains("Connection: close"));
        let r = Refusal {
            status: 416,
            reason: "past the end".into(),
            length: Some(5),
        };
        let t = String::from_utf8(refusal_reply(&r)).unwrap();
        assert!(t.starts_with("HTTP/1.1 416 Range Not Satisfiable\r\n"));
        assert!(t.contains("Content-Range: bytes */5\r\n") && t.ends_with("past the end\n"));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse_request(&bytes);
            let _ = parse_range(&bytes);
        }

        #[test]
        fn decoded_components_never_climb(path in "/[a-z%./0-9A-F]{0,40}") {
            if let Ok(parts) = decode_path(&path) {
                for p in parts {
                    proptest::prop_assert!(p != ".." && p != "." && !p.is_empty() && !p.contains('/'));
                }
            }
        }
    }
}
