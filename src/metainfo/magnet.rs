//! Magnet links (BEP 9 form: `magnet:?xt=urn:btih:...&dn=...&tr=...`): building them, and
//! [`parse`] for links from users (untrusted: never panics).

use std::net::SocketAddr;

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use thiserror::Error;

use super::InfoHash;

/// Characters left as they are in magnet parameters (RFC 3986 unreserved).
pub(super) const PARAM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds a magnet link from the v1 info-hash (and v2 where present), a display name and
/// trackers.
pub fn magnet_link(
    info_hash: &InfoHash,
    info_hash_v2: Option<&[u8; 32]>,
    name: &str,
    trackers: &[String],
) -> String {
    let mut s = format!("magnet:?xt=urn:btih:{}", info_hash.to_hex());
    if let Some(v2) = info_hash_v2 {
        s.push_str("&xt=urn:btmh:1220");
        s.push_str(&hex::encode(v2));
    }
    s.push_str("&dn=");
    s.extend(utf8_percent_encode(name, PARAM));
    for tr in trackers {
        s.push_str("&tr=");
        s.extend(utf8_percent_encode(tr, PARAM));
    }
    s
}

/// What a magnet link names: the torrent and where to look for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    /// `xt=urn:btih:` (40 hex digits or 32 base32 characters).
    pub info_hash: InfoHash,
    /// `dn`: the display name, when given.
    pub name: Option<String>,
    /// `tr`: tracker URLs, in order.
    pub trackers: Vec<String>,
    /// `x.pe`: peers to ask directly (`IP:PORT`; names that are not addresses are skipped).
    pub peers: Vec<SocketAddr>,
    /// `ws`: web seed URLs (BEP 19).
    pub web_seeds: Vec<String>,
}

/// What is wrong with a magnet link.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MagnetError {
    /// It does not start with `magnet:?`.
    #[error("not a magnet link (it must start with `magnet:?`)")]
    NotAMagnet,
    /// No `xt=urn:btih:` parameter.
    #[error("the magnet link has no BitTorrent info-hash (xt=urn:btih:...)")]
    NoInfoHash,
    /// A `urn:btih:` value that is neither 40 hex digits nor 32 base32 characters.
    #[error(
        "bad info-hash {0:?} in the magnet link (expected 40 hex digits or 32 base32 characters)"
    )]
    BadInfoHash(String),
    /// Two different v1 info-hashes.
    #[error("the magnet link names two different info-hashes")]
    TwoInfoHashes,
    /// Parameters are limited in number, to bound the work on hostile input.
    #[error("the magnet link has more than {MAX_PARAMS} parameters")]
    TooManyParams,
}

/// Most parameters read from one link.
pub const MAX_PARAMS: usize = 1000;

fn base32_decode(s: &[u8]) -> Option<[u8; 20]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 20];
    let (mut acc, mut bits, mut n) = (0u64, 0u32, 0usize);
    for &c in s {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out[n] = (acc >> bits) as u8;
            n += 1;
        }
    }
    Some(out)
}

/// Parses a magnet link. Unknown parameters are ignored; `tr`, `x.pe` and `ws` may repeat.
pub fn parse(link: &[u8]) -> Result<Magnet, MagnetError> {
    let query = link
        .strip_prefix(b"magnet:?")
        .ok_or(MagnetError::NotAMagnet)?;
    let mut info_hash = None;
    let mut m = Magnet {
        info_hash: InfoHash([0; 20]),
        name: None,
        trackers: Vec::new(),
        peers: Vec::new(),
        web_seeds: Vec::new(),
    };
    for (i, param) in query.split(|&b| b == b'&').enumerate() {
        if i >= MAX_PARAMS {
            return Err(MagnetError::TooManyParams);
        }
        let Some(eq) = param.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, raw) = (&param[..eq], &param[eq + 1..]);
        let value = percent_decode(raw).decode_utf8_lossy().into_owned();
        match key {
            b"xt" => {
                let Some(h) = value.strip_prefix("urn:btih:") else {
                    continue; // urn:btmh (v2) and others: not needed for a v1 fetch
                };
                let hash = if h.len() == 40 {
                    InfoHash::from_hex(h)
                } else {
                    base32_decode(h.as_bytes()).map(InfoHash)
                }
                .ok_or_else(|| MagnetError::BadInfoHash(h.chars().take(64).collect()))?;
                if info_hash.is_some_and(|old| old != hash) {
                    return Err(MagnetError::TwoInfoHashes);
                }
                info_hash = Some(hash);
            }
            b"dn" => m.name = Some(value),
            b"tr" => m.trackers.push(value),
            b"ws" => m.web_seeds.push(value),
            b"x.pe" => {
                if let Ok(addr) = value.parse() {
                    m.peers.push(addr);
                }
            }
            _ => {}
        }
    }
    m.info_hash = info_hash.ok_or(MagnetError::NoInfoHash)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_magnet_link_builds_and_more() {
        let h = InfoHash([0xab; 20]);
        let link = magnet_link(&h, None, "a b&c", &["http://t/announce?x=1".into()]);
        let m = parse(link.as_bytes()).unwrap();
        assert_eq!(m.info_hash, h);
        assert_eq!(m.name.as_deref(), Some("a b&c"));
        assert_eq!(m.trackers, vec!["http://t/announce?x=1".to_string()]);
        let more = format!(
            "{link}&x.pe=127.0.0.1:6881&x.pe=[::1]:7&x.pe=host:1&ws=http%3A%2F%2Fw%2F&xt=urn:btmh:1220ff&zz"
        );
        let m = parse(more.as_bytes()).unwrap();
        assert_eq!(
            m.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "[::1]:7".parse().unwrap()
            ]
        );
        assert_eq!(m.web_seeds, vec!["http://w/".to_string()]);
    }

    #[test]
    fn base32_info_hashes() {
        // 20 bytes of 0x00 ... and the base32 of the hex below.
        let m = parse(b"magnet:?xt=urn:btih:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(m.info_hash, InfoHash([0; 20]));
        let m = parse(b"magnet:?xt=urn:btih:77777777777777777777777777777777").unwrap();
        assert_eq!(m.info_hash, InfoHash([0xff; 20]));
    }

    #[test]
    fn bad_links_are_errors() {
        assert_eq!(parse(b"http://x"), Err(MagnetError::NotAMagnet));
        assert_eq!(parse(b"magnet:?dn=x"), Err(MagnetError::NoInfoHash));
        assert!(matches!(
            parse(b"magnet:?xt=urn:btih:zz"),
            Err(MagnetError::BadInfoHash(_))
        ));
        let two = format!(
            "magnet:?xt=urn:btih:{}&xt=urn:btih:{}",
            "a".repeat(40),
            "b".repeat(40)
        );
        assert_eq!(parse(two.as_bytes()), Err(MagnetError::TwoInfoHashes));
        let many = format!("magnet:?{}", "a=b&".repeat(2000));
        assert_eq!(parse(many.as_bytes()), Err(MagnetError::TooManyParams));
    }

    proptest::proptest! {
        #[test]
        fn random_links_never_panic(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut link = b"magnet:?".to_vec();
            link.extend_from_slice(&tail);
            let _ = parse(&link);
            let _ = parse(&tail);
        }
    }

    #[test]
    fn encodes_name_and_trackers() {
        let h = InfoHash([0xab; 20]);
        let m = magnet_link(&h, None, "a b&c", &["http://t/announce?x=1".into()]);
        assert_eq!(
            m,
            format!(
                "magnet:?xt=urn:btih:{}&dn=a%20b%26c&tr=http%3A%2F%2Ft%2Fannounce%3Fx%3D1",
                "ab".repeat(20)
            )
        );
    }
}
