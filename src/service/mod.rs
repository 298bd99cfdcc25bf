//! seedbox as a long-running seed-box service: the admin HTTP API, metrics and status page.
pub mod admin;
