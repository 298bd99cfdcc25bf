//! The UDP tracker protocol (BEP 15; BEP 41 options), sans-IO: requests and responses, encoded
//! and parsed for both the server and the client side. Every wrong size is an error.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::metainfo::InfoHash;
use crate::protocol::PeerId;

use super::announce::Event;

/// The magic `protocol_id` of a connect request.
pub const PROTOCOL_ID: u64 = 0x417_2710_1980;
/// Action numbers.
const CONNECT: u32 = 0;
const ANNOUNCE: u32 = 1;
const SCRAPE: u32 = 2;
const ERROR: u32 = 3;
/// Size of a connect request and of a connect response.
pub const CONNECT_LEN: usize = 16;
/// Size of an announce request without BEP 41 options.
pub const ANNOUNCE_LEN: usize = 98;
/// The most info-hashes one UDP scrape may carry (BEP 15: about 74 fit in a packet).
pub const MAX_UDP_SCRAPE: usize = 74;

/// Why a UDP tracker packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpError {
    /// Shorter than any packet (no action or transaction id).
    #[error("packet of {0} bytes is too short")]
    TooShort(usize),
    /// The size does not fit the action.
    #[error("{action} packet of {len} bytes has the wrong size")]
    WrongSize {
        /// The action named by the packet.
        action: &'static str,
        /// Its length.
        len: usize,
    },
    /// A connect request without the magic protocol id.
    #[error("connect request with a wrong protocol id {0:#x}")]
    BadProtocolId(u64),
    /// An action number that does not exist.
    #[error("unknown action {0}")]
    UnknownAction(u32),
    /// An announce with an event number that does not exist.
    #[error("unknown announce event {0}")]
    BadEvent(u32),
    /// Malformed BEP 41 options after an announce.
    #[error("malformed announce options: {0}")]
    BadOptions(&'static str),
}

/// A client-to-tracker packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Ask for a connection id.
    Connect {
        /// Chosen by the client, echoed back.
        transaction_id: u32,
    },
    /// Announce.
    Announce(UdpAnnounce),
    /// Scrape.
    Scrape {
        /// From a connect response.
        connection_id: u64,
        /// Chosen by the client, echoed back.
        transaction_id: u32,
        /// 1 to [`MAX_UDP_SCRAPE`] swarms.
        info_hashes: Vec<InfoHash>,
    },
}

/// A UDP announce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpAnnounce {
    /// From a connect response.
    pub connection_id: u64,
    /// Chosen by the client, echoed back.
    pub transaction_id: u32,
    /// The swarm.
    pub info_hash: InfoHash,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes left.
    pub left: u64,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// The event.
    pub event: Event,
    /// The IPv4 address claimed (0: use the sender's).
    pub ip: u32,
    /// The client's key.
    pub key: u32,
    /// Peers wanted (-1: default).
    pub num_want: i32,
    /// Listening port.
    pub port: u16,
}

/// A tracker-to-client packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// A connection id.
    Connect {
        /// Echoed.
        transaction_id: u32,
        /// To put in the next requests.
        connection_id: u64,
    },
    /// Peers.
    Announce {
        /// Echoed.
        transaction_id: u32,
        /// Seconds until the next announce.
        interval: u32,
        /// Leechers in the swarm.
        leechers: u32,
        /// Seeds in the swarm.
        seeders: u32,
        /// Peers, all of the address family of the socket (IPv4 or IPv6).
        peers: Vec<SocketAddr>,
    },
    /// Swarm counts, one per requested info-hash, in order.
    Scrape {
        /// Echoed.
        transaction_id: u32,
        /// `(seeders, completed, leechers)`.
        stats: Vec<(u32, u32, u32)>,
    },
    /// A failure message.
    Error {
        /// Echoed.
        transaction_id: u32,
        /// Why.
        message: String,
    },
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

fn arr20(b: &[u8], i: usize) -> [u8; 20] {
    b[i..i + 20].try_into().expect("20 bytes")
}

/// Checks BEP 41 options after an announce: `0` end, `1` no-op, `2` URL data (length byte).
fn check_options(mut opts: &[u8]) -> Result<(), UdpError> {
    while let Some((&kind, rest)) = opts.split_first() {
        match kind {
            0 => return Ok(()),
            1 => opts = rest,
            2 => {
                let (&len, rest) = rest
                    .split_first()
                    .ok_or(UdpError::BadOptions("URL data without a length"))?;
                if rest.len() < usize::from(len) {
                    return Err(UdpError::BadOptions("URL data longer than the packet"));
                }
                opts = &rest[usize::from(len)..];
            }
            _ => return Err(UdpError::BadOptions("unknown option type")),
        }
    }
    Ok(())
}

impl Request {
    /// The transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Request::Connect { transaction_id }
            | Request::Scrape { transaction_id, .. }
            | Request::Announce(UdpAnnounce { transaction_id, .. }) => *transaction_id,
        }
    }

    /// Parses a packet received by a tracker.
    pub fn parse(b: &[u8]) -> Result<Self, UdpError> {
        if b.len() < 16 {
            return Err(UdpError::TooShort(b.len()));
        }
        let connection_id = u64_at(b, 0);
        let action = u32_at(b, 8);
        let transaction_id = u32_at(b, 12);
        match action {
            CONNECT => {
                if b.len() != CONNECT_LEN {
                    return Err(UdpError::WrongSize {
                        action: "connect",
                        len: b.len(),
                    });
                }
                if connection_id != PROTOCOL_ID {
                    return Err(UdpError::BadProtocolId(connection_id));
                }
                Ok(Request::Connect { transaction_id })
            }
            ANNOUNCE => {
                if b.len() < ANNOUNCE_LEN {
                    return Err(UdpError::WrongSize {
                        action: "announce",
                        len: b.len(),
                    });
                }
                check_options(&b[ANNOUNCE_LEN..])?;
                let ev = u32_at(b, 80);
                Ok(Request::Announce(UdpAnnounce {
                    connection_id,
                    transaction_id,
                    info_hash: InfoHash(arr20(b, 16)),
                    peer_id: PeerId(arr20(b, 36)),
                    downloaded: u64_at(b, 56),
                    left: u64_at(b, 64),
                    uploaded: u64_at(b, 72),
                    event: Event::from_udp(ev).ok_or(UdpError::BadEvent(ev))?,
                    ip: u32_at(b, 84),
                    key: u32_at(b, 88),
                    num_want: u32_at(b, 92) as i32,
                    port: u16::from_be_bytes([b[96], b[97]]),
                }))
            }
            SCRAPE => {
                let n = (b.len() - 16) / 20;
                if (b.len() - 16) % 20 != 0 || n == 0 || n > MAX_UDP_SCRAPE {
                    return Err(UdpError::WrongSize {
                        action: "scrape",
                        len: b.len(),
                    });
                }
                Ok(Request::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes: (0..n).map(|i| InfoHash(arr20(b, 16 + 20 * i))).collect(),
                })
            }
            other => Err(UdpError::UnknownAction(other)),
        }
    }

    /// Appends the packet a client sends.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Request::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Request::Announce(a) => {
                out.extend_from_slice(&a.connection_id.to_be_bytes());
                out.extend_from_slice(&ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&a.transaction_id.to_be_bytes());
                out.extend_from_slice(&a.info_hash.0);
                out.extend_from_slice(&a.peer_id.0);
                out.extend_from_slice(&a.downloaded.to_be_bytes());
                out.extend_from_slice(&a.left.to_be_bytes());
                out.extend_from_slice(&a.uploaded.to_be_bytes());
                out.extend_from_slice(&a.event.to_udp().to_be_bytes());
                out.extend_from_slice(&a.ip.to_be_bytes());
                out.extend_from_slice(&a.key.to_be_bytes());
                out.extend_from_slice(&a.num_want.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for h in info_hashes {
                    out.extend_from_slice(&h.0);
                }
            }
        }
    }

    /// The packet a client sends.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ANNOUNCE_LEN);
        self.encode_into(&mut out);
        out
    }
}

impl Response {
    /// The transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => *transaction_id,
        }
    }

    /// Parses a packet received by a client. `ipv6`: the socket is IPv6, so announce peers are
    /// 18-byte entries (BEP 15) instead of 6-byte ones.
    pub fn parse(b: &[u8], ipv6: bool) -> Result<Self, UdpError> {
        if b.len() < 8 {
            return Err(UdpError::TooShort(b.len()));
        }
        let action = u32_at(b, 0);
        let transaction_id = u32_at(b, 4);
        let wrong = |action| UdpError::WrongSize {
            action,
            len: b.len(),
        };
        match action {
            CONNECT => {
                if b.len() != CONNECT_LEN {
                    return Err(wrong("connect"));
                }
                Ok(Response::Connect {
                    transaction_id,
                    connection_id: u64_at(b, 8),
                })
            }
            ANNOUNCE => {
                let entry = if ipv6 { 18 } else { 6 };
                if b.len() < 20 || (b.len() - 20) % entry != 0 {
                    return Err(wrong("announce"));
                }
                let peers = b[20..]
                    .chunks_exact(entry)
                    .map(|c| {
                        let port = u16::from_be_bytes([c[entry - 2], c[entry - 1]]);
                        if ipv6 {
                            let ip: [u8; 16] = c[..16].try_into().expect("16 bytes");
                            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
                        } else {
                            SocketAddr::V4(SocketAddrV4::new(
                                Ipv4Addr::new(c[0], c[1], c[2], c[3]),
                                port,
                            ))
                        }
                    })
                    .collect();
                Ok(Response::Announce {
                    transaction_id,
                    interval: u32_at(b, 8),
                    leechers: u32_at(b, 12),
                    seeders: u32_at(b, 16),
                    peers,
                })
            }
            SCRAPE => {
                if (b.len() - 8) % 12 != 0 {
                    return Err(wrong("scrape"));
                }
                let stats = b[8..]
                    .chunks_exact(12)
                    .map(|c| (u32_at(c, 0), u32_at(c, 4), u32_at(c, 8)))
                    .collect();
                Ok(Response::Scrape {
                    transaction_id,
                    stats,
                })
            }
            ERROR => Ok(Response::Error {
                transaction_id,
                message: String::from_utf8_lossy(&b[8..]).into_owned(),
            }),
            other => Err(UdpError::UnknownAction(other)),
        }
    }

    /// Appends the packet a tracker sends. Announce peers of the other address family than
    /// the first one are skipped (one packet holds one family).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Response::Connect {
                transaction_id,
                connection_id,
            } => {
                out.extend_from_slice(&CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Response::Announce {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            } => {
                out.extend_from_slice(&ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&interval.to_be_bytes());
                out.extend_from_slice(&leechers.to_be_bytes());
                out.extend_from_slice(&seeders.to_be_bytes());
                let v6 = peers.first().is_some_and(SocketAddr::is_ipv6);
                for p in peers {
                    match (p, v6) {
                        (SocketAddr::V4(a), false) => out.extend_from_slice(&a.ip().octets()),
                        (SocketAddr::V6(a), true) => out.extend_from_slice(&a.ip().octets()),
                        _ => continue,
                    }
                    out.extend_from_slice(&p.port().to_be_bytes());
                }
            }
            Response::Scrape {
                transaction_id,
                stats,
            } => {
                out.extend_from_slice(&SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for (s, c, l) in stats {
                    out.extend_from_slice(&s.to_be_bytes());
                    out.extend_from_slice(&c.to_be_bytes());
                    out.extend_from_slice(&l.to_be_bytes());
                }
            }
            Response::Error {
                transaction_id,
                message,
            } => {
                out.extend_from_slice(&ERROR.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(message.as_bytes());
            }
        }
    }

    /// The packet a tracker sends.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn announce() -> UdpAnnounce {
        UdpAnnounce {
            connection_id: 0x1122_3344_5566_7788,
            transaction_id: 7,
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            downloaded: 3,
            left: 4,
            uploaded: 5,
            event: Event::Started,
            ip: 0,
            key: 9,
            num_want: -1,
            port: 6881,
        }
    }

    #[test]
    fn connect_request_layout() {
        let b = Request::Connect { transaction_id: 5 }.encode();
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..8], &[0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80]);
        assert_eq!(
            Request::parse(&b).unwrap(),
            Request::Connect { transaction_id: 5 }
        );
        let mut bad = b.clone();
        bad[0] = 1;
        assert!(matches!(
            Request::parse(&bad),
            Err(UdpError::BadProtocolId(_))
        ));
    }

    #[test]
    fn every_wrong_request_size_is_an_error() {
        let connect = Request::Connect { transaction_id: 1 }.encode();
        let ann = Request::Announce(announce()).encode();
        assert_eq!(ann.len(), ANNOUNCE_LEN);
        let scrape = Request::Scrape {
            connection_id: 1,
            transaction_id: 1,
            info_hashes: vec![InfoHash([3; 20])],
        }
        .encode();
        for len in 0..200 {
            let mut c = connect.clone();
            c.resize(len, 0);
            assert_eq!(Request::parse(&c).is_ok(), len == 16, "connect {len}");
            let mut a = ann.clone();
            a.resize(len, 0);
            // Zero padding past 98 bytes is a BEP 41 end-of-options marker.
            assert_eq!(Request::parse(&a).is_ok(), len >= 98, "announce {len}");
            let mut s = scrape.clone();
            s.resize(len, 3);
            let ok = len >= 36 && (len - 16) % 20 == 0;
            assert_eq!(Request::parse(&s).is_ok(), ok, "scrape {len}");
        }
        let mut big = scrape.clone();
        big.resize(16 + 20 * (MAX_UDP_SCRAPE + 1), 3);
        assert!(Request::parse(&big).is_err());
    }

    #[test]
    fn announce_options() {
        let mut a = Request::Announce(announce()).encode();
        a.extend_from_slice(&[1, 2, 3, b'/', b'a', b'b', 0]);
        assert!(Request::parse(&a).is_ok());
        let mut a = Request::Announce(announce()).encode();
        a.extend_from_slice(&[2, 9, b'/']);
        assert!(matches!(Request::parse(&a), Err(UdpError::BadOptions(_))));
        let mut a = Request::Announce(announce()).encode();
        a.push(7);
        assert!(matches!(Request::parse(&a), Err(UdpError::BadOptions(_))));
        let mut a = Request::Announce(announce()).encode();
        a[83] = 9;
        assert_eq!(Request::parse(&a), Err(UdpError::BadEvent(9)));
    }

    #[test]
    fn every_wrong_response_size_is_an_error() {
        for len in 0..100usize {
            let mut b = vec![0u8; len];
            if len >= 4 {
                b[3] = 0;
            }
            assert_eq!(
                Response::parse(&b, false).is_ok(),
                len == 16,
                "connect {len}"
            );
            if len >= 4 {
                b[3] = 1;
            }
            let ok4 = len >= 20 && (len - 20) % 6 == 0;
            let ok6 = len >= 20 && (len - 20) % 18 == 0;
            assert_eq!(Response::parse(&b, false).is_ok(), ok4, "announce v4 {len}");
            assert_eq!(Response::parse(&b, true).is_ok(), ok6, "announce v6 {len}");
            if len >= 4 {
                b[3] = 2;
            }
            let ok = len >= 8 && (len - 8) % 12 == 0;
            assert_eq!(Response::parse(&b, false).is_ok(), ok, "scrape {len}");
            if len >= 4 {
                b[3] = 3;
            }
            assert_eq!(Response::parse(&b, false).is_ok(), len >= 8, "error {len}");
        }
    }

    fn arb_v4() -> impl Strategy<Value = SocketAddr> {
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::V4(SocketAddrV4::new(ip.into(), p)))
    }

    proptest! {
        #[test]
        fn announce_round_trips(
            cid in any::<u64>(), tid in any::<u32>(), ih in any::<[u8; 20]>(),
            pid in any::<[u8; 20]>(), d in any::<u64>(), l in any::<u64>(), u in any::<u64>(),
            ev in 0u32..4, ip in any::<u32>(), key in any::<u32>(), nw in any::<i32>(),
            port in any::<u16>(),
        ) {
            let r = Request::Announce(UdpAnnounce {
                connection_id: cid, transaction_id: tid, info_hash: InfoHash(ih),
                peer_id: PeerId(pid), downloaded: d, left: l, uploaded: u,
                event: Event::from_udp(ev).unwrap(), ip, key, num_want: nw, port,
            });
            prop_assert_eq!(Request::parse(&r.encode()).unwrap(), r);
        }

        #[test]
        fn scrape_round_trips(cid in any::<u64>(), tid in any::<u32>(),
            hs in proptest::collection::vec(any::<[u8; 20]>(), 1..=MAX_UDP_SCRAPE)) {
            let r = Request::Scrape { connection_id: cid, transaction_id: tid,
                info_hashes: hs.into_iter().map(InfoHash).collect() };
            prop_assert_eq!(Request::parse(&r.encode()).unwrap(), r);
        }

        #[test]
        fn responses_round_trip(tid in any::<u32>(), i in any::<u32>(), le in any::<u32>(),
            se in any::<u32>(), peers in proptest::collection::vec(arb_v4(), 0..50),
            stats in proptest::collection::vec(any::<(u32, u32, u32)>(), 0..20),
            msg in "[a-z ]{0,40}", cid in any::<u64>()) {
            for r in [
                Response::Connect { transaction_id: tid, connection_id: cid },
                Response::Announce { transaction_id: tid, interval: i, leechers: le,
                    seeders: se, peers: peers.clone() },
                Response::Scrape { transaction_id: tid, stats: stats.clone() },
                Response::Error { transaction_id: tid, message: msg.clone() },
            ] {
                prop_assert_eq!(Response::parse(&r.encode(), false).unwrap(), r);
            }
        }

        #[test]
        fn ipv6_announce_round_trips(ips in proptest::collection::vec(
            (any::<[u8; 16]>(), any::<u16>()), 0..20)) {
            let peers: Vec<SocketAddr> = ips.into_iter()
                .map(|(ip, p)| SocketAddr::V6(SocketAddrV6::new(ip.into(), p, 0, 0))).collect();
            let r = Response::Announce { transaction_id: 1, interval: 2, leechers: 3,
                seeders: 4, peers };
            prop_assert_eq!(Response::parse(&r.encode(), true).unwrap(), r);
        }

        #[test]
        fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Request::parse(&b);
            let _ = Response::parse(&b, false);
            let _ = Response::parse(&b, true);
        }
    }
}
