//! Code shared by the root integration tests (and, through `#[path]`, by the benchmarks).

pub mod promql_differential;
