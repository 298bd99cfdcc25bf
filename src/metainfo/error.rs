//! Why a torrent was rejected.

use crate::bencode::DecodeError;

/// A torrent that cannot be used, with the reason in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum MetainfoError {
    /// The file is not valid bencode (the message carries the byte offset).
    #[error(transparent)]
    Bencode(#[from] DecodeError),
    /// The `.torrent` file itself is implausibly large.
    #[error("torrent file is {size} bytes, more than the {limit}-byte limit")]
    FileTooLarge {
        /// Size of the input.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The top level is not a dictionary.
    #[error("not a torrent: the top-level value is a {0}, not a dictionary")]
    NotADictionary(&'static str),
    /// No `info` dictionary.
    #[error("not a torrent: missing the `info` dictionary")]
    MissingInfo,
    /// A field of the info dictionary is missing or of the wrong type.
    #[error("invalid info dictionary: {0}")]
    InvalidInfo(String),
    /// `piece length` is zero, negative or absurd.
    #[error("invalid piece length {0}: it must be between 1 byte and {max} bytes", max = super::MAX_PIECE_LENGTH)]
    PieceLength(i64),
    /// A negative length.
    #[error("negative length {length} for {what}")]
    NegativeLength {
        /// Which file (or the torrent).
        what: String,
        /// The value found.
        length: i64,
    },
    /// A file or the whole torrent is larger than seedbox accepts.
    #[error("{what} is {length} bytes, more than the {limit}-byte limit")]
    LengthTooLarge {
        /// Which file (or the torrent).
        what: String,
        /// The length.
        length: u64,
        /// The limit.
        limit: u64,
    },
    /// Both or neither of `length` and `files`.
    #[error("invalid info dictionary: {0}")]
    Shape(&'static str),
    /// `pieces` is not a whole number of 20-byte hashes.
    #[error("`pieces` is {0} bytes long, not a multiple of 20")]
    PiecesNotMultipleOf20(usize),
    /// `pieces` does not hold one hash per piece of the content.
    #[error(
        "`pieces` holds {found} hashes but {total_length} bytes in pieces of {piece_length} \
         bytes need {expected}"
    )]
    PieceCountMismatch {
        /// Hashes found.
        found: usize,
        /// Hashes needed.
        expected: u64,
        /// Total content length.
        total_length: u64,
        /// Piece length.
        piece_length: u32,
    },
    /// Every file is empty (total size 0): nothing to transfer. libtorrent refuses these too.
    #[error("the torrent's content is empty (total size 0 bytes): there is nothing to share")]
    EmptyContent,
    /// A v2-only torrent (no v1 `pieces`).
    #[error("v2-only torrents are not supported: the info dictionary has no v1 `pieces`")]
    V2Only,
    /// A name or path that could escape the data folder or cannot be a file name.
    #[error("unsafe path {path:?} in {what}: {reason}")]
    UnsafePath {
        /// The path as found (lossy UTF-8, components joined with `/`).
        path: String,
        /// Where it was found (`name`, `file 3`).
        what: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Two files with the same path (or one file's path a folder of another).
    #[error("file path {0:?} appears twice or is both a file and a folder")]
    DuplicatePath(String),
    /// Too many files.
    #[error("{0} files, more than the limit of {max}", max = super::MAX_FILES)]
    TooManyFiles(usize),
}
