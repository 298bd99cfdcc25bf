//! `seedbox seed --config FILE` on the real service: the file's keys apply under the command
//! line's flags (which win), SIGHUP re-reads it and changes the unchoke slots, the upload
//! limit and the watch folder without dropping a peer, a file that no longer parses is
//! logged and the running settings stay, a watch folder first given by a re-read starts the
//! embedded tracker as one given at start does, and an unknown key is refused with its name.

mod seed_support;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use seed_support::{data, msg, wait_until, RawPeer, Seed};
use seedbox::tracker::announce::ScrapeResponse;

const BLOCK: u32 = 16384;

/// `(peers, unchoked_peers)` of one torrent from the admin API.
fn peers(admin: SocketAddr, hash: &str) -> (u64, u64) {
    let (status, body) = support::http_get(admin, &format!("/api/v1/torrents/{hash}"));
    assert!(status.contains("200"), "{status}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (
        v["peers"].as_u64().unwrap(),
        v["unchoked_peers"].as_u64().unwrap(),
    )
}

fn listed(admin: SocketAddr, hash: &str) -> bool {
    let (_, body) = support::http_get(admin, "/api/v1/torrents");
    String::from_utf8_lossy(&body).contains(hash)
}

/// Requests `n` blocks (pieces 0..n of 16 KiB) and reads them; returns how long it took.
fn fetch(peer: &mut RawPeer, n: u32) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        peer.write(&RawPeer::request(i, 0, BLOCK));
    }
    for _ in 0..n {
        let piece = peer.wait_for(msg::PIECE);
        assert_eq!(piece.len(), 8 + BLOCK as usize);
    }
    start.elapsed()
}

fn write_config(path: &Path, text: &str) {
    // Written beside and renamed in, as an editor or a config manager does.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn sighup_changes_slots_limits_and_the_watch_folder_without_dropping_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (store, w1, w2) = (dir.join("data"), dir.join("w1"), dir.join("w2"));
    for d in [&store, &w1, &w2] {
        std::fs::create_dir(d).unwrap();
    }
    for (name, len, salt) in [("a.bin", 2 << 20, 1), ("b.bin", 256 << 10, 2)] {
        std::fs::write(store.join(name), data(len, salt)).unwrap();
        support::create(
            &store.join(name),
            &dir.join(format!("{name}.torrent")),
            &["-l", "16K"],
        );
    }
    let a = support::info_hash_hex(&dir.join("a.bin.torrent"));
    let b = support::info_hash_hex(&dir.join("b.bin.torrent"));
    std::fs::copy(dir.join("a.bin.torrent"), w1.join("a.bin.torrent")).unwrap();
    // The new folder holds A too (it keeps serving, its peers stay) and B.
    std::fs::copy(dir.join("a.bin.torrent"), w2.join("a.bin.torrent")).unwrap();
    std::fs::copy(dir.join("b.bin.torrent"), w2.join("b.bin.torrent")).unwrap();

    let config = dir.join("seedbox.toml");
    let base = format!(
        "data = \"{}\"\nthreads = 1\nstats-every = 0\nadmin = \"127.0.0.1:0\"\n\
         # The command line's --listen wins: this address is not on this machine.\n\
         listen = \"192.0.2.1:6881\"\n",
        store.display()
    );
    let first = format!(
        "{base}watch = \"{}\"\nunchoke-slots = 1\nmax-upload-rate = \"2560kbit\"\n",
        w1.display()
    );
    write_config(&config, &first);
    let mut seed = Seed::start(&["--config", config.to_str().unwrap()], dir);
    let admin = seed.admin();
    wait_until("A seeded from w1", Duration::from_secs(60), || {
        listed(admin, &a).then_some(()).ok_or(())
    });

    // Three interested peers; one slot plus the optimistic unchoke.
    let hash_a: [u8; 20] = hex::decode(&a).unwrap().try_into().unwrap();
    let mut raw: Vec<RawPeer> = (0..3)
        .map(|_| {
            let mut p = RawPeer::handshake(seed.addr, hash_a, true);
            p.write(&RawPeer::message(msg::INTERESTED, &[]));
            p
        })
        .collect();
    wait_until("3 peers, 2 unchoked", Duration::from_secs(30), || {
        let p = peers(admin, &a);
        (p == (3, 2)).then_some(()).ok_or(p)
    });

    // SIGHUP with unlimited slots: every peer unchoked, none dropped.
    write_config(
        &config,
        &format!(
            "{base}watch = \"{}\"\nunchoke-slots = \"unlimited\"\nmax-upload-rate = \"2560kbit\"\n",
            w1.display()
        ),
    );
    seed.signal(libc::SIGHUP);
    wait_until("3 peers, 3 unchoked", Duration::from_secs(30), || {
        let p = peers(admin, &a);
        (p == (3, 3)).then_some(()).ok_or(p)
    });
    // The limit is 320 kB/s: 40 blocks (640 KiB, a 64 KiB burst) take at least 1.8 s.
    raw[0].wait_for(msg::UNCHOKE);
    let limited = fetch(&mut raw[0], 40);
    assert!(limited >= Duration::from_millis(1500), "{limited:?}");

    // SIGHUP with no limit and the other folder: B seeded from w2, A still served to the same
    // connection, now unthrottled.
    write_config(
        &config,
        &format!(
            "{base}watch = \"{}\"\nunchoke-slots = \"unlimited\"\n",
            w2.display()
        ),
    );
    seed.signal(libc::SIGHUP);
    wait_until("B seeded from w2", Duration::from_secs(60), || {
        listed(admin, &b).then_some(()).ok_or(())
    });
    // The limit went with the same re-read; the watch folder settles over a second or more.
    let free = fetch(&mut raw[0], 40);
    assert!(
        free * 2 < limited,
        "{free:?} unlimited vs {limited:?} limited"
    );
    assert_eq!(peers(admin, &a).0, 3, "no peer dropped");

    // A config that no longer parses: logged, the running settings stay (one slot would
    // choke two of the three peers).
    write_config(
        &config,
        &format!("{base}unchoke-slots = 0\nbogus-key = 1\n"),
    );
    seed.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(peers(admin, &a), (3, 3));
    assert!(listed(admin, &b));
    let more = fetch(&mut raw[1], 4);
    assert!(more < Duration::from_secs(10));
    seed.assert_alive();

    let (status, log) = seed.terminate();
    assert!(status.success(), "{status}\n{log}");
    for want in [
        "unchoke-slots 1, max-upload-rate 320000 bytes/s",
        "re-read: unchoke-slots unlimited",
        "max-upload-rate none",
        &format!("watch {}", w2.display()),
        "bogus-key",
        "keeping the running settings",
    ] {
        assert!(log.contains(want), "no `{want}` in the log:\n{log}");
    }
    drop(raw);
}

/// The complete count of `hash` (hex) in a scrape of the tracker at `tracker`.
fn seeds_on(tracker: SocketAddr, hash: &str) -> u32 {
    let target = format!(
        "/scrape?info_hash={}",
        support::url_encode(&hex::decode(hash).unwrap())
    );
    let (_, body) = support::http_get(tracker, &target);
    let scrape = ScrapeResponse::decode(&body).expect("a scrape reply");
    scrape.files.first().map_or(0, |(_, f)| f.complete)
}

#[test]
fn a_watch_folder_added_by_sighup_gets_the_embedded_tracker() {
    seed_support::require_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let watch = dir.join("w");
    std::fs::create_dir(&watch).unwrap();
    seed_support::create_release(dir, "a.bin", 256 << 10, 3);
    let config = dir.join("seedbox.toml");
    let base = format!(
        "data = \"{}\"\nthreads = 1\nstats-every = 0\nadmin = \"127.0.0.1:0\"\n",
        dir.display()
    );
    write_config(&config, &base);
    // A .torrent target and no watch folder: no embedded tracker at start.
    let mut seed = Seed::start_announcing(
        &["a.bin.torrent", "--config", config.to_str().unwrap()],
        dir,
    );
    assert!(
        !seed.banner.iter().any(|l| l.starts_with("tracker")),
        "{:?}",
        seed.banner
    );
    let admin = seed.admin();

    // The re-read adds the watch folder (and where its tracker listens, a start-only key
    // that a tracker started now takes).
    write_config(
        &config,
        &format!(
            "{base}watch = \"{}\"\ntracker-listen = \"127.0.0.1:0\"\n",
            watch.display()
        ),
    );
    seed.signal(libc::SIGHUP);
    std::fs::write(watch.join("r.bin"), data(700_000, 4)).unwrap();
    let created = watch.join("r.bin.torrent");
    wait_until("r.bin seeded", Duration::from_secs(60), || {
        (created.exists() && listed(admin, &support::info_hash_hex(&created)))
            .then_some(())
            .ok_or(())
    });
    let r = support::info_hash_hex(&created);

    // The created torrent announces to the embedded tracker, whose pages list every torrent
    // served (a.bin, there before, too), and a libtorrent leecher that knows only the torrent
    // finds the seed through it.
    let shown = support::run(&["show", "--json", created.to_str().unwrap()]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let announce = shown["trackers"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no tracker in the created torrent: {shown}"))
        .to_owned();
    let tracker: SocketAddr = announce
        .strip_prefix("http://")
        .and_then(|r| r.strip_suffix("/announce"))
        .unwrap_or_else(|| panic!("{announce}"))
        .parse()
        .unwrap();
    let (status, index) = support::http_get(tracker, "/torrents/");
    let index = String::from_utf8_lossy(&index);
    assert!(
        status.contains("200")
            && index.contains("r.bin.torrent")
            && index.contains("a.bin.torrent"),
        "{status} {index}"
    );
    wait_until("the seed announced r.bin", Duration::from_secs(30), || {
        let n = seeds_on(tracker, &r);
        (n >= 1).then_some(()).ok_or(n)
    });
    let dl = dir.join("dl");
    std::fs::create_dir(&dl).unwrap();
    let mut leech = support::LtPeer::leech(&created, &dl, &["--tracker"]);
    leech.wait_done(
        Duration::from_secs(90),
        "r.bin through the embedded tracker",
    );
    seed_support::assert_same_file(&watch.join("r.bin"), &dl.join("r.bin"));
    drop(leech);

    seed.assert_alive();
    let (status, log) = seed.terminate();
    assert!(status.success(), "{status}\n{log}");
    assert!(
        log.contains(&format!(
            "embedded tracker started for the watch folder: {announce}"
        )),
        "{log}"
    );
    assert!(!log.contains("take effect at the next start"), "{log}");
}

#[test]
fn a_config_with_an_unknown_key_is_refused_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("seedbox.toml");
    std::fs::write(&config, "watch = \".\"\nunchoke-slot = 4\n").unwrap();
    let out = support::seedbox()
        .args([
            "seed",
            "--no-tracker",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("seedbox.toml: line 2: unknown field `unchoke-slot`"),
        "{err}"
    );
}
