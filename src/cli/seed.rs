//! `seedbox seed`: check the data, then serve it from the thread-per-core engine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::signals::Signals;
use super::units::{parse_duration, parse_rate, parse_size};
use crate::engine::{self, EngineConfig, EngineStats, Shutdown, TorrentSet};
use crate::metainfo::{self, CreateOptions, Torrent};
use crate::protocol::PeerId;
use crate::storage::{self, MappedStorage};
use crate::swarm::Slots;
use crate::tracker::client::{AnnounceStats, Identity, TrackerClient};
use crate::tracker::server::{TrackerConfig, TrackerHandle, TrackerServer};

/// How often the files of every torrent are checked for truncation or replacement.
const FILE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Arguments of `seedbox seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// A .torrent (its content is looked up under --data) or a file or folder to share (its
    /// torrent is created beside it, as `seedbox create` would).
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<PathBuf>,
    /// Folder holding the content of .torrent targets.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub data: PathBuf,
    /// Address and port to listen on (port 0: any free port, printed).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:6881")]
    pub listen: SocketAddr,
    /// Worker threads, each with its own io_uring runtime and listener (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Peers unchoked per torrent (ranked every 10 s by our upload rate to them, plus one
    /// optimistic unchoke rotated every 30 s), or `unlimited`. Each core chokes its own
    /// connections: the slots are split across the cores (core i of n gets N/n, plus one if
    /// i < N mod n) and each core adds one optimistic unchoke, so at most N + n peers of a
    /// torrent are unchoked at once.
    #[arg(long, value_name = "auto|N|unlimited", default_value = "4")]
    pub unchoke_slots: Slots,
    /// Maximum peer connections in total.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_peers: usize,
    /// Do not announce to the torrents' trackers, and do not run the embedded tracker.
    #[arg(long)]
    pub no_tracker: bool,
    /// Where the embedded tracker listens (HTTP announce, scrape and the `/torrents/` pages on
    /// TCP, BEP 15 on UDP, same port). It runs when seed creates a torrent (a file or folder
    /// target), which then announces to it, or when this flag is given.
    #[arg(long, value_name = "ADDR:PORT")]
    pub tracker_listen: Option<SocketAddr>,
    /// Host (name or address) written in the announce URL of created torrents (default: the
    /// tracker's listen address, or this machine's outbound address when it listens on all).
    #[arg(long, value_name = "HOST")]
    pub tracker_host: Option<String>,
    /// Skip the full check at start; each piece is hashed on its first request instead, and
    /// a piece that fails is never served (its requests are rejected, or the peer choked).
    #[arg(long)]
    pub skip_check: bool,
    /// Upload limit over all torrents (e.g. `100Mbit`, `20MB/s`): a token bucket per core
    /// (no lock between cores), each core getting an equal share, so one peer, which lives
    /// on one core, gets at most RATE / threads.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_upload_rate: Option<u64>,
    /// Seconds a new connection has to send its handshake.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub handshake_timeout: u64,
    /// Seconds of silence after which a peer is dropped.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub idle_timeout: u64,
    /// How long a write may stall (a peer that does not read) before the peer is dropped
    /// (e.g. `30s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub send_timeout: Duration,
    /// Requests queued per peer (advertised as `reqq`); more are rejected.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub request_queue: u32,
    /// Send writes larger than BYTES with io_uring's zero-copy `SENDMSG_ZC` instead of
    /// `writev` (0: every write). Off by default: see bench-results/send-zc.md.
    #[arg(long, value_name = "BYTES")]
    pub send_zc_threshold: Option<usize>,
    /// SO_SNDBUF of every peer socket (e.g. `256KiB`, `4MiB`); the kernel doubles it and caps
    /// it at net.core.wmem_max, and a set size turns off its send-buffer autotuning
    /// (default: autotuning, up to net.ipv4.tcp_wmem's maximum).
    #[arg(long, value_name = "BYTES", value_parser = parse_socket_bytes)]
    pub send_buffer: Option<u32>,
    /// TCP_NOTSENT_LOWAT of every peer socket (e.g. `128KiB`): how many bytes may wait unsent
    /// in the socket before it stops accepting more (default: net.ipv4.tcp_notsent_lowat).
    #[arg(long, value_name = "BYTES", value_parser = parse_socket_bytes)]
    pub notsent_lowat: Option<u32>,
    /// Pin each worker thread to one CPU (thread i to the i-th CPU this process may use).
    #[arg(long)]
    pub pin_cores: bool,
    /// Ask for transparent huge pages on the torrents' mappings (madvise MADV_HUGEPAGE);
    /// see tuning.md for whether the kernel honours it for page-cache files.
    #[arg(long)]
    pub huge_pages: bool,
    /// Seconds between statistics lines (0: only on exit).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub stats_every: u64,
}

/// A socket option size: a size (`parse_size`) from 1 byte to 2 GiB - 1 (a C `int`).
fn parse_socket_bytes(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if n == 0 || n > i32::MAX as u64 {
        return Err(format!("`{s}`: expected 1 byte to 2GiB"));
    }
    Ok(n as u32)
}

/// Runs `seedbox seed`.
pub fn run(args: SeedArgs) -> anyhow::Result<ExitCode> {
    match engine::raise_nofile_limit() {
        Ok(n) => tracing::debug!("descriptor limit {n}"),
        Err(e) => tracing::warn!("cannot raise the descriptor limit: {e}"),
    }
    let threads = args
        .threads
        .unwrap_or_else(storage::available_threads)
        .max(1);
    let creates = args.targets.iter().any(|t| !is_torrent_file(t));
    let tracker = if !args.no_tracker && (creates || args.tracker_listen.is_some()) {
        Some(start_embedded_tracker(
            args.tracker_listen.unwrap_or(DEFAULT_TRACKER_LISTEN),
            args.tracker_host.as_deref(),
            threads,
        )?)
    } else {
        None
    };
    let mut loaded = Vec::new();
    for target in &args.targets {
        let announce = tracker.as_ref().map(|(_, url)| url.clone());
        let (torrent, dir, bytes, hashed) = load_target(target, &args.data, threads, announce)?;
        if let Some((handle, _)) = &tracker {
            if let Err(e) = handle.add_torrent_file(&torrent.name, bytes, torrent.info_hash) {
                tracing::warn!("cannot list {} on the tracker's pages: {e}", torrent.name);
            }
        }
        loaded.push((torrent, dir, hashed));
    }
    if let Some((handle, url)) = &tracker {
        outln!("tracker   {url}");
        if let Some(a) = handle.http_addr() {
            let host = url
                .strip_prefix("http://")
                .and_then(|r| r.split('/').next())
                .map(str::to_owned)
                .unwrap_or_else(|| a.to_string());
            outln!("torrents  http://{host}/torrents/");
        }
    }
    let mut serving = Vec::new();
    let mut refused = 0;
    for (torrent, dir, hashed) in loaded {
        // A torrent created from its files a moment ago has had every piece hashed already:
        // checking it again would read all the data a second time.
        let skip = args.skip_check || hashed;
        match check(&torrent, &dir, threads, skip) {
            Ok(storage) => serving.push((torrent, storage, hashed || !args.skip_check)),
            Err(why) => {
                refused += 1;
                eprintln!(
                    "seedbox: refusing to seed {} ({}): {why}",
                    torrent.name, torrent.info_hash
                );
            }
        }
    }
    if serving.is_empty() {
        anyhow::bail!("nothing to seed: every torrent failed its check");
    }
    let (set, duplicates) = TorrentSet::new(serving);
    for d in duplicates {
        eprintln!(
            "seedbox: {} ({}) is given twice; seeding it once",
            d.name, d.info_hash
        );
    }
    if args.huge_pages {
        for t in set.iter() {
            let (advised, error) = t.storage.advise_huge_pages();
            match error {
                None => tracing::info!(
                    "{}: {advised} mappings advised MADV_HUGEPAGE",
                    t.torrent.name
                ),
                Some(e) => tracing::warn!("{}: madvise(MADV_HUGEPAGE) failed: {e}", t.torrent.name),
            }
        }
    }
    let listeners = engine::bind_reuseport(args.listen, threads)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let listen = listeners[0].local_addr()?;
    let peer_id = PeerId::generate(&mut rand::thread_rng());
    let mut trackers = Vec::new();
    for t in set.iter() {
        outln!("seeding   {}", t.torrent.name);
        outln!("info-hash {}", t.torrent.info_hash);
        outln!("magnet    {}", t.torrent.magnet());
        if !args.no_tracker && !engine::download::tracker_tiers(&t.torrent).is_empty() {
            trackers.push(start_announcer(&t.torrent, t.index, peer_id, listen.port()));
        }
    }
    outln!("listening {listen}");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let config = EngineConfig {
        threads,
        unchoke_slots: args.unchoke_slots,
        max_peers: args.max_peers,
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        send_timeout: args.send_timeout,
        request_queue: args.request_queue.max(1),
        max_upload_rate: args.max_upload_rate,
        send_zc_threshold: args.send_zc_threshold,
        send_buffer: args.send_buffer.map(|b| b as usize),
        notsent_lowat: args.notsent_lowat,
        pin_cores: args.pin_cores,
        peer_id,
        ..EngineConfig::default()
    };
    let set = Arc::new(set);
    let stats = Arc::new(EngineStats::new(threads, set.len()));
    let shutdown = Shutdown::new();
    let signals = Signals::block()?;
    let engine = {
        let (set, stats, shutdown) = (set.clone(), stats.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name("seedbox-engine".into())
            .spawn(move || engine::run(config, set, listeners, stats, &shutdown))?
    };
    let started = Instant::now();
    let mut last = (stats.snapshot(), Instant::now());
    let every = Duration::from_secs(args.stats_every);
    let mut stopped_seen = vec![false; set.len()];
    loop {
        let wait = if args.stats_every == 0 {
            FILE_CHECK_EVERY
        } else {
            every.saturating_sub(last.1.elapsed()).min(FILE_CHECK_EVERY)
        };
        if let Some(sig) = signals.wait(wait) {
            tracing::info!("signal {sig}: shutting down");
            break;
        }
        if engine.is_finished() {
            break;
        }
        // Files truncated, replaced or rewritten under the mapping stop their torrent (the
        // cores also check when a send fails with EFAULT); the others keep serving.
        for t in set.iter() {
            t.check_files();
            if t.is_stopped() && !stopped_seen[t.index] {
                stopped_seen[t.index] = true;
                eprintln!(
                    "seedbox: stopped seeding {} ({}): {}",
                    t.torrent.name,
                    t.torrent.info_hash,
                    t.stop_reason().unwrap_or("stopped")
                );
            }
        }
        let snap = stats.snapshot();
        for (a, sent) in &trackers {
            if let Some(b) = snap.torrent_bytes.get(*sent) {
                a.stats
                    .uploaded
                    .store(*b, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if args.stats_every > 0 && last.1.elapsed() >= every {
            let now = stats.snapshot();
            let secs = last.1.elapsed().as_secs_f64();
            tracing::info!("{}", now.summary(Some((&last.0, secs))));
            last = (now, Instant::now());
        }
    }
    shutdown.trigger();
    let result = engine
        .join()
        .map_err(|_| anyhow::anyhow!("engine thread panicked"))?;
    result.context("engine failed")?;
    let total = stats.snapshot();
    let secs = started.elapsed().as_secs_f64();
    for t in set.iter() {
        tracing::info!(
            "{}: {} bytes served",
            t.torrent.name,
            total.torrent_bytes.get(t.index).copied().unwrap_or(0)
        );
    }
    let zero = engine::StatsSnapshot::default();
    tracing::info!("total: {}", total.summary(Some((&zero, secs))));
    for (a, index) in trackers {
        if let Some(b) = total.torrent_bytes.get(index) {
            a.stats
                .uploaded
                .store(*b, std::sync::atomic::Ordering::Relaxed);
        }
        a.shutdown();
    }
    if let Some((handle, _)) = tracker {
        handle.stop();
    }
    let stopped = set.iter().filter(|t| t.is_stopped()).count();
    Ok(if refused > 0 || stopped > 0 {
        ExitCode::from(super::EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where the embedded tracker listens unless `--tracker-listen` says otherwise.
const DEFAULT_TRACKER_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 6969);

/// Whether `target` is a `.torrent` file (else a file or folder to share).
fn is_torrent_file(target: &Path) -> bool {
    target.is_file()
        && target
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("torrent"))
}

/// Starts the embedded tracker (HTTP and UDP on `listen`'s port); returns its handle and the
/// announce URL to write into created torrents.
fn start_embedded_tracker(
    listen: SocketAddr,
    host: Option<&str>,
    threads: usize,
) -> anyhow::Result<(TrackerHandle, String)> {
    let config = TrackerConfig {
        http: Some(listen),
        udp: Some(listen),
        threads: threads.min(2),
        ..TrackerConfig::default()
    };
    let handle = TrackerServer::start(config).with_context(|| {
        format!("cannot start the embedded tracker on {listen} (choose another with --tracker-listen, or --no-tracker)")
    })?;
    let bound = handle
        .http_addr()
        .context("the embedded tracker has no HTTP address")?;
    let host = match host {
        Some(h) => h.to_owned(),
        None => announce_host(bound.ip()).to_string(),
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("http://{host}:{}/announce", bound.port());
    Ok((handle, url))
}

/// The address peers should reach a tracker listening on `ip` at: `ip` itself unless it is
/// unspecified; then the address this machine sends from towards the outside (found by
/// connecting a UDP socket, which sends nothing), or loopback when there is no route.
fn announce_host(ip: std::net::IpAddr) -> std::net::IpAddr {
    if !ip.is_unspecified() {
        return ip;
    }
    let outbound = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip());
    match outbound {
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    }
}

/// Loads a `.torrent` target, or creates the torrent of a file or folder beside it (announcing
/// to `announce`, when given). Returns the torrent, the folder its content lives under, the
/// torrent file's bytes, and whether its pieces were just hashed from the files (created).
fn load_target(
    target: &Path,
    data: &Path,
    threads: usize,
    announce: Option<String>,
) -> anyhow::Result<(Torrent, PathBuf, Vec<u8>, bool)> {
    if is_torrent_file(target) {
        let torrent = Torrent::load(target)?;
        let bytes =
            std::fs::read(target).with_context(|| format!("cannot read {}", target.display()))?;
        return Ok((torrent, data.to_path_buf(), bytes, false));
    }
    let scan = metainfo::scan(target)?;
    let options = CreateOptions {
        threads,
        trackers: announce.into_iter().collect(),
        ..CreateOptions::default()
    };
    let (bytes, torrent) = metainfo::create(&scan, &options, &Default::default())?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let out = parent.join(format!("{}.torrent", scan.name));
    super::create::write_atomically(&out, &bytes)?;
    outln!("created   {}", out.display());
    tracing::info!(
        "{}: {} pieces hashed while creating the torrent; not checked again",
        torrent.name,
        torrent.piece_count()
    );
    Ok((torrent, parent, bytes, true))
}

/// The start-up check: every file present with its size and every piece good.
fn check(
    torrent: &Torrent,
    dir: &Path,
    threads: usize,
    skip: bool,
) -> Result<MappedStorage, String> {
    if skip {
        let layout = storage::Layout::of_torrent(torrent, dir);
        return MappedStorage::open(layout).map_err(|e| e.to_string());
    }
    let started = Instant::now();
    let (report, storage) = storage::verify(torrent, dir, threads, &Default::default());
    if let Some(p) = report.file_problems.first() {
        return Err(p.to_string());
    }
    if !report.is_complete() {
        let bad = report.bad_pieces.len() + report.missing_pieces.len();
        let first = report
            .bad_pieces
            .first()
            .or(report.missing_pieces.first())
            .copied()
            .unwrap_or(0);
        return Err(format!(
            "{bad} of {} pieces fail their hash (first: piece {first})",
            torrent.piece_count()
        ));
    }
    tracing::info!(
        "{}: {} pieces checked in {:.2} s",
        torrent.name,
        torrent.piece_count(),
        started.elapsed().as_secs_f64()
    );
    Ok(storage)
}

/// Starts announcing `torrent` (as a seed: `left` 0) through the tracker client; returns the
/// announcer and the torrent's index (its uploaded count is fed from the engine's statistics).
/// Extra trackers (such as an embedded one) only need adding to the tiers here.
fn start_announcer(
    torrent: &Torrent,
    index: usize,
    peer_id: PeerId,
    port: u16,
) -> (TrackerClient, usize) {
    let tiers = engine::download::tracker_tiers(torrent);
    let stats = Arc::new(AnnounceStats::default());
    let me = Identity {
        info_hash: torrent.info_hash,
        peer_id,
        port,
    };
    (TrackerClient::spawn(tiers, me, stats), index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_sizes_parse_within_a_c_int() {
        assert_eq!(parse_socket_bytes("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_socket_bytes("4MiB"), Ok(4 << 20));
        assert_eq!(parse_socket_bytes("16384"), Ok(16384));
        assert!(parse_socket_bytes("0").is_err());
        assert!(parse_socket_bytes("2GiB").is_err());
        assert!(parse_socket_bytes("lots").is_err());
    }

    #[test]
    fn knob_flags_reach_the_arguments() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            seed: SeedArgs,
        }
        let cli = Cli::try_parse_from([
            "seed",
            "x.torrent",
            "--send-buffer",
            "1MiB",
            "--notsent-lowat",
            "128KiB",
            "--pin-cores",
            "--huge-pages",
        ])
        .unwrap();
        assert_eq!(cli.seed.send_buffer, Some(1 << 20));
        assert_eq!(cli.seed.notsent_lowat, Some(128 << 10));
        assert!(cli.seed.pin_cores && cli.seed.huge_pages);
        let cli = Cli::try_parse_from(["seed", "x.torrent"]).unwrap();
        assert_eq!(cli.seed.send_buffer, None);
        assert_eq!(cli.seed.notsent_lowat, None);
        assert!(!cli.seed.pin_cores && !cli.seed.huge_pages);
    }
}
