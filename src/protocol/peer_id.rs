//! The 20-byte peer id.

use std::fmt;

/// A peer's 20-byte id. seedbox's own use the Azureus style prefix `-SB0100-`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

/// The Azureus-style client prefix of seedbox's peer ids.
pub const CLIENT_PREFIX: &[u8; 8] = b"-SB0100-";

impl PeerId {
    /// A seedbox peer id: the client prefix followed by 12 random alphanumerics.
    pub fn generate(rng: &mut impl rand::Rng) -> Self {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(CLIENT_PREFIX);
        for b in &mut id[8..] {
            *b = ALPHABET[rng.gen_range(0..ALPHABET.len())];
        }
        PeerId(id)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PeerId({})",
            String::from_utf8_lossy(&self.0).escape_debug()
        )
    }
}
