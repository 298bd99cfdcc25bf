//! The DHT on the peer port's UDP, which uTP's per-core `SO_REUSEPORT` sockets hold
//! ([`crate::engine::utp`]): the kernel hands each datagram to one core's socket (by a hash
//! of its sender), so a KRPC message may reach any core. A core only classifies it (a KRPC
//! message is a bencoded dictionary: `d`; a uTP header is `0x?1`) and hands it over through
//! a bounded channel ([`KrpcHandoff`]), dropping it when the channel is full; the
//! `mainline` node's thread takes it from there ([`SharedPort`], the crate's
//! [`mainline::Transport`]) and sends its replies and queries on a duplicate of one core's
//! socket: sent from the listen port, as a peer sees it in our handshake and announces, with
//! no socket added to the port's group (which would take a share of the uTP datagrams) and
//! nothing on the cores' loops.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::utp::DatagramHandoff;

/// KRPC datagrams waiting for the DHT's thread, at most; more are dropped.
pub const QUEUE: usize = 1024;
/// The largest KRPC datagram handed over (the crate reads into 2,048 bytes; real messages
/// are under 1,500).
pub const MAX_KRPC: usize = 2048;
/// How long a receive waits (the crate's own socket's read timeout).
const READ_TIMEOUT: Duration = Duration::from_millis(50);

type Datagram = (SocketAddrV4, Vec<u8>);

/// Whether a datagram that is not uTP may be a KRPC message: a bencoded dictionary that
/// fits the crate's buffer.
pub fn is_krpc(datagram: &[u8]) -> bool {
    datagram.first() == Some(&b'd') && datagram.len() <= MAX_KRPC
}

/// The IPv4 address of `addr` (IPv4-mapped on an IPv6 socket included); the crate speaks
/// IPv4 only.
fn v4(addr: SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(a) => a
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddrV4::new(ip, a.port())),
    }
}

/// The cores' side: hands the KRPC datagrams a core's uTP socket received to the DHT.
#[derive(Clone, Debug)]
pub struct KrpcHandoff {
    tx: flume::Sender<Datagram>,
    dropped: Arc<AtomicU64>,
}

impl KrpcHandoff {
    /// Queues `datagram` from `from` for the DHT if it may be KRPC; drops it when the queue
    /// is full (counted) or it is not. Never waits.
    pub fn hand_over(&self, from: SocketAddr, datagram: &[u8]) {
        if !is_krpc(datagram) {
            return;
        }
        let Some(from) = v4(from) else { return };
        // Checked first so that a flood costs no allocation; try_send decides.
        if self.tx.is_full() || self.tx.try_send((from, datagram.to_vec())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The hand-over as the engine's sink for the datagrams that are not uTP.
    pub fn into_sink(self) -> DatagramHandoff {
        Arc::new(move |from, datagram| self.hand_over(from, datagram))
    }
}

/// The DHT thread's side: receives what the cores handed over and sends on the listen port.
#[derive(Debug)]
pub struct SharedPort {
    rx: flume::Receiver<Datagram>,
    send: UdpSocket,
    local: SocketAddr,
    dropped: Arc<AtomicU64>,
}

impl SharedPort {
    /// The shared port for the group `udp` belongs to (one of uTP's sockets on the listen
    /// port; duplicated, not taken) and the cores' side of it.
    pub fn new(udp: &UdpSocket) -> io::Result<(Arc<SharedPort>, KrpcHandoff)> {
        let (tx, rx) = flume::bounded(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let port = SharedPort {
            rx,
            send: udp.try_clone()?,
            local: udp.local_addr()?,
            dropped: dropped.clone(),
        };
        Ok((Arc::new(port), KrpcHandoff { tx, dropped }))
    }

    /// The listen address (IPv4; an IPv6 wildcard is reported as the IPv4 one).
    pub fn local_v4(&self) -> SocketAddrV4 {
        v4(self.local).unwrap_or_else(|| {
            SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, self.local.port())
        })
    }

    /// KRPC datagrams dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl mainline::Transport for SharedPort {
    fn send_to(&self, datagram: &[u8], to: SocketAddrV4) -> io::Result<()> {
        let to = match self.local {
            SocketAddr::V4(_) => SocketAddr::V4(to),
            SocketAddr::V6(_) => SocketAddr::new(to.ip().to_ipv6_mapped().into(), to.port()),
        };
        // Never blocks the DHT's thread: a full send buffer drops the datagram, as the
        // network would.
        socket2::SockRef::from(&self.send)
            .send_to_with_flags(datagram, &to.into(), libc::MSG_DONTWAIT)
            .map(|_| ())
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self.rx.recv_timeout(READ_TIMEOUT) {
            Ok((from, datagram)) => {
                let n = datagram.len().min(buf.len());
                buf[..n].copy_from_slice(&datagram[..n]);
                Ok((n, SocketAddr::V4(from)))
            }
            Err(flume::RecvTimeoutError::Timeout) => Err(io::ErrorKind::WouldBlock.into()),
            Err(flume::RecvTimeoutError::Disconnected) => {
                // The engine stopped (its cores held the senders): wait as a socket would.
                std::thread::sleep(READ_TIMEOUT);
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.local_v4()))
    }
}

/// Reads the port's datagrams on a thread of its own until dropped, handing each to a sink:
/// for the time before the engine's cores read the socket. `get MAGNET` fetches the info
/// dictionary through the DHT before its download (and so its uTP driver) starts, and the
/// DHT's replies arrive on the listen port. uTP datagrams that arrive meanwhile are dropped
/// by the sink, as any peer's SYN to a port without uTP would be; the peer retries or uses TCP.
#[derive(Debug)]
pub struct EarlyReader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EarlyReader {
    /// Starts reading a duplicate of `udp` (the socket itself is left as it is: blocking, no
    /// timeout), handing every datagram to `sink`.
    pub fn start(udp: &UdpSocket, sink: DatagramHandoff) -> io::Result<EarlyReader> {
        let udp = udp.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("seedbox-early-udp".into())
            .spawn(move || {
                let mut buf = vec![0u8; MAX_KRPC];
                while !stopping.load(Ordering::Relaxed) {
                    if !readable(&udp, READ_TIMEOUT) {
                        continue;
                    }
                    // Readable, and this thread is the socket's only reader: no wait.
                    if let Ok((n, from)) = udp.recv_from(&mut buf) {
                        sink(from, &buf[..n]);
                    }
                }
            })?;
        Ok(EarlyReader {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EarlyReader {
    /// Stops the thread and waits for it (within [`READ_TIMEOUT`]), so that the cores are
    /// the socket's only readers from then on.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether `udp` has a datagram to read within `timeout` (poll(2): the socket's own mode and
/// timeouts, which the engine relies on later, stay untouched).
fn readable(udp: &UdpSocket, timeout: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: udp.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    n > 0 && fd.revents & libc::POLLIN != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use mainline::Transport;

    #[test]
    fn krpc_is_a_dictionary_and_utp_is_not() {
        assert!(is_krpc(b"d1:ad2:id20:"));
        for utp in [0x01u8, 0x11, 0x21, 0x31, 0x41] {
            assert!(!is_krpc(&[utp, 1, 0, 0]));
        }
        assert!(!is_krpc(b""));
        assert!(!is_krpc(b"l4:spame"));
        let mut big = b"d".to_vec();
        big.resize(MAX_KRPC + 1, b'x');
        assert!(!is_krpc(&big));
    }

    #[test]
    fn handed_over_datagrams_reach_the_node_and_a_full_queue_drops() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (port, handoff) = SharedPort::new(&udp).unwrap();
        let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        handoff.hand_over(from, b"\x01junk");
        handoff.hand_over(from, b"d1:y1:qe");
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5000".parse().unwrap();
        handoff.hand_over(mapped, b"de");
        let mut buf = [0u8; MAX_KRPC];
        let (n, got) = port.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], got), (&b"d1:y1:qe"[..], from));
        let (n, got) = port.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], got),
            (&b"de"[..], "10.0.0.1:5000".parse().unwrap())
        );
        let e = port.recv_from(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        for _ in 0..QUEUE + 10 {
            handoff.hand_over(from, b"de");
        }
        assert_eq!(port.dropped(), 10);
    }

    #[test]
    fn sends_leave_from_the_shared_socket() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (port, _handoff) = SharedPort::new(&udp).unwrap();
        assert_eq!(SocketAddr::V4(port.local_v4()), udp.local_addr().unwrap());
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(to) = peer.local_addr().unwrap() else {
            unreachable!()
        };
        port.send_to(b"d1:y1:re", to).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"d1:y1:re"[..], udp.local_addr().unwrap())
        );
    }

    #[test]
    fn the_early_reader_hands_datagrams_over_until_dropped() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = udp.local_addr().unwrap();
        let (port, handoff) = SharedPort::new(&udp).unwrap();
        let reader = EarlyReader::start(&udp, handoff.into_sink()).unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"\x01\x00utp", to).unwrap();
        peer.send_to(b"d1:y1:qe", to).unwrap();
        let mut buf = [0u8; MAX_KRPC];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let got = loop {
            match port.recv_from(&mut buf) {
                Ok((n, from)) => break (buf[..n].to_vec(), from),
                Err(_) if std::time::Instant::now() < deadline => continue,
                Err(e) => panic!("nothing handed over: {e}"),
            }
        };
        assert_eq!(got, (b"d1:y1:qe".to_vec(), peer.local_addr().unwrap()));
        drop(reader);
        // Stopped: the next datagram stays on the socket for its next reader.
        peer.send_to(b"d1:y1:re", to).unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (n, _) = udp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"d1:y1:re");
        assert!(port.recv_from(&mut buf).is_err());
    }
}
