//! The web site of the swarm: the `.torrent` files a box serves (`/torrents/NAME.torrent`)
//! and an index page listing them with magnet links.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::ServerError;
use crate::metainfo::{magnet_link, InfoHash, Torrent};

/// Characters kept as they are in a path segment of a link.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug)]
struct Entry {
    bytes: Arc<[u8]>,
    magnet: String,
}

/// The served `.torrent` files, by name (without `.torrent`).
#[derive(Debug, Default)]
pub struct WebTorrents {
    files: RwLock<BTreeMap<String, Entry>>,
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn clean_name(name: &str) -> &str {
    name.strip_suffix(".torrent").unwrap_or(name)
}

impl WebTorrents {
    /// Adds (or replaces) a torrent file. The magnet link comes from the file when it parses
    /// (with its trackers and v2 hash), else from `info_hash` and the name alone.
    pub fn add(&self, name: &str, bytes: Vec<u8>, info_hash: InfoHash) -> Result<(), ServerError> {
        let name = clean_name(name);
        if name.is_empty() || name.contains('/') || name.contains('\0') {
            return Err(ServerError::BadName(name.to_owned()));
        }
        let magnet = match Torrent::from_bytes(&bytes) {
            Ok(t) if t.info_hash == info_hash => t.magnet(),
            _ => magnet_link(&info_hash, None, name, &[]),
        };
        let entry = Entry {
            bytes: bytes.into(),
            magnet,
        };
        self.files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), entry);
        Ok(())
    }

    /// Removes a torrent file; returns whether it was there.
    pub fn remove(&self, name: &str) -> bool {
        self.files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(clean_name(name))
            .is_some()
    }

    /// The bytes of `NAME.torrent` (the file name as requested, `.torrent` required).
    pub fn file(&self, file_name: &str) -> Option<Arc<[u8]>> {
        let name = file_name.strip_suffix(".torrent")?;
        self.files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|e| e.bytes.clone())
    }

    /// Number of torrents served.
    pub fn len(&self) -> usize {
        self.files.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no torrent is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index page: every torrent with its download link and magnet link.
    pub fn index_html(&self) -> String {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        let mut s = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>seedbox torrents</title></head>\n<body>\n<h1>Torrents</h1>\n",
        );
        if files.is_empty() {
            s.push_str("<p>No torrents.</p>\n");
        } else {
            s.push_str("<ul>\n");
            for (name, e) in files.iter() {
                let href: String = utf8_percent_encode(name, SEGMENT).collect();
                s.push_str(&format!(
                    "<li><a href=\"/torrents/{href}.torrent\">{}</a> (<a href=\"{}\">magnet</a>)</li>\n",
                    html_escape(name),
                    html_escape(&e.magnet)
                ));
            }
            s.push_str("</ul>\n");
        }
        s.push_str("</body></html>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn index_lists_names_escaped_with_magnets() {
        let w = WebTorrents::default();
        assert!(w.index_html().contains("No torrents"));
        let name = "<i>x&\"y\"";
        w.add(
            &format!("{name}.torrent"),
            b"junk".to_vec(),
            InfoHash([0xab; 20]),
        )
        .unwrap();
        let html = w.index_html();
        assert!(!html.contains("<i>"));
        assert!(html.contains("&lt;i&gt;x&amp;&quot;y&quot;"));
        assert!(html.contains("href=\"/torrents/%3Ci%3Ex%26%22y%22.torrent\""));
        assert!(html.contains(&format!("magnet:?xt=urn:btih:{}", "ab".repeat(20))));
        assert_eq!(&*w.file(&format!("{name}.torrent")).unwrap(), b"junk");
        assert!(w.file(name).is_none());
        assert!(w.remove(name));
        assert!(w.is_empty());
    }

    #[test]
    fn refuses_bad_names() {
        let w = WebTorrents::default();
        for bad in ["", ".torrent", "a/b", "../x"] {
            assert!(w.add(bad, vec![], InfoHash([0; 20])).is_err(), "{bad:?}");
        }
    }
}
