//! Magnet links (BEP 9 form: `magnet:?xt=urn:btih:...&dn=...&tr=...`).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::InfoHash;

/// Characters left as they are in magnet parameters (RFC 3986 unreserved).
const PARAM: &AsciiSet = &NON_ALPHANUMERIC
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

#[cfg(test)]
mod tests {
    use super::*;

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
