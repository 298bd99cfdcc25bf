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
    require_debian_python_module("libtorrent", "python3-libtorrent");
    DEBIAN_PYTHON
}

/// Debian's python, which the tests use for real peers and parsers.
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Panics, naming the Debian package to install, when Debian's python cannot import `module`.
pub fn require_debian_python_module(module: &str, package: &str) {
    let ok = Command::new(DEBIAN_PYTHON)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs `import {module}` in Debian's python: apt-get install -y {package}"
    );
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

/// Runs `seedbox create SRC -o OUT -q ARGS...`; panics with its stderr when it fails.
pub fn create(src: &Path, out: &Path, args: &[&str]) {
    let o = seedbox()
        .arg("create")
        .arg(src)
        .arg("-o")
        .arg(out)
        .arg("-q")
        .args(args)
        .output()
        .expect("run seedbox create");
    assert!(
        o.status.success(),
        "seedbox create: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The info-hash of `torrent` in hex, as `seedbox show --json` reports it.
pub fn info_hash_hex(torrent: &Path) -> String {
    let o = seedbox()
        .args(["show", "--json"])
        .arg(torrent)
        .output()
        .expect("run seedbox show");
    serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("show --json")["info_hash"]
        .as_str()
        .expect("an info_hash")
        .to_owned()
}

/// Panics unless the files `want` and `got` hold the same bytes.
pub fn assert_same_file(want: &Path, got: &Path) {
    let w = std::fs::read(want).unwrap_or_else(|e| panic!("{}: {e}", want.display()));
    let g = std::fs::read(got).unwrap_or_else(|e| panic!("{}: {e}", got.display()));
    assert!(w == g, "{} differs from {}", got.display(), want.display());
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
        let py = python_libtorrent();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/lt_peer.py");
        let mut child = Command::new(py)
            .arg(script)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start lt_peer.py");
        let lines = line_reader(child.stdout.take().unwrap());
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

    /// A libtorrent seed of `torrent` whose content is in `save`; `extra` adds lt_peer.py
    /// flags (`--tracker`, `--upload-limit N`, ...).
    pub fn seed(torrent: &Path, save: &Path, extra: &[&str]) -> LtPeer {
        LtPeer::with_mode("seed", torrent, save, extra)
    }

    /// A libtorrent leecher of `torrent` into `save`; `extra` as for [`LtPeer::seed`].
    pub fn leech(torrent: &Path, save: &Path, extra: &[&str]) -> LtPeer {
        LtPeer::with_mode("leech", torrent, save, extra)
    }

    fn with_mode(mode: &str, torrent: &Path, save: &Path, extra: &[&str]) -> LtPeer {
        let mut args = vec![
            "--torrent",
            torrent.to_str().unwrap(),
            "--save",
            save.to_str().unwrap(),
            "--mode",
            mode,
        ];
        args.extend_from_slice(extra);
        LtPeer::start(&args)
    }

    /// Waits up to `timeout` for the leecher's DONE line and returns the seconds it took;
    /// panics with `what` when it does not come.
    pub fn wait_done(&mut self, timeout: std::time::Duration, what: &str) -> f64 {
        let line = self
            .wait_for("DONE", timeout)
            .unwrap_or_else(|| panic!("{what}: the libtorrent leecher did not finish"));
        line[5..].trim().parse().unwrap_or(0.0)
    }

    /// The lines it printed since the last call (or since the last `wait_for`), without
    /// waiting.
    pub fn drain(&mut self) -> Vec<String> {
        self.lines.try_iter().collect()
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

/// Waits for `child` up to `timeout`, killing it when it overruns; returns its output.
pub fn wait_with_timeout(mut child: std::process::Child, timeout: std::time::Duration) -> Output {
    use std::io::Read;
    let deadline = std::time::Instant::now() + timeout;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A transmission-daemon seeding one torrent, stopped on drop.
pub struct Transmission {
    child: std::process::Child,
    /// Its peer port.
    pub peer_port: u16,
    /// Its RPC port.
    pub rpc_port: u16,
    _conf: tempfile::TempDir,
}

impl Transmission {
    /// Starts a daemon (uTP, DHT, LPD, PEX off; loopback only) seeding `torrent` whose content
    /// is in `data_dir`, and waits until it has verified the data and seeds.
    pub fn seed(torrent: &Path, data_dir: &Path) -> Transmission {
        require_binary("transmission-daemon", "transmission-daemon");
        require_binary("transmission-remote", "transmission-cli");
        let conf = tempfile::tempdir().unwrap();
        let (peer_port, rpc_port) = (free_port(), free_port());
        let settings = serde_json::json!({
            "rpc-port": rpc_port, "peer-port": peer_port, "download-dir": data_dir,
            "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
            "port-forwarding-enabled": false, "rpc-authentication-required": false,
            "rpc-whitelist-enabled": false, "peer-port-random-on-start": false,
            "bind-address-ipv4": "127.0.0.1", "rpc-bind-address": "127.0.0.1",
            "message-level": 1,
        });
        std::fs::write(conf.path().join("settings.json"), settings.to_string()).unwrap();
        let child = Command::new("transmission-daemon")
            .args(["-f", "-g"])
            .arg(conf.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start transmission-daemon");
        let tr = Transmission {
            child,
            peer_port,
            rpc_port,
            _conf: conf,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let added = tr
                .remote(&[
                    "-a",
                    torrent.to_str().unwrap(),
                    "-w",
                    data_dir.to_str().unwrap(),
                ])
                .status
                .success();
            if added {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "transmission-daemon did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        loop {
            let info = String::from_utf8_lossy(&tr.remote(&["-t", "1", "-i"]).stdout).into_owned();
            if info.contains("Percent Done: 100%")
                && (info.contains("State: Seeding") || info.contains("State: Idle"))
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "transmission did not start seeding: {info}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        tr
    }

    /// Runs `transmission-remote` against this daemon.
    pub fn remote(&self, args: &[&str]) -> Output {
        Command::new("transmission-remote")
            .arg(format!("127.0.0.1:{}", self.rpc_port))
            .args(args)
            .output()
            .expect("run transmission-remote")
    }
}

impl Drop for Transmission {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's opentracker on loopback (HTTP and UDP on one port), whitelisting `info_hashes`.
pub struct Opentracker {
    child: std::process::Child,
    /// Its port (TCP and UDP).
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Opentracker {
    /// Starts opentracker for these swarms (it is built whitelist-only in Debian).
    pub fn start(info_hashes_hex: &[String]) -> Opentracker {
        require_binary("opentracker", "opentracker");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("whitelist.txt"),
            info_hashes_hex.join("\n") + "\n",
        )
        .unwrap();
        // opentracker chroots and drops to nobody: let it read the folder.
        let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
        let port = free_port();
        let child = Command::new("opentracker")
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-P",
                &port.to_string(),
                "-d",
            ])
            .arg(dir.path())
            .args(["-w", "whitelist.txt"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start opentracker");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "opentracker did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Opentracker {
            child,
            port,
            _dir: dir,
        }
    }

    /// Its HTTP announce URL.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    /// Its UDP announce URL.
    pub fn udp_url(&self) -> String {
        format!("udp://127.0.0.1:{}", self.port)
    }
}

impl Drop for Opentracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes every byte (`%XX`), as a tracker query's `info_hash` and `peer_id`.
pub fn url_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|x| format!("%{x:02X}")).collect()
}

/// A TCP connection to `addr` whose reads give up after 10 s.
pub fn http_connect(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s
}

/// Reads one HTTP response: (status line, body). Panics on a closed connection.
pub fn read_http_response(s: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read response head");
        assert_eq!(n, 1, "connection closed before a response");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("content length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head.lines().next().unwrap().to_owned(), body)
}

/// `GET target` on a new connection to `addr`: (status line, body).
pub fn http_get(addr: std::net::SocketAddr, target: &str) -> (String, Vec<u8>) {
    use std::io::Write;
    let mut s = http_connect(addr);
    write!(s, "GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    read_http_response(&mut s)
}

/// `METHOD target` with `body` on a new connection to `addr`, with `Authorization: Bearer
/// TOKEN` when given: (status line, body as text).
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
    token: Option<&str>,
) -> (String, String) {
    use std::io::Write;
    let mut s = http_connect(addr);
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (and close) before reading a refused body.
    let _ = s.write_all(body);
    let (status, body) = read_http_response(&mut s);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `/metrics` through `prometheus_client.parser.text_string_to_metric_families`, printed back
/// as JSON: family name, type, and each sample's name, labels and value.
const PARSE_METRICS: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    out[fam.name] = {"type": fam.type, "samples": [[s.name, s.labels, s.value] for s in fam.samples]}
print(json.dumps(out))
"#;

/// Parses a Prometheus text exposition with the real parser (Debian's
/// python3-prometheus-client): `{family: {"type": T, "samples": [[name, labels, value]]}}`.
/// Panics with the parser's error when it refuses the text.
pub fn prometheus_parse(text: &str) -> serde_json::Value {
    use std::io::Write;
    require_debian_python_module("prometheus_client.parser", "python3-prometheus-client");
    let mut child = Command::new(DEBIAN_PYTHON)
        .args(["-c", PARSE_METRICS])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of sample `name` with `labels` in `family` of [`prometheus_parse`]'s output;
/// panics when there is none.
pub fn prometheus_sample(
    families: &serde_json::Value,
    family: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let fam = &families[family];
    let samples = fam["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family}"));
    samples
        .iter()
        .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k].as_str() == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {fam}"))[2]
        .as_f64()
        .unwrap()
}

/// The admin API's torrent list (`GET /api/v1/torrents`, with `token` when given), as text;
/// panics unless it answers 200.
pub fn torrent_list(admin: std::net::SocketAddr, token: Option<&str>) -> String {
    let (status, body) = http_request(admin, "GET", "/api/v1/torrents", b"", token);
    assert!(status.contains("200"), "{status} {body}");
    body
}

/// Polls the torrent list until `cond` holds (at most 60 s: a loaded machine); returns it.
pub fn wait_list(
    admin: std::net::SocketAddr,
    token: Option<&str>,
    what: &str,
    cond: impl Fn(&str) -> bool,
) -> String {
    let start = std::time::Instant::now();
    loop {
        let list = torrent_list(admin, token);
        if cond(&list) {
            return list;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{what}: not within 60 s; list {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A tracker that answers every HTTP announce with no peers and records each request line:
/// (its announce URL, the lines so far).
pub fn recording_tracker() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    use std::time::Duration;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/announce", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            log.lock()
                .unwrap()
                .push(head.lines().next().unwrap_or("").to_owned());
            let body = b"d8:intervali1800e5:peers0:e";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    (url, seen)
}

/// Runs headless Debian chromium with the flags a root, offline, throwaway run needs.
pub fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "this test needs a browser: apt-get install -y chromium"
    );
    std::process::Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium")
}

/// The lines a child prints on `stdout`, read by a thread of their own.
pub fn line_reader(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
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
    lines
}
