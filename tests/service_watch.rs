//! `seedbox seed --watch DIR` on the real service: a data file and a .torrent (data under
//! --data) dropped into the folder are each downloaded byte-exact by a real libtorrent
//! leecher; removing the .torrent closes its peers and sends its `stopped` announce while the
//! other keeps serving; a junk .torrent is skipped with a clear log line; a file still being
//! written is not seeded until it settles; the polling fallback seeds too.

mod seed_support;
mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seed_support::{assert_same_file, data, lt_leech, require_libtorrent, RawPeer, Seed};

fn torrents(admin: SocketAddr) -> String {
    support::torrent_list(admin, None)
}

fn wait_list(admin: SocketAddr, what: &str, cond: impl Fn(&str) -> bool) -> String {
    support::wait_list(admin, None, what, cond)
}

fn hex_bytes(hex: &str) -> [u8; 20] {
    hex::decode(hex).unwrap().try_into().unwrap()
}

#[test]
fn dropped_releases_are_seeded_and_removed_ones_stopped() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let (watch, store, dl) = (
        dir.path().join("watch"),
        dir.path().join("data"),
        dir.path().join("dl"),
    );
    for d in [&watch, &store, &dl] {
        std::fs::create_dir(d).unwrap();
    }
    let (tracker, announces) = support::recording_tracker();
    let mut seed = Seed::start_announcing(
        &[
            "--watch",
            watch.to_str().unwrap(),
            "--data",
            store.to_str().unwrap(),
            "--threads",
            "2",
            "--stats-every",
            "0",
            "--admin",
            "127.0.0.1:0",
            "--tracker-listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let admin = seed.admin();
    assert!(torrents(admin).trim() == "[]", "{}", torrents(admin));

    // A junk .torrent: skipped, the service keeps going.
    std::fs::write(watch.join("junk.torrent"), b"this is not bencode").unwrap();

    // A data file, written in two halves a while apart: not seeded half-copied.
    let release = data(700_000, 1);
    {
        let mut f = std::fs::File::create(watch.join("release.bin")).unwrap();
        f.write_all(&release[..300_000]).unwrap();
        f.sync_all().unwrap();
        // Half the file sits there; then the rest comes.
        std::thread::sleep(Duration::from_millis(300));
        f.write_all(&release[300_000..]).unwrap();
    }
    // A .torrent whose data is under --data.
    std::fs::write(store.join("other.bin"), data(500_000, 2)).unwrap();
    let other_torrent = dir.path().join("other.torrent");
    support::create(
        &store.join("other.bin"),
        &other_torrent,
        &["-l", "16K", "-a", &tracker],
    );
    let other_hash = support::info_hash_hex(&other_torrent);
    std::fs::copy(&other_torrent, watch.join("other.torrent")).unwrap();

    let created = watch.join("release.bin.torrent");
    wait_list(admin, "both dropped releases seeded", |l| {
        l.contains(&other_hash) && l.contains("release.bin") && created.exists()
    });
    let release_hash = support::info_hash_hex(&created);
    let list = torrents(admin);
    assert_eq!(list.matches("\"info_hash\"").count(), 2, "{list}");
    // The created torrent holds the whole file, not the half seen first.
    let (status, body) = support::http_get(admin, &format!("/api/v1/torrents/{release_hash}"));
    assert!(
        status.contains("200") && String::from_utf8_lossy(&body).contains("\"size\":700000"),
        "{status} {}",
        String::from_utf8_lossy(&body)
    );

    lt_leech(&created, &dl.join("r"), seed.addr, Duration::from_secs(90));
    assert_same_file(&watch.join("release.bin"), &dl.join("r/release.bin"));
    lt_leech(
        &other_torrent,
        &dl.join("o"),
        seed.addr,
        Duration::from_secs(90),
    );
    assert_same_file(&store.join("other.bin"), &dl.join("o/other.bin"));
    seed.assert_alive();

    // Remove other.torrent: its peer is closed and its stopped announce goes out; the
    // release keeps serving.
    let mut peer = RawPeer::handshake(seed.addr, hex_bytes(&other_hash), true);
    std::fs::remove_file(watch.join("other.torrent")).unwrap();
    peer.expect_closed(Duration::from_secs(30));
    wait_list(admin, "other removed from the list", |l| {
        !l.contains(&other_hash) && l.contains(&release_hash)
    });
    let start = Instant::now();
    while !announces
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("event=stopped"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no stopped announce: {:?}",
            announces.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    lt_leech(&created, &dl.join("r2"), seed.addr, Duration::from_secs(90));
    assert_same_file(&watch.join("release.bin"), &dl.join("r2/release.bin"));

    // Removing the data file stops it and takes the torrent created for it.
    std::fs::remove_file(watch.join("release.bin")).unwrap();
    wait_list(admin, "release removed", |l| !l.contains(&release_hash));
    // The torrent leaves the list before its created .torrent is deleted.
    seed_support::wait_until("created torrent deleted", Duration::from_secs(30), || {
        (!created.exists()).then_some(()).ok_or(())
    });
    assert!(watch.join("junk.torrent").exists());

    seed.assert_alive();
    let (status, err) = seed.terminate();
    assert!(status.success(), "{status}\n{err}");
    assert!(
        err.contains("skipping") && err.contains("junk.torrent: not a valid .torrent"),
        "{err}"
    );
}

#[test]
fn the_polling_fallback_seeds_a_dropped_folder() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let (watch, dl) = (dir.path().join("watch"), dir.path().join("dl"));
    std::fs::create_dir(&watch).unwrap();
    let mut seed = Seed::start(
        &[
            "--watch",
            watch.to_str().unwrap(),
            "--watch-poll",
            "0.5",
            "--threads",
            "1",
            "--stats-every",
            "0",
            "--admin",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let admin = seed.admin();
    // Built beside the folder, then moved in whole.
    let staged = dir.path().join("album");
    std::fs::create_dir_all(staged.join("disc1")).unwrap();
    std::fs::write(staged.join("disc1/a.flac"), data(200_000, 3)).unwrap();
    std::fs::write(staged.join("b.txt"), data(1_000, 4)).unwrap();
    std::fs::rename(&staged, watch.join("album")).unwrap();
    wait_list(admin, "the folder seeded", |l| l.contains("\"album\""));
    let created = watch.join("album.torrent");
    assert!(created.exists());
    lt_leech(&created, &dl, seed.addr, Duration::from_secs(90));
    assert_same_file(
        &watch.join("album/disc1/a.flac"),
        &dl.join("album/disc1/a.flac"),
    );
    assert_same_file(&watch.join("album/b.txt"), &dl.join("album/b.txt"));
    seed.assert_alive();
    let (status, err) = seed.terminate();
    assert!(status.success(), "{status}\n{err}");
    assert!(err.contains("polling every 0.5 s"), "{err}");
}
