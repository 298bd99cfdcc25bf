//! `seedbox create` and `verify` against real tools: libtorrent, mktorrent, transmission-create.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

/// Loads a torrent in libtorrent; prints its v1 info-hash, then the piece hashes libtorrent
/// itself computes for the same files, data and piece length (v1 only), then the torrent's own
/// piece hashes, each as hex.
const LT_CHECK: &str = r#"
import sys, libtorrent as lt
torrent, save = sys.argv[1], sys.argv[2]
ti = lt.torrent_info(torrent)
print(str(ti.info_hashes().v1))
fs = ti.files()
own = lt.file_storage()
for i in range(fs.num_files()):
    own.add_file(fs.file_path(i), fs.file_size(i))
ct = lt.create_torrent(own, ti.piece_length(), flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, save)
print(ct.generate()[b'info'][b'pieces'].hex())
print(b''.join(ti.hash_for_piece(i) for i in range(ti.num_pieces())).hex())
"#;

/// Creates a torrent of `path` with libtorrent (hybrid unless `v1`), writing it to `out`.
const LT_CREATE: &str = r#"
import sys, os, libtorrent as lt
path, out, v1 = sys.argv[1], sys.argv[2], sys.argv[3] == '1'
fs = lt.file_storage()
lt.add_files(fs, path)
flags = lt.create_torrent.v1_only if v1 else 0
ct = lt.create_torrent(fs, 32768, flags=flags)
lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
open(out, 'wb').write(lt.bencode(ct.generate()))
"#;

fn show_json(torrent: &Path) -> serde_json::Value {
    let out = run(&["show", "--json", torrent.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A torrent of `target` with this file's fixed options (32 KiB pieces, no date).
fn create_32k(target: &Path, out: &Path) {
    create(
        target,
        out,
        &[
            "--piece-length",
            "32768",
            "--no-date",
            "--announce",
            "http://127.0.0.1:1/announce",
        ],
    );
}

fn assert_libtorrent_agrees(torrent: &Path, save: &Path) {
    let out = python(
        LT_CHECK,
        &[torrent.to_str().unwrap(), save.to_str().unwrap()],
    );
    let lines: Vec<&str> = out.lines().collect();
    let ours = show_json(torrent);
    assert_eq!(lines[0], ours["info_hash"].as_str().unwrap(), "info-hash");
    assert_eq!(lines[1], lines[2], "piece hashes differ from libtorrent's");
    assert!(!lines[1].is_empty());
}

#[test]
fn single_file_torrent_matches_libtorrent() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("one.iso", 1_234_567)]);
    let t = dir.path().join("one.torrent");
    create_32k(&dir.path().join("one.iso"), &t);
    assert_libtorrent_agrees(&t, dir.path());
}

#[test]
fn multi_file_torrent_matches_libtorrent() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), MULTI_FILES);
    let t = dir.path().join("release.torrent");
    create_32k(&dir.path().join("release"), &t);
    let json = show_json(&t);
    let paths: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "a/small.txt",
            "a/zero.bin",
            "b/c/mid.bin",
            "big.bin",
            "z.txt"
        ]
    );
    assert_libtorrent_agrees(&t, dir.path());
}

fn verify_ok(torrent: &Path, data: &Path) {
    let o = run(&[
        "verify",
        torrent.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "verify {} failed: {}{}",
        torrent.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn verify_accepts_torrents_made_by_libtorrent_v1_and_hybrid() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), MULTI_FILES);
    let rel = dir.path().join("release");
    for (v1, name) in [(true, "v1.torrent"), (false, "hybrid.torrent")] {
        let t = dir.path().join(name);
        python(
            LT_CREATE,
            &[
                rel.to_str().unwrap(),
                t.to_str().unwrap(),
                if v1 { "1" } else { "0" },
            ],
        );
        verify_ok(&t, dir.path());
        let json = show_json(&t);
        assert_eq!(json["info_hash_v2"].is_string(), !v1, "{name}");
    }
}

/// `seedbox verify` accepts a torrent of MULTI_FILES that another tool made
/// (`TOOL ARGS... OUT SRC`).
fn verify_accepts_torrent_made_by(tool: &str, package: &str, args: &[&str]) {
    require_binary(tool, package);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), MULTI_FILES);
    let t = dir.path().join("other.torrent");
    let o = Command::new(tool)
        .args(args)
        .arg(&t)
        .arg(dir.path().join("release"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    verify_ok(&t, dir.path());
}

#[test]
fn verify_accepts_torrents_made_by_mktorrent() {
    verify_accepts_torrent_made_by(
        "mktorrent",
        "mktorrent",
        &["-l", "15", "-a", "http://127.0.0.1:1/announce", "-o"],
    );
}

#[test]
fn verify_accepts_torrents_made_by_transmission_create() {
    verify_accepts_torrent_made_by(
        "transmission-create",
        "transmission-cli",
        &["-s", "32", "-o"],
    );
}

#[test]
fn one_flipped_byte_is_reported_in_the_right_piece_and_file() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), MULTI_FILES);
    let t = dir.path().join("release.torrent");
    create_32k(&dir.path().join("release"), &t);
    // big.bin starts at 51_007; byte 200_000 of it is at content offset 251_007, piece 7,
    // which lies wholly inside big.bin (229_376..262_144).
    let big = dir.path().join("release/big.bin");
    let mut bytes = std::fs::read(&big).unwrap();
    bytes[200_000] ^= 0x01;
    std::fs::write(&big, bytes).unwrap();
    let o = run(&[
        "verify",
        t.to_str().unwrap(),
        "--data",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["bad_pieces"], serde_json::json!([7]));
    assert_eq!(
        report["bad_files"],
        serde_json::json!([{"path": "big.bin", "pieces": [7]}])
    );
}
