//! The I/O edge of MSE/PE ([`crate::protocol::mse`]): running the handshake on a socket, and
//! the RC4 stream afterwards. Incoming connections are told apart by their first bytes (a
//! plain handshake starts with 19 and "BitTorrent protocol"; anything else is tried as MSE).
//! A plaintext peer (plain handshake, or MSE selecting `plaintext`) keeps the zero-copy
//! sends from the mapping untouched; an RC4 peer's reads are decrypted in place, and each of
//! its batches is copied once into a buffer that is encrypted.

use std::cell::RefCell;

use super::peer_io::{read_more, PeerRead, PeerStream, ReadError};
use crate::protocol::mse::{
    is_plain_handshake, EncryptionPolicy, Initiator, MseError, Progress, Rc4, Responder,
    StreamCipher,
};
use bytes::{Bytes, BytesMut};

/// Why an encrypted handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MseFailure {
    /// Reading failed (closed, socket error).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Writing failed.
    #[error("socket: {0}")]
    Write(std::io::Error),
    /// The handshake itself.
    #[error("encrypted handshake: {0}")]
    Protocol(#[from] MseError),
    /// A plain handshake under `--encryption require`.
    #[error("plain handshake refused (--encryption require)")]
    PlainRefused,
}

/// How a connection speaks after its handshake.
#[derive(Debug, Default)]
pub(crate) struct Negotiated {
    /// The info-hash the MSE handshake named (`None` for a plain connection).
    pub info_hash: Option<[u8; 20]>,
    /// The RC4 streams when `rc4` was selected.
    pub cipher: Option<StreamCipher>,
}

async fn write_bytes<S: PeerStream>(stream: &S, bytes: Vec<u8>) -> Result<(), MseFailure> {
    if bytes.is_empty() {
        return Ok(());
    }
    stream.write_all(bytes).await.map_err(MseFailure::Write)
}

/// The accepting side: reads until the first bytes tell a plain handshake from MSE; answers
/// MSE with the methods `policy` accepts, looking the torrent up with `torrent_of` (HASH('req2',
/// info-hash) to info-hash). Afterwards `buf` holds the start of the BitTorrent stream,
/// decrypted.
pub(crate) async fn accept<S: PeerStream>(
    stream: &S,
    buf: &mut BytesMut,
    chunk: usize,
    policy: EncryptionPolicy,
    torrent_of: &dyn Fn(&[u8; 20]) -> Option<[u8; 20]>,
) -> Result<Negotiated, MseFailure> {
    let plain = loop {
        if let Some(plain) = is_plain_handshake(buf) {
            break plain;
        }
        read_more(stream, buf, chunk).await?;
    };
    if plain {
        return if policy.allows_plain() {
            Ok(Negotiated::default())
        } else {
            Err(MseFailure::PlainRefused)
        };
    }
    let mut responder = Responder::new(policy.accepted(), &mut rand::thread_rng());
    loop {
        let progress = responder.receive(buf, torrent_of)?;
        buf.clear();
        write_bytes(stream, responder.take_output()).await?;
        if let Progress::Done(established) = progress {
            tracing::debug!(method = ?established.method, "encrypted handshake done");
            buf.extend_from_slice(&established.payload);
            return Ok(Negotiated {
                info_hash: Some(established.info_hash),
                cipher: established.cipher,
            });
        }
        read_more(stream, buf, chunk).await?;
    }
}

/// The connecting side: an MSE handshake for `info_hash` offering the methods of `policy`.
/// Afterwards `buf` holds the start of the BitTorrent stream, decrypted.
pub(crate) async fn connect<S: PeerStream>(
    stream: &S,
    buf: &mut BytesMut,
    chunk: usize,
    policy: EncryptionPolicy,
    info_hash: [u8; 20],
) -> Result<Negotiated, MseFailure> {
    let mut initiator = Initiator::new(info_hash, policy.provide(), &mut rand::thread_rng());
    write_bytes(stream, initiator.take_output()).await?;
    loop {
        read_more(stream, buf, chunk).await?;
        let progress = initiator.receive(buf)?;
        buf.clear();
        write_bytes(stream, initiator.take_output()).await?;
        if let Progress::Done(established) = progress {
            tracing::debug!(method = ?established.method, "encrypted handshake done");
            buf.extend_from_slice(&established.payload);
            return Ok(Negotiated {
                info_hash: Some(established.info_hash),
                cipher: established.cipher,
            });
        }
    }
}

/// A peer's socket for reading: as it is, or decrypting RC4 in place as bytes arrive.
pub(crate) enum PeerReader<'a, S> {
    /// Plain bytes.
    Plain(&'a S),
    /// RC4-encrypted bytes.
    Rc4(&'a S, Box<RefCell<Rc4>>),
}

impl<'a, S: PeerRead> PeerReader<'a, S> {
    /// The reader of `stream` with the decrypting half of `cipher`, if any.
    pub(crate) fn new(stream: &'a S, decrypt: Option<Rc4>) -> PeerReader<'a, S> {
        match decrypt {
            None => PeerReader::Plain(stream),
            Some(rc4) => PeerReader::Rc4(stream, Box::new(RefCell::new(rc4))),
        }
    }
}

impl<S: PeerRead> PeerRead for PeerReader<'_, S> {
    async fn read_into(&self, buf: BytesMut) -> (std::io::Result<usize>, BytesMut) {
        match self {
            PeerReader::Plain(stream) => stream.read_into(buf).await,
            PeerReader::Rc4(stream, rc4) => {
                let start = buf.len();
                let (result, mut buf) = stream.read_into(buf).await;
                if let Ok(n) = result {
                    rc4.borrow_mut().apply(&mut buf[start..start + n]);
                }
                (result, buf)
            }
        }
    }
}

/// Replaces `segments` (views of the mapping and headers) by one buffer holding their bytes
/// encrypted: the one copy an RC4 peer costs.
pub(crate) fn encrypt_segments(rc4: &mut Rc4, segments: &mut Vec<Bytes>) {
    let total = segments.iter().map(Bytes::len).sum();
    let mut out = BytesMut::with_capacity(total);
    for s in segments.iter() {
        out.extend_from_slice(s);
    }
    rc4.apply(&mut out);
    segments.clear();
    segments.push(out.freeze());
}
