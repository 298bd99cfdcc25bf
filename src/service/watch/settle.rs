//! The watch folder's decisions, sans I/O: which entries of the folder to seed, when (once
//! they have settled: the same size and mtime over [`Settler::settle`]), and which to stop.
//! Fed directory scans stamped with the time they were taken; answers with [`Action`]s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What an entry of the folder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A `.torrent` file: its data lives under `--data`.
    Torrent,
    /// A file or folder to share: its torrent is created.
    Data,
}

/// What a scan saw of an entry: enough to tell that it changed. For a folder, the sizes and
/// mtimes of everything under it, folded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// Bytes (for a folder, of all its files).
    pub len: u64,
    /// Modification time in nanoseconds (for a folder, the latest under it).
    pub mtime_ns: i128,
    /// For a folder: a digest of its files' paths, sizes and mtimes; 0 for a file.
    pub digest: u64,
}

/// One entry as a scan saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Its name in the folder.
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Its size and times.
    pub fingerprint: Fingerprint,
}

/// What the folder's driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Seed this entry (it has settled). Report a failure with [`Settler::failed`].
    Add {
        /// Its name in the folder.
        name: String,
        /// What it is.
        kind: EntryKind,
    },
    /// Stop seeding this entry.
    Remove {
        /// Its name in the folder.
        name: String,
        /// It left the folder (else it changed, and is added again once settled).
        gone: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Seen unchanged since this time.
    Settling(Instant),
    /// Handed over with [`Action::Add`].
    Active,
    /// Its add failed: tried again once it changes, or at this time.
    Failed(Option<Instant>),
}

#[derive(Clone, Debug)]
struct Entry {
    kind: EntryKind,
    fingerprint: Fingerprint,
    phase: Phase,
}

/// The state of one watched folder.
#[derive(Debug)]
pub struct Settler {
    settle: Duration,
    entries: BTreeMap<String, Entry>,
}

impl Settler {
    /// A folder whose entries are seeded once unchanged for `settle`.
    pub fn new(settle: Duration) -> Settler {
        Settler {
            settle,
            entries: BTreeMap::new(),
        }
    }

    /// How long an entry must stay unchanged.
    pub fn settle(&self) -> Duration {
        self.settle
    }

    /// Takes a scan of the whole folder made at `now`; returns what to do, removals first.
    pub fn observe(&mut self, now: Instant, seen: Vec<Seen>) -> Vec<Action> {
        let mut removes = Vec::new();
        let mut adds = Vec::new();
        let mut present = std::collections::BTreeSet::new();
        for s in seen {
            present.insert(s.name.clone());
            match self.entries.get_mut(&s.name) {
                None => {
                    self.entries.insert(
                        s.name,
                        Entry {
                            kind: s.kind,
                            fingerprint: s.fingerprint,
                            phase: Phase::Settling(now),
                        },
                    );
                }
                Some(e) if e.fingerprint != s.fingerprint || e.kind != s.kind => {
                    if e.phase == Phase::Active {
                        removes.push(Action::Remove {
                            name: s.name.clone(),
                            gone: false,
                        });
                    }
                    *e = Entry {
                        kind: s.kind,
                        fingerprint: s.fingerprint,
                        phase: Phase::Settling(now),
                    };
                }
                Some(e) => {
                    let due = match e.phase {
                        Phase::Settling(since) => {
                            now.saturating_duration_since(since) >= self.settle
                        }
                        Phase::Failed(Some(at)) => now >= at,
                        Phase::Failed(None) | Phase::Active => false,
                    };
                    if due {
                        e.phase = Phase::Active;
                        adds.push(Action::Add {
                            name: s.name,
                            kind: e.kind,
                        });
                    }
                }
            }
        }
        self.entries.retain(|name, e| {
            let keep = present.contains(name);
            if !keep && e.phase == Phase::Active {
                removes.push(Action::Remove {
                    name: name.clone(),
                    gone: true,
                });
            }
            keep
        });
        removes.extend(adds);
        removes
    }

    /// The add of `name` failed: it is tried again when it changes, or at `retry_at`.
    pub fn failed(&mut self, name: &str, retry_at: Option<Instant>) {
        if let Some(e) = self.entries.get_mut(name) {
            e.phase = Phase::Failed(retry_at);
        }
    }

    /// When the next scan can change something without any event: an entry settling, or a
    /// failed one's retry.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e.phase {
                Phase::Settling(since) => Some(since + self.settle),
                Phase::Failed(at) => at,
                Phase::Active => None,
            })
            .min()
    }

    /// Whether some entry is still settling (not yet handed over).
    pub fn is_settling(&self) -> bool {
        self.entries
            .values()
            .any(|e| matches!(e.phase, Phase::Settling(_)))
    }
}

/// Sorts a folder listing into the entries to watch: `(name, is_dir)` in, `(name, kind)` out.
/// Hidden names and `.part` files (transfers in progress, and seedbox's own atomic writes) are
/// left out, and so is `NAME.torrent` beside a `NAME` entry: that is the torrent seedbox
/// created for it (as `seed PATH` writes it), not a release of its own.
pub fn classify(listing: &[(String, bool)]) -> Vec<(String, EntryKind)> {
    let names: std::collections::HashSet<&str> = listing.iter().map(|(n, _)| n.as_str()).collect();
    listing
        .iter()
        .filter(|(n, _)| !n.starts_with('.') && !n.ends_with(".part"))
        .filter_map(|(name, is_dir)| {
            let torrent = !is_dir && has_torrent_suffix(name);
            if !torrent {
                return Some((name.clone(), EntryKind::Data));
            }
            let stem = &name[..name.len() - ".torrent".len()];
            if names.contains(stem) && !has_torrent_suffix(stem) {
                None
            } else {
                Some((name.clone(), EntryKind::Torrent))
            }
        })
        .collect()
}

fn has_torrent_suffix(name: &str) -> bool {
    name.len() > ".torrent".len()
        && name.is_char_boundary(name.len() - ".torrent".len())
        && name[name.len() - ".torrent".len()..].eq_ignore_ascii_case(".torrent")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(1);

    fn fp(len: u64, mtime_ns: i128) -> Fingerprint {
        Fingerprint {
            len,
            mtime_ns,
            digest: 0,
        }
    }

    fn seen(name: &str, kind: EntryKind, len: u64, mtime: i128) -> Seen {
        Seen {
            name: name.into(),
            kind,
            fingerprint: fp(len, mtime),
        }
    }

    fn add(name: &str, kind: EntryKind) -> Action {
        Action::Add {
            name: name.into(),
            kind,
        }
    }

    #[test]
    fn an_entry_is_added_once_unchanged_for_the_settle_time() {
        let t0 = Instant::now();
        let mut s = Settler::new(SETTLE);
        let a = || vec![seen("a.torrent", EntryKind::Torrent, 100, 5)];
        assert!(s.observe(t0, a()).is_empty());
        assert_eq!(s.next_deadline(), Some(t0 + SETTLE));
        assert!(s.observe(t0 + SETTLE / 2, a()).is_empty());
        assert_eq!(
            s.observe(t0 + SETTLE, a()),
            vec![add("a.torrent", EntryKind::Torrent)]
        );
        assert_eq!(s.next_deadline(), None);
        assert!(!s.is_settling());
        // Once added, further identical scans do nothing.
        assert!(s.observe(t0 + 10 * SETTLE, a()).is_empty());
    }

    #[test]
    fn a_file_still_being_copied_is_not_added() {
        let t0 = Instant::now();
        let mut s = Settler::new(SETTLE);
        // Growing by the second: each scan restarts the wait.
        for i in 0..10u32 {
            let got = s.observe(
                t0 + SETTLE * i,
                vec![seen(
                    "big.iso",
                    EntryKind::Data,
                    1000 * u64::from(i + 1),
                    i.into(),
                )],
            );
            assert!(got.is_empty(), "scan {i}: {got:?}");
        }
        // The same size but a newer mtime (rewritten in place) restarts it too.
        let t = t0 + SETTLE * 10;
        assert!(s
            .observe(t, vec![seen("big.iso", EntryKind::Data, 10_000, 99)])
            .is_empty());
        assert_eq!(
            s.observe(
                t + SETTLE,
                vec![seen("big.iso", EntryKind::Data, 10_000, 99)]
            ),
            vec![add("big.iso", EntryKind::Data)]
        );
    }

    #[test]
    fn removal_and_change_of_a_seeded_entry_stop_it_and_only_it() {
        let t0 = Instant::now();
        let mut s = Settler::new(SETTLE);
        let both = |alen| {
            vec![
                seen("a", EntryKind::Data, alen, 1),
                seen("b.torrent", EntryKind::Torrent, 50, 1),
            ]
        };
        s.observe(t0, both(10));
        assert_eq!(s.observe(t0 + SETTLE, both(10)).len(), 2);
        // a changes: stopped now, added again once settled; b untouched.
        assert_eq!(
            s.observe(t0 + 2 * SETTLE, both(20)),
            vec![Action::Remove {
                name: "a".into(),
                gone: false
            }]
        );
        assert_eq!(
            s.observe(t0 + 3 * SETTLE, both(20)),
            vec![add("a", EntryKind::Data)]
        );
        // b leaves the folder.
        assert_eq!(
            s.observe(t0 + 4 * SETTLE, vec![seen("a", EntryKind::Data, 20, 1)]),
            vec![Action::Remove {
                name: "b.torrent".into(),
                gone: true
            }]
        );
        // A settling entry that leaves is forgotten without any action.
        assert_eq!(
            s.observe(t0 + 5 * SETTLE, vec![seen("c", EntryKind::Data, 1, 1)]),
            vec![Action::Remove {
                name: "a".into(),
                gone: true
            }]
        );
        assert!(s.is_settling());
        assert!(s.observe(t0 + 5 * SETTLE, vec![]).is_empty());
        assert!(!s.is_settling());
    }

    #[test]
    fn a_failed_entry_waits_for_a_change_or_its_retry_time() {
        let t0 = Instant::now();
        let mut s = Settler::new(SETTLE);
        let junk = |len| vec![seen("junk.torrent", EntryKind::Torrent, len, 1)];
        s.observe(t0, junk(3));
        assert_eq!(s.observe(t0 + SETTLE, junk(3)).len(), 1);
        s.failed("junk.torrent", None);
        assert_eq!(s.next_deadline(), None);
        assert!(s.observe(t0 + 100 * SETTLE, junk(3)).is_empty());
        // Replaced by another file: tried again once settled.
        assert!(s.observe(t0 + 101 * SETTLE, junk(4)).is_empty());
        assert_eq!(s.observe(t0 + 102 * SETTLE, junk(4)).len(), 1);
        // A retry time: tried again then, unchanged.
        let retry = t0 + 200 * SETTLE;
        s.failed("junk.torrent", Some(retry));
        assert_eq!(s.next_deadline(), Some(retry));
        assert!(s.observe(retry - SETTLE, junk(4)).is_empty());
        assert_eq!(s.observe(retry, junk(4)).len(), 1);
    }

    #[test]
    fn a_kind_change_counts_as_a_change() {
        let t0 = Instant::now();
        let mut s = Settler::new(SETTLE);
        s.observe(t0, vec![seen("x", EntryKind::Data, 1, 1)]);
        s.observe(t0 + SETTLE, vec![seen("x", EntryKind::Data, 1, 1)]);
        let got = s.observe(t0 + 2 * SETTLE, vec![seen("x", EntryKind::Torrent, 1, 1)]);
        assert_eq!(
            got,
            vec![Action::Remove {
                name: "x".into(),
                gone: false
            }]
        );
    }

    #[test]
    fn classify_skips_hidden_partial_and_created_torrents() {
        let listing: Vec<(String, bool)> = [
            ("release.iso", false),
            ("release.iso.torrent", false),
            ("other.torrent", false),
            ("Upper.TORRENT", false),
            ("folder", true),
            ("folder.torrent", false),
            ("copying.iso.part", false),
            (".hidden", false),
            ("dir.torrent", true),
            ("a.torrent.torrent", false),
            ("a.torrent", false),
        ]
        .iter()
        .map(|(n, d)| (n.to_string(), *d))
        .collect();
        let got = classify(&listing);
        let want: Vec<(String, EntryKind)> = [
            ("release.iso", EntryKind::Data),
            ("other.torrent", EntryKind::Torrent),
            ("Upper.TORRENT", EntryKind::Torrent),
            ("folder", EntryKind::Data),
            ("dir.torrent", EntryKind::Data),
            ("a.torrent.torrent", EntryKind::Torrent),
            ("a.torrent", EntryKind::Torrent),
        ]
        .iter()
        .map(|(n, k)| (n.to_string(), *k))
        .collect();
        assert_eq!(got, want);
    }
}
