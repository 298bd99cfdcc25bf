//! The resume data's encoding: a bencoded dictionary with a format version and a SHA-1 of
//! the rest, so that a truncated, corrupted or foreign file is refused (never trusted).

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use sha1::{Digest, Sha1};

use super::{FileStat, ResumeData, SavedFile, VERSION};
use crate::bencode::{self, Owned, Value};
use crate::metainfo::InfoHash;
use crate::swarm::Bitfield;

/// Why resume data cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResumeError {
    /// Not a bencoded dictionary.
    #[error("not resume data: {0}")]
    NotBencode(String),
    /// Written by another version of the format.
    #[error("unknown resume data version {found} (this seedbox reads version {VERSION})")]
    Version {
        /// The version found (`None`: no version key).
        found: String,
    },
    /// The checksum does not match the content.
    #[error("checksum mismatch: the file is corrupt")]
    Checksum,
    /// A key is missing or has the wrong type or value.
    #[error("bad or missing `{0}`")]
    Field(&'static str),
}

fn sha1(bytes: &[u8]) -> Vec<u8> {
    Sha1::digest(bytes).to_vec()
}

impl ResumeData {
    /// The encoding: a bencoded dictionary whose `sha1` key covers the others.
    pub fn encode(&self) -> Vec<u8> {
        let files: Vec<Owned> = self
            .files
            .iter()
            .map(|f| {
                let mut d = Owned::dict().insert("path", f.path.as_os_str().as_bytes());
                if let Some(s) = f.stat {
                    d = d
                        .insert("size", Owned::Int(s.size as i64))
                        .insert("mtime-ns", Owned::Int(s.mtime_ns))
                        .insert("inode", Owned::Int(s.inode as i64));
                }
                d
            })
            .collect();
        let mut d = Owned::dict()
            .insert("version", Owned::Int(VERSION))
            .insert("info-hash", &self.info_hash.0[..])
            .insert("pieces", self.verified.len())
            .insert("verified", self.verified.as_bytes())
            .insert("files", files);
        if let Some(s) = &self.source {
            d = d.insert("source", s.as_os_str().as_bytes());
        }
        if let Some(t) = &self.torrent {
            d = d.insert("torrent", t.clone());
        }
        let sum = sha1(&d.encode());
        d.insert("sha1", sum).encode()
    }

    /// Decodes resume data, refusing anything that is not exactly what
    /// [`ResumeData::encode`] of this version writes.
    pub fn decode(bytes: &[u8]) -> Result<ResumeData, ResumeError> {
        let value = bencode::decode(bytes).map_err(|e| ResumeError::NotBencode(e.to_string()))?;
        let dict = value
            .as_dict()
            .ok_or_else(|| ResumeError::NotBencode(format!("a {}", value.type_name())))?;
        match value.get("version").and_then(Value::as_int) {
            Some(VERSION) => {}
            other => {
                return Err(ResumeError::Version {
                    found: other.map_or_else(|| "(none)".into(), |v| v.to_string()),
                })
            }
        }
        let mut rest = Owned::dict();
        let mut sum = None;
        for (k, v) in dict {
            if *k == b"sha1" {
                sum = v.as_bytes();
            } else {
                rest = rest.insert(k, Owned::from(v));
            }
        }
        if sum != Some(&sha1(&rest.encode())[..]) {
            return Err(ResumeError::Checksum);
        }
        decode_fields(&value)
    }
}

fn decode_fields(value: &Value<'_>) -> Result<ResumeData, ResumeError> {
    let bytes = |key: &'static str| {
        value
            .get(key)
            .and_then(Value::as_bytes)
            .ok_or(ResumeError::Field(key))
    };
    let info_hash: [u8; 20] = bytes("info-hash")?
        .try_into()
        .map_err(|_| ResumeError::Field("info-hash"))?;
    let pieces = value
        .get("pieces")
        .and_then(Value::as_int)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(ResumeError::Field("pieces"))?;
    let verified =
        Bitfield::from_bytes(bytes("verified")?, pieces).ok_or(ResumeError::Field("verified"))?;
    let files = value
        .get("files")
        .and_then(Value::as_list)
        .ok_or(ResumeError::Field("files"))?
        .iter()
        .map(decode_file)
        .collect::<Result<Vec<_>, _>>()?;
    let path = |b: &[u8]| PathBuf::from(std::ffi::OsString::from_vec(b.to_vec()));
    Ok(ResumeData {
        info_hash: InfoHash(info_hash),
        verified,
        files,
        source: value.get("source").and_then(Value::as_bytes).map(path),
        torrent: value
            .get("torrent")
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec),
    })
}

fn decode_file(f: &Value<'_>) -> Result<SavedFile, ResumeError> {
    let path = f
        .get("path")
        .and_then(Value::as_bytes)
        .ok_or(ResumeError::Field("files.path"))?;
    let int = |k| f.get(k).and_then(Value::as_int);
    let stat = match (int("size"), int("mtime-ns"), int("inode")) {
        (None, None, None) => None,
        (Some(size), Some(mtime_ns), Some(inode)) if size >= 0 => Some(FileStat {
            size: size as u64,
            mtime_ns,
            inode: inode as u64,
        }),
        _ => return Err(ResumeError::Field("files.size/mtime-ns/inode")),
    };
    Ok(SavedFile {
        path: PathBuf::from(std::ffi::OsString::from_vec(path.to_vec())),
        stat,
    })
}
