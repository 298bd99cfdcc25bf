//! The load generator behind `seedbox bench`, and measurement helpers.

mod sha1_ceiling;

pub use sha1_ceiling::{sha1_throughput, Sha1Impl};
