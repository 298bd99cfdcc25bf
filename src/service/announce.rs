//! Announcing every served torrent to its trackers, as a seed (`left` 0), from one scheduler
//! thread: the sans-IO [`ManySchedules`] says which announce is due next, a small pool of
//! workers does the blocking HTTP or UDP exchanges (at most [`MAX_IN_FLIGHT`] at once), and
//! at exit every `stopped` announce goes out concurrently within one overall deadline.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::download::tracker_tiers;
use crate::metainfo::{InfoHash, Torrent};
use crate::protocol::PeerId;
use crate::tracker::client::{announce, AnnounceStats, ManySchedules, Timeouts};
use crate::tracker::{AnnounceRequest, AnnounceResponse, Event};

/// Announces in flight at once (and worker threads).
pub const MAX_IN_FLIGHT: usize = 8;
/// Threads sending the `stopped` announces at exit.
const STOP_THREADS: usize = 64;
/// How long the exit waits for the `stopped` announces, in all.
pub const DEFAULT_STOP_DEADLINE: Duration = Duration::from_secs(5);

enum Msg {
    Add {
        hash: InfoHash,
        tiers: Vec<Vec<String>>,
        stats: Arc<AnnounceStats>,
    },
    Remove(InfoHash),
    Answer {
        hash: InfoHash,
        result: Result<AnnounceResponse, String>,
    },
    Shutdown {
        deadline: Duration,
        done: Sender<()>,
    },
}

struct Job {
    hash: InfoHash,
    url: String,
    request: AnnounceRequest,
    timeouts: Timeouts,
}

/// The announcer of every served torrent: one scheduler thread and [`MAX_IN_FLIGHT`] workers.
pub struct Announcers {
    tx: Sender<Msg>,
}

impl Announcers {
    /// Starts the scheduler; announces say `peer_id` listens on `port`.
    pub fn new(peer_id: PeerId, port: u16) -> Self {
        let (tx, rx) = mpsc::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        for i in 0..MAX_IN_FLIGHT {
            let (jobs, answers) = (jobs_rx.clone(), tx.clone());
            std::thread::Builder::new()
                .name(format!("announce-{i}"))
                .spawn(move || worker(&jobs, &answers))
                .expect("spawn an announce worker");
        }
        let scheduler = Scheduler {
            peer_id,
            port,
            schedules: ManySchedules::new(),
            stats: HashMap::new(),
            jobs: jobs_tx,
            start: Instant::now(),
        };
        std::thread::Builder::new()
            .name("announcer".into())
            .spawn(move || scheduler.run(&rx))
            .expect("spawn the announcer");
        Announcers { tx }
    }

    /// Starts announcing `torrent` (nothing when it names no tracker); `stats` carries the
    /// uploaded count the engine keeps and receives the announce counts.
    pub fn add(&self, torrent: &Torrent, stats: Arc<AnnounceStats>) {
        let tiers = tracker_tiers(torrent);
        if tiers.is_empty() {
            return;
        }
        let _ = self.tx.send(Msg::Add {
            hash: torrent.info_hash,
            tiers,
            stats,
        });
    }

    /// Stops announcing the torrent: its `stopped` announce goes out in the background.
    pub fn remove(&self, info_hash: &InfoHash) {
        let _ = self.tx.send(Msg::Remove(*info_hash));
    }

    /// Sends every `stopped` announce concurrently and returns once all are answered or
    /// [`DEFAULT_STOP_DEADLINE`] has passed.
    pub fn shutdown(&self) {
        self.shutdown_within(DEFAULT_STOP_DEADLINE);
    }

    /// [`Announcers::shutdown`] with another deadline.
    pub fn shutdown_within(&self, deadline: Duration) {
        let (done, finished) = mpsc::channel();
        if self.tx.send(Msg::Shutdown { deadline, done }).is_ok() {
            let _ = finished.recv_timeout(deadline + Duration::from_millis(500));
        }
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>, answers: &Sender<Msg>) {
    loop {
        let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let result = announce(&job.url, &job.request, job.timeouts).map_err(|e| e.to_string());
        match &result {
            Ok(r) => tracing::info!(
                url = %job.url, event = job.request.event.as_str(), peers = r.peers.len(),
                interval = r.interval, "announced"
            ),
            Err(e) => tracing::warn!(url = %job.url, "announce failed: {e}"),
        }
        if job.request.event == Event::Stopped {
            continue;
        }
        let answer = Msg::Answer {
            hash: job.hash,
            result,
        };
        if answers.send(answer).is_err() {
            return;
        }
    }
}

struct Scheduler {
    peer_id: PeerId,
    port: u16,
    schedules: ManySchedules,
    stats: HashMap<InfoHash, Arc<AnnounceStats>>,
    jobs: Sender<Job>,
    start: Instant,
}

impl Scheduler {
    fn request(&self, hash: InfoHash, event: Event) -> AnnounceRequest {
        let uploaded = self
            .stats
            .get(&hash)
            .map_or(0, |s| s.uploaded.load(Ordering::Relaxed));
        AnnounceRequest {
            info_hash: hash,
            peer_id: self.peer_id,
            port: self.port,
            uploaded,
            downloaded: 0,
            left: 0,
            event,
            numwant: Some(0),
            compact: true,
            no_peer_id: true,
            key: None,
            ip: None,
        }
    }

    fn run(mut self, rx: &Receiver<Msg>) {
        loop {
            let now = self.start.elapsed();
            while let Some((hash, due)) = self.schedules.poll(now, MAX_IN_FLIGHT) {
                let job = Job {
                    hash,
                    url: due.url,
                    request: self.request(hash, due.event),
                    timeouts: Timeouts::default(),
                };
                let _ = self.jobs.send(job);
            }
            let wait = self
                .schedules
                .next_wakeup()
                .map_or(Duration::from_secs(3600), |at| {
                    at.saturating_sub(self.start.elapsed())
                        .max(Duration::from_millis(10))
                });
            let msg = match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            match msg {
                Msg::Add { hash, tiers, stats } => {
                    self.stats.insert(hash, stats);
                    self.schedules.add(hash, tiers, &mut rand::thread_rng());
                }
                Msg::Remove(hash) => {
                    for url in self.schedules.remove(&hash) {
                        let job = Job {
                            hash,
                            url,
                            request: self.request(hash, Event::Stopped),
                            timeouts: quick_timeouts(),
                        };
                        let _ = self.jobs.send(job);
                    }
                    self.stats.remove(&hash);
                }
                Msg::Answer { hash, result } => self.answered(hash, result),
                Msg::Shutdown { deadline, done } => {
                    self.stop_all(deadline);
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    fn answered(&mut self, hash: InfoHash, result: Result<AnnounceResponse, String>) {
        let now = self.start.elapsed();
        let stats = self.stats.get(&hash);
        match result {
            Ok(r) => {
                if let Some(s) = stats {
                    s.announces.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(w) = &r.warning {
                    tracing::warn!("tracker warning for {hash}: {w}");
                }
                self.schedules.succeeded(
                    &hash,
                    now,
                    Duration::from_secs(u64::from(r.interval)),
                    r.min_interval.map(|m| Duration::from_secs(u64::from(m))),
                );
            }
            Err(_) => {
                if let Some(s) = stats {
                    s.failures.fetch_add(1, Ordering::Relaxed);
                }
                self.schedules.failed(&hash, now);
            }
        }
    }

    /// Every `stopped` announce at once (up to [`STOP_THREADS`] in parallel), for at most
    /// `deadline`; the threads still waiting on a dead tracker are left behind.
    fn stop_all(&mut self, deadline: Duration) {
        let started = Instant::now();
        let targets = self.schedules.drain_stop_targets();
        if targets.is_empty() {
            return;
        }
        let count = targets.len();
        let jobs: Vec<Job> = targets
            .into_iter()
            .map(|(hash, url)| Job {
                hash,
                url,
                request: self.request(hash, Event::Stopped),
                timeouts: quick_timeouts(),
            })
            .collect();
        let queue = Arc::new(Mutex::new(jobs));
        let (done_tx, done_rx) = mpsc::channel();
        for _ in 0..STOP_THREADS.min(count) {
            let (queue, done) = (queue.clone(), done_tx.clone());
            let spawned = std::thread::Builder::new()
                .name("announce-stop".into())
                .spawn(move || loop {
                    let Some(job) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                        return;
                    };
                    let ok = announce(&job.url, &job.request, job.timeouts).is_ok();
                    if done.send(ok).is_err() {
                        return;
                    }
                });
            if spawned.is_err() {
                break;
            }
        }
        drop(done_tx);
        let (mut answered, mut sent) = (0, 0);
        while sent < count {
            let left = deadline.saturating_sub(started.elapsed());
            match done_rx.recv_timeout(left) {
                Ok(ok) => {
                    sent += 1;
                    answered += usize::from(ok);
                }
                Err(_) => break,
            }
        }
        tracing::info!(
            "stopped announces: {answered} of {count} answered in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// Timeouts of `stopped` announces: nobody waits for their answers for long.
fn quick_timeouts() -> Timeouts {
    Timeouts {
        http: Duration::from_secs(3),
        udp_base: Duration::from_secs(1),
        udp_retries: 1,
    }
}
