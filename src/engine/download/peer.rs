//! The tasks of one peer of a download: handshake, then a reader that feeds the session and a
//! writer that sends what the session queued (control messages, then blocks straight from the
//! mapping in one vectored write).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use super::session::{replaces_duplicate, PeerIo, Session};
use crate::engine::mse::{self, Negotiated, PeerReader};
use crate::engine::peer_io::{read_handshake, read_more, PeerStream};
use crate::engine::send;
use crate::engine::transport::PeerTransport;
use crate::metainfo::InfoHash;
use crate::protocol::mse::{skey_hash, EncryptionPolicy, Rc4};
use crate::protocol::wire::piece_header;
use crate::protocol::{Handshake, MessageDecoder, PeerId};
use crate::swarm::{BlockRef, PeerKey};

const READ_CHUNK: usize = 64 * 1024;
/// Blocks per vectored write.
const BLOCKS_PER_WRITE: usize = 16;
/// How long the peer has to answer our handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which side opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// We dialled.
    Outgoing,
    /// It dialled us.
    Incoming,
}

/// Why a peer's connection ended.
#[derive(Debug)]
enum Ended {
    /// We are already connected to this peer (same peer id) and keep the other connection.
    Duplicate,
    /// It failed: the handshake, the transport or the protocol, in words.
    Failed(String),
}

impl From<String> for Ended {
    fn from(why: String) -> Ended {
        Ended::Failed(why)
    }
}

impl From<&str> for Ended {
    fn from(why: &str) -> Ended {
        Ended::Failed(why.to_owned())
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Duplicate => f.write_str("already connected to this peer"),
            Ended::Failed(why) => f.write_str(why),
        }
    }
}

/// Runs one peer to the end over TCP or uTP; errors end only this peer.
pub(crate) async fn run_peer(
    session: Rc<RefCell<Session>>,
    stream: PeerTransport,
    addr: SocketAddr,
    side: Side,
    encryption: EncryptionPolicy,
) {
    if let PeerTransport::Tcp(tcp) = &stream {
        let _ = tcp.set_nodelay(true);
    }
    let stream = Rc::new(stream);
    let sockets = session.borrow().sockets.clone();
    let _registered = match &*stream {
        PeerTransport::Tcp(tcp) => Some(sockets.register(std::os::fd::AsRawFd::as_raw_fd(tcp))),
        PeerTransport::Utp(_) => None,
    };
    let result = run_inner(&session, stream.clone(), addr, side, encryption).await;
    stream.shutdown();
    match result {
        Ok(key) => session.borrow_mut().remove_peer(key),
        Err(e @ Ended::Duplicate) => {
            // The other connection to this peer carries on: nothing to retry.
            tracing::debug!(%addr, transport = stream.name(), "peer: {e}");
            session.borrow_mut().connected.remove(&addr);
        }
        Err(e) => {
            tracing::debug!(%addr, transport = stream.name(), "peer: {e}");
            let mut s = session.borrow_mut();
            if side == Side::Outgoing {
                s.dial_failed(addr, stream.is_utp());
            }
            s.connection_ended(addr);
        }
    }
}

/// Refuses a handshake for another torrent (the encrypted one's or the plain one's) or from
/// ourselves.
fn check_handshake(
    theirs: &Handshake,
    encrypted_for: Option<[u8; 20]>,
    info_hash: InfoHash,
    our_id: PeerId,
) -> Result<(), String> {
    if encrypted_for.is_some_and(|h| h != info_hash.0) {
        return Err("encrypted handshake for another torrent".into());
    }
    if theirs.info_hash != info_hash {
        return Err(format!("wrong info-hash {}", theirs.info_hash));
    }
    if theirs.peer_id == our_id {
        return Err("connected to ourselves".into());
    }
    Ok(())
}

async fn run_inner(
    session: &Rc<RefCell<Session>>,
    stream: Rc<PeerTransport>,
    addr: SocketAddr,
    side: Side,
    encryption: EncryptionPolicy,
) -> Result<PeerKey, Ended> {
    let (info_hash, our_id, reserved) = {
        let s = session.borrow();
        let reserved = s.driver.config().connection.handshake_reserved();
        (s.torrent.info_hash, s.peer_id, reserved)
    };
    let ours = Handshake {
        reserved,
        ..Handshake::new(info_hash, our_id)
    };
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let (named, mut encrypt, reader, theirs) = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let negotiated = match side {
            Side::Outgoing if encryption.mse_first() => {
                mse::connect(&*stream, &mut buf, READ_CHUNK, encryption, info_hash.0).await
            }
            Side::Outgoing => Ok(Negotiated::default()),
            Side::Incoming => {
                let torrent_of =
                    |req2: &[u8; 20]| (*req2 == skey_hash(&info_hash.0)).then_some(info_hash.0);
                mse::accept(&*stream, &mut buf, READ_CHUNK, encryption, &torrent_of).await
            }
        }
        .map_err(|e| e.to_string())?;
        let (mut encrypt, decrypt) = match negotiated.cipher {
            Some(c) => (Some(c.encrypt), Some(c.decrypt)),
            None => (None, None),
        };
        if side == Side::Outgoing {
            write_all(&stream, encrypt.as_mut(), ours.encode().to_vec()).await?;
        }
        let reader = PeerReader::new(&*stream, decrypt);
        let theirs = read_handshake(&reader, &mut buf, READ_CHUNK)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((negotiated.info_hash, encrypt, reader, theirs))
    })
    .await
    .map_err(|_| "no handshake in time".to_string())??;
    check_handshake(&theirs, named, info_hash, our_id)?;
    if side == Side::Incoming {
        write_all(&stream, encrypt.as_mut(), ours.encode().to_vec()).await?;
    }
    // Checked after our handshake went out, so that the other side sees a connection that
    // ended after the handshake, not a transport that refuses it.
    let duplicate = session.borrow().connected_with(theirs.peer_id);
    if let Some((old, old_outgoing)) = duplicate {
        let outgoing = side == Side::Outgoing;
        if !replaces_duplicate(our_id, theirs.peer_id, outgoing, old_outgoing) {
            return Err(Ended::Duplicate);
        }
        session.borrow_mut().close_peer(old);
    }
    let wake = Rc::new(Notify::new());
    let key = session.borrow_mut().add_peer(
        PeerIo {
            addr,
            wake: wake.clone(),
            stream: stream.clone(),
            outgoing: side == Side::Outgoing,
            pex_addr: None,
            peer_id: theirs.peer_id,
        },
        &theirs,
    );
    tracing::debug!(%addr, key, transport = stream.name(), "peer connected");
    let reader = read_loop(session, &reader, key, buf);
    let writer = write_loop(session, &stream, encrypt, key, &wake);
    let result = tokio::select! {
        r = reader => r,
        r = writer => r,
    };
    if let Err(e) = result {
        tracing::debug!(%addr, "peer ended: {e}");
    }
    Ok(key)
}

/// Writes `data`, encrypted first when the peer speaks RC4.
async fn write_all(
    stream: &PeerTransport,
    encrypt: Option<&mut Rc4>,
    mut data: Vec<u8>,
) -> Result<(), String> {
    if let Some(rc4) = encrypt {
        rc4.apply(&mut data);
    }
    stream.write_all(data).await.map_err(|e| e.to_string())
}

async fn read_loop(
    session: &Rc<RefCell<Session>>,
    stream: &PeerReader<'_, PeerTransport>,
    key: PeerKey,
    mut buf: BytesMut,
) -> Result<(), String> {
    let decoder = MessageDecoder::for_piece_count(session.borrow().geometry.piece_count());
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(m)) => session
                    .borrow_mut()
                    .on_message(key, m)
                    .map_err(|e| e.to_string())?,
                Ok(None) => break,
                Err(e) if !e.is_fatal() => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        read_more(stream, &mut buf, READ_CHUNK)
            .await
            .map_err(|e| e.to_string())?;
    }
}

async fn write_loop(
    session: &Rc<RefCell<Session>>,
    stream: &PeerTransport,
    mut encrypt: Option<Rc4>,
    key: PeerKey,
    wake: &Notify,
) -> Result<(), String> {
    let mut control = BytesMut::with_capacity(1024);
    let mut blocks: Vec<(BlockRef, Bytes)> = Vec::with_capacity(BLOCKS_PER_WRITE);
    loop {
        blocks.clear();
        let alive =
            session
                .borrow_mut()
                .take_output(key, &mut control, &mut blocks, BLOCKS_PER_WRITE);
        if !alive {
            return Err("closing".into());
        }
        if control.is_empty() && blocks.is_empty() {
            // Rate-limited with requests waiting: look again shortly; else sleep until woken.
            let poll = if session.borrow().has_queued(key) {
                Duration::from_millis(20)
            } else {
                Duration::from_secs(1)
            };
            let _ = tokio::time::timeout(poll, wake.notified()).await;
            continue;
        }
        let mut segments: Vec<Bytes> = Vec::with_capacity(1 + 2 * blocks.len());
        if !control.is_empty() {
            segments.push(control.split().freeze());
        }
        for (b, data) in blocks.drain(..) {
            segments.push(Bytes::copy_from_slice(&piece_header(
                b.piece, b.offset, b.length,
            )));
            segments.push(data);
        }
        if let Some(rc4) = &mut encrypt {
            mse::encrypt_segments(rc4, &mut segments);
        }
        writev_all(stream, segments).await?;
    }
}

/// Writes every segment, resubmitting what a short write left.
async fn writev_all(stream: &PeerTransport, mut segments: Vec<Bytes>) -> Result<(), String> {
    while !segments.is_empty() {
        let (res, back) = stream.write_segments(None, segments).await;
        segments = back;
        let n = res.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("peer stopped reading".into());
        }
        if send::consume(&mut segments, n) == 0 {
            break;
        }
    }
    Ok(())
}
