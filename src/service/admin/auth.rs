//! The admin API's bearer token: read from `--admin-token-file`, checked in constant time.

use std::path::Path;

use ring::digest::{digest, SHA256};

/// The shortest token accepted from a file.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token. Its bytes are not printed by `Debug`.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file cannot be read.
    #[error("cannot read admin token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token is too short, or not printable ASCII.
    #[error("admin token file {path}: the token must be at least {MIN_TOKEN_LEN} printable ASCII characters without spaces (e.g. `openssl rand -hex 32`)")]
    Unusable {
        /// The file.
        path: String,
    },
}

impl Token {
    /// A token from its text; `None` if it is shorter than [`MIN_TOKEN_LEN`] or holds anything
    /// but visible ASCII (a header value could not carry it).
    pub fn new(text: &str) -> Option<Token> {
        let ok = text.len() >= MIN_TOKEN_LEN && text.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Token(text.as_bytes().to_vec()))
    }

    /// Reads a token from a file: its first line, surrounding whitespace trimmed.
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let line = text.lines().next().unwrap_or_default().trim();
        Token::new(line).ok_or_else(|| TokenError::Unusable {
            path: path.display().to_string(),
        })
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`. The comparison takes
    /// the same time wherever the first difference is, and whatever the candidate's length:
    /// both sides are hashed and the digests compared without an early exit.
    pub fn matches_header(&self, header: Option<&[u8]>) -> bool {
        let Some(value) = header else { return false };
        let value = value.trim_ascii();
        let scheme_ok = value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ");
        let candidate = if scheme_ok {
            value[7..].trim_ascii_start()
        } else {
            &[][..]
        };
        let equal = constant_time_eq(
            digest(&SHA256, candidate).as_ref(),
            digest(&SHA256, &self.0).as_ref(),
        );
        scheme_ok & equal
    }
}

/// Equality of two equally long digests without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_headers_match_only_the_token() {
        let t = Token::new("0123456789abcdef-secret").unwrap();
        assert!(t.matches_header(Some(b"Bearer 0123456789abcdef-secret")));
        assert!(t.matches_header(Some(b"bearer   0123456789abcdef-secret ")));
        assert!(!t.matches_header(None));
        assert!(!t.matches_header(Some(b"Bearer 0123456789abcdef-secreT")));
        assert!(!t.matches_header(Some(b"Bearer 0123456789abcdef-secret2")));
        assert!(!t.matches_header(Some(b"Bearer ")));
        assert!(!t.matches_header(Some(b"Basic 0123456789abcdef-secret")));
        assert!(!t.matches_header(Some(b"0123456789abcdef-secret")));
        assert!(!t.matches_header(Some(b"")));
    }

    #[test]
    fn tokens_must_be_long_and_printable() {
        assert!(Token::new("short").is_none());
        assert!(Token::new("sixteen chars ok").is_none(), "spaces");
        assert!(Token::new("0123456789abcdef").is_some());
        assert_eq!(
            format!("{:?}", Token::new("0123456789abcdef")),
            "Some(Token(..))"
        );
    }

    #[test]
    fn token_files_are_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "  0123456789abcdef0123\n").unwrap();
        let t = Token::from_file(&good).unwrap();
        assert!(t.matches_header(Some(b"Bearer 0123456789abcdef0123")));
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "\n").unwrap();
        assert!(matches!(
            Token::from_file(&bad),
            Err(TokenError::Unusable { .. })
        ));
        assert!(matches!(
            Token::from_file(&dir.path().join("missing")),
            Err(TokenError::Read { .. })
        ));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
