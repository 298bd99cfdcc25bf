//! The bencode encoder: owned values written canonically (dictionary keys sorted).

use std::collections::BTreeMap;

/// An owned bencode value for building messages (tracker responses, torrents, extension
/// handshakes). Dictionaries are `BTreeMap`s, so keys are always encoded sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Owned>),
    /// A dictionary with sorted keys.
    Dict(BTreeMap<Vec<u8>, Owned>),
}

impl Owned {
    /// An empty dictionary, to fill with [`Owned::insert`].
    pub fn dict() -> Self {
        Owned::Dict(BTreeMap::new())
    }

    /// Inserts `key` into a dictionary (no-op on other types) and returns `self` for chaining.
    pub fn insert(mut self, key: impl AsRef<[u8]>, value: impl Into<Owned>) -> Self {
        if let Owned::Dict(map) = &mut self {
            map.insert(key.as_ref().to_vec(), value.into());
        }
        self
    }

    /// Appends the encoding of `self` to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Owned::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Owned::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Owned::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Owned::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    out.extend_from_slice(k.len().to_string().as_bytes());
                    out.push(b':');
                    out.extend_from_slice(k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The encoding of `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

impl From<i64> for Owned {
    fn from(v: i64) -> Self {
        Owned::Int(v)
    }
}

impl From<u32> for Owned {
    fn from(v: u32) -> Self {
        Owned::Int(i64::from(v))
    }
}

impl From<&str> for Owned {
    fn from(v: &str) -> Self {
        Owned::Bytes(v.as_bytes().to_vec())
    }
}

impl From<String> for Owned {
    fn from(v: String) -> Self {
        Owned::Bytes(v.into_bytes())
    }
}

impl From<&[u8]> for Owned {
    fn from(v: &[u8]) -> Self {
        Owned::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Owned {
    fn from(v: Vec<u8>) -> Self {
        Owned::Bytes(v)
    }
}

impl From<Vec<Owned>> for Owned {
    fn from(v: Vec<Owned>) -> Self {
        Owned::List(v)
    }
}

impl<'a> From<&super::Value<'a>> for Owned {
    fn from(v: &super::Value<'a>) -> Self {
        use super::Kind;
        match &v.kind {
            Kind::Int(i) => Owned::Int(*i),
            Kind::Bytes(b) => Owned::Bytes(b.to_vec()),
            Kind::List(l) => Owned::List(l.iter().map(Owned::from).collect()),
            // A duplicate key keeps its first value, as `Value::get` reads it: re-encoding
            // must not swap the value every reader of the decoded tree saw.
            Kind::Dict(d) => {
                let mut map = BTreeMap::new();
                for (k, v) in d {
                    map.entry(k.to_vec()).or_insert_with(|| Owned::from(v));
                }
                Owned::Dict(map)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::decode;
    use proptest::prelude::*;

    #[test]
    fn a_duplicate_key_keeps_its_first_value_as_get_reads_it() {
        // Found by the metainfo fuzz target: a torrent with two `info` keys parsed through
        // the first and re-encoded with the second.
        let v = decode(b"d1:ai1e1:bi2e1:ai3ee").unwrap();
        assert_eq!(v.get("a").and_then(|a| a.as_int()), Some(1));
        assert_eq!(Owned::from(&v).encode(), b"d1:ai1e1:bi2ee");
    }

    #[test]
    fn encodes_sorted() {
        let v = Owned::dict()
            .insert("zeta", 1i64)
            .insert("alpha", "x")
            .insert("list", vec![Owned::Int(-2), Owned::from("ab")]);
        assert_eq!(v.encode(), b"d5:alpha1:x4:listli-2e2:abe4:zetai1ee");
    }

    fn owned() -> impl Strategy<Value = Owned> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Owned::Int),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Owned::Bytes),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Owned::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..12),
                    inner,
                    0..8
                )
                .prop_map(Owned::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn roundtrip(v in owned()) {
            let bytes = v.encode();
            let decoded = decode(&bytes).unwrap();
            prop_assert_eq!(decoded.raw, &bytes[..]);
            prop_assert_eq!(Owned::from(&decoded), v);
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn truncations_are_errors(v in owned(), cut in 0usize..1000) {
            let bytes = v.encode();
            let cut = cut % bytes.len();
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
    }
}
