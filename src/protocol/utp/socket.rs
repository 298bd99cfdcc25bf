//! The uTP side of one UDP socket, sans-IO: demultiplexes datagrams to connections keyed by
//! (sender address, receive id), accepts SYNs within bounds, and gathers what every
//! connection has to send.
//!
//! Bounded under hostile input: at most `max_connections` connections, of which at most
//! `max_half_open` accepted ones that never sent data. A SYN at that cap resets the oldest
//! half-open connection to make room, so a SYN flood only churns those slots: a real peer's
//! SYN is still answered, and its connection leaves the half-open set with its first data
//! packet, a round trip later (a flood that outpaces that, `max_half_open` SYNs per round
//! trip, can still starve it). Junk and packets for unknown connections are dropped
//! (answered by at most `max_pending_resets` queued RESETs). A
//! datagram that is not uTP is reported as [`Received::NotUtp`] for whoever shares the
//! socket (the DHT's bencoded messages start with `d`, never a uTP header byte).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use slab::Slab;

use super::connection::{Connection, UtpConfig};
use super::packet::{looks_like_utp, Header, PacketType, HEADER_LEN};

/// Settings of one socket's uTP side.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// Every connection's settings.
    pub conn: UtpConfig,
    /// Connections at most (incoming and outgoing).
    pub max_connections: usize,
    /// Accepted connections that sent nothing but their SYN, at most (at least 1): a SYN
    /// beyond resets the oldest of them.
    pub max_half_open: usize,
    /// RESETs queued for unknown connections, at most (the rest are not answered).
    pub max_pending_resets: usize,
}

impl Default for SocketConfig {
    fn default() -> SocketConfig {
        SocketConfig {
            conn: UtpConfig::default(),
            max_connections: 2048,
            max_half_open: 256,
            max_pending_resets: 64,
        }
    }
}

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A packet for the connection with this key: wake whoever waits on it.
    Connection(usize),
    /// A SYN opened a new incoming connection, `key`. At the half-open cap it reset the
    /// oldest half-open connection, `evicted` when the application still holds that one:
    /// wake whoever waits on it (its reads now fail), and release it.
    Accepted {
        /// The new connection.
        key: usize,
        /// The half-open connection reset to make room, if the application holds it.
        evicted: Option<usize>,
    },
    /// Not a uTP packet: hand it to the socket's other user (the DHT).
    NotUtp,
    /// A uTP packet that was dropped (malformed, unknown connection, over a limit).
    Dropped,
}

/// Why an outgoing connection cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// `max_connections` are open.
    #[error("too many uTP connections")]
    Full,
}

#[derive(Debug)]
struct Entry {
    addr: SocketAddr,
    conn: Connection,
    /// The application has let go: removed once closed.
    released: bool,
    /// When it was opened, in order of opening (the oldest half-open one is reset first).
    opened: u64,
}

/// The uTP connections of one UDP socket.
#[derive(Debug)]
pub struct UtpSocket {
    cfg: SocketConfig,
    conns: Slab<Entry>,
    ids: HashMap<(SocketAddr, u16), usize>,
    resets: VecDeque<(SocketAddr, Header)>,
    rng: u64,
    cursor: usize,
    /// Connections opened so far (each entry's `opened`).
    opened: u64,
}

impl UtpSocket {
    /// A socket with no connection; `seed` seeds the connection ids and sequence numbers.
    pub fn new(cfg: SocketConfig, seed: u64) -> UtpSocket {
        UtpSocket {
            cfg,
            conns: Slab::new(),
            ids: HashMap::new(),
            resets: VecDeque::new(),
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            cursor: 0,
            opened: 0,
        }
    }

    fn random(&mut self) -> u16 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 32) as u16
    }

    /// Connections held (released ones still finishing included).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is held.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The connection `key`, if it is still held.
    pub fn connection(&mut self, key: usize) -> Option<&mut Connection> {
        self.conns.get_mut(key).map(|e| &mut e.conn)
    }

    /// The peer address of connection `key`.
    pub fn peer_addr(&self, key: usize) -> Option<SocketAddr> {
        self.conns.get(key).map(|e| e.addr)
    }

    /// Handles one datagram from `from`.
    pub fn on_datagram(&mut self, from: SocketAddr, datagram: &[u8], now: u64) -> Received {
        if !looks_like_utp(datagram) {
            return Received::NotUtp;
        }
        let Ok((h, payload)) = Header::decode(datagram) else {
            return Received::Dropped;
        };
        if h.kind == PacketType::Syn {
            return self.on_syn(from, &h, payload, now);
        }
        let key = match self.ids.get(&(from, h.connection_id)) {
            Some(&key) => Some(key),
            // libutp (Transmission) answers a packet it cannot place with a RST carrying that
            // packet's id, our send id: it ends the connection all the same.
            None if h.kind == PacketType::Reset => self
                .conns
                .iter()
                .find(|(_, e)| e.addr == from && e.conn.send_id() == h.connection_id)
                .map(|(k, _)| k),
            None => None,
        };
        match key {
            Some(key) => {
                self.conns[key].conn.on_packet(&h, payload, now);
                Received::Connection(key)
            }
            None => {
                if h.kind != PacketType::Reset && self.resets.len() < self.cfg.max_pending_resets {
                    let reset = Header {
                        kind: PacketType::Reset,
                        connection_id: h.connection_id,
                        timestamp_us: now as u32,
                        timestamp_diff_us: 0,
                        wnd_size: 0,
                        seq_nr: self.random(),
                        ack_nr: h.seq_nr,
                        sack: None,
                    };
                    self.resets.push_back((from, reset));
                }
                Received::Dropped
            }
        }
    }

    /// A SYN: repeated for a connection held, or a new incoming connection within the caps.
    fn on_syn(&mut self, from: SocketAddr, h: &Header, payload: &[u8], now: u64) -> Received {
        let recv_id = h.connection_id.wrapping_add(1);
        if let Some(&key) = self.ids.get(&(from, recv_id)) {
            self.conns[key].conn.on_packet(h, payload, now);
            return Received::Connection(key);
        }
        if self.conns.len() >= self.cfg.max_connections {
            return Received::Dropped;
        }
        let evicted = self.make_half_open_room(now);
        let seq = self.random();
        let conn = Connection::accept(self.cfg.conn.clone(), h, seq, now);
        let key = self.insert(from, conn);
        Received::Accepted { key, evicted }
    }

    /// Below `max_half_open` half-open connections, nothing. At the cap, resets the oldest
    /// (a flood's forged SYN, or a peer too slow to send its first data packet) and returns
    /// its key if the application still holds it (else it is gone already).
    fn make_half_open_room(&mut self, now: u64) -> Option<usize> {
        let mut count = 0;
        let mut oldest: Option<(u64, usize)> = None;
        for (key, e) in self.conns.iter() {
            if e.conn.is_half_open() {
                count += 1;
                if oldest.map_or(true, |(opened, _)| e.opened < opened) {
                    oldest = Some((e.opened, key));
                }
            }
        }
        if count < self.cfg.max_half_open.max(1) {
            return None;
        }
        let (_, key) = oldest?;
        self.abort(key, now);
        let held = !self.conns[key].released;
        self.reap(key);
        held.then_some(key)
    }

    fn insert(&mut self, addr: SocketAddr, conn: Connection) -> usize {
        let recv_id = conn.recv_id();
        self.opened += 1;
        let key = self.conns.insert(Entry {
            addr,
            conn,
            released: false,
            opened: self.opened,
        });
        self.ids.insert((addr, recv_id), key);
        key
    }

    /// Ends `key` at once: a RESET to the peer (while the queue has room), and closed.
    fn abort(&mut self, key: usize, now: u64) {
        let e = &mut self.conns[key];
        if e.conn.is_closed() {
            return;
        }
        let mut out = Vec::with_capacity(HEADER_LEN);
        e.conn.reset_packet(now, &mut out);
        if let Ok((h, _)) = Header::decode(&out) {
            if self.resets.len() < self.cfg.max_pending_resets {
                self.resets.push_back((e.addr, h));
            }
        }
        e.conn.abort();
    }

    /// An ICMP port unreachable came back from `addr` (the socket's error queue): ends the
    /// connections to it whose SYN is unanswered ([`Connection::on_unreachable`]) and pushes
    /// their keys to `woken`.
    pub fn on_unreachable(&mut self, addr: SocketAddr, woken: &mut Vec<usize>) {
        for (key, e) in self.conns.iter_mut() {
            // Address and port only: an IPv6 error may carry another flow label or scope.
            let same = e.addr.ip().to_canonical() == addr.ip().to_canonical()
                && e.addr.port() == addr.port();
            if same && e.conn.state() == super::connection::State::SynSent {
                e.conn.on_unreachable();
                woken.push(key);
            }
        }
    }

    /// Opens a connection to `to`; its SYN goes out with the next [`UtpSocket::poll_transmit`].
    pub fn connect(&mut self, to: SocketAddr, now: u64) -> Result<usize, ConnectError> {
        if self.conns.len() >= self.cfg.max_connections {
            return Err(ConnectError::Full);
        }
        let recv_id = loop {
            let id = self.random();
            if !self.ids.contains_key(&(to, id)) {
                break id;
            }
        };
        let seq = self.random();
        let conn = Connection::connect(self.cfg.conn.clone(), recv_id, seq, now);
        Ok(self.insert(to, conn))
    }

    /// The application is done with `key`: a live connection sends FIN after its queued
    /// bytes (or a RESET when `abort`), and is removed once closed. A half-open one (the
    /// peer sent nothing after its SYN) is reset too: a forged SYN's address never acks a
    /// FIN, whose retries would hold the slot for minutes.
    pub fn release(&mut self, key: usize, abort: bool, now: u64) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        e.released = true;
        if abort || e.conn.is_half_open() {
            self.abort(key, now);
        } else {
            e.conn.close();
        }
        self.reap(key);
    }

    fn reap(&mut self, key: usize) {
        if self
            .conns
            .get(key)
            .is_some_and(|e| e.released && e.conn.is_closed())
        {
            let e = self.conns.remove(key);
            self.ids.remove(&(e.addr, e.conn.recv_id()));
        }
    }

    /// Applies every connection's timeouts; pushes the keys of those it touched to `woken`.
    pub fn on_tick(&mut self, now: u64, woken: &mut Vec<usize>) {
        let mut done = Vec::new();
        for (key, e) in self.conns.iter_mut() {
            if e.conn.next_deadline().is_some_and(|d| d <= now) {
                e.conn.on_tick(now);
                woken.push(key);
            }
            if e.released && e.conn.is_closed() {
                done.push(key);
            }
        }
        for key in done {
            self.reap(key);
        }
    }

    /// The earliest deadline of any connection (µs).
    pub fn next_deadline(&self) -> Option<u64> {
        self.conns
            .iter()
            .filter_map(|(_, e)| e.conn.next_deadline())
            .min()
    }

    /// Writes the next datagram to send into `out` and returns where to; `None` when no
    /// connection has anything to send now. Connections take turns.
    pub fn poll_transmit(&mut self, now: u64, out: &mut Vec<u8>) -> Option<SocketAddr> {
        if let Some((to, h)) = self.resets.pop_front() {
            out.clear();
            h.encode(out);
            return Some(to);
        }
        let cap = self.conns.capacity();
        for i in 0..cap {
            let key = (self.cursor + i) % cap.max(1);
            if let Some(e) = self.conns.get_mut(key) {
                if e.conn.poll_transmit(now, out) {
                    let to = e.addr;
                    self.cursor = key + 1;
                    return Some(to);
                }
            }
        }
        let released_closed: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, e)| e.released && e.conn.is_closed())
            .map(|(k, _)| k)
            .collect();
        for key in released_closed {
            self.reap(key);
        }
        None
    }
}
