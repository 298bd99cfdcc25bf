//! The thread-per-core io_uring engine: the I/O edge that runs peer connections.
pub mod download;
