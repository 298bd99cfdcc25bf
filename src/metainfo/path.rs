//! File names from torrents: the rules that keep a torrent inside its data folder.

use std::path::PathBuf;

/// Why a path component is unsafe, or `None` when it is fine.
///
/// A component must be a single, ordinary file name: not empty, not `.` or `..`, and free of
/// `/`, `\` and NUL (so it can be neither absolute nor a hidden traversal).
pub fn component_problem(component: &[u8]) -> Option<&'static str> {
    match component {
        b"" => Some("empty path component"),
        b"." => Some("`.` path component"),
        b".." => Some("`..` path component escapes the data folder"),
        c if c.contains(&b'/') => Some("path component holds `/` (absolute or nested path)"),
        c if c.contains(&b'\\') => Some("path component holds `\\`"),
        c if c.contains(&0) => Some("path component holds a NUL byte"),
        _ => None,
    }
}

/// Turns validated components into a relative path.
pub fn relative_path(components: &[String]) -> PathBuf {
    components.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_every_unsafe_component() {
        for bad in [&b""[..], b".", b"..", b"/etc", b"a/b", b"a\\b", b"a\0b"] {
            assert!(component_problem(bad).is_some(), "{bad:?}");
        }
        for good in [&b"a"[..], b"...", b".hidden", b"a b", "é".as_bytes()] {
            assert_eq!(component_problem(good), None, "{good:?}");
        }
    }
}
