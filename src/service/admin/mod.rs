//! The admin HTTP interface of the seed service (`seedbox seed --admin ADDR:PORT`): a JSON API
//! to list, add, remove, pause, resume and re-check torrents, Prometheus metrics at `/metrics`
//! and a self-contained status page at `/`.
//!
//! The service implements [`AdminBackend`]; the server only talks to it through that trait, so
//! it is tested against a mock backend and run against the real engine alike.

pub mod backend;

pub use backend::{
    AdminBackend, AdminError, CoreMetrics, EngineTotals, MetricsSnapshot, TorrentState,
    TorrentStatus,
};
