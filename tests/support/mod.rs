//! Shared helpers for integration tests: the binary, real peers, test data.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `seedbox` binary under test.
pub fn seedbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seedbox"))
}

/// Runs `seedbox ARGS` and returns its output.
pub fn run(args: &[&str]) -> Output {
    seedbox().args(args).output().expect("run seedbox")
}

/// Debian's python (never a pyenv one from PATH), checked to import libtorrent. Panics with
/// the package to install when it is missing: interop tests never pass without their peer.
pub fn python_libtorrent() -> &'static str {
    let py = "/usr/bin/python3";
    let ok = Command::new(py)
        .args(["-c", "import libtorrent"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "interop test needs libtorrent for Debian's python: apt-get install -y python3-libtorrent"
    );
    py
}

/// Panics naming the Debian package when `binary` is not installed.
pub fn require_binary(binary: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "interop test needs `{binary}`: apt-get install -y {package}"
    );
}

/// Runs a python script with Debian's python and libtorrent; panics with its stderr on failure.
pub fn python(script: &str, args: &[&str]) -> String {
    let py = python_libtorrent();
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `files` (relative path, length) with pseudo-random content below `root`.
pub fn write_tree(root: &Path, files: &[(&str, usize)]) {
    for (i, (rel, len)) in files.iter().enumerate() {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, pseudo_random(*len, i as u64 + 1)).unwrap();
    }
}

/// A multi-file release: nested folders, a zero-length file, files sharing pieces (with
/// 32 KiB pieces), and a file larger than one piece.
pub const MULTI_FILES: &[(&str, usize)] = &[
    ("release/a/small.txt", 1_000),
    ("release/a/zero.bin", 0),
    ("release/b/c/mid.bin", 50_000),
    ("release/big.bin", 300_001),
    ("release/z.txt", 7),
];

/// Creates a folder `dir/name`, returning its path.
pub fn dir_in(parent: &Path, name: &str) -> PathBuf {
    let p = parent.join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A running libtorrent peer (tests/support/lt_peer.py), killed on drop.
pub struct LtPeer {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Its listen port.
    pub port: u16,
}

impl LtPeer {
    /// Starts `lt_peer.py` with `args` and waits for its LISTEN line.
    pub fn start(args: &[&str]) -> LtPeer {
        use std::io::BufRead;
        let py = python_libtorrent();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/lt_peer.py");
        let mut child = Command::new(py)
            .arg(script)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start lt_peer.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = LtPeer {
            child,
            lines,
            port: 0,
        };
        let line = peer
            .wait_for("LISTEN", std::time::Duration::from_secs(20))
            .expect("libtorrent peer did not start listening");
        peer.port = line[7..].trim().parse().unwrap();
        peer
    }

    /// Waits up to `timeout` for a line starting with `prefix`; returns it.
    pub fn wait_for(&mut self, prefix: &str, timeout: std::time::Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Some(line),
                Ok(line) if line.starts_with("ERROR") => panic!("libtorrent peer: {line}"),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl Drop for LtPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
