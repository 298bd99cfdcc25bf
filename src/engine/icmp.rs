//! ICMP errors on the uTP socket (Linux `IP_RECVERR`): a uTP SYN to a port where nothing
//! listens draws an ICMP port unreachable, which an unconnected UDP socket drops unless asked.
//! With `IP_RECVERR` the next receive fails with the error and the socket's error queue holds
//! where the refused datagram went, so a connect fails at once instead of after its SYN
//! retries (7 s), as a TCP connect to a closed port does.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

/// Error-queue entries read per call, at most (the queue is bounded by the socket's receive
/// buffer; what is left is read on the next error).
const MAX_PER_DRAIN: usize = 256;

/// Asks the kernel to report ICMP errors on `udp` (IPv4, and IPv6 on an IPv6 socket).
pub(super) fn enable(udp: &std::net::UdpSocket) -> io::Result<()> {
    let fd = udp.as_raw_fd();
    if udp.local_addr()?.is_ipv6() {
        set_on(fd, libc::SOL_IPV6, libc::IPV6_RECVERR)?;
        // A dual-stack socket's IPv4 peers: best effort (an IPv6-only socket refuses it).
        let _ = set_on(fd, libc::SOL_IP, libc::IP_RECVERR);
        Ok(())
    } else {
        set_on(fd, libc::SOL_IP, libc::IP_RECVERR)
    }
}

fn set_on(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on an open descriptor with an int option value.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads the error queue of `fd` without blocking and calls `refused` with the destination
/// of each datagram an ICMP port unreachable answered (other errors are dropped).
pub(super) fn drain_refused(fd: RawFd, mut refused: impl FnMut(SocketAddr)) {
    for _ in 0..MAX_PER_DRAIN {
        match read_error(fd) {
            Some(Some(addr)) => refused(addr),
            Some(None) => {}
            None => return,
        }
    }
}

/// One error-queue entry: `None` when the queue is empty, `Some(None)` for an entry that is
/// not a port unreachable.
fn read_error(fd: RawFd) -> Option<Option<SocketAddr>> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut payload = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    let mut control = [0u64; 64];
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: recvmsg with buffers that live through the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    if !is_port_unreachable(&msg) {
        return Some(None);
    }
    Some(socket_addr(&name))
}

/// Whether the entry's extended error is ECONNREFUSED (ICMP or ICMPv6 port unreachable).
fn is_port_unreachable(msg: &libc::msghdr) -> bool {
    // SAFETY: the CMSG_* walk stays within the control buffer recvmsg filled in.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
            if (level == libc::SOL_IP && kind == libc::IP_RECVERR)
                || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR)
            {
                let err: libc::sock_extended_err =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return err.ee_errno == libc::ECONNREFUSED as u32;
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    false
}

fn socket_addr(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let p: *const libc::sockaddr_storage = name;
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*p.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*p.cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}
