//! BEP 9 `ut_metadata`: the extension message that carries a torrent's info dictionary in
//! 16 KiB pieces, so a client given only a magnet link can fetch it from peers.
//!
//! A message is a bencoded dictionary (`msg_type` 0 request, 1 data, 2 reject; `piece`; for
//! data also `total_size`) followed, for data, by the piece's bytes. [`parse`] reads one from
//! untrusted bytes and never panics; [`MetadataMessage::encode`] writes one. [`MetadataAssembly`]
//! is the fetching side, sans-IO: it says which piece to ask for next, collects the pieces and
//! checks the whole against the info-hash.

use bytes::Bytes;
use sha1::{Digest, Sha1};
use thiserror::Error;

use crate::bencode::{self, Owned};
use crate::metainfo::InfoHash;

/// The extension's name in the `m` dictionary of the extension handshake.
pub const UT_METADATA: &str = "ut_metadata";
/// The extended message id under which seedbox receives `ut_metadata` messages.
pub const OUR_UT_METADATA_ID: u8 = 2;
/// Size of one metadata piece (the last one may be shorter).
pub const METADATA_PIECE_SIZE: usize = 16 * 1024;
/// Largest info dictionary seedbox fetches: 32 MiB (libtorrent refuses about 30 MiB).
pub const MAX_METADATA_SIZE: u64 = 32 * 1024 * 1024;

/// A `ut_metadata` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataMessage {
    /// `msg_type` 0: send me this piece.
    Request {
        /// Piece index.
        piece: u32,
    },
    /// `msg_type` 1: this piece's bytes.
    Data {
        /// Piece index.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u64,
        /// The piece's bytes.
        data: Bytes,
    },
    /// `msg_type` 2: I will not send this piece.
    Reject {
        /// Piece index.
        piece: u32,
    },
}

/// What is wrong with a `ut_metadata` message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MetadataMessageError {
    /// The dictionary is not valid bencode.
    #[error("ut_metadata message is not valid bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// The bencode is not a dictionary.
    #[error("ut_metadata message is a {0}, not a dictionary")]
    NotADict(&'static str),
    /// A key is missing or holds a wrong value.
    #[error("ut_metadata message key {key:?}: {problem}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// Bytes follow a request or a reject.
    #[error("ut_metadata {0} message followed by {1} stray bytes")]
    TrailingBytes(&'static str, usize),
}

fn bad(key: &'static str, problem: &'static str) -> MetadataMessageError {
    MetadataMessageError::BadValue { key, problem }
}

/// Parses one `ut_metadata` message (the extended payload after the extended id).
pub fn parse(payload: &[u8]) -> Result<MetadataMessage, MetadataMessageError> {
    parse_shared(&Bytes::copy_from_slice(payload))
}

/// [`parse`] for a payload already in a [`Bytes`]: a data message's bytes are shared, not
/// copied.
pub fn parse_shared(payload: &Bytes) -> Result<MetadataMessage, MetadataMessageError> {
    let (root, used) = bencode::decode_prefix(payload)?;
    let dict = root
        .as_dict()
        .ok_or_else(|| MetadataMessageError::NotADict(root.type_name()))?;
    let int = |key: &'static str| -> Result<Option<i64>, MetadataMessageError> {
        match dict.iter().find(|(k, _)| *k == key.as_bytes()) {
            None => Ok(None),
            Some((_, v)) => v.as_int().map(Some).ok_or(bad(key, "not an integer")),
        }
    };
    let msg_type = int("msg_type")?.ok_or(bad("msg_type", "missing"))?;
    let piece = int("piece")?.ok_or(bad("piece", "missing"))?;
    let piece = u32::try_from(piece).map_err(|_| bad("piece", "out of range"))?;
    let rest = payload.len() - used;
    match msg_type {
        0 | 2 if rest > 0 => Err(MetadataMessageError::TrailingBytes(
            if msg_type == 0 { "request" } else { "reject" },
            rest,
        )),
        0 => Ok(MetadataMessage::Request { piece }),
        2 => Ok(MetadataMessage::Reject { piece }),
        1 => {
            let total = int("total_size")?.ok_or(bad("total_size", "missing"))?;
            let total_size = u64::try_from(total).map_err(|_| bad("total_size", "negative"))?;
            Ok(MetadataMessage::Data {
                piece,
                total_size,
                data: payload.slice(used..),
            })
        }
        _ => Err(bad("msg_type", "not 0, 1 or 2")),
    }
}

impl MetadataMessage {
    /// The payload: the bencoded dictionary, then a data message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, piece) = match self {
            MetadataMessage::Request { piece } => (0, piece),
            MetadataMessage::Data { piece, .. } => (1, piece),
            MetadataMessage::Reject { piece } => (2, piece),
        };
        let mut d = Owned::dict()
            .insert("msg_type", Owned::Int(kind))
            .insert("piece", Owned::Int(i64::from(*piece)));
        if let MetadataMessage::Data {
            total_size, data, ..
        } = self
        {
            d = d.insert(
                "total_size",
                Owned::Int((*total_size).min(i64::MAX as u64) as i64),
            );
            let mut out = d.encode();
            out.extend_from_slice(data);
            return out;
        }
        d.encode()
    }
}

/// How many 16 KiB pieces an info dictionary of `size` bytes has.
pub fn piece_count(size: u64) -> u32 {
    size.div_ceil(METADATA_PIECE_SIZE as u64)
        .try_into()
        .unwrap_or(u32::MAX)
}

/// Piece `piece` of `metadata`, or `None` past the end.
pub fn piece_of(metadata: &Bytes, piece: u32) -> Option<Bytes> {
    let start = (piece as usize).checked_mul(METADATA_PIECE_SIZE)?;
    if start >= metadata.len() {
        return None;
    }
    let end = (start + METADATA_PIECE_SIZE).min(metadata.len());
    Some(metadata.slice(start..end))
}

/// Why metadata from a peer was not accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AssemblyError {
    /// The peer announced no size, or zero.
    #[error("the peer announced no metadata size")]
    NoSize,
    /// The announced size is over [`MAX_METADATA_SIZE`].
    #[error("metadata of {size} bytes is over the {MAX_METADATA_SIZE}-byte limit")]
    TooLarge {
        /// The announced size.
        size: u64,
    },
    /// A data message that does not fit what was asked.
    #[error("metadata piece {piece}: {problem}")]
    BadPiece {
        /// The piece index.
        piece: u32,
        /// What is wrong.
        problem: &'static str,
    },
    /// The peer refused a piece.
    #[error("the peer rejected metadata piece {0}")]
    Rejected(u32),
    /// Every piece arrived but the SHA-1 is not the info-hash: the peer lied.
    #[error("metadata SHA-1 {got} does not match the info-hash")]
    HashMismatch {
        /// The hash of what arrived.
        got: InfoHash,
    },
}

/// The fetching side of `ut_metadata` for one peer: ask for every piece in order, collect
/// them, check the SHA-1 of the whole.
#[derive(Debug)]
pub struct MetadataAssembly {
    info_hash: InfoHash,
    size: u64,
    buf: Vec<u8>,
    /// Pieces asked for so far (asked in order).
    requested: u32,
    /// Pieces received so far (they must arrive in order).
    received: u32,
}

impl MetadataAssembly {
    /// Starts fetching `size` bytes (the peer's `metadata_size`) that must hash to `info_hash`.
    pub fn new(info_hash: InfoHash, size: Option<u64>) -> Result<Self, AssemblyError> {
        let size = size.filter(|&s| s > 0).ok_or(AssemblyError::NoSize)?;
        if size > MAX_METADATA_SIZE {
            return Err(AssemblyError::TooLarge { size });
        }
        Ok(MetadataAssembly {
            info_hash,
            size,
            buf: Vec::with_capacity(size as usize),
            requested: 0,
            received: 0,
        })
    }

    /// The size being fetched.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next request to send while fewer than `in_flight` are outstanding, or `None`.
    pub fn next_request(&mut self, in_flight: u32) -> Option<MetadataMessage> {
        if self.requested >= piece_count(self.size) || self.requested - self.received >= in_flight {
            return None;
        }
        let piece = self.requested;
        self.requested += 1;
        Some(MetadataMessage::Request { piece })
    }

    /// Takes a message from the peer. `Ok(Some(bytes))` once the whole dictionary arrived and
    /// hashes to the info-hash; `Ok(None)` while pieces are missing; an error drops the peer.
    pub fn on_message(&mut self, msg: MetadataMessage) -> Result<Option<Vec<u8>>, AssemblyError> {
        match msg {
            MetadataMessage::Request { .. } => Ok(None),
            MetadataMessage::Reject { piece } => Err(AssemblyError::Rejected(piece)),
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => {
                let bad = |problem| AssemblyError::BadPiece { piece, problem };
                if piece != self.received || piece >= self.requested {
                    return Err(bad("not the piece asked for next"));
                }
                if total_size != self.size {
                    return Err(bad("total_size differs from metadata_size"));
                }
                let start = piece as u64 * METADATA_PIECE_SIZE as u64;
                let want = (self.size - start).min(METADATA_PIECE_SIZE as u64);
                if data.len() as u64 != want {
                    return Err(bad("wrong length"));
                }
                self.buf.extend_from_slice(&data);
                self.received += 1;
                if self.received < piece_count(self.size) {
                    return Ok(None);
                }
                let got = InfoHash(Sha1::digest(&self.buf).into());
                if got != self.info_hash {
                    return Err(AssemblyError::HashMismatch { got });
                }
                Ok(Some(std::mem::take(&mut self.buf)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_roundtrip() {
        for m in [
            MetadataMessage::Request { piece: 3 },
            MetadataMessage::Reject { piece: 0 },
            MetadataMessage::Data {
                piece: 1,
                total_size: 20000,
                data: Bytes::from_static(b"abc"),
            },
        ] {
            assert_eq!(parse(&m.encode()).unwrap(), m);
        }
        assert_eq!(
            MetadataMessage::Request { piece: 3 }.encode(),
            b"d8:msg_typei0e5:piecei3ee"
        );
    }

    #[test]
    fn bad_messages_are_errors() {
        assert!(parse(b"").is_err());
        assert!(parse(b"li1ee").is_err());
        assert!(parse(b"d5:piecei0ee").is_err());
        assert!(parse(b"d8:msg_typei0ee").is_err());
        assert!(parse(b"d8:msg_typei7e5:piecei0ee").is_err());
        assert!(parse(b"d8:msg_typei0e5:piecei-1ee").is_err());
        assert!(parse(b"d8:msg_typei0e5:piecei0eexx").is_err());
        assert!(parse(b"d8:msg_typei1e5:piecei0ee").is_err());
        assert!(parse(b"d8:msg_typei1e5:piecei0e10:total_sizei-4ee").is_err());
        assert!(parse(b"d8:msg_type1:x5:piecei0ee").is_err());
    }

    #[test]
    fn pieces_of_metadata() {
        let m = Bytes::from(vec![7u8; METADATA_PIECE_SIZE + 10]);
        assert_eq!(piece_count(m.len() as u64), 2);
        assert_eq!(piece_of(&m, 0).unwrap().len(), METADATA_PIECE_SIZE);
        assert_eq!(piece_of(&m, 1).unwrap().len(), 10);
        assert!(piece_of(&m, 2).is_none());
        assert!(piece_of(&m, u32::MAX).is_none());
        assert_eq!(piece_count(0), 0);
        assert_eq!(piece_count(1), 1);
    }

    fn data(metadata: &Bytes, piece: u32) -> MetadataMessage {
        MetadataMessage::Data {
            piece,
            total_size: metadata.len() as u64,
            data: piece_of(metadata, piece).unwrap(),
        }
    }

    #[test]
    fn assembly_checks_the_hash() {
        let metadata = Bytes::from((0..40000u32).map(|i| i as u8).collect::<Vec<_>>());
        let hash = InfoHash(Sha1::digest(&metadata).into());
        let mut a = MetadataAssembly::new(hash, Some(metadata.len() as u64)).unwrap();
        let reqs: Vec<_> = std::iter::from_fn(|| a.next_request(2)).collect();
        assert_eq!(
            reqs,
            vec![
                MetadataMessage::Request { piece: 0 },
                MetadataMessage::Request { piece: 1 }
            ]
        );
        assert_eq!(a.on_message(data(&metadata, 0)).unwrap(), None);
        assert_eq!(
            a.next_request(2),
            Some(MetadataMessage::Request { piece: 2 })
        );
        assert_eq!(a.next_request(2), None);
        assert_eq!(a.on_message(data(&metadata, 1)).unwrap(), None);
        assert_eq!(
            a.on_message(data(&metadata, 2)).unwrap().unwrap(),
            metadata.to_vec()
        );

        let mut liar = MetadataAssembly::new(InfoHash([9; 20]), Some(100)).unwrap();
        liar.next_request(1);
        let short = Bytes::from(vec![1u8; 100]);
        assert!(matches!(
            liar.on_message(data(&short, 0)),
            Err(AssemblyError::HashMismatch { .. })
        ));
    }

    #[test]
    fn assembly_refuses_what_was_not_asked() {
        let h = InfoHash([0; 20]);
        assert_eq!(
            MetadataAssembly::new(h, Some(4 << 30)).unwrap_err(),
            AssemblyError::TooLarge { size: 4 << 30 }
        );
        assert_eq!(
            MetadataAssembly::new(h, None).unwrap_err(),
            AssemblyError::NoSize
        );
        let mut a = MetadataAssembly::new(h, Some(20000)).unwrap();
        let m = Bytes::from(vec![0u8; 20000]);
        assert!(a.on_message(data(&m, 0)).is_err(), "not requested yet");
        a.next_request(4);
        assert!(a.on_message(data(&m, 1)).is_err(), "out of order");
        let wrong_total = MetadataMessage::Data {
            piece: 0,
            total_size: 5,
            data: piece_of(&m, 0).unwrap(),
        };
        assert!(a.on_message(wrong_total).is_err());
        let short = MetadataMessage::Data {
            piece: 0,
            total_size: 20000,
            data: Bytes::from_static(b"x"),
        };
        assert!(a.on_message(short).is_err());
        assert_eq!(
            a.on_message(MetadataMessage::Reject { piece: 0 }),
            Err(AssemblyError::Rejected(0))
        );
    }

    proptest::proptest! {
        #[test]
        fn random_payloads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            if let Ok(m) = parse(&bytes) {
                let mut a = MetadataAssembly::new(InfoHash([0; 20]), Some(40000)).unwrap();
                a.next_request(3);
                let _ = a.on_message(m);
            }
        }
    }
}
