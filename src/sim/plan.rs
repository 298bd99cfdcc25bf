//! Capacity planning by bisection over simulations (`seedbox plan`).
