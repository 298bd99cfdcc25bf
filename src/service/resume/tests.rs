use super::*;

const S: i64 = 1_000_000_000;

fn stat(size: u64, mtime_ns: i64, inode: u64) -> Option<FileStat> {
    Some(FileStat {
        size,
        mtime_ns,
        inode,
    })
}

fn files(stats: &[Option<FileStat>]) -> Vec<SavedFile> {
    stats
        .iter()
        .enumerate()
        .map(|(i, s)| SavedFile {
            path: PathBuf::from(format!("/data/r/f{i}")),
            stat: *s,
        })
        .collect()
}

fn saved(verified: Bitfield, stats: &[Option<FileStat>]) -> ResumeData {
    ResumeData {
        info_hash: InfoHash([7; 20]),
        verified,
        files: files(stats),
        source: None,
        torrent: None,
    }
}

fn current(f: &[SavedFile]) -> Current<'_> {
    Current {
        info_hash: InfoHash([7; 20]),
        piece_count: 8,
        files: f,
    }
}

#[test]
fn unchanged_files_are_trusted_with_exactly_the_verified_pieces() {
    let stats = [stat(100, 5 * S, 11), None, stat(300, 6 * S + 1, 12)];
    let mut verified = Bitfield::new(8);
    verified.set(0);
    verified.set(6);
    let d = saved(verified.clone(), &stats);
    assert_eq!(
        decide(&d, &current(&files(&stats))),
        Verdict::Trust(verified)
    );
}

#[test]
fn size_mtime_inode_or_path_changes_mean_a_full_check() {
    let was = [stat(100, 5 * S, 11), stat(300, 6 * S, 12)];
    let d = saved(Bitfield::full(8), &was);
    let cases: [(&[Option<FileStat>], &str); 5] = [
        (&[stat(100, 5 * S, 11), stat(301, 6 * S, 12)], "size"),
        (
            &[stat(100, 5 * S + 1, 11), stat(300, 6 * S, 12)],
            "modified",
        ),
        (&[stat(100, 5 * S, 11), stat(300, 6 * S, 13)], "replaced"),
        (&[stat(100, 5 * S, 11), None], "missing"),
        (&[stat(100, 5 * S, 11)], "files"),
    ];
    for (now, why) in cases {
        match decide(&d, &current(&files(now))) {
            Verdict::Recheck(reason) => assert!(reason.contains(why), "{why}: {reason}"),
            v => panic!("{why}: {v:?}"),
        }
    }
    let mut moved = files(&was);
    moved[1].path = "/elsewhere/f1".into();
    assert!(matches!(
        decide(&d, &current(&moved)),
        Verdict::Recheck(r) if r.contains("verified at")
    ));
}

#[test]
fn another_torrent_or_piece_count_is_not_trusted() {
    let stats = [stat(1, S, 1)];
    let d = saved(Bitfield::full(8), &stats);
    let f = files(&stats);
    let mut other = current(&f);
    other.info_hash = InfoHash([8; 20]);
    assert!(matches!(decide(&d, &other), Verdict::Recheck(_)));
    let mut other = current(&f);
    other.piece_count = 9;
    assert!(matches!(decide(&d, &other), Verdict::Recheck(_)));
}

#[test]
fn files_written_within_the_margin_of_the_check_are_not_saved() {
    let start = 1000 * S;
    let margin = RACY_MARGIN.as_nanos() as i64;
    assert!(!racy(&stat(1, start - margin, 1).unwrap(), start));
    assert!(racy(&stat(1, start - margin + 1, 1).unwrap(), start));
    assert!(racy(&stat(1, start + 5 * S, 1).unwrap(), start), "future");
    let ids = |mtime: (i64, i64)| {
        vec![
            None,
            Some(FileIdentity {
                dev: 1,
                ino: 2,
                len: 3,
                mtime,
            }),
        ]
    };
    let paths = [PathBuf::from("/p/pad"), PathBuf::from("/p/a")];
    let ok = files_to_save(&paths, &ids((998, 5)), start).unwrap();
    assert_eq!(ok[0].stat, None);
    assert_eq!(ok[1].stat, stat(3, 998 * S + 5, 2));
    let err = files_to_save(&paths, &ids((999, 500)), start).unwrap_err();
    assert!(err.contains("/p/a"), "{err}");
}

#[test]
fn the_check_waits_for_fresh_files_to_be_one_margin_old() {
    let now = 1000 * S;
    let margin = RACY_MARGIN.as_nanos() as i64;
    assert_eq!(settle_wait(now - margin, now), Duration::ZERO);
    assert_eq!(settle_wait(now - 2 * margin, now), Duration::ZERO);
    let wait = settle_wait(now - margin / 2, now);
    assert_eq!(wait.as_nanos() as i64, margin / 2 + 1);
    assert!(!racy(
        &stat(1, now - margin / 2, 1).unwrap(),
        now + wait.as_nanos() as i64
    ));
    assert_eq!(settle_wait(now, now).as_nanos() as i64, margin + 1);
    // Far in the future: not waited for (and `racy` refuses to save it).
    assert_eq!(settle_wait(now + 2 * margin, now), Duration::ZERO);
}

#[test]
fn the_encoding_round_trips_and_refuses_damage_and_other_versions() {
    let mut verified = Bitfield::new(13);
    verified.set(12);
    let mut d = saved(verified, &[stat(100, -5, u64::MAX), None]);
    d.source = Some("/data/r".into());
    d.torrent = Some(b"d4:infode".to_vec());
    let bytes = d.encode();
    assert_eq!(ResumeData::decode(&bytes), Ok(d.clone()));
    d.source = None;
    d.torrent = None;
    assert_eq!(ResumeData::decode(&d.encode()), Ok(d.clone()));

    // Every single-byte change and every truncation is refused.
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        assert!(ResumeData::decode(&bad).is_err(), "flipped byte {i}");
        assert!(ResumeData::decode(&bytes[..i]).is_err(), "truncated at {i}");
    }
    let at = bytes
        .windows(12)
        .position(|w| w == b"7:versioni1e")
        .unwrap();
    let mut v2 = bytes.clone();
    v2[at + 10] = b'2';
    assert!(matches!(
        ResumeData::decode(&v2),
        Err(ResumeError::Version { found }) if found == "2"
    ));
    assert!(matches!(
        ResumeData::decode(b"de"),
        Err(ResumeError::Version { .. })
    ));
    assert!(matches!(
        ResumeData::decode(b"junk"),
        Err(ResumeError::NotBencode(_))
    ));
}
