//! One choke round per torrent over all cores, seen from outside: a torrent seeded with
//! `--unchoke-slots 4` on 2 worker threads to 9 rate-limited libtorrent leechers never has
//! more than 4 + 1 unchoked peers (the admin API's count, polled through the download), and
//! uses all five; and the fastest peers keep the regular slots wherever they live.

mod seed_support;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seed_support::{assert_same_file, create_release, require_libtorrent, Seed};
use support::LtPeer;

const LEECHERS: usize = 9;

/// The torrent's `peers` and `unchoked_peers` from `/api/v1/torrents`.
fn counts(admin: SocketAddr) -> (u64, u64) {
    use std::io::Write;
    let mut s = support::http_connect(admin);
    s.write_all(b"GET /api/v1/torrents HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, body) = support::read_http_response(&mut s);
    assert!(status.contains("200"), "{status}");
    let body = String::from_utf8_lossy(&body).into_owned();
    let field = |name: &str| -> u64 {
        let at = body.find(&format!("\"{name}\":")).expect(name) + name.len() + 3;
        body[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    (field("peers"), field("unchoked_peers"))
}

#[test]
fn four_slots_on_two_cores_never_unchoke_more_than_five_peers() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    // 2 MiB to each of 9 leechers limited to 60 kB/s: with 5 unchoked at a time the download
    // lasts about a minute, several choke rounds.
    let len = 2 << 20;
    create_release(dir.path(), "a.bin", len, 18);
    let seed = Seed::start(
        &[
            "a.bin.torrent",
            "--threads",
            "2",
            "--unchoke-slots",
            "4",
            "--stats-every",
            "0",
            "--admin",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let admin = seed.admin();
    let connect = seed.addr.to_string();
    let torrent = dir.path().join("a.bin.torrent");
    let mut leechers: Vec<LtPeer> = (0..LEECHERS)
        .map(|i| {
            let save = dir.path().join(format!("dl-{i}"));
            LtPeer::leech(
                &torrent,
                &save,
                &[
                    "--connect",
                    &connect,
                    "--download-limit",
                    "60000",
                    "--plaintext",
                    "--timeout",
                    "600",
                ],
            )
        })
        .collect();
    // Poll until every leecher is done, collecting the unchoked counts.
    let start = Instant::now();
    let (mut most, mut samples, mut full) = (0, 0, 0);
    let mut done = vec![false; LEECHERS];
    while done.iter().any(|d| !d) {
        assert!(
            start.elapsed() < Duration::from_secs(480),
            "leechers not done after 8 minutes: {done:?}; most unchoked {most}"
        );
        let (peers, unchoked) = counts(admin);
        most = most.max(unchoked);
        samples += 1;
        if unchoked == 5 {
            full += 1;
        }
        assert!(
            unchoked <= 5,
            "{unchoked} of {peers} peers unchoked at {:?}",
            start.elapsed()
        );
        for (i, l) in leechers.iter_mut().enumerate() {
            if !done[i] && l.wait_for("DONE", Duration::from_millis(1)).is_some() {
                done[i] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..LEECHERS {
        assert_same_file(
            &dir.path().join("a.bin"),
            &dir.path().join(format!("dl-{i}/a.bin")),
        );
    }
    // The slots were used: five unchoked (of more peers wanting data) in a good share of
    // the samples, not one per core.
    assert!(
        full * 4 >= samples,
        "5 unchoked in {full} of {samples} samples (most {most})"
    );
    eprintln!(
        "{samples} samples over {:?}, 5 unchoked in {full}, most {most}",
        start.elapsed()
    );
}

/// 4 fast leechers (400 kB/s) and 6 slow ones (20 kB/s) of a torrent seeded with
/// `--unchoke-slots 4` on 2 worker threads. Which peers are unchoked first is chance (the
/// slots fill as peers arrive, and a choked peer shows the seed no rate until an optimistic
/// unchoke), so the test checks what the per-torrent ranking guarantees: a fast peer that has
/// been unchoked through a choke round (its rate known, above every slow peer's) keeps a slot
/// until it is done, whichever core it lives on. A per-core split of the slots (2 + 1 per
/// core) chokes one of three fast peers that share a core.
#[test]
fn a_fast_peer_once_measured_keeps_its_slot_on_either_core() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    // 16 MiB: about 42 s for a fast leecher once unchoked, several rounds.
    let len = 16 << 20;
    create_release(dir.path(), "b.bin", len, 18);
    let seed = Seed::start(
        &[
            "b.bin.torrent",
            "--threads",
            "2",
            "--unchoke-slots",
            "4",
            "--stats-every",
            "0",
        ],
        dir.path(),
    );
    let connect = seed.addr.to_string();
    let torrent = dir.path().join("b.bin.torrent");
    const FAST: usize = 4;
    let mut leechers: Vec<LtPeer> = (0..10)
        .map(|i| {
            let limit = if i < FAST { "400000" } else { "20000" };
            let save = dir.path().join(format!("dl-{i}"));
            LtPeer::leech(
                &torrent,
                &save,
                &[
                    "--connect",
                    &connect,
                    "--download-limit",
                    limit,
                    "--plaintext",
                    "--report-choke",
                    "--timeout",
                    "900",
                ],
            )
        })
        .collect();
    // Per fast leecher: seconds unchoked in a row, whether it was ever unchoked through a
    // round (12 s in a row), whether it is done, and its progress.
    let mut run = [0u32; FAST];
    let mut measured = [false; FAST];
    let mut done = [false; FAST];
    let mut progress = [0f64; FAST];
    let start = Instant::now();
    while done.iter().any(|d| !d) {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "fast leechers not done after 10 minutes: {done:?}"
        );
        for i in 0..FAST {
            for line in leechers[i].drain() {
                if line.starts_with("DONE") {
                    done[i] = true;
                } else if let Some(p) = line.strip_prefix("PROGRESS ") {
                    progress[i] = p.split(' ').next().unwrap().parse().unwrap();
                } else if let Some(choked) = line.strip_prefix("CHOKED ") {
                    // At the very end a leecher says it is not interested and is choked.
                    if done[i] || progress[i] > 0.98 {
                        continue;
                    }
                    if choked == "0" {
                        run[i] += 1;
                        measured[i] |= run[i] >= 12;
                    } else {
                        assert!(
                            !measured[i],
                            "fast leecher {i} choked at {:?} after holding a slot through a round",
                            start.elapsed()
                        );
                        run[i] = 0;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for i in 0..FAST {
        assert_same_file(
            &dir.path().join("b.bin"),
            &dir.path().join(format!("dl-{i}/b.bin")),
        );
    }
    let held = measured.iter().filter(|m| **m).count();
    assert!(
        held >= 2,
        "only {held} fast leechers held a slot through a round"
    );
    eprintln!(
        "{held} fast leechers held a slot through a round; done at {:?}",
        start.elapsed()
    );
}
