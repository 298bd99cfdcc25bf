//! `seedbox tracker`: the HTTP and UDP tracker, standalone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::signals::Signals;
use crate::metainfo::Torrent;
use crate::tracker::registry::RegistryConfig;
use crate::tracker::server::{parse_whitelist, TrackerConfig, TrackerHandle, TrackerServer};

/// Arguments of `seedbox tracker`.
#[derive(Debug, Args)]
pub struct TrackerArgs {
    /// HTTP address (announce, scrape, and the web pages).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:6969")]
    pub listen: SocketAddr,

    /// UDP address (BEP 15). Default: the same address and port as --listen.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "no_udp")]
    pub udp: Option<SocketAddr>,

    /// Serve no UDP tracker.
    #[arg(long)]
    pub no_udp: bool,

    /// Announce interval given to clients, seconds. Peers silent for one and a half intervals expire.
    #[arg(long, value_name = "SECS", default_value_t = 1800,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub interval: u32,

    /// Minimum announce interval given to clients, seconds (default: half the interval).
    #[arg(long, value_name = "SECS")]
    pub min_interval: Option<u32>,

    /// Track only these swarms: a file of hex info-hashes, one per line.
    #[arg(long, value_name = "FILE")]
    pub whitelist: Option<PathBuf>,

    /// Worker threads (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,

    /// Believe the `ip` an announce claims (only behind a trusted proxy or on a LAN).
    #[arg(long)]
    pub trust_ip: bool,

    /// Serve every .torrent in DIR at /torrents/NAME.torrent and list them on the index page.
    #[arg(long, value_name = "DIR")]
    pub torrents: Option<PathBuf>,

    /// Peers returned when the client does not say how many it wants.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub numwant: u32,

    /// The most peers returned to one announce.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub numwant_max: u32,

    /// Time a client has to send a whole request head (e.g. 5s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "5s",
          value_parser = super::units::parse_duration)]
    pub header_timeout: Duration,

    /// Time an idle keep-alive connection is kept.
    #[arg(long, value_name = "DURATION", default_value = "60s",
          value_parser = super::units::parse_duration)]
    pub idle_timeout: Duration,
}

fn load_torrents(tracker: &TrackerHandle, dir: &Path) -> anyhow::Result<usize> {
    let mut n = 0;
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("torrent") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let t = Torrent::from_bytes(&bytes).with_context(|| format!("{}", path.display()))?;
        tracker.add_torrent_file(name, bytes, t.info_hash)?;
        n += 1;
    }
    Ok(n)
}

/// Runs `seedbox tracker`.
pub fn run(args: TrackerArgs) -> anyhow::Result<ExitCode> {
    // Before any thread starts: a SIGTERM sent as soon as the URLs are printed must stop the
    // tracker cleanly, not kill it before a handler exists.
    let signals = Signals::block()?;
    let whitelist = match &args.whitelist {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading whitelist {}", path.display()))?;
            let w =
                parse_whitelist(&text).with_context(|| format!("whitelist {}", path.display()))?;
            Some(w)
        }
        None => None,
    };
    let whitelisted = whitelist.as_ref().map(|w| w.len());
    let config = TrackerConfig {
        http: Some(args.listen),
        udp: if args.no_udp {
            None
        } else {
            Some(args.udp.unwrap_or(args.listen))
        },
        threads: args.threads,
        registry: RegistryConfig {
            interval: args.interval,
            min_interval: args.min_interval.unwrap_or(args.interval / 2).max(1),
            numwant_default: args.numwant.min(args.numwant_max),
            numwant_max: args.numwant_max,
            whitelist,
        },
        trust_ip: args.trust_ip,
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        ..TrackerConfig::default()
    };
    crate::engine::raise_nofile_limit().ok();
    let tracker = TrackerServer::start(config)?;
    if let Some(dir) = &args.torrents {
        let n = load_torrents(&tracker, dir)?;
        tracing::info!("serving {n} torrent files from {}", dir.display());
    }
    if let Some(url) = tracker.announce_url() {
        outln!("HTTP {url}");
    }
    if let Some(url) = tracker.udp_url() {
        outln!("UDP {url}");
    }
    if let Some(n) = whitelisted {
        outln!("whitelist: {n} swarms");
    }
    use std::io::Write;
    std::io::stdout().flush().ok();
    let sig = signals.wait_forever();
    let s = tracker.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        "{sig}: stopping after {} HTTP and {} UDP announces, {} scrapes, {} refused",
        load(&s.http_announces),
        load(&s.udp_announces),
        load(&s.scrapes),
        load(&s.refused)
    );
    tracker.stop();
    Ok(ExitCode::SUCCESS)
}
