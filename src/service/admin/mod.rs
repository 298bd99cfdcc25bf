//! The admin HTTP interface of the seed service (`seedbox seed --admin ADDR:PORT`): a JSON API
//! to list, add, remove, pause, resume and re-check torrents, Prometheus metrics at `/metrics`
//! and a self-contained status page at `/`.
//!
//! The service implements [`AdminBackend`]; the server only talks to it through that trait, so
//! it is tested against a mock backend and run against the real engine alike. Parsing, routing,
//! the metrics text and the page are sans-IO ([`http`], [`api`], [`metrics`], [`page`]); the
//! listener and connections are in [`server`].
//!
//! Starting it from the service:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn backend() -> Arc<dyn seedbox::service::admin::AdminBackend> { unimplemented!() }
//! use seedbox::service::admin::{parse_admin_addr, AdminConfig, AdminServer, Token};
//! let addr = parse_admin_addr("127.0.0.1:9090").unwrap();
//! let token = None; // or Some(Token::from_file(path)?) from --admin-token-file
//! let server = AdminServer::start(AdminConfig::new(addr, token), backend()).unwrap();
//! println!("admin on {}", server.local_addr());
//! ```

pub mod api;
pub mod auth;
pub mod backend;
pub mod http;
pub mod metrics;
pub mod page;
pub mod rates;
pub mod server;

pub use auth::{Token, TokenError};
pub use backend::{
    AdminBackend, AdminError, CoreMetrics, EngineTotals, MetricsSnapshot, TorrentState,
    TorrentStatus,
};
pub use rates::UploadRates;
pub use server::{parse_admin_addr, AdminConfig, AdminServer, StartError};
