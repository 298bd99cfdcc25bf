//! The torrent tooling from the command line: exit codes, messages, reproducibility.

mod support;

use std::path::Path;

use seedbox::bencode::Owned;
use support::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_usage_exits_2_and_help_reads_well() {
    let o = run(&["create"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["create", "x", "--piece-length", "1000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("power of two"), "{}", stderr(&o));
    let o = run(&["--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "create", "verify", "show", "seed", "get", "tracker", "bench", "sim", "plan",
    ] {
        assert!(help.contains(cmd), "help lacks {cmd}");
    }
}

#[test]
fn no_date_gives_byte_identical_torrents() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), MULTI_FILES);
    let mut outputs = Vec::new();
    for (i, threads) in ["1", "2"].iter().enumerate() {
        let out = dir.path().join(format!("{i}.torrent"));
        let o = run(&[
            "create",
            dir.path().join("release").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--no-date",
            "--threads",
            threads,
            "--announce",
            "http://a/announce",
            "--announce",
            "udp://b:1",
            "--web-seed",
            "http://w/",
            "--private",
            "--comment",
            "c",
            "--source",
            "S",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains("magnet:?xt=urn:btih:"), "{stdout}");
        outputs.push(std::fs::read(out).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    // Refuses to overwrite without --force.
    let again = run(&[
        "create",
        dir.path().join("release").to_str().unwrap(),
        "-o",
        dir.path().join("0.torrent").to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"));
}

#[test]
fn show_json_has_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("f.bin", 100_000)]);
    let t = dir.path().join("f.torrent");
    let o = run(&[
        "create",
        dir.path().join("f.bin").to_str().unwrap(),
        "-o",
        t.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["show", "--json", t.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "f.bin");
    assert_eq!(v["info_hash"].as_str().unwrap().len(), 40);
    assert_eq!(v["piece_length"], 16_384);
    assert_eq!(v["total_length"], 100_000);
    assert_eq!(v["files"][0]["length"], 100_000);
    assert!(v["magnet"]
        .as_str()
        .unwrap()
        .starts_with("magnet:?xt=urn:btih:"));
    assert!(v["creation_date"].is_i64());
}

/// Output into a pipe whose reader has gone (`seedbox show T | head -1`) ends the command
/// quietly with status 141, as SIGPIPE would, instead of a "Broken pipe" panic.
/// Every command with `--json` prints a JSON object with `error` when it fails, and exits 1.
#[test]
fn json_commands_print_an_error_object_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.torrent");
    let missing = missing.to_str().unwrap();
    let junk = dir.path().join("junk.torrent");
    std::fs::write(&junk, b"not bencode").unwrap();
    let junk = junk.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["show", "--json", missing],
        vec!["show", "--json", junk],
        vec!["verify", "--json", missing],
        vec![
            "get",
            "--json",
            "--no-tracker",
            "-o",
            dir.path().to_str().unwrap(),
            missing,
        ],
        vec!["bench", "load", "127.0.0.1:9", "--torrent", junk, "--json"],
        vec!["sim", "--json", "--size", "0"],
    ];
    for args in cases {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {:?}", o.stdout));
        let error = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{args:?}: {v}"));
        assert!(!error.is_empty(), "{args:?}");
        assert!(stderr(&o).contains(error), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_closed_stdout_pipe_ends_quietly_with_141() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("f.bin", 100_000)]);
    let t = dir.path().join("f.torrent");
    let f = dir.path().join("f.bin");
    let o = run(&["create", f.to_str().unwrap(), "-o", t.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for args in [
        vec!["show", t.to_str().unwrap()],
        vec!["show", "--json", t.to_str().unwrap()],
    ] {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills both descriptors; each is owned exactly once below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The reader is gone before the command writes a byte.
        drop(reader);
        let o = seedbox()
            .args(&args)
            .stdout(std::process::Stdio::from(writer))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(141), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{args:?}: {}", stderr(&o));
    }
}

fn evil_torrent(path: &[&str]) -> Vec<u8> {
    let file = Owned::dict().insert("length", 5i64).insert(
        "path",
        Owned::List(path.iter().map(|c| Owned::from(*c)).collect()),
    );
    Owned::dict()
        .insert(
            "info",
            Owned::dict()
                .insert("name", "evil")
                .insert("files", Owned::List(vec![file]))
                .insert("piece length", 16384i64)
                .insert("pieces", vec![0u8; 20]),
        )
        .encode()
}

#[test]
fn traversal_torrents_are_rejected_before_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("evil.torrent");
    std::fs::write(&t, evil_torrent(&["..", "..", "etc", "passwd"])).unwrap();
    for args in [
        vec!["show", t.to_str().unwrap()],
        vec![
            "verify",
            t.to_str().unwrap(),
            "--data",
            dir.path().to_str().unwrap(),
        ],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "one line: {e}");
        assert!(e.starts_with("seedbox: error: "), "{e}");
        assert!(e.contains("unsafe path \"../../etc/passwd\""), "{e}");
    }
}

#[test]
fn invalid_bencode_error_names_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("bad.torrent");
    std::fs::write(&t, b"d4:infod4:name").unwrap();
    let o = run(&["show", t.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid bencode at byte 14"),
        "{}",
        stderr(&o)
    );
}

fn verify_json(t: &Path, data: &Path) -> (Option<i32>, serde_json::Value) {
    let o = run(&[
        "verify",
        t.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    (o.status.code(), serde_json::from_slice(&o.stdout).unwrap())
}

#[test]
fn verify_reports_missing_and_wrong_size_files() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), MULTI_FILES);
    let t = dir.path().join("r.torrent");
    let o = run(&[
        "create",
        dir.path().join("release").to_str().unwrap(),
        "-o",
        t.to_str().unwrap(),
        "-l",
        "32K",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (code, v) = verify_json(&t, dir.path());
    assert_eq!(code, Some(0));
    assert_eq!(v["ok"], true);

    std::fs::remove_file(dir.path().join("release/z.txt")).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("release/b/c/mid.bin"))
        .unwrap();
    f.set_len(49_000).unwrap();
    let (code, v) = verify_json(&t, dir.path());
    assert_eq!(code, Some(1));
    let problems = v["file_problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{v}");
    assert_eq!(problems[0]["problem"], "wrong size");
    assert_eq!(problems[0]["actual"], 49_000);
    assert_eq!(problems[1]["problem"], "missing");
    // mid.bin spans 1_000..51_000: its tail (pieces 1) is missing; z.txt is in the last piece.
    assert_eq!(v["missing_pieces"], serde_json::json!([1, 10]));
}

/// A `plan` that answers in seconds: 100 kB, 6 arrivals a minute for 10 minutes.
const SMALL_PLAN: &[&str] = &[
    "plan",
    "--size",
    "100000",
    "--arrivals",
    "6/min for 10m",
    "--peer-up",
    "1Mbit",
    "--peer-down",
    "3Mbit",
    "--target-p95",
    "60s",
    "-q",
];

/// `plan` sizes both delivery modes (bisected side by side) and, run away from the source
/// tree, still turns the uplink into cores with the throughput record built into the binary.
#[test]
fn plan_sizes_both_modes_and_finds_a_per_core_figure_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let o = seedbox()
        .current_dir(dir.path())
        .args(SMALL_PLAN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let row = |mode: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(mode))
            .unwrap_or_else(|| panic!("no {mode} row in\n{out}"))
            .to_owned()
    };
    for mode in ["swarm", "client-server"] {
        // origin Mbit/s, worst p95, origin GB, cores, runs
        let line = row(mode);
        let cols: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert_eq!(cols.len(), 5, "{out}");
        assert!(cols[0].parse::<f64>().unwrap() > 0.0, "{out}");
        assert!(cols[1].parse::<f64>().unwrap() <= 60.0, "{out}");
        assert_eq!(cols[3], "1", "{out}");
    }
    assert!(out.contains("built into this binary"), "{out}");
    assert_eq!(out.matches("seedbox sim --mode").count(), 2, "{out}");
}

/// `plan` names the origin's unchoke slots it assumed, in its text and its JSON: `seed`'s
/// default (`auto`) unless told otherwise, and its reproducing commands carry them.
#[test]
fn plan_names_the_unchoke_slots_it_assumed() {
    let plan = |extra: &[&str]| {
        let mut args = SMALL_PLAN.to_vec();
        args.extend_from_slice(extra);
        let o = seedbox().args(&args).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = plan(&[]);
    assert!(
        text.contains("origin (swarm): seedbox seed --unchoke-slots auto (seedbox seed's default"),
        "{text}"
    );
    assert!(
        text.contains("--mode swarm") && text.contains("--unchoke-slots auto"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&plan(&["--json"])).unwrap();
    assert_eq!(v["origin"]["unchoke_slots"], "auto", "{v}");
    assert_eq!(v["origin"]["seed_default"], true, "{v}");
    let answers = v["answers"].as_array().unwrap();
    let swarm = answers.iter().find(|a| a["delivery"] == "swarm").unwrap();
    assert_eq!(swarm["origin"]["unchoke_slots"], "auto", "{v}");
    assert!(swarm["origin_bytes_per_s"].as_u64().unwrap() > 0, "{v}");
    assert!(swarm["reproduce"]
        .as_str()
        .unwrap()
        .contains("--unchoke-slots auto"));
    let cs = answers
        .iter()
        .find(|a| a["delivery"] == "client-server")
        .unwrap();
    assert_eq!(cs["origin"]["unchoke_slots"], "unlimited", "{v}");
    let v: serde_json::Value =
        serde_json::from_str(&plan(&["--json", "--unchoke-slots", "8", "--super-seed"])).unwrap();
    assert_eq!(v["origin"]["unchoke_slots"], "8", "{v}");
    assert_eq!(v["origin"]["super_seed"], true, "{v}");
    let swarm = &v["answers"][0];
    assert_eq!(swarm["origin"]["unchoke_slots"], "8", "{v}");
    assert_eq!(swarm["origin"]["super_seed"], true, "{v}");
    assert!(swarm["reproduce"]
        .as_str()
        .unwrap()
        .contains("--unchoke-slots 8 --super-seed"));
}

/// `sim` re-executes itself for huge pages where the kernel gives them on request; the run,
/// its arguments and its output are the same either way.
#[test]
fn sim_gives_the_same_json_with_and_without_its_huge_page_restart() {
    let sim = |no_restart: bool| {
        let mut cmd = seedbox();
        cmd.env_remove("GLIBC_TUNABLES")
            .env_remove("SEEDBOX_NO_HUGE_PAGES_REEXEC");
        if no_restart {
            cmd.env("SEEDBOX_NO_HUGE_PAGES_REEXEC", "1");
        }
        let o = cmd
            .args([
                "sim",
                "--size",
                "4MiB",
                "--arrivals",
                "30/min for 2m",
                "--peer-up",
                "2Mbit",
                "--rng-seed",
                "3",
                "-q",
                "--json",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(
            out.contains("\"phases\"") && out.contains("\"rng_seed\": 3"),
            "{out}"
        );
        out
    };
    assert_eq!(sim(false), sim(true));
}

/// `--max-units` groups whole pieces: 64 pieces of 256 KiB capped at 16 units run exactly as
/// 16 pieces of 1 MiB, and the output says which unit was used.
#[test]
fn sim_max_units_runs_groups_of_pieces_as_bigger_pieces() {
    let sim = |extra: &[&str]| {
        let o = seedbox()
            .args([
                "sim",
                "--size",
                "16MiB",
                "--unit",
                "piece",
                "--arrivals",
                "30/min for 2m",
                "--peer-up",
                "2Mbit",
                "--peer-down",
                "8Mbit",
                "-q",
                "--json",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let grouped = sim(&["--max-units", "16"]);
    let big_pieces = sim(&["--piece-length", "1MiB"]);
    let pieces = sim(&[]);
    assert_eq!(grouped["unit"], "piece-group");
    assert_eq!(grouped["units"], 16);
    assert_eq!(grouped["unit_bytes"], 1 << 20);
    assert_eq!(grouped["config"]["max_units"], 16);
    assert_eq!(big_pieces["unit"], "piece");
    assert_eq!(pieces["units"], 256);
    assert!(pieces["config"].get("max_units").is_none());
    assert_eq!(grouped["phases"], big_pieces["phases"]);
    assert_ne!(grouped["phases"], pieces["phases"]);
    let o = seedbox()
        .args(["sim", "--max-units", "0", "-q"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn sim_and_plan_warn_when_peers_download_slower_than_they_upload() {
    let sim = |peer_up: &str| {
        run(&[
            "sim",
            "--size",
            "100KB",
            "--arrivals",
            "4/min for 30s",
            "--peer-up",
            peer_up,
            "-q",
        ])
    };
    // The README's mistake: a 16 Mbit/s uplink with sim's default 1.5 Mbit/s downlink.
    let o = sim("16Mbit");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "warning: peers download at 1.500 Mbit/s, less than they upload (16.000 Mbit/s)"
        ) && stderr(&o).contains("--peer-down"),
        "{}",
        stderr(&o)
    );
    let o = sim("384kbit");
    assert!(
        o.status.success() && !stderr(&o).contains("warning"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "plan",
        "--size",
        "100KB",
        "--arrivals",
        "4/min for 30s",
        "--peer-up",
        "2Mbit",
        "--peer-down",
        "1Mbit",
        "--target-p95",
        "60s",
    ]);
    assert!(
        stderr(&o).contains("warning: peers download at 1.000 Mbit/s"),
        "{}",
        stderr(&o)
    );
}
