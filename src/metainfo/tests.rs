//! Metainfo parsing and validation tests: every rejection names its problem.

use super::*;
use crate::bencode::Owned;

fn hashes(n: usize) -> Vec<u8> {
    vec![7u8; 20 * n]
}

fn single(length: i64, piece_length: i64, pieces: Vec<u8>) -> Owned {
    Owned::dict().insert(
        "info",
        Owned::dict()
            .insert("name", "file.bin")
            .insert("length", length)
            .insert("piece length", piece_length)
            .insert("pieces", pieces),
    )
}

fn multi(files: Vec<(Vec<&str>, i64)>, piece_length: i64) -> Owned {
    let total: i64 = files.iter().map(|f| f.1.max(0)).sum();
    let n = (total as u64).div_ceil(piece_length as u64) as usize;
    let list = files
        .into_iter()
        .map(|(path, len)| {
            Owned::dict().insert("length", len).insert(
                "path",
                Owned::List(path.into_iter().map(Owned::from).collect()),
            )
        })
        .collect();
    Owned::dict().insert(
        "info",
        Owned::dict()
            .insert("name", "folder")
            .insert("files", Owned::List(list))
            .insert("piece length", piece_length)
            .insert("pieces", hashes(n)),
    )
}

fn err(bytes: &[u8]) -> String {
    Torrent::from_bytes(bytes).unwrap_err().to_string()
}

#[test]
fn parses_single_file() {
    let t = Torrent::from_bytes(&single(40000, 16384, hashes(3)).encode()).unwrap();
    assert_eq!(t.name, "file.bin");
    assert!(!t.multi_file);
    assert_eq!(t.total_length, 40000);
    assert_eq!(t.piece_count(), 3);
    assert_eq!(t.files.len(), 1);
    assert_eq!(t.files[0].path, vec!["file.bin"]);
}

#[test]
fn parses_multi_file_offsets_and_zero_length_files() {
    let bytes = multi(
        vec![(vec!["a", "x"], 10), (vec!["empty"], 0), (vec!["b"], 20000)],
        16384,
    )
    .encode();
    let t = Torrent::from_bytes(&bytes).unwrap();
    assert!(t.multi_file);
    let offsets: Vec<u64> = t.files.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, vec![0, 10, 10]);
    assert_eq!(t.total_length, 20010);
    assert_eq!(t.piece_count(), 2);
    let p = t.file_path(std::path::Path::new("/d"), &t.files[0]);
    assert_eq!(p, std::path::PathBuf::from("/d/folder/a/x"));
}

#[test]
fn info_hash_is_of_the_raw_bytes_even_unsorted_with_unknown_keys() {
    // Keys out of order and an unknown key: a re-encoding would differ.
    let info = b"d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa9:zzunknowni1e3:aaai2ee";
    let mut file = b"d4:info".to_vec();
    file.extend_from_slice(info);
    file.push(b'e');
    let t = Torrent::from_bytes(&file).unwrap();
    assert_eq!(t.info_hash, InfoHash::of(info));
    assert_eq!(t.info_bytes, info);
}

#[test]
fn builder_output_parses_back_identically() {
    let b = TorrentBuilder {
        name: "rel".into(),
        files: Some(vec![
            NewFile {
                path: vec!["a".into(), "b".into()],
                length: 3,
            },
            NewFile {
                path: vec!["c".into()],
                length: 0,
            },
        ]),
        piece_length: 16384,
        pieces: hashes(1),
        trackers: vec!["http://t1/announce".into(), "udp://t2:6969".into()],
        web_seeds: vec!["http://w/".into()],
        private: true,
        comment: Some("hi".into()),
        source: Some("SRC".into()),
        created_by: Some("seedbox".into()),
        creation_date: Some(1_700_000_000),
        ..Default::default()
    };
    let bytes = b.encode();
    let t = Torrent::from_bytes(&bytes).unwrap();
    assert_eq!(t.info_hash, InfoHash::of(&b.info().encode()));
    assert_eq!(t.announce.as_deref(), Some("http://t1/announce"));
    assert_eq!(t.announce_list.len(), 2);
    assert_eq!(t.trackers(), vec!["http://t1/announce", "udp://t2:6969"]);
    assert_eq!(t.url_list, vec!["http://w/"]);
    assert!(t.private);
    assert_eq!(t.source.as_deref(), Some("SRC"));
    assert_eq!(t.comment.as_deref(), Some("hi"));
    assert_eq!(t.creation_date, Some(1_700_000_000));
    let m = t.magnet();
    assert!(m.starts_with(&format!("magnet:?xt=urn:btih:{}&dn=rel&tr=", t.info_hash)));
    assert!(m.ends_with("&ws=http%3A%2F%2Fw%2F"), "{m}");
    let peer: std::net::SocketAddr = "192.0.2.7:6881".parse().unwrap();
    let parsed = super::magnet::parse(t.magnet_with_peers(&[peer]).as_bytes()).unwrap();
    assert_eq!(parsed.web_seeds, ["http://w/"]);
    assert_eq!(parsed.peers, [peer]);
    assert_eq!(parsed.trackers, t.trackers());
}

/// A hybrid torrent shaped like libtorrent 2.0's output for files `a` (10 bytes) and `b`
/// (5 bytes): v1 `files` with BEP 47 padding and a v2 `file tree`. `tree` replaces the tree.
fn hybrid(tree: Option<Owned>) -> Owned {
    let pad = |len: i64| {
        Owned::dict()
            .insert("attr", "p")
            .insert("length", len)
            .insert(
                "path",
                Owned::List(vec![".pad".into(), len.to_string().as_str().into()]),
            )
    };
    let f = |name: &str, len: i64| {
        Owned::dict()
            .insert("length", len)
            .insert("path", Owned::List(vec![name.into()]))
    };
    let leaf = |len: i64| {
        Owned::dict().insert(
            "",
            Owned::dict()
                .insert("length", len)
                .insert("pieces root", vec![9u8; 32]),
        )
    };
    let tree = tree.unwrap_or_else(|| Owned::dict().insert("a", leaf(10)).insert("b", leaf(5)));
    let info = Owned::dict()
        .insert("name", "h")
        .insert("meta version", 2i64)
        .insert("file tree", tree)
        .insert(
            "files",
            Owned::List(vec![f("a", 10), pad(16374), f("b", 5), pad(16379)]),
        )
        .insert("piece length", 16384i64)
        .insert("pieces", hashes(2));
    Owned::dict()
        .insert("info", info)
        .insert("piece layers", Owned::dict())
}

fn v2_leaf(entry: Owned) -> Owned {
    Owned::dict().insert("", entry)
}

#[test]
fn hybrid_torrent_is_used_through_its_v1_part_with_padding() {
    let t = Torrent::from_bytes(&hybrid(None).encode()).unwrap();
    assert!(t.info_hash_v2.is_some());
    assert_eq!(t.files.iter().filter(|f| f.padding).count(), 2);
    assert_eq!(t.files[2].offset, 16384);
    assert!(t.magnet().contains("&xt=urn:btmh:1220"));
}

/// Each broken `file tree` below was built the same way from a libtorrent-made hybrid torrent
/// and given to libtorrent 2.0.8 (`/usr/bin/python3`, `libtorrent.torrent_info(bytes)`), which
/// refused every one: "invalid length of torrent" (negative, missing or non-integer length),
/// "a v2 file entry has no root hash" (missing or 31-byte `pieces root`), "failed to parse
/// files from torrent file" (a node that is not a dictionary, a file entry with siblings),
/// "the v1 and v2 file metadata does not match" (other length, extra file, renamed file) and
/// "the v2 torrent file has no file tree". It loaded an empty folder node and an unknown key
/// in a file entry, and so does seedbox.
#[test]
fn hybrid_with_an_invalid_file_tree_entry_is_refused_as_libtorrent_refuses_it() {
    let leaf = |len: i64| {
        Owned::dict()
            .insert("length", len)
            .insert("pieces root", vec![9u8; 32])
    };
    let tree = |a: Owned| Owned::dict().insert("a", a).insert("b", v2_leaf(leaf(5)));
    let refused = [
        ("negative length", tree(v2_leaf(leaf(-1))), "length"),
        (
            "missing length",
            tree(v2_leaf(Owned::dict().insert("pieces root", vec![9u8; 32]))),
            "length",
        ),
        (
            "length not an integer",
            tree(v2_leaf(
                Owned::dict()
                    .insert("length", "10")
                    .insert("pieces root", vec![9u8; 32]),
            )),
            "length",
        ),
        (
            "missing pieces root",
            tree(v2_leaf(Owned::dict().insert("length", 10i64))),
            "pieces root",
        ),
        (
            "short pieces root",
            tree(v2_leaf(
                Owned::dict()
                    .insert("length", 10i64)
                    .insert("pieces root", vec![9u8; 31]),
            )),
            "pieces root",
        ),
        (
            "file entry not a dictionary",
            tree(v2_leaf("oops".into())),
            "not a dictionary",
        ),
        (
            "node not a dictionary",
            tree(Owned::Int(5)),
            "not a dictionary",
        ),
        (
            "file entry with a sibling",
            tree(v2_leaf(leaf(10)).insert("z", v2_leaf(leaf(0)))),
            "both a file and a folder",
        ),
        (
            "length differs from v1",
            tree(v2_leaf(leaf(11))),
            "different files",
        ),
        (
            "extra file",
            tree(v2_leaf(leaf(10))).insert("c", v2_leaf(Owned::dict().insert("length", 0i64))),
            "different files",
        ),
        (
            "renamed file",
            Owned::dict()
                .insert("x", v2_leaf(leaf(10)))
                .insert("b", v2_leaf(leaf(5))),
            "different files",
        ),
        (
            "dot-dot name",
            Owned::dict()
                .insert("..", v2_leaf(leaf(10)))
                .insert("b", v2_leaf(leaf(5))),
            "unsafe path",
        ),
        (
            "file tree not a dictionary",
            Owned::Int(3),
            "no `file tree`",
        ),
    ];
    for (what, tree, message) in refused {
        let e = err(&hybrid(Some(tree)).encode());
        assert!(e.contains(message), "{what}: {e}");
    }
    let loaded = [
        (
            "empty folder",
            tree(v2_leaf(leaf(10))).insert("c", Owned::dict()),
        ),
        (
            "unknown key in a file entry",
            tree(v2_leaf(leaf(10).insert("foo", 1i64))),
        ),
    ];
    for (what, tree) in loaded {
        assert!(
            Torrent::from_bytes(&hybrid(Some(tree)).encode()).is_ok(),
            "{what}"
        );
    }
}

#[test]
fn v2_keys_need_meta_version_2_and_unknown_meta_versions_are_refused() {
    // libtorrent 2.0.8: "the torrent contains v2 keys but does not specify meta version 2" and
    // "the torrent file has an unknown meta version".
    let with_version = |v: i64| {
        let Owned::Dict(mut root) = hybrid(None) else {
            unreachable!()
        };
        let Some(Owned::Dict(info)) = root.get_mut(&b"info"[..]) else {
            unreachable!()
        };
        info.insert(b"meta version".to_vec(), Owned::Int(v));
        Owned::Dict(root).encode()
    };
    assert!(err(&with_version(1)).contains("without `meta version` 2"));
    assert!(err(&with_version(3)).contains("unknown `meta version` 3"));
}

/// libtorrent 2.0.8 refuses both with "invalid length of torrent".
#[test]
fn empty_content_is_refused_as_libtorrent_refuses_it() {
    let all_empty = multi(vec![(vec!["a"], 0), (vec!["b"], 0)], 16384).encode();
    assert!(err(&all_empty).contains("total size 0"));
    assert!(err(&single(0, 16384, Vec::new()).encode()).contains("total size 0"));
}

/// libtorrent 2.0.8 loads a torrent followed by `garbage\n` or by a second value and ignores
/// the tail; so does seedbox (with a warning), keeping the info-hash of the `info` value.
#[test]
fn data_after_the_root_dictionary_is_ignored() {
    let good = single(10, 16384, hashes(1)).encode();
    let expected = Torrent::from_bytes(&good).unwrap().info_hash;
    for tail in [&b"garbage\n"[..], b"i1e", b"d", b"\0\0\0"] {
        let mut bytes = good.clone();
        bytes.extend_from_slice(tail);
        let t = Torrent::from_bytes(&bytes).unwrap();
        assert_eq!(t.info_hash, expected);
    }
    // Still strict inside the dictionary, and a tail cannot rescue a broken root.
    assert!(err(&good[..good.len() - 1]).contains("truncated"));
    assert!(err(b"i1egarbage").contains("not a dictionary"));
}

#[test]
fn rejects_truncated_and_invalid_bencode_with_offset() {
    let full = single(10, 16384, hashes(1)).encode();
    assert!(err(&full[..full.len() - 3]).contains("truncated"));
    assert!(err(b"d4:infoi1x").contains("at byte 9"));
    assert!(err(b"").contains("invalid bencode at byte 0"));
}

#[test]
fn rejects_deep_nesting() {
    let mut deep = b"d4:info".to_vec();
    deep.extend(std::iter::repeat_n(b'l', 200));
    deep.extend(std::iter::repeat_n(b'e', 200));
    deep.push(b'e');
    assert!(err(&deep).contains("nesting deeper than"), "{}", err(&deep));
}

#[test]
fn rejects_non_torrents() {
    assert!(err(b"i1e").contains("not a dictionary"));
    assert!(err(b"de").contains("missing the `info` dictionary"));
    assert!(
        err(b"d4:infoi1ee").contains("`info` is a integer")
            || err(b"d4:infoi1ee").contains("not a dictionary")
    );
}

#[test]
fn rejects_oversized_torrent_files_and_content() {
    let big = vec![b'0'; MAX_TORRENT_FILE_SIZE as usize + 1];
    assert!(err(&big).contains("more than the 67108864-byte limit"));
    let huge = (MAX_CONTENT_LENGTH + 1) as i64;
    assert!(err(&single(huge, 1 << 28, hashes(1)).encode()).contains("more than the"));
}

#[test]
fn rejects_bad_pieces() {
    assert!(err(&single(10, 16384, vec![0; 21]).encode()).contains("not a multiple of 20"));
    let e = err(&single(40000, 16384, hashes(2)).encode());
    assert!(e.contains("holds 2 hashes") && e.contains("need 3"), "{e}");
}

#[test]
fn rejects_bad_piece_lengths() {
    assert!(err(&single(10, 0, hashes(1)).encode()).contains("invalid piece length 0"));
    assert!(err(&single(10, -5, hashes(1)).encode()).contains("invalid piece length -5"));
    let absurd = MAX_PIECE_LENGTH + 1;
    assert!(err(&single(10, absurd, hashes(1)).encode()).contains("invalid piece length"));
}

#[test]
fn rejects_negative_lengths() {
    assert!(err(&single(-1, 16384, hashes(0)).encode()).contains("negative length -1"));
    let e = err(&multi(vec![(vec!["a"], 5), (vec!["b"], -7)], 16384).encode());
    assert!(e.contains("negative length -7 for file 1"), "{e}");
}

#[test]
fn rejects_unsafe_paths() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["..", "..", "etc", "passwd"], "escapes the data folder"),
        (vec!["a", "."], "`.` path component"),
        (vec!["a", ""], "empty path component"),
        (vec!["/etc/passwd"], "holds `/`"),
        (vec!["a/b"], "holds `/`"),
        (vec!["a\\..\\b"], "holds `\\`"),
        (vec!["a\0b"], "NUL"),
        (vec![], "empty path"),
    ];
    for (path, reason) in cases {
        let e = err(&multi(vec![(vec!["ok"], 1), (path.clone(), 1)], 16384).encode());
        assert!(
            e.contains("unsafe path") && e.contains(reason),
            "{path:?}: {e}"
        );
        assert!(e.contains("file 1"), "{e}");
    }
    let bad_name = Owned::dict().insert(
        "info",
        Owned::dict()
            .insert("name", "..")
            .insert("length", 1i64)
            .insert("piece length", 16384i64)
            .insert("pieces", hashes(1)),
    );
    assert!(err(&bad_name.encode()).contains("unsafe path \"..\" in name"));
}

#[test]
fn rejects_duplicate_and_conflicting_paths() {
    let e = err(&multi(vec![(vec!["a"], 1), (vec!["a"], 1)], 16384).encode());
    assert!(e.contains("appears twice"), "{e}");
    let e = err(&multi(vec![(vec!["a"], 1), (vec!["a", "b"], 1)], 16384).encode());
    assert!(e.contains("appears twice"), "{e}");
    let e = err(&multi(vec![(vec!["a", "b"], 1), (vec!["a"], 1)], 16384).encode());
    assert!(e.contains("appears twice"), "{e}");
}

#[test]
fn rejects_wrong_shapes() {
    let both = Owned::dict().insert(
        "info",
        Owned::dict()
            .insert("name", "x")
            .insert("length", 1i64)
            .insert("files", Owned::List(vec![]))
            .insert("piece length", 16384i64)
            .insert("pieces", hashes(1)),
    );
    assert!(err(&both.encode()).contains("both `length` and `files`"));
    let v2 = Owned::dict().insert(
        "info",
        Owned::dict()
            .insert("name", "x")
            .insert("meta version", 2i64)
            .insert("piece length", 16384i64),
    );
    assert!(err(&v2.encode()).contains("v2-only"));
    let no_pl = Owned::dict().insert(
        "info",
        Owned::dict().insert("name", "x").insert("length", 1i64),
    );
    assert!(err(&no_pl.encode()).contains("piece length"));
}

#[test]
fn lenient_about_malformed_optional_keys() {
    let mut root = single(10, 16384, hashes(1));
    root = root
        .insert("announce-list", "not a list")
        .insert("creation date", "yesterday")
        .insert("url-list", "http://w/");
    let t = Torrent::from_bytes(&root.encode()).unwrap();
    assert!(t.announce_list.is_empty());
    assert_eq!(t.creation_date, None);
    assert_eq!(t.url_list, vec!["http://w/"]);
}
