//! HTTP/1.1 for the admin server, sans-IO: a request parser (head through `httparse`, body by
//! `Content-Length`) with size limits, and the reply type and its encoding.
//!
//! A request is either complete, still partial (read more; after the head it may ask for a
//! `100 Continue`), or refused with a [`RequestError`], after which the connection is closed
//! (a refused body cannot be skipped reliably). Chunked bodies are refused: clients that post
//! files (`curl --data-binary @file`) send a `Content-Length`.

/// The most headers a request may carry.
pub const MAX_HEADERS: usize = 32;

/// Size limits of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus headers, bytes.
    pub max_head: usize,
    /// Body, bytes (a `.torrent` or a small JSON object).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 8 * 1024,
            max_body: 4 * 1024 * 1024,
        }
    }
}

/// The request methods the admin API knows; others are kept by name for the `405` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `DELETE`
    Delete,
    /// Anything else.
    Other(String),
}

impl Method {
    fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_owned()),
        }
    }
}

/// A complete request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path of the target, without the query (not percent-decoded).
    pub path: String,
    /// The `Authorization` header's value, when sent.
    pub authorization: Option<Vec<u8>>,
    /// The `Content-Type` header's value (lower case, parameters stripped), when sent.
    pub content_type: Option<String>,
    /// The body (empty when none was sent).
    pub body: Vec<u8>,
    /// Whether the client asked to close the connection after the reply.
    pub close: bool,
}

/// Progress of parsing the bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed. `continue_wanted` is set once the head is complete and announced
    /// a body with `Expect: 100-continue`: the server should answer `100 Continue` (once).
    Partial {
        /// The client waits for `100 Continue` before sending the body.
        continue_wanted: bool,
    },
    /// A whole request, and how many bytes of the buffer it took.
    Complete(Request, usize),
}

/// Why a request was refused; each maps to a `4xx` status, and the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not HTTP/1.x, or a header that cannot be read.
    #[error("malformed request")]
    Malformed,
    /// The request line and headers are over the limit (or too many headers).
    #[error("request head too large")]
    HeadTooLarge,
    /// The body is over the limit.
    #[error("request body too large (limit {limit} bytes)")]
    BodyTooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// A body sent without `Content-Length` (chunked).
    #[error("a request body needs a Content-Length (chunked bodies are not accepted)")]
    LengthRequired,
}

impl RequestError {
    /// The HTTP status code of the reply.
    pub fn status_code(self) -> u16 {
        match self {
            RequestError::Malformed => 400,
            RequestError::HeadTooLarge => 431,
            RequestError::BodyTooLarge { .. } => 413,
            RequestError::LengthRequired => 411,
        }
    }
}

/// Parses one request from the start of `buf`.
pub fn parse_request(buf: &[u8], limits: Limits) -> Result<Parsed, RequestError> {
    let window = &buf[..buf.len().min(limits.max_head)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => {
            return Err(RequestError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => {
            return Ok(Parsed::Partial {
                continue_wanted: false,
            })
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        Err(_) => return Err(RequestError::Malformed),
    };
    let version = req.version.ok_or(RequestError::Malformed)?;
    let method = Method::parse(req.method.ok_or(RequestError::Malformed)?);
    let target = req.path.ok_or(RequestError::Malformed)?;
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(RequestError::Malformed);
    }

    let mut close = version == 0;
    let mut content_length: Option<usize> = None;
    let mut authorization = None;
    let mut content_type = None;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(RequestError::Malformed)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(RequestError::Malformed);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(RequestError::LengthRequired);
        } else if name.eq_ignore_ascii_case("connection") {
            let v = h.value.to_ascii_lowercase();
            if contains(&v, b"close") {
                close = true;
            } else if contains(&v, b"keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(h.value.to_vec());
        } else if name.eq_ignore_ascii_case("content-type") {
            let v = String::from_utf8_lossy(h.value);
            let essence = v.split(';').next().unwrap_or_default().trim();
            content_type = Some(essence.to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        }
    }

    let body_len = content_length.unwrap_or(0);
    if body_len > limits.max_body {
        return Err(RequestError::BodyTooLarge {
            limit: limits.max_body,
        });
    }
    let have = buf.len() - head_len;
    if have < body_len {
        return Ok(Parsed::Partial {
            continue_wanted: expect_continue && have == 0,
        });
    }
    let request = Request {
        method,
        path: path.to_owned(),
        authorization,
        content_type,
        body: buf[head_len..head_len + body_len].to_vec(),
        close,
    };
    Ok(Parsed::Complete(request, head_len + body_len))
}

/// A `Content-Length` value: decimal digits only (no sign, no spaces inside).
fn parse_length(value: &[u8]) -> Option<usize> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes a server sends to let an `Expect: 100-continue` client send its body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// Headers besides the content type and length.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Close the connection after this reply.
    pub close: bool,
}

impl Response {
    /// A reply with `body` of type `content_type`.
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body,
            close: false,
        }
    }

    /// A JSON reply.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        body.push(b'\n');
        Response::new(status, "application/json", body)
    }

    /// A JSON error reply: `{"error": message}`.
    pub fn error(status: u16, message: &str) -> Self {
        Response::json(status, &serde_json::json!({ "error": message }))
    }

    /// The reply to a refused request (it closes the connection).
    pub fn refused(e: RequestError) -> Self {
        let mut r = Response::error(e.status_code(), &e.to_string());
        r.close = true;
        r
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Status line, headers and body, ready to write. `head_only` leaves out the body (for a
    /// `HEAD` request) but keeps its `Content-Length`.
    pub fn encode(&self, head_only: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(
            format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status)).as_bytes(),
        );
        out.extend_from_slice(format!("Content-Type: {}\r\n", self.content_type).as_bytes());
        out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(b"Cache-Control: no-store\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The reason phrase of the status codes the admin server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_head: 512,
            max_body: 100,
        }
    }

    fn complete(buf: &[u8]) -> (Request, usize) {
        match parse_request(buf, limits()) {
            Ok(Parsed::Complete(r, n)) => (r, n),
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn a_get_parses_with_its_headers() {
        let buf =
            b"GET /api/v1/torrents?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer s3\r\n\r\n";
        let (r, n) = complete(buf);
        assert_eq!(n, buf.len());
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/api/v1/torrents");
        assert_eq!(r.authorization.as_deref(), Some(&b"Bearer s3"[..]));
        assert!(r.body.is_empty() && !r.close);
    }

    #[test]
    fn a_post_waits_for_its_whole_body() {
        let buf = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Type: Application/JSON; charset=utf-8\r\n\r\nab";
        assert_eq!(
            parse_request(buf, limits()),
            Ok(Parsed::Partial {
                continue_wanted: false
            })
        );
        let mut full = buf.to_vec();
        full.extend_from_slice(b"cdeGET");
        let (r, n) = complete(&full);
        assert_eq!(r.body, b"abcde");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(n, full.len() - 3, "the pipelined next request is left");
    }

    #[test]
    fn every_prefix_of_a_request_is_partial() {
        let buf = b"POST /api/v1/torrents HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        for cut in 0..buf.len() {
            assert!(
                matches!(
                    parse_request(&buf[..cut], limits()),
                    Ok(Parsed::Partial { .. })
                ),
                "prefix of {cut} bytes"
            );
        }
        assert_eq!(complete(buf).1, buf.len());
    }

    #[test]
    fn expect_continue_is_asked_for_before_the_body() {
        let buf = b"POST /x HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n";
        assert_eq!(
            parse_request(buf, limits()),
            Ok(Parsed::Partial {
                continue_wanted: true
            })
        );
        let mut more = buf.to_vec();
        more.push(b'a');
        assert_eq!(
            parse_request(&more, limits()),
            Ok(Parsed::Partial {
                continue_wanted: false
            })
        );
    }

    #[test]
    fn oversized_bodies_are_refused_from_the_head() {
        let buf = b"POST /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
        assert_eq!(
            parse_request(buf, limits()),
            Err(RequestError::BodyTooLarge { limit: 100 })
        );
        assert_eq!(RequestError::BodyTooLarge { limit: 1 }.status_code(), 413);
        let huge = b"POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(parse_request(huge, limits()), Err(RequestError::Malformed));
    }

    #[test]
    fn bad_heads_are_refused() {
        let cases: &[(&[u8], RequestError)] = &[
            (b"\x00\x01garbage\r\n\r\n", RequestError::Malformed),
            (b"GET / HTTP/2.0\r\n\r\n", RequestError::Malformed),
            (b"GET * HTTP/1.1\r\n\r\n", RequestError::Malformed),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                RequestError::Malformed,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                RequestError::Malformed,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
                RequestError::Malformed,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::LengthRequired,
            ),
        ];
        for (buf, want) in cases {
            assert_eq!(
                parse_request(buf, limits()),
                Err(*want),
                "{}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn heads_over_the_limit_are_refused() {
        let mut buf = b"GET / HTTP/1.1\r\nX: ".to_vec();
        buf.resize(600, b'a');
        assert_eq!(
            parse_request(&buf, limits()),
            Err(RequestError::HeadTooLarge)
        );
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..40 {
            many.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let roomy = Limits {
            max_head: 4096,
            max_body: 0,
        };
        assert_eq!(parse_request(&many, roomy), Err(RequestError::HeadTooLarge));
    }

    #[test]
    fn connection_close_and_http_1_0() {
        assert!(
            complete(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .0
                .close
        );
        assert!(complete(b"GET / HTTP/1.0\r\n\r\n").0.close);
        assert!(
            !complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .0
                .close
        );
    }

    #[test]
    fn other_methods_keep_their_name() {
        let (r, _) = complete(b"PATCH /x HTTP/1.1\r\n\r\n");
        assert_eq!(r.method, Method::Other("PATCH".into()));
    }

    #[test]
    fn responses_encode_with_length_and_headers() {
        let r = Response::error(404, "no such thing").with_header("X-A", "b");
        let bytes = String::from_utf8(r.encode(false)).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(bytes.contains("Content-Type: application/json\r\n"));
        assert!(bytes.contains("X-A: b\r\n"));
        assert!(bytes.ends_with("\r\n\r\n{\"error\":\"no such thing\"}\n"));
        let body_len = r.body.len();
        assert!(bytes.contains(&format!("Content-Length: {body_len}\r\n")));
        let head = String::from_utf8(r.encode(true)).unwrap();
        assert!(head.ends_with("\r\n\r\n"));
        let refused = Response::refused(RequestError::HeadTooLarge);
        assert!(refused.close);
        assert_eq!(refused.status, 431);
        assert!(String::from_utf8(refused.encode(false))
            .unwrap()
            .contains("Connection: close\r\n"));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 256,
        max_body: 64,
    };

    proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            if let Ok(Parsed::Complete(req, used)) = parse_request(&bytes, LIMITS) {
                prop_assert!(used <= bytes.len());
                prop_assert!(req.body.len() <= LIMITS.max_body);
            }
        }

        #[test]
        fn a_request_split_anywhere_parses_the_same(
            path in "/[a-zA-Z0-9/._~-]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            cut in 0usize..200,
        ) {
            let mut wire = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            wire.extend_from_slice(&body);
            let cut = cut.min(wire.len());
            if cut < wire.len() {
                let partial = matches!(parse_request(&wire[..cut], LIMITS), Ok(Parsed::Partial { .. }));
                prop_assert!(partial);
            }
            match parse_request(&wire, LIMITS) {
                Ok(Parsed::Complete(req, used)) => {
                    prop_assert_eq!(used, wire.len());
                    prop_assert_eq!(req.path, path);
                    prop_assert_eq!(req.body, body);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
