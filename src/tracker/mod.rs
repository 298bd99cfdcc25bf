//! Trackers: announce/scrape types (sans-IO), the HTTP and UDP tracker server, the client.
//!
//! - [`announce`]: HTTP announce and scrape requests (query strings) and responses (bencode).
//! - [`udp_codec`]: the BEP 15 UDP tracker packets, both directions.
//! - [`conn_id`]: stateless UDP connection ids (a keyed hash of address and time window).
//! - [`registry`]: the swarm registry a tracker answers from (sans-IO, time passed in).
//! - [`server`]: the HTTP and UDP tracker server (thread-per-core I/O edge, web pages).

pub mod announce;
pub mod client;
pub mod conn_id;
pub mod registry;
pub mod server;
pub mod udp_codec;

pub use announce::{
    AnnounceRequest, AnnounceResponse, Event, Peer, RequestError, ResponseError, ScrapeRequest,
    ScrapeResponse, ScrapeStats, TrackerReply,
};
pub use conn_id::ConnectionIds;
pub use registry::{Registry, RegistryConfig};
