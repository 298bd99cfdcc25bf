//! The load generator behind `seedbox bench`.
