//! `seedbox bench load` against a real seed (libtorrent's high-performance preset).

mod support;

use support::*;

#[test]
fn bench_load_measures_a_libtorrent_seed() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("data.bin", 4 << 20)]);
    let t = dir.path().join("data.torrent");
    create(&dir.path().join("data.bin"), &t, &[]);
    let _seed = LtPeer::seed(&t, dir.path(), &["--high-performance-seed"]);
    let addr = format!("127.0.0.1:{}", _seed.port);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let o = run(&[
        "bench",
        "load",
        &addr,
        "--torrent",
        t.to_str().unwrap(),
        "--conns",
        "4",
        "--duration",
        "2",
        "--warmup",
        "1",
        "--queue",
        "16",
        "--source-ips",
        "127.0.0.2-127.0.0.5",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["connected"], 4, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["payload_bytes"].as_u64().unwrap() > 1 << 20, "{r}");
    assert!(r["latency_us"]["count"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["timeline_gbit_per_s"].as_array().unwrap().len(), 2, "{r}");
}
