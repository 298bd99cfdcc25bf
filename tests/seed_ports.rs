//! A port held by another program, another `seedbox seed` included, is a clear start-up
//! error: `SO_REUSEPORT` groups stay private to one process, so a second seed can never
//! silently share the first one's peer port (TCP and uTP's UDP) or tracker ports.

mod seed_support;
mod support;

use std::process::Command;

use seed_support::{data, Seed};

/// Runs `seedbox seed ARGS` that is expected to fail at once; returns its stderr.
fn seed_fails(args: &[&str], cwd: &std::path::Path) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_seedbox"))
        .arg("seed")
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = support::wait_with_timeout(child, std::time::Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "second seed started: {err}");
    err
}

#[test]
fn a_second_seed_on_the_same_ports_fails_with_address_in_use() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.bin"), data(100_003, 7)).unwrap();
    let (peer, tracker) = (support::free_port(), support::free_port());
    let peer_addr = format!("127.0.0.1:{peer}");
    let tracker_addr = format!("127.0.0.1:{tracker}");
    let first = Seed::start_announcing(
        &[
            "p.bin",
            "--listen",
            &peer_addr,
            "--tracker-listen",
            &tracker_addr,
        ],
        dir.path(),
    );
    assert_eq!(first.addr.port(), peer);

    // The same peer port, another tracker port.
    let other_tracker = format!("127.0.0.1:{}", support::free_port());
    let err = seed_fails(
        &[
            "p.bin",
            "--listen",
            &peer_addr,
            "--tracker-listen",
            &other_tracker,
        ],
        dir.path(),
    );
    assert!(err.contains("Address already in use"), "{err}");
    assert!(err.contains(&peer_addr), "{err}");

    // Another peer port, the same tracker port.
    let other_peer = format!("127.0.0.1:{}", support::free_port());
    let err = seed_fails(
        &[
            "p.bin",
            "--listen",
            &other_peer,
            "--tracker-listen",
            &tracker_addr,
        ],
        dir.path(),
    );
    assert!(err.contains("Address already in use"), "{err}");
    assert!(err.contains(&tracker_addr), "{err}");

    // The first seed is untouched and still serves its tracker.
    let mut page = std::net::TcpStream::connect(&tracker_addr).unwrap();
    use std::io::{Read, Write};
    page.write_all(b"GET /torrents/ HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    page.read_to_string(&mut body).unwrap();
    assert!(body.contains("p.bin"), "{body}");
    let (status, err) = first.terminate();
    assert!(status.success(), "{err}");
}

#[test]
fn a_udp_port_held_by_another_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.bin"), data(10_007, 8)).unwrap();
    // Held for UDP only: its TCP side is free, so only the UDP bind can see it.
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = holder.local_addr().unwrap().to_string();
    let err = seed_fails(
        &["u.bin", "--listen", "127.0.0.1:0", "--tracker-listen", &udp],
        dir.path(),
    );
    assert!(
        err.contains("udp") && err.contains("Address already in use"),
        "{err}"
    );
}
