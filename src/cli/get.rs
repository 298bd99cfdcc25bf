//! `seedbox get`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::dht::DhtArgs;
use super::units::{parse_duration, parse_rate};
use crate::dht::port::{EarlyReader, KrpcHandoff};
use crate::dht::DhtNode;
use crate::engine::download::{self, DownloadConfig, Linger};
use crate::metainfo::{Torrent, MAX_TORRENT_FILE_SIZE};
use crate::protocol::mse::EncryptionPolicy;
use crate::storage::WriteMode;
use crate::swarm::Slots;
use crate::tracker::client::http_get;

/// Arguments of `seedbox get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The .torrent to download: a file, an `http://` URL of one (such as a seed box's
    /// `/torrents/NAME.torrent` page), or a magnet link (its info dictionary is fetched from
    /// peers first and written to DIR/NAME.torrent).
    pub torrent: PathBuf,
    /// With a magnet link: give up when no peer has sent the info dictionary after this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    pub metadata_timeout: Duration,
    /// How blocks are written: `pwrite` (default, measured faster) or `mapped`.
    #[arg(long, value_name = "pwrite|mapped", default_value = "pwrite")]
    pub write_mode: WriteMode,
    /// Save folder: the content goes to DIR/NAME (default: the current folder).
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// A peer to connect to (IP:PORT); repeat for several.
    #[arg(long = "peer", value_name = "IP:PORT")]
    pub peers: Vec<SocketAddr>,
    /// Most connected peers.
    #[arg(long, value_name = "J", default_value_t = 50)]
    pub max_peers: usize,
    /// Where to accept incoming peers.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:0")]
    pub listen: SocketAddr,
    /// Seed this long after completion (`0`: exit once complete and verified).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with_all = ["ratio", "seed_forever"])]
    pub linger: Option<Duration>,
    /// Seed until uploaded bytes reach R times the torrent's size.
    #[arg(long, value_name = "R", conflicts_with = "seed_forever")]
    pub ratio: Option<f64>,
    /// Seed until interrupted.
    #[arg(long)]
    pub seed_forever: bool,
    /// Regular unchoke slots (`auto`: grown with the upload rates, see tuning.md; or
    /// `unlimited`), besides one optimistic unchoke.
    #[arg(long, value_name = "auto|N|unlimited", default_value = "4")]
    pub unchoke_slots: Slots,
    /// Upload limit (e.g. `2Mbit`, `500KiB/s`).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_upload_rate: Option<u64>,
    /// Do not announce to the torrent's trackers (use --peer only).
    #[arg(long)]
    pub no_tracker: bool,
    /// No progress bar.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Encrypted connections (MSE/PE): `allow` dials plain and accepts plain or encrypted
    /// peers; `prefer` dials encrypted (offering `rc4` and `plaintext`) and chooses `rc4`
    /// for encrypted peers; `require` speaks only encrypted `rc4`, both ways.
    #[arg(long, value_name = "allow|prefer|require", default_value = "allow")]
    pub encryption: EncryptionPolicy,
    /// Print the final report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Give up (exit 1, saying why) when no piece has verified for this long before the
    /// download completed: no peer reachable, none with the missing pieces, all banned, no
    /// tracker answering, or peers whose blocks never make a piece that verifies (bad data,
    /// part of a piece and gone). Keep it above the time one piece takes at the slowest
    /// rate you accept. `0`: wait forever.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "3m")]
    pub stall_timeout: Duration,
    /// Do not use uTP (BEP 29): dial and accept TCP only. By default the listen port's UDP
    /// accepts uTP, and peers are dialled over TCP first and over uTP too when TCP has not
    /// answered within half a second or was refused (the first transport to connect is
    /// kept); a peer that closed our TCP connection before its handshake is dialled uTP
    /// first next time.
    #[arg(long)]
    pub no_utp: bool,
    /// The DHT (BEP 5).
    #[command(flatten)]
    pub dht: DhtArgs,
}

/// The file next to the download where the DHT's routing table is kept across runs.
pub const DHT_NODES_FILE: &str = ".seedbox-dht.nodes";

/// Exit code of a `get` interrupted before completion (SIGINT or SIGTERM), as shells report
/// a command ended by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// How often `get` prints a progress line when stderr is not a terminal (no bar).
pub const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(10);

/// Loads the torrent from a file or fetches it from an `http://` URL.
fn load_torrent(source: &Path) -> anyhow::Result<Torrent> {
    match source.to_str() {
        Some(url) if url.starts_with("http://") => {
            let bytes = http_get(url, MAX_TORRENT_FILE_SIZE as usize, Duration::from_secs(30))
                .with_context(|| format!("cannot fetch {url}"))?;
            Torrent::from_bytes(&bytes).with_context(|| format!("{url} is not a valid torrent"))
        }
        Some(url) if url.starts_with("https://") => {
            anyhow::bail!("{url}: https is not supported; use http:// or download the file")
        }
        _ => Ok(Torrent::load(source)?),
    }
}

/// Fetches a magnet link's info dictionary (BEP 9) from its peers (`x.pe=`, `--peer`, `tr=`
/// trackers unless `--no-tracker`), writes DIR/NAME.torrent and returns the torrent and the
/// peers met, for the download to dial.
fn fetch_magnet(
    link: &str,
    args: &GetArgs,
    dht: Option<&DhtNode>,
) -> anyhow::Result<(Torrent, Vec<SocketAddr>)> {
    let magnet = crate::metainfo::magnet::parse(link.as_bytes())?;
    let mut peers = args.peers.clone();
    peers.extend(&magnet.peers);
    let trackers = if args.no_tracker {
        Vec::new()
    } else {
        magnet.trackers.clone()
    };
    if peers.is_empty() && trackers.is_empty() && dht.is_none() {
        anyhow::bail!(
            "the magnet link names no tracker (tr=) nor peer (x.pe=), and the DHT is off; give --peer"
        );
    }
    let fetched = crate::engine::magnet::fetch_metadata(crate::engine::magnet::FetchConfig {
        info_hash: magnet.info_hash,
        peer_id: crate::protocol::PeerId::generate(&mut rand::thread_rng()),
        port: if args.listen.port() == 0 {
            6881
        } else {
            args.listen.port()
        },
        peers,
        trackers,
        timeout: args.metadata_timeout,
        dht: dht.map(|d| d.lookup(magnet.info_hash)),
    })?;
    let bytes = crate::engine::magnet::torrent_file_bytes(
        &fetched.info,
        &magnet.trackers,
        &magnet.web_seeds,
    );
    let torrent = Torrent::from_bytes(&bytes).with_context(|| {
        format!(
            "the metadata of {} is not a valid torrent",
            magnet.info_hash
        )
    })?;
    let path = args.output.join(format!("{}.torrent", torrent.name));
    crate::service::load::write_atomically(&path, &bytes)?;
    if !args.quiet && !args.json {
        eprintln!(
            "metadata  {} ({} bytes) -> {}",
            torrent.name,
            fetched.info.len(),
            path.display()
        );
    }
    Ok((torrent, fetched.peers))
}

/// Runs `seedbox get`.
pub fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let link = args.torrent.to_str().filter(|s| s.starts_with("magnet:"));
    let loaded = match link {
        Some(_) => None,
        None => Some(load_torrent(&args.torrent)?),
    };
    // The peer port first (TCP, and uTP on its UDP), then the DHT on it.
    let mut port = download::bind_peer_port(args.listen, !args.no_utp)?;
    let listen = port.tcp.local_addr()?;
    let dht = start_dht(&args, loaded.as_ref(), listen, &mut port)?;
    let (torrent, met) = match (link, loaded) {
        (_, Some(t)) => (t, Vec::new()),
        (Some(link), None) => {
            // No uTP driver reads the shared socket before the download starts: a thread
            // does, while the metadata is fetched, so the DHT hears its replies.
            let _early = match (&port.udp, &port.others) {
                (Some(udp), Some(sink)) => Some(
                    EarlyReader::start(udp, sink.clone())
                        .context("cannot read the listen port's UDP for the DHT")?,
                ),
                _ => None,
            };
            fetch_magnet(link, &args, dht.as_deref())?
        }
        (None, None) => unreachable!("a torrent that is no magnet link is loaded"),
    };
    let torrent = Arc::new(torrent);
    let config = download_config(&args, torrent.clone(), met, listen, dht.clone());
    let stop = Arc::new(AtomicBool::new(false));
    install_stop_handler(stop.clone());
    let progress = ProgressView::new(&args, &torrent);
    let report = download::run(config, port, |p| progress.show(p), stop.clone())?;
    progress.bar.finish_and_clear();
    if let Some(d) = &dht {
        d.shutdown();
    }
    print_report(&args, &torrent, &report)?;
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else if stop.load(Ordering::Relaxed) {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::from(super::EXIT_FAILURE)
    })
}

/// Starts the DHT node on the listen port's UDP: with uTP, through the socket uTP reads (the
/// download's driver, or an [`EarlyReader`] before it, hands it the KRPC datagrams; `port`
/// gets the hand-over), else on a socket of its own there; `--dht-port` gives it another
/// port. None with `--no-dht` or for a private torrent (BEP 27; a magnet's privacy is known
/// only once its metadata arrived).
fn start_dht(
    args: &GetArgs,
    loaded: Option<&Torrent>,
    listen: SocketAddr,
    port: &mut download::PeerPort,
) -> anyhow::Result<Option<Arc<DhtNode>>> {
    if loaded.is_some_and(|t| t.private) {
        return Ok(None);
    }
    let nodes_file = Some(args.output.join(DHT_NODES_FILE));
    Ok(args
        .dht
        .start(listen, nodes_file, port.udp.as_ref())?
        .map(|(node, handoff)| {
            port.others = handoff.map(KrpcHandoff::into_sink);
            node
        }))
}

/// The download's settings from the flags: the peers given first, then those the metadata
/// fetch met.
fn download_config(
    args: &GetArgs,
    torrent: Arc<Torrent>,
    met: Vec<SocketAddr>,
    listen: SocketAddr,
    dht: Option<Arc<DhtNode>>,
) -> DownloadConfig {
    let mut peers = args.peers.clone();
    peers.extend(met.into_iter().filter(|p| !args.peers.contains(p)));
    let linger = match (args.linger, args.ratio, args.seed_forever) {
        (_, _, true) => Linger::Forever,
        (_, Some(r), _) => Linger::Ratio(r),
        (Some(d), _, _) => Linger::For(d),
        (None, None, false) => Linger::For(Duration::ZERO),
    };
    DownloadConfig {
        save_dir: args.output.clone(),
        peers,
        max_peers: args.max_peers.max(1),
        listen,
        linger,
        unchoke_slots: args.unchoke_slots,
        max_upload_rate: args.max_upload_rate,
        threads: crate::storage::available_threads(),
        rng_seed: None,
        write_mode: args.write_mode,
        encryption: args.encryption,
        stall_timeout: (!args.stall_timeout.is_zero()).then_some(args.stall_timeout),
        trackers: if args.no_tracker {
            Vec::new()
        } else {
            download::tracker_tiers(&torrent)
        },
        dht: dht.filter(|_| !torrent.private),
        torrent,
    }
}

/// How a running download shows its progress: a bar on a terminal; without one, a line every
/// [`PROGRESS_LINE_EVERY`], so a log or a pipe still shows the download moving; nothing with
/// `-q` or `--json`.
struct ProgressView<'a> {
    bar: ProgressBar,
    torrent: &'a Torrent,
    lines: bool,
    last_line: std::cell::Cell<Option<Instant>>,
}

impl<'a> ProgressView<'a> {
    fn new(args: &GetArgs, torrent: &'a Torrent) -> Self {
        let target = if args.quiet || args.json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(torrent.total_length), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{percent:>3}% [{bar:30}] {bytes}/{total_bytes} {msg} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        ProgressView {
            bar,
            torrent,
            lines: !args.quiet && !args.json && !std::io::stderr().is_terminal(),
            last_line: std::cell::Cell::new(None),
        }
    }

    fn show(&self, p: &download::Progress) {
        let status = format!(
            "down {}/s up {}/s, {} peers{}",
            indicatif::HumanBytes(p.down_rate),
            indicatif::HumanBytes(p.up_rate),
            p.peers,
            if p.complete { ", seeding" } else { "" }
        );
        if self.lines
            && self
                .last_line
                .get()
                .map_or(true, |t| t.elapsed() >= PROGRESS_LINE_EVERY)
        {
            self.last_line.set(Some(Instant::now()));
            let total = self.torrent.total_length;
            eprintln!(
                "{}: {}% {} of {}, {status}",
                self.torrent.name,
                (p.have_bytes * 100).checked_div(total).unwrap_or(100),
                indicatif::HumanBytes(p.have_bytes),
                indicatif::HumanBytes(total),
            );
        }
        self.bar.set_position(p.have_bytes);
        self.bar.set_message(status);
    }
}

/// The download's closing line (or, with `--json`, its whole report).
fn print_report(
    args: &GetArgs,
    torrent: &Torrent,
    report: &download::DownloadReport,
) -> anyhow::Result<()> {
    if args.json {
        outln!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let t = &report.totals;
    outln!(
        "{} {}: {} bytes down, {} up ({} while downloading), {} wasted, {} hash failures, {} banned, {} pieces resumed, {:.1} s",
        if report.complete { "complete" } else { "INCOMPLETE" },
        torrent.name,
        t.downloaded,
        t.uploaded,
        t.uploaded_while_leeching,
        t.wasted,
        t.hash_failures,
        t.banned,
        t.resumed_pieces,
        report.seconds
    );
    Ok(())
}

/// SIGINT/SIGTERM set `stop`; a second signal exits at once. The handlers are in place when
/// this returns (a signal right after is not lost to the default action).
fn install_stop_handler(stop: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("signal runtime");
    let (mut int, mut term) = {
        let _in_runtime = rt.enter();
        (
            signal(SignalKind::interrupt()).expect("SIGINT handler"),
            signal(SignalKind::terminate()).expect("SIGTERM handler"),
        )
    };
    std::thread::spawn(move || {
        rt.block_on(async {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if stop.swap(true, Ordering::Relaxed) {
                    std::process::exit(i32::from(EXIT_INTERRUPTED));
                }
            }
        });
    });
}
