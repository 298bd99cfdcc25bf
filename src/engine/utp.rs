//! uTP on one core: the core's UDP socket on the peer port (`SO_REUSEPORT` per core, like the
//! TCP listener: the kernel hashes a sender's address to one socket, so all of a peer's
//! packets reach the core that holds its connection), driving the sans-IO
//! [`crate::protocol::utp::UtpSocket`] with three tasks: a receiver, a sender and a timer.
//! Each connection is a [`UtpStream`], a byte stream the peer code runs over.
//!
//! **Sharing the socket (the DHT hook).** Datagrams that are not uTP (a BEP 5 DHT message
//! is a bencoded dictionary and starts with `d`; a uTP header byte is `0x?1`) go to the sink
//! set with [`UtpDriver::set_datagram_sink`] (the engine sets each core's to the
//! [`DatagramHandoff`] it is given: the DHT's, [`crate::dht::port`]);
//! [`UtpDriver::send_datagram`] sends one on the same socket. Without a sink they are
//! dropped.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::Notify;

use crate::protocol::utp::{CloseReason, Received, SocketConfig, State, UtpSocket};

/// Largest datagram received (peers probing the MTU on loopback send more than 1,400).
const MAX_DATAGRAM: usize = 64 * 1024;
/// How often retransmission timers are checked (while the socket holds a connection).
const TICK: Duration = Duration::from_millis(20);
/// Datagrams of the socket's other user queued for sending, at most.
const MAX_RAW_QUEUE: usize = 1024;
/// Incoming connections not yet taken by the accept loop, at most.
const MAX_ACCEPT_QUEUE: usize = 256;

/// Receives the datagrams that are not uTP.
pub type DatagramSink = Box<dyn FnMut(SocketAddr, &[u8])>;

/// Receives the datagrams that are not uTP from every core: called on the core's thread, so
/// it must return at once (classify, queue or drop).
pub type DatagramHandoff = std::sync::Arc<dyn Fn(SocketAddr, &[u8]) + Send + Sync>;

/// One core's uTP socket and connections.
pub struct UtpDriver {
    socket: RefCell<UtpSocket>,
    udp: tokio_uring::net::UdpSocket,
    epoch: Instant,
    wakers: RefCell<HashMap<usize, Rc<Notify>>>,
    transmit: Notify,
    /// Wakes the timer task, which sleeps while the socket holds no connection.
    tick_wake: Notify,
    incoming: RefCell<VecDeque<usize>>,
    accept_wake: Notify,
    raw: RefCell<VecDeque<(SocketAddr, Vec<u8>)>>,
    sink: RefCell<Option<DatagramSink>>,
    stopped: Cell<bool>,
    receiving: Cell<bool>,
    local: SocketAddr,
}

impl UtpDriver {
    /// Takes over `udp` (bound, one of the port's reuseport group) and starts its tasks on
    /// the current tokio-uring runtime.
    pub fn start(udp: std::net::UdpSocket, cfg: SocketConfig, seed: u64) -> Rc<UtpDriver> {
        let local = udp
            .local_addr()
            .unwrap_or_else(|_| (std::net::Ipv4Addr::LOCALHOST, 0).into());
        if let Err(e) = super::icmp::enable(&udp) {
            tracing::debug!("uTP socket: ICMP errors not received: {e}");
        }
        let d = Rc::new(UtpDriver {
            local,
            socket: RefCell::new(UtpSocket::new(cfg, seed)),
            udp: tokio_uring::net::UdpSocket::from_std(udp),
            epoch: Instant::now(),
            wakers: RefCell::new(HashMap::new()),
            transmit: Notify::new(),
            tick_wake: Notify::new(),
            incoming: RefCell::new(VecDeque::new()),
            accept_wake: Notify::new(),
            raw: RefCell::new(VecDeque::new()),
            sink: RefCell::new(None),
            stopped: Cell::new(false),
            receiving: Cell::new(true),
        });
        tokio_uring::spawn(d.clone().receive_loop());
        tokio_uring::spawn(d.clone().send_loop());
        tokio_uring::spawn(d.clone().tick_loop());
        d
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Hands every datagram that is not uTP to `sink` (the DHT's hook).
    pub fn set_datagram_sink(&self, sink: DatagramSink) {
        *self.sink.borrow_mut() = Some(sink);
    }

    /// Sends a datagram of the socket's other user; `false` when the queue is full.
    pub fn send_datagram(&self, to: SocketAddr, datagram: Vec<u8>) -> bool {
        let mut raw = self.raw.borrow_mut();
        if raw.len() >= MAX_RAW_QUEUE {
            return false;
        }
        raw.push_back((to, datagram));
        self.transmit.notify_one();
        true
    }

    /// Connections held.
    pub fn connections(&self) -> usize {
        self.socket.borrow().len()
    }

    fn wake(&self, key: usize) {
        if let Some(w) = self.wakers.borrow().get(&key) {
            w.notify_waiters();
        }
    }

    fn wake_all(&self) {
        for w in self.wakers.borrow().values() {
            w.notify_waiters();
        }
    }

    async fn receive_loop(self: Rc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.stopped.get() {
            let (result, back) = self.udp.recv_from(buf).await;
            buf = back;
            let (n, from) = match result {
                Ok(r) => r,
                Err(e) => {
                    if self.stopped.get() {
                        break;
                    }
                    tracing::debug!("uTP receive: {e}");
                    // An ICMP error (IP_RECVERR) is reported here: read the error queue.
                    self.on_icmp_errors();
                    continue;
                }
            };
            if self.stopped.get() {
                break;
            }
            trace_packet("in", from, &buf[..n]);
            let received = self
                .socket
                .borrow_mut()
                .on_datagram(from, &buf[..n], self.now_us());
            if !matches!(received, Received::NotUtp) {
                self.tick_wake.notify_one();
            }
            match received {
                Received::Connection(key) => {
                    self.wake(key);
                    self.transmit.notify_one();
                }
                Received::Accepted { key, evicted } => {
                    if let Some(old) = evicted {
                        // Reset to make room: its reads fail, its task ends and releases it.
                        self.wake(old);
                    }
                    let mut incoming = self.incoming.borrow_mut();
                    if incoming.len() >= MAX_ACCEPT_QUEUE {
                        drop(incoming);
                        self.socket.borrow_mut().release(key, true, self.now_us());
                    } else {
                        incoming.push_back(key);
                        self.wakers.borrow_mut().insert(key, Rc::new(Notify::new()));
                        self.accept_wake.notify_one();
                    }
                    self.transmit.notify_one();
                }
                Received::NotUtp => {
                    if let Some(sink) = self.sink.borrow_mut().as_mut() {
                        sink(from, &buf[..n]);
                    }
                }
                Received::Dropped => self.transmit.notify_one(),
            }
        }
        self.receiving.set(false);
    }

    /// Ends the connects that an ICMP port unreachable answered (see [`super::icmp`]).
    fn on_icmp_errors(&self) {
        let mut refused = Vec::new();
        super::icmp::drain_refused(self.udp.as_raw_fd(), |addr| refused.push(addr));
        let mut woken = Vec::new();
        {
            let mut socket = self.socket.borrow_mut();
            for addr in refused {
                socket.on_unreachable(addr, &mut woken);
            }
        }
        for key in woken {
            self.wake(key);
        }
    }

    async fn send_loop(self: Rc<Self>) {
        let mut out = Vec::with_capacity(2048);
        loop {
            if self.stopped.get() {
                return;
            }
            let raw = self.raw.borrow_mut().pop_front();
            let next = match raw {
                Some((to, datagram)) => Some((to, datagram)),
                None => {
                    let to = self
                        .socket
                        .borrow_mut()
                        .poll_transmit(self.now_us(), &mut out);
                    to.map(|to| (to, std::mem::replace(&mut out, Vec::with_capacity(2048))))
                }
            };
            match next {
                Some((to, datagram)) => {
                    trace_packet("out", to, &datagram);
                    let (result, back) = self.udp.send_to(datagram, to).await;
                    if let Err(e) = result {
                        tracing::debug!(%to, "uTP send: {e}");
                    }
                    out = back;
                }
                None => {
                    // Packets left the send buffers: writers may go on.
                    self.wake_all();
                    self.transmit.notified().await;
                }
            }
        }
    }

    async fn tick_loop(self: Rc<Self>) {
        let mut woken = Vec::new();
        while !self.stopped.get() {
            // No connection, no timer to run: an idle core does not wake 50 times a second.
            if self.socket.borrow().is_empty() {
                self.tick_wake.notified().await;
                continue;
            }
            tokio::time::sleep(TICK).await;
            woken.clear();
            self.socket.borrow_mut().on_tick(self.now_us(), &mut woken);
            for &k in &woken {
                self.wake(k);
                if tracing::enabled!(tracing::Level::TRACE) {
                    if let Some(c) = self.socket.borrow_mut().connection(k) {
                        tracing::trace!(key = k, "uTP timeout: {}", c.summary());
                    }
                }
            }
            if !woken.is_empty() {
                self.transmit.notify_one();
            }
        }
    }

    /// The next incoming connection; `None` once stopped.
    pub async fn accept(self: &Rc<Self>) -> Option<(UtpStream, SocketAddr)> {
        loop {
            if self.stopped.get() {
                return None;
            }
            let next = self.incoming.borrow_mut().pop_front();
            if let Some(key) = next {
                let Some(addr) = self.socket.borrow().peer_addr(key) else {
                    continue;
                };
                return Some((self.stream(key), addr));
            }
            self.accept_wake.notified().await;
        }
    }

    fn stream(self: &Rc<Self>, key: usize) -> UtpStream {
        let wake = self
            .wakers
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| Rc::new(Notify::new()))
            .clone();
        UtpStream {
            driver: self.clone(),
            key,
            wake,
        }
    }

    /// Opens a connection to `to` and waits, `timeout` at most, for its answer.
    pub async fn connect(
        self: &Rc<Self>,
        to: SocketAddr,
        timeout: Duration,
    ) -> io::Result<UtpStream> {
        let key = self
            .socket
            .borrow_mut()
            .connect(to, self.now_us())
            .map_err(|e| io::Error::other(e.to_string()))?;
        let stream = self.stream(key);
        self.transmit.notify_one();
        self.tick_wake.notify_one();
        let wait = async {
            loop {
                let notified = stream.wake.notified();
                match stream.state()? {
                    State::Connected => return Ok(()),
                    State::SynSent => notified.await,
                    State::Closed(r) => return Err(closed_error(r)),
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no uTP answer (SYN unanswered)",
            )),
        }
    }

    /// Stops the tasks and ends every stream (their reads and writes fail), then waits for
    /// the receive in flight to complete (shutdown(2) completes it) before the runtime drops.
    pub async fn stop(&self) {
        self.stopped.set(true);
        self.wake_all();
        self.tick_wake.notify_one();
        self.accept_wake.notify_one();
        self.transmit.notify_one();
        // The receive in flight must complete before the runtime drops (tokio-uring frees its
        // buffer), and shutdown(2) would complete it without a source address, which
        // tokio-uring 0.5 cannot handle. So send it a datagram: each from a new source port,
        // since the kernel hashes the sender to one socket of the group.
        let mut target = self.local;
        if target.ip().is_unspecified() {
            target.set_ip(match target {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let any: SocketAddr = match target {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        for _ in 0..200 {
            if !self.receiving.get() {
                break;
            }
            if let Ok(s) = std::net::UdpSocket::bind(any) {
                let _ = s.send_to(b"\0wake", target);
            }
            super::worker::wait_until(|| !self.receiving.get(), Duration::from_millis(10)).await;
        }
    }
}

/// Logs a packet's header at trace level (`seedbox::engine::utp=trace`).
fn trace_packet(dir: &str, addr: SocketAddr, datagram: &[u8]) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    if let Ok((h, payload)) = crate::protocol::utp::Header::decode(datagram) {
        tracing::trace!(
            dir, %addr, kind = ?h.kind, id = h.connection_id, seq = h.seq_nr, ack = h.ack_nr,
            wnd = h.wnd_size, sack = h.sack.is_some(), len = payload.len(), "uTP packet"
        );
    }
}

fn closed_error(reason: CloseReason) -> io::Error {
    match reason {
        CloseReason::Finished => io::Error::new(io::ErrorKind::UnexpectedEof, "uTP closed"),
        CloseReason::Reset => io::Error::new(io::ErrorKind::ConnectionReset, "uTP reset"),
        CloseReason::TimedOut => io::Error::new(io::ErrorKind::TimedOut, "uTP timed out"),
        CloseReason::Unreachable => io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "uTP refused (ICMP port unreachable)",
        ),
    }
}

/// One uTP connection as a byte stream. Dropping it closes the connection (FIN after the
/// queued bytes; a connect still unanswered is reset).
pub struct UtpStream {
    driver: Rc<UtpDriver>,
    key: usize,
    wake: Rc<Notify>,
}

impl std::fmt::Debug for UtpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UtpStream({})", self.key)
    }
}

impl UtpStream {
    fn state(&self) -> io::Result<State> {
        if self.driver.stopped.get() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "engine stopped",
            ));
        }
        let mut s = self.driver.socket.borrow_mut();
        s.connection(self.key)
            .map(|c| c.state())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "uTP connection gone"))
    }

    /// Reads into `buf`'s spare capacity; 0 at the end of the peer's stream.
    pub async fn read_into(&self, mut buf: BytesMut) -> (io::Result<usize>, BytesMut) {
        loop {
            let notified = self.wake.notified();
            if let Err(e) = self.state() {
                return (Err(e), buf);
            }
            {
                let mut s = self.driver.socket.borrow_mut();
                let c = s.connection(self.key).expect("state checked");
                let spare = buf.capacity() - buf.len();
                if c.readable() > 0 && spare > 0 {
                    let start = buf.len();
                    let n = spare.min(c.readable());
                    buf.resize(start + n, 0);
                    let n = c.read(&mut buf[start..]);
                    buf.truncate(start + n);
                    drop(s);
                    self.driver.transmit.notify_one();
                    return (Ok(n), buf);
                }
                if c.is_eof() {
                    return (Ok(0), buf);
                }
                if let State::Closed(r) = c.state() {
                    return (Err(closed_error(r)), buf);
                }
            }
            notified.await;
        }
    }

    /// Ends a packet after the bytes written so far ([`crate::protocol::utp::Connection::end_packet`]).
    pub fn end_packet(&self) {
        if let Some(c) = self.driver.socket.borrow_mut().connection(self.key) {
            c.end_packet();
        }
    }

    /// Queues all of `data` for sending, waiting for room in the send buffer.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        loop {
            let notified = self.wake.notified();
            if let State::Closed(r) = self.state()? {
                return Err(closed_error(r));
            }
            let n = {
                let mut s = self.driver.socket.borrow_mut();
                s.connection(self.key).expect("state checked").write(data)
            };
            if n > 0 {
                self.driver.transmit.notify_one();
            }
            data = &data[n..];
            if data.is_empty() {
                return Ok(());
            }
            notified.await;
        }
    }
}

impl Drop for UtpStream {
    fn drop(&mut self) {
        let now = self.driver.now_us();
        let mut socket = self.driver.socket.borrow_mut();
        // A connect given up (another transport won the race, or it timed out) has nothing
        // to flush: reset it rather than keep repeating its SYN.
        let abort = socket
            .connection(self.key)
            .is_some_and(|c| c.state() == State::SynSent);
        socket.release(self.key, abort, now);
        drop(socket);
        self.driver.wakers.borrow_mut().remove(&self.key);
        self.driver.transmit.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_utp_connect_to_a_closed_udp_port_is_refused_by_the_icmp_error() {
        // A port nothing listens on: bound, then closed. Loopback answers with ICMP port
        // unreachable; without reading it, the connect would time out after its SYN retries.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tokio_uring::start(async {
            let driver = UtpDriver::start(udp, SocketConfig::default(), 1);
            let result = driver.connect(closed, Duration::from_secs(30)).await;
            driver.stop().await;
            let err = result.expect_err("nothing listens there");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        });
    }
}
