//! Framing: length-prefixed messages out of a `BytesMut` receive buffer.

use bytes::{Buf, BytesMut};

use super::message::id;
use super::{Message, WireError};
use crate::swarm::{BlockRef, BLOCK_SIZE};

/// Room left above a 16 KiB piece message for extension messages that carry a 16 KiB block plus
/// a small bencoded header (BEP 9 `ut_metadata` data messages).
const EXTENSION_SLACK: u32 = 1024;

/// The default maximum message length (id byte and payload, prefix excluded) for a torrent of
/// `piece_count` pieces: room for a 16 KiB `piece` message, a BEP 9 metadata block, and the
/// torrent's bitfield, whichever is largest.
pub fn default_max_message_len(piece_count: u32) -> u32 {
    let piece_msg = 1 + 8 + BLOCK_SIZE + EXTENSION_SLACK;
    let bitfield_msg = 1 + piece_count.div_ceil(8);
    piece_msg.max(bitfield_msg)
}

/// Decodes messages from a stream buffer.
///
/// Feed received bytes into a `BytesMut` and call [`MessageDecoder::decode`] until it returns
/// `Ok(None)`. `piece` data, bitfields and extension payloads are split off the buffer without
/// copying. A length prefix above the maximum fails as soon as its 4 bytes arrive, before any
/// payload is buffered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageDecoder {
    max_len: u32,
}

impl Default for MessageDecoder {
    /// A decoder with [`default_max_message_len`] for a torrent of up to 131072 pieces.
    fn default() -> Self {
        MessageDecoder::for_piece_count(1 << 17)
    }
}

impl MessageDecoder {
    /// A decoder accepting messages of at most `max_len` bytes (id byte and payload, the
    /// 4-byte prefix excluded). `0xFFFFFFFF` is always rejected whatever the maximum.
    pub fn new(max_len: u32) -> Self {
        MessageDecoder { max_len }
    }

    /// A decoder with the default maximum for a torrent of `piece_count` pieces.
    pub fn for_piece_count(piece_count: u32) -> Self {
        MessageDecoder::new(default_max_message_len(piece_count))
    }

    /// The maximum message length.
    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    /// Takes the next complete message off the front of `buf`; `Ok(None)` when more bytes are
    /// needed (the buffer is then reserved up to the announced length).
    ///
    /// On [`WireError::UnknownMessage`] and [`WireError::BadPayloadLength`] the offending
    /// message has been consumed; on the length errors nothing is consumed. Any error but
    /// `UnknownMessage` means the peer should be dropped.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len == u32::MAX {
            return Err(WireError::InvalidLengthPrefix);
        }
        if len > self.max_len {
            return Err(WireError::MessageTooLong {
                length: len,
                max: self.max_len,
            });
        }
        if len == 0 {
            buf.advance(4);
            return Ok(Some(Message::KeepAlive));
        }
        let total = 4 + len as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        let mut frame = buf.split_to(len as usize);
        let msg_id = frame[0];
        frame.advance(1);
        parse(msg_id, frame).map(Some)
    }
}

fn exact(
    message: &'static str,
    frame: &BytesMut,
    n: usize,
    expected: &'static str,
) -> Result<(), WireError> {
    if frame.len() == n {
        Ok(())
    } else {
        Err(WireError::BadPayloadLength {
            message,
            expected,
            actual: frame.len() as u32,
        })
    }
}

fn block(frame: &mut BytesMut) -> BlockRef {
    BlockRef {
        piece: frame.get_u32(),
        offset: frame.get_u32(),
        length: frame.get_u32(),
    }
}

/// Parses a message from its id and payload.
fn parse(msg_id: u8, mut frame: BytesMut) -> Result<Message, WireError> {
    let m = match msg_id {
        id::CHOKE => {
            exact("choke", &frame, 0, "0")?;
            Message::Choke
        }
        id::UNCHOKE => {
            exact("unchoke", &frame, 0, "0")?;
            Message::Unchoke
        }
        id::INTERESTED => {
            exact("interested", &frame, 0, "0")?;
            Message::Interested
        }
        id::NOT_INTERESTED => {
            exact("not interested", &frame, 0, "0")?;
            Message::NotInterested
        }
        id::HAVE_ALL => {
            exact("have all", &frame, 0, "0")?;
            Message::HaveAll
        }
        id::HAVE_NONE => {
            exact("have none", &frame, 0, "0")?;
            Message::HaveNone
        }
        id::HAVE => {
            exact("have", &frame, 4, "4")?;
            Message::Have(frame.get_u32())
        }
        id::SUGGEST_PIECE => {
            exact("suggest piece", &frame, 4, "4")?;
            Message::SuggestPiece(frame.get_u32())
        }
        id::ALLOWED_FAST => {
            exact("allowed fast", &frame, 4, "4")?;
            Message::AllowedFast(frame.get_u32())
        }
        id::PORT => {
            exact("port", &frame, 2, "2")?;
            Message::Port(frame.get_u16())
        }
        id::REQUEST => {
            exact("request", &frame, 12, "12")?;
            Message::Request(block(&mut frame))
        }
        id::CANCEL => {
            exact("cancel", &frame, 12, "12")?;
            Message::Cancel(block(&mut frame))
        }
        id::REJECT_REQUEST => {
            exact("reject request", &frame, 12, "12")?;
            Message::RejectRequest(block(&mut frame))
        }
        id::BITFIELD => Message::Bitfield(frame.freeze()),
        id::PIECE => {
            if frame.len() < 8 {
                return Err(WireError::BadPayloadLength {
                    message: "piece",
                    expected: "at least 8",
                    actual: frame.len() as u32,
                });
            }
            let piece = frame.get_u32();
            let offset = frame.get_u32();
            Message::Piece {
                piece,
                offset,
                data: frame.freeze(),
            }
        }
        id::EXTENDED => {
            if frame.is_empty() {
                return Err(WireError::BadPayloadLength {
                    message: "extended",
                    expected: "at least 1",
                    actual: 0,
                });
            }
            let ext_id = frame.get_u8();
            Message::Extended {
                id: ext_id,
                payload: frame.freeze(),
            }
        }
        other => {
            return Err(WireError::UnknownMessage {
                id: other,
                length: 1 + frame.len() as u32,
            })
        }
    };
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn encode_all(msgs: &[Message]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for m in msgs {
            m.encode(&mut out);
        }
        out.to_vec()
    }

    fn decode_one(bytes: &[u8]) -> Result<Option<Message>, WireError> {
        MessageDecoder::default().decode(&mut BytesMut::from(bytes))
    }

    #[test]
    fn decodes_every_message_kind() {
        let b = BlockRef {
            piece: 3,
            offset: 16384,
            length: 100,
        };
        let msgs = vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(42),
            Message::Bitfield(Bytes::from_static(&[0xf0, 0x01])),
            Message::Bitfield(Bytes::new()),
            Message::Request(b),
            Message::Piece {
                piece: 3,
                offset: 16384,
                data: Bytes::from(vec![9u8; 100]),
            },
            Message::Piece {
                piece: 0,
                offset: 0,
                data: Bytes::new(),
            },
            Message::Cancel(b),
            Message::Port(51413),
            Message::HaveAll,
            Message::HaveNone,
            Message::SuggestPiece(5),
            Message::RejectRequest(b),
            Message::AllowedFast(6),
            Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"d1:md6:ut_pexi1eee"),
            },
            Message::Extended {
                id: 3,
                payload: Bytes::new(),
            },
        ];
        let mut buf = BytesMut::from(&encode_all(&msgs)[..]);
        let dec = MessageDecoder::default();
        for m in &msgs {
            assert_eq!(dec.decode(&mut buf).unwrap().as_ref(), Some(m));
        }
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn incomplete_messages_wait() {
        assert_eq!(decode_one(&[]), Ok(None));
        assert_eq!(decode_one(&[0, 0, 0]), Ok(None));
        assert_eq!(decode_one(&[0, 0, 0, 5, 4, 0, 0]), Ok(None));
    }

    #[test]
    fn incomplete_message_reserves_its_length_and_consumes_nothing() {
        let mut buf = BytesMut::from(&[0u8, 0, 0x40, 9, 7, 0][..]);
        assert_eq!(MessageDecoder::default().decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 6);
        assert!(buf.capacity() >= 4 + 0x4009);
    }

    #[test]
    fn all_ones_length_fails_immediately() {
        let dec = MessageDecoder::new(u32::MAX);
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert_eq!(dec.decode(&mut buf), Err(WireError::InvalidLengthPrefix));
        assert_eq!(
            decode_one(&[0xff, 0xff, 0xff, 0xff]),
            Err(WireError::InvalidLengthPrefix)
        );
    }

    #[test]
    fn oversized_message_fails_before_buffering() {
        let dec = MessageDecoder::new(100);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 101][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(WireError::MessageTooLong {
                length: 101,
                max: 100
            })
        );
        assert!(
            buf.capacity() < 101,
            "no room reserved for a rejected message"
        );
        let mut ok = BytesMut::from(&[0u8, 0, 0, 100][..]);
        assert_eq!(dec.decode(&mut ok), Ok(None));
    }

    #[test]
    fn default_max_fits_a_block_and_the_bitfield() {
        assert!(default_max_message_len(8) >= 1 + 8 + BLOCK_SIZE);
        assert_eq!(default_max_message_len(8_000_000), 1 + 1_000_000);
        let dec = MessageDecoder::for_piece_count(10);
        let piece = Message::Piece {
            piece: 0,
            offset: 0,
            data: Bytes::from(vec![0u8; BLOCK_SIZE as usize]),
        };
        let mut buf = BytesMut::from(&encode_all(std::slice::from_ref(&piece))[..]);
        assert_eq!(dec.decode(&mut buf), Ok(Some(piece)));
    }

    #[test]
    fn wrong_fixed_payload_sizes_are_errors() {
        let cases: &[(&[u8], &str)] = &[
            (&[0, 0, 0, 2, 0, 0], "choke"),
            (&[0, 0, 0, 2, 1, 0], "unchoke"),
            (&[0, 0, 0, 2, 2, 0], "interested"),
            (&[0, 0, 0, 2, 3, 0], "not interested"),
            (&[0, 0, 0, 4, 4, 0, 0, 0], "have"),
            (&[0, 0, 0, 6, 4, 0, 0, 0, 0, 0], "have"),
            (
                &[0, 0, 0, 12, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                "request",
            ),
            (&[0, 0, 0, 12, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "cancel"),
            (&[0, 0, 0, 2, 9, 0], "port"),
            (&[0, 0, 0, 2, 0x0e, 0], "have all"),
            (&[0, 0, 0, 2, 0x0f, 0], "have none"),
            (&[0, 0, 0, 1, 0x0d], "suggest piece"),
            (&[0, 0, 0, 1, 0x10], "reject request"),
            (&[0, 0, 0, 1, 0x11], "allowed fast"),
            (&[0, 0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0], "piece"),
            (&[0, 0, 0, 1, 20], "extended"),
        ];
        for (bytes, name) in cases {
            match decode_one(bytes) {
                Err(WireError::BadPayloadLength { message, .. }) => assert_eq!(message, *name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_payload_error_names_the_problem() {
        let err = decode_one(&[0, 0, 0, 4, 4, 0, 0, 0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "have message with a 3 byte payload (expected 4)"
        );
        assert!(err.is_fatal());
    }

    #[test]
    fn unknown_ids_are_skipped_and_decoding_continues() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 99, 1, 2, 0, 0, 0, 1, 1][..]);
        let dec = MessageDecoder::default();
        let err = dec.decode(&mut buf).unwrap_err();
        assert_eq!(err, WireError::UnknownMessage { id: 99, length: 3 });
        assert!(!err.is_fatal());
        assert_eq!(dec.decode(&mut buf), Ok(Some(Message::Unchoke)));
    }

    #[test]
    fn piece_data_shares_the_receive_buffer() {
        let msg = Message::Piece {
            piece: 1,
            offset: 0,
            data: Bytes::from(vec![5u8; 1000]),
        };
        let mut buf = BytesMut::from(&encode_all(&[msg])[..]);
        let base = buf.as_ptr() as usize;
        let Some(Message::Piece { data, .. }) = MessageDecoder::default().decode(&mut buf).unwrap()
        else {
            panic!("not a piece");
        };
        assert_eq!(data.as_ptr() as usize, base + 13, "data was copied");
    }

    fn arb_block() -> impl Strategy<Value = BlockRef> {
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(piece, offset, length)| BlockRef {
            piece,
            offset,
            length,
        })
    }

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::KeepAlive),
            Just(Message::Choke),
            Just(Message::Unchoke),
            Just(Message::Interested),
            Just(Message::NotInterested),
            Just(Message::HaveAll),
            Just(Message::HaveNone),
            any::<u32>().prop_map(Message::Have),
            any::<u32>().prop_map(Message::SuggestPiece),
            any::<u32>().prop_map(Message::AllowedFast),
            any::<u16>().prop_map(Message::Port),
            arb_block().prop_map(Message::Request),
            arb_block().prop_map(Message::Cancel),
            arb_block().prop_map(Message::RejectRequest),
            arb_bytes().prop_map(Message::Bitfield),
            (any::<u32>(), any::<u32>(), arb_bytes()).prop_map(|(piece, offset, data)| {
                Message::Piece {
                    piece,
                    offset,
                    data,
                }
            }),
            (any::<u8>(), arb_bytes()).prop_map(|(id, payload)| Message::Extended { id, payload }),
        ]
    }

    proptest! {
        #[test]
        fn roundtrip_any_messages_any_split(
            msgs in proptest::collection::vec(arb_message(), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let wire = encode_all(&msgs);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let dec = MessageDecoder::new(1024);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut start = 0;
            for cut in cuts {
                buf.extend_from_slice(&wire[start..cut]);
                start = cut;
                while let Some(m) = dec.decode(&mut buf).unwrap() {
                    out.push(m);
                }
            }
            prop_assert_eq!(out, msgs);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let dec = MessageDecoder::new(200);
            let mut buf = BytesMut::from(&bytes[..]);
            // Every call either consumes bytes, waits, or fails with nothing consumed.
            loop {
                let before = buf.len();
                match dec.decode(&mut buf) {
                    Ok(Some(m)) => prop_assert!(buf.len() < before || m == Message::KeepAlive),
                    Ok(None) => break,
                    Err(e) if e.is_fatal() && buf.len() == before => break,
                    Err(_) => prop_assert!(buf.len() < before),
                }
            }
        }

        #[test]
        fn random_handshake_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = super::super::Handshake::parse(&bytes);
            let _ = super::super::Handshake::decode(&mut BytesMut::from(&bytes[..]));
        }
    }
}
