//! `seedbox seed` under systemd (`dist/seedbox.service`, `Type=notify`): READY=1 on the socket
//! `$NOTIFY_SOCKET` names (a path or an @abstract name) once the seed serves, STATUS= lines
//! that follow its peers, STOPPING=1 at the end; and the unit file passes
//! `systemd-analyze verify`.

mod seed_support;
mod support;

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use seed_support::{data, msg, RawPeer, Seed};

/// The notifications received, in order.
struct Socket {
    socket: UnixDatagram,
    got: Vec<String>,
}

impl Socket {
    fn new(socket: UnixDatagram) -> Socket {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Socket {
            socket,
            got: Vec::new(),
        }
    }

    /// Reads datagrams until one has a line for which `want` holds (at most 60 s); returns
    /// that line.
    fn wait(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        loop {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.got.push(text.clone());
                if let Some(line) = text.lines().find(|l| want(l)) {
                    return line.to_owned();
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no {what} within 60 s; got {:?}",
                self.got
            );
        }
    }
}

fn release(dir: &Path) -> [u8; 20] {
    std::fs::write(dir.join("r.bin"), data(1 << 20, 7)).unwrap();
    support::create(&dir.join("r.bin"), &dir.join("r.torrent"), &["-l", "16K"]);
    let hex = support::info_hash_hex(&dir.join("r.torrent"));
    hex::decode(hex).unwrap().try_into().unwrap()
}

fn start(dir: &Path, notify_socket: &OsStr) -> Seed {
    Seed::start_with_env(
        &[
            "r.torrent",
            "--no-tracker",
            "--threads",
            "1",
            "--stats-every",
            "0",
        ],
        dir,
        &[("NOTIFY_SOCKET", notify_socket)],
    )
}

#[test]
fn ready_comes_once_serving_then_status_lines_follow_the_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hash = release(dir);
    let path = dir.join("notify");
    let mut socket = Socket::new(UnixDatagram::bind(&path).unwrap());
    let seed = start(dir, path.as_os_str());

    socket.wait("READY=1", |l| l == "READY=1");
    // READY means serving: a peer connecting now is served a block at once.
    let mut peer = RawPeer::handshake(seed.addr, hash, true);
    peer.get_unchoked();
    peer.write(&RawPeer::request(0, 0, 16384));
    assert_eq!(peer.wait_for(msg::PIECE).len(), 8 + 16384);
    assert!(
        socket
            .got
            .iter()
            .any(|m| m.contains("STATUS=checking 1 targets")),
        "the check before READY: {:?}",
        socket.got
    );
    socket.wait("the status with the peer", |l| {
        l == "STATUS=serving 1 torrent, 1 peer"
    });
    drop(peer);
    socket.wait("the status without it", |l| {
        l == "STATUS=serving 1 torrent, 0 peers"
    });

    // A reload is no second start.
    seed.signal(libc::SIGHUP);
    let (status, log) = seed.terminate();
    assert!(status.success(), "{status}\n{log}");
    socket.wait("STOPPING=1", |l| l == "STOPPING=1");
    let ready = socket.got.iter().filter(|m| m.contains("READY=1")).count();
    assert_eq!(ready, 1, "{:?}", socket.got);
}

#[test]
fn an_abstract_notify_socket_gets_ready() {
    use std::os::linux::net::SocketAddrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    release(dir);
    let name = format!(
        "seedbox-test-notify-{}-{}",
        std::process::id(),
        rand_suffix()
    );
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let mut socket = Socket::new(UnixDatagram::bind_addr(&addr).unwrap());
    let seed = start(dir, OsStr::new(&format!("@{name}")));
    socket.wait("READY=1", |l| l == "READY=1");
    socket.wait("a status line", |l| {
        l.starts_with("STATUS=serving 1 torrent")
    });
    let (status, log) = seed.terminate();
    assert!(status.success(), "{status}\n{log}");
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

#[test]
fn the_unit_file_verifies() {
    support::require_binary("systemd-analyze", "systemd");
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/seedbox.service"))
            .unwrap();
    for want in [
        "Type=notify",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.lines().any(|l| l == want), "no {want}");
    }
    let nofile: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE")
        .parse()
        .unwrap();
    assert!(
        nofile >= 10_000 + 1_000,
        "LimitNOFILE={nofile} for 10,000 peers"
    );
    // Verified with the binary this test built in place of the installed one.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("seedbox.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/seedbox", env!("CARGO_BIN_EXE_seedbox")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {}\n{err}",
        out.status
    );
}
