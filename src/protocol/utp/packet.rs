//! The uTP packet format (BEP 29): a 20-byte header, an extension chain (only selective ack,
//! type 1, is understood; others are skipped) and the payload.

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 20;
/// The protocol version in every packet's low nibble.
pub const VERSION: u8 = 1;
/// Largest selective-ack bitmask kept (256 packets past `ack_nr + 1`); longer ones are cut.
pub const MAX_SACK_BYTES: usize = 32;

/// The five packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Payload bytes (`ST_DATA`).
    Data = 0,
    /// End of the sender's stream, at this packet's `seq_nr` (`ST_FIN`).
    Fin = 1,
    /// An acknowledgement without payload (`ST_STATE`).
    State = 2,
    /// Ends the connection at once (`ST_RESET`).
    Reset = 3,
    /// Opens a connection (`ST_SYN`).
    Syn = 4,
}

impl PacketType {
    fn from_nibble(n: u8) -> Option<PacketType> {
        Some(match n {
            0 => PacketType::Data,
            1 => PacketType::Fin,
            2 => PacketType::State,
            3 => PacketType::Reset,
            4 => PacketType::Syn,
            _ => return None,
        })
    }
}

/// Why a datagram is not a uTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer than 20 bytes, or an extension running past the end.
    #[error("truncated uTP packet")]
    Truncated,
    /// Not version 1.
    #[error("uTP version {0} (only 1 is spoken)")]
    Version(u8),
    /// A type nibble above 4.
    #[error("unknown uTP packet type {0}")]
    Type(u8),
    /// A selective ack whose length is not a positive multiple of 4.
    #[error("selective ack of {0} bytes")]
    SackLength(usize),
}

/// Whether a datagram's first byte is a uTP version-1 header (type 0..=4): what tells uTP
/// from a DHT message (a bencoded dictionary starts with `d`) on a shared socket.
pub fn looks_like_utp(datagram: &[u8]) -> bool {
    datagram
        .first()
        .is_some_and(|&b| b & 0x0f == VERSION && b >> 4 <= 4)
}

/// A selective ack: bit `i` (byte `i / 8`, least significant bit first) says packet
/// `ack_nr + 2 + i` was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sack {
    bytes: [u8; MAX_SACK_BYTES],
    len: u8,
}

impl Sack {
    /// An empty mask of `len` bytes (4 to [`MAX_SACK_BYTES`], a multiple of 4).
    pub fn new(len: usize) -> Sack {
        let len = len.clamp(4, MAX_SACK_BYTES) / 4 * 4;
        Sack {
            bytes: [0; MAX_SACK_BYTES],
            len: len as u8,
        }
    }

    /// Marks packet `ack_nr + 2 + i` received (ignored past the mask).
    pub fn set(&mut self, i: usize) {
        if i < self.len() * 8 {
            self.bytes[i / 8] |= 1 << (i % 8);
        }
    }

    /// Whether packet `ack_nr + 2 + i` is marked.
    pub fn get(&self, i: usize) -> bool {
        i < self.len() * 8 && self.bytes[i / 8] & (1 << (i % 8)) != 0
    }

    /// Bytes in the mask.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the mask has no byte (never true for a constructed one).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mask's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }
}

/// A packet's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The packet type.
    pub kind: PacketType,
    /// The receiver's connection id (a SYN carries the sender's receive id).
    pub connection_id: u16,
    /// The sender's clock when sending, microseconds (wraps).
    pub timestamp_us: u32,
    /// The sender's last measured one-way delay: its receive time minus our timestamp.
    pub timestamp_diff_us: u32,
    /// Bytes the sender can still receive.
    pub wnd_size: u32,
    /// This packet's sequence number (for a STATE, the next one to be sent).
    pub seq_nr: u16,
    /// The last packet received in order.
    pub ack_nr: u16,
    /// Packets received past a hole.
    pub sack: Option<Sack>,
}

impl Header {
    /// Decodes a datagram into its header and payload.
    pub fn decode(datagram: &[u8]) -> Result<(Header, &[u8]), PacketError> {
        if datagram.len() < HEADER_LEN {
            return Err(PacketError::Truncated);
        }
        let version = datagram[0] & 0x0f;
        if version != VERSION {
            return Err(PacketError::Version(version));
        }
        let kind =
            PacketType::from_nibble(datagram[0] >> 4).ok_or(PacketError::Type(datagram[0] >> 4))?;
        let u16_at = |i: usize| u16::from_be_bytes([datagram[i], datagram[i + 1]]);
        let u32_at = |i: usize| {
            u32::from_be_bytes([
                datagram[i],
                datagram[i + 1],
                datagram[i + 2],
                datagram[i + 3],
            ])
        };
        let mut header = Header {
            kind,
            connection_id: u16_at(2),
            timestamp_us: u32_at(4),
            timestamp_diff_us: u32_at(8),
            wnd_size: u32_at(12),
            seq_nr: u16_at(16),
            ack_nr: u16_at(18),
            sack: None,
        };
        let mut next = datagram[1];
        let mut at = HEADER_LEN;
        while next != 0 {
            if datagram.len() < at + 2 {
                return Err(PacketError::Truncated);
            }
            let (ext, len) = (next, usize::from(datagram[at + 1]));
            next = datagram[at];
            at += 2;
            if datagram.len() < at + len {
                return Err(PacketError::Truncated);
            }
            if ext == 1 {
                if len == 0 || len % 4 != 0 {
                    return Err(PacketError::SackLength(len));
                }
                let mut sack = Sack::new(len.min(MAX_SACK_BYTES));
                let kept = sack.len();
                sack.bytes[..kept].copy_from_slice(&datagram[at..at + kept]);
                header.sack = Some(sack);
            }
            at += len;
        }
        Ok((header, &datagram[at..]))
    }

    /// Bytes the header takes when encoded (with its extension).
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.sack.map_or(0, |s| 2 + s.len())
    }

    /// Appends the header (and its selective ack) to `out`; the payload follows.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push((self.kind as u8) << 4 | VERSION);
        out.push(if self.sack.is_some() { 1 } else { 0 });
        out.extend_from_slice(&self.connection_id.to_be_bytes());
        out.extend_from_slice(&self.timestamp_us.to_be_bytes());
        out.extend_from_slice(&self.timestamp_diff_us.to_be_bytes());
        out.extend_from_slice(&self.wnd_size.to_be_bytes());
        out.extend_from_slice(&self.seq_nr.to_be_bytes());
        out.extend_from_slice(&self.ack_nr.to_be_bytes());
        if let Some(s) = &self.sack {
            out.push(0);
            out.push(s.len() as u8);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(kind: PacketType) -> Header {
        Header {
            kind,
            connection_id: 0x1234,
            timestamp_us: 0xdead_beef,
            timestamp_diff_us: 7,
            wnd_size: 1 << 20,
            seq_nr: 65535,
            ack_nr: 3,
            sack: None,
        }
    }

    #[test]
    fn a_syn_encodes_as_bep_29_lays_it_out() {
        let mut out = Vec::new();
        header(PacketType::Syn).encode(&mut out);
        assert_eq!(
            out,
            [
                0x41, 0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7, 0, 0x10, 0, 0, 0xff, 0xff,
                0, 3
            ]
        );
        assert!(looks_like_utp(&out));
    }

    #[test]
    fn a_sack_round_trips_and_its_bits_are_lsb_first() {
        let mut h = header(PacketType::State);
        let mut s = Sack::new(4);
        s.set(0);
        s.set(9);
        h.sack = Some(s);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(&out[20..], &[0, 4, 0b0000_0001, 0b0000_0010, 0, 0]);
        let (d, payload) = Header::decode(&out).unwrap();
        assert_eq!(d, h);
        assert!(payload.is_empty());
        let s = d.sack.unwrap();
        assert!(s.get(0) && s.get(9) && !s.get(1) && !s.get(32));
    }

    #[test]
    fn unknown_extensions_are_skipped() {
        let mut out = Vec::new();
        header(PacketType::Data).encode(&mut out);
        out[1] = 2; // extension 2 (close reason style), 2 bytes, then the payload
        out.extend_from_slice(&[0, 2, 9, 9, b'x']);
        let (h, payload) = Header::decode(&out).unwrap();
        assert_eq!(h.sack, None);
        assert_eq!(payload, b"x");
    }

    #[test]
    fn bad_packets_are_refused() {
        let mut out = Vec::new();
        header(PacketType::Data).encode(&mut out);
        assert_eq!(Header::decode(&out[..19]), Err(PacketError::Truncated));
        let mut v2 = out.clone();
        v2[0] = 0x02;
        assert_eq!(Header::decode(&v2), Err(PacketError::Version(2)));
        let mut t = out.clone();
        t[0] = 0x51;
        assert_eq!(Header::decode(&t), Err(PacketError::Type(5)));
        let mut ext = out.clone();
        ext[1] = 1;
        assert_eq!(Header::decode(&ext), Err(PacketError::Truncated));
        ext.extend_from_slice(&[0, 3, 1, 2, 3]);
        assert_eq!(Header::decode(&ext), Err(PacketError::SackLength(3)));
        assert!(!looks_like_utp(b"d1:ad2:id20:"));
        assert!(!looks_like_utp(b""));
    }

    #[test]
    fn a_long_sack_is_cut_to_the_kept_length() {
        let mut out = Vec::new();
        header(PacketType::State).encode(&mut out);
        out[1] = 1;
        out.extend_from_slice(&[0, 64]);
        out.extend_from_slice(&[0xff; 64]);
        let (h, payload) = Header::decode(&out).unwrap();
        assert_eq!(h.sack.unwrap().len(), MAX_SACK_BYTES);
        assert!(payload.is_empty());
    }

    fn any_kind() -> impl Strategy<Value = PacketType> {
        prop_oneof![
            Just(PacketType::Data),
            Just(PacketType::Fin),
            Just(PacketType::State),
            Just(PacketType::Reset),
            Just(PacketType::Syn),
        ]
    }

    proptest! {
        #[test]
        fn every_header_round_trips(
            kind in any_kind(),
            id: u16, ts: u32, diff: u32, wnd: u32, seq: u16, ack: u16,
            sack in proptest::option::of((1usize..=8, proptest::collection::vec(any::<u8>(), 32))),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let sack = sack.map(|(words, bits)| {
                let mut s = Sack::new(words * 4);
                for i in 0..s.len() * 8 {
                    if bits[i / 8] & (1 << (i % 8)) != 0 {
                        s.set(i);
                    }
                }
                s
            });
            let h = Header { kind, connection_id: id, timestamp_us: ts, timestamp_diff_us: diff,
                wnd_size: wnd, seq_nr: seq, ack_nr: ack, sack };
            let mut out = Vec::new();
            h.encode(&mut out);
            prop_assert_eq!(out.len(), h.encoded_len());
            out.extend_from_slice(&payload);
            let (d, p) = Header::decode(&out).unwrap();
            prop_assert_eq!(d, h);
            prop_assert_eq!(p, &payload[..]);
        }

        #[test]
        fn junk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok((h, p)) = Header::decode(&bytes) {
                prop_assert!(p.len() + HEADER_LEN <= bytes.len());
                prop_assert!(looks_like_utp(&bytes));
                let _ = h;
            }
        }
    }
}
