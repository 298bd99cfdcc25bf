//! The routing table saved across restarts: the addresses of the nodes it held, one
//! `IP:PORT` a line, read back as extra bootstrap nodes at the next start.

use std::net::SocketAddrV4;
use std::path::Path;

/// Nodes saved at most.
pub const MAX_SAVED: usize = 400;

/// The file's text for `nodes` (at most [`MAX_SAVED`]).
pub fn format(nodes: &[SocketAddrV4]) -> String {
    nodes
        .iter()
        .take(MAX_SAVED)
        .map(|n| format!("{n}\n"))
        .collect()
}

/// The nodes of a file's text; lines that are no IPv4 `IP:PORT` (or port 0) are skipped.
pub fn parse(text: &str) -> Vec<SocketAddrV4> {
    text.lines()
        .filter_map(|l| l.trim().parse::<SocketAddrV4>().ok())
        .filter(|a| a.port() != 0 && !a.ip().is_unspecified())
        .take(MAX_SAVED)
        .collect()
}

/// Reads the nodes saved in `path` (none when it is missing or unreadable).
pub fn load(path: &Path) -> Vec<SocketAddrV4> {
    std::fs::read_to_string(path)
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// Saves `nodes` to `path` atomically (nothing when there is no node: an empty table would
/// replace a useful one after a start without network).
pub fn save(path: &Path, nodes: &[SocketAddrV4]) -> std::io::Result<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    crate::service::load::write_atomically(path, format(nodes).as_bytes())
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_round_trip_and_junk_lines_are_skipped() {
        let nodes: Vec<SocketAddrV4> = vec![
            "1.2.3.4:6881".parse().unwrap(),
            "127.0.0.1:40000".parse().unwrap(),
        ];
        assert_eq!(parse(&format(&nodes)), nodes);
        let text = "1.2.3.4:6881\njunk\n\n[::1]:5\n5.6.7.8:0\n0.0.0.0:9\n 9.9.9.9:1 \n";
        assert_eq!(
            parse(text),
            vec![
                "1.2.3.4:6881".parse::<SocketAddrV4>().unwrap(),
                "9.9.9.9:1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn at_most_max_saved_nodes_are_kept() {
        let nodes: Vec<SocketAddrV4> = (0..1000u32)
            .map(|i| SocketAddrV4::new(std::net::Ipv4Addr::from(0x0100_0000 + i), 6881))
            .collect();
        assert_eq!(parse(&format(&nodes)).len(), MAX_SAVED);
    }
}
