//! Reading from a peer: its handshake, then more bytes for the message decoder. Shared by the
//! seed's connections ([`super::peer`]) and the leecher's ([`super::download`]), over any
//! [`PeerRead`].

use bytes::BytesMut;
use tokio_uring::buf::BoundedBuf;

use crate::protocol::{Handshake, WireError};

/// Reading from a peer into a buffer the reader owns while the read is in flight (as io_uring
/// needs): a [`PeerStream`], or a decrypting view of one ([`super::mse::PeerReader`]).
pub(crate) trait PeerRead {
    /// Reads into `buf`'s spare capacity (after its `len()`), returning the buffer and how
    /// many bytes were added (0: the peer closed).
    async fn read_into(&self, buf: BytesMut) -> (std::io::Result<usize>, BytesMut);
}

/// A byte stream to a peer: TCP, or [`super::transport::PeerTransport`] (TCP or uTP).
pub(crate) trait PeerStream: PeerRead {
    /// Writes all of `bytes` (handshakes and other small control writes; the block path has
    /// its own vectored writes).
    async fn write_all(&self, bytes: Vec<u8>) -> std::io::Result<()>;
}

impl PeerRead for tokio_uring::net::TcpStream {
    async fn read_into(&self, buf: BytesMut) -> (std::io::Result<usize>, BytesMut) {
        let start = buf.len();
        let end = buf.capacity();
        let (result, slice) = self.read(buf.slice(start..end)).await;
        (result, slice.into_inner())
    }
}

impl PeerStream for tokio_uring::net::TcpStream {
    async fn write_all(&self, bytes: Vec<u8>) -> std::io::Result<()> {
        tokio_uring::net::TcpStream::write_all(self, bytes).await.0
    }
}

/// Why reading from a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// The handshake did not parse.
    #[error("bad handshake: {0}")]
    Handshake(WireError),
}

/// Reads until `buf` starts with a whole handshake and takes it off; reads `chunk` bytes at a
/// time. What follows it stays in `buf` for the message decoder.
pub(crate) async fn read_handshake<S: PeerRead>(
    stream: &S,
    buf: &mut BytesMut,
    chunk: usize,
) -> Result<Handshake, ReadError> {
    loop {
        if let Some(h) = Handshake::decode(buf).map_err(ReadError::Handshake)? {
            return Ok(h);
        }
        read_more(stream, buf, chunk).await?;
    }
}

/// Appends what the stream has to `buf`, up to `chunk` bytes beyond its length (no copy: the
/// kernel writes into its spare capacity).
pub(crate) async fn read_more<S: PeerRead>(
    stream: &S,
    buf: &mut BytesMut,
    chunk: usize,
) -> Result<(), ReadError> {
    buf.reserve(chunk);
    let (result, back) = stream.read_into(std::mem::take(buf)).await;
    *buf = back;
    match result? {
        0 => Err(ReadError::Closed),
        _ => Ok(()),
    }
}
