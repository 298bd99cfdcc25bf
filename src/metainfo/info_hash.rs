//! The 20-byte v1 info-hash.

use std::fmt;

/// The SHA-1 of a torrent's info dictionary (BEP 3), the swarm's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// The SHA-1 of `bytes` (the info dictionary exactly as it stands in the file).
    pub fn of(bytes: &[u8]) -> Self {
        use sha1::{Digest, Sha1};
        InfoHash(Sha1::digest(bytes).into())
    }

    /// Lower-case hexadecimal, 40 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 40 hexadecimal digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(InfoHash(out))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        let h = InfoHash::of(b"abc");
        assert_eq!(h.to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(InfoHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(InfoHash::from_hex("zz"), None);
    }
}
