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

/// mimalloc instead of glibc's malloc: scraping and ingest allocate many small label strings and
/// free large per-batch buffers, and glibc then spends a large share of the CPU consolidating its
/// free lists (`malloc_consolidate` was 12% of a scrape profile). Feature `mimalloc` (default).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
