//! Issue 17's acceptance on one real service, `seed --watch DIR --admin --admin-token-file
//! --state` (with `--data` for the dropped .torrent files' content):
//! - two releases dropped into the watch folder, a .torrent with its data under --data and a
//!   data folder (its torrent created beside it), each downloaded byte-exact by a real
//!   libtorrent leecher;
//! - /metrics parsed by prometheus_client, each torrent's uploaded bytes within one block of
//!   what its one leecher received; /api/v1/torrents lists them;
//! - bad input while serving, each refused clearly while the others keep serving: a junk
//!   .torrent dropped into the folder (log line), a 1 MB garbage POST (4xx JSON), a wrong or
//!   missing token (401), a data file deleted under a served torrent (the torrent listed as
//!   `stopped` with the missing file as its reason, its peer closed). The config with an
//!   unknown key is tests/service_config.rs's `a_config_with_an_unknown_key_is_refused_with_its_name`;
//! - the .torrent removed from the folder: its peer closed, its `stopped` announce sent, the
//!   folder release still served;
//! - a restart served from the resume data (log line, nothing hashed);
//! - one byte changed while stopped: that torrent re-checked and refused, nothing of it served,
//!   the other still from its resume data and served.

mod seed_support;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seed_support::{
    assert_same_file, data, lt_leech, require_libtorrent, wait_until, RawPeer, Seed,
};
use serde_json::Value;

const TOKEN: &str = "acceptance-token-0123456789";
/// Each release's size: 128 pieces of 16 KiB.
const LEN: usize = 2 << 20;
const BLOCK: f64 = 16384.0;

/// The service's folders (absolute, under a temporary folder).
struct Folders {
    root: PathBuf,
    watch: PathBuf,
    data: PathBuf,
}

impl Folders {
    fn new(root: &Path) -> Folders {
        let f = Folders {
            root: root.to_path_buf(),
            watch: root.join("watch"),
            data: root.join("data"),
        };
        for d in [&f.watch, &f.data] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(root.join("token"), format!("{TOKEN}\n")).unwrap();
        f
    }

    /// `seed --watch --data --state --admin --admin-token-file`, announcing (the embedded
    /// tracker on a free loopback port).
    fn start(&self) -> (Seed, SocketAddr) {
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        let (watch, data) = (path(&self.watch), path(&self.data));
        let (state, token) = (
            path(&self.root.join("state")),
            path(&self.root.join("token")),
        );
        let seed = Seed::start_announcing(
            &[
                "--watch",
                &watch,
                "--data",
                &data,
                "--state",
                &state,
                "--admin",
                "127.0.0.1:0",
                "--admin-token-file",
                &token,
                "--tracker-listen",
                "127.0.0.1:0",
                "--threads",
                "2",
                "--stats-every",
                "0",
            ],
            &self.root,
        );
        let admin = seed.admin();
        (seed, admin)
    }

    /// A libtorrent leecher downloads `torrent` from `seed` into a new folder; its `file`
    /// (a path inside the torrent) must equal `want`.
    fn leech(&self, torrent: &Path, seed: SocketAddr, file: &str, want: &Path) {
        let into = tempfile::tempdir_in(&self.root).unwrap();
        lt_leech(torrent, into.path(), seed, Duration::from_secs(120));
        assert_same_file(want, &into.path().join(file));
    }
}

/// An admin request with the token.
fn api(admin: SocketAddr, method: &str, target: &str, body: &[u8]) -> (String, String) {
    support::http_request(admin, method, target, body, Some(TOKEN))
}

/// The listed torrent with this info-hash, if any.
fn entry(list: &str, hash: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(list).unwrap_or_else(|e| panic!("{e}: {list}"));
    v.as_array()?
        .iter()
        .find(|t| t["info_hash"] == hash)
        .cloned()
}

fn state_of(list: &str, hash: &str) -> Option<String> {
    entry(list, hash).map(|t| t["state"].as_str().unwrap_or("").to_owned())
}

/// Waits until every torrent of `hashes` is listed as seeding.
fn wait_seeding(admin: SocketAddr, hashes: &[&str]) -> String {
    support::wait_list(admin, Some(TOKEN), "seeding", |l| {
        hashes
            .iter()
            .all(|h| state_of(l, h).as_deref() == Some("seeding"))
    })
}

fn hex20(hex: &str) -> [u8; 20] {
    hex::decode(hex).unwrap().try_into().unwrap()
}

/// Whether the recording tracker saw a `stopped` announce from the seed listening on `port`.
fn stopped_announce(announces: &Arc<Mutex<Vec<String>>>, port: u16) -> bool {
    announces.lock().unwrap().iter().any(|l| {
        let mut params = l.split(['?', '&', ' ']);
        l.contains("event=stopped") && params.any(|p| p == format!("port={port}"))
    })
}

#[test]
fn seed_box_service_acceptance() {
    require_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let f = Folders::new(tmp.path());
    let (tracker, announces) = support::recording_tracker();

    // Release one: a .torrent (announcing to the recording tracker) with its data under
    // --data. Release two: a data folder, built beside the watch folder and moved in whole.
    // Gone: a small .torrent whose data file is deleted while it is served.
    std::fs::write(f.data.join("one.bin"), data(LEN, 1)).unwrap();
    let one_torrent = f.root.join("one.torrent");
    support::create(
        &f.data.join("one.bin"),
        &one_torrent,
        &["-l", "16K", "-a", &tracker],
    );
    let one = support::info_hash_hex(&one_torrent);
    let staged = f.root.join("two");
    std::fs::create_dir_all(staged.join("disc")).unwrap();
    std::fs::write(staged.join("disc/a.bin"), data(LEN - 1000, 2)).unwrap();
    std::fs::write(staged.join("notes.txt"), data(1000, 3)).unwrap();
    std::fs::write(f.data.join("gone.bin"), data(256 << 10, 4)).unwrap();
    let gone_torrent = f.root.join("gone.torrent");
    support::create(&f.data.join("gone.bin"), &gone_torrent, &["-l", "16K"]);
    let gone = support::info_hash_hex(&gone_torrent);

    let (mut seed, admin) = f.start();
    let port = seed.addr.port();
    std::fs::copy(&one_torrent, f.watch.join("one.torrent")).unwrap();
    std::fs::rename(&staged, f.watch.join("two")).unwrap();
    std::fs::copy(&gone_torrent, f.watch.join("gone.torrent")).unwrap();
    std::fs::write(f.watch.join("junk.torrent"), b"d4:infoi3e").unwrap();
    let two_torrent = f.watch.join("two.torrent");
    wait_until("two.torrent created", Duration::from_secs(60), || {
        two_torrent.exists().then_some(()).ok_or(())
    });
    let two = support::info_hash_hex(&two_torrent);
    let list = wait_seeding(admin, &[&one, &two, &gone]);
    assert_eq!(
        serde_json::from_str::<Value>(&list)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3,
        "the junk .torrent is not listed: {list}"
    );
    assert_eq!(entry(&list, &two).unwrap()["size"], LEN as u64, "{list}");

    // The status page of the running service, rendered by headless chromium, shows both
    // releases (the token in the fragment, as the README says).
    let url = format!("http://{admin}/#token={TOKEN}");
    let out = support::chromium(&f.root.join("chromium"), &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("data-loaded=\"1\""),
        "the status page did not load its torrents: {:?}\n{}\n{dom}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["one.bin", "two"] {
        assert!(
            dom.contains(&format!(">{name}<")),
            "{name} not on the status page: {dom}"
        );
    }

    // Each release downloaded byte-exact by a real leecher.
    f.leech(&one_torrent, seed.addr, "one.bin", &f.data.join("one.bin"));
    f.leech(
        &two_torrent,
        seed.addr,
        "two/disc/a.bin",
        &f.watch.join("two/disc/a.bin"),
    );

    // /metrics parses; each torrent uploaded what its one leecher received, within one block.
    let (status, text) = api(admin, "GET", "/metrics", b"");
    assert!(status.contains("200"), "{status}");
    let metrics = support::prometheus_parse(&text);
    for h in [&one, &two] {
        let up = support::prometheus_sample(
            &metrics,
            "seedbox_torrent_uploaded_bytes",
            "seedbox_torrent_uploaded_bytes_total",
            &[("info_hash", h)],
        );
        assert!(up >= LEN as f64 && up <= LEN as f64 + BLOCK, "{h}: {up}");
    }

    // Bad requests: a wrong token and none (401), a 1 MB garbage POST (4xx, JSON error).
    for token in [Some("wrong-token-0000000000"), None] {
        let (status, body) = support::http_request(admin, "GET", "/api/v1/torrents", b"", token);
        assert!(status.contains(" 401 "), "{status} {body}");
    }
    let (status, body) = api(admin, "POST", "/api/v1/torrents", &data(1 << 20, 5));
    assert!(status.contains(" 4"), "{status} {body}");
    let error: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(error["error"].is_string(), "{body}");

    // A data file deleted while served: its peer closed, the torrent listed as stopped with
    // the file named; the others keep serving.
    let mut peer = RawPeer::handshake(seed.addr, hex20(&gone), true);
    std::fs::remove_file(f.data.join("gone.bin")).unwrap();
    peer.expect_closed(Duration::from_secs(30));
    let list = support::wait_list(admin, Some(TOKEN), "gone stopped", |l| {
        state_of(l, &gone).as_deref() == Some("stopped")
    });
    let reason = entry(&list, &gone).unwrap()["reason"].to_string();
    assert!(reason.contains("gone.bin: missing"), "{list}");
    assert_eq!(state_of(&list, &one).as_deref(), Some("seeding"), "{list}");
    std::fs::remove_file(f.watch.join("gone.torrent")).unwrap();
    seed.assert_alive();

    // One removed from the folder: its peer closed, its stopped announce sent, two still
    // served.
    let mut peer = RawPeer::handshake(seed.addr, hex20(&one), true);
    std::fs::remove_file(f.watch.join("one.torrent")).unwrap();
    peer.expect_closed(Duration::from_secs(30));
    support::wait_list(admin, Some(TOKEN), "one removed", |l| {
        entry(l, &one).is_none() && entry(l, &gone).is_none() && entry(l, &two).is_some()
    });
    wait_until("one's stopped announce", Duration::from_secs(30), || {
        stopped_announce(&announces, port)
            .then_some(())
            .ok_or_else(|| announces.lock().unwrap().clone())
    });
    f.leech(
        &two_torrent,
        seed.addr,
        "two/disc/a.bin",
        &f.watch.join("two/disc/a.bin"),
    );

    // One dropped in again (checked in full: its resume data went with its removal).
    std::fs::copy(&one_torrent, f.watch.join("one.torrent")).unwrap();
    wait_seeding(admin, &[&one, &two]);
    seed.assert_alive();
    let (status, log) = seed.terminate();
    // Success: gone stopped, but was removed afterwards.
    assert!(status.success(), "{status}\n{log}");
    for want in [
        "junk.torrent: not a valid .torrent",
        &format!("gone.bin ({gone}): stopped:"),
    ] {
        assert!(log.contains(want), "no `{want}` in the log:\n{log}");
    }
    let line =
        |log: &str, h: &str, what: &str| log.lines().any(|l| l.contains(h) && l.contains(what));
    assert!(line(&log, &one, "resume data saved"), "{log}");

    // Restart: both served from the resume data, nothing hashed.
    let (seed, admin) = f.start();
    wait_seeding(admin, &[&one, &two]);
    f.leech(&one_torrent, seed.addr, "one.bin", &f.data.join("one.bin"));
    let (status, log) = seed.terminate();
    assert!(status.success(), "{status}\n{log}");
    assert!(line(&log, &one, "resume data used"), "{log}");
    assert!(line(&log, &two, "resume data used"), "{log}");
    assert!(!log.contains("pieces checked"), "{log}");
    assert!(!log.contains("pieces hashed"), "{log}");

    // One byte of one.bin changed while stopped: one re-checked in full and refused, nothing
    // of it served; two still from its resume data, and served.
    let path = f.data.join("one.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[LEN / 2] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let (seed, admin) = f.start();
    // The watcher takes the settled entries in name order: one (refused) before two.
    wait_seeding(admin, &[&two]);
    let mut peer = RawPeer::connect(seed.addr, None);
    peer.send_handshake(hex20(&one), true);
    assert_eq!(
        peer.expect_closed(Duration::from_secs(30)),
        0,
        "nothing of one is served"
    );
    f.leech(
        &two_torrent,
        seed.addr,
        "two/disc/a.bin",
        &f.watch.join("two/disc/a.bin"),
    );
    assert!(entry(&support::torrent_list(admin, Some(TOKEN)), &one).is_none());
    let (_, log) = seed.terminate();
    assert!(line(&log, &one, "modified since verified"), "{log}");
    assert!(
        line(&log, &one, "fail their hash (first: piece 64)"),
        "{log}"
    );
    assert!(line(&log, &two, "resume data used"), "{log}");
    assert!(!line(&log, "two: ", "pieces checked"), "{log}");
}
