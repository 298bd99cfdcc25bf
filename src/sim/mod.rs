//! A discrete-event swarm simulator driving the engine's own sans-IO logic on a virtual clock.
