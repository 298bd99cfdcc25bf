//! Swarm logic, sans-IO: bitfields, piece geometry, the piece picker, the choker and rate
//! estimators. Time is always passed in (a `std::time::Duration` since an arbitrary origin), so
//! the simulator can drive the same code on a virtual clock.

mod auto_slots;
mod availability;
mod bitfield;
mod choker;
mod driver;
mod geometry;
mod picker;
mod pipeline;
mod rate;
mod super_seed;
mod token_bucket;

pub use auto_slots::{
    qualifying, AutoRound, AutoSlots, AUTO_MAX_GROWTH, AUTO_MIN_SLOTS, AUTO_RATE_STEP,
    AUTO_RATE_THRESHOLD, AUTO_RETRY_ROUNDS, AUTO_SATURATED_PERCENT, AUTO_SHRINK_KEPT_PERCENT,
    AUTO_SHRINK_RETRY_ROUNDS, AUTO_USEFUL_PERCENT,
};
pub use bitfield::Bitfield;
pub use choker::{
    ChokeChanges, Choker, ChokerConfig, PeerSnapshot, Slots, CHOKE_INTERVAL, NEW_PEER_AGE,
    NEW_PEER_WEIGHT, OPTIMISTIC_INTERVAL, SNUB_TIMEOUT,
};
pub use driver::{
    ban_key, BlockDigest, Driver, DriverConfig, Effect, Peer, PeerError, PeerKey, Totals,
    BAN_STRIKES, REQUEST_TIMEOUT, TICK,
};
pub use geometry::{BlockRef, PieceGeometry, BLOCK_SIZE};
pub use picker::{BlockReceived, PeerIndex, Picker, PickerConfig, PickerError, Strategy};
pub use pipeline::{
    pipeline_depth, DEFAULT_REQQ, MIN_PIPELINE, PIPELINE_MARGIN, REQUEST_QUEUE_TIME,
};
pub use rate::{RateMeter, RATE_WINDOW};
pub use super_seed::{
    SuperSeed, SuperSeedConfig, SUPER_SEED_PATIENCE, SUPER_SEED_REVEALS, SUPER_SEED_TICK,
};
pub use token_bucket::TokenBucket;
