//! Helpers for `seedbox seed` tests: a seed child process killed on drop, the
//! libtorrent leecher script, data generation.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Debian's python (a pyenv python may come first in PATH and lacks libtorrent).
pub const PYTHON: &str = "/usr/bin/python3";

/// A running `seedbox seed`, killed when dropped.
pub struct Seed {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every stdout line printed before `listening`.
    pub banner: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Seed {
    /// Starts `seedbox seed ARGS --listen 127.0.0.1:0` and waits (at most 60 s) for it to
    /// print where it listens.
    pub fn start(args: &[&str], cwd: &Path) -> Seed {
        let mut child = Command::new(env!("CARGO_BIN_EXE_seedbox"))
            .arg("seed")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--no-tracker"])
            .current_dir(cwd)
            .env("SEEDBOX_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run seedbox");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                s.push_str(&line);
                s.push('\n');
            }
            s
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("listening ") {
                        break a.trim().parse().expect("listen address");
                    }
                    banner.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let err = err_thread.join().unwrap_or_default();
                    panic!("seedbox seed did not start; stdout {banner:?}; stderr:\n{err}");
                }
            }
        };
        Seed {
            child,
            addr,
            banner,
            stderr: Some(err_thread),
        }
    }

    /// Sends SIGTERM and waits (at most 20 s) for a clean exit; returns the exit status and
    /// stderr.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                let err = self.stderr.take().unwrap().join().unwrap_or_default();
                return (status, err);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("seedbox seed did not exit within 20 s of SIGTERM");
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Path of the libtorrent leecher script.
pub fn leech_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed_support/lt_leech.py")
}

/// Fails with the Debian package's name when Debian's python lacks libtorrent.
pub fn require_libtorrent() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{PYTHON} cannot `import libtorrent`: install the Debian package python3-libtorrent"
    );
}

/// Downloads `torrent` into `save` from `addr` with a libtorrent leecher (TCP only), within
/// `limit`. Returns the leecher's output; panics with it on failure.
pub fn lt_leech(torrent: &Path, save: &Path, addr: SocketAddr, limit: Duration) -> String {
    require_libtorrent();
    let out = Command::new(PYTHON)
        .arg(leech_script())
        .arg(torrent)
        .arg(save)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(limit.as_secs_f64().to_string())
        .output()
        .expect("run the libtorrent leecher");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "libtorrent leecher failed:\n{text}");
    text
}

/// Asserts two files have the same bytes.
pub fn assert_same_file(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let y = std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert!(
        x == y,
        "{} and {} differ ({} vs {} bytes)",
        a.display(),
        b.display(),
        x.len(),
        y.len()
    );
}
