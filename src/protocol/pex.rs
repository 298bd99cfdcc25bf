//! BEP 11 peer exchange (`ut_pex`), sans-IO.
//!
//! A message is a bencoded dictionary of compact address lists: `added` (6 bytes per IPv4
//! peer) with one flag byte each in `added.f`, `added6`/`added6.f` (18 bytes per IPv6 peer),
//! and `dropped`/`dropped6`. [`PexMessage::parse`] reads one from untrusted bytes, keeping at
//! most [`MAX_PARSED_ENTRIES`] of each kind (the rest is counted and ignored, so a huge
//! message costs no memory beyond its own bytes); [`PexMessage::encode`] writes one.
//!
//! Sending follows libtorrent: one [`PexSwarm`] per torrent knows the peers connected (at
//! their listen addresses) and once a [`PEX_INTERVAL`] builds the diff against the last
//! round (at most [`MAX_SENT_ENTRIES`] added and as many dropped); every connection sends,
//! through its [`PexSchedule`], a first message listing the current peers, then each new
//! round's diff, never more than one a minute after the first. Private torrents never speak
//! PEX: the caller does not advertise it for them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use crate::bencode::{self, Owned};

/// The extension's name in the `m` dictionary of the extension handshake.
pub const UT_PEX: &str = "ut_pex";
/// The extended message id under which seedbox receives `ut_pex` messages.
pub const OUR_UT_PEX_ID: u8 = 1;
/// Least time between two messages to one peer (BEP 11: at most one a minute).
pub const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// Most added (and, separately, dropped) peers in a message we send (libtorrent's cap).
pub const MAX_SENT_ENTRIES: usize = 50;
/// Most added (and, separately, dropped) peers read from one received message; the others
/// are ignored.
pub const MAX_PARSED_ENTRIES: usize = 100;
/// Messages a peer may send within [`PEX_INTERVAL`] before it counts as flooding (libtorrent
/// disconnects at the 6th within a minute).
pub const MAX_RECEIVED_PER_INTERVAL: usize = 5;

/// The flag bits of `added.f`.
pub mod flags {
    /// The peer prefers encrypted connections.
    pub const ENCRYPTION: u8 = 0x01;
    /// The peer is a seed (or upload only).
    pub const SEED: u8 = 0x02;
    /// The peer supports uTP.
    pub const UTP: u8 = 0x04;
    /// The peer supports the holepunch extension.
    pub const HOLEPUNCH: u8 = 0x08;
    /// The sender reached the peer with an outgoing connection: it is connectable.
    pub const REACHABLE: u8 = 0x10;
}

/// A peer in a PEX message: its listen address and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PexPeer {
    /// Where it accepts connections.
    pub addr: SocketAddr,
    /// [`flags`] bits.
    pub flags: u8,
}

/// One `ut_pex` message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// Peers that joined the sender's swarm (IPv4 and IPv6).
    pub added: Vec<PexPeer>,
    /// Peers that left it.
    pub dropped: Vec<SocketAddr>,
}

/// A parsed message and how many entries past [`MAX_PARSED_ENTRIES`] it ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPex {
    /// The entries kept.
    pub message: PexMessage,
    /// The entries ignored.
    pub ignored: usize,
}

/// What is wrong with a `ut_pex` message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PexError {
    /// The payload is not valid bencode.
    #[error("ut_pex message is not valid bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// The payload is not a dictionary.
    #[error("ut_pex message is a {0}, not a dictionary")]
    NotADict(&'static str),
    /// A list is not a byte string, or its length is not a whole number of entries.
    #[error("ut_pex message key {key:?}: {problem}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// Bytes of one compact entry.
fn entry_len(v6: bool) -> usize {
    if v6 {
        18
    } else {
        6
    }
}

fn write_addr(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

fn read_addr(b: &[u8]) -> SocketAddr {
    let (ip, port) = b.split_at(b.len() - 2);
    let ip = match ip.len() {
        4 => IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
        _ => {
            let mut o = [0u8; 16];
            o.copy_from_slice(ip);
            IpAddr::V6(Ipv6Addr::from(o))
        }
    };
    SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]]))
}

impl PexMessage {
    /// Whether the message says nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.dropped.is_empty()
    }

    /// The bencoded dictionary. Every list is present (empty when there is nothing), and
    /// `added.f` always matches `added` entry for entry (libtorrent ignores `added` otherwise).
    pub fn encode(&self) -> Vec<u8> {
        let (mut a4, mut f4, mut a6, mut f6) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in &self.added {
            if p.addr.is_ipv4() {
                write_addr(&p.addr, &mut a4);
                f4.push(p.flags);
            } else {
                write_addr(&p.addr, &mut a6);
                f6.push(p.flags);
            }
        }
        let (mut d4, mut d6) = (Vec::new(), Vec::new());
        for a in &self.dropped {
            write_addr(a, if a.is_ipv4() { &mut d4 } else { &mut d6 });
        }
        Owned::dict()
            .insert("added", Owned::Bytes(a4))
            .insert("added.f", Owned::Bytes(f4))
            .insert("added6", Owned::Bytes(a6))
            .insert("added6.f", Owned::Bytes(f6))
            .insert("dropped", Owned::Bytes(d4))
            .insert("dropped6", Owned::Bytes(d6))
            .encode()
    }

    /// Parses a message (the extended payload after the extended id). Unknown keys are
    /// ignored; a missing or short flags string gives flags 0; entries with port 0 are
    /// skipped. At most [`MAX_PARSED_ENTRIES`] added and as many dropped are kept.
    pub fn parse(payload: &[u8]) -> Result<ParsedPex, PexError> {
        let root = bencode::decode(payload)?;
        let dict = root
            .as_dict()
            .ok_or_else(|| PexError::NotADict(root.type_name()))?;
        let get = |key: &'static str| -> Result<&[u8], PexError> {
            match dict.iter().find(|(k, _)| *k == key.as_bytes()) {
                None => Ok(&[]),
                Some((_, v)) => v.as_bytes().ok_or_else(|| PexError::BadValue {
                    key,
                    problem: format!("expected a byte string, got a {}", v.type_name()),
                }),
            }
        };
        let mut out = PexMessage::default();
        let mut ignored = 0;
        for (key, fkey, v6) in [("added", "added.f", false), ("added6", "added6.f", true)] {
            let list = entries(key, get(key)?, v6)?;
            let f = get(fkey)?;
            for (i, e) in list.enumerate() {
                if out.added.len() >= MAX_PARSED_ENTRIES {
                    ignored += 1;
                    continue;
                }
                let addr = read_addr(e);
                if addr.port() != 0 {
                    let flags = f.get(i).copied().unwrap_or(0);
                    out.added.push(PexPeer { addr, flags });
                }
            }
        }
        for (key, v6) in [("dropped", false), ("dropped6", true)] {
            for e in entries(key, get(key)?, v6)? {
                if out.dropped.len() >= MAX_PARSED_ENTRIES {
                    ignored += 1;
                    continue;
                }
                out.dropped.push(read_addr(e));
            }
        }
        Ok(ParsedPex {
            message: out,
            ignored,
        })
    }
}

/// The compact entries of list `key`, checked to be whole.
fn entries<'a>(
    key: &'static str,
    bytes: &'a [u8],
    v6: bool,
) -> Result<std::slice::ChunksExact<'a, u8>, PexError> {
    let len = entry_len(v6);
    if bytes.len() % len != 0 {
        return Err(PexError::BadValue {
            key,
            problem: format!("{} bytes is not a multiple of {len}", bytes.len()),
        });
    }
    Ok(bytes.chunks_exact(len))
}

/// The PEX view of one torrent's swarm: the peers connected to us at their listen
/// addresses, and the diff of the last round, shared by every connection of the torrent.
#[derive(Debug, Default)]
pub struct PexSwarm {
    /// Peers connected now (a peer connected twice counts once until both leave).
    live: BTreeMap<SocketAddr, (u8, u32)>,
    /// What the last rounds told the peers: the swarm as of the last diff.
    told: BTreeMap<SocketAddr, u8>,
    /// The last round's diff, encoded, and its number (0: none yet).
    diff: Option<Bytes>,
    round: u64,
    next_round: Duration,
}

impl PexSwarm {
    /// An empty swarm.
    pub fn new() -> Self {
        PexSwarm::default()
    }

    /// A peer listening at `addr` connected (its flags as far as known).
    pub fn join(&mut self, addr: SocketAddr, flags: u8) {
        let e = self.live.entry(addr).or_insert((flags, 0));
        e.0 |= flags;
        e.1 += 1;
    }

    /// Adds `flags` to a connected peer's (a peer found to be a seed once its bitfield came,
    /// after its extension handshake). First messages carry them from now on; a peer already
    /// announced in a round is not announced again.
    pub fn add_flags(&mut self, addr: SocketAddr, flags: u8) {
        if let Some(e) = self.live.get_mut(&addr) {
            e.0 |= flags;
        }
    }

    /// The peer listening at `addr` disconnected.
    pub fn leave(&mut self, addr: SocketAddr) {
        if let Some(e) = self.live.get_mut(&addr) {
            e.1 -= 1;
            if e.1 == 0 {
                self.live.remove(&addr);
            }
        }
    }

    /// How many distinct peers are connected.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no peer is connected.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// At `now`, when a round is due, builds the diff of the swarm against the last round
    /// (at most [`MAX_SENT_ENTRIES`] added and dropped: the rest waits for the next round).
    pub fn tick(&mut self, now: Duration) {
        if now < self.next_round {
            return;
        }
        self.next_round = now + PEX_INTERVAL;
        let mut msg = PexMessage::default();
        for (addr, &(flags, _)) in &self.live {
            if msg.added.len() >= MAX_SENT_ENTRIES {
                break;
            }
            if !self.told.contains_key(addr) {
                msg.added.push(PexPeer { addr: *addr, flags });
            }
        }
        for addr in self.told.keys() {
            if msg.dropped.len() >= MAX_SENT_ENTRIES {
                break;
            }
            if !self.live.contains_key(addr) {
                msg.dropped.push(*addr);
            }
        }
        for p in &msg.added {
            self.told.insert(p.addr, p.flags);
        }
        for a in &msg.dropped {
            self.told.remove(a);
        }
        self.round += 1;
        self.diff = (!msg.is_empty()).then(|| Bytes::from(msg.encode()));
    }

    /// The first message for a new connection: up to [`MAX_SENT_ENTRIES`] of the peers
    /// connected now, not counting `recipient` (the peer it goes to); `None` when there is
    /// no other peer.
    pub fn first_message(&self, recipient: Option<SocketAddr>) -> Option<Bytes> {
        let added: Vec<PexPeer> = self
            .live
            .iter()
            .filter(|(a, _)| Some(**a) != recipient)
            .take(MAX_SENT_ENTRIES)
            .map(|(&addr, &(flags, _))| PexPeer { addr, flags })
            .collect();
        (!added.is_empty()).then(|| {
            Bytes::from(
                PexMessage {
                    added,
                    dropped: Vec::new(),
                }
                .encode(),
            )
        })
    }
}

/// When one connection sends PEX, and when it receives too much of it.
#[derive(Clone, Debug)]
pub struct PexSchedule {
    /// Not before this.
    next_at: Duration,
    /// The swarm round whose diff this peer was sent last (or that was current when it got
    /// its first message); `None` before the first message.
    round: Option<u64>,
    /// When the peer's last messages arrived, oldest first.
    received: [Option<Duration>; MAX_RECEIVED_PER_INTERVAL],
}

impl PexSchedule {
    /// A connection opened at `now` sends its first message `first_after` later (once its
    /// extension handshake is in and the swarm knows it).
    pub fn new(now: Duration, first_after: Duration) -> Self {
        PexSchedule {
            next_at: now + first_after,
            round: None,
            received: [None; MAX_RECEIVED_PER_INTERVAL],
        }
    }

    /// When [`PexSchedule::poll`] may next have something.
    pub fn next_at(&self) -> Duration {
        self.next_at
    }

    /// At `now`: the message to send this peer, if one is due (the first message, then each
    /// new round's diff, at most one per [`PEX_INTERVAL`]). Runs the swarm's round when due.
    /// `recipient`: the peer's own listen address, left out of its first message.
    pub fn poll(
        &mut self,
        now: Duration,
        swarm: &mut PexSwarm,
        recipient: Option<SocketAddr>,
    ) -> Option<Bytes> {
        if now < self.next_at {
            return None;
        }
        swarm.tick(now);
        let msg = match self.round {
            None => swarm.first_message(recipient),
            Some(r) if r < swarm.round => swarm.diff.clone(),
            Some(_) => None,
        };
        self.round = Some(swarm.round);
        // Sent or not, the next chance is at the swarm's next round (a minute at most).
        self.next_at = if msg.is_some() {
            now + PEX_INTERVAL
        } else {
            swarm.next_round.max(now + Duration::from_secs(1))
        };
        msg
    }

    /// A message arrived from the peer at `now`: false when it is the
    /// ([`MAX_RECEIVED_PER_INTERVAL`] + 1)th within a [`PEX_INTERVAL`] (the peer floods).
    pub fn on_received(&mut self, now: Duration) -> bool {
        let oldest = self.received[0];
        if oldest.is_some_and(|t| now.saturating_sub(t) < PEX_INTERVAL) {
            return false;
        }
        self.received.rotate_left(1);
        self.received[MAX_RECEIVED_PER_INTERVAL - 1] = Some(now);
        true
    }
}

/// Whether `addr` is worth dialling as a learned peer: a port, an address that can be
/// connected to, and not one of `ours` (our own listen addresses: never connect to self).
pub fn is_dialable(addr: SocketAddr, ours: &[SocketAddr]) -> bool {
    let ip = addr.ip();
    addr.port() != 0
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && !matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
        && !ours.iter().any(|o| {
            o.port() == addr.port()
                && (o.ip() == ip || (o.ip().is_unspecified() && ip.is_loopback()))
        })
}

#[cfg(test)]
mod tests;
