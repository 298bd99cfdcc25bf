//! Swarm logic, sans-IO: bitfields, the piece picker, the choker and rate estimators.
//! Time is always passed in, so the simulator can drive the same code on a virtual clock.

mod bitfield;

pub use bitfield::Bitfield;
