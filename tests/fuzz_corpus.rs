//! Replays every fuzz target's committed corpus (`fuzz/corpus/TARGET/`, seeds and every crash
//! found, the latter named `crash-*`) through the same functions the cargo-fuzz targets call,
//! so `cargo test` keeps each fixed crash fixed without a fuzzing toolchain.

use std::collections::BTreeSet;
use std::fs;
use std::panic;
use std::path::Path;

fn names_in(dir: &Path, strip_rs: bool) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| {
            if strip_rs {
                name.strip_suffix(".rs").map(str::to_owned)
            } else {
                Some(name)
            }
        })
        .collect()
}

#[test]
fn every_fuzz_target_has_a_corpus_and_a_cargo_fuzz_binary() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let targets: BTreeSet<String> = seedbox::fuzz::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(names_in(&fuzz.join("fuzz_targets"), true), targets);
    assert_eq!(names_in(&fuzz.join("corpus"), false), targets);
}

#[test]
fn fuzz_corpus_replays_without_a_crash() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, target) in seedbox::fuzz::TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} has no inputs", dir.display());
        for input in inputs {
            let data = fs::read(&input).unwrap();
            if panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(input.display().to_string());
            }
            replayed += 1;
        }
    }
    assert!(failures.is_empty(), "crashing inputs: {failures:#?}");
    println!("replayed {replayed} inputs");
}
