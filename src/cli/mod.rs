//! The `seedbox` command line: argument parsing (clap derive) and dispatch. Each command lives
//! in its own module; this is the binary's edge, so errors here are `anyhow`.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// `println!` for the commands' output, quiet when stdout is a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the commands' output, quiet when stdout is a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

/// Writes the commands' output. When the reader has gone (`seedbox show T | head -1`), it
/// ends the process with status 141, as SIGPIPE would in a shell; `println!` would panic.
/// SIGPIPE itself stays ignored: a peer closing its socket must not kill a seed.
fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("seedbox: writing to stdout: {e}");
        std::process::exit(1);
    }
}

mod bench;
mod config;
mod create;
mod dht;
mod get;
mod plan;
mod progress;
mod seed;
mod show;
mod signals;
mod sim;
mod tracker;
pub mod units;
mod verify;

/// A high-performance BitTorrent seed box for Linux.
#[derive(Debug, Parser)]
#[command(name = "seedbox", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing directive).
    /// Also read from `SEEDBOX_LOG`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
// Parsed once at start: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a .torrent from a file or folder, hashing on all cores.
    Create(create::CreateArgs),
    /// Check data on disk against a .torrent: missing files, wrong sizes, bad pieces.
    Verify(verify::VerifyArgs),
    /// Print what a .torrent holds: name, info-hash, pieces, files, trackers, magnet.
    Show(show::ShowArgs),
    /// Seed torrents (or files and folders) from a thread-per-core io_uring server.
    Seed(Box<seed::SeedArgs>),
    /// Download a torrent, then linger as a seed.
    Get(get::GetArgs),
    /// Run an HTTP and UDP BitTorrent tracker.
    Tracker(tracker::TrackerArgs),
    /// Load-test a seed with synthetic leechers.
    Bench(bench::BenchArgs),
    /// Simulate a swarm (or a client-server origin) on a virtual clock.
    Sim(sim::SimCmd),
    /// Size the origin uplink and seedbox cores for a release by simulation.
    Plan(plan::PlanArgs),
}

impl Command {
    /// Whether the command was asked for JSON output (`--json`), so that a failure is
    /// reported as a JSON object too.
    fn wants_json(&self) -> bool {
        match self {
            Command::Verify(a) => a.json,
            Command::Show(a) => a.json,
            Command::Get(a) => a.json,
            Command::Bench(a) => match &a.what {
                bench::BenchCommand::Load(l) => l.json,
                bench::BenchCommand::Sha1(_) => false,
            },
            Command::Sim(a) => a.json,
            Command::Create(_) | Command::Seed(_) | Command::Tracker(_) | Command::Plan(_) => false,
        }
    }
}

/// The JSON object a `--json` command prints on stdout when it fails.
fn error_json(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message })
}

/// Exit code for a failed check (a bad piece, a missing file) or a runtime error.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad usage (clap uses it too).
pub const EXIT_USAGE: u8 = 2;

/// Parses the command line, runs the command, and maps errors to one line on stderr.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.log.as_deref());
    let json = cli.command.wants_json();
    let result = match cli.command {
        Command::Create(a) => create::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Show(a) => show::run(a),
        Command::Seed(a) => {
            let given = matches
                .subcommand_matches("seed")
                .map(seed::given_ids)
                .unwrap_or_default();
            seed::run(*a, given)
        }
        Command::Get(a) => get::run(a),
        Command::Tracker(a) => tracker::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Sim(a) => sim::run(a),
        Command::Plan(a) => plan::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let message = one_line(&e);
            if json {
                outln!("{}", error_json(&message));
            }
            eprintln!("seedbox: error: {message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Joins an error and its causes into one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("SEEDBOX_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
