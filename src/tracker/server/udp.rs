//! The UDP side (BEP 15): the sans-IO packet handler and the per-core socket loop.
//!
//! Malformed packets (every wrong size, unknown actions, bad options) are dropped without a
//! reply; an announce or scrape with a connection id that was not issued to the sender in the
//! current or previous window gets an error reply and changes nothing.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;

use super::{Shared, TrackerStats};
use crate::tracker::announce::AnnounceRequest;
use crate::tracker::udp_codec::{Request, Response, UdpAnnounce};

/// The largest packet read; anything longer is truncated by the kernel and then refused by
/// the codec (a scrape of 74 hashes is 1496 bytes).
const MAX_PACKET: usize = 2048;

/// Binds `count` UDP sockets on `addr` with `SO_REUSEPORT` (port 0: the first picks it), the
/// group private to this process ([`crate::engine::listen::bind_reuseport_udp`]).
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    // Bursts of announces: a bigger receive queue drops fewer (best effort).
    crate::engine::listen::bind_reuseport_udp(addr, count, 4 << 20)
}

fn error(transaction_id: u32, message: &str) -> Response {
    Response::Error {
        transaction_id,
        message: message.to_owned(),
    }
}

/// Handles one packet from `from`; appends the reply to `out` and returns `true` when there
/// is one (`false`: dropped).
pub fn handle_packet(pkt: &[u8], from: SocketAddr, shared: &Shared, out: &mut Vec<u8>) -> bool {
    let req = match Request::parse(pkt) {
        Ok(r) => r,
        Err(e) => {
            TrackerStats::bump(&shared.stats.refused);
            tracing::trace!(%from, "udp packet dropped: {e}");
            return false;
        }
    };
    let now = shared.now();
    let reply = match req {
        Request::Connect { transaction_id } => Response::Connect {
            transaction_id,
            connection_id: shared.conn_ids.issue(from, now),
        },
        Request::Announce(a) => {
            if !shared.conn_ids.check(a.connection_id, from, now) {
                TrackerStats::bump(&shared.stats.refused);
                error(a.transaction_id, "invalid connection id")
            } else {
                announce(&a, from, shared)
            }
        }
        Request::Scrape {
            connection_id,
            transaction_id,
            info_hashes,
        } => {
            if !shared.conn_ids.check(connection_id, from, now) {
                TrackerStats::bump(&shared.stats.refused);
                error(transaction_id, "invalid connection id")
            } else {
                TrackerStats::bump(&shared.stats.scrapes);
                Response::Scrape {
                    transaction_id,
                    stats: info_hashes
                        .iter()
                        .map(|h| {
                            let s = shared.registry.scrape(h);
                            (s.complete, s.downloaded, s.incomplete)
                        })
                        .collect(),
                }
            }
        }
    };
    reply.encode_into(out);
    true
}

fn announce(a: &UdpAnnounce, from: SocketAddr, shared: &Shared) -> Response {
    if a.port == 0 {
        TrackerStats::bump(&shared.stats.refused);
        return error(a.transaction_id, "port 0");
    }
    let sender = from.ip().to_canonical();
    let ip = if shared.config.trust_ip && a.ip != 0 && sender.is_ipv4() {
        IpAddr::V4(Ipv4Addr::from(a.ip))
    } else {
        sender
    };
    let req = AnnounceRequest {
        info_hash: a.info_hash,
        peer_id: a.peer_id,
        port: a.port,
        uploaded: a.uploaded,
        downloaded: a.downloaded,
        left: a.left,
        event: a.event,
        numwant: u32::try_from(a.num_want).ok(),
        compact: true,
        no_peer_id: true,
        key: Some(a.key.to_be_bytes().to_vec()),
        ip: None,
    };
    let addr = SocketAddr::new(ip, a.port);
    match shared
        .registry
        .announce(&req, addr, shared.now(), Some(sender.is_ipv4()))
    {
        Ok(resp) => {
            TrackerStats::bump(&shared.stats.udp_announces);
            Response::Announce {
                transaction_id: a.transaction_id,
                interval: resp.interval,
                leechers: resp.incomplete.unwrap_or(0),
                seeders: resp.complete.unwrap_or(0),
                peers: resp.peers.iter().map(|p| p.addr).collect(),
            }
        }
        Err(refusal) => {
            TrackerStats::bump(&shared.stats.refused);
            error(a.transaction_id, &refusal.to_string())
        }
    }
}

/// Answers packets on `sock` until the task is dropped.
pub(super) async fn serve(sock: UdpSocket, shared: Arc<Shared>) {
    let sock = tokio_uring::net::UdpSocket::from_std(sock);
    let mut buf = vec![0u8; MAX_PACKET];
    let mut out = Vec::with_capacity(MAX_PACKET);
    loop {
        let (result, b) = sock.recv_from(buf).await;
        buf = b;
        let (n, from) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("udp receive failed: {e}");
                continue;
            }
        };
        out.clear();
        if handle_packet(&buf[..n], from, &shared, &mut out) {
            let (result, o) = sock.send_to(out, from).await;
            out = o;
            if let Err(e) = result {
                tracing::debug!(%from, "udp send failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::InfoHash;
    use crate::protocol::PeerId;
    use crate::tracker::server::TrackerConfig;
    use crate::tracker::Event;

    fn announce_pkt(conn: u64, peer: u8, num_want: i32) -> Vec<u8> {
        Request::Announce(UdpAnnounce {
            connection_id: conn,
            transaction_id: 7,
            info_hash: InfoHash([3; 20]),
            peer_id: PeerId([peer; 20]),
            downloaded: 0,
            left: 100,
            uploaded: 0,
            event: Event::Started,
            ip: 0,
            key: 1,
            num_want,
            port: 6000 + u16::from(peer),
        })
        .encode()
    }

    fn ask(pkt: &[u8], from: SocketAddr, s: &Shared) -> Option<Response> {
        let mut out = Vec::new();
        handle_packet(pkt, from, s, &mut out)
            .then(|| Response::parse(&out, from.is_ipv6()).unwrap())
    }

    fn connect(from: SocketAddr, s: &Shared) -> u64 {
        match ask(&Request::Connect { transaction_id: 1 }.encode(), from, s) {
            Some(Response::Connect { connection_id, .. }) => connection_id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connect_then_announce() {
        let s = Shared::new(TrackerConfig::default());
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        let ca = connect(a, &s);
        assert!(
            matches!(ask(&announce_pkt(ca, 1, -1), a, &s), Some(Response::Announce { ref peers, leechers: 1, .. }) if peers.is_empty())
        );
        let cb = connect(b, &s);
        match ask(&announce_pkt(cb, 2, -1), b, &s) {
            Some(Response::Announce {
                peers, leechers, ..
            }) => {
                assert_eq!(leechers, 2);
                assert_eq!(peers, vec!["127.0.0.1:6001".parse().unwrap()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn forged_or_foreign_connection_ids_are_refused() {
        let s = Shared::new(TrackerConfig::default());
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let ca = connect(a, &s);
        for (conn, from) in [(ca ^ 1, a), (ca, b), (0x41727101980, a)] {
            match ask(&announce_pkt(conn, 1, -1), from, &s) {
                Some(Response::Error {
                    transaction_id: 7,
                    message,
                }) => {
                    assert!(message.contains("connection id"))
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(s.registry.swarm_count(), 0);
    }

    #[test]
    fn malformed_packets_are_dropped() {
        let s = Shared::new(TrackerConfig::default());
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let c = connect(a, &s);
        let good = announce_pkt(c, 1, -1);
        for len in 0..good.len() {
            assert!(ask(&good[..len], a, &s).is_none(), "{len}");
        }
        let mut connect_pkt = Request::Connect { transaction_id: 1 }.encode();
        connect_pkt.push(0);
        assert!(ask(&connect_pkt, a, &s).is_none());
        assert_eq!(s.registry.swarm_count(), 0);
    }

    #[test]
    fn ipv6_sender_gets_ipv6_peers_only() {
        let s = Shared::new(TrackerConfig::default());
        let v4: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let v6: SocketAddr = "[::1]:4000".parse().unwrap();
        let v6b: SocketAddr = "[::2]:4000".parse().unwrap();
        ask(&announce_pkt(connect(v4, &s), 1, -1), v4, &s).unwrap();
        ask(&announce_pkt(connect(v6, &s), 2, -1), v6, &s).unwrap();
        match ask(&announce_pkt(connect(v6b, &s), 3, 50), v6b, &s) {
            Some(Response::Announce { peers, .. }) => {
                assert_eq!(peers, vec!["[::1]:6002".parse().unwrap()])
            }
            other => panic!("{other:?}"),
        }
    }
}
