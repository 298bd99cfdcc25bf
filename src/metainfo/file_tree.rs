//! The BEP 52 `file tree` of a hybrid v1+v2 torrent, checked the way libtorrent checks it.
//!
//! seedbox transfers a hybrid torrent through its v1 part, but a torrent whose v2 part is
//! broken is refused, as libtorrent refuses it: other clients would reject the torrent or,
//! worse, fetch different files for the same swarm.

use super::path::component_problem;
use super::torrent::FileEntry;
use super::MetainfoError;
use crate::bencode::{Kind, Value};

/// One file of a v2 `file tree`: its path below the torrent's root and its length.
#[derive(Debug, PartialEq, Eq)]
struct TreeFile {
    path: Vec<Vec<u8>>,
    length: u64,
}

/// Checks the `file tree` of an info dictionary with `meta version` 2 against its v1 files.
///
/// Refused (each as libtorrent 2.0 refuses it): no `file tree` dictionary; a node that is not
/// a dictionary; a file entry (`""` key) that is not a dictionary, has siblings, lacks a
/// non-negative integer `length`, or lacks a 32-byte `pieces root` while not empty; an unsafe
/// name; and files (path, length, order) that differ from the v1 list's non-padding files.
/// Empty folders and unknown keys inside a file entry are ignored, as libtorrent ignores them.
pub fn check_file_tree(info: &Value<'_>, v1_files: &[FileEntry]) -> Result<(), MetainfoError> {
    let tree = info
        .get("file tree")
        .filter(|t| matches!(t.kind, Kind::Dict(_)))
        .ok_or_else(|| invalid("the v2 info dictionary has no `file tree` dictionary".into()))?;
    let mut files = Vec::new();
    walk(tree, &mut Vec::new(), &mut files)?;
    let v1 = v1_files.iter().filter(|f| !f.padding);
    let same = files.len() == v1.clone().count()
        && files.iter().zip(v1).all(|(tree_file, v1_file)| {
            tree_file.length == v1_file.length
                && tree_file.path.len() == v1_file.path.len()
                && tree_file
                    .path
                    .iter()
                    .zip(&v1_file.path)
                    .all(|(a, b)| String::from_utf8_lossy(a) == b.as_str())
        });
    if !same {
        return Err(invalid(
            "the v1 `files` and the v2 `file tree` describe different files".into(),
        ));
    }
    Ok(())
}

fn walk(
    node: &Value<'_>,
    path: &mut Vec<Vec<u8>>,
    out: &mut Vec<TreeFile>,
) -> Result<(), MetainfoError> {
    let shown = |path: &[Vec<u8>]| {
        path.iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("/")
    };
    let Some(entries) = node.as_dict() else {
        return Err(invalid(format!(
            "`file tree` node {:?} is a {}, not a dictionary",
            shown(path),
            node.type_name()
        )));
    };
    if let Some((_, entry)) = entries.iter().find(|(k, _)| k.is_empty()) {
        if entries.len() != 1 || path.is_empty() {
            return Err(invalid(format!(
                "`file tree` entry {:?} is both a file and a folder",
                shown(path)
            )));
        }
        let bad = |why: &str| invalid(format!("`file tree` file {:?}: {why}", shown(path)));
        if !matches!(entry.kind, Kind::Dict(_)) {
            return Err(bad("the file entry is not a dictionary"));
        }
        let length = match entry.get("length").and_then(Value::as_int) {
            Some(l) if l >= 0 => l as u64,
            _ => return Err(bad("no non-negative integer `length`")),
        };
        let root_ok = entry
            .get("pieces root")
            .and_then(Value::as_bytes)
            .is_some_and(|r| r.len() == 32);
        if length > 0 && !root_ok {
            return Err(bad("no 32-byte `pieces root`"));
        }
        out.push(TreeFile {
            path: path.clone(),
            length,
        });
        return Ok(());
    }
    for (name, child) in entries {
        if let Some(reason) = component_problem(name) {
            path.push(name.to_vec());
            return Err(MetainfoError::UnsafePath {
                path: shown(path),
                what: "the `file tree`".into(),
                reason,
            });
        }
        path.push(name.to_vec());
        walk(child, path, out)?;
        path.pop();
    }
    Ok(())
}

fn invalid(why: String) -> MetainfoError {
    MetainfoError::InvalidInfo(why)
}
