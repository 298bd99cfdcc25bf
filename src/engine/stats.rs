//! Statistics: each core counts into its own cache line (relaxed atomics written by one thread
//! only), readers sum over cores. The request-to-send latency histogram is kept per core and
//! published about once a second, off the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

/// One core's counters.
#[repr(align(128))]
pub struct CoreStats {
    /// Bytes written to peers (all messages).
    pub bytes_sent: AtomicU64,
    /// Blocks sent.
    pub blocks_sent: AtomicU64,
    /// Socket writes (`writev` or zero-copy sends) that carried them and the messages.
    pub writes: AtomicU64,
    /// Connections open now.
    pub peers: AtomicU64,
    /// Connections accepted so far.
    pub accepted: AtomicU64,
    /// Peers dropped for misbehaviour (bad handshake, bad request, flood, stalled reader).
    pub dropped: AtomicU64,
    /// Requests rejected (queue full, choked, bad piece).
    pub rejected: AtomicU64,
    /// Requests refused because their piece failed its hash (`--skip-check`).
    pub bad_pieces: AtomicU64,
    /// Request arrival to block written, microseconds; published by the core.
    pub latency: Mutex<Option<Histogram<u64>>>,
}

impl CoreStats {
    fn new() -> Self {
        CoreStats {
            bytes_sent: AtomicU64::new(0),
            blocks_sent: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            peers: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            bad_pieces: AtomicU64::new(0),
            latency: Mutex::new(None),
        }
    }

    /// Adds `n` to a counter of this core (only this core writes it: a plain load and store
    /// would do, `fetch_add` relaxed compiles to the same on x86 without contention).
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Counters of every core.
pub struct EngineStats {
    cores: Vec<CoreStats>,
}

/// A sum over cores at one moment.
#[derive(Clone, Debug, Default)]
pub struct StatsSnapshot {
    /// Bytes written to peers.
    pub bytes_sent: u64,
    /// Blocks sent.
    pub blocks_sent: u64,
    /// Socket writes.
    pub writes: u64,
    /// Open connections.
    pub peers: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Peers dropped for misbehaviour.
    pub dropped: u64,
    /// Requests rejected.
    pub rejected: u64,
    /// Requests refused for a piece that failed its hash.
    pub bad_pieces: u64,
    /// Request-to-send latency (microseconds), merged over cores.
    pub latency: Option<Histogram<u64>>,
}

impl EngineStats {
    /// Counters for `cores` cores (per-torrent counters live with each torrent:
    /// [`SeedTorrent::counters`](super::SeedTorrent::counters)).
    pub fn new(cores: usize) -> Self {
        EngineStats {
            cores: (0..cores).map(|_| CoreStats::new()).collect(),
        }
    }

    /// Core `i`'s counters.
    pub fn core(&self, i: usize) -> &CoreStats {
        &self.cores[i]
    }

    /// Every core's counters, in core order.
    pub fn cores(&self) -> &[CoreStats] {
        &self.cores
    }

    /// Sums every core.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut s = StatsSnapshot::default();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for c in &self.cores {
            s.bytes_sent += load(&c.bytes_sent);
            s.blocks_sent += load(&c.blocks_sent);
            s.writes += load(&c.writes);
            s.peers += load(&c.peers);
            s.accepted += load(&c.accepted);
            s.dropped += load(&c.dropped);
            s.rejected += load(&c.rejected);
            s.bad_pieces += load(&c.bad_pieces);
            let h = c.latency.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = h.as_ref() {
                match &mut s.latency {
                    Some(total) => {
                        let _ = total.add(h);
                    }
                    None => s.latency = Some(h.clone()),
                }
            }
        }
        s
    }
}

impl StatsSnapshot {
    /// One line: totals and, when known, latency percentiles.
    pub fn summary(&self, since: Option<(&StatsSnapshot, f64)>) -> String {
        let mut line = format!(
            "peers {} (accepted {}, dropped {}), sent {} blocks, {} bytes in {} writes, rejected {}",
            self.peers,
            self.accepted,
            self.dropped,
            self.blocks_sent,
            self.bytes_sent,
            self.writes,
            self.rejected
        );
        if self.bad_pieces > 0 {
            line.push_str(&format!(
                ", refused {} requests of bad pieces",
                self.bad_pieces
            ));
        }
        if let Some((prev, secs)) = since {
            if secs > 0.0 {
                let rate = (self.bytes_sent.saturating_sub(prev.bytes_sent)) as f64 * 8.0 / secs;
                line.push_str(&format!(", upload {:.3} Gbit/s", rate / 1e9));
            }
        }
        if let Some(h) = &self.latency {
            if !h.is_empty() {
                line.push_str(&format!(
                    ", request->sent us p50 {} p99 {} p99.9 {} max {}",
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.99),
                    h.value_at_quantile(0.999),
                    h.max()
                ));
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_cores() {
        let s = EngineStats::new(2);
        CoreStats::add(&s.core(0).bytes_sent, 10);
        CoreStats::add(&s.core(1).bytes_sent, 5);
        CoreStats::add(&s.core(0).writes, 2);
        CoreStats::add(&s.core(1).writes, 1);
        let mut h = Histogram::<u64>::new(3).unwrap();
        h.record(100).unwrap();
        *s.core(0).latency.lock().unwrap() = Some(h.clone());
        h.record(300).unwrap();
        *s.core(1).latency.lock().unwrap() = Some(h);
        let snap = s.snapshot();
        assert_eq!(snap.bytes_sent, 15);
        assert_eq!(snap.latency.as_ref().unwrap().len(), 3);
        assert_eq!(snap.writes, 3);
        assert!(snap.summary(None).contains("15 bytes in 3 writes"));
        assert!(snap.summary(None).contains("p50"));
    }
}
