//! `/metrics`: a [`MetricsSnapshot`] in the Prometheus text exposition format, version 0.0.4
//! (`# HELP` and `# TYPE` per family, counters named `_total`, the latency histogram with
//! cumulative `le` buckets, `_sum` and `_count`).

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::backend::{CoreMetrics, MetricsSnapshot, TorrentState, TorrentStatus};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the request-to-block latency buckets, microseconds (`+Inf` follows).
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// A per-torrent family: name, type, help, and the value it reads.
type PerTorrent = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TorrentStatus) -> u64,
);

/// A per-core family: name, type, help, and the value it reads.
type PerCore = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CoreMetrics) -> u64,
);

/// Renders the snapshot.
pub fn render(m: &MetricsSnapshot) -> String {
    let mut out = String::with_capacity(4096 + 1024 * m.torrents.len());
    let w = &mut out;
    engine_totals(w, m);
    torrents_by_state(w, m);
    per_torrent(w, m);
    per_core(w, m);
    latency_histogram(w, m.latency_us.as_ref());
    out
}

/// The engine-wide families: one sample each.
fn engine_totals(w: &mut String, m: &MetricsSnapshot) {
    let t = &m.totals;
    let unchoked: u64 = m.torrents.iter().map(|t| t.unchoked_peers).sum();
    let totals = [
        (
            "seedbox_uploaded_bytes_total",
            "counter",
            "Payload bytes uploaded to peers.",
            t.uploaded,
        ),
        (
            "seedbox_sent_bytes_total",
            "counter",
            "Bytes written to peers, all messages.",
            t.bytes_sent,
        ),
        (
            "seedbox_blocks_sent_total",
            "counter",
            "Blocks sent to peers.",
            t.blocks_sent,
        ),
        (
            "seedbox_peers",
            "gauge",
            "Peer connections open.",
            t.connections,
        ),
        (
            "seedbox_unchoked_peers",
            "gauge",
            "Peers unchoked, over all torrents.",
            unchoked,
        ),
        (
            "seedbox_connections_accepted_total",
            "counter",
            "Peer connections accepted.",
            t.accepted,
        ),
        (
            "seedbox_peers_dropped_total",
            "counter",
            "Peers dropped for misbehaviour.",
            t.dropped,
        ),
        (
            "seedbox_requests_rejected_total",
            "counter",
            "Block requests rejected.",
            t.rejected,
        ),
        (
            "seedbox_announces_total",
            "counter",
            "Tracker announces sent.",
            t.announces,
        ),
        (
            "seedbox_announce_failures_total",
            "counter",
            "Tracker announces that failed.",
            t.announce_failures,
        ),
    ];
    for (name, kind, help, value) in totals {
        family(w, name, kind, help);
        sample(w, name, &[], value);
    }
}

/// How many torrents are in each state (every state, zero included).
fn torrents_by_state(w: &mut String, m: &MetricsSnapshot) {
    family(
        w,
        "seedbox_torrents",
        "gauge",
        "Torrents in the service, by state.",
    );
    for state in TorrentState::NAMES {
        let n = m
            .torrents
            .iter()
            .filter(|t| t.state.name() == state)
            .count();
        sample(w, "seedbox_torrents", &[("state", state)], n as u64);
    }
}

/// The per-torrent families, labelled with each torrent's info hash and name, then the
/// state each torrent is in.
fn per_torrent(w: &mut String, m: &MetricsSnapshot) {
    let per_torrent: [PerTorrent; 7] = [
        (
            "seedbox_torrent_uploaded_bytes_total",
            "counter",
            "Payload bytes uploaded, per torrent.",
            |t| t.uploaded,
        ),
        (
            "seedbox_torrent_peers",
            "gauge",
            "Peers connected, per torrent.",
            |t| t.peers,
        ),
        (
            "seedbox_torrent_unchoked_peers",
            "gauge",
            "Peers unchoked, per torrent.",
            |t| t.unchoked_peers,
        ),
        (
            "seedbox_torrent_announces_total",
            "counter",
            "Tracker announces sent, per torrent.",
            |t| t.announces,
        ),
        (
            "seedbox_torrent_announce_failures_total",
            "counter",
            "Tracker announces that failed, per torrent.",
            |t| t.announce_failures,
        ),
        (
            "seedbox_torrent_unserved_pieces",
            "gauge",
            "Pieces not served because they failed their last re-check, per torrent.",
            |t| u64::from(t.state.unserved_pieces()),
        ),
        (
            "seedbox_torrent_size_bytes",
            "gauge",
            "Size of the torrent's files, per torrent.",
            |t| t.size,
        ),
    ];
    for (name, kind, help, value) in per_torrent {
        family(w, name, kind, help);
        for tor in &m.torrents {
            let hash = tor.info_hash.to_hex();
            let labels = [("info_hash", hash.as_str()), ("name", tor.name.as_str())];
            sample(w, name, &labels, value(tor));
        }
    }
    family(
        w,
        "seedbox_torrent_state",
        "gauge",
        "1 for the state each torrent is in.",
    );
    for tor in &m.torrents {
        let hash = tor.info_hash.to_hex();
        let labels = [
            ("info_hash", hash.as_str()),
            ("name", tor.name.as_str()),
            ("state", tor.state.name()),
        ];
        sample(w, "seedbox_torrent_state", &labels, 1);
    }
}

/// The per-core families, labelled with the core's index.
fn per_core(w: &mut String, m: &MetricsSnapshot) {
    let per_core: [PerCore; 3] = [
        (
            "seedbox_core_sent_bytes_total",
            "counter",
            "Bytes written to peers, per core.",
            |c| c.bytes_sent,
        ),
        (
            "seedbox_core_peers",
            "gauge",
            "Peer connections open, per core.",
            |c| c.connections,
        ),
        (
            "seedbox_core_connections_accepted_total",
            "counter",
            "Peer connections accepted, per core.",
            |c| c.accepted,
        ),
    ];
    for (name, kind, help, value) in per_core {
        family(w, name, kind, help);
        for (i, c) in m.cores.iter().enumerate() {
            sample(w, name, &[("core", &i.to_string())], value(c));
        }
    }
}

/// The request-to-block latency as a Prometheus histogram in seconds.
fn latency_histogram(w: &mut String, h: Option<&Histogram<u64>>) {
    const NAME: &str = "seedbox_request_latency_seconds";
    family(
        w,
        NAME,
        "histogram",
        "Time from a block request's arrival to the block written to the socket.",
    );
    let (count, sum_us) = match h {
        Some(h) => (h.len(), h.mean() * h.len() as f64),
        None => (0, 0.0),
    };
    for le_us in LATENCY_BUCKETS_US {
        let n = h.map_or(0, |h| h.count_between(0, le_us));
        let le = format_float(le_us as f64 / 1e6);
        let _ = writeln!(w, "{NAME}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(w, "{NAME}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(w, "{NAME}_sum {}", format_float(sum_us / 1e6));
    let _ = writeln!(w, "{NAME}_count {count}");
}

fn family(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(w, "# TYPE {name} {kind}");
}

fn sample(w: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    w.push_str(name);
    if !labels.is_empty() {
        w.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                w.push(',');
            }
            let _ = write!(w, "{k}=\"{}\"", escape_label(v));
        }
        w.push('}');
    }
    let _ = writeln!(w, " {value}");
}

/// A float as Prometheus reads it (`0.0001`, `1`, `2.5`), never `NaN` from a bad sum.
fn format_float(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "0".to_owned()
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `# HELP` text: backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::InfoHash;
    use crate::service::admin::backend::{CoreMetrics, EngineTotals};

    fn snapshot() -> MetricsSnapshot {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        h.record_n(80, 3).unwrap();
        h.record(2_000).unwrap();
        h.record(20_000_000).unwrap();
        MetricsSnapshot {
            totals: EngineTotals {
                uploaded: 1000,
                bytes_sent: 1100,
                connections: 3,
                announces: 4,
                announce_failures: 1,
                ..Default::default()
            },
            torrents: vec![TorrentStatus {
                info_hash: InfoHash([0xab; 20]),
                name: "a \"quoted\" \\ name\nnext".into(),
                size: 5,
                state: TorrentState::Seeding,
                uploaded: 1000,
                upload_rate: 1.5,
                peers: 3,
                unchoked_peers: 2,
                announces: 4,
                announce_failures: 1,
            }],
            cores: vec![
                CoreMetrics {
                    bytes_sent: 600,
                    connections: 2,
                    accepted: 7,
                },
                CoreMetrics {
                    bytes_sent: 500,
                    connections: 1,
                    accepted: 2,
                },
            ],
            latency_us: Some(h),
        }
    }

    #[test]
    fn every_sample_has_a_family_declared_before_it() {
        let text = render(&snapshot());
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(declared.insert(name.to_owned()), "{name} declared twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{line}");
            }
        }
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            if line.ends_with(" counter") {
                assert!(line.contains("_total "), "{line}");
            }
        }
    }

    #[test]
    fn totals_torrents_and_cores_are_written() {
        let text = render(&snapshot());
        assert!(text.contains("\nseedbox_uploaded_bytes_total 1000\n"));
        assert!(text.contains("\nseedbox_peers 3\n"));
        assert!(text.contains("\nseedbox_unchoked_peers 2\n"));
        assert!(text.contains("\nseedbox_torrents{state=\"seeding\"} 1\n"));
        assert!(text.contains("\nseedbox_torrents{state=\"paused\"} 0\n"));
        assert!(text.contains("\nseedbox_torrents{state=\"partial\"} 0\n"));
        let hash = "ab".repeat(20);
        assert!(text.contains(&format!(
            "seedbox_torrent_uploaded_bytes_total{{info_hash=\"{hash}\",name=\"a \\\"quoted\\\" \\\\ name\\nnext\"}} 1000\n"
        )));
        assert!(text.contains(&format!(
            "seedbox_torrent_unserved_pieces{{info_hash=\"{hash}\",name=\"a \\\"quoted\\\" \\\\ name\\nnext\"}} 0\n"
        )));
        assert!(text.contains("seedbox_core_sent_bytes_total{core=\"1\"} 500\n"));
        assert!(text.contains("seedbox_core_peers{core=\"0\"} 2\n"));
        assert!(text.contains("seedbox_core_connections_accepted_total{core=\"0\"} 7\n"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn the_latency_histogram_is_cumulative() {
        let text = render(&snapshot());
        let buckets: Vec<(String, u64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("seedbox_request_latency_seconds_bucket{le=\""))
            .map(|l| {
                let (le, rest) = l.split_once("\"} ").unwrap();
                (le.to_owned(), rest.parse().unwrap())
            })
            .collect();
        assert_eq!(buckets.len(), LATENCY_BUCKETS_US.len() + 1);
        assert_eq!(buckets[0], ("0.00005".to_owned(), 0));
        assert_eq!(buckets[1], ("0.0001".to_owned(), 3));
        assert_eq!(buckets[5], ("0.0025".to_owned(), 4));
        assert_eq!(buckets[13], ("1".to_owned(), 4));
        assert_eq!(buckets[15].1, 4, "20 s is above the last bound");
        assert_eq!(buckets[16], ("+Inf".to_owned(), 5));
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(text.contains("\nseedbox_request_latency_seconds_count 5\n"));
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("seedbox_request_latency_seconds_sum "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 20.00224).abs() < 0.02, "{sum}");
    }

    #[test]
    fn an_empty_snapshot_still_declares_every_family() {
        let text = render(&MetricsSnapshot::default());
        assert!(text.contains("seedbox_request_latency_seconds_bucket{le=\"+Inf\"} 0\n"));
        assert!(text.contains("seedbox_request_latency_seconds_sum 0\n"));
        assert!(text.contains("# TYPE seedbox_torrent_peers gauge\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_label("plain ü"), "plain ü");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }
}
