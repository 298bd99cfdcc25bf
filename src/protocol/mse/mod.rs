//! Message stream encryption (MSE/PE), the obfuscated handshake libtorrent, Transmission and
//! qBittorrent speak, sans-IO: a Diffie-Hellman exchange over the spec's 768-bit prime, an
//! obfuscation header that finds its sync points within 512 bytes of random padding, and a
//! negotiated stream of either `plaintext` or `rc4` (RC4 with its first 1024 bytes
//! discarded). The info-hash is the shared key (SKEY): an initiator names it, a responder
//! finds it among everything it serves.
//!
//! [`Initiator`] and [`Responder`] take the bytes received and give the bytes to send; once
//! [`Progress::Done`], the [`Established`] stream says what to do with every byte after.
//! [`is_plain_handshake`] tells an incoming plain BitTorrent handshake from an MSE one by its
//! first bytes, as libtorrent does.

mod dh;
mod handshake;
mod rc4;

pub use handshake::{
    is_plain_handshake, skey_hash, Established, Initiator, MseError, Progress, Responder,
    StreamCipher, MAX_PAD,
};
pub use rc4::Rc4;

/// A stream method MSE can select.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CryptoMethod {
    /// After the handshake, bytes go as they are (the obfuscation header only).
    Plaintext,
    /// After the handshake, every byte is RC4-encrypted.
    Rc4,
}

impl CryptoMethod {
    /// Its bit in `crypto_provide` / `crypto_select`.
    pub const fn bit(self) -> u32 {
        match self {
            CryptoMethod::Plaintext => 0x01,
            CryptoMethod::Rc4 => 0x02,
        }
    }
}

/// Whether peers are spoken to in plain BitTorrent, MSE, or either (`--encryption`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncryptionPolicy {
    /// Incoming: plain or MSE (choosing `plaintext` when offered). Outgoing: plain.
    #[default]
    Allow,
    /// Incoming: plain or MSE (choosing `rc4` when offered). Outgoing: MSE offering both
    /// methods (no retry in plain when a peer refuses MSE).
    Prefer,
    /// MSE with `rc4` only, both ways; plain handshakes and `plaintext` are refused.
    Require,
}

impl std::str::FromStr for EncryptionPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(EncryptionPolicy::Allow),
            "prefer" => Ok(EncryptionPolicy::Prefer),
            "require" => Ok(EncryptionPolicy::Require),
            other => Err(format!(
                "unknown encryption policy {other:?} (allow, prefer or require)"
            )),
        }
    }
}

impl EncryptionPolicy {
    /// The methods a responder accepts, in the order it prefers them.
    pub fn accepted(self) -> &'static [CryptoMethod] {
        match self {
            EncryptionPolicy::Allow => &[CryptoMethod::Plaintext, CryptoMethod::Rc4],
            EncryptionPolicy::Prefer => &[CryptoMethod::Rc4, CryptoMethod::Plaintext],
            EncryptionPolicy::Require => &[CryptoMethod::Rc4],
        }
    }

    /// The `crypto_provide` bits of an initiator.
    pub fn provide(self) -> u32 {
        self.accepted().iter().fold(0, |bits, m| bits | m.bit())
    }

    /// Whether plain (unencrypted, unobfuscated) handshakes are allowed.
    pub fn allows_plain(self) -> bool {
        self != EncryptionPolicy::Require
    }

    /// Whether an outgoing connection tries MSE first.
    pub fn mse_first(self) -> bool {
        self != EncryptionPolicy::Allow
    }
}
