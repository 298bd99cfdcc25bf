//! `seedbox seed`: check the data, then serve it from the thread-per-core engine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::config;
use super::dht::DhtArgs;
use super::signals::Signals;
use super::units::{parse_duration, parse_rate, parse_size};
use crate::dht::port::KrpcHandoff;
use crate::engine::{self, EngineConfig, EngineControl, LimitValues, Shutdown};
use crate::metainfo::InfoHash;
use crate::protocol::mse::EncryptionPolicy;
use crate::protocol::PeerId;
use crate::service::admin::{parse_admin_addr, AdminConfig, AdminServer, Token};
use crate::service::announce::Announcers;
use crate::service::load::is_torrent_file;
use crate::service::notify::{status_line, Notifier};
use crate::service::resume::StateDir;
use crate::service::watch::{check_folder, WatchConfig, Watcher};
use crate::service::webseed::{WebSeedConfig, WebSeedServer};
use crate::service::{EmbeddedTracker, Service, ServiceBackend, ServiceConfig};
use crate::storage;
use crate::swarm::Slots;
use crate::tracker::server::{TrackerConfig, TrackerHandle, TrackerServer};

/// How often the files of every torrent are checked for truncation or replacement.
const FILE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Arguments of `seedbox seed`.
#[derive(Clone, Debug, Args)]
pub struct SeedArgs {
    /// A .torrent (its content is looked up under --data) or a file or folder to share (its
    /// torrent is created beside it, as `seedbox create` would).
    #[arg(value_name = "TARGET", required_unless_present_any = ["watch", "config"])]
    pub targets: Vec<PathBuf>,
    /// Read the flags below from a TOML file, each key named as its flag
    /// (`unchoke-slots = "auto"`, `watch = "/srv/drop"`); a flag given here wins, a key that
    /// is no flag is refused. SIGHUP re-reads it: the watch folder, the upload limit and the
    /// unchoke slots change without dropping peers (the other keys at the next start).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Watch folder: a .torrent dropped into it (its data under --data) is seeded, and so is
    /// a file or folder (its torrent created beside it, as for a TARGET), once unchanged for
    /// a second; removing it stops its torrent. inotify, or polling where it is refused.
    #[arg(long, value_name = "DIR")]
    pub watch: Option<PathBuf>,
    /// Poll the watch folder every SECS seconds instead of using inotify (for filesystems
    /// that send no events, e.g. some network mounts).
    #[arg(long, value_name = "SECS", value_parser = parse_poll)]
    pub watch_poll: Option<Duration>,
    /// Folder holding the content of .torrent targets.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub data: PathBuf,
    /// Address and port to listen on (port 0: any free port, printed).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:6881")]
    pub listen: SocketAddr,
    /// Worker threads, each with its own io_uring runtime and listener (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Regular unchoke slots per torrent over all cores, plus one optimistic unchoke rotated
    /// every 30 s: one round every 10 s ranks the torrent's interested peers by our upload
    /// rate to them, whichever core serves them. `auto` (the default) grows the slots while
    /// the peers take what they are given (libtorrent's rate thresholds, and with
    /// --max-upload-rate while the uplink is under 90% used; never fewer than 4, see
    /// tuning.md); N: at most N + 1 unchoked; `unlimited`: every interested peer.
    #[arg(long, value_name = "auto|N|unlimited", default_value = "auto")]
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
    /// BEP 16 super-seeding, for a new release's origin: each peer is shown two pieces (the
    /// rarest), and the next ones only as those are seen spreading to other peers, so that
    /// every piece leaves the origin about once.
    #[arg(long)]
    pub super_seed: bool,
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
    /// Do not serve uTP (BEP 29) on the peer port's UDP. By default uTP is served beside TCP,
    /// one UDP socket per core: Transmission and qBittorrent try it first with their default
    /// settings, and Transmission 3.00 never falls back to TCP.
    #[arg(long)]
    pub no_utp: bool,
    /// Ask for transparent huge pages on the torrents' mappings (madvise MADV_HUGEPAGE);
    /// see tuning.md for whether the kernel honours it for page-cache files.
    #[arg(long)]
    pub huge_pages: bool,
    /// Encrypted connections (MSE/PE, as libtorrent and Transmission speak it): `allow`
    /// accepts plain and encrypted peers (choosing the `plaintext` method when offered),
    /// `prefer` chooses `rc4` when offered, `require` refuses plain handshakes and
    /// `plaintext`. RC4 peers cost a copy of what they are sent (see tuning.md).
    #[arg(long, value_name = "allow|prefer|require", default_value = "allow")]
    pub encryption: EncryptionPolicy,
    /// Serve the admin HTTP API, Prometheus metrics (`/metrics`) and status page (`/`) on
    /// ADDR:PORT (or PORT, on loopback). Off by default; an address other than loopback
    /// needs --admin-token-file.
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_admin_addr)]
    pub admin: Option<SocketAddr>,
    /// File holding the bearer token admin requests must carry (`Authorization: Bearer
    /// TOKEN`).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Keep resume data in DIR: per torrent, the pieces verified and each file's size,
    /// modification time and inode. A torrent whose files are unchanged at the next start
    /// is served without hashing them again; one whose files changed is checked in full.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Serve every torrent's files as a web seed (BEP 19): plain HTTP with `Range` support on
    /// ADDR:PORT (or PORT, on loopback), paths `/NAME` or `/NAME/path/...`. Its URL goes into
    /// the `url-list` of the torrents seeded unless --web-seed-url names others.
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_admin_addr)]
    pub web_seed: Option<SocketAddr>,
    /// A web seed URL to write into the torrents' `url-list` (created torrents get it in
    /// their file; loaded ones in the copy served and in the magnet link's `ws=`; the
    /// info-hash does not change). Repeat for several.
    #[arg(long, value_name = "URL")]
    pub web_seed_url: Vec<String>,
    /// Upload limit of the web seed per client IP (e.g. `10MB/s`, `100Mbit`): HTTP clients
    /// bypass the choker, so this keeps one from taking the whole uplink (default: none).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub web_seed_rate: Option<u64>,
    /// Seconds between statistics lines (0: only on exit).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub stats_every: u64,
    /// The DHT (BEP 5); its routing table is kept in --state's folder.
    #[command(flatten)]
    pub dht: DhtArgs,
}

/// The file in --state's folder where the DHT's routing table is kept across restarts.
pub const DHT_NODES_FILE: &str = "dht.nodes";

/// A polling interval in seconds (fractions allowed), 0.1 s to a day.
pub(super) fn parse_poll(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}`: expected seconds, e.g. 2 or 0.5"))?;
    if !(0.1..=86_400.0).contains(&secs) {
        return Err(format!("`{s}`: expected 0.1 to 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A socket option size: a size (`parse_size`) from 1 byte to 2 GiB - 1 (a C `int`).
pub(super) fn parse_socket_bytes(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if n == 0 || n > i32::MAX as u64 {
        return Err(format!("`{s}`: expected 1 byte to 2GiB"));
    }
    Ok(n as u32)
}

/// The ids of the arguments `matches` got from the command line (not from defaults).
pub(super) fn given_ids(matches: &clap::ArgMatches) -> Vec<String> {
    matches
        .ids()
        .filter(|id| {
            matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
        })
        .map(|id| id.as_str().to_owned())
        .collect()
}

/// The config file behind `--config`, read at start and on SIGHUP.
struct Reload {
    path: PathBuf,
    /// The command line's arguments (defaults where no flag was given).
    cli: SeedArgs,
    /// The ids of the flags given on the command line (they win over the file).
    given: Vec<String>,
}

impl Reload {
    /// The settings: the file's keys under the command line's flags.
    fn settings(&self) -> anyhow::Result<SeedArgs> {
        let mut args = self.cli.clone();
        config::load(&self.path)?
            .apply(&mut args, &|id| self.given.iter().any(|g| g == id))
            .with_context(|| format!("config {}", self.path.display()))?;
        Ok(args)
    }
}

/// What a SIGHUP may change while serving: the settings in force, the watch folder and the
/// config file to re-read.
struct Live {
    args: SeedArgs,
    watcher: Option<Watcher>,
    reload: Option<Reload>,
    /// systemd's notification socket (`Type=notify`), and the last status sent.
    notifier: Option<Notifier>,
    status: String,
}

fn rate_text(rate: Option<u64>) -> String {
    rate.map_or_else(|| "none".to_owned(), |r| format!("{r} bytes/s"))
}

fn watch_text(args: &SeedArgs) -> String {
    match (&args.watch, args.watch_poll) {
        (None, _) => "none".to_owned(),
        (Some(d), None) => d.display().to_string(),
        (Some(d), Some(p)) => format!("{} (polled every {} s)", d.display(), p.as_secs_f64()),
    }
}

impl Live {
    /// Tells systemd (when it started us as `Type=notify`) `state`; a failure is logged once.
    fn notify(&mut self, state: &str) {
        if let Some(n) = &self.notifier {
            if let Err(e) = n.notify(state) {
                tracing::warn!("cannot notify systemd: {e}");
                self.notifier = None;
            }
        }
    }

    /// Sends the status line when it changed.
    fn update_status(&mut self, service: &Service) {
        if self.notifier.is_none() {
            return;
        }
        let torrents = service.torrents();
        let peers = torrents.iter().map(|t| t.peers).sum();
        let status = status_line(torrents.len(), peers);
        if status != self.status {
            self.notify(&status);
            self.status = status;
        }
    }

    /// SIGHUP: re-reads the config file and applies what changed. A file that does not read
    /// or parse is logged and the running settings stay.
    fn hangup(&mut self, service: &Arc<Service>) {
        let Some(reload) = &self.reload else {
            return;
        };
        let new = match reload.settings() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("SIGHUP: {e:#}; keeping the running settings");
                return;
            }
        };
        let path = reload.path.display().to_string();
        let mut changed = Vec::new();
        let mut new = new;
        let mut tracker_started = false;
        if (&new.watch, new.watch_poll) != (&self.args.watch, self.args.watch_poll) {
            match self.change_watch(service, &new) {
                Ok(started) => {
                    tracker_started = started;
                    changed.push(format!("watch {}", watch_text(&new)));
                }
                Err(e) => {
                    tracing::error!(
                        "config {path}: {e:#}; keeping watch {}",
                        watch_text(&self.args)
                    );
                    new.watch = self.args.watch.clone();
                    new.watch_poll = self.args.watch_poll;
                }
            }
        }
        if new.unchoke_slots != self.args.unchoke_slots {
            changed.push(format!("unchoke-slots {}", new.unchoke_slots));
        }
        if new.max_upload_rate != self.args.max_upload_rate {
            changed.push(format!(
                "max-upload-rate {}",
                rate_text(new.max_upload_rate)
            ));
        }
        service.engine().set_limits(LimitValues {
            unchoke_slots: new.unchoke_slots,
            max_upload_rate: new.max_upload_rate,
        });
        // The other keys are read at start only.
        let mut rest = new.clone();
        rest.watch = self.args.watch.clone();
        rest.watch_poll = self.args.watch_poll;
        rest.unchoke_slots = self.args.unchoke_slots;
        rest.max_upload_rate = self.args.max_upload_rate;
        if tracker_started {
            rest.tracker_listen = self.args.tracker_listen;
            rest.tracker_host = self.args.tracker_host.clone();
        }
        if format!("{rest:?}") != format!("{:?}", self.args) {
            tracing::warn!(
                "config {path}: keys other than watch, watch-poll, unchoke-slots and \
                 max-upload-rate changed; they take effect at the next start"
            );
        }
        tracing::info!(
            "config {path} re-read: {}",
            if changed.is_empty() {
                "nothing to change".to_owned()
            } else {
                changed.join(", ")
            }
        );
        self.args = new;
    }

    /// Watches `new`'s folder. A folder where there was none gets the embedded tracker (with
    /// `new`'s tracker-listen and tracker-host) if it is not running, as a watch folder given
    /// at start does; returns whether it was started.
    fn change_watch(&mut self, service: &Arc<Service>, new: &SeedArgs) -> anyhow::Result<bool> {
        let mut tracker_started = false;
        match (&self.watcher, &new.watch) {
            (Some(w), Some(dir)) => w.reconfigure(WatchConfig {
                dir: dir.clone(),
                poll: new.watch_poll,
            })?,
            (None, Some(dir)) => {
                check_folder(dir)?;
                if !self.args.no_tracker && !service.has_tracker() {
                    let tracker = start_tracker_if_needed(
                        &SeedArgs {
                            no_tracker: false,
                            ..new.clone()
                        },
                        service.config().threads,
                    )?;
                    if let Some(t) = tracker {
                        tracing::info!(
                            "embedded tracker started for the watch folder: {}",
                            t.announce_url
                        );
                        service.attach_tracker(t);
                        tracker_started = true;
                    }
                }
                self.watcher = Some(Watcher::start(
                    service.clone(),
                    WatchConfig {
                        dir: dir.clone(),
                        poll: new.watch_poll,
                    },
                )?)
            }
            (Some(_), None) => {
                if let Some(w) = self.watcher.take() {
                    w.stop();
                }
                tracing::info!("no watch folder any more; its torrents keep serving");
            }
            (None, None) => {}
        }
        Ok(tracker_started)
    }
}

/// Runs `seedbox seed`; `given`: the ids of the flags given on the command line (they win
/// over `--config`'s file).
pub fn run(cli: SeedArgs, given: Vec<String>) -> anyhow::Result<ExitCode> {
    let (args, reload) = settings(cli, given)?;
    // Before any thread starts: every thread inherits the blocked signals.
    let signals = Signals::block_with_hangup()?;
    raise_descriptor_limit();
    let threads = args
        .threads
        .unwrap_or_else(storage::available_threads)
        .max(1);
    let tracker = start_tracker_if_needed(&args, threads)?;
    if let Some(t) = &tracker {
        print_tracker(t);
    }
    let sockets = bind_sockets(&args, threads)?;
    let listen = sockets.listen;
    let notifier = start_notifier(&args);
    let peer_id = PeerId::generate(&mut rand::thread_rng());
    let (control, inboxes) = EngineControl::new(threads);
    let state = args
        .state
        .as_deref()
        .map(StateDir::open)
        .transpose()?
        .map(Arc::new);
    let web_seed = bind_web_seed(&args)?;
    let web_seed_url = web_seed.as_ref().map(|(_, _, url)| url.as_str());
    let service = new_service(
        &args,
        &control,
        (threads, peer_id, listen),
        state,
        tracker,
        web_seed_url,
    );
    let (dht_port, krpc) = start_dht(&args, &service, listen, sockets.utp.first())?;
    let own = SocketAddr::new(announce_host(listen.ip()), listen.port());
    let refused = add_targets(&service, &args.targets, Some(own));
    if control.is_empty() && args.watch.is_none() {
        service.shutdown();
        anyhow::bail!("nothing to seed: every torrent failed its check");
    }
    let watcher = start_watcher(&args, &service)?;
    let admin = start_admin(&args, &service)?;
    let web_seed = start_web_seed(web_seed, &service)?;
    let mut live = Live {
        args: args.clone(),
        watcher,
        reload,
        notifier,
        status: String::new(),
    };
    outln!("listening {listen}");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let shutdown = Shutdown::new();
    let config = engine_config(&args, threads, peer_id, dht_port);
    let engine = spawn_engine(config, &control, inboxes, sockets, krpc, &shutdown)?;
    let started = Instant::now();
    // Serving: the listeners accept (connections wait in their backlog until a core takes
    // them) and every target is checked.
    live.notify("READY=1");
    live.update_status(&service);
    let stopped = serve_until_signal(&service, &signals, &engine, &mut live);
    // A torrent removed after it stopped (its entry taken out of the watch folder, which the
    // file check may notice first, or removed over the API) is no failure.
    let stopped = stopped.iter().filter(|h| service.get(h).is_some()).count();
    live.notify("STOPPING=1");
    shutdown.trigger();
    engine
        .join()
        .map_err(|_| anyhow::anyhow!("engine thread panicked"))?
        .context("engine failed")?;
    if let Some(w) = live.watcher.take() {
        w.stop();
    }
    log_totals(&service, started);
    stop_servers(admin, web_seed);
    service.shutdown();
    Ok(if refused > 0 || stopped > 0 {
        ExitCode::from(super::EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

/// The settings to run with: the command line's, or with `--config` its file's under the
/// flags given (and what a SIGHUP needs to read them again). Refuses a run with nothing to
/// seed.
fn settings(cli: SeedArgs, given: Vec<String>) -> anyhow::Result<(SeedArgs, Option<Reload>)> {
    let reload = cli.config.clone().map(|path| Reload {
        path,
        cli: cli.clone(),
        given,
    });
    let args = match &reload {
        Some(r) => {
            let args = r.settings()?;
            tracing::info!(
                "config {}: watch {}, unchoke-slots {}, max-upload-rate {}",
                r.path.display(),
                watch_text(&args),
                args.unchoke_slots,
                rate_text(args.max_upload_rate)
            );
            args
        }
        None => cli,
    };
    if args.targets.is_empty() && args.watch.is_none() {
        anyhow::bail!(
            "nothing to seed: give a TARGET or --watch DIR (or `watch` in --config's file)"
        );
    }
    Ok((args, reload))
}

/// Lifts the open-descriptor limit to its hard maximum (each peer is a socket).
fn raise_descriptor_limit() {
    match engine::raise_nofile_limit() {
        Ok(n) => tracing::debug!("descriptor limit {n}"),
        Err(e) => tracing::warn!("cannot raise the descriptor limit: {e}"),
    }
}

/// Where systemd hears of our state (none when not started by systemd); told of the targets
/// being checked.
fn start_notifier(args: &SeedArgs) -> Option<Notifier> {
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!("not notifying systemd: {e}");
        None
    });
    if let (Some(n), false) = (&notifier, args.targets.is_empty()) {
        let _ = n.notify(&format!("STATUS=checking {} targets", args.targets.len()));
    }
    notifier
}

/// The engine's sockets: one TCP listener per core, and with uTP one UDP socket per core on
/// the same port.
struct Sockets {
    listeners: Vec<std::net::TcpListener>,
    /// Where the listeners are bound (the port chosen when `--listen` gave 0).
    listen: SocketAddr,
    utp: Vec<std::net::UdpSocket>,
}

fn bind_sockets(args: &SeedArgs, threads: usize) -> anyhow::Result<Sockets> {
    let listeners = engine::bind_reuseport(args.listen, threads)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let listen = listeners[0].local_addr()?;
    // uTP on the same port's UDP, one socket per core (Transmission and qBittorrent try uTP
    // first); private to this process like the TCP listeners.
    let utp = if !args.no_utp {
        engine::listen::bind_reuseport_udp(listen, threads, 4 << 20).with_context(|| {
            format!("cannot listen for uTP on udp {listen} (--no-utp: TCP only)")
        })?
    } else {
        Vec::new()
    };
    Ok(Sockets {
        listeners,
        listen,
        utp,
    })
}

/// The service that holds the torrents. Its web seeds: `--web-seed-url`'s, else our own web
/// seed's URL when `--web-seed` serves one.
fn new_service(
    args: &SeedArgs,
    control: &Arc<EngineControl>,
    (threads, peer_id, listen): (usize, PeerId, SocketAddr),
    state: Option<Arc<StateDir>>,
    tracker: Option<EmbeddedTracker>,
    web_seed_url: Option<&str>,
) -> Arc<Service> {
    let web_seeds = match (web_seed_url, args.web_seed_url.is_empty()) {
        (Some(url), true) => vec![url.to_string()],
        _ => args.web_seed_url.clone(),
    };
    Arc::new(Service::new(
        control.clone(),
        ServiceConfig {
            data: args.data.clone(),
            threads,
            skip_check: args.skip_check,
            huge_pages: args.huge_pages,
            state,
            super_seed: args.super_seed,
            web_seeds,
        },
        (!args.no_tracker).then(|| Announcers::new(peer_id, listen.port())),
        tracker,
    ))
}

/// The DHT node's port, and where uTP's sockets hand the DHT's datagrams (none without
/// uTP).
type DhtStarted = (Option<u16>, Option<engine::utp::DatagramHandoff>);

/// Starts the DHT on the listen port's UDP (handed its datagrams by uTP's sockets there)
/// unless `--no-dht`.
fn start_dht(
    args: &SeedArgs,
    service: &Arc<Service>,
    listen: SocketAddr,
    utp: Option<&std::net::UdpSocket>,
) -> anyhow::Result<DhtStarted> {
    let dht = args.dht.start(
        listen,
        args.state.as_ref().map(|d| d.join(DHT_NODES_FILE)),
        utp,
    )?;
    let Some((d, handoff)) = dht else {
        return Ok((None, None));
    };
    outln!("dht       udp {}", d.local_addr());
    let port = d.local_addr().port();
    service.attach_dht(d, listen.port());
    Ok((Some(port), handoff.map(KrpcHandoff::into_sink)))
}

/// Starts watching `--watch`'s folder, when given.
fn start_watcher(args: &SeedArgs, service: &Arc<Service>) -> anyhow::Result<Option<Watcher>> {
    let Some(dir) = &args.watch else {
        return Ok(None);
    };
    let config = WatchConfig {
        dir: dir.clone(),
        poll: args.watch_poll,
    };
    Ok(Some(Watcher::start(service.clone(), config)?))
}

/// Starts serving the web seed bound by [`bind_web_seed`]; prints its URL.
fn start_web_seed(
    bound: Option<(std::net::TcpListener, WebSeedConfig, String)>,
    service: &Arc<Service>,
) -> anyhow::Result<Option<WebSeedServer>> {
    let Some((listener, config, url)) = bound else {
        return Ok(None);
    };
    let server = WebSeedServer::start(listener, config, service.clone())
        .context("cannot start the web seed")?;
    outln!("webseed   {url}");
    Ok(Some(server))
}

/// Starts the thread-per-core engine on its own thread.
fn spawn_engine(
    config: EngineConfig,
    control: &Arc<EngineControl>,
    inboxes: Vec<engine::CoreInbox>,
    sockets: Sockets,
    krpc: Option<engine::utp::DatagramHandoff>,
    shutdown: &Shutdown,
) -> std::io::Result<std::thread::JoinHandle<std::io::Result<()>>> {
    let (control, shutdown) = (control.clone(), shutdown.clone());
    std::thread::Builder::new()
        .name("seedbox-engine".into())
        .spawn(move || {
            engine::worker::run_with_utp(
                config,
                &control,
                inboxes,
                sockets.listeners,
                engine::worker::UtpSockets {
                    sockets: sockets.utp,
                    others: krpc,
                },
                &shutdown,
            )
        })
}

/// Stops the admin server and the web seed (logging what the web seed served).
fn stop_servers(admin: Option<AdminServer>, web_seed: Option<WebSeedServer>) {
    if let Some(a) = admin {
        a.stop();
    }
    if let Some(w) = web_seed {
        let st = w.stats();
        tracing::info!(
            "web seed: {} requests served, {} refused, {} bytes sent",
            st.served.load(std::sync::atomic::Ordering::Relaxed),
            st.refused.load(std::sync::atomic::Ordering::Relaxed),
            st.bytes.load(std::sync::atomic::Ordering::Relaxed)
        );
        w.stop();
    }
}

/// Starts the embedded tracker when seed creates a torrent (a file or folder target, or the
/// watch folder's) or `--tracker-listen` asks for it (never with `--no-tracker`).
fn start_tracker_if_needed(
    args: &SeedArgs,
    threads: usize,
) -> anyhow::Result<Option<EmbeddedTracker>> {
    let creates = args.watch.is_some() || args.targets.iter().any(|t| !is_torrent_file(t));
    if args.no_tracker || !(creates || args.tracker_listen.is_some()) {
        return Ok(None);
    }
    let (handle, url) = start_embedded_tracker(
        args.tracker_listen.unwrap_or(DEFAULT_TRACKER_LISTEN),
        args.tracker_host.as_deref(),
        threads,
    )?;
    Ok(Some(EmbeddedTracker {
        handle,
        announce_url: url,
    }))
}

/// Prints the embedded tracker's URLs in the start banner (a tracker started later, by a
/// config re-read, is logged instead: the banner's reader may be gone by then).
fn print_tracker(tracker: &EmbeddedTracker) {
    let url = &tracker.announce_url;
    outln!("tracker   {url}");
    if let Some(a) = tracker.handle.http_addr() {
        let host = url
            .strip_prefix("http://")
            .and_then(|r| r.split('/').next())
            .map(str::to_owned)
            .unwrap_or_else(|| a.to_string());
        outln!("torrents  http://{host}/torrents/");
    }
}

/// Binds the web seed's port when `--web-seed` is given; returns the listener, its settings
/// and its URL (`http://HOST:PORT/`, HOST as for the tracker's announce URL).
fn bind_web_seed(
    args: &SeedArgs,
) -> anyhow::Result<Option<(std::net::TcpListener, WebSeedConfig, String)>> {
    let Some(addr) = args.web_seed else {
        return Ok(None);
    };
    let config = WebSeedConfig::new(addr, args.web_seed_rate);
    let listener = WebSeedServer::bind(&config)
        .with_context(|| format!("cannot listen for the web seed on {addr}"))?;
    let bound = listener.local_addr()?;
    let host = match &args.tracker_host {
        Some(h) => h.clone(),
        None => announce_host(bound.ip()).to_string(),
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(Some((
        listener,
        config,
        format!("http://{host}:{}/", bound.port()),
    )))
}

/// Starts the admin server when `--admin` is given; prints where it listens.
fn start_admin(args: &SeedArgs, service: &Arc<Service>) -> anyhow::Result<Option<AdminServer>> {
    let Some(addr) = args.admin else {
        return Ok(None);
    };
    let token = match &args.admin_token_file {
        Some(path) => Some(Token::from_file(path)?),
        None => None,
    };
    let backend = Arc::new(ServiceBackend(service.clone()));
    let server = AdminServer::start(AdminConfig::new(addr, token), backend)?;
    outln!("admin     http://{}/", server.local_addr());
    Ok(Some(server))
}

/// Loads, checks and serves every target, printing what it seeds (its magnet link with `own`,
/// the seed's address, as `x.pe=`, except for private torrents); returns how many were
/// refused (each with its reason on stderr).
fn add_targets(service: &Service, targets: &[PathBuf], own: Option<SocketAddr>) -> usize {
    let mut refused = 0;
    for target in targets {
        let loaded = match service.load_target(target) {
            Ok(l) => l,
            Err(e) => {
                refused += 1;
                eprintln!("seedbox: cannot seed {}: {e:#}", target.display());
                continue;
            }
        };
        if let Some(created) = &loaded.created {
            outln!("created   {}", created.display());
        }
        let (name, hash) = (loaded.torrent.name.clone(), loaded.torrent.info_hash);
        if service.get(&hash).is_some() {
            eprintln!("seedbox: {name} ({hash}) is given twice; seeding it once");
            continue;
        }
        let source = loaded.created.clone().or_else(|| Some(target.clone()));
        match service.check_and_serve(loaded, source) {
            Ok(t) => {
                outln!("seeding   {}", t.torrent.name);
                outln!("info-hash {}", t.torrent.info_hash);
                let own: Vec<SocketAddr> = match own {
                    Some(a) if !t.torrent.private => vec![a],
                    _ => Vec::new(),
                };
                outln!("magnet    {}", t.torrent.magnet_with_peers(&own));
            }
            Err(e) => {
                refused += 1;
                eprintln!("seedbox: refusing to seed {e:#}");
            }
        }
    }
    refused
}

/// The engine's settings from the flags; `dht_port`: our DHT node's, offered to peers.
fn engine_config(
    args: &SeedArgs,
    threads: usize,
    peer_id: PeerId,
    dht_port: Option<u16>,
) -> EngineConfig {
    EngineConfig {
        threads,
        dht_port,
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
        encryption: args.encryption,
        ..EngineConfig::default()
    }
}

/// The main thread while serving: waits for SIGINT/SIGTERM (or the engine's end), and once a
/// second does the service's upkeep (file checks, announce counters) and, every
/// `stats_every` seconds, logs a statistics line. SIGHUP re-checks stopped torrents and
/// re-reads the config file. Returns the torrents that stopped.
fn serve_until_signal(
    service: &Arc<Service>,
    signals: &Signals,
    engine: &std::thread::JoinHandle<std::io::Result<()>>,
    live: &mut Live,
) -> Vec<InfoHash> {
    let stats_every = live.args.stats_every;
    let stats = service.engine().stats().clone();
    let mut last = (stats.snapshot(), Instant::now());
    let every = Duration::from_secs(stats_every);
    let mut stopped = Vec::new();
    loop {
        let wait = if stats_every == 0 {
            FILE_CHECK_EVERY
        } else {
            every.saturating_sub(last.1.elapsed()).min(FILE_CHECK_EVERY)
        };
        match signals.wait(wait) {
            Some("SIGHUP") => {
                tracing::info!("SIGHUP: re-checking stopped torrents");
                service.recheck_stopped();
                live.hangup(service);
            }
            Some(sig) => {
                tracing::info!("signal {sig}: shutting down");
                return stopped;
            }
            None => {}
        }
        if engine.is_finished() {
            return stopped;
        }
        live.update_status(service);
        // Files truncated, replaced or rewritten under the mapping stop their torrent (the
        // cores also check when a send fails with EFAULT); the others keep serving.
        for t in service.tick() {
            stopped.push(t.info_hash());
            eprintln!(
                "seedbox: stopped seeding {} ({}): {}",
                t.torrent.name,
                t.torrent.info_hash,
                t.stop_reason().unwrap_or_else(|| "stopped".into())
            );
        }
        if stats_every > 0 && last.1.elapsed() >= every {
            let now = stats.snapshot();
            let secs = last.1.elapsed().as_secs_f64();
            tracing::info!("{}", now.summary(Some((&last.0, secs))));
            last = (now, Instant::now());
        }
    }
}

/// Logs what each torrent served and the totals.
fn log_totals(service: &Service, started: Instant) {
    for t in service.torrents() {
        tracing::info!("{}: {} bytes served", t.name, t.uploaded);
    }
    let total = service.engine().stats().snapshot();
    let zero = engine::StatsSnapshot::default();
    let secs = started.elapsed().as_secs_f64();
    tracing::info!("total: {}", total.summary(Some((&zero, secs))));
}

/// Where the embedded tracker listens unless `--tracker-listen` says otherwise.
const DEFAULT_TRACKER_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 6969);

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
