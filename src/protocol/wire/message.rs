//! Peer wire messages and their encoding.

use bytes::{BufMut, Bytes, BytesMut};

use crate::swarm::BlockRef;

/// Message ids on the wire (BEP 3, BEP 6, BEP 10).
pub(super) mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const PORT: u8 = 9;
    pub const SUGGEST_PIECE: u8 = 0x0d;
    pub const HAVE_ALL: u8 = 0x0e;
    pub const HAVE_NONE: u8 = 0x0f;
    pub const REJECT_REQUEST: u8 = 0x10;
    pub const ALLOWED_FAST: u8 = 0x11;
    pub const EXTENDED: u8 = 20;
}

/// Length of a `piece` message's header: length prefix, id, piece index, offset.
pub const PIECE_HEADER_LEN: usize = 13;

/// A peer wire message (after the handshake).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// Zero-length message that keeps an idle connection open.
    KeepAlive,
    /// The sender will not serve the receiver's requests.
    Choke,
    /// The sender will serve the receiver's requests.
    Unchoke,
    /// The sender wants pieces the receiver has.
    Interested,
    /// The sender wants nothing from the receiver.
    NotInterested,
    /// The sender has completed the piece.
    Have(u32),
    /// The pieces the sender has, BEP 3 layout (raw wire bytes, validated by the receiver
    /// against the torrent's piece count).
    Bitfield(Bytes),
    /// Ask for a block.
    Request(BlockRef),
    /// A block of data.
    Piece {
        /// Piece index.
        piece: u32,
        /// Byte offset inside the piece.
        offset: u32,
        /// The block's bytes.
        data: Bytes,
    },
    /// Withdraw a request.
    Cancel(BlockRef),
    /// The sender's DHT port.
    Port(u16),
    /// BEP 6: the sender has every piece.
    HaveAll,
    /// BEP 6: the sender has no piece.
    HaveNone,
    /// BEP 6: the sender suggests downloading this piece.
    SuggestPiece(u32),
    /// BEP 6: the sender will not serve this request.
    RejectRequest(BlockRef),
    /// BEP 6: the receiver may request this piece even while choked.
    AllowedFast(u32),
    /// BEP 10: an extension message; `id` 0 is the extended handshake.
    Extended {
        /// Extended message id (0: handshake; others as negotiated in `m`).
        id: u8,
        /// The payload after the extended id.
        payload: Bytes,
    },
}

impl Message {
    /// The wire id, `None` for keep-alive.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have(_) => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::SuggestPiece(_) => id::SUGGEST_PIECE,
            Message::RejectRequest(_) => id::REJECT_REQUEST,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
        })
    }

    /// The message's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::KeepAlive => "keep-alive",
            Message::Choke => "choke",
            Message::Unchoke => "unchoke",
            Message::Interested => "interested",
            Message::NotInterested => "not interested",
            Message::Have(_) => "have",
            Message::Bitfield(_) => "bitfield",
            Message::Request(_) => "request",
            Message::Piece { .. } => "piece",
            Message::Cancel(_) => "cancel",
            Message::Port(_) => "port",
            Message::HaveAll => "have all",
            Message::HaveNone => "have none",
            Message::SuggestPiece(_) => "suggest piece",
            Message::RejectRequest(_) => "reject request",
            Message::AllowedFast(_) => "allowed fast",
            Message::Extended { .. } => "extended",
        }
    }

    /// Whether this message belongs to the Fast extension (BEP 6) and may only be sent when
    /// both sides advertised it.
    pub fn is_fast_extension(&self) -> bool {
        matches!(
            self,
            Message::HaveAll
                | Message::HaveNone
                | Message::SuggestPiece(_)
                | Message::RejectRequest(_)
                | Message::AllowedFast(_)
        )
    }

    /// The payload length after the id byte.
    fn payload_len(&self) -> usize {
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 0,
            Message::Have(_) | Message::SuggestPiece(_) | Message::AllowedFast(_) => 4,
            Message::Port(_) => 2,
            Message::Request(_) | Message::Cancel(_) | Message::RejectRequest(_) => 12,
            Message::Bitfield(b) => b.len(),
            Message::Piece { data, .. } => 8 + data.len(),
            Message::Extended { payload, .. } => 1 + payload.len(),
        }
    }

    /// Total bytes on the wire, length prefix included.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::KeepAlive => 4,
            _ => 5 + self.payload_len(),
        }
    }

    /// Appends the wire form to `out`.
    ///
    /// # Panics
    /// When the message is longer than `u32::MAX` bytes (a bitfield, piece or extended payload
    /// of 4 GiB), which no caller builds.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        let Some(id) = self.id() else {
            out.put_u32(0);
            return;
        };
        let len = u32::try_from(1 + self.payload_len()).expect("message fits in u32");
        out.put_u32(len);
        out.put_u8(id);
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have(p) | Message::SuggestPiece(p) | Message::AllowedFast(p) => {
                out.put_u32(*p)
            }
            Message::Port(port) => out.put_u16(*port),
            Message::Request(b) | Message::Cancel(b) | Message::RejectRequest(b) => {
                out.put_u32(b.piece);
                out.put_u32(b.offset);
                out.put_u32(b.length);
            }
            Message::Bitfield(bits) => out.extend_from_slice(bits),
            Message::Piece {
                piece,
                offset,
                data,
            } => {
                out.put_u32(*piece);
                out.put_u32(*offset);
                out.extend_from_slice(data);
            }
            Message::Extended { id, payload } => {
                out.put_u8(*id);
                out.extend_from_slice(payload);
            }
        }
    }
}

/// The 13-byte header of a `piece` message carrying `len` bytes of block data: send it followed
/// by the block itself (e.g. a slice of the memory map, in one vectored write) to avoid copying
/// the block into a message buffer.
pub fn piece_header(piece: u32, offset: u32, len: u32) -> [u8; PIECE_HEADER_LEN] {
    let mut h = [0u8; PIECE_HEADER_LEN];
    h[0..4].copy_from_slice(&(9u32.wrapping_add(len)).to_be_bytes());
    h[4] = id::PIECE;
    h[5..9].copy_from_slice(&piece.to_be_bytes());
    h[9..13].copy_from_slice(&offset.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(m: &Message) -> Vec<u8> {
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(out.len(), m.encoded_len(), "{m:?}");
        out.to_vec()
    }

    const BLOCK: BlockRef = BlockRef {
        piece: 1,
        offset: 0x4000,
        length: 0x4000,
    };

    #[test]
    fn fixed_messages_encode_as_bep3_says() {
        assert_eq!(enc(&Message::KeepAlive), [0, 0, 0, 0]);
        assert_eq!(enc(&Message::Choke), [0, 0, 0, 1, 0]);
        assert_eq!(enc(&Message::Unchoke), [0, 0, 0, 1, 1]);
        assert_eq!(enc(&Message::Interested), [0, 0, 0, 1, 2]);
        assert_eq!(enc(&Message::NotInterested), [0, 0, 0, 1, 3]);
        assert_eq!(enc(&Message::Have(0x01020304)), [0, 0, 0, 5, 4, 1, 2, 3, 4]);
        assert_eq!(enc(&Message::Port(6881)), [0, 0, 0, 3, 9, 0x1a, 0xe1]);
        let req = [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0];
        assert_eq!(enc(&Message::Request(BLOCK)), req);
        let mut cancel = req;
        cancel[4] = 8;
        assert_eq!(enc(&Message::Cancel(BLOCK)), cancel);
    }

    #[test]
    fn fast_messages_encode_as_bep6_says() {
        assert_eq!(enc(&Message::HaveAll), [0, 0, 0, 1, 0x0e]);
        assert_eq!(enc(&Message::HaveNone), [0, 0, 0, 1, 0x0f]);
        assert_eq!(
            enc(&Message::SuggestPiece(7)),
            [0, 0, 0, 5, 0x0d, 0, 0, 0, 7]
        );
        assert_eq!(
            enc(&Message::AllowedFast(7)),
            [0, 0, 0, 5, 0x11, 0, 0, 0, 7]
        );
        let rej = enc(&Message::RejectRequest(BLOCK));
        assert_eq!(&rej[..5], &[0, 0, 0, 13, 0x10]);
        assert!(Message::HaveAll.is_fast_extension());
        assert!(!Message::Have(1).is_fast_extension());
    }

    #[test]
    fn variable_messages() {
        let bf = enc(&Message::Bitfield(Bytes::from_static(&[0xff, 0x80])));
        assert_eq!(bf, [0, 0, 0, 3, 5, 0xff, 0x80]);
        let ext = enc(&Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"de"),
        });
        assert_eq!(ext, [0, 0, 0, 4, 20, 0, b'd', b'e']);
        let piece = enc(&Message::Piece {
            piece: 2,
            offset: 16,
            data: Bytes::from_static(b"abc"),
        });
        assert_eq!(
            piece,
            [0, 0, 0, 12, 7, 0, 0, 0, 2, 0, 0, 0, 16, b'a', b'b', b'c']
        );
    }

    #[test]
    fn piece_header_matches_the_encoded_message() {
        let data = Bytes::from(vec![7u8; 16384]);
        let m = Message::Piece {
            piece: 9,
            offset: 32768,
            data: data.clone(),
        };
        let full = enc(&m);
        let header = piece_header(9, 32768, data.len() as u32);
        assert_eq!(&full[..PIECE_HEADER_LEN], &header);
        assert_eq!(&full[PIECE_HEADER_LEN..], &data[..]);
    }

    #[test]
    fn names_and_ids() {
        assert_eq!(Message::KeepAlive.id(), None);
        assert_eq!(Message::AllowedFast(0).id(), Some(0x11));
        assert_eq!(Message::RejectRequest(BLOCK).name(), "reject request");
    }
}
