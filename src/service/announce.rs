//! Announcing the served torrents to their trackers, as a seed (`left` 0).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::engine::download::tracker_tiers;
use crate::metainfo::{InfoHash, Torrent};
use crate::protocol::PeerId;
use crate::tracker::client::{AnnounceStats, Identity, TrackerClient};

/// The announcers of every served torrent.
pub struct Announcers {
    peer_id: PeerId,
    port: u16,
    clients: Mutex<HashMap<InfoHash, TrackerClient>>,
}

impl Announcers {
    /// No torrent yet; announces say `peer_id` listens on `port`.
    pub fn new(peer_id: PeerId, port: u16) -> Self {
        Announcers {
            peer_id,
            port,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Starts announcing `torrent` (nothing when it names no tracker); `stats` carries the
    /// uploaded count the engine keeps.
    pub fn add(&self, torrent: &Torrent, stats: Arc<AnnounceStats>) {
        let tiers = tracker_tiers(torrent);
        if tiers.is_empty() {
            return;
        }
        let me = Identity {
            info_hash: torrent.info_hash,
            peer_id: self.peer_id,
            port: self.port,
        };
        let client = TrackerClient::spawn(tiers, me, stats);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = clients.insert(torrent.info_hash, client) {
            std::thread::spawn(move || old.shutdown());
        }
    }

    /// Stops announcing the torrent: its `stopped` announce goes out in the background.
    pub fn remove(&self, info_hash: &InfoHash) {
        let client = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(info_hash);
        if let Some(c) = client {
            std::thread::spawn(move || c.shutdown());
        }
    }

    /// Sends every `stopped` announce and ends.
    pub fn shutdown(&self) {
        let clients: Vec<_> = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, c)| c)
            .collect();
        for c in clients {
            c.shutdown();
        }
    }
}
