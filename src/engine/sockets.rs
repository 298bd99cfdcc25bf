//! The sockets of one core's live connections, so that exit can shut them all down.
//!
//! tokio-uring frees an operation's buffer when its runtime drops, even while the kernel may
//! still write into it (tokio-uring#328: glibc's "corrupted double-linked list" at the end of
//! a 512-connection `bench load`). Before a runtime drops, every receive in flight must
//! therefore complete, and shutdown(2) completes them. Peers in the middle of their handshake
//! are in no session yet, so the sessions cannot reach them: this registry can, since a
//! connection registers its socket as soon as it has one.

use std::cell::RefCell;
use std::collections::HashSet;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

/// The registered sockets of one core (or one download).
#[derive(Debug, Default)]
pub struct OpenSockets(RefCell<HashSet<RawFd>>);

impl OpenSockets {
    /// Registers `fd` until the returned guard is dropped. Declare the guard after the stream
    /// that owns `fd`, so that it is dropped, and the descriptor forgotten, before the stream
    /// closes it.
    pub fn register(self: &Rc<Self>, fd: RawFd) -> SocketGuard {
        self.0.borrow_mut().insert(fd);
        SocketGuard {
            sockets: self.clone(),
            fd,
        }
    }

    /// Shuts every registered socket down both ways: its pending receives complete (with end
    /// of file) and its sends fail, so each connection ends on its own.
    pub fn shutdown_all(&self) {
        for &fd in self.0.borrow().iter() {
            // SAFETY: `fd` is an open socket of a live connection (it leaves the set before
            // its stream is dropped); shutdown(2) does not close it.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }

    /// Shuts every registered socket down ([`OpenSockets::shutdown_all`]) and waits, `limit`
    /// at most, until their connections have ended and unregistered them: what `seed` and
    /// `get` do before their runtimes drop.
    pub async fn end_all(&self, limit: Duration) {
        self.shutdown_all();
        super::worker::wait_until(|| self.is_empty(), limit).await;
    }

    /// Whether no socket is registered (every connection has ended).
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// Sockets registered.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

/// Keeps a socket registered while it lives.
#[derive(Debug)]
pub struct SocketGuard {
    sockets: Rc<OpenSockets>,
    fd: RawFd,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.sockets.0.borrow_mut().remove(&self.fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn shutdown_all_ends_the_reads_of_registered_sockets_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut a = std::net::TcpStream::connect(addr).unwrap();
        let mut b = std::net::TcpStream::connect(addr).unwrap();
        let _peers: Vec<_> = (0..2).map(|_| listener.accept().unwrap()).collect();
        let sockets = Rc::new(OpenSockets::default());
        let guard = sockets.register(a.as_raw_fd());
        assert_eq!(sockets.len(), 1);
        sockets.shutdown_all();
        // A shut-down socket reads end of file at once, though its peer sent nothing.
        assert_eq!(a.read(&mut [0u8; 16]).unwrap(), 0);
        // An unregistered one is untouched: its read would still block.
        b.set_nonblocking(true).unwrap();
        let e = b.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        drop(guard);
        assert!(sockets.is_empty());
    }
}
