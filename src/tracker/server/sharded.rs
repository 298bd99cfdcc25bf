//! The swarm registry shared by every core: `N` independently locked [`Registry`] shards,
//! chosen by info-hash, so announces for different swarms rarely contend for one lock.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::metainfo::InfoHash;
use crate::tracker::announce::{AnnounceRequest, AnnounceResponse, ScrapeStats};
use crate::tracker::registry::{Refusal, Registry, RegistryConfig};

/// A registry split into shards by info-hash. The whitelist is checked here, once, so the
/// shards do not each hold a copy of it.
#[derive(Debug)]
pub struct ShardedRegistry {
    shards: Box<[Mutex<Registry>]>,
    whitelist: Option<HashSet<InfoHash>>,
}

impl ShardedRegistry {
    /// `shards` registries (at least one), each with `config`.
    pub fn new(config: &RegistryConfig, shards: usize) -> Self {
        let shard_config = RegistryConfig {
            whitelist: None,
            ..config.clone()
        };
        ShardedRegistry {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Registry::new(shard_config.clone())))
                .collect(),
            whitelist: config.whitelist.clone(),
        }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn index(&self, h: &InfoHash) -> usize {
        // Info-hashes are uniformly distributed: any 8 bytes make a fair key.
        let k = u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes"));
        (k % self.shards.len() as u64) as usize
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves the registry consistent enough to go on.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Registry::announce`] on the swarm's shard, with the thread's random generator.
    pub fn announce(
        &self,
        req: &AnnounceRequest,
        addr: SocketAddr,
        now: Duration,
        only_family: Option<bool>,
    ) -> Result<AnnounceResponse, Refusal> {
        if let Some(w) = &self.whitelist {
            if !w.contains(&req.info_hash) {
                return Err(Refusal::NotWhitelisted(req.info_hash));
            }
        }
        let mut rng = rand::thread_rng();
        self.lock(self.index(&req.info_hash))
            .announce(req, addr, now, &mut rng, only_family)
    }

    /// [`Registry::scrape`] of one swarm.
    pub fn scrape(&self, h: &InfoHash) -> ScrapeStats {
        self.lock(self.index(h)).scrape(h)
    }

    /// Every swarm's counts, at most `limit` of them.
    pub fn scrape_all(&self, limit: usize) -> Vec<(InfoHash, ScrapeStats)> {
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            if out.len() >= limit {
                break;
            }
            out.extend(self.lock(i).scrape_all());
        }
        out.truncate(limit);
        out
    }

    /// Expires silent peers in shard `i` (callers spread the shards over cores).
    pub fn expire_shard(&self, i: usize, now: Duration) -> usize {
        self.lock(i).expire(now)
    }

    /// Number of swarms with peers, over all shards.
    pub fn swarm_count(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.lock(i).swarm_count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PeerId;
    use crate::tracker::Event;

    fn req(h: u8, id: u8) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([h; 20]),
            peer_id: PeerId([id; 20]),
            port: 1000 + u16::from(id),
            uploaded: 0,
            downloaded: 0,
            left: 5,
            event: Event::Started,
            numwant: None,
            compact: true,
            no_peer_id: false,
            key: None,
            ip: None,
        }
    }

    #[test]
    fn swarms_are_kept_apart_across_shards() {
        let r = ShardedRegistry::new(&RegistryConfig::default(), 4);
        // Two peers per swarm, at two addresses (one address is one peer).
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        for h in 0..10u8 {
            r.announce(&req(h, 1), a, Duration::ZERO, None).unwrap();
        }
        for h in 0..10u8 {
            let resp = r.announce(&req(h, 2), b, Duration::ZERO, None).unwrap();
            assert_eq!(resp.peers.len(), 1, "swarm {h}");
            assert_eq!(resp.incomplete, Some(2));
        }
        assert_eq!(r.swarm_count(), 10);
        assert_eq!(r.scrape_all(usize::MAX).len(), 10);
        assert_eq!(r.scrape_all(3).len(), 3);
        assert_eq!(r.scrape(&InfoHash([3; 20])).incomplete, 2);
        let timeout = RegistryConfig::default().peer_timeout();
        let expired: usize = (0..r.shard_count())
            .map(|i| r.expire_shard(i, timeout + Duration::from_secs(1)))
            .sum();
        assert_eq!(expired, 20);
        assert_eq!(r.swarm_count(), 0);
    }

    #[test]
    fn whitelist_is_checked_before_the_shards() {
        let cfg = RegistryConfig {
            whitelist: Some([InfoHash([1; 20])].into_iter().collect()),
            ..RegistryConfig::default()
        };
        let r = ShardedRegistry::new(&cfg, 4);
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let e = r.announce(&req(2, 1), a, Duration::ZERO, None).unwrap_err();
        assert_eq!(e, Refusal::NotWhitelisted(InfoHash([2; 20])));
        assert!(r.announce(&req(1, 1), a, Duration::ZERO, None).is_ok());
        assert_eq!(r.swarm_count(), 1);
    }
}
