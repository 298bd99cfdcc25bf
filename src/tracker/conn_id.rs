//! Stateless UDP connection ids (BEP 15).
//!
//! A connection id is the first 8 bytes of HMAC-SHA256(key, client address ‖ time window),
//! with a key drawn at random when the tracker starts. The tracker keeps no per-client state:
//! an id is accepted when it matches the current or the previous window, so it lives between
//! one and two windows. A client cannot forge one for an address it cannot receive at.

use std::net::SocketAddr;
use std::time::Duration;

use ring::hmac;

/// The default window: ids live 2 to 4 minutes (BEP 15 clients reuse one for 1 minute).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(120);

/// Issues and checks connection ids.
#[derive(Clone)]
pub struct ConnectionIds {
    key: hmac::Key,
    window: Duration,
}

impl std::fmt::Debug for ConnectionIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionIds")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl ConnectionIds {
    /// With the given secret key and window (tests pass a fixed key; the server a random one).
    pub fn new(key: &[u8; 32], window: Duration) -> Self {
        ConnectionIds {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            window: window.max(Duration::from_secs(1)),
        }
    }

    /// With a random key from the operating system's generator.
    pub fn random(window: Duration) -> Self {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut key[..]);
        Self::new(&key, window)
    }

    fn window_of(&self, now: Duration) -> u64 {
        now.as_secs() / self.window.as_secs()
    }

    fn id_for(&self, addr: SocketAddr, window: u64) -> u64 {
        let mut msg = [0u8; 16 + 2 + 8];
        match addr {
            SocketAddr::V4(a) => msg[12..16].copy_from_slice(&a.ip().octets()),
            SocketAddr::V6(a) => msg[..16].copy_from_slice(&a.ip().octets()),
        }
        msg[16..18].copy_from_slice(&addr.port().to_be_bytes());
        msg[18..].copy_from_slice(&window.to_be_bytes());
        let tag = hmac::sign(&self.key, &msg);
        u64::from_be_bytes(tag.as_ref()[..8].try_into().expect("8 bytes"))
    }

    /// The id for `addr` at time `now` (time since any fixed origin).
    pub fn issue(&self, addr: SocketAddr, now: Duration) -> u64 {
        self.id_for(addr, self.window_of(now))
    }

    /// Whether `id` was issued to `addr` in the current or the previous window.
    pub fn check(&self, id: u64, addr: SocketAddr, now: Duration) -> bool {
        let w = self.window_of(now);
        id == self.id_for(addr, w) || (w > 0 && id == self.id_for(addr, w - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> ConnectionIds {
        ConnectionIds::new(&[7; 32], Duration::from_secs(60))
    }

    #[test]
    fn accepts_current_and_previous_window_only() {
        let c = ids();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let id = c.issue(a, Duration::from_secs(100));
        assert!(c.check(id, a, Duration::from_secs(100)));
        assert!(c.check(id, a, Duration::from_secs(179)));
        assert!(!c.check(id, a, Duration::from_secs(180)));
        assert!(!c.check(id, a, Duration::from_secs(59)));
    }

    #[test]
    fn bound_to_address_and_key() {
        let c = ids();
        let now = Duration::from_secs(1000);
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        let id = c.issue(a, now);
        assert!(!c.check(id, b, now));
        assert!(!c.check(id, v6, now));
        assert!(!c.check(id ^ 1, a, now));
        let other = ConnectionIds::new(&[8; 32], Duration::from_secs(60));
        assert!(!other.check(id, a, now));
    }
}
