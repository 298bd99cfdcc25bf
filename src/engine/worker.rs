//! Worker threads: one `tokio-uring` runtime per core, each accepting on its own
//! `SO_REUSEPORT` listener and running the connections it accepted until shutdown.

use std::cell::RefCell;
use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::watch;

use super::stats::{CoreStats, EngineStats};
use super::{peer, EngineConfig, TorrentSet};
use crate::protocol::PeerId;

/// Tells every worker to stop: close the listeners and every connection.
#[derive(Clone)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(Arc::new(watch::channel(false).0))
    }
}

impl Shutdown {
    /// A shutdown switch, off.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Stops the engine.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// What a core's tasks share (one per core, never crosses threads).
pub(super) struct CoreContext {
    pub core: usize,
    pub config: Arc<EngineConfig>,
    pub torrents: Arc<TorrentSet>,
    pub stats: Arc<EngineStats>,
    pub peer_id: PeerId,
    pub listen_port: u16,
    /// Open connections over all cores (checked on accept only).
    pub open: Arc<AtomicUsize>,
    /// Request arrival to block written, microseconds.
    pub latency: RefCell<Histogram<u64>>,
}

impl CoreContext {
    pub fn counters(&self) -> &CoreStats {
        self.stats.core(self.core)
    }
}

/// Runs the engine on one thread per listener until `shutdown` is triggered. Blocks.
pub fn run(
    config: EngineConfig,
    torrents: Arc<TorrentSet>,
    listeners: Vec<TcpListener>,
    stats: Arc<EngineStats>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let config = Arc::new(config);
    let open = Arc::new(AtomicUsize::new(0));
    let peer_id = PeerId::generate(&mut rand::thread_rng());
    let mut threads = Vec::new();
    for (core, listener) in listeners.into_iter().enumerate() {
        let listen_port = listener.local_addr()?.port();
        let (config, torrents, stats, open) = (
            config.clone(),
            torrents.clone(),
            stats.clone(),
            open.clone(),
        );
        let stop = shutdown.subscribe();
        let handle = std::thread::Builder::new()
            .name(format!("seedbox-core-{core}"))
            .spawn(move || {
                let latency = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
                let ctx = CoreContext {
                    core,
                    config,
                    torrents,
                    stats,
                    peer_id,
                    listen_port,
                    open,
                    latency: RefCell::new(latency),
                };
                tokio_uring::start(core_main(listener, std::rc::Rc::new(ctx), stop))
            })?;
        threads.push(handle);
    }
    for t in threads {
        if let Err(e) = t.join() {
            std::panic::resume_unwind(e);
        }
    }
    Ok(())
}

async fn core_main(
    listener: TcpListener,
    ctx: std::rc::Rc<CoreContext>,
    mut stop: watch::Receiver<bool>,
) {
    let listener = tokio_uring::net::TcpListener::from_std(listener);
    let publisher = tokio_uring::spawn(publish_latency(ctx.clone()));
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    CoreStats::add(&ctx.counters().accepted, 1);
                    let limit = ctx.config.max_peers;
                    if ctx.open.fetch_add(1, Ordering::Relaxed) >= limit {
                        ctx.open.fetch_sub(1, Ordering::Relaxed);
                        tracing::debug!(%addr, "refused: {limit} peers already connected");
                        drop(stream);
                        continue;
                    }
                    let ctx = ctx.clone();
                    tokio_uring::spawn(async move {
                        peer::serve(stream, addr, &ctx).await;
                        ctx.open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => {}
        }
    }
    publisher.abort();
    publish_now(&ctx);
}

async fn publish_latency(ctx: std::rc::Rc<CoreContext>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        publish_now(&ctx);
    }
}

fn publish_now(ctx: &CoreContext) {
    let h = ctx.latency.borrow().clone();
    *ctx.counters()
        .latency
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(h);
}
