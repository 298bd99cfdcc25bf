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
        let mut all = args.to_vec();
        all.push("--no-tracker");
        Seed::start_announcing(&all, cwd)
    }

    /// Like [`Seed::start`], but announcing to the torrents' trackers. `--listen 127.0.0.1:0`
    /// unless `args` has a `--listen`.
    pub fn start_announcing(args: &[&str], cwd: &Path) -> Seed {
        Seed::start_with_env(args, cwd, &[])
    }

    /// Like [`Seed::start_announcing`], with extra environment variables.
    pub fn start_with_env(args: &[&str], cwd: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Seed {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_seedbox"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("seed").args(args);
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = cmd
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

/// Writes `len` bytes of test data (`salt`) to `dir/name` and creates `dir/name.torrent`
/// with 16 KiB pieces (`seedbox create -l 16K`, run in `dir`).
pub fn create_release(dir: &Path, name: &str, len: usize, salt: u64) {
    std::fs::write(dir.join(name), data(len, salt)).unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .args(["create", "-q", "-l", "16K", name])
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
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
    lt_leech_over(torrent, save, addr, limit, "tcp")
}

/// Like [`lt_leech`] over `transport`: "tcp" (uTP off) or "utp" (TCP off both ways).
pub fn lt_leech_over(
    torrent: &Path,
    save: &Path,
    addr: SocketAddr,
    limit: Duration,
    transport: &str,
) -> String {
    require_libtorrent();
    let out = Command::new(PYTHON)
        .arg(leech_script())
        .arg(torrent)
        .arg(save)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(limit.as_secs_f64().to_string())
        .arg(transport)
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

impl Seed {
    /// The info-hash of the `i`-th torrent printed in the banner.
    pub fn info_hash(&self, i: usize) -> [u8; 20] {
        let hex = self
            .banner
            .iter()
            .filter_map(|l| l.strip_prefix("info-hash "))
            .nth(i)
            .unwrap_or_else(|| panic!("no info-hash #{i} in {:?}", self.banner));
        let v = hex::decode(hex.trim()).expect("hex info-hash");
        v.try_into().expect("20 bytes")
    }

    /// The seed's anonymous resident memory in KiB (heap and stacks, not the mapped files).
    pub fn rss_anon_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("seed process status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssAnon")
    }

    /// The admin server's address, from the banner's `admin` line.
    pub fn admin(&self) -> SocketAddr {
        self.banner
            .iter()
            .find_map(|l| l.strip_prefix("admin     http://"))
            .expect("admin line in the banner")
            .trim_end_matches('/')
            .parse()
            .expect("admin address")
    }

    /// Sends `signal` to the seed.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Panics if the seed process has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            let err = self
                .stderr
                .take()
                .map(|t| t.join().unwrap_or_default())
                .unwrap_or_default();
            panic!("seedbox seed exited with {status}:\n{err}");
        }
    }
}

/// A hand-driven peer speaking raw BitTorrent over TCP, for hostile-peer tests.
pub struct RawPeer {
    pub stream: std::net::TcpStream,
}

/// Message ids used by the tests.
pub mod msg {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const REJECT: u8 = 16;
}

impl RawPeer {
    /// Connects; with `recv_buf`, the receive buffer is set before connecting (small buffers
    /// make a non-reading peer stall the sender sooner).
    pub fn connect(addr: SocketAddr, recv_buf: Option<usize>) -> RawPeer {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .unwrap();
        if let Some(n) = recv_buf {
            socket.set_recv_buffer_size(n).unwrap();
        }
        socket.connect(&addr.into()).expect("connect to the seed");
        let stream: std::net::TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RawPeer { stream }
    }

    /// Connects and exchanges handshakes (panics if the seed does not answer with one).
    pub fn handshake(addr: SocketAddr, info_hash: [u8; 20], fast: bool) -> RawPeer {
        let mut p = RawPeer::connect(addr, None);
        p.send_handshake(info_hash, fast);
        let mut theirs = [0u8; 68];
        std::io::Read::read_exact(&mut p.stream, &mut theirs).expect("the seed's handshake");
        assert_eq!(&theirs[28..48], &info_hash);
        p
    }

    /// Sends our handshake (Fast advertised when `fast`).
    pub fn send_handshake(&mut self, info_hash: [u8; 20], fast: bool) {
        let mut reserved = [0u8; 8];
        if fast {
            reserved[7] |= 0x04;
        }
        self.send_handshake_reserved(info_hash, reserved);
    }

    /// Sends our handshake with these reserved bytes.
    pub fn send_handshake_reserved(&mut self, info_hash: [u8; 20], reserved: [u8; 8]) {
        let mut h = Vec::with_capacity(68);
        h.push(19);
        h.extend_from_slice(b"BitTorrent protocol");
        h.extend_from_slice(&reserved);
        h.extend_from_slice(&info_hash);
        h.extend_from_slice(b"-XX0000-rawtestpeer0");
        self.write(&h);
    }

    /// Writes raw bytes (errors ignored: the seed may have hung up, which tests check).
    pub fn write(&mut self, bytes: &[u8]) {
        let _ = std::io::Write::write_all(&mut self.stream, bytes);
    }

    /// Encodes one message.
    pub fn message(id: u8, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(5 + payload.len());
        m.extend_from_slice(&(1 + payload.len() as u32).to_be_bytes());
        m.push(id);
        m.extend_from_slice(payload);
        m
    }

    /// Encodes a request.
    pub fn request(piece: u32, offset: u32, length: u32) -> Vec<u8> {
        let mut p = Vec::with_capacity(12);
        for v in [piece, offset, length] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        RawPeer::message(msg::REQUEST, &p)
    }

    /// Reads one message: `Some((id, payload))`, `None` for a keep-alive; `Err` when the
    /// connection ends or nothing comes within 10 s.
    pub fn read_message(&mut self) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        use std::io::Read;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            return Ok(None);
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body)?;
        let id = body.remove(0);
        Ok(Some((id, body)))
    }

    /// Reads until a message with `id`; returns its payload.
    pub fn wait_for(&mut self, id: u8) -> Vec<u8> {
        loop {
            match self.read_message() {
                Ok(Some((i, p))) if i == id => return p,
                Ok(_) => continue,
                Err(e) => panic!("connection ended waiting for message {id}: {e}"),
            }
        }
    }

    /// Sends `interested` and waits for `unchoke`.
    pub fn get_unchoked(&mut self) {
        self.write(&RawPeer::message(msg::INTERESTED, &[]));
        self.wait_for(msg::UNCHOKE);
    }

    /// Reads and discards until the seed closes the connection; returns the bytes read, or
    /// panics if it is still open after `limit`.
    pub fn expect_closed(&mut self, limit: Duration) -> u64 {
        use std::io::Read;
        let start = std::time::Instant::now();
        let mut total = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        self.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return total,
            }
            assert!(
                start.elapsed() < limit,
                "the seed kept the connection open for {limit:?} ({total} bytes read)"
            );
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some` (at most `limit`: tests run on a
/// loaded machine); panics with `what` and the last value seen otherwise.
pub fn wait_until<T, L: std::fmt::Debug>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, L>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if start.elapsed() >= limit => {
                panic!("{what}: not within {limit:?}; last seen {last:?}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
