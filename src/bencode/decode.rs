//! The bencode decoder: borrowed values with their raw spans.

/// The deepest nesting of lists and dictionaries accepted. Real torrents nest a handful of
/// levels (a multi-file `info` is four deep); anything far deeper is hostile.
pub const MAX_DEPTH: usize = 64;

/// A decoded value together with the exact bytes it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value<'a> {
    /// The value's bytes exactly as they stand in the input (e.g. `d3:fooi1ee`).
    pub raw: &'a [u8],
    /// Byte offset of [`Value::raw`] in the decoded buffer.
    pub offset: usize,
    /// What the value is.
    pub kind: Kind<'a>,
}

/// The four bencode types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `i42e`
    Int(i64),
    /// `4:spam`
    Bytes(&'a [u8]),
    /// `l...e`
    List(Vec<Value<'a>>),
    /// `d...e`, entries in file order (unsorted and duplicate keys are kept as found).
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

/// What went wrong while decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The input ended inside a value.
    #[error("unexpected end of data (truncated)")]
    Truncated,
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte {0:#04x}")]
    UnexpectedByte(u8),
    /// Integers must be `-?[1-9][0-9]*|0` and fit in 64 bits.
    #[error("invalid integer")]
    InvalidInteger,
    /// String lengths must be plain decimal without sign or leading zeros.
    #[error("invalid string length")]
    InvalidLength,
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a byte string")]
    NonStringKey,
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Bytes after the top-level value.
    #[error("trailing data after the end of the value")]
    TrailingData,
}

/// A decoding failure with the byte offset where it was detected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bencode at byte {offset}: {kind}")]
pub struct DecodeError {
    /// Byte offset into the input.
    pub offset: usize,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

impl<'a> Value<'a> {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if it is a valid UTF-8 byte string.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary entries, if this is a dictionary.
    pub fn as_dict(&self) -> Option<&[(&'a [u8], Value<'a>)]> {
        match &self.kind {
            Kind::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Looks a key up in a dictionary (the first occurrence wins). `None` when absent or when
    /// this is not a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Int(_) => "integer",
            Kind::Bytes(_) => "byte string",
            Kind::List(_) => "list",
            Kind::Dict(_) => "dictionary",
        }
    }
}

/// Decodes exactly one value that must fill the whole buffer.
pub fn decode(buf: &[u8]) -> Result<Value<'_>, DecodeError> {
    let (value, end) = decode_prefix(buf)?;
    if end != buf.len() {
        return Err(DecodeError {
            offset: end,
            kind: DecodeErrorKind::TrailingData,
        });
    }
    Ok(value)
}

/// Decodes one value from the start of `buf`, returning it and the offset just past it.
pub fn decode_prefix(buf: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    let mut p = Parser { buf, pos: 0 };
    let v = p.value(0)?;
    Ok((v, p.pos))
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, offset: usize, kind: DecodeErrorKind) -> Result<T, DecodeError> {
        Err(DecodeError { offset, kind })
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) => Ok(b),
            None => self.err(self.pos, DecodeErrorKind::Truncated),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        let start = self.pos;
        let kind = match self.peek()? {
            b'i' => Kind::Int(self.int()?),
            b'0'..=b'9' => Kind::Bytes(self.bytes()?),
            b'l' => {
                if depth >= MAX_DEPTH {
                    return self.err(start, DecodeErrorKind::TooDeep);
                }
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Kind::List(items)
            }
            b'd' => {
                if depth >= MAX_DEPTH {
                    return self.err(start, DecodeErrorKind::TooDeep);
                }
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    match self.peek()? {
                        b'e' => break,
                        b'0'..=b'9' => {}
                        _ => return self.err(self.pos, DecodeErrorKind::NonStringKey),
                    }
                    let key = self.bytes()?;
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.pos += 1;
                Kind::Dict(entries)
            }
            other => return self.err(start, DecodeErrorKind::UnexpectedByte(other)),
        };
        Ok(Value {
            raw: &self.buf[start..self.pos],
            offset: start,
            kind,
        })
    }

    /// Parses `i<digits>e` at the cursor.
    fn int(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        self.pos += 1; // 'i'
        let digits_start = self.pos;
        let end = match self.buf[digits_start..].iter().position(|&b| b == b'e') {
            Some(n) => digits_start + n,
            None => {
                // Either truncated or garbage inside; report the first non-digit if any.
                let bad = self.buf[digits_start..]
                    .iter()
                    .position(|&b| !(b.is_ascii_digit() || b == b'-'));
                return match bad {
                    Some(n) => self.err(digits_start + n, DecodeErrorKind::InvalidInteger),
                    None => self.err(self.buf.len(), DecodeErrorKind::Truncated),
                };
            }
        };
        let text = &self.buf[digits_start..end];
        let (neg, body) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let all_digits = !body.is_empty() && body.iter().all(u8::is_ascii_digit);
        let leading_zero = body.len() > 1 && body[0] == b'0';
        let negative_zero = neg && body == b"0";
        let valid = all_digits && !leading_zero && !negative_zero;
        if !valid {
            return self.err(start, DecodeErrorKind::InvalidInteger);
        }
        // The text is ASCII digits with an optional sign, so from_utf8 cannot fail.
        let parsed = std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse::<i64>().ok());
        match parsed {
            Some(v) => {
                self.pos = end + 1;
                Ok(v)
            }
            None => self.err(start, DecodeErrorKind::InvalidInteger),
        }
    }

    /// Parses `<len>:<bytes>` at the cursor.
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let mut len: usize = 0;
        let mut n_digits = 0;
        loop {
            let b = self.peek()?;
            match b {
                b'0'..=b'9' => {
                    if n_digits == 1 && len == 0 {
                        return self.err(start, DecodeErrorKind::InvalidLength);
                    }
                    len = match len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(b - b'0')))
                    {
                        Some(l) => l,
                        None => return self.err(start, DecodeErrorKind::InvalidLength),
                    };
                    n_digits += 1;
                    self.pos += 1;
                }
                b':' if n_digits > 0 => {
                    self.pos += 1;
                    break;
                }
                other => return self.err(self.pos, DecodeErrorKind::UnexpectedByte(other)),
            }
        }
        let data_start = self.pos;
        match data_start.checked_add(len) {
            Some(end) if end <= self.buf.len() => {
                self.pos = end;
                Ok(&self.buf[data_start..end])
            }
            _ => self.err(self.buf.len(), DecodeErrorKind::Truncated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(buf: &[u8]) -> DecodeErrorKind {
        decode(buf).unwrap_err().kind
    }

    #[test]
    fn decodes_all_types_with_raw_spans() {
        let buf = b"d3:cow3:moo4:spaml1:a1:bi-3ee1:xi0ee";
        let v = decode(buf).unwrap();
        assert_eq!(v.get("cow").unwrap().as_str(), Some("moo"));
        let spam = v.get("spam").unwrap();
        assert_eq!(spam.raw, b"l1:a1:bi-3ee");
        assert_eq!(spam.offset, 17);
        assert_eq!(spam.as_list().unwrap()[2].as_int(), Some(-3));
        assert_eq!(v.get("x").unwrap().as_int(), Some(0));
        assert_eq!(v.raw, buf);
    }

    #[test]
    fn keeps_unsorted_and_duplicate_keys_as_found() {
        let v = decode(b"d1:bi1e1:ai2e1:bi3ee").unwrap();
        let keys: Vec<_> = v.as_dict().unwrap().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec![&b"b"[..], b"a", b"b"]);
        assert_eq!(v.get("b").unwrap().as_int(), Some(1));
    }

    #[test]
    fn rejects_bad_integers() {
        for bad in [
            &b"i-0e"[..],
            b"i03e",
            b"ie",
            b"i-e",
            b"i1x2e",
            b"i99999999999999999999e",
        ] {
            assert_eq!(kind(bad), DecodeErrorKind::InvalidInteger, "{:?}", bad);
        }
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap().as_int(),
            Some(i64::MIN)
        );
    }

    #[test]
    fn reports_truncation_with_offset() {
        let e = decode(b"d4:spam5:abc").unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Truncated);
        assert_eq!(e.offset, 12);
        assert_eq!(kind(b"l"), DecodeErrorKind::Truncated);
        assert_eq!(kind(b"i12"), DecodeErrorKind::Truncated);
        assert_eq!(kind(b""), DecodeErrorKind::Truncated);
        assert_eq!(
            kind(b"99999999999999999999999:a"),
            DecodeErrorKind::InvalidLength
        );
    }

    #[test]
    fn rejects_structure_errors() {
        assert_eq!(kind(b"di1ei2ee"), DecodeErrorKind::NonStringKey);
        assert_eq!(kind(b"x"), DecodeErrorKind::UnexpectedByte(b'x'));
        assert_eq!(kind(b"i1ei2e"), DecodeErrorKind::TrailingData);
        assert_eq!(kind(b"03:abc"), DecodeErrorKind::InvalidLength);
        let deep = [vec![b'l'; 100], vec![b'e'; 100]].concat();
        let e = decode(&deep).unwrap_err();
        assert_eq!((e.kind, e.offset), (DecodeErrorKind::TooDeep, MAX_DEPTH));
        let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn error_message_names_offset() {
        let e = decode(b"d3:fooi1x").unwrap_err();
        assert_eq!(e.to_string(), "invalid bencode at byte 8: invalid integer");
    }
}
