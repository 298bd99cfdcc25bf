//! The web seed's I/O edge: a listener on a thread of its own (a current-thread tokio
//! runtime, never a worker core), one task per connection reading request heads with
//! [`parse_request`] and writing file bytes straight from the torrent's mappings (`write`
//! copies them in the kernel: a file truncated meanwhile fails the write with `EFAULT`, it
//! never raises SIGBUS). Keep-alive and pipelined requests are served in order.
//!
//! Limits: a fixed number of connections, [`CONNECTIONS_PER_IP`] per client IP, an upload rate
//! per IP ([`ClientLimits`]), a deadline for each request head and each write, and an idle
//! timeout between requests. A bad request gets its 4xx and the connection is closed; every
//! other connection keeps being served.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use super::http::{parse_request, refusal_reply, reply_head, resolve_range, Parsed, Refusal};
use super::limits::{ClientLimits, CONNECTIONS_PER_IP};
use super::{resolve_file, WebSeedCatalog};
use crate::engine::{PieceState, SeedTorrent};
use crate::service::server_thread::ServerThread;

/// Bytes written per step of a body (between rate-limit checks).
const CHUNK: u64 = 1 << 20;

/// How long a refused connection is given to read its reply before it is closed.
const LINGER: Duration = Duration::from_secs(2);

/// How the web seed runs.
#[derive(Clone, Debug)]
pub struct WebSeedConfig {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Upload rate per client IP, bytes per second (`None`: unlimited).
    pub rate: Option<u64>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time for a request head to arrive whole, from its first byte.
    pub request_timeout: Duration,
    /// Time a kept-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// How long one write may stall (a client that does not read).
    pub send_timeout: Duration,
}

impl WebSeedConfig {
    /// Defaults for `addr` and `rate`.
    pub fn new(addr: SocketAddr, rate: Option<u64>) -> Self {
        WebSeedConfig {
            addr,
            rate,
            max_connections: 512,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
        }
    }
}

/// What the web seed did, for the exit summary and tests.
#[derive(Debug, Default)]
pub struct WebSeedStats {
    /// Requests answered with file bytes (200 or 206, HEAD included).
    pub served: AtomicU64,
    /// Requests refused with a 4xx or 5xx.
    pub refused: AtomicU64,
    /// Body bytes written.
    pub bytes: AtomicU64,
}

/// A running web seed; dropping it stops it.
pub struct WebSeedServer {
    local_addr: SocketAddr,
    stats: Arc<WebSeedStats>,
    _thread: ServerThread,
}

struct Context {
    config: WebSeedConfig,
    catalog: Arc<dyn WebSeedCatalog>,
    limits: Mutex<ClientLimits>,
    stats: Arc<WebSeedStats>,
    started: Instant,
}

impl Context {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn limits(&self) -> std::sync::MutexGuard<'_, ClientLimits> {
        self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WebSeedServer {
    /// Binds `config.addr` (before the torrents are loaded, so that their `url-list` can name
    /// the port chosen for port 0).
    pub fn bind(config: &WebSeedConfig) -> std::io::Result<TcpListener> {
        TcpListener::bind(config.addr)
    }

    /// Serves the catalogue's torrents on `listener` (from [`WebSeedServer::bind`]), on a
    /// thread of its own.
    pub fn start(
        listener: TcpListener,
        config: WebSeedConfig,
        catalog: Arc<dyn WebSeedCatalog>,
    ) -> std::io::Result<WebSeedServer> {
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let stats = Arc::new(WebSeedStats::default());
        let ctx = Arc::new(Context {
            limits: Mutex::new(ClientLimits::new(config.rate)),
            config,
            catalog,
            stats: stats.clone(),
            started: Instant::now(),
        });
        let thread =
            ServerThread::spawn("seedbox-webseed", "seedbox-webseed-hash", 2, |stopped| {
                serve(listener, ctx, stopped)
            })?;
        tracing::info!(addr = %local_addr, "web seed at http://{local_addr}/");
        Ok(WebSeedServer {
            local_addr,
            stats,
            _thread: thread,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What it served and refused so far.
    pub fn stats(&self) -> &Arc<WebSeedStats> {
        &self.stats
    }

    /// Stops accepting, drops open connections and waits for the thread (as dropping it
    /// does: its [`ServerThread`] stops on drop).
    pub fn stop(self) {}
}

async fn serve(listener: TcpListener, ctx: Arc<Context>, mut stopped: oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("web seed: {e}");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(ctx.config.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("web seed: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => return,
        };
        let _ = stream.set_nodelay(true);
        let permit = slots.clone().try_acquire_owned();
        let admitted = permit.is_ok() && ctx.limits().connect(peer.ip(), ctx.now());
        if !admitted {
            let why = if permit.is_ok() {
                format!("more than {CONNECTIONS_PER_IP} connections from one address")
            } else {
                "too many web seed connections; retry shortly".to_string()
            };
            ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(refuse(stream, Refusal::new(503, why)));
            continue;
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            connection(stream, peer, &ctx).await;
            ctx.limits().disconnect(peer.ip());
            drop(permit);
        });
    }
}

/// Serves one connection until the client closes, asks to close, is refused or times out.
async fn connection(mut stream: TcpStream, peer: SocketAddr, ctx: &Context) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 8 * 1024];
    loop {
        let mut deadline = (!buf.is_empty()).then(|| Instant::now() + ctx.config.request_timeout);
        let request = loop {
            match parse_request(&buf) {
                Ok(Parsed::Complete(req, used)) => {
                    buf.drain(..used);
                    break req;
                }
                Ok(Parsed::Partial) => {}
                Err(e) => {
                    tracing::debug!(%peer, "web seed request refused: {e}");
                    ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
                    refuse(stream, e).await;
                    return;
                }
            }
            let until = deadline.unwrap_or_else(|| Instant::now() + ctx.config.idle_timeout);
            match tokio::time::timeout_at(until, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    deadline.get_or_insert_with(|| Instant::now() + ctx.config.request_timeout);
                }
                Err(_) if deadline.is_some() => {
                    ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
                    refuse(stream, Refusal::new(408, "request not received in time")).await;
                    return;
                }
                Err(_) => return,
            }
        };
        let plan = match plan(ctx, &request.components, request.range).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%peer, path = ?request.components, "web seed request refused: {e}");
                ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
                refuse(stream, e).await;
                return;
            }
        };
        ctx.stats.served.fetch_add(1, Ordering::Relaxed);
        let head = reply_head(
            plan.start,
            plan.end,
            plan.file_length,
            request.range.is_some(),
            request.close,
        );
        if !write(&mut stream, &head, ctx).await {
            return;
        }
        if !request.head_only && !send_body(&mut stream, peer, &plan, ctx).await {
            return;
        }
        if request.close {
            let _ = tokio::time::timeout(LINGER, stream.shutdown()).await;
            return;
        }
    }
}

/// What a request will be sent: bytes `start..end` of a file of `file_length` bytes starting
/// at content offset `file_offset` of `seed`.
struct Plan {
    seed: Arc<SeedTorrent>,
    file_offset: u64,
    file_length: u64,
    start: u64,
    end: u64,
}

/// Resolves a request to the bytes to send, and makes sure every piece they touch is known
/// good (hashing those not checked yet, with `--skip-check`, on the blocking pool): no byte
/// of a bad piece is ever served.
async fn plan(
    ctx: &Context,
    components: &[String],
    range: Option<super::ByteRange>,
) -> Result<Plan, Refusal> {
    let name = components.first().map(String::as_str).unwrap_or("");
    let seed = ctx
        .catalog
        .find(name)
        .ok_or_else(|| Refusal::new(404, format!("no torrent named {name:?} is served here")))?;
    if seed.torrent.private {
        // BEP 27: a private torrent's data is for its tracker's peers only, never published.
        return Err(Refusal::new(
            403,
            format!("{name} is a private torrent: not served over HTTP"),
        ));
    }
    let (file_offset, file_length) = resolve_file(&seed.torrent, components)?;
    let (start, end) = resolve_range(range, file_length)?;
    let plan = Plan {
        seed,
        file_offset,
        file_length,
        start,
        end,
    };
    if plan.end > plan.start {
        let g = plan.seed.geometry;
        let pl = u64::from(g.piece_length());
        let first = ((file_offset + start) / pl) as u32;
        let last = ((file_offset + end - 1) / pl) as u32;
        for piece in first..=last {
            let state = match plan.seed.piece_state(piece) {
                PieceState::Unknown => {
                    let seed = plan.seed.clone();
                    tokio::task::spawn_blocking(move || seed.verify_piece(piece))
                        .await
                        .unwrap_or(PieceState::Bad)
                }
                s => s,
            };
            if state == PieceState::Bad {
                return Err(Refusal::new(
                    503,
                    format!("piece {piece} of {} fails its hash: not served", name),
                ));
            }
        }
    }
    if plan.seed.is_stopped() {
        return Err(Refusal::new(503, format!("{name} is stopped")));
    }
    Ok(plan)
}

/// Writes the body of `plan` from the mappings, within the client's rate. False when the
/// connection is to be closed.
async fn send_body(stream: &mut TcpStream, peer: SocketAddr, plan: &Plan, ctx: &Context) -> bool {
    let mut offset = plan.file_offset + plan.start;
    let end = plan.file_offset + plan.end;
    let mut parts = Vec::new();
    while offset < end {
        let want = (end - offset).min(CHUNK);
        let n = loop {
            let taken = ctx.limits().take(peer.ip(), want, ctx.now());
            match taken {
                Ok(n) => break n,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        };
        if plan.seed.is_stopped() {
            tracing::debug!(%peer, "web seed: {} stopped while sending", plan.seed.torrent.name);
            return false;
        }
        parts.clear();
        if !plan.seed.storage.range_parts(offset, n, &mut parts) {
            tracing::warn!(%peer, "web seed: bytes {offset}..{} of {} not on disk", offset + n, plan.seed.torrent.name);
            return false;
        }
        for part in &parts {
            if !write(stream, part, ctx).await {
                return false;
            }
        }
        offset += n;
        ctx.stats.bytes.fetch_add(n, Ordering::Relaxed);
    }
    true
}

async fn write(stream: &mut TcpStream, bytes: &[u8], ctx: &Context) -> bool {
    matches!(
        tokio::time::timeout(ctx.config.send_timeout, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Sends a refusal, then reads and discards what the client still sends for a moment, so
/// that closing does not reset the connection before the client has read the reply.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let reply = refusal_reply(&refusal);
    let written = tokio::time::timeout(LINGER, stream.write_all(&reply)).await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(LINGER, stream.shutdown()).await;
    let mut sink = [0u8; 8 * 1024];
    let until = Instant::now() + LINGER;
    let mut drained = 0usize;
    while drained < 1 << 20 {
        match tokio::time::timeout_at(until, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}
