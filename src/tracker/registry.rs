//! The swarm registry a tracker answers from, sans-IO: time (`now`, since any fixed origin)
//! and randomness are passed in.
//!
//! Per info-hash, seeds and leechers are kept in two vectors (O(1) insert, O(1) removal by
//! swap, O(numwant) random sampling) indexed by peer id. A peer never gets itself back; seeds
//! are not sent to seeds, except to fill the answer to a `started` announce with nothing
//! downloaded (aria2 fetching a magnet link announces `left=0` before it knows the size);
//! `stopped` removes at once; a peer silent for one and a half intervals expires; one ip:port
//! is one peer, whatever peer ids it announced with.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;

use crate::metainfo::InfoHash;
use crate::protocol::PeerId;

use super::announce::{AnnounceRequest, AnnounceResponse, Event, Peer, ScrapeStats};

/// Registry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// The announce interval given to clients, seconds.
    pub interval: u32,
    /// The minimum interval given to clients, seconds.
    pub min_interval: u32,
    /// Peers returned when the client does not say (`numwant` absent or negative in UDP).
    pub numwant_default: u32,
    /// The most peers returned to one announce.
    pub numwant_max: u32,
    /// When set, only these swarms are tracked; others get a failure.
    pub whitelist: Option<HashSet<InfoHash>>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            interval: 1800,
            min_interval: 900,
            numwant_default: 50,
            numwant_max: 200,
            whitelist: None,
        }
    }
}

impl RegistryConfig {
    /// How long a silent peer is kept: one and a half intervals (as opentracker: 45 minutes
    /// at the usual 30), plus a little slack for a late client. A peer that went away without
    /// `stopped` is handed out for at most that long.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval) * 3 / 2 + 30)
    }
}

/// Why an announce was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The swarm is not on the whitelist.
    #[error("info_hash {0} is not tracked here")]
    NotWhitelisted(InfoHash),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    peer_id: PeerId,
    addr: SocketAddr,
    last_seen: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    seed: bool,
    index: usize,
}

/// One swarm.
#[derive(Debug, Default)]
struct Swarm {
    slots: HashMap<PeerId, Slot>,
    /// Who holds each address: one ip:port is one peer, whatever peer ids it announced with.
    by_addr: HashMap<SocketAddr, PeerId>,
    seeds: Vec<Entry>,
    leechers: Vec<Entry>,
    downloaded: u32,
}

impl Swarm {
    fn list(&mut self, seed: bool) -> &mut Vec<Entry> {
        if seed {
            &mut self.seeds
        } else {
            &mut self.leechers
        }
    }

    fn remove(&mut self, peer_id: &PeerId) -> Option<(bool, Entry)> {
        let slot = self.slots.remove(peer_id)?;
        let list = self.list(slot.seed);
        let e = list.swap_remove(slot.index);
        let moved = list.get(slot.index).map(|m| m.peer_id);
        if let Some(id) = moved {
            if let Some(s) = self.slots.get_mut(&id) {
                s.index = slot.index;
            }
        }
        if self.by_addr.get(&e.addr) == Some(peer_id) {
            self.by_addr.remove(&e.addr);
        }
        Some((slot.seed, e))
    }

    /// Adds `e`; an entry of another peer id at the same address (a client restarted with a
    /// new id) is dropped, so the address is listed once.
    fn insert(&mut self, seed: bool, e: Entry) {
        // `remove` leaves the address alone: it now maps to the new id.
        if let Some(old) = self.by_addr.insert(e.addr, e.peer_id) {
            if old != e.peer_id {
                self.remove(&old);
            }
        }
        let list = self.list(seed);
        list.push(e);
        let index = list.len() - 1;
        self.slots.insert(e.peer_id, Slot { seed, index });
    }

    fn stats(&self) -> ScrapeStats {
        ScrapeStats {
            complete: self.seeds.len() as u32,
            downloaded: self.downloaded,
            incomplete: self.leechers.len() as u32,
        }
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Appends up to `n` entries of `list` to `out`, starting at a random offset and wrapping,
/// skipping the requester.
fn sample(
    list: &[Entry],
    n: usize,
    me: &PeerId,
    rng: &mut impl Rng,
    out: &mut Vec<Peer>,
    family_v4: Option<bool>,
) {
    if n == 0 || list.is_empty() {
        return;
    }
    let start = rng.gen_range(0..list.len());
    let mut taken = 0;
    for i in 0..list.len() {
        let e = &list[(start + i) % list.len()];
        if &e.peer_id == me || family_v4.is_some_and(|v4| e.addr.is_ipv4() != v4) {
            continue;
        }
        out.push(Peer {
            addr: e.addr,
            peer_id: Some(e.peer_id),
        });
        taken += 1;
        if taken == n {
            break;
        }
    }
}

/// The swarms of a tracker.
#[derive(Debug, Default)]
pub struct Registry {
    config: RegistryConfig,
    swarms: HashMap<InfoHash, Swarm>,
}

impl Registry {
    /// An empty registry.
    pub fn new(config: RegistryConfig) -> Self {
        Registry {
            config,
            swarms: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Handles an announce from `addr` (the address the peer is reachable at: the sender's IP
    /// and the announced port). `only_family`: `Some(true)` to return only IPv4 peers (a UDP
    /// reply over IPv4), `Some(false)` only IPv6, `None` both.
    pub fn announce(
        &mut self,
        req: &AnnounceRequest,
        addr: SocketAddr,
        now: Duration,
        rng: &mut impl Rng,
        only_family: Option<bool>,
    ) -> Result<AnnounceResponse, Refusal> {
        if let Some(w) = &self.config.whitelist {
            if !w.contains(&req.info_hash) {
                return Err(Refusal::NotWhitelisted(req.info_hash));
            }
        }
        let numwant = req
            .numwant
            .unwrap_or(self.config.numwant_default)
            .min(self.config.numwant_max) as usize;
        let seed = req.left == 0;
        let swarm = self.swarms.entry(req.info_hash).or_default();
        let previous = swarm.remove(&req.peer_id);
        let mut peers = Vec::new();
        if req.event != Event::Stopped {
            if req.event == Event::Completed && previous.is_some_and(|(was_seed, _)| !was_seed) {
                swarm.downloaded = swarm.downloaded.saturating_add(1);
            }
            swarm.insert(
                seed,
                Entry {
                    peer_id: req.peer_id,
                    addr,
                    last_seen: now,
                },
            );
            let me = &req.peer_id;
            if seed {
                sample(&swarm.leechers, numwant, me, rng, &mut peers, only_family);
                let more = numwant - peers.len();
                if more > 0 && req.event == Event::Started && req.downloaded == 0 {
                    sample(&swarm.seeds, more, me, rng, &mut peers, only_family);
                }
            } else {
                // Seeds in proportion to their share of the swarm, the rest leechers.
                let (s, l) = (swarm.seeds.len(), swarm.leechers.len().saturating_sub(1));
                let want_seeds = if s + l == 0 {
                    0
                } else {
                    (numwant * s).div_ceil(s + l)
                };
                sample(&swarm.seeds, want_seeds, me, rng, &mut peers, only_family);
                let rest = numwant - peers.len();
                sample(&swarm.leechers, rest, me, rng, &mut peers, only_family);
                let more = numwant - peers.len();
                if more > 0 && want_seeds < s {
                    let already: HashSet<PeerId> = peers.iter().filter_map(|p| p.peer_id).collect();
                    let mut extra = Vec::new();
                    sample(&swarm.seeds, s, me, rng, &mut extra, only_family);
                    peers.extend(
                        extra
                            .into_iter()
                            .filter(|p| !already.contains(&p.peer_id.expect("set")))
                            .take(more),
                    );
                }
            }
        }
        let stats = swarm.stats();
        if swarm.is_empty() && swarm.downloaded == 0 {
            self.swarms.remove(&req.info_hash);
        }
        Ok(AnnounceResponse {
            interval: self.config.interval,
            min_interval: Some(self.config.min_interval),
            complete: Some(stats.complete),
            incomplete: Some(stats.incomplete),
            peers,
            warning: None,
        })
    }

    /// The counts of one swarm (zeros when unknown).
    pub fn scrape(&self, info_hash: &InfoHash) -> ScrapeStats {
        self.swarms
            .get(info_hash)
            .map(Swarm::stats)
            .unwrap_or_default()
    }

    /// Every swarm's counts.
    pub fn scrape_all(&self) -> Vec<(InfoHash, ScrapeStats)> {
        self.swarms.iter().map(|(h, s)| (*h, s.stats())).collect()
    }

    /// Removes peers not seen for [`RegistryConfig::peer_timeout`] and swarms left empty.
    /// Returns how many peers were removed.
    pub fn expire(&mut self, now: Duration) -> usize {
        let timeout = self.config.peer_timeout();
        let mut removed = 0;
        self.swarms.retain(|_, swarm| {
            let stale: Vec<PeerId> = swarm
                .seeds
                .iter()
                .chain(&swarm.leechers)
                .filter(|e| now.saturating_sub(e.last_seen) > timeout)
                .map(|e| e.peer_id)
                .collect();
            for id in &stale {
                swarm.remove(id);
            }
            removed += stale.len();
            !swarm.is_empty()
        });
        removed
    }

    /// Number of swarms with peers.
    pub fn swarm_count(&self) -> usize {
        self.swarms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn req(id: u8, left: u64, event: Event) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([id; 20]),
            port: 6000 + u16::from(id),
            uploaded: 0,
            downloaded: 0,
            left,
            event,
            numwant: None,
            compact: true,
            no_peer_id: false,
            key: None,
            ip: None,
        }
    }

    fn addr(id: u8) -> SocketAddr {
        SocketAddr::new([127, 0, 0, id].into(), 6000 + u16::from(id))
    }

    fn ann(r: &mut Registry, q: &AnnounceRequest, now: u64) -> AnnounceResponse {
        let mut rng = ChaCha8Rng::seed_from_u64(now);
        let id = q.peer_id.0[0];
        r.announce(q, addr(id), Duration::from_secs(now), &mut rng, None)
            .unwrap()
    }

    fn ids(resp: &AnnounceResponse) -> Vec<u8> {
        let mut v: Vec<u8> = resp.peers.iter().map(|p| p.peer_id.unwrap().0[0]).collect();
        v.sort();
        v
    }

    #[test]
    fn peers_see_each_other_but_not_themselves() {
        let mut r = Registry::new(RegistryConfig::default());
        let a = ann(&mut r, &req(1, 10, Event::Started), 0);
        assert!(a.peers.is_empty());
        assert_eq!((a.complete, a.incomplete), (Some(0), Some(1)));
        let b = ann(&mut r, &req(2, 0, Event::Started), 1);
        assert_eq!(ids(&b), vec![1]);
        assert_eq!(b.peers[0].addr, addr(1));
        let a = ann(&mut r, &req(1, 10, Event::None), 2);
        assert_eq!(ids(&a), vec![2]);
        assert_eq!((a.complete, a.incomplete), (Some(1), Some(1)));
    }

    #[test]
    fn seeds_are_not_sent_to_seeds() {
        let mut r = Registry::new(RegistryConfig::default());
        for id in 1..=5 {
            ann(&mut r, &req(id, 0, Event::Started), 0);
        }
        ann(&mut r, &req(9, 5, Event::Started), 0);
        let s = ann(&mut r, &req(1, 0, Event::None), 1);
        assert_eq!(ids(&s), vec![9]);
        let l = ann(&mut r, &req(9, 5, Event::None), 1);
        assert_eq!(ids(&l), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_seed_starting_with_nothing_downloaded_gets_seeds_too() {
        let mut r = Registry::new(RegistryConfig::default());
        ann(&mut r, &req(1, 0, Event::Started), 0);
        ann(&mut r, &req(2, 7, Event::Started), 0);
        // aria2 on a magnet link: left=0, nothing downloaded, `started`.
        let m = ann(&mut r, &req(3, 0, Event::Started), 1);
        assert_eq!(ids(&m), vec![1, 2]);
        let mut done = req(4, 0, Event::Started);
        done.downloaded = 100;
        assert_eq!(ids(&ann(&mut r, &done, 1)), vec![2]);
        assert_eq!(ids(&ann(&mut r, &req(3, 0, Event::None), 2)), vec![2]);
    }

    #[test]
    fn stopped_removes_at_once_and_completed_counts() {
        let mut r = Registry::new(RegistryConfig::default());
        ann(&mut r, &req(1, 10, Event::Started), 0);
        ann(&mut r, &req(2, 10, Event::Started), 0);
        ann(&mut r, &req(1, 0, Event::Completed), 1);
        let st = r.scrape(&InfoHash([1; 20]));
        assert_eq!((st.complete, st.incomplete, st.downloaded), (1, 1, 1));
        // A second "completed" from a seed does not count again.
        ann(&mut r, &req(1, 0, Event::Completed), 2);
        assert_eq!(r.scrape(&InfoHash([1; 20])).downloaded, 1);
        let resp = ann(&mut r, &req(1, 0, Event::Stopped), 3);
        assert!(resp.peers.is_empty());
        let b = ann(&mut r, &req(2, 10, Event::None), 4);
        assert!(b.peers.is_empty());
        assert_eq!((b.complete, b.incomplete), (Some(0), Some(1)));
    }

    #[test]
    fn numwant_default_and_cap() {
        let mut r = Registry::new(RegistryConfig::default());
        for id in 1..=255u8 {
            ann(&mut r, &req(id, 10, Event::Started), 0);
        }
        assert_eq!(ann(&mut r, &req(1, 10, Event::None), 1).peers.len(), 50);
        let mut q = req(1, 10, Event::None);
        q.numwant = Some(1_000_000_000);
        let resp = ann(&mut r, &q, 1);
        assert_eq!(resp.peers.len(), 200);
        assert!(!ids(&resp).contains(&1));
        let mut dedup = ids(&resp);
        dedup.dedup();
        assert_eq!(dedup.len(), 200);
        q.numwant = Some(3);
        assert_eq!(ann(&mut r, &q, 1).peers.len(), 3);
    }

    #[test]
    fn mixed_swarm_fills_numwant_without_duplicates() {
        let mut r = Registry::new(RegistryConfig::default());
        for id in 1..=10u8 {
            ann(&mut r, &req(id, 0, Event::Started), 0);
        }
        for id in 11..=13u8 {
            ann(&mut r, &req(id, 5, Event::Started), 0);
        }
        let mut q = req(11, 5, Event::None);
        q.numwant = Some(8);
        let got = ids(&ann(&mut r, &q, 1));
        assert_eq!(got.len(), 8);
        assert!(got.contains(&12) || got.contains(&13));
        let mut d = got.clone();
        d.dedup();
        assert_eq!(d, got);
        q.numwant = Some(100);
        assert_eq!(ids(&ann(&mut r, &q, 1)).len(), 12);
    }

    #[test]
    fn expiry_after_one_and_a_half_intervals() {
        let cfg = RegistryConfig {
            interval: 100,
            ..Default::default()
        };
        let mut r = Registry::new(cfg);
        ann(&mut r, &req(1, 10, Event::Started), 0);
        ann(&mut r, &req(2, 10, Event::Started), 150);
        // 150 s plus 30 s of slack.
        assert_eq!(r.expire(Duration::from_secs(180)), 0);
        assert_eq!(r.expire(Duration::from_secs(181)), 1);
        let b = ann(&mut r, &req(2, 10, Event::None), 182);
        assert!(
            b.peers.is_empty(),
            "the silent peer is no longer handed out"
        );
        assert_eq!(r.expire(Duration::from_secs(1000)), 1);
        assert_eq!(r.swarm_count(), 0);
    }

    #[test]
    fn one_address_under_two_peer_ids_is_listed_once() {
        let mut r = Registry::new(RegistryConfig::default());
        let at = |r: &mut Registry, q: &AnnounceRequest, ip: [u8; 4]| {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            r.announce(
                q,
                SocketAddr::from((ip, 6881)),
                Duration::ZERO,
                &mut rng,
                None,
            )
            .unwrap()
        };
        at(&mut r, &req(1, 0, Event::Started), [10, 0, 0, 1]);
        // The same client restarted with a new peer id, now a leecher.
        at(&mut r, &req(2, 10, Event::Started), [10, 0, 0, 1]);
        at(&mut r, &req(3, 0, Event::Started), [10, 0, 0, 3]);
        let other = at(&mut r, &req(4, 10, Event::Started), [10, 0, 0, 4]);
        let addrs: Vec<SocketAddr> = other.peers.iter().map(|p| p.addr).collect();
        assert_eq!(addrs.len(), 2, "{addrs:?}");
        assert!(addrs.contains(&SocketAddr::from(([10, 0, 0, 1], 6881))));
        assert_eq!(ids(&other), vec![2, 3], "the new id holds the address");
        let s = r.scrape(&InfoHash([1; 20]));
        assert_eq!(
            (s.complete, s.incomplete),
            (1, 2),
            "the old seed entry is gone"
        );
        // The old id says `stopped`: the address belongs to the new id, which stays.
        at(&mut r, &req(1, 0, Event::Stopped), [10, 0, 0, 1]);
        let again = at(&mut r, &req(4, 10, Event::None), [10, 0, 0, 4]);
        assert_eq!(ids(&again), vec![2, 3]);
    }

    #[test]
    fn whitelist() {
        let cfg = RegistryConfig {
            whitelist: Some([InfoHash([2; 20])].into_iter().collect()),
            ..Default::default()
        };
        let mut r = Registry::new(cfg);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let q = req(1, 1, Event::Started);
        let e = r
            .announce(&q, addr(1), Duration::ZERO, &mut rng, None)
            .unwrap_err();
        assert!(e.to_string().contains("not tracked"));
        let mut q2 = q.clone();
        q2.info_hash = InfoHash([2; 20]);
        assert!(r
            .announce(&q2, addr(1), Duration::ZERO, &mut rng, None)
            .is_ok());
    }

    #[test]
    fn family_filter() {
        let mut r = Registry::new(RegistryConfig::default());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let v6: SocketAddr = "[::1]:7000".parse().unwrap();
        r.announce(
            &req(1, 5, Event::Started),
            v6,
            Duration::ZERO,
            &mut rng,
            None,
        )
        .unwrap();
        r.announce(
            &req(2, 5, Event::Started),
            addr(2),
            Duration::ZERO,
            &mut rng,
            None,
        )
        .unwrap();
        let got = r
            .announce(
                &req(3, 5, Event::Started),
                addr(3),
                Duration::ZERO,
                &mut rng,
                Some(true),
            )
            .unwrap();
        assert_eq!(ids(&got), vec![2]);
        let got = r
            .announce(
                &req(3, 5, Event::None),
                addr(3),
                Duration::ZERO,
                &mut rng,
                None,
            )
            .unwrap();
        assert_eq!(ids(&got), vec![1, 2]);
    }
}
