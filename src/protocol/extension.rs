//! The BEP 10 extension protocol handshake (extended message id 0).
//!
//! Both peers send one after the BitTorrent handshake when both set the extension-protocol
//! reserved bit. It maps extension names to the message ids the *sender* wants to receive them
//! under (`m`) and carries a few facts about the sender: client name (`v`), request queue depth
//! (`reqq`), the receiver's address as the sender sees it (`yourip`) and the sender's listen
//! port (`p`). Unknown keys are ignored, as BEP 10 requires.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use thiserror::Error;

use crate::bencode::{self, Owned, Value};
use crate::protocol::Message;

/// The extended message id of the extension handshake.
pub const EXTENDED_HANDSHAKE_ID: u8 = 0;

/// What is wrong with a peer's extension handshake.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ExtensionError {
    /// The payload is not valid bencode.
    #[error("extension handshake is not valid bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// The payload is valid bencode but not a dictionary.
    #[error("extension handshake is a {0}, not a dictionary")]
    NotADict(&'static str),
    /// A known key holds a value of the wrong type or out of range.
    #[error("extension handshake key {key:?}: {problem}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
}

/// A BEP 10 extension handshake.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ExtendedHandshake {
    /// `m`: extension name → extended message id the sender receives it under. An id of 0
    /// means the sender disables that extension (it is kept here so the caller can see it).
    pub extensions: BTreeMap<String, u8>,
    /// `v`: client name and version (invalid UTF-8 is replaced, it is only for display).
    pub client: Option<String>,
    /// `reqq`: how many outstanding requests the sender keeps without dropping any.
    pub reqq: Option<u32>,
    /// `yourip`: the receiver's address as the sender sees it.
    pub your_ip: Option<IpAddr>,
    /// `p`: the sender's TCP listen port.
    pub port: Option<u16>,
    /// `metadata_size`: size of the info dictionary in bytes (BEP 9), when the sender has it.
    pub metadata_size: Option<u64>,
}

fn bad(key: &'static str, problem: impl Into<String>) -> ExtensionError {
    ExtensionError::BadValue {
        key,
        problem: problem.into(),
    }
}

fn int_in<T: TryFrom<i64>>(
    key: &'static str,
    v: &Value<'_>,
    what: &str,
) -> Result<T, ExtensionError> {
    let i = v
        .as_int()
        .ok_or_else(|| bad(key, format!("expected an integer, got a {}", v.type_name())))?;
    T::try_from(i).map_err(|_| bad(key, format!("{i} is not {what}")))
}

impl ExtendedHandshake {
    /// seedbox's handshake: client name, `reqq`, and optionally the listen port and the
    /// address the peer connected from.
    pub fn seedbox(reqq: u32, port: Option<u16>, your_ip: Option<IpAddr>) -> Self {
        ExtendedHandshake {
            client: Some(format!("seedbox {}", env!("CARGO_PKG_VERSION"))),
            reqq: Some(reqq),
            port,
            your_ip,
            ..ExtendedHandshake::default()
        }
    }

    /// The id under which the sender of this handshake wants to receive extension `name`, or
    /// `None` when it does not support it (absent or disabled with id 0).
    pub fn id_for(&self, name: &str) -> Option<u8> {
        self.extensions.get(name).copied().filter(|&id| id != 0)
    }

    /// The bencoded dictionary (keys sorted; absent fields omitted; `m` always present).
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Owned::dict();
        for (name, id) in &self.extensions {
            m = m.insert(name, Owned::Int(i64::from(*id)));
        }
        let mut d = Owned::dict().insert("m", m);
        if let Some(v) = &self.client {
            d = d.insert("v", Owned::Bytes(v.as_bytes().to_vec()));
        }
        if let Some(reqq) = self.reqq {
            d = d.insert("reqq", Owned::Int(i64::from(reqq)));
        }
        if let Some(ip) = self.your_ip {
            let bytes = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            d = d.insert("yourip", Owned::Bytes(bytes));
        }
        if let Some(p) = self.port {
            d = d.insert("p", Owned::Int(i64::from(p)));
        }
        if let Some(size) = self.metadata_size {
            d = d.insert(
                "metadata_size",
                Owned::Int(size.min(i64::MAX as u64) as i64),
            );
        }
        d.encode()
    }

    /// The extended message carrying this handshake.
    pub fn to_message(&self) -> Message {
        Message::Extended {
            id: EXTENDED_HANDSHAKE_ID,
            payload: Bytes::from(self.encode()),
        }
    }

    /// Parses a handshake payload (the bytes after the extended id). Unknown keys are ignored;
    /// a known key with a value of the wrong type or range is an error.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        let root = bencode::decode(payload)?;
        let dict = root
            .as_dict()
            .ok_or_else(|| ExtensionError::NotADict(root.type_name()))?;
        let mut hs = ExtendedHandshake::default();
        let get = |key: &str| {
            dict.iter()
                .find(|(k, _)| *k == key.as_bytes())
                .map(|(_, v)| v)
        };
        if let Some(m) = get("m") {
            let entries = m.as_dict().ok_or_else(|| {
                bad(
                    "m",
                    format!("expected a dictionary, got a {}", m.type_name()),
                )
            })?;
            for (name, id) in entries {
                let id: u8 = int_in("m", id, "an extension id in 0..=255")?;
                hs.extensions
                    .insert(String::from_utf8_lossy(name).into_owned(), id);
            }
        }
        if let Some(v) = get("v") {
            let name = v.as_bytes().ok_or_else(|| {
                bad(
                    "v",
                    format!("expected a byte string, got a {}", v.type_name()),
                )
            })?;
            hs.client = Some(String::from_utf8_lossy(name).into_owned());
        }
        if let Some(reqq) = get("reqq") {
            hs.reqq = Some(int_in("reqq", reqq, "a queue depth in 0..=4294967295")?);
        }
        if let Some(ip) = get("yourip") {
            let b = ip.as_bytes().ok_or_else(|| {
                bad(
                    "yourip",
                    format!("expected a byte string, got a {}", ip.type_name()),
                )
            })?;
            hs.your_ip = Some(match b.len() {
                4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                16 => {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(b);
                    IpAddr::V6(Ipv6Addr::from(o))
                }
                n => return Err(bad("yourip", format!("{n} bytes, expected 4 or 16"))),
            });
        }
        if let Some(p) = get("p") {
            hs.port = Some(int_in("p", p, "a port in 0..=65535")?);
        }
        if let Some(size) = get("metadata_size") {
            hs.metadata_size = Some(int_in("metadata_size", size, "a non-negative size")?);
        }
        Ok(hs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_libtorrent_style_handshake() {
        let payload = b"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi500e1:v17:libtorrent 2.0.10\
6:yourip4:\x7f\x00\x00\x01e";
        let hs = ExtendedHandshake::parse(payload).unwrap();
        assert_eq!(hs.id_for("ut_metadata"), Some(2));
        assert_eq!(hs.id_for("ut_pex"), Some(1));
        assert_eq!(hs.id_for("lt_donthave"), None);
        assert_eq!(hs.client.as_deref(), Some("libtorrent 2.0.10"));
        assert_eq!(hs.reqq, Some(500));
        assert_eq!(hs.port, Some(6881));
        assert_eq!(hs.your_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(hs.metadata_size, Some(31235));
    }

    #[test]
    fn roundtrip_and_sorted_keys() {
        let mut hs =
            ExtendedHandshake::seedbox(250, Some(51413), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        hs.extensions.insert("ut_pex".into(), 3);
        hs.metadata_size = Some(1234);
        let bytes = hs.encode();
        assert!(
            bytes.starts_with(b"d1:md6:ut_pexi3ee13:metadata_sizei1234e1:pi51413e4:reqqi250e1:v")
        );
        assert_eq!(ExtendedHandshake::parse(&bytes).unwrap(), hs);
        let Message::Extended { id, payload } = hs.to_message() else {
            panic!("not extended");
        };
        assert_eq!(id, EXTENDED_HANDSHAKE_ID);
        assert_eq!(&payload[..], &bytes[..]);
    }

    #[test]
    fn empty_dict_and_unknown_keys_are_fine() {
        assert_eq!(
            ExtendedHandshake::parse(b"de").unwrap(),
            ExtendedHandshake::default()
        );
        let hs = ExtendedHandshake::parse(b"d1:ei1e4:zzzzli1ei2ee1:pi1ee").unwrap();
        assert_eq!(hs.port, Some(1));
        assert!(hs.extensions.is_empty());
    }

    #[test]
    fn disabled_extension_has_no_id() {
        let hs = ExtendedHandshake::parse(b"d1:md6:ut_pexi0eee").unwrap();
        assert_eq!(hs.extensions.get("ut_pex"), Some(&0));
        assert_eq!(hs.id_for("ut_pex"), None);
    }

    fn err(payload: &[u8]) -> String {
        ExtendedHandshake::parse(payload).unwrap_err().to_string()
    }

    #[test]
    fn malformed_handshakes_are_errors_naming_the_problem() {
        assert!(err(b"d1:m").contains("not valid bencode"));
        assert!(err(b"dexx").contains("not valid bencode"));
        assert_eq!(
            err(b"li1ee"),
            "extension handshake is a list, not a dictionary"
        );
        assert!(err(b"d1:mi1ee").contains("\"m\": expected a dictionary"));
        assert!(err(b"d1:md6:ut_pex3:abcee").contains("\"m\": expected an integer"));
        assert!(err(b"d1:md6:ut_pexi256eee").contains("256 is not an extension id"));
        assert!(err(b"d1:md6:ut_pexi-1eee").contains("-1 is not"));
        assert!(err(b"d1:vi1ee").contains("\"v\": expected a byte string"));
        assert!(err(b"d4:reqqi-5ee").contains("\"reqq\""));
        assert!(err(b"d6:yourip3:abce").contains("3 bytes, expected 4 or 16"));
        assert!(err(b"d6:youripi1ee").contains("\"yourip\""));
        assert!(err(b"d1:pi65536ee").contains("65536 is not a port"));
        assert!(err(b"d13:metadata_sizei-1ee").contains("metadata_size"));
    }

    #[test]
    fn invalid_utf8_client_name_is_kept_lossily() {
        let hs = ExtendedHandshake::parse(b"d1:v2:\xff\xfee").unwrap();
        assert_eq!(hs.client.as_deref(), Some("\u{fffd}\u{fffd}"));
    }

    proptest::proptest! {
        #[test]
        fn random_payloads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            let _ = ExtendedHandshake::parse(&bytes);
        }
    }
}
