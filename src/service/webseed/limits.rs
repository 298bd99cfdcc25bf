//! Per-client limits of the web seed, sans-IO (the caller passes `now`): an upload rate per
//! client IP (`--web-seed-rate`; HTTP clients bypass the choker, so this is what keeps one
//! client from taking the whole uplink) and a connection count per IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::swarm::TokenBucket;

/// Most connections one client IP may hold at once.
pub const CONNECTIONS_PER_IP: usize = 8;

/// Idle clients are forgotten once this many are known (a bound on memory).
const MAX_CLIENTS: usize = 4096;

/// A client with no connection idle this long has a full bucket again.
const IDLE: Duration = Duration::from_secs(1);

struct Client {
    bucket: Option<TokenBucket>,
    connections: usize,
    last: Duration,
}

/// The web seed's per-IP state.
pub struct ClientLimits {
    rate: Option<u64>,
    clients: HashMap<IpAddr, Client>,
}

impl ClientLimits {
    /// Limits with an upload rate per IP in bytes per second (`None`: unlimited).
    pub fn new(rate: Option<u64>) -> Self {
        ClientLimits {
            rate,
            clients: HashMap::new(),
        }
    }

    /// The burst one IP may send at once: a quarter second of its rate, 16 KiB to 4 MiB.
    pub fn burst(&self) -> Option<u64> {
        self.rate.map(|r| (r / 4).clamp(16 * 1024, 4 << 20))
    }

    /// A new connection from `ip` at `now`: false when it already holds
    /// [`CONNECTIONS_PER_IP`].
    pub fn connect(&mut self, ip: IpAddr, now: Duration) -> bool {
        if self.clients.len() >= MAX_CLIENTS && !self.clients.contains_key(&ip) {
            // Forget clients with no connection idle for a second: their bucket (a quarter
            // second of the rate) has refilled, so nothing is lost.
            self.clients
                .retain(|_, c| c.connections > 0 || now.saturating_sub(c.last) < IDLE);
        }
        let (rate, burst) = (self.rate, self.burst());
        let c = self.clients.entry(ip).or_insert_with(|| Client {
            bucket: rate.map(|r| TokenBucket::new(r, burst.unwrap_or(r), now)),
            connections: 0,
            last: now,
        });
        if c.connections >= CONNECTIONS_PER_IP {
            return false;
        }
        c.connections += 1;
        c.last = now;
        true
    }

    /// A connection from `ip` closed.
    pub fn disconnect(&mut self, ip: IpAddr) {
        if let Some(c) = self.clients.get_mut(&ip) {
            c.connections = c.connections.saturating_sub(1);
        }
    }

    /// `ip` wants to send up to `want` bytes at `now`: how many it may send now (at least 1
    /// when the answer is `Ok`), or how long to wait before asking again.
    pub fn take(&mut self, ip: IpAddr, want: u64, now: Duration) -> Result<u64, Duration> {
        let Some(c) = self.clients.get_mut(&ip) else {
            return Ok(want);
        };
        c.last = now;
        let Some(bucket) = &mut c.bucket else {
            return Ok(want);
        };
        let n = bucket.available(now).min(want);
        if n == 0 {
            return Err(bucket
                .wait_for(want.min(16 * 1024), now)
                .max(Duration::from_millis(1)));
        }
        bucket.try_take(n, now);
        Ok(n)
    }

    /// Client IPs remembered.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn unlimited_lets_everything_through() {
        let mut l = ClientLimits::new(None);
        assert!(l.connect(A, secs(0.0)));
        assert_eq!(l.take(A, 1 << 30, secs(0.0)), Ok(1 << 30));
    }

    #[test]
    fn one_ip_gets_its_rate_and_another_ip_its_own() {
        let rate = 1_000_000;
        let mut l = ClientLimits::new(Some(rate));
        assert!(l.connect(A, secs(0.0)) && l.connect(B, secs(0.0)));
        // Over 10 simulated seconds, A sends about 10 s of its rate plus one burst.
        let mut sent = 0u64;
        let mut t = secs(0.0);
        while t < secs(10.0) {
            match l.take(A, 64 * 1024, t) {
                Ok(n) => sent += n,
                Err(wait) => t += wait,
            }
        }
        let burst = l.burst().unwrap();
        assert!(
            sent >= 10 * rate && sent <= 10 * rate + burst + 64 * 1024,
            "{sent}"
        );
        // B was not slowed by A.
        assert_eq!(l.take(B, burst, t), Ok(burst));
    }

    #[test]
    fn connections_per_ip_are_capped() {
        let mut l = ClientLimits::new(None);
        for _ in 0..CONNECTIONS_PER_IP {
            assert!(l.connect(A, secs(0.0)));
        }
        assert!(!l.connect(A, secs(0.0)));
        assert!(l.connect(B, secs(0.0)));
        l.disconnect(A);
        assert!(l.connect(A, secs(0.0)));
    }

    #[test]
    fn idle_clients_are_forgotten_past_the_bound() {
        let mut l = ClientLimits::new(Some(1_000_000));
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
            assert!(l.connect(ip, secs(f64::from(i) * 0.01)));
            l.disconnect(ip);
        }
        assert!(l.clients() <= MAX_CLIENTS + 1, "{}", l.clients());
    }
}
