//! The `tarsier` binary's library half: the top-level configuration file and the wiring that
//! starts each role (`run`, `server`, `agent`) from the library crates. No business logic lives
//! here; it connects the collector, the stores and the HTTP layer and owns the shutdown order.

pub mod app;
pub mod cli;
pub mod config;
pub mod local_sink;
pub mod logging;
pub mod redact;
pub mod reload;
pub mod snapshot;
