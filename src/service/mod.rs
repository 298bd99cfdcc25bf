//! `seedbox seed` as a long-running service: the torrents it serves change while it runs
//! (targets at start, then the watch folder and the admin API), each announced to its
//! trackers and counted by the engine's per-core counters; the admin HTTP API, metrics and
//! status page ([`admin`]) drive it.

pub mod admin;
pub mod announce;
mod backend;
pub mod load;
pub mod notify;
pub mod resume;
mod resuming;
mod server_thread;
pub mod watch;
pub mod webseed;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::engine::{EngineControl, SeedTorrent};
use crate::metainfo::{InfoHash, Torrent};
use crate::storage::MappedStorage;
use crate::tracker::client::AnnounceStats;
use crate::tracker::server::TrackerHandle;
use admin::{TorrentState, TorrentStatus};
use announce::Announcers;
pub use backend::ServiceBackend;
use load::Loaded;

/// How the service loads and checks what it is given.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Folder holding the content of .torrent files.
    pub data: PathBuf,
    /// Threads for hashing (checks and created torrents).
    pub threads: usize,
    /// Hash each piece on its first request instead of checking at start.
    pub skip_check: bool,
    /// Advise `MADV_HUGEPAGE` on the mappings.
    pub huge_pages: bool,
    /// The state folder (`--state`): resume data that spares unchanged torrents their check
    /// at start.
    pub state: Option<Arc<resume::StateDir>>,
    /// BEP 16 super-seeding of every torrent.
    pub super_seed: bool,
    /// Web seed URLs (`url-list`) written into created torrents and added to loaded ones.
    pub web_seeds: Vec<String>,
}

/// The embedded tracker the service lists its torrents on, and the announce URL written into
/// the torrents it creates.
pub struct EmbeddedTracker {
    /// The running tracker.
    pub handle: TrackerHandle,
    /// `http://HOST:PORT/announce`, as peers should reach it.
    pub announce_url: String,
}

struct Record {
    seed: Arc<SeedTorrent>,
    /// The .torrent file's bytes (listed on the embedded tracker's pages).
    bytes: Arc<[u8]>,
    announce: Arc<AnnounceStats>,
    paused: bool,
    /// A re-check of its data is running.
    rechecking: bool,
    source: Option<PathBuf>,
    /// The folder its content lives under.
    dir: PathBuf,
    /// Upload rate over the last upkeep tick, bytes per second.
    rate: f64,
    /// Uploaded count and time at the last tick (for the rate).
    last: (u64, Instant),
    /// When the last re-check of a stopped torrent finished (for the retry schedule).
    rechecked_at: Option<Instant>,
    /// Its stop was reported by [`Service::tick`].
    stop_reported: bool,
}

/// The running service: the engine's control side, the announcers and the list of torrents
/// (paused ones included).
pub struct Service {
    engine: Arc<EngineControl>,
    config: ServiceConfig,
    announcers: Option<Announcers>,
    tracker: Mutex<Option<EmbeddedTracker>>,
    records: Mutex<HashMap<InfoHash, Record>>,
    order: Mutex<Vec<InfoHash>>,
    /// What removed torrents uploaded and announced (uploaded, announces, failures), so
    /// that the totals stay monotonic.
    removed: Mutex<(u64, u64, u64)>,
    /// When the creation of torrents from files or folders started (for their resume data).
    created_at: Mutex<HashMap<InfoHash, i64>>,
    /// The DHT node public torrents are announced to, and the peer port announced.
    dht: std::sync::OnceLock<(Arc<crate::dht::DhtNode>, u16)>,
    /// Ticks so far, for the rotation of file checks ([`FileCheckTurn`]).
    file_check_round: AtomicU64,
}

/// How often a stopped torrent's data is re-checked in the background.
pub const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// How many files [`Service::tick`] checks for changes per call (two `stat`s each). Up to this
/// many files in all, every file is checked at every tick; beyond, each tick checks a rotating
/// share of the torrents, so that a change is noticed within `files / FILE_CHECKS_PER_TICK`
/// ticks (10 s with 10,000 files at one tick a second) and an idle service with 10,000
/// torrents does not spend its CPU on `stat`.
pub const FILE_CHECKS_PER_TICK: usize = 1_000;

/// Which torrents one tick checks the files of: those whose info-hash falls in this round's
/// share (info-hashes are uniform, so the shares are even).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileCheckTurn {
    /// How many shares the torrents are cut into (1: every torrent, every tick).
    shares: u64,
    /// The share checked now.
    share: u64,
}

impl FileCheckTurn {
    /// The turn for `files` files in all, advancing the round counter.
    fn next(round: &AtomicU64, files: usize) -> FileCheckTurn {
        let shares = files.div_ceil(FILE_CHECKS_PER_TICK).max(1) as u64;
        let share = round.fetch_add(1, Ordering::Relaxed) % shares;
        FileCheckTurn { shares, share }
    }

    /// Whether the torrent with `hash` is checked at this turn.
    fn includes(&self, hash: &InfoHash) -> bool {
        let mut low = [0u8; 8];
        low.copy_from_slice(&hash.0[..8]);
        u64::from_le_bytes(low) % self.shares == self.share
    }
}

/// Serves `bytes` (the .torrent of `torrent`) on the embedded tracker's pages.
fn list_on(tracker: &EmbeddedTracker, torrent: &Torrent, bytes: &[u8]) {
    if let Err(e) =
        tracker
            .handle
            .add_torrent_file(&torrent.name, bytes.to_vec(), torrent.info_hash)
    {
        tracing::warn!("cannot list {} on the tracker's pages: {e}", torrent.name);
    }
}

fn status(r: &Record) -> TorrentStatus {
    let seed = &r.seed;
    let state = if r.paused {
        TorrentState::Paused
    } else if r.rechecking {
        TorrentState::Rechecking
    } else if seed.is_stopped() {
        TorrentState::Stopped {
            reason: seed.stop_reason().unwrap_or_else(|| "stopped".into()),
        }
    } else if seed.unserved_pieces() > 0 {
        TorrentState::Partial {
            unserved_pieces: seed.unserved_pieces(),
        }
    } else {
        TorrentState::Seeding
    };
    TorrentStatus {
        info_hash: seed.info_hash(),
        name: seed.torrent.name.clone(),
        size: seed.torrent.total_length,
        state,
        uploaded: seed.counters.uploaded(),
        upload_rate: r.rate,
        peers: seed.counters.peers(),
        unchoked_peers: seed.counters.unchoked(),
        announces: r.announce.announces.load(Ordering::Relaxed),
        announce_failures: r.announce.failures.load(Ordering::Relaxed),
    }
}

impl Service {
    /// A service serving nothing yet. `announcers`: `None` with `--no-tracker`; `tracker`: the
    /// embedded tracker, whose pages list the torrents served and whose URL created torrents
    /// announce to.
    pub fn new(
        engine: Arc<EngineControl>,
        config: ServiceConfig,
        announcers: Option<Announcers>,
        tracker: Option<EmbeddedTracker>,
    ) -> Service {
        Service {
            engine,
            config,
            announcers,
            tracker: Mutex::new(tracker),
            records: Mutex::new(HashMap::new()),
            order: Mutex::new(Vec::new()),
            removed: Mutex::new((0, 0, 0)),
            created_at: Mutex::new(HashMap::new()),
            dht: std::sync::OnceLock::new(),
            file_check_round: AtomicU64::new(0),
        }
    }

    /// Announces every public torrent, those served already and those added later, to `dht`
    /// as served on TCP `port` (private ones never touch the DHT).
    pub fn attach_dht(&self, dht: Arc<crate::dht::DhtNode>, port: u16) {
        for r in self.records().values() {
            if !r.seed.torrent.private && !r.paused {
                dht.announce(r.seed.info_hash(), port);
            }
        }
        let _ = self.dht.set((dht, port));
    }

    /// The engine's control side.
    pub fn engine(&self) -> &Arc<EngineControl> {
        &self.engine
    }

    /// The settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    fn records(&self) -> MutexGuard<'_, HashMap<InfoHash, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tracker(&self) -> MutexGuard<'_, Option<EmbeddedTracker>> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the embedded tracker runs.
    pub fn has_tracker(&self) -> bool {
        self.tracker().is_some()
    }

    /// The announce URL written into the torrents the service creates: the embedded
    /// tracker's, when it runs.
    pub fn announce_url(&self) -> Option<String> {
        self.tracker().as_ref().map(|t| t.announce_url.clone())
    }

    /// Starts using an embedded tracker started while serving (a watch folder added by a
    /// config re-read, as one given at start would have had it): every torrent served is
    /// listed on its pages, and torrents created from now on announce to it. A tracker
    /// already attached is kept and `tracker` stopped.
    pub fn attach_tracker(&self, tracker: EmbeddedTracker) {
        let records = self.records();
        let mut slot = self.tracker();
        if slot.is_some() {
            drop(slot);
            tracker.handle.stop();
            return;
        }
        for r in records.values() {
            list_on(&tracker, &r.seed.torrent, &r.bytes);
        }
        *slot = Some(tracker);
    }

    /// Loads `target` (a .torrent, or a file or folder whose torrent is created beside it),
    /// checks its data and serves it.
    pub fn add_target(&self, target: &Path) -> anyhow::Result<Arc<SeedTorrent>> {
        let loaded = self.load_target(target)?;
        let source = loaded
            .created
            .clone()
            .or_else(|| Some(target.to_path_buf()));
        self.check_and_serve(loaded, source)
    }

    /// Serves the torrent in `bytes` (a .torrent file's content) with its data under the
    /// data folder.
    pub fn add_torrent_bytes(&self, bytes: Vec<u8>) -> anyhow::Result<Arc<SeedTorrent>> {
        let torrent = Torrent::from_bytes(&bytes).context("not a valid .torrent")?;
        let loaded = Loaded {
            torrent,
            dir: self.config.data.clone(),
            bytes,
            created: None,
        };
        self.check_and_serve(loaded, None)
    }

    /// Checks a loaded torrent's data and serves it.
    pub fn check_and_serve(
        &self,
        loaded: Loaded,
        source: Option<PathBuf>,
    ) -> anyhow::Result<Arc<SeedTorrent>> {
        let hash = loaded.torrent.info_hash;
        if self.records().contains_key(&hash) {
            anyhow::bail!("{} ({hash}) is already being seeded", loaded.torrent.name);
        }
        if let Some(storage) = self.try_resume(&loaded) {
            return self.serve(loaded, storage, true, source);
        }
        // A torrent created from its files a moment ago has had every piece hashed already:
        // checking it again would read all the data a second time.
        let created_at = self.creation_started(&hash);
        // With a state folder, a torrent created at an earlier start (its bytes from the
        // resume data) is hashed here unless its resume data was just trusted.
        let hashed =
            loaded.created.is_some() && (self.config.state.is_none() || created_at.is_some());
        if hashed {
            tracing::info!(
                "{}: {} pieces hashed while creating the torrent; not checked again",
                loaded.torrent.name,
                loaded.torrent.piece_count()
            );
        }
        let dir = resuming::absolute(&loaded.dir);
        let skip = self.config.skip_check || hashed;
        let started = if skip {
            created_at
        } else {
            Some(self.before_check(&loaded.torrent, &dir))
        };
        let storage = load::check(&loaded.torrent, &dir, self.config.threads, skip)
            .map_err(|why| anyhow::anyhow!("{} ({hash}): {why}", loaded.torrent.name))?;
        if let Some(started) = started.filter(|_| hashed || !self.config.skip_check) {
            let target = loaded.dir.join(&loaded.torrent.name);
            let created = hashed.then(|| (target.as_path(), &loaded.bytes[..]));
            self.save_resume(&loaded.torrent, &storage, started, created);
        }
        self.serve(loaded, storage, hashed || !self.config.skip_check, source)
    }

    /// Serves a torrent whose data is open (and, with `checked`, verified).
    pub fn serve(
        &self,
        loaded: Loaded,
        storage: MappedStorage,
        checked: bool,
        source: Option<PathBuf>,
    ) -> anyhow::Result<Arc<SeedTorrent>> {
        let Loaded {
            torrent,
            bytes,
            dir,
            ..
        } = loaded;
        let hash = torrent.info_hash;
        let seed = Arc::new(
            SeedTorrent::new(torrent, storage, self.engine.cores(), checked)
                .super_seeding(self.config.super_seed),
        );
        if self.config.huge_pages {
            let (advised, error) = seed.storage.advise_huge_pages();
            match error {
                None => tracing::info!(
                    "{}: {advised} mappings advised MADV_HUGEPAGE",
                    seed.torrent.name
                ),
                Some(e) => {
                    tracing::warn!("{}: madvise(MADV_HUGEPAGE) failed: {e}", seed.torrent.name)
                }
            }
        }
        let mut records = self.records();
        if records.contains_key(&hash) {
            anyhow::bail!("{} ({hash}) is already being seeded", seed.torrent.name);
        }
        self.engine.add(seed.clone())?;
        let announce = Arc::new(AnnounceStats::default());
        if let Some(a) = &self.announcers {
            a.add(&seed.torrent, announce.clone());
        }
        if let (Some((dht, port)), false) = (self.dht.get(), seed.torrent.private) {
            dht.announce(hash, *port);
        }
        let bytes: Arc<[u8]> = bytes.into();
        if let Some(t) = self.tracker().as_ref() {
            list_on(t, &seed.torrent, &bytes);
        }
        records.insert(
            hash,
            Record {
                seed: seed.clone(),
                bytes,
                announce,
                paused: false,
                rechecking: false,
                source,
                dir,
                rate: 0.0,
                last: (0, Instant::now()),
                rechecked_at: None,
                stop_reported: false,
            },
        );
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hash);
        tracing::info!("seeding {} ({hash})", seed.torrent.name);
        Ok(seed)
    }

    /// Stops serving a torrent and forgets it: its peers are closed on every core and its
    /// `stopped` announce goes out.
    pub fn remove(&self, info_hash: &InfoHash) -> anyhow::Result<Arc<SeedTorrent>> {
        let record = self
            .records()
            .remove(info_hash)
            .with_context(|| format!("no torrent {info_hash}"))?;
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|h| h != info_hash);
        if !record.paused {
            let _ = self.engine.remove(info_hash);
        }
        self.forget_resume(info_hash);
        self.sync_uploaded_of(&record);
        {
            let mut removed = self.removed.lock().unwrap_or_else(|e| e.into_inner());
            removed.0 += record.seed.counters.uploaded();
            removed.1 += record.announce.announces.load(Ordering::Relaxed);
            removed.2 += record.announce.failures.load(Ordering::Relaxed);
        }
        if let Some(a) = &self.announcers {
            a.remove(info_hash);
        }
        if let Some((dht, _)) = self.dht.get() {
            dht.remove(*info_hash);
        }
        if let Some(t) = self.tracker().as_ref() {
            t.handle.remove_torrent_file(&record.seed.torrent.name);
        }
        tracing::info!("removed {} ({info_hash})", record.seed.torrent.name);
        Ok(record.seed)
    }

    /// Stops serving a torrent but keeps it listed (its peers are closed).
    pub fn pause(&self, info_hash: &InfoHash) -> anyhow::Result<()> {
        let mut records = self.records();
        let r = records
            .get_mut(info_hash)
            .with_context(|| format!("no torrent {info_hash}"))?;
        if !r.paused {
            r.paused = true;
            let _ = self.engine.remove(info_hash);
            // No longer announced to the DHT (its nodes forget us within 30 minutes).
            if let Some((dht, _)) = self.dht.get() {
                dht.remove(*info_hash);
            }
            tracing::info!("paused {} ({info_hash})", r.seed.torrent.name);
        }
        Ok(())
    }

    /// Serves a paused torrent again.
    pub fn resume(&self, info_hash: &InfoHash) -> anyhow::Result<()> {
        let mut records = self.records();
        let r = records
            .get_mut(info_hash)
            .with_context(|| format!("no torrent {info_hash}"))?;
        if r.paused {
            r.seed.restart();
            self.engine.add(r.seed.clone())?;
            r.paused = false;
            if let (Some((dht, port)), false) = (self.dht.get(), r.seed.torrent.private) {
                dht.announce(*info_hash, *port);
            }
            tracing::info!("resumed {} ({info_hash})", r.seed.torrent.name);
        }
        Ok(())
    }

    /// Every torrent, in the order added.
    pub fn torrents(&self) -> Vec<TorrentStatus> {
        let order = self.order.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let records = self.records();
        order
            .iter()
            .filter_map(|h| records.get(h))
            .map(status)
            .collect()
    }

    /// What removed torrents uploaded and announced: (uploaded, announces, failures).
    pub fn removed_totals(&self) -> (u64, u64, u64) {
        *self.removed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One torrent's status.
    pub fn status(&self, info_hash: &InfoHash) -> Option<TorrentStatus> {
        self.records().get(info_hash).map(status)
    }

    /// The served torrent with this info-hash.
    pub fn get(&self, info_hash: &InfoHash) -> Option<Arc<SeedTorrent>> {
        self.records().get(info_hash).map(|r| r.seed.clone())
    }

    /// The info-hash of the torrent loaded from `source`, if one was.
    pub fn by_source(&self, source: &Path) -> Option<InfoHash> {
        self.records()
            .iter()
            .find(|(_, r)| r.source.as_deref() == Some(source))
            .map(|(h, _)| *h)
    }

    fn sync_uploaded_of(&self, r: &Record) {
        r.announce
            .uploaded
            .store(r.seed.counters.uploaded(), Ordering::Relaxed);
    }

    /// Periodic upkeep: copies the engine's uploaded counts into the announces, updates the
    /// upload rates, checks the files under the mappings (a changed file stops its torrent;
    /// every torrent's files each tick up to [`FILE_CHECKS_PER_TICK`] files in all, a
    /// rotating share of them beyond) and re-checks stopped torrents every [`RECHECK_EVERY`]
    /// in the background. Returns the torrents stopped by this call.
    pub fn tick(self: &Arc<Self>) -> Vec<Arc<SeedTorrent>> {
        let mut records = self.records();
        let mut stopped = Vec::new();
        let mut due = Vec::new();
        let now = Instant::now();
        let files: usize = records.values().map(|r| r.seed.torrent.files.len()).sum();
        let turn = FileCheckTurn::next(&self.file_check_round, files);
        for (hash, r) in records.iter_mut() {
            let uploaded = r.seed.counters.uploaded();
            r.announce.uploaded.store(uploaded, Ordering::Relaxed);
            let secs = now.saturating_duration_since(r.last.1).as_secs_f64();
            if secs > 0.0 {
                r.rate = uploaded.saturating_sub(r.last.0) as f64 / secs;
            }
            r.last = (uploaded, now);
            if r.paused || r.rechecking {
                continue;
            }
            // A core may have stopped it first (a failed send): report it once either way.
            if turn.includes(hash) {
                r.seed.check_files();
            }
            if r.seed.is_stopped() && !r.stop_reported {
                r.stop_reported = true;
                self.forget_resume(hash);
                stopped.push(r.seed.clone());
                r.rechecked_at = Some(Instant::now());
            } else if r.seed.is_stopped()
                && !r.rechecked_at.is_some_and(|t| t.elapsed() < RECHECK_EVERY)
            {
                due.push(*hash);
            }
        }
        drop(records);
        for hash in due {
            let _ = self.start_recheck(&hash);
        }
        stopped
    }

    /// Re-checks now every stopped torrent and every torrent serving only the pieces that
    /// verified at its last re-check (SIGHUP).
    pub fn recheck_stopped(self: &Arc<Self>) {
        let stopped: Vec<InfoHash> = self
            .records()
            .iter()
            .filter(|(_, r)| {
                (r.seed.is_stopped() || r.seed.unserved_pieces() > 0) && !r.paused && !r.rechecking
            })
            .map(|(h, _)| *h)
            .collect();
        for hash in stopped {
            let _ = self.start_recheck(&hash);
        }
    }

    /// Starts re-hashing a torrent's data in the background: while it runs the torrent is
    /// not served; then it serves again from a fresh mapping (its counters carried over) the
    /// pieces that verify, announcing only those, or stays stopped with the reason when a
    /// file is missing or of another size, or no piece verifies.
    pub fn start_recheck(self: &Arc<Self>, info_hash: &InfoHash) -> anyhow::Result<()> {
        let (torrent, dir) = {
            let mut records = self.records();
            let r = records
                .get_mut(info_hash)
                .with_context(|| format!("no torrent {info_hash}"))?;
            if r.rechecking {
                return Ok(());
            }
            r.rechecking = true;
            if !r.paused {
                r.seed.stop("re-checking its data".into());
            }
            (r.seed.torrent.clone(), r.dir.clone())
        };
        self.forget_resume(info_hash);
        let service = self.clone();
        let hash = *info_hash;
        std::thread::Builder::new()
            .name("recheck".into())
            .spawn(move || {
                let started = service.before_check(&torrent, &dir);
                let result = load::recheck(&torrent, &dir, service.config.threads);
                if let Ok(load::Rechecked {
                    storage,
                    good: None,
                    ..
                }) = &result
                {
                    service.save_resume(&torrent, storage, started, None);
                }
                service.finish_recheck(&hash, result);
            })?;
        Ok(())
    }

    fn finish_recheck(&self, info_hash: &InfoHash, result: Result<load::Rechecked, String>) {
        let mut records = self.records();
        let Some(r) = records.get_mut(info_hash) else {
            return;
        };
        r.rechecking = false;
        r.rechecked_at = Some(Instant::now());
        let checked = match result {
            Ok(checked) => checked,
            Err(why) => {
                let reason = format!("re-check failed: {why}");
                tracing::error!("{} ({info_hash}): {reason}", r.seed.torrent.name);
                r.seed.stop_because(reason);
                return;
            }
        };
        let (torrent, counters) = (r.seed.torrent.clone(), r.seed.counters.clone());
        // Super-seeding stays on for a whole torrent only: it would reveal pieces a partial
        // one refuses.
        let super_seed = r.seed.super_seed.is_some() && checked.good.is_none();
        let fresh = Arc::new(
            match &checked.good {
                None => SeedTorrent::with_counters(torrent, checked.storage, counters, true),
                Some(good) => SeedTorrent::partial(torrent, checked.storage, counters, good),
            }
            .super_seeding(super_seed),
        );
        if !r.paused {
            let _ = self.engine.remove(info_hash);
            if let Err(e) = self.engine.add(fresh.clone()) {
                tracing::error!("{}: cannot serve again: {e}", fresh.torrent.name);
            }
        }
        match &checked.failed {
            None => tracing::info!(
                "{} ({info_hash}): re-checked, every piece good: serving again",
                fresh.torrent.name
            ),
            Some(failed) => tracing::warn!(
                "{} ({info_hash}): re-checked, {failed}: serving the {} that verify",
                fresh.torrent.name,
                fresh.have.count()
            ),
        }
        r.seed = fresh;
        r.stop_reported = false;
    }

    /// The served torrent named `name` (the first added, when several share it), unless it
    /// is paused, stopped or being re-checked: what the web seed serves.
    pub fn serving_by_name(&self, name: &str) -> Option<Arc<SeedTorrent>> {
        let order = self.order.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let records = self.records();
        order
            .iter()
            .filter_map(|h| records.get(h))
            .find(|r| r.seed.torrent.name == name)
            .filter(|r| !r.paused && !r.rechecking && !r.seed.is_stopped())
            .map(|r| r.seed.clone())
    }

    /// Sends every `stopped` announce and stops the embedded tracker.
    pub fn shutdown(&self) {
        for r in self.records().values() {
            self.sync_uploaded_of(r);
        }
        if let Some(a) = &self.announcers {
            a.shutdown();
        }
        if let Some((dht, _)) = self.dht.get() {
            dht.shutdown();
        }
        if let Some(t) = self.tracker().take() {
            t.handle.stop();
        }
    }
}

impl webseed::WebSeedCatalog for Service {
    fn find(&self, name: &str) -> Option<Arc<SeedTorrent>> {
        self.serving_by_name(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: u32) -> Vec<InfoHash> {
        (0..n).map(|i| InfoHash::of(&i.to_le_bytes())).collect()
    }

    #[test]
    fn up_to_the_budget_every_torrent_is_checked_at_every_tick() {
        let round = AtomicU64::new(0);
        let all = hashes(100);
        for _ in 0..3 {
            let turn = FileCheckTurn::next(&round, FILE_CHECKS_PER_TICK);
            assert!(all.iter().all(|h| turn.includes(h)));
        }
    }

    #[test]
    fn beyond_the_budget_each_torrent_is_checked_once_per_rotation_in_even_shares() {
        let round = AtomicU64::new(7);
        let all = hashes(10_000);
        let files = 10 * FILE_CHECKS_PER_TICK;
        let mut checked = vec![0u32; all.len()];
        for _ in 0..10 {
            let turn = FileCheckTurn::next(&round, files);
            assert_eq!(turn.shares, 10);
            let this_tick = all.iter().filter(|h| turn.includes(h)).count();
            assert!((800..1200).contains(&this_tick), "{this_tick}");
            for (n, h) in checked.iter_mut().zip(&all) {
                *n += u32::from(turn.includes(h));
            }
        }
        assert!(checked.iter().all(|&n| n == 1));
    }
}
