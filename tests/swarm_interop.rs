//! A real swarm through a tracker: one libtorrent seed, three `seedbox get` and one
//! libtorrent leecher find each other through opentracker and all finish; every seedbox
//! leecher uploads to the others before it is complete.

mod support;

use std::time::Duration;

use support::*;

fn swarm_through(tracker_url: impl Fn(&Opentracker) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir_in(dir.path(), "seed");
    write_tree(&seed_dir, &[("release.bin", 8 << 20)]);
    let t = dir.path().join("release.torrent");
    // Create once to learn the info-hash (announce URLs are outside the info dictionary).
    create(
        &seed_dir.join("release.bin"),
        &t,
        &["-l", "64K", "--no-date"],
    );
    let hash = info_hash_hex(&t);
    let tracker = Opentracker::start(std::slice::from_ref(&hash));
    create(
        &seed_dir.join("release.bin"),
        &t,
        &[
            "-l",
            "64K",
            "--no-date",
            "-f",
            "--announce",
            &tracker_url(&tracker),
        ],
    );
    // A slow seed (1 MiB/s), so leechers must trade among themselves.
    let _seed = LtPeer::seed(&t, &seed_dir, &["--tracker", "--upload-limit", "1048576"]);
    let mut getters = Vec::new();
    for i in 0..3 {
        let out = dir.path().join(format!("get{i}"));
        let child = seedbox()
            .args([
                "get",
                t.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--linger", "8s", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        getters.push((out, child));
        std::thread::sleep(Duration::from_millis(300));
    }
    let lt_out = dir_in(dir.path(), "lt");
    let mut lt_leech = LtPeer::leech(&t, &lt_out, &["--tracker", "--stay"]);
    let want = std::fs::read(seed_dir.join("release.bin")).unwrap();
    for (i, (out, child)) in getters.into_iter().enumerate() {
        let o = wait_with_timeout(child, Duration::from_secs(120));
        assert_eq!(
            o.status.code(),
            Some(0),
            "get {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["complete"], true);
        assert!(
            report["uploaded_while_leeching"].as_u64().unwrap() > 0,
            "get {i} did not upload before completing: {report}"
        );
        assert!(
            std::fs::read(out.join("release.bin")).unwrap() == want,
            "get {i} differs"
        );
    }
    assert!(
        lt_leech.wait_for("DONE", Duration::from_secs(60)).is_some(),
        "libtorrent leecher did not finish"
    );
    assert!(std::fs::read(lt_out.join("release.bin")).unwrap() == want);
}

#[test]
fn libtorrent_and_three_seedbox_leechers_swarm_through_opentracker_http() {
    swarm_through(Opentracker::http_url);
}

#[test]
fn seedbox_announces_to_opentracker_over_udp() {
    swarm_through(Opentracker::udp_url);
}
