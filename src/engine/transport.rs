//! The transports a peer connection runs over: TCP (with the zero-copy vectored send path
//! from the memory map) or uTP ([`super::utp`]). The peer code reads and writes through
//! [`PeerTransport`] and never needs to know which.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio_uring::net::TcpStream;

use super::peer_io::{PeerRead, PeerStream};
use super::send;
use super::utp::UtpStream;

/// A connection's byte stream.
pub(crate) enum PeerTransport {
    /// TCP: blocks are sent straight from the mapping.
    Tcp(TcpStream),
    /// uTP: blocks are copied into the connection's packets.
    Utp(UtpStream),
}

impl PeerRead for PeerTransport {
    async fn read_into(&self, buf: BytesMut) -> (io::Result<usize>, BytesMut) {
        match self {
            PeerTransport::Tcp(s) => s.read_into(buf).await,
            PeerTransport::Utp(s) => s.read_into(buf).await,
        }
    }
}

impl PeerStream for PeerTransport {
    async fn write_all(&self, bytes: Vec<u8>) -> io::Result<()> {
        match self {
            PeerTransport::Tcp(s) => PeerStream::write_all(s, bytes).await,
            PeerTransport::Utp(s) => s.write_all(&bytes).await,
        }
    }
}

impl PeerTransport {
    /// Writes `segments` in order: TCP as [`send::write`] (possibly fewer bytes than all),
    /// uTP all of them into the connection's send buffer. Returns the bytes written and the
    /// segments.
    pub async fn write_segments(
        &self,
        zero_copy: Option<&send::ZeroCopy<'_>>,
        segments: Vec<Bytes>,
    ) -> (io::Result<usize>, Vec<Bytes>) {
        match self {
            PeerTransport::Tcp(s) => send::write(s, zero_copy, segments).await,
            PeerTransport::Utp(s) => {
                let mut total = 0;
                for seg in &segments {
                    if let Err(e) = s.write_all(seg).await {
                        return (Err(e), segments);
                    }
                    total += seg.len();
                }
                (Ok(total), segments)
            }
        }
    }

    /// Shuts a TCP socket down both ways (a receive in flight completes); a uTP connection
    /// closes when its stream is dropped.
    pub fn shutdown(&self) {
        if let PeerTransport::Tcp(s) = self {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// `TCP` or `uTP`, for logs.
    pub fn name(&self) -> &'static str {
        if self.is_utp() {
            "uTP"
        } else {
            "TCP"
        }
    }

    /// Whether this is uTP.
    pub fn is_utp(&self) -> bool {
        matches!(self, PeerTransport::Utp(_))
    }
}
