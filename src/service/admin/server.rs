//! The admin server's I/O edge: a listener on its own thread (a current-thread tokio runtime,
//! never a worker core), one task per connection reading requests with
//! [`parse_request`](super::http::parse_request) and answering them with the
//! [`Router`](super::api::Router), the backend called on a small blocking pool.
//!
//! Limits: a fixed number of connections (more are answered `503` and closed), a deadline for
//! each request to arrive whole once it has started (and for its reply to be written), an idle
//! timeout between keep-alive requests, and the head and body sizes of [`Limits`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use super::api::Router;
use super::auth::Token;
use super::backend::AdminBackend;
use super::http::{parse_request, Limits, Method, Parsed, Response, CONTINUE};
use crate::service::server_thread::ServerThread;

/// How long a refused connection is drained before it is closed.
const LINGER: Duration = Duration::from_secs(2);

/// How the admin server runs.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bearer token requests must carry; required unless `addr` is loopback.
    pub token: Option<Token>,
    /// Request size limits.
    pub limits: Limits,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time for a request to arrive whole, from its first byte.
    pub request_timeout: Duration,
    /// Time a kept-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
}

impl AdminConfig {
    /// Defaults for `addr` and `token`.
    pub fn new(addr: SocketAddr, token: Option<Token>) -> Self {
        AdminConfig {
            addr,
            token,
            limits: Limits::default(),
            max_connections: 32,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Why the admin server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A non-loopback address without a token.
    #[error("refusing to serve the admin API on {0} without a token: it is not a loopback address (give --admin-token-file, or bind 127.0.0.1)")]
    TokenRequired(SocketAddr),
    /// The address cannot be bound.
    #[error("cannot listen for the admin API on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The runtime or thread could not be created.
    #[error("cannot start the admin server: {0}")]
    Runtime(std::io::Error),
}

/// Parses the value of `--admin`: `ADDR:PORT`, or just `PORT` (or `:PORT`) for loopback
/// (`127.0.0.1`).
pub fn parse_admin_addr(s: &str) -> Result<SocketAddr, String> {
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!("`{s}` is not ADDR:PORT or PORT (e.g. 127.0.0.1:9090, [::1]:9090 or 9090)")
    })
}

/// A running admin server; dropping it stops it.
pub struct AdminServer {
    local_addr: SocketAddr,
    _thread: ServerThread,
}

impl AdminServer {
    /// Binds `config.addr` and serves on a thread of its own. Refuses a non-loopback address
    /// without a token.
    pub fn start(
        config: AdminConfig,
        backend: Arc<dyn AdminBackend>,
    ) -> Result<AdminServer, StartError> {
        if config.token.is_none() && !config.addr.ip().is_loopback() {
            return Err(StartError::TokenRequired(config.addr));
        }
        let bind = |source| StartError::Bind {
            addr: config.addr,
            source,
        };
        let listener = TcpListener::bind(config.addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let local_addr = listener.local_addr().map_err(bind)?;
        let config = Arc::new(config);
        let thread = ServerThread::spawn("seedbox-admin", "seedbox-admin-call", 4, |stopped| {
            serve(listener, config, backend, stopped)
        })
        .map_err(StartError::Runtime)?;
        tracing::info!(addr = %local_addr, "admin API, metrics and status page at http://{local_addr}/");
        Ok(AdminServer {
            local_addr,
            _thread: thread,
        })
    }

    /// The address it listens on (with the port the system chose, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, drops open connections and waits for the thread (as dropping it
    /// does: its [`ServerThread`] stops on drop).
    pub fn stop(self) {}
}

async fn serve(
    listener: TcpListener,
    config: Arc<AdminConfig>,
    backend: Arc<dyn AdminBackend>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("admin server: {e}");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("admin server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => return,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "admin server: connection refused, {} open", config.max_connections);
            tokio::spawn(async move {
                let mut r = Response::error(503, "too many admin connections; retry shortly");
                r.close = true;
                refuse(stream, &r, LINGER).await;
            });
            continue;
        };
        let (config, backend) = (config.clone(), backend.clone());
        tokio::spawn(async move {
            connection(stream, peer, &config, backend).await;
            drop(permit);
        });
    }
}

/// Serves one connection until the client closes, asks to close, is refused or times out.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: &AdminConfig,
    backend: Arc<dyn AdminBackend>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // The request clock starts with its first byte; before that, the idle one runs.
        let mut deadline = (!buf.is_empty()).then(|| Instant::now() + config.request_timeout);
        let mut continued = false;
        let request = loop {
            match parse_request(&buf, config.limits) {
                Ok(Parsed::Complete(req, used)) => {
                    buf.drain(..used);
                    break req;
                }
                Ok(Parsed::Partial { continue_wanted }) => {
                    if continue_wanted && !continued {
                        continued = true;
                        let sent = tokio::time::timeout(LINGER, stream.write_all(CONTINUE)).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(%peer, "admin request refused: {e}");
                    refuse(stream, &Response::refused(e), LINGER).await;
                    return;
                }
            }
            let until = deadline.unwrap_or_else(|| Instant::now() + config.idle_timeout);
            match tokio::time::timeout_at(until, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    deadline.get_or_insert_with(|| Instant::now() + config.request_timeout);
                }
                Err(_) if deadline.is_some() => {
                    tracing::debug!(%peer, "admin request timed out");
                    let mut r = Response::error(408, "request not received in time");
                    r.close = true;
                    refuse(stream, &r, LINGER).await;
                    return;
                }
                Err(_) => return,
            }
        };
        let head_only = request.method == Method::Head;
        let backend = backend.clone();
        let token = config.token.clone();
        let answered = tokio::task::spawn_blocking(move || {
            let router = Router {
                backend: backend.as_ref(),
                token: token.as_ref(),
            };
            router.handle(&request)
        })
        .await;
        let reply = answered.unwrap_or_else(|e| {
            tracing::error!(%peer, "admin request handler failed: {e}");
            let mut r = Response::error(500, "internal error");
            r.close = true;
            r
        });
        let written = tokio::time::timeout(
            config.request_timeout,
            stream.write_all(&reply.encode(head_only)),
        )
        .await;
        if !matches!(written, Ok(Ok(()))) || reply.close {
            let _ = tokio::time::timeout(LINGER, stream.shutdown()).await;
            return;
        }
    }
}

/// Sends a final reply, then reads and discards what the client still sends for a moment, so
/// that closing does not reset the connection before the client has read the reply.
async fn refuse(mut stream: TcpStream, reply: &Response, linger: Duration) {
    let written = tokio::time::timeout(linger, stream.write_all(&reply.encode(false))).await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(linger, stream.shutdown()).await;
    let mut sink = [0u8; 16 * 1024];
    let until = Instant::now() + linger;
    let mut drained = 0usize;
    while drained < 16 << 20 {
        match tokio::time::timeout_at(until, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_addresses_parse() {
        let lo = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p);
        assert_eq!(parse_admin_addr("9090"), Ok(lo(9090)));
        assert_eq!(parse_admin_addr(":9090"), Ok(lo(9090)));
        assert_eq!(
            parse_admin_addr("0.0.0.0:80"),
            Ok("0.0.0.0:80".parse().unwrap())
        );
        assert_eq!(
            parse_admin_addr("[::1]:80"),
            Ok("[::1]:80".parse().unwrap())
        );
        assert!(parse_admin_addr("localhost")
            .unwrap_err()
            .contains("localhost"));
        assert!(parse_admin_addr("1.2.3.4").is_err());
        assert!(parse_admin_addr("99999").is_err());
    }
}
