//! Choking: one round per torrent over all cores.
//!
//! Each core keeps its own peers of a torrent ([`core::TorrentCore`], core-local, no lock) and
//! tells the torrent's owner ([`owner::ChokeOwner`], sans-IO, run on one thread by
//! [`owner_thread`]) when a peer joins, leaves or changes its interest, and every second the
//! upload rates it measured. The owner ranks every interested peer of the torrent wherever it
//! lives with one [`Choker`](crate::swarm::Choker) and sends each core its decisions as a
//! [`CoreCommand::Choke`](super::CoreCommand::Choke). `--unchoke-slots N` is then at most N
//! regular plus one optimistic unchoke per torrent. Nothing here is on the send path: events
//! are sent on interest changes, connects, disconnects and once a second.

pub(super) mod core;
pub mod owner;

pub use owner::{ChokeEvent, ChokeOrder, ChokeOwner, CorePeer};

/// A peer's key, unique on its core.
pub use crate::swarm::PeerKey;

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::limits::Limits;
use super::CoreCommand;

/// How often the owner thread checks for due rounds when no event arrives.
const OWNER_TICK: Duration = Duration::from_millis(250);

/// Runs `owner` until every core has dropped its event sender: applies each event as it
/// arrives, changed `limits` (a config re-read) within a tick, runs due rounds, and sends the
/// decisions to the cores.
pub(super) fn owner_thread(
    mut owner: ChokeOwner,
    events: mpsc::Receiver<ChokeEvent>,
    cores: Vec<UnboundedSender<CoreCommand>>,
    limits: Arc<Limits>,
) {
    let epoch = Instant::now();
    let mut rng = rand::thread_rng();
    let mut orders = Vec::new();
    // Generation 0 is never current once the engine started, so the first tick adopts the
    // limits even when a change came before the owner was built from the configuration.
    let mut seen = 0;
    loop {
        if limits.generation() != seen {
            let (generation, values) = limits.get();
            seen = generation;
            let (slots, uplink) = (values.unchoke_slots, values.max_upload_rate);
            owner.set_limits(slots, uplink, epoch.elapsed(), &mut rng, &mut orders);
        }
        match events.recv_timeout(OWNER_TICK) {
            Ok(event) => owner.on_event(event, epoch.elapsed(), &mut rng, &mut orders),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        owner.tick(epoch.elapsed(), &mut rng, &mut orders);
        for order in orders.drain(..) {
            if let Some(tx) = cores.get(order.core) {
                let _ = tx.send(CoreCommand::Choke(order));
            }
        }
    }
}
