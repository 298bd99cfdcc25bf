//! seedbox: a high-performance BitTorrent seed box for Linux.
//!
//! The crate is cut along the architecture:
//!
//! - [`bencode`], [`metainfo`]: the file formats (sans-IO).
//! - [`protocol`]: the peer wire codec and connection state machine (sans-IO).
//! - [`swarm`]: piece picker, choker, bitfields and rate estimators (sans-IO, clock passed in).
//! - [`tracker`]: tracker request/response types (sans-IO), the tracker server and client.
//! - [`storage`]: torrent data laid over memory-mapped files.
//! - [`engine`]: the thread-per-core io_uring runtime that runs peers (the I/O edge).
//! - [`service`]: the seed service's admin HTTP API, metrics and status page.
//! - [`sim`]: a discrete-event swarm simulator that drives the same sans-IO logic.
//! - [`bench`]: the load generator.
//! - [`cli`]: the `seedbox` command line.

pub mod bench;
pub mod bencode;
pub mod cli;
pub mod dht;
pub mod engine;
pub mod fuzz;
pub mod metainfo;
pub mod protocol;
pub mod service;
pub mod sim;
pub mod storage;
pub mod swarm;
pub mod tracker;
