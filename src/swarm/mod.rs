//! Swarm logic, sans-IO: bitfields, piece geometry, the piece picker, the choker and rate
//! estimators. Time is always passed in (a `std::time::Duration` since an arbitrary origin), so
//! the simulator can drive the same code on a virtual clock.

mod bitfield;
mod geometry;

pub use bitfield::Bitfield;
pub use geometry::{BlockRef, PieceGeometry, BLOCK_SIZE};
