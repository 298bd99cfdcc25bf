//! Dialling a peer over TCP and uTP: a staggered race, as happy eyeballs (RFC 8305) does for
//! IPv6 and IPv4. One transport is tried first; the other joins after [`HEAD_START`] without
//! an answer, or at once when the first fails; the first transport that connects is kept and
//! the other attempt dropped (a uTP attempt still waiting is reset).
//!
//! TCP goes first, unless the caller saw this peer's last TCP connection end before the
//! BitTorrent handshake: a peer with TCP switched off in its settings (libtorrent's
//! `enable_incoming_tcp`) still accepts the TCP connection and closes it at once, so only
//! the handshake tells. The download then dials it uTP first (`utp_first`).
//!
//! Why TCP first: a peer that speaks both (libtorrent, Transmission and qBittorrent by
//! default, `seedbox seed`) then gets the transport that moves bulk data fastest on a fast
//! path (bench-results/utp.md), which is what a downloading user waits for. A peer that
//! speaks only uTP costs a refused TCP connect or the head start, or one closed TCP
//! connection and a retry 1 s later, not the ~4 s per connection libtorrent loses. A closed
//! port fails both at once: the TCP connect is refused, and the ICMP port unreachable that
//! answers the uTP SYN ends that attempt too ([`super::icmp`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

use super::transport::PeerTransport;
use super::utp::UtpDriver;

/// How long the first transport has alone before the other is tried as well.
pub const HEAD_START: Duration = Duration::from_millis(500);

/// Connects to `addr` within `timeout`: TCP only without `utp`, else the staggered race,
/// uTP first when `utp_first`.
pub(crate) async fn dial(
    addr: SocketAddr,
    utp: Option<&Rc<UtpDriver>>,
    utp_first: bool,
    timeout: Duration,
) -> io::Result<PeerTransport> {
    let tcp = async { tokio_uring::net::TcpStream::connect(addr).await };
    let result = match utp {
        None => tokio::time::timeout(timeout, tcp)
            .await
            .map(|r| r.map(PeerTransport::Tcp)),
        Some(driver) => {
            let first_failed = Notify::new();
            let second = async {
                tokio::select! {
                    _ = tokio::time::sleep(HEAD_START) => {}
                    _ = first_failed.notified() => {}
                }
            };
            let utp = async { driver.connect(addr, timeout).await };
            let race = async {
                if utp_first {
                    let utp = noting_failure(utp, &first_failed);
                    first_ok(
                        async {
                            second.await;
                            tcp.await
                        },
                        utp,
                    )
                    .await
                } else {
                    let tcp = noting_failure(tcp, &first_failed);
                    first_ok(tcp, async {
                        second.await;
                        utp.await
                    })
                    .await
                }
            };
            tokio::time::timeout(timeout, race).await
        }
    };
    result.unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer from {addr} in {timeout:?}"),
        ))
    })
}

/// `attempt`, notifying `failed` when it fails.
async fn noting_failure<T>(
    attempt: impl Future<Output = io::Result<T>>,
    failed: &Notify,
) -> io::Result<T> {
    let r = attempt.await;
    if r.is_err() {
        failed.notify_one();
    }
    r
}

/// The first of the two attempts that succeeds; both errors (TCP's first) when neither does.
async fn first_ok(
    tcp: impl Future<Output = io::Result<tokio_uring::net::TcpStream>>,
    utp: impl Future<Output = io::Result<super::utp::UtpStream>>,
) -> io::Result<PeerTransport> {
    tokio::pin!(tcp, utp);
    let (mut tcp_err, mut utp_err) = (None, None);
    loop {
        tokio::select! {
            r = &mut tcp, if tcp_err.is_none() => match r {
                Ok(s) => return Ok(PeerTransport::Tcp(s)),
                Err(e) => tcp_err = Some(e),
            },
            r = &mut utp, if utp_err.is_none() => match r {
                Ok(s) => return Ok(PeerTransport::Utp(s)),
                Err(e) => utp_err = Some(e),
            },
        }
        if let (Some(t), Some(u)) = (&tcp_err, &utp_err) {
            return Err(io::Error::new(t.kind(), format!("TCP: {t}; uTP: {u}")));
        }
    }
}
