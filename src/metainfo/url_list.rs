//! Adding web seeds (`url-list`, BEP 19) to an existing `.torrent` without touching its info
//! dictionary, so the info-hash stays the same.

use crate::bencode::{self, Kind, Owned};

use super::{MetainfoError, Torrent};

/// The `.torrent` in `bytes` with `urls` added to its `url-list` (after those it has, without
/// duplicates). Every other key is copied byte for byte, the info dictionary included; keys
/// stay in the file's order with `url-list` at its sorted place.
pub fn add_url_list(bytes: &[u8], urls: &[String]) -> Result<Vec<u8>, MetainfoError> {
    let torrent = Torrent::from_bytes(bytes)?;
    let mut all = torrent.url_list.clone();
    for u in urls {
        if !all.contains(u) {
            all.push(u.clone());
        }
    }
    let root = bencode::decode(bytes)?;
    let Kind::Dict(entries) = &root.kind else {
        return Err(MetainfoError::NotADictionary(root.type_name()));
    };
    let list = Owned::List(all.iter().map(|u| Owned::from(u.as_str())).collect()).encode();
    let mut out = Vec::with_capacity(bytes.len() + list.len() + 16);
    out.push(b'd');
    let mut written = false;
    let put_list = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"8:url-list");
        out.extend_from_slice(&list);
    };
    for (key, value) in entries {
        if *key == b"url-list" {
            continue;
        }
        if !written && *key > &b"url-list"[..] {
            put_list(&mut out);
            written = true;
        }
        out.extend_from_slice(key.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(key);
        out.extend_from_slice(value.raw);
    }
    if !written {
        put_list(&mut out);
    }
    out.push(b'e');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::TorrentBuilder;

    #[test]
    fn web_seeds_are_added_and_the_info_hash_kept() {
        let b = TorrentBuilder {
            name: "n".into(),
            length: 5,
            piece_length: 16384,
            pieces: vec![7; 20],
            trackers: vec!["http://t/announce".into()],
            web_seeds: vec!["http://old/".into()],
            comment: Some("zz after url-list".into()),
            ..Default::default()
        };
        let bytes = b.encode();
        let before = Torrent::from_bytes(&bytes).unwrap();
        let out = add_url_list(&bytes, &["http://new/".into(), "http://old/".into()]).unwrap();
        let after = Torrent::from_bytes(&out).unwrap();
        assert_eq!(after.info_hash, before.info_hash);
        assert_eq!(after.info_bytes, before.info_bytes);
        assert_eq!(after.url_list, ["http://old/", "http://new/"]);
        assert_eq!(after.trackers(), before.trackers());
        assert_eq!(after.comment, before.comment);
        // Canonical input stays canonical: re-encoding gives the same bytes.
        let again = add_url_list(&out, &[]).unwrap();
        assert_eq!(again, out);
        let none = TorrentBuilder {
            web_seeds: vec![],
            ..b
        }
        .encode();
        let added = add_url_list(&none, &["http://w/".into()]).unwrap();
        assert_eq!(Torrent::from_bytes(&added).unwrap().url_list, ["http://w/"]);
        assert!(add_url_list(b"de", &[]).is_err());
    }
}
