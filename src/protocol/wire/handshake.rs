//! The 68-byte BitTorrent handshake.

use bytes::{Buf, BytesMut};

use super::WireError;
use crate::metainfo::InfoHash;
use crate::protocol::PeerId;

/// The protocol string of the handshake, preceded on the wire by its length, 19.
pub const PROTOCOL_STRING: &[u8; 19] = b"BitTorrent protocol";

/// Length of a handshake on the wire.
pub const HANDSHAKE_LEN: usize = 68;

/// The 8 reserved bytes of the handshake, where peers advertise extensions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// Fast extension (BEP 6): byte 7, bit 0x04.
    const FAST: (usize, u8) = (7, 0x04);
    /// Extension protocol (BEP 10): byte 5, bit 0x10.
    const EXTENSION: (usize, u8) = (5, 0x10);
    /// A DHT node (BEP 5): byte 7, bit 0x01.
    const DHT: (usize, u8) = (7, 0x01);

    /// The reserved bytes seedbox sends: Fast extension and extension protocol.
    pub fn seedbox() -> Self {
        Reserved::default()
            .with_fast(true)
            .with_extension_protocol(true)
    }

    fn get(&self, (byte, bit): (usize, u8)) -> bool {
        self.0[byte] & bit != 0
    }

    fn with(mut self, (byte, bit): (usize, u8), on: bool) -> Self {
        if on {
            self.0[byte] |= bit;
        } else {
            self.0[byte] &= !bit;
        }
        self
    }

    /// Whether the Fast extension (BEP 6) bit is set.
    pub fn supports_fast(&self) -> bool {
        self.get(Self::FAST)
    }

    /// Whether the extension protocol (BEP 10) bit is set.
    pub fn supports_extension_protocol(&self) -> bool {
        self.get(Self::EXTENSION)
    }

    /// Whether the DHT (BEP 5) bit is set: the peer runs a DHT node and takes a `port`
    /// message.
    pub fn supports_dht(&self) -> bool {
        self.get(Self::DHT)
    }

    /// Sets or clears the DHT bit.
    pub fn with_dht(self, on: bool) -> Self {
        self.with(Self::DHT, on)
    }

    /// Sets or clears the Fast extension bit.
    pub fn with_fast(self, on: bool) -> Self {
        self.with(Self::FAST, on)
    }

    /// Sets or clears the extension protocol bit.
    pub fn with_extension_protocol(self, on: bool) -> Self {
        self.with(Self::EXTENSION, on)
    }
}

/// A BitTorrent handshake: `\x13BitTorrent protocol`, 8 reserved bytes, info-hash, peer id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Handshake {
    /// Extension bits.
    pub reserved: Reserved,
    /// The torrent the connection is about.
    pub info_hash: InfoHash,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

impl Handshake {
    /// seedbox's handshake for `info_hash` (Fast and extension protocol advertised).
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Self {
        Handshake {
            reserved: Reserved::seedbox(),
            info_hash,
            peer_id,
        }
    }

    /// The 68 wire bytes.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = PROTOCOL_STRING.len() as u8;
        out[1..20].copy_from_slice(PROTOCOL_STRING);
        out[20..28].copy_from_slice(&self.reserved.0);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id.0);
        out
    }

    /// Parses the first 68 bytes of `buf` (bytes after them are not looked at).
    pub fn parse(buf: &[u8]) -> Result<Handshake, WireError> {
        check_prefix(buf)?;
        if buf.len() < HANDSHAKE_LEN {
            return Err(WireError::HandshakeTruncated(buf.len()));
        }
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&buf[20..28]);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&buf[28..48]);
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&buf[48..68]);
        Ok(Handshake {
            reserved: Reserved(reserved),
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
        })
    }

    /// Stream form of [`Handshake::parse`]: takes a handshake off the front of `buf` once all
    /// 68 bytes are there (`Ok(None)` before). A wrong protocol string is reported as soon as
    /// the bytes that differ arrive, without waiting for the rest.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Handshake>, WireError> {
        check_prefix(buf)?;
        if buf.len() < HANDSHAKE_LEN {
            return Ok(None);
        }
        let hs = Handshake::parse(buf)?;
        buf.advance(HANDSHAKE_LEN);
        Ok(Some(hs))
    }
}

/// Checks whatever part of `\x13BitTorrent protocol` is present in `buf`.
fn check_prefix(buf: &[u8]) -> Result<(), WireError> {
    let Some(&pstrlen) = buf.first() else {
        return Ok(());
    };
    let n = buf.len().min(20);
    if pstrlen as usize != PROTOCOL_STRING.len() || buf[1..n] != PROTOCOL_STRING[..n - 1] {
        return Err(WireError::BadProtocolString { pstrlen });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake::new(InfoHash([0xab; 20]), PeerId(*b"-SB0100-abcdefghijkl"))
    }

    #[test]
    fn encode_layout_and_roundtrip() {
        let hs = sample();
        let bytes = hs.encode();
        assert_eq!(bytes[0], 19);
        assert_eq!(&bytes[1..20], b"BitTorrent protocol");
        assert_eq!(&bytes[20..28], &[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        assert_eq!(&bytes[28..48], &[0xab; 20]);
        assert_eq!(&bytes[48..68], b"-SB0100-abcdefghijkl");
        assert_eq!(Handshake::parse(&bytes).unwrap(), hs);
    }

    #[test]
    fn reserved_bits() {
        let r = Reserved::default();
        assert!(!r.supports_fast() && !r.supports_extension_protocol());
        let r = r.with_fast(true);
        assert!(r.supports_fast() && !r.supports_extension_protocol());
        assert_eq!(r.0[7], 0x04);
        let r = r.with_extension_protocol(true).with_fast(false);
        assert!(!r.supports_fast() && r.supports_extension_protocol());
        assert_eq!(r.0, [0, 0, 0, 0, 0, 0x10, 0, 0]);
        // Other bits (e.g. DHT, byte 7 & 0x01) are left alone.
        let r = Reserved([0, 0, 0, 0, 0, 0, 0, 0x01])
            .with_fast(true)
            .with_fast(false);
        assert_eq!(r.0[7], 0x01);
        assert!(r.supports_dht());
        let r = Reserved::seedbox().with_dht(true);
        assert_eq!(r.0[7], 0x05);
        assert!(r.supports_dht() && r.supports_fast());
        assert!(!r.with_dht(false).supports_dht());
    }

    #[test]
    fn rejects_wrong_protocol_string() {
        let mut bytes = sample().encode();
        bytes[5] = b'x';
        assert_eq!(
            Handshake::parse(&bytes),
            Err(WireError::BadProtocolString { pstrlen: 19 })
        );
        let mut bytes = sample().encode();
        bytes[0] = 18;
        assert_eq!(
            Handshake::parse(&bytes),
            Err(WireError::BadProtocolString { pstrlen: 18 })
        );
    }

    #[test]
    fn rejects_truncated() {
        let bytes = sample().encode();
        assert_eq!(
            Handshake::parse(&bytes[..67]),
            Err(WireError::HandshakeTruncated(67))
        );
        assert_eq!(Handshake::parse(&[]), Err(WireError::HandshakeTruncated(0)));
    }

    #[test]
    fn stream_decode_waits_then_takes_exactly_68_bytes() {
        let bytes = sample().encode();
        let mut buf = BytesMut::new();
        for &b in &bytes[..67] {
            buf.extend_from_slice(&[b]);
            assert_eq!(Handshake::decode(&mut buf), Ok(None));
        }
        buf.extend_from_slice(&bytes[67..]);
        buf.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(Handshake::decode(&mut buf), Ok(Some(sample())));
        assert_eq!(&buf[..], &[0, 0, 0, 0]);
    }

    #[test]
    fn stream_decode_rejects_early() {
        // An HTTP request is recognised as garbage after its first byte.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert_eq!(
            Handshake::decode(&mut buf),
            Err(WireError::BadProtocolString { pstrlen: b'G' })
        );
        let mut buf = BytesMut::from(&b"\x13BitTorrent pro+"[..]);
        assert!(Handshake::decode(&mut buf).is_err());
    }
}
