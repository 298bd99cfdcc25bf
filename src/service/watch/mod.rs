//! The watch folder (`seed --watch DIR`): a `.torrent` dropped into the folder is seeded with
//! its data under `--data`; a file or folder dropped in is seeded under the torrent created
//! for it (written beside it, as `seed PATH` does). An entry is taken once it has settled
//! (the same size and mtime for [`SETTLE`]), so a half-copied file is not seeded; a `.torrent`'s
//! data is checked as any target's. Removing an entry stops its torrent (a `stopped`
//! announce); changing it stops it until it settles again.
//!
//! The decisions are [`settle::Settler`]'s (sans I/O); this module is the edge: a thread that
//! waits for inotify events ([`inotify::FolderEvents`]) or polls, scans the folder and acts
//! on the [`Service`].

pub mod inotify;
pub mod settle;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::Loaded;
use super::Service;
use crate::metainfo::{InfoHash, Torrent};
use inotify::FolderEvents;
use settle::{Action, EntryKind, Fingerprint, Seen, Settler};

/// How long an entry must stay unchanged before it is seeded.
pub const SETTLE: Duration = Duration::from_secs(1);
/// With inotify: a full rescan this often anyway (changes deep inside a folder send no event
/// to the watch on the top folder).
const RESCAN_EVERY: Duration = Duration::from_secs(10);
/// Polling where inotify is refused.
const FALLBACK_POLL: Duration = Duration::from_secs(2);
/// After an event, wait this long for its siblings before scanning.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// How often the thread looks at its commands while waiting.
const COMMAND_CHECK: Duration = Duration::from_millis(250);
/// A `.torrent` whose data failed its check is tried again after this long (or when the
/// `.torrent` changes).
const RETRY_FAILED_CHECK: Duration = Duration::from_secs(60);

/// What to watch and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchConfig {
    /// The folder.
    pub dir: PathBuf,
    /// Poll every this long instead of using inotify (`--watch-poll`).
    pub poll: Option<Duration>,
}

enum Command {
    Reconfigure(WatchConfig),
    Stop,
}

/// The running watch folder: a thread of its own.
pub struct Watcher {
    tx: mpsc::Sender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching `config.dir` (which must be a readable folder).
    pub fn start(service: Arc<Service>, config: WatchConfig) -> anyhow::Result<Watcher> {
        check_folder(&config.dir)?;
        let (tx, rx) = mpsc::channel();
        let mut driver = Driver::new(service, config);
        let thread = std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || driver.run(&rx))?;
        Ok(Watcher {
            tx,
            thread: Some(thread),
        })
    }

    /// Watches another folder, or the same one another way. The torrents of the old folder
    /// that the new one also holds keep serving (their peers stay); the others are stopped
    /// once the new folder's entries have settled.
    pub fn reconfigure(&self, config: WatchConfig) -> anyhow::Result<()> {
        check_folder(&config.dir)?;
        let _ = self.tx.send(Command::Reconfigure(config));
        Ok(())
    }

    /// Stops watching (the torrents keep serving until the service shuts down).
    pub fn stop(mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checks that `dir` is a folder (a watch folder's first requirement), with a clear error.
pub fn check_folder(dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| anyhow::anyhow!("watch folder {}: {e}", dir.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "watch folder {}: not a folder",
        dir.display()
    );
    Ok(())
}

struct Driver {
    service: Arc<Service>,
    config: WatchConfig,
    settler: Settler,
    events: Option<FolderEvents>,
    /// Entries seeded, by name.
    owned: HashMap<String, InfoHash>,
    /// Data entries whose `NAME.torrent` this watcher wrote.
    created: HashSet<String>,
    /// Torrents of a previous folder, kept while the new one settles.
    orphans: HashMap<InfoHash, String>,
    next_scan: Instant,
    /// The folder could not be listed at the last scan (logged once).
    unreadable: bool,
}

impl Driver {
    fn new(service: Arc<Service>, config: WatchConfig) -> Driver {
        let mut d = Driver {
            service,
            events: None,
            settler: Settler::new(SETTLE),
            config: config.clone(),
            owned: HashMap::new(),
            created: HashSet::new(),
            orphans: HashMap::new(),
            next_scan: Instant::now(),
            unreadable: false,
        };
        d.open_events();
        d
    }

    fn open_events(&mut self) {
        self.events = None;
        let how = match self.config.poll {
            Some(p) => format!("polling every {:.1} s", p.as_secs_f64()),
            None => match FolderEvents::new(&self.config.dir) {
                Ok(e) => {
                    self.events = Some(e);
                    "inotify".to_owned()
                }
                Err(e) => format!(
                    "inotify refused ({e}): polling every {} s",
                    FALLBACK_POLL.as_secs()
                ),
            },
        };
        tracing::info!("watching {} ({how})", self.config.dir.display());
    }

    fn rescan_every(&self) -> Duration {
        match (self.config.poll, &self.events) {
            (Some(p), _) => p,
            (None, Some(_)) => RESCAN_EVERY,
            (None, None) => FALLBACK_POLL,
        }
    }

    fn run(&mut self, rx: &mpsc::Receiver<Command>) {
        loop {
            let now = Instant::now();
            let wake = self
                .settler
                .next_deadline()
                .map_or(self.next_scan, |d| d.min(self.next_scan));
            let timeout = wake.saturating_duration_since(now).min(COMMAND_CHECK);
            let evented = match &self.events {
                Some(e) => match e.wait(timeout) {
                    Ok(got) => got,
                    Err(err) => {
                        tracing::warn!(
                            "watch {}: inotify failed ({err}): polling instead",
                            self.config.dir.display()
                        );
                        self.events = None;
                        false
                    }
                },
                None => {
                    std::thread::sleep(timeout);
                    false
                }
            };
            match rx.try_recv() {
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                Ok(Command::Reconfigure(c)) => self.reconfigure(c),
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if evented {
                self.next_scan = self.next_scan.min(now + DEBOUNCE);
            }
            let due = self.settler.next_deadline().is_some_and(|d| d <= now);
            if due || now >= self.next_scan {
                self.scan_and_act();
                self.next_scan = Instant::now() + self.rescan_every();
            }
        }
    }

    fn reconfigure(&mut self, config: WatchConfig) {
        if config == self.config {
            return;
        }
        if config.dir != self.config.dir {
            tracing::info!(
                "watch folder {} -> {}",
                self.config.dir.display(),
                config.dir.display()
            );
            self.orphans
                .extend(self.owned.drain().map(|(name, hash)| (hash, name)));
            self.created.clear();
            self.settler = Settler::new(SETTLE);
        }
        self.config = config;
        self.open_events();
        self.next_scan = Instant::now();
    }

    fn scan_and_act(&mut self) {
        let Some(seen) = self.scan() else {
            return;
        };
        let actions = self.settler.observe(Instant::now(), seen);
        for action in actions {
            match action {
                Action::Add { name, kind } => self.add(&name, kind),
                Action::Remove { name, gone } => self.remove(&name, gone),
            }
        }
        if !self.orphans.is_empty() && !self.settler.is_settling() {
            for (hash, name) in std::mem::take(&mut self.orphans) {
                if self.service.remove(&hash).is_ok() {
                    tracing::info!("watch: {name} is not in the new folder: stopped seeding it");
                }
            }
        }
    }

    /// Lists the folder; `None` if it cannot be read (nothing is decided then).
    fn scan(&mut self) -> Option<Vec<Seen>> {
        let dir = &self.config.dir;
        let listing = match list(dir) {
            Ok(l) => {
                self.unreadable = false;
                l
            }
            Err(e) => {
                if !self.unreadable {
                    tracing::error!("watch folder {}: {e}", dir.display());
                }
                self.unreadable = true;
                return None;
            }
        };
        let seen = settle::classify(&listing)
            .into_iter()
            .filter_map(|(name, kind)| {
                let fingerprint = fingerprint(&dir.join(&name)).ok()?;
                Some(Seen {
                    name,
                    kind,
                    fingerprint,
                })
            })
            .collect();
        Some(seen)
    }

    fn add(&mut self, name: &str, kind: EntryKind) {
        let path = self.config.dir.join(name);
        let result = match kind {
            EntryKind::Torrent => self.load_torrent(&path),
            EntryKind::Data => self.load_data(name, &path),
        };
        let loaded = match result {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("watch: skipping {}: {e:#}", path.display());
                self.settler.failed(name, None);
                return;
            }
        };
        let hash = loaded.torrent.info_hash;
        if let Some(old) = self.orphans.remove(&hash) {
            tracing::info!("watch: {name} was {old} in the previous folder: still seeding it");
            self.owned.insert(name.to_owned(), hash);
            return;
        }
        if self.service.get(&hash).is_some() {
            tracing::warn!(
                "watch: {} ({hash}) is already being seeded; not added again",
                path.display()
            );
            self.settler.failed(name, None);
            return;
        }
        let source = loaded.created.clone().unwrap_or_else(|| path.clone());
        match self.service.check_and_serve(loaded, Some(source)) {
            Ok(seed) => {
                tracing::info!("watch: seeding {name} ({hash}): {}", seed.torrent.magnet());
                self.owned.insert(name.to_owned(), hash);
            }
            Err(e) => {
                tracing::error!(
                    "watch: not seeding {}: {e:#} (tried again in {} s, or when it changes)",
                    path.display(),
                    RETRY_FAILED_CHECK.as_secs()
                );
                self.settler
                    .failed(name, Some(Instant::now() + RETRY_FAILED_CHECK));
            }
        }
    }

    fn load_torrent(&self, path: &Path) -> anyhow::Result<Loaded> {
        let bytes = std::fs::read(path)?;
        let torrent = Torrent::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("not a valid .torrent: {e}"))?;
        Ok(Loaded {
            torrent,
            dir: self.service.config().data.clone(),
            bytes,
            created: None,
        })
    }

    fn load_data(&mut self, name: &str, path: &Path) -> anyhow::Result<Loaded> {
        // Through the service: with --state, unchanged data is not hashed again.
        let loaded = self.service.load_target(path)?;
        if let Some(created) = &loaded.created {
            tracing::info!("watch: created {}", created.display());
            self.created.insert(name.to_owned());
        }
        Ok(loaded)
    }

    fn remove(&mut self, name: &str, gone: bool) {
        if let Some(hash) = self.owned.remove(name) {
            if self.service.remove(&hash).is_ok() {
                if gone {
                    tracing::info!("watch: {name} left the folder: stopped seeding it");
                } else {
                    tracing::info!(
                        "watch: {name} changed: stopped seeding it until it settles again"
                    );
                }
            }
        }
        if gone && self.created.remove(name) {
            // The torrent this watcher created for it goes with it.
            let companion = self.config.dir.join(format!("{name}.torrent"));
            if let Err(e) = std::fs::remove_file(&companion) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("watch: cannot remove {}: {e}", companion.display());
                }
            }
        }
    }
}

/// The folder's entries: `(name, is_dir)`, symbolic links followed; names that are not UTF-8
/// are left out.
fn list(dir: &Path) -> std::io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        out.push((name, meta.is_dir()));
    }
    out.sort();
    Ok(out)
}

fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    use std::os::unix::fs::MetadataExt;
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// An entry's size and times; for a folder, everything under it folded.
fn fingerprint(path: &Path) -> std::io::Result<Fingerprint> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok(Fingerprint {
            len: meta.len(),
            mtime_ns: mtime_ns(&meta),
            digest: 0,
        });
    }
    let mut fp = Fingerprint {
        len: 0,
        mtime_ns: mtime_ns(&meta),
        digest: 0,
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            // Unreadable (or gone) mid-scan: a change of its own.
            dir.hash(&mut hasher);
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let Ok(m) = std::fs::metadata(&p) else {
                continue;
            };
            fp.mtime_ns = fp.mtime_ns.max(mtime_ns(&m));
            p.hash(&mut hasher);
            mtime_ns(&m).hash(&mut hasher);
            if m.is_dir() {
                stack.push(p);
            } else {
                fp.len += m.len();
                m.len().hash(&mut hasher);
            }
        }
    }
    fp.digest = hasher.finish();
    Ok(fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folders_fingerprint_changes_with_any_file_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("release");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a"), b"12345").unwrap();
        std::fs::write(root.join("sub/b"), b"678").unwrap();
        let first = fingerprint(&root).unwrap();
        assert_eq!(first.len, 8);
        assert_eq!(fingerprint(&root).unwrap(), first);
        std::fs::write(root.join("sub/c"), b"").unwrap();
        let second = fingerprint(&root).unwrap();
        assert_ne!(second, first);
        std::fs::rename(root.join("sub/c"), root.join("sub/d")).unwrap();
        assert_ne!(fingerprint(&root).unwrap(), second);
    }
}
