//! Listening sockets: one per core on one port (`SO_REUSEPORT`), and the descriptor limit.
//!
//! `SO_REUSEPORT` lets any process of the same user join a port's group, so a second seedbox
//! started on the same ports would silently share them. Every group bound here is therefore
//! private to this process: before binding a fixed port, [`PortClaim`] takes a per-address
//! lock shared by all seedbox processes (an abstract Unix socket name, which the kernel frees
//! when the process dies) and probe-binds the port *without* `SO_REUSEPORT`, which fails when
//! any socket, another seedbox's group included, holds it. The group is bound while the lock
//! is held, so two seedboxes starting at the same instant cannot both pass the probe.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `count` listeners on `addr` with `SO_REUSEPORT`, so the kernel spreads incoming
/// connections over them. With port 0 the first bind picks the port and the others reuse it.
/// A fixed port held by any other socket, another seedbox's included, is `AddrInUse`.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let _claim = PortClaim::take(Transport::Tcp, addr)?;
    let mut listeners = Vec::with_capacity(count.max(1));
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let l = bind_one(addr)?;
        addr = l.local_addr()?;
        listeners.push(l);
    }
    Ok(listeners)
}

/// Binds `count` UDP sockets on `addr` with `SO_REUSEPORT` (port 0: the first picks it), each
/// with a receive queue of `recv_buffer` bytes (best effort); the kernel hashes a sender's
/// address to one of them. Private to this process like [`bind_reuseport`]. No
/// `SO_REUSEADDR`: on UDP it would let any other socket with it share the port.
pub fn bind_reuseport_udp(
    addr: SocketAddr,
    count: usize,
    recv_buffer: usize,
) -> io::Result<Vec<UdpSocket>> {
    let _claim = PortClaim::take(Transport::Udp, addr)?;
    let mut out = Vec::with_capacity(count.max(1));
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_port(true)?;
        let _ = s.set_recv_buffer_size(recv_buffer);
        s.bind(&addr.into())?;
        let s: UdpSocket = s.into();
        addr = s.local_addr()?;
        out.push(s);
    }
    Ok(out)
}

/// The two transports a port belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP port.
    Tcp,
    /// A UDP port.
    Udp,
}

/// Proof that a fixed port was free of every other socket a moment ago, held while this
/// process binds its `SO_REUSEPORT` group there (see the module docs).
#[derive(Debug)]
pub struct PortClaim {
    _lock: Option<OwnedFd>,
}

impl PortClaim {
    /// Locks `addr` against other seedbox processes and probe-binds it. Port 0 needs no
    /// claim: the kernel never hands a reuseport group's port out again.
    pub fn take(transport: Transport, addr: SocketAddr) -> io::Result<PortClaim> {
        if addr.port() == 0 {
            return Ok(PortClaim { _lock: None });
        }
        let lock = lock_name(transport, addr)?;
        let (ty, proto) = match transport {
            Transport::Tcp => (Type::STREAM, Protocol::TCP),
            Transport::Udp => (Type::DGRAM, Protocol::UDP),
        };
        let probe = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
        // TCP: SO_REUSEADDR so that the connections of a previous run in TIME_WAIT do not
        // count; it still conflicts with any bound listener. UDP: no option at all.
        if transport == Transport::Tcp {
            probe.set_reuse_address(true)?;
        }
        probe.bind(&addr.into())?;
        drop(probe);
        Ok(PortClaim { _lock: Some(lock) })
    }
}

/// Binds the abstract Unix socket name `seedbox-port/{tcp,udp}/ADDR`: a lock between seedbox
/// processes of one network namespace that the kernel releases when its holder exits.
fn lock_name(transport: Transport, addr: SocketAddr) -> io::Result<OwnedFd> {
    let proto = match transport {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    };
    let name = format!("seedbox-port/{proto}/{addr}");
    let sock = Socket::new(Domain::UNIX, Type::DGRAM, None)?;
    let sa = socket2::SockAddr::unix(format!("\0{name}"))
        .map_err(|e| io::Error::new(e.kind(), format!("lock name {name}: {e}")))?;
    match sock.bind(&sa) {
        Ok(()) => Ok(sock.into()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "Address already in use (another seedbox is binding it)",
        )),
        Err(e) => Err(e),
    }
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: setsockopt with a valid descriptor and an int option.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes.
    let rc = unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: listen(2) on our bound socket.
    if unsafe { libc::listen(fd, 4096) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpListener::from(owned))
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all zeros is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (thousands of peers need thousands of
/// descriptors). Returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(lim.rlim_cur as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gives_every_listener_the_same_port() {
        let ls = bind_reuseport("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let port = ls[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        for l in &ls {
            assert_eq!(l.local_addr().unwrap().port(), port);
        }
        // A connection to the port is accepted by one of them.
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    }

    #[test]
    fn a_bound_group_cannot_be_joined_by_a_second_bind() {
        let ls = bind_reuseport("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let taken = ls[0].local_addr().unwrap();
        let e = bind_reuseport(taken, 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let us = bind_reuseport_udp("127.0.0.1:0".parse().unwrap(), 2, 1 << 16).unwrap();
        let taken = us[0].local_addr().unwrap();
        let e = bind_reuseport_udp(taken, 2, 1 << 16).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        // A plain socket with SO_REUSEADDR cannot join the UDP group either.
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        s.set_reuse_address(true).unwrap();
        assert!(s.bind(&taken.into()).is_err());
    }

    #[test]
    fn a_fixed_free_port_binds_the_whole_group() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let ls = bind_reuseport(addr, 3).unwrap();
        assert_eq!(ls.len(), 3);
        let us = bind_reuseport_udp(addr, 3, 1 << 16).unwrap();
        assert_eq!(us.len(), 3);
        // The lock was released: once the groups close, the port binds again.
        drop((ls, us));
        assert!(bind_reuseport(addr, 1).is_ok());
    }

    #[test]
    fn ipv6_loopback_binds() {
        let ls = bind_reuseport("[::1]:0".parse().unwrap(), 2).unwrap();
        assert_eq!(
            ls[0].local_addr().unwrap().port(),
            ls[1].local_addr().unwrap().port()
        );
    }

    #[test]
    fn raising_the_limit_never_lowers_it() {
        let n = raise_nofile_limit().unwrap();
        assert!(n >= 1024);
    }
}
