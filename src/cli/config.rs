//! `seed --config FILE`: the seed's flags in a TOML file, each key named as its flag
//! (`unchoke-slots = "auto"`, `watch = "/srv/drop"`, `max-upload-rate = "400Mbit"`). A value
//! is written as on the command line (a string, or a number or boolean where that reads
//! naturally) and parsed by the flag's own parser. A flag given on the command line wins over
//! the file; a key that is no flag is refused with its name.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use serde::Deserialize;

use super::seed::{parse_poll, parse_socket_bytes, SeedArgs};
use super::units::{parse_duration, parse_rate};
use crate::service::admin::parse_admin_addr;

/// A value written as a string or a number; parsed as the flag's text.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    /// `"400Mbit"`, `"auto"`, `"0.0.0.0:6881"`.
    Text(String),
    /// `4`, `10000`.
    Int(i64),
    /// `0.5`.
    Float(f64),
}

impl Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Text(s) => f.write_str(s),
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(x) => write!(f, "{x}"),
        }
    }
}

/// The keys of a `seed` config file: the flags of `seedbox seed` (not the TARGETs, and not
/// `config` itself), all optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SeedFile {
    watch: Option<PathBuf>,
    watch_poll: Option<Scalar>,
    data: Option<PathBuf>,
    listen: Option<Scalar>,
    threads: Option<Scalar>,
    unchoke_slots: Option<Scalar>,
    max_peers: Option<Scalar>,
    no_tracker: Option<bool>,
    tracker_listen: Option<Scalar>,
    tracker_host: Option<String>,
    super_seed: Option<bool>,
    skip_check: Option<bool>,
    max_upload_rate: Option<Scalar>,
    handshake_timeout: Option<Scalar>,
    idle_timeout: Option<Scalar>,
    send_timeout: Option<Scalar>,
    request_queue: Option<Scalar>,
    send_zc_threshold: Option<Scalar>,
    send_buffer: Option<Scalar>,
    notsent_lowat: Option<Scalar>,
    pin_cores: Option<bool>,
    no_utp: Option<bool>,
    huge_pages: Option<bool>,
    encryption: Option<Scalar>,
    admin: Option<Scalar>,
    admin_token_file: Option<PathBuf>,
    state: Option<PathBuf>,
    web_seed: Option<Scalar>,
    web_seed_url: Option<Urls>,
    web_seed_rate: Option<Scalar>,
    stats_every: Option<Scalar>,
    no_dht: Option<bool>,
    dht_port: Option<Scalar>,
    dht_bootstrap: Option<Urls>,
}

/// `web-seed-url` and `dht-bootstrap`: one value or a list of them (the flag is repeated
/// for several).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Urls {
    /// `"http://mirror/pub/"`.
    One(String),
    /// `["http://a/", "http://b/"]`.
    Many(Vec<String>),
}

/// Reads and parses a config file. An unknown key is an error naming it.
pub fn load(path: &Path) -> anyhow::Result<SeedFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("config {}: cannot read it", path.display()))?;
    parse(&text).with_context(|| format!("config {}", path.display()))
}

/// Parses a config file's text.
pub fn parse(text: &str) -> anyhow::Result<SeedFile> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(n) => anyhow::anyhow!("line {n}: {}", e.message()),
            None => anyhow::anyhow!("{}", e.message()),
        }
    })
}

/// Sets one flag from the file unless the command line gave it.
struct Merge<'a> {
    given: &'a dyn Fn(&str) -> bool,
}

impl Merge<'_> {
    /// `id`: the flag's clap id (the field's name); the key is its kebab-case form.
    fn set<T>(
        &self,
        id: &str,
        value: &Option<Scalar>,
        parse: impl Fn(&str) -> Result<T, String>,
        into: &mut T,
    ) -> anyhow::Result<()> {
        if let Some(v) = value {
            let parsed = parse(&v.to_string())
                .map_err(|e| anyhow::anyhow!("`{}`: {e}", id.replace('_', "-")))?;
            if !(self.given)(id) {
                *into = parsed;
            }
        }
        Ok(())
    }

    fn set_opt<T>(
        &self,
        id: &str,
        value: &Option<Scalar>,
        parse: impl Fn(&str) -> Result<T, String>,
        into: &mut Option<T>,
    ) -> anyhow::Result<()> {
        let mut slot = None;
        self.set(id, value, |s| parse(s).map(Some), &mut slot)?;
        if let Some(v) = slot {
            *into = Some(v);
        }
        Ok(())
    }

    fn set_plain<T: Clone>(&self, id: &str, value: &Option<T>, into: &mut T) {
        if let Some(v) = value {
            if !(self.given)(id) {
                *into = v.clone();
            }
        }
    }

    /// [`Merge::set_plain`] for a flag that is optional on the command line.
    fn set_some<T: Clone>(&self, id: &str, value: &Option<T>, into: &mut Option<T>) {
        if let Some(v) = value {
            if !(self.given)(id) {
                *into = Some(v.clone());
            }
        }
    }

    /// A repeatable flag, from one string or a list of them.
    fn set_list(&self, id: &str, value: &Option<Urls>, into: &mut Vec<String>) {
        if let Some(v) = value {
            if !(self.given)(id) {
                *into = match v {
                    Urls::One(one) => vec![one.clone()],
                    Urls::Many(many) => many.clone(),
                };
            }
        }
    }
}

fn from_str<T: FromStr>(s: &str) -> Result<T, String>
where
    T::Err: Display,
{
    s.parse::<T>().map_err(|e| format!("`{s}`: {e}"))
}

impl SeedFile {
    /// Sets every flag the file has into `args`, except those `given(id)` says the command
    /// line gave (they win). A value that does not parse is an error naming its key (the
    /// first one, in the order below).
    pub fn apply(&self, args: &mut SeedArgs, given: &dyn Fn(&str) -> bool) -> anyhow::Result<()> {
        let m = Merge { given };
        self.apply_serving(&m, args)?;
        self.apply_connections(&m, args)?;
        self.apply_services(&m, args)
    }

    /// What is served and how: the watch folder, the data, the listen address, threads,
    /// slots, peers, the tracker, super-seeding and the check at start.
    fn apply_serving(&self, m: &Merge, args: &mut SeedArgs) -> anyhow::Result<()> {
        m.set_some("watch", &self.watch, &mut args.watch);
        m.set_opt(
            "watch_poll",
            &self.watch_poll,
            parse_poll,
            &mut args.watch_poll,
        )?;
        m.set_plain("data", &self.data, &mut args.data);
        m.set(
            "listen",
            &self.listen,
            from_str::<SocketAddr>,
            &mut args.listen,
        )?;
        m.set_opt("threads", &self.threads, from_str, &mut args.threads)?;
        m.set(
            "unchoke_slots",
            &self.unchoke_slots,
            from_str,
            &mut args.unchoke_slots,
        )?;
        m.set("max_peers", &self.max_peers, from_str, &mut args.max_peers)?;
        m.set_plain("no_tracker", &self.no_tracker, &mut args.no_tracker);
        m.set_opt(
            "tracker_listen",
            &self.tracker_listen,
            from_str,
            &mut args.tracker_listen,
        )?;
        m.set_some("tracker_host", &self.tracker_host, &mut args.tracker_host);
        m.set_plain("super_seed", &self.super_seed, &mut args.super_seed);
        m.set_plain("skip_check", &self.skip_check, &mut args.skip_check);
        Ok(())
    }

    /// The peer connections: upload limit, timeouts, queues, socket buffers, cores, uTP,
    /// huge pages and encryption.
    fn apply_connections(&self, m: &Merge, args: &mut SeedArgs) -> anyhow::Result<()> {
        m.set_opt(
            "max_upload_rate",
            &self.max_upload_rate,
            parse_rate,
            &mut args.max_upload_rate,
        )?;
        m.set(
            "handshake_timeout",
            &self.handshake_timeout,
            from_str,
            &mut args.handshake_timeout,
        )?;
        m.set(
            "idle_timeout",
            &self.idle_timeout,
            from_str,
            &mut args.idle_timeout,
        )?;
        m.set(
            "send_timeout",
            &self.send_timeout,
            parse_duration,
            &mut args.send_timeout,
        )?;
        m.set(
            "request_queue",
            &self.request_queue,
            from_str,
            &mut args.request_queue,
        )?;
        m.set_opt(
            "send_zc_threshold",
            &self.send_zc_threshold,
            from_str,
            &mut args.send_zc_threshold,
        )?;
        m.set_opt(
            "send_buffer",
            &self.send_buffer,
            parse_socket_bytes,
            &mut args.send_buffer,
        )?;
        m.set_opt(
            "notsent_lowat",
            &self.notsent_lowat,
            parse_socket_bytes,
            &mut args.notsent_lowat,
        )?;
        m.set_plain("pin_cores", &self.pin_cores, &mut args.pin_cores);
        m.set_plain("no_utp", &self.no_utp, &mut args.no_utp);
        m.set_plain("huge_pages", &self.huge_pages, &mut args.huge_pages);
        m.set(
            "encryption",
            &self.encryption,
            from_str,
            &mut args.encryption,
        )
    }

    /// The services beside the peers: the admin API, the state folder, the web seed, the
    /// stats line and the DHT.
    fn apply_services(&self, m: &Merge, args: &mut SeedArgs) -> anyhow::Result<()> {
        m.set_opt("admin", &self.admin, parse_admin_addr, &mut args.admin)?;
        m.set_some(
            "admin_token_file",
            &self.admin_token_file,
            &mut args.admin_token_file,
        );
        m.set_some("state", &self.state, &mut args.state);
        m.set_opt(
            "web_seed",
            &self.web_seed,
            parse_admin_addr,
            &mut args.web_seed,
        )?;
        m.set_list("web_seed_url", &self.web_seed_url, &mut args.web_seed_url);
        m.set_opt(
            "web_seed_rate",
            &self.web_seed_rate,
            parse_rate,
            &mut args.web_seed_rate,
        )?;
        m.set(
            "stats_every",
            &self.stats_every,
            from_str,
            &mut args.stats_every,
        )?;
        m.set_plain("no_dht", &self.no_dht, &mut args.dht.no_dht);
        m.set_opt("dht_port", &self.dht_port, from_str, &mut args.dht.dht_port)?;
        m.set_list(
            "dht_bootstrap",
            &self.dht_bootstrap,
            &mut args.dht.dht_bootstrap,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::Slots;
    use clap::{Args, CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        seed: SeedArgs,
    }

    fn args(cli: &[&str]) -> (SeedArgs, Vec<String>) {
        let matches = Cli::command().get_matches_from(cli);
        let given = super::super::seed::given_ids(&matches);
        (SeedArgs::from_arg_matches(&matches).unwrap(), given)
    }

    /// The README's example, which must show every key.
    fn readme_example() -> String {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("```toml\n# /etc/seedbox/seedbox.toml")
            .expect("the README shows a seed config file");
        let body = &readme[start + "```toml\n".len()..];
        body[..body.find("```").unwrap()].to_owned()
    }

    #[test]
    fn the_readme_example_sets_every_flag_and_flags_win() {
        let file = parse(&readme_example()).unwrap();
        let (mut a, given) = args(&["seed", "--unchoke-slots", "3", "--watch", "/cli"]);
        file.apply(&mut a, &|id| given.iter().any(|g| g == id))
            .unwrap();
        assert_eq!(a.unchoke_slots, Slots::Limited(3), "the flag wins");
        assert_eq!(a.watch.as_deref(), Some(Path::new("/cli")));
        assert_eq!(a.max_upload_rate, Some(50_000_000), "400Mbit from the file");
        assert_eq!(a.state.as_deref(), Some(Path::new("/var/lib/seedbox")));
        // Every seed flag (but the TARGETs and --config) is a key of the example.
        let example = readme_example();
        let cmd = SeedArgs::augment_args(clap::Command::new("seed"));
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "config" {
                continue;
            }
            assert!(
                example
                    .lines()
                    .any(|l| l.trim_start_matches("# ").starts_with(&format!("{long} ="))),
                "`{long}` missing from the README's example"
            );
        }
    }

    #[test]
    fn every_flag_is_a_key_and_applies() {
        let mut text = String::new();
        let cmd = SeedArgs::augment_args(clap::Command::new("seed"));
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let value = match long {
                "config" => continue,
                "watch" | "data" | "admin-token-file" | "state" => "\"/x\"",
                "watch-poll" => "0.5",
                "listen" | "tracker-listen" => "\"127.0.0.1:7000\"",
                "unchoke-slots" => "\"unlimited\"",
                "max-upload-rate" => "\"8Mbit\"",
                "send-timeout" => "\"5s\"",
                "send-buffer" | "notsent-lowat" => "\"64KiB\"",
                "encryption" => "\"require\"",
                "admin" | "web-seed" => "\"127.0.0.1:9000\"",
                "web-seed-url" => "[\"http://a/\", \"http://b/\"]",
                "web-seed-rate" => "\"1MB/s\"",
                "tracker-host" => "\"example.org\"",
                "dht-bootstrap" => "[\"127.0.0.1:6881\", \"example.org:6881\"]",
                _ if !arg.get_action().takes_values() => "true",
                _ => "7",
            };
            text.push_str(&format!("{long} = {value}\n"));
        }
        let file = parse(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
        let (mut a, _) = args(&["seed", "x.torrent"]);
        file.apply(&mut a, &|_| false).unwrap();
        assert_eq!(a.threads, Some(7));
        assert_eq!(a.unchoke_slots, Slots::Unlimited);
        assert_eq!(a.max_upload_rate, Some(1_000_000));
        assert!(
            a.no_tracker && a.super_seed && a.skip_check && a.pin_cores && a.no_utp && a.huge_pages
        );
        assert_eq!(a.watch_poll, Some(std::time::Duration::from_millis(500)));
        assert_eq!(a.send_buffer, Some(64 << 10));
        assert_eq!(a.tracker_host.as_deref(), Some("example.org"));
        assert_eq!(a.web_seed, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(a.web_seed_url, ["http://a/", "http://b/"]);
        assert_eq!(a.web_seed_rate, Some(1_000_000));
        assert!(a.dht.no_dht);
        assert_eq!(a.dht.dht_port, Some(7));
        assert_eq!(a.dht.dht_bootstrap, ["127.0.0.1:6881", "example.org:6881"]);
    }

    #[test]
    fn one_web_seed_url_is_a_string_and_the_flag_wins() {
        let file = parse("web-seed-url = \"http://m/\"\nweb-seed = 8080\n").unwrap();
        let (mut a, _) = args(&["seed", "x"]);
        file.apply(&mut a, &|_| false).unwrap();
        assert_eq!(a.web_seed_url, ["http://m/"]);
        assert_eq!(a.web_seed, Some("127.0.0.1:8080".parse().unwrap()));
        let (mut a, given) = args(&["seed", "--web-seed-url", "http://cli/", "x"]);
        file.apply(&mut a, &|id| given.iter().any(|g| g == id))
            .unwrap();
        assert_eq!(a.web_seed_url, ["http://cli/"]);
        assert!(parse("web-seed-rate = \"fast\"\n")
            .unwrap()
            .apply(&mut a, &|_| false)
            .is_err());
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name() {
        let e = parse("watch = \"/srv\"\nunchoke-slot = 4\n").unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("unknown field `unchoke-slot`"), "{msg}");
        let e = parse("config = \"/etc/x\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("`config`"));
    }

    #[test]
    fn a_bad_value_names_its_key_even_when_the_flag_wins() {
        let file = parse("max-upload-rate = \"fast\"\n").unwrap();
        let (mut a, given) = args(&["seed", "--max-upload-rate", "1Mbit", "x"]);
        let e = file
            .apply(&mut a, &|id| given.iter().any(|g| g == id))
            .unwrap_err();
        assert!(format!("{e:#}").contains("`max-upload-rate`"), "{e:#}");
        let e = parse("threads = \"two\"\n")
            .unwrap()
            .apply(&mut a, &|_| false)
            .unwrap_err();
        assert!(format!("{e:#}").contains("`threads`"), "{e:#}");
        assert!(parse("no-tracker = \"yes\"\n").is_err());
    }
}
