//! The load generator behind `seedbox bench`, and measurement helpers.

mod load;
mod sha1_ceiling;

pub use load::{run_load, LatencySummary, LoadConfig, LoadReport};
pub use sha1_ceiling::{sha1_throughput, Sha1Impl};
