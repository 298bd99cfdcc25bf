//! The metadata phase of `seedbox get MAGNET` (BEP 9): find peers (given ones, the magnet's
//! `x.pe=`, its `tr=` trackers), ask them for the info dictionary over `ut_metadata`, and
//! return it once its SHA-1 is the info-hash. It runs before the download, on its own small
//! tokio runtime; the download then starts from the resulting torrent as from a `.torrent`.
//!
//! The protocol logic is [`MetadataAssembly`] (sans-IO); this module only moves bytes. A peer
//! whose metadata does not hash right, or announces more than 32 MiB, is dropped and the
//! others are asked.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metainfo::InfoHash;
use crate::protocol::ut_metadata::{self, MetadataAssembly, OUR_UT_METADATA_ID, UT_METADATA};
use crate::protocol::{ExtendedHandshake, Handshake, Message, MessageDecoder, PeerId, Reserved};
use crate::tracker::client::{announce, Timeouts};
use crate::tracker::{AnnounceRequest, Event};

/// Peers asked at once.
const PARALLEL_PEERS: usize = 4;
/// Metadata requests in flight per peer.
const IN_FLIGHT: u32 = 4;
/// How long one peer has to connect and answer a step.
const PEER_STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Trackers are asked again this often while no peer delivered.
const REANNOUNCE_EVERY: Duration = Duration::from_secs(15);
/// A peer that failed for a reason other than lying is asked again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Most times one peer is asked.
const MAX_ATTEMPTS: u32 = 5;
/// Largest message accepted in the metadata phase (a bitfield of a huge torrent, or a piece).
const MAX_MESSAGE: u32 = 4 << 20;

/// Where to look for the metadata and for how long.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// The port announced to trackers (the download's listen port, when known).
    pub port: u16,
    /// Peers to ask directly.
    pub peers: Vec<SocketAddr>,
    /// Trackers to ask for peers.
    pub trackers: Vec<String>,
    /// Give up after this long.
    pub timeout: Duration,
    /// Peers found by a DHT lookup of the info-hash, when the DHT runs.
    pub dht: Option<crate::dht::PeerFeed>,
}

/// The metadata and the peers met while fetching it.
#[derive(Debug)]
pub struct Fetched {
    /// The info dictionary; its SHA-1 is the info-hash.
    pub info: Vec<u8>,
    /// Every peer heard of (given, from trackers), for the download to dial.
    pub peers: Vec<SocketAddr>,
}

/// Why the metadata could not be fetched.
#[derive(Debug, Error)]
pub enum FetchError {
    /// Nobody delivered in time.
    #[error(
        "no peer sent the metadata of {info_hash} within {timeout:?} ({tried} peers tried{last})"
    )]
    Timeout {
        /// The torrent.
        info_hash: InfoHash,
        /// The limit.
        timeout: Duration,
        /// Peers tried.
        tried: usize,
        /// The last peer's failure, as `; last: ...`.
        last: String,
    },
    /// The runtime could not start.
    #[error("cannot start the metadata runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Fetches the info dictionary of `config.info_hash`; blocks until done or timed out.
pub fn fetch_metadata(config: FetchConfig) -> Result<Fetched, FetchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(fetch(config))
}

async fn fetch(config: FetchConfig) -> Result<Fetched, FetchError> {
    let deadline = tokio::time::Instant::now() + config.timeout;
    let mut seen: HashSet<SocketAddr> = HashSet::new();
    let mut queue: VecDeque<SocketAddr> = VecDeque::new();
    queue.extend(config.peers.iter().copied().filter(|p| seen.insert(*p)));
    let (tracker_tx, mut tracker_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut next_announce = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let (mut tried, mut last) = (0usize, String::new());
    let mut attempts: std::collections::HashMap<SocketAddr, u32> = Default::default();
    let mut later: VecDeque<(tokio::time::Instant, SocketAddr)> = VecDeque::new();
    loop {
        let now = tokio::time::Instant::now();
        while later.front().is_some_and(|(at, _)| *at <= now) {
            queue.extend(later.pop_front().map(|(_, a)| a));
        }
        let next_retry = later.front().map(|(at, _)| *at).unwrap_or(deadline);
        while tasks.len() < PARALLEL_PEERS {
            let Some(addr) = queue.pop_front() else { break };
            tried += 1;
            *attempts.entry(addr).or_default() += 1;
            let (hash, id) = (config.info_hash, config.peer_id);
            tasks.spawn(async move { (addr, ask_peer(addr, hash, id).await) });
        }
        let now = tokio::time::Instant::now();
        if !config.trackers.is_empty() && now >= next_announce {
            next_announce = now + REANNOUNCE_EVERY;
            announce_to_all(&config, &tracker_tx);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return Err(FetchError::Timeout {
                    info_hash: config.info_hash,
                    timeout: config.timeout,
                    tried,
                    last: if last.is_empty() { last } else { format!("; last: {last}") },
                });
            }
            _ = tokio::time::sleep_until(next_announce), if !config.trackers.is_empty() => {}
            _ = tokio::time::sleep_until(next_retry), if !later.is_empty() => {}
            _ = async { config.dht.as_ref().expect("guarded").arrived().await }, if config.dht.is_some() => {
                let peers = config.dht.as_ref().map(|d| d.take()).unwrap_or_default();
                queue.extend(peers.into_iter().filter(|p| seen.insert(*p)));
            }
            Some(peers) = tracker_rx.recv() => {
                queue.extend(peers.into_iter().filter(|p| seen.insert(*p)));
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((addr, result)) = done else { continue };
                match result {
                    Ok(info) => {
                        tracing::info!(%addr, bytes = info.len(), "metadata received and verified");
                        return Ok(Fetched { info, peers: seen.into_iter().collect() });
                    }
                    Err(e) => {
                        tracing::warn!(%addr, "metadata: {e}; peer dropped");
                        last = format!("{addr}: {e}");
                        let lied = matches!(e, PeerFailure::Assembly(_));
                        if !lied && attempts.get(&addr).copied().unwrap_or(0) < MAX_ATTEMPTS {
                            later.push_back((tokio::time::Instant::now() + RETRY_AFTER, addr));
                        }
                    }
                }
            }
        }
    }
}

/// Announces to every tracker on blocking threads; each answer's peers are sent to `tx`.
fn announce_to_all(config: &FetchConfig, tx: &tokio::sync::mpsc::UnboundedSender<Vec<SocketAddr>>) {
    for url in config.trackers.clone() {
        let tx = tx.clone();
        let req = announce_request(config);
        tokio::task::spawn_blocking(move || match announce(&url, &req, Timeouts::default()) {
            Ok(resp) => {
                let _ = tx.send(resp.peers.iter().map(|p| p.addr).collect::<Vec<_>>());
            }
            Err(e) => tracing::warn!(%url, "announce failed: {e}"),
        });
    }
}

fn announce_request(config: &FetchConfig) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: config.info_hash,
        peer_id: config.peer_id,
        port: config.port,
        uploaded: 0,
        downloaded: 0,
        // Unknown until the metadata arrives; not 0, which would make us a seed.
        left: 1,
        event: Event::Started,
        numwant: Some(50),
        compact: true,
        no_peer_id: true,
        key: None,
        ip: None,
    }
}

/// Why one peer did not deliver.
#[derive(Debug, Error)]
enum PeerFailure {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("bad handshake: {0}")]
    Handshake(String),
    #[error("does not support the extension protocol")]
    NoExtensions,
    #[error("does not offer ut_metadata")]
    NoUtMetadata,
    #[error("protocol error: {0}")]
    Wire(String),
    #[error("{0}")]
    Assembly(#[from] ut_metadata::AssemblyError),
}

async fn step<T>(
    f: impl std::future::Future<Output = Result<T, PeerFailure>>,
) -> Result<T, PeerFailure> {
    tokio::time::timeout(PEER_STEP_TIMEOUT, f)
        .await
        .map_err(|_| PeerFailure::Timeout)?
}

async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), PeerFailure> {
    buf.reserve(16 * 1024);
    if stream.read_buf(buf).await? == 0 {
        return Err(PeerFailure::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(())
}

/// Dials `addr` and exchanges handshakes: it must answer for `info_hash` and speak the
/// extension protocol. Returns the stream and what was read beyond the handshake.
async fn handshake(
    addr: SocketAddr,
    info_hash: InfoHash,
    peer_id: PeerId,
) -> Result<(TcpStream, BytesMut), PeerFailure> {
    let mut stream = step(async { Ok(TcpStream::connect(addr).await?) }).await?;
    let ours = Handshake {
        reserved: Reserved::default().with_extension_protocol(true),
        ..Handshake::new(info_hash, peer_id)
    };
    stream.write_all(&ours.encode()).await?;
    let mut buf = BytesMut::with_capacity(32 * 1024);
    let theirs = step(async {
        loop {
            if let Some(h) =
                Handshake::decode(&mut buf).map_err(|e| PeerFailure::Handshake(e.to_string()))?
            {
                return Ok(h);
            }
            read_more(&mut stream, &mut buf).await?;
        }
    })
    .await?;
    if theirs.info_hash != info_hash {
        return Err(PeerFailure::Handshake(format!(
            "answered for {}",
            theirs.info_hash
        )));
    }
    if !theirs.reserved.supports_extension_protocol() {
        return Err(PeerFailure::NoExtensions);
    }
    Ok((stream, buf))
}

/// The peer's next message, within [`PEER_STEP_TIMEOUT`] (unknown ids skipped).
async fn next_message(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    decoder: &MessageDecoder,
) -> Result<Message, PeerFailure> {
    step(async {
        loop {
            match decoder.decode(buf) {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => read_more(stream, buf).await?,
                Err(e) if !e.is_fatal() => continue,
                Err(e) => return Err(PeerFailure::Wire(e.to_string())),
            }
        }
    })
    .await
}

/// Fetches the info dictionary from one peer by BEP 9's `ut_metadata`, verified against
/// `info_hash`.
async fn ask_peer(
    addr: SocketAddr,
    info_hash: InfoHash,
    peer_id: PeerId,
) -> Result<Vec<u8>, PeerFailure> {
    let (mut stream, mut buf) = handshake(addr, info_hash, peer_id).await?;
    let mut hs = ExtendedHandshake::seedbox(250, None, Some(addr.ip()));
    hs.extensions.insert(UT_METADATA.into(), OUR_UT_METADATA_ID);
    let mut out = BytesMut::new();
    hs.to_message().encode(&mut out);
    stream.write_all(&out).await?;
    let decoder = MessageDecoder::new(MAX_MESSAGE);
    let mut assembly: Option<(MetadataAssembly, u8)> = None;
    loop {
        let msg = next_message(&mut stream, &mut buf, &decoder).await?;
        let Message::Extended { id, payload } = msg else {
            continue;
        };
        if id == 0 {
            let theirs =
                ExtendedHandshake::parse(&payload).map_err(|e| PeerFailure::Wire(e.to_string()))?;
            if assembly.is_some() {
                continue;
            }
            let their_id = theirs
                .id_for(UT_METADATA)
                .ok_or(PeerFailure::NoUtMetadata)?;
            assembly = Some((
                MetadataAssembly::new(info_hash, theirs.metadata_size)?,
                their_id,
            ));
        } else if id == OUR_UT_METADATA_ID {
            let Some((a, _)) = assembly.as_mut() else {
                continue;
            };
            let m = ut_metadata::parse_shared(&payload)
                .map_err(|e| PeerFailure::Wire(e.to_string()))?;
            if let Some(info) = a.on_message(m)? {
                return Ok(info);
            }
        } else {
            continue;
        }
        if let Some((a, their_id)) = assembly.as_mut() {
            let mut out = BytesMut::new();
            while let Some(req) = a.next_request(IN_FLIGHT) {
                Message::Extended {
                    id: *their_id,
                    payload: req.encode().into(),
                }
                .encode(&mut out);
            }
            if out.has_remaining() {
                stream.write_all(&out).await?;
            }
        }
    }
}

/// The bytes of a `.torrent` holding `info` (exactly as fetched, so the info-hash is kept),
/// the trackers as `announce` / `announce-list` and the web seeds as `url-list`.
pub fn torrent_file_bytes(info: &[u8], trackers: &[String], web_seeds: &[String]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(s.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(s);
    }
    // Keys in sorted order: announce, announce-list, info, url-list.
    let mut out = b"d".to_vec();
    if let Some(first) = trackers.first() {
        string(&mut out, b"announce");
        string(&mut out, first.as_bytes());
        string(&mut out, b"announce-list");
        out.push(b'l');
        for t in trackers {
            out.push(b'l');
            string(&mut out, t.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
    }
    string(&mut out, b"info");
    out.extend_from_slice(info);
    if !web_seeds.is_empty() {
        string(&mut out, b"url-list");
        out.push(b'l');
        for w in web_seeds {
            string(&mut out, w.as_bytes());
        }
        out.push(b'e');
    }
    out.push(b'e');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torrent_file_keeps_the_info_bytes_and_hash() {
        let info = b"d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let bytes = torrent_file_bytes(
            info,
            &["http://a/announce".into(), "udp://b:1".into()],
            &["http://w/".into()],
        );
        let t = crate::metainfo::Torrent::from_bytes(&bytes).unwrap();
        assert_eq!(t.info_hash, InfoHash::of(info));
        assert_eq!(t.announce.as_deref(), Some("http://a/announce"));
        assert_eq!(t.announce_list.len(), 2);
        assert_eq!(t.url_list, vec!["http://w/".to_string()]);
        let bare = torrent_file_bytes(info, &[], &[]);
        assert_eq!(
            crate::metainfo::Torrent::from_bytes(&bare)
                .unwrap()
                .info_hash,
            InfoHash::of(info)
        );
    }
}
