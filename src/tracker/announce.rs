//! HTTP tracker announce and scrape (BEP 3, 7, 23, 48), sans-IO.
//!
//! Requests are parsed from, and encoded into, the raw query string of a `GET /announce?...`
//! (`info_hash` and `peer_id` are 20 raw bytes, percent-encoded). Responses are bencoded
//! dictionaries; the decoder accepts both the compact and the dictionary-list peer forms.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::bencode::{self, Kind, Owned, Value};
use crate::metainfo::InfoHash;
use crate::protocol::PeerId;

/// Characters left as they are in an encoded query value: RFC 3986 unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The announce `event` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Event {
    /// A regular, periodic announce (absent or empty `event`).
    #[default]
    None,
    /// The first announce of a download.
    Started,
    /// The download just finished.
    Completed,
    /// The client is leaving the swarm.
    Stopped,
}

impl Event {
    /// The query-string spelling (`""` for [`Event::None`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::None => "",
            Event::Started => "started",
            Event::Completed => "completed",
            Event::Stopped => "stopped",
        }
    }

    /// The BEP 15 number (0 none, 1 completed, 2 started, 3 stopped).
    pub fn to_udp(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }

    /// Parses a BEP 15 event number.
    pub fn from_udp(n: u32) -> Option<Self> {
        Some(match n {
            0 => Event::None,
            1 => Event::Completed,
            2 => Event::Started,
            3 => Event::Stopped,
            _ => return None,
        })
    }
}

/// Why an announce or scrape query string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A required parameter is absent.
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    /// `info_hash` or `peer_id` is not 20 bytes.
    #[error("`{param}` must be 20 bytes, got {len}")]
    BadLength {
        /// The parameter.
        param: &'static str,
        /// Its decoded length.
        len: usize,
    },
    /// A numeric parameter that is not a number.
    #[error("`{param}` is not a number: {value:?}")]
    NotANumber {
        /// The parameter.
        param: &'static str,
        /// Its value (truncated to 32 characters).
        value: String,
    },
    /// A numeric parameter that is negative.
    #[error("`{param}` must not be negative: {value:?}")]
    Negative {
        /// The parameter.
        param: &'static str,
        /// Its value (truncated to 32 characters).
        value: String,
    },
    /// A numeric parameter out of its range.
    #[error("`{param}` is out of range: {value:?}")]
    OutOfRange {
        /// The parameter.
        param: &'static str,
        /// Its value (truncated to 32 characters).
        value: String,
    },
    /// An unknown `event`.
    #[error("unknown event {0:?} (expected started, completed, stopped or empty)")]
    BadEvent(String),
    /// A parameter given twice.
    #[error("parameter `{0}` given more than once")]
    Duplicate(&'static str),
    /// A scrape with too many info-hashes.
    #[error("too many info_hash parameters ({0}, at most {MAX_SCRAPE})")]
    TooManyHashes(usize),
}

/// Why a tracker reply could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The body is not bencode.
    #[error("tracker reply is not bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// The body is not a dictionary.
    #[error("tracker reply is a {0}, not a dictionary")]
    NotADict(&'static str),
    /// A required key is absent.
    #[error("tracker reply has no `{0}`")]
    Missing(&'static str),
    /// A key has the wrong type or an impossible value.
    #[error("tracker reply has a bad `{key}`: {why}")]
    Bad {
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

fn bad(key: &'static str, why: impl Into<String>) -> ResponseError {
    ResponseError::Bad {
        key,
        why: why.into(),
    }
}

/// The most info-hashes one scrape may ask for.
pub const MAX_SCRAPE: usize = 256;

/// An announce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// Its listening port.
    pub port: u16,
    /// Bytes uploaded since `started`.
    pub uploaded: u64,
    /// Bytes downloaded since `started`.
    pub downloaded: u64,
    /// Bytes still missing (0 for a seed).
    pub left: u64,
    /// The event.
    pub event: Event,
    /// How many peers the client wants (`None`: the tracker's default).
    pub numwant: Option<u32>,
    /// Whether the client accepts the compact peer form (BEP 23; the default).
    pub compact: bool,
    /// Whether the client asks to omit peer ids from a dictionary-list reply.
    pub no_peer_id: bool,
    /// The client's key (lets it prove identity across IP changes).
    pub key: Option<Vec<u8>>,
    /// The address the client claims (used by a tracker only when configured to trust it).
    pub ip: Option<IpAddr>,
}

fn truncated(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    s.chars().take(32).collect()
}

fn parse_u64(param: &'static str, v: &[u8]) -> Result<u64, RequestError> {
    let s = std::str::from_utf8(v).map_err(|_| RequestError::NotANumber {
        param,
        value: truncated(v),
    })?;
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RequestError::NotANumber {
            param,
            value: truncated(v),
        });
    }
    if neg && digits.bytes().any(|b| b != b'0') {
        return Err(RequestError::Negative {
            param,
            value: truncated(v),
        });
    }
    digits.parse::<u64>().map_err(|_| RequestError::OutOfRange {
        param,
        value: truncated(v),
    })
}

fn parse_hash20(param: &'static str, v: &[u8]) -> Result<[u8; 20], RequestError> {
    v.try_into().map_err(|_| RequestError::BadLength {
        param,
        len: v.len(),
    })
}

/// Splits a raw query string into percent-decoded `(key, value)` pairs.
pub fn query_pairs(query: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (
                percent_decode(k).collect::<Vec<u8>>(),
                percent_decode(v).collect::<Vec<u8>>(),
            )
        })
}

fn set_once(
    slot: &mut Option<Vec<u8>>,
    name: &'static str,
    v: Vec<u8>,
) -> Result<(), RequestError> {
    if slot.is_some() {
        return Err(RequestError::Duplicate(name));
    }
    *slot = Some(v);
    Ok(())
}

fn flag(v: &[u8]) -> bool {
    !(v.is_empty() || v == b"0")
}

impl AnnounceRequest {
    /// Parses the raw (still percent-encoded) query string of an announce, without the `?`.
    /// Unknown parameters are ignored.
    pub fn parse_query(query: &[u8]) -> Result<Self, RequestError> {
        let mut info_hash = None;
        let mut peer_id = None;
        let mut port = None;
        let mut uploaded = None;
        let mut downloaded = None;
        let mut left = None;
        let mut event = None;
        let mut numwant = None;
        let mut compact = None;
        let mut no_peer_id = None;
        let mut key = None;
        let mut ip = None;
        for (k, v) in query_pairs(query) {
            match k.as_slice() {
                b"info_hash" => set_once(&mut info_hash, "info_hash", v)?,
                b"peer_id" => set_once(&mut peer_id, "peer_id", v)?,
                b"port" => set_once(&mut port, "port", v)?,
                b"uploaded" => set_once(&mut uploaded, "uploaded", v)?,
                b"downloaded" => set_once(&mut downloaded, "downloaded", v)?,
                b"left" => set_once(&mut left, "left", v)?,
                b"event" => set_once(&mut event, "event", v)?,
                b"numwant" => set_once(&mut numwant, "numwant", v)?,
                b"compact" => set_once(&mut compact, "compact", v)?,
                b"no_peer_id" => set_once(&mut no_peer_id, "no_peer_id", v)?,
                b"key" => set_once(&mut key, "key", v)?,
                b"ip" => set_once(&mut ip, "ip", v)?,
                _ => {}
            }
        }
        let info_hash = info_hash.ok_or(RequestError::Missing("info_hash"))?;
        let info_hash = InfoHash(parse_hash20("info_hash", &info_hash)?);
        let peer_id = peer_id.ok_or(RequestError::Missing("peer_id"))?;
        let peer_id = PeerId(parse_hash20("peer_id", &peer_id)?);
        let port = port.ok_or(RequestError::Missing("port"))?;
        let port_n = parse_u64("port", &port)?;
        let port = u16::try_from(port_n)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| RequestError::OutOfRange {
                param: "port",
                value: truncated(&port),
            })?;
        let num = |name: &'static str, v: Option<Vec<u8>>| -> Result<u64, RequestError> {
            match v {
                Some(v) => parse_u64(name, &v),
                None => Err(RequestError::Missing(name)),
            }
        };
        let uploaded = num("uploaded", uploaded)?;
        let downloaded = num("downloaded", downloaded)?;
        let left = num("left", left)?;
        let event = match event.as_deref() {
            None | Some(b"") | Some(b"empty") => Event::None,
            Some(b"started") => Event::Started,
            Some(b"completed") => Event::Completed,
            Some(b"stopped") => Event::Stopped,
            Some(other) => return Err(RequestError::BadEvent(truncated(other))),
        };
        let numwant = match numwant {
            // Saturate: "numwant=1000000000" is a request for "as many as you give".
            Some(v) => Some(u32::try_from(parse_u64("numwant", &v)?).unwrap_or(u32::MAX)),
            None => None,
        };
        Ok(AnnounceRequest {
            info_hash,
            peer_id,
            port,
            uploaded,
            downloaded,
            left,
            event,
            numwant,
            compact: compact.as_deref().map_or(true, flag),
            no_peer_id: no_peer_id.as_deref().is_some_and(flag),
            key,
            ip: ip.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()),
        })
    }

    /// Encodes the request as a query string (without the leading `?`).
    pub fn to_query(&self) -> String {
        let mut q = String::with_capacity(256);
        q.push_str("info_hash=");
        q.extend(percent_encode(&self.info_hash.0, QUERY_VALUE));
        q.push_str("&peer_id=");
        q.extend(percent_encode(&self.peer_id.0, QUERY_VALUE));
        q.push_str(&format!(
            "&port={}&uploaded={}&downloaded={}&left={}",
            self.port, self.uploaded, self.downloaded, self.left
        ));
        if self.event != Event::None {
            q.push_str("&event=");
            q.push_str(self.event.as_str());
        }
        if let Some(n) = self.numwant {
            q.push_str(&format!("&numwant={n}"));
        }
        q.push_str(if self.compact {
            "&compact=1"
        } else {
            "&compact=0"
        });
        if self.no_peer_id {
            q.push_str("&no_peer_id=1");
        }
        if let Some(k) = &self.key {
            q.push_str("&key=");
            q.extend(percent_encode(k, QUERY_VALUE));
        }
        if let Some(ip) = self.ip {
            q.push_str("&ip=");
            q.extend(percent_encode(ip.to_string().as_bytes(), QUERY_VALUE));
        }
        q
    }
}

/// A peer in an announce reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Its peer id, when known (only the dictionary-list form carries it).
    pub peer_id: Option<PeerId>,
}

/// A successful announce reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// Seconds the client should wait before the next regular announce.
    pub interval: u32,
    /// Seconds the client must wait at least before announcing again.
    pub min_interval: Option<u32>,
    /// Seeds in the swarm.
    pub complete: Option<u32>,
    /// Leechers in the swarm.
    pub incomplete: Option<u32>,
    /// Peers to connect to (IPv4 and IPv6).
    pub peers: Vec<Peer>,
    /// A non-fatal message from the tracker.
    pub warning: Option<String>,
}

/// A tracker's answer to an announce: peers or a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerReply {
    /// The announce was accepted.
    Ok(AnnounceResponse),
    /// The tracker refused it (`failure reason`).
    Failure(String),
}

/// Encodes a bencoded `failure reason` reply.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    Owned::dict().insert("failure reason", reason).encode()
}

fn put_int(out: &mut Vec<u8>, key: &str, v: i64) {
    put_key(out, key);
    out.push(b'i');
    out.extend_from_slice(v.to_string().as_bytes());
    out.push(b'e');
}

fn put_key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(key.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(key.as_bytes());
}

fn put_bytes_header(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b':');
}

impl AnnounceResponse {
    /// Encodes the reply. `compact`: IPv4 peers as 6-byte entries in `peers` and IPv6 peers as
    /// 18-byte entries in `peers6`; otherwise a list of dictionaries (`ip`, `port`, and
    /// `peer id` unless `no_peer_id`).
    pub fn encode(&self, compact: bool, no_peer_id: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.peers.len() * 8);
        // Keys in sorted order, written directly: this is the tracker's hot path.
        out.push(b'd');
        if let Some(c) = self.complete {
            put_int(&mut out, "complete", i64::from(c));
        }
        if let Some(c) = self.incomplete {
            put_int(&mut out, "incomplete", i64::from(c));
        }
        put_int(&mut out, "interval", i64::from(self.interval));
        if let Some(m) = self.min_interval {
            put_int(&mut out, "min interval", i64::from(m));
        }
        if compact {
            let v4 = self.peers.iter().filter(|p| p.addr.is_ipv4()).count();
            let v6 = self.peers.len() - v4;
            put_key(&mut out, "peers");
            put_bytes_header(&mut out, v4 * 6);
            for p in &self.peers {
                if let SocketAddr::V4(a) = p.addr {
                    out.extend_from_slice(&a.ip().octets());
                    out.extend_from_slice(&a.port().to_be_bytes());
                }
            }
            if v6 > 0 {
                put_key(&mut out, "peers6");
                put_bytes_header(&mut out, v6 * 18);
                for p in &self.peers {
                    if let SocketAddr::V6(a) = p.addr {
                        out.extend_from_slice(&a.ip().octets());
                        out.extend_from_slice(&a.port().to_be_bytes());
                    }
                }
            }
        } else {
            put_key(&mut out, "peers");
            let list: Vec<Owned> = self
                .peers
                .iter()
                .map(|p| {
                    let mut d = Owned::dict()
                        .insert("ip", p.addr.ip().to_string())
                        .insert("port", Owned::Int(i64::from(p.addr.port())));
                    if let (false, Some(id)) = (no_peer_id, p.peer_id) {
                        d = d.insert("peer id", &id.0[..]);
                    }
                    d
                })
                .collect();
            Owned::List(list).encode_into(&mut out);
        }
        if let Some(w) = &self.warning {
            put_key(&mut out, "warning message");
            put_bytes_header(&mut out, w.len());
            out.extend_from_slice(w.as_bytes());
        }
        out.push(b'e');
        out
    }
}

fn get_u32(dict: &Value<'_>, key: &'static str) -> Result<Option<u32>, ResponseError> {
    match dict.get(key) {
        None => Ok(None),
        Some(v) => {
            let i = v
                .as_int()
                .ok_or_else(|| bad(key, format!("a {}, not an integer", v.type_name())))?;
            u32::try_from(i)
                .map(Some)
                .map_err(|_| bad(key, format!("{i} is out of range")))
        }
    }
}

fn parse_compact_v4(key: &'static str, b: &[u8]) -> Result<Vec<Peer>, ResponseError> {
    if b.len() % 6 != 0 {
        return Err(bad(
            key,
            format!("{} bytes is not a multiple of 6", b.len()),
        ));
    }
    Ok(b.chunks_exact(6)
        .map(|c| Peer {
            addr: SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
                u16::from_be_bytes([c[4], c[5]]),
            ),
            peer_id: None,
        })
        .collect())
}

fn parse_compact_v6(key: &'static str, b: &[u8]) -> Result<Vec<Peer>, ResponseError> {
    if b.len() % 18 != 0 {
        return Err(bad(
            key,
            format!("{} bytes is not a multiple of 18", b.len()),
        ));
    }
    Ok(b.chunks_exact(18)
        .map(|c| {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&c[..16]);
            Peer {
                addr: SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::from(ip)),
                    u16::from_be_bytes([c[16], c[17]]),
                ),
                peer_id: None,
            }
        })
        .collect())
}

fn parse_peer_dict(v: &Value<'_>) -> Result<Peer, ResponseError> {
    if v.as_dict().is_none() {
        return Err(bad(
            "peers",
            format!("list entry is a {}, not a dictionary", v.type_name()),
        ));
    }
    let ip = v
        .get("ip")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("peers", "list entry without a string `ip`"))?;
    let ip: IpAddr = ip.parse().map_err(|_| {
        bad(
            "peers",
            format!("{:?} is not an IP address", truncated(ip.as_bytes())),
        )
    })?;
    let port = v
        .get("port")
        .and_then(Value::as_int)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| bad("peers", "list entry without a valid `port`"))?;
    let peer_id = match v.get("peer id") {
        None => None,
        Some(id) => Some(PeerId(
            id.as_bytes()
                .and_then(|b| <[u8; 20]>::try_from(b).ok())
                .ok_or_else(|| bad("peers", "`peer id` is not 20 bytes"))?,
        )),
    };
    Ok(Peer {
        addr: SocketAddr::new(ip, port),
        peer_id,
    })
}

impl TrackerReply {
    /// Decodes a tracker's announce reply body.
    pub fn decode(body: &[u8]) -> Result<Self, ResponseError> {
        let v = bencode::decode(body)?;
        if v.as_dict().is_none() {
            return Err(ResponseError::NotADict(v.type_name()));
        }
        if let Some(f) = v.get("failure reason") {
            let f = f
                .as_bytes()
                .ok_or_else(|| bad("failure reason", "not a string"))?;
            return Ok(TrackerReply::Failure(
                String::from_utf8_lossy(f).into_owned(),
            ));
        }
        let interval = get_u32(&v, "interval")?.ok_or(ResponseError::Missing("interval"))?;
        let min_interval = get_u32(&v, "min interval")?;
        let complete = get_u32(&v, "complete")?;
        let incomplete = get_u32(&v, "incomplete")?;
        let mut peers = match v.get("peers") {
            None => Vec::new(),
            Some(p) => match &p.kind {
                Kind::Bytes(b) => parse_compact_v4("peers", b)?,
                Kind::List(l) => l.iter().map(parse_peer_dict).collect::<Result<_, _>>()?,
                _ => {
                    return Err(bad(
                        "peers",
                        format!("a {}, not a string or a list", p.type_name()),
                    ))
                }
            },
        };
        if let Some(p6) = v.get("peers6") {
            let b = p6
                .as_bytes()
                .ok_or_else(|| bad("peers6", format!("a {}, not a string", p6.type_name())))?;
            peers.extend(parse_compact_v6("peers6", b)?);
        }
        let warning = v
            .get("warning message")
            .and_then(Value::as_bytes)
            .map(|w| String::from_utf8_lossy(w).into_owned());
        Ok(TrackerReply::Ok(AnnounceResponse {
            interval,
            min_interval,
            complete,
            incomplete,
            peers,
            warning,
        }))
    }
}

/// A scrape request (BEP 48): the swarms asked about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeRequest {
    /// The info-hashes (at most [`MAX_SCRAPE`]; empty asks for every swarm).
    pub info_hashes: Vec<InfoHash>,
}

impl ScrapeRequest {
    /// Parses the raw query string of a scrape (`info_hash` repeated).
    pub fn parse_query(query: &[u8]) -> Result<Self, RequestError> {
        let mut info_hashes = Vec::new();
        for (k, v) in query_pairs(query) {
            if k == b"info_hash" {
                if info_hashes.len() == MAX_SCRAPE {
                    return Err(RequestError::TooManyHashes(MAX_SCRAPE + 1));
                }
                info_hashes.push(InfoHash(parse_hash20("info_hash", &v)?));
            }
        }
        Ok(ScrapeRequest { info_hashes })
    }

    /// Encodes the request as a query string (without the leading `?`).
    pub fn to_query(&self) -> String {
        let mut q = String::new();
        for (i, h) in self.info_hashes.iter().enumerate() {
            if i > 0 {
                q.push('&');
            }
            q.push_str("info_hash=");
            q.extend(percent_encode(&h.0, QUERY_VALUE));
        }
        q
    }
}

/// One swarm's counts in a scrape reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeds.
    pub complete: u32,
    /// Completed downloads ever reported.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}

/// A scrape reply (BEP 48).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeResponse {
    /// Per swarm counts, in any order (encoded sorted by info-hash).
    pub files: Vec<(InfoHash, ScrapeStats)>,
}

impl ScrapeResponse {
    /// Encodes the reply.
    pub fn encode(&self) -> Vec<u8> {
        let mut files = std::collections::BTreeMap::new();
        for (h, s) in &self.files {
            files.insert(
                h.0.to_vec(),
                Owned::dict()
                    .insert("complete", s.complete)
                    .insert("downloaded", s.downloaded)
                    .insert("incomplete", s.incomplete),
            );
        }
        Owned::dict().insert("files", Owned::Dict(files)).encode()
    }

    /// Decodes a scrape reply body (a `failure reason` is returned as an error).
    pub fn decode(body: &[u8]) -> Result<Self, ResponseError> {
        let v = bencode::decode(body)?;
        if v.as_dict().is_none() {
            return Err(ResponseError::NotADict(v.type_name()));
        }
        if let Some(f) = v.get("failure reason").and_then(Value::as_bytes) {
            return Err(bad(
                "failure reason",
                String::from_utf8_lossy(f).into_owned(),
            ));
        }
        let files = v.get("files").ok_or(ResponseError::Missing("files"))?;
        let entries = files.as_dict().ok_or_else(|| {
            bad(
                "files",
                format!("a {}, not a dictionary", files.type_name()),
            )
        })?;
        let mut out = Vec::with_capacity(entries.len());
        for (k, s) in entries {
            let h = <[u8; 20]>::try_from(*k)
                .map_err(|_| bad("files", format!("key of {} bytes, not 20", k.len())))?;
            if s.as_dict().is_none() {
                return Err(bad("files", "entry is not a dictionary"));
            }
            out.push((
                InfoHash(h),
                ScrapeStats {
                    complete: get_u32(s, "complete")?.unwrap_or(0),
                    downloaded: get_u32(s, "downloaded")?.unwrap_or(0),
                    incomplete: get_u32(s, "incomplete")?.unwrap_or(0),
                },
            ));
        }
        Ok(ScrapeResponse { files: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(b: &[u8]) -> String {
        percent_encode(b, QUERY_VALUE).to_string()
    }

    fn good_query() -> String {
        format!(
            "info_hash={}&peer_id={}&port=6881&uploaded=1&downloaded=2&left=3&event=started",
            enc(&[0xab; 20]),
            enc(b"-SB0100-abcdefghijkl")
        )
    }

    #[test]
    fn parses_a_good_announce() {
        let r = AnnounceRequest::parse_query(good_query().as_bytes()).unwrap();
        assert_eq!(r.info_hash, InfoHash([0xab; 20]));
        assert_eq!(&r.peer_id.0, b"-SB0100-abcdefghijkl");
        assert_eq!((r.port, r.uploaded, r.downloaded, r.left), (6881, 1, 2, 3));
        assert_eq!(r.event, Event::Started);
        assert!(r.compact);
        assert!(!r.no_peer_id);
        assert_eq!(r.numwant, None);
    }

    #[test]
    fn rejects_missing_info_hash() {
        let q = "peer_id=-SB0100-abcdefghijkl&port=1&uploaded=0&downloaded=0&left=0";
        let e = AnnounceRequest::parse_query(q.as_bytes()).unwrap_err();
        assert_eq!(e, RequestError::Missing("info_hash"));
        assert_eq!(e.to_string(), "missing parameter `info_hash`");
    }

    #[test]
    fn rejects_info_hash_of_19_and_21_bytes() {
        for len in [19usize, 21] {
            let q = good_query().replace(&enc(&[0xab; 20]), &enc(&vec![0xab; len]));
            let e = AnnounceRequest::parse_query(q.as_bytes()).unwrap_err();
            assert_eq!(
                e,
                RequestError::BadLength {
                    param: "info_hash",
                    len
                }
            );
        }
    }

    #[test]
    fn rejects_non_numeric_port_and_negative_left() {
        let q = good_query().replace("port=6881", "port=abc");
        let e = AnnounceRequest::parse_query(q.as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "`port` is not a number: \"abc\"");
        let q = good_query().replace("left=3", "left=-1");
        let e = AnnounceRequest::parse_query(q.as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "`left` must not be negative: \"-1\"");
        let q = good_query().replace("port=6881", "port=70000");
        assert!(matches!(
            AnnounceRequest::parse_query(q.as_bytes()),
            Err(RequestError::OutOfRange { param: "port", .. })
        ));
        let q = good_query().replace("port=6881", "port=0");
        assert!(AnnounceRequest::parse_query(q.as_bytes()).is_err());
    }

    #[test]
    fn rejects_bad_event_and_duplicates() {
        let q = good_query().replace("event=started", "event=paused");
        assert!(matches!(
            AnnounceRequest::parse_query(q.as_bytes()),
            Err(RequestError::BadEvent(_))
        ));
        let q = format!("{}&port=1", good_query());
        assert_eq!(
            AnnounceRequest::parse_query(q.as_bytes()),
            Err(RequestError::Duplicate("port"))
        );
    }

    #[test]
    fn huge_numwant_saturates() {
        let q = format!("{}&numwant=1000000000000", good_query());
        let r = AnnounceRequest::parse_query(q.as_bytes()).unwrap();
        assert_eq!(r.numwant, Some(u32::MAX));
    }

    #[test]
    fn flags_and_ip() {
        let q = format!(
            "{}&compact=0&no_peer_id=1&ip=10.0.0.1&key=k%20y",
            good_query()
        );
        let r = AnnounceRequest::parse_query(q.as_bytes()).unwrap();
        assert!(!r.compact);
        assert!(r.no_peer_id);
        assert_eq!(r.ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r.key.as_deref(), Some(&b"k y"[..]));
    }

    #[test]
    fn response_compact_round_trip_with_peers6() {
        let resp = AnnounceResponse {
            interval: 1800,
            min_interval: Some(900),
            complete: Some(3),
            incomplete: Some(4),
            peers: vec![
                Peer {
                    addr: "127.0.0.1:6881".parse().unwrap(),
                    peer_id: None,
                },
                Peer {
                    addr: "[::1]:51413".parse().unwrap(),
                    peer_id: None,
                },
            ],
            warning: Some("hi".into()),
        };
        let body = resp.encode(true, false);
        // The writer must produce canonical bencode (sorted keys).
        let canon = Owned::from(&bencode::decode(&body).unwrap()).encode();
        assert_eq!(body, canon);
        assert_eq!(TrackerReply::decode(&body).unwrap(), TrackerReply::Ok(resp));
    }

    #[test]
    fn response_dict_list_round_trip() {
        let resp = AnnounceResponse {
            interval: 60,
            peers: vec![Peer {
                addr: "127.0.0.2:1".parse().unwrap(),
                peer_id: Some(PeerId([7; 20])),
            }],
            ..Default::default()
        };
        let body = resp.encode(false, false);
        assert_eq!(
            TrackerReply::decode(&body).unwrap(),
            TrackerReply::Ok(resp.clone())
        );
        let body = resp.encode(false, true);
        let TrackerReply::Ok(r) = TrackerReply::decode(&body).unwrap() else {
            panic!()
        };
        assert_eq!(r.peers[0].peer_id, None);
    }

    #[test]
    fn decodes_failure() {
        assert_eq!(
            TrackerReply::decode(&encode_failure("go away")).unwrap(),
            TrackerReply::Failure("go away".into())
        );
    }

    #[test]
    fn rejects_malformed_replies() {
        let cases: &[(&[u8], &str)] = &[
            (b"<html>", "not bencode"),
            (b"li1ee", "is a list, not a dictionary"),
            (b"d5:peers0:e", "no `interval`"),
            (b"d8:intervali-5e5:peers0:e", "bad `interval`"),
            (b"d8:intervali5e5:peers5:abcdee", "not a multiple of 6"),
            (
                b"d8:intervali5e6:peers617:aaaaaaaaaaaaaaaaae",
                "not a multiple of 18",
            ),
            (b"d8:intervali5e5:peersi3ee", "not a string or a list"),
            (b"d8:intervali5e5:peersli1eee", "not a dictionary"),
            (
                b"d8:intervali5e5:peersld2:ip3:abc4:porti1eeee",
                "not an IP address",
            ),
            (
                b"d8:intervali5e5:peersld2:ip9:127.0.0.14:porti70000eeee",
                "valid `port`",
            ),
        ];
        for (body, want) in cases {
            let e = TrackerReply::decode(body).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }

    #[test]
    fn scrape_round_trip() {
        let req = ScrapeRequest {
            info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
        };
        assert_eq!(
            ScrapeRequest::parse_query(req.to_query().as_bytes()).unwrap(),
            req
        );
        let resp = ScrapeResponse {
            files: vec![(
                InfoHash([1; 20]),
                ScrapeStats {
                    complete: 1,
                    downloaded: 2,
                    incomplete: 3,
                },
            )],
        };
        assert_eq!(ScrapeResponse::decode(&resp.encode()).unwrap(), resp);
        assert!(ScrapeRequest::parse_query(b"info_hash=abc").is_err());
        assert!(ScrapeResponse::decode(b"d5:filesd3:abcdeee").is_err());
    }

    fn arb_peer() -> impl Strategy<Value = Peer> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| Peer {
                addr: SocketAddr::new(IpAddr::V4(ip.into()), port),
                peer_id: None
            }),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| Peer {
                addr: SocketAddr::new(IpAddr::V6(ip.into()), port),
                peer_id: None
            }),
        ]
    }

    proptest! {
        #[test]
        fn request_round_trips(
            ih in any::<[u8; 20]>(), pid in any::<[u8; 20]>(), port in 1u16..,
            up in any::<u64>(), down in any::<u64>(), left in any::<u64>(),
            ev in 0u32..4, numwant in proptest::option::of(any::<u32>()),
            compact in any::<bool>(), no_peer_id in any::<bool>(),
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..12)),
        ) {
            let r = AnnounceRequest {
                info_hash: InfoHash(ih), peer_id: PeerId(pid), port, uploaded: up,
                downloaded: down, left, event: Event::from_udp(ev).unwrap(), numwant,
                compact, no_peer_id, key, ip: None,
            };
            prop_assert_eq!(AnnounceRequest::parse_query(r.to_query().as_bytes()).unwrap(), r);
        }

        #[test]
        fn compact_response_round_trips(
            interval in any::<u32>(), min in proptest::option::of(any::<u32>()),
            peers in proptest::collection::vec(arb_peer(), 0..40),
        ) {
            // Decoding groups IPv4 before IPv6 peers.
            let mut peers = peers;
            peers.sort_by_key(|p| p.addr.is_ipv6());
            let r = AnnounceResponse { interval, min_interval: min, peers, ..Default::default() };
            prop_assert_eq!(TrackerReply::decode(&r.encode(true, false)).unwrap(), TrackerReply::Ok(r));
        }

        #[test]
        fn parsers_never_panic(q in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = AnnounceRequest::parse_query(&q);
            let _ = ScrapeRequest::parse_query(&q);
            let _ = TrackerReply::decode(&q);
            let _ = ScrapeResponse::decode(&q);
        }
    }
}
