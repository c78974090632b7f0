//! Tarsier's alerting: rule files in Prometheus's format, evaluated over the tsdb (PromQL) and the
//! indexer (LogQL), with alert state and Alertmanager-style routing to receivers. The engine talks
//! to the stores through the small [`RuleQuerier`] trait, never their internals, so it can be
//! tested against a fake and reused against remote stores.
//!
//! This first part loads and validates rule files; evaluation and notification build on it.

pub mod error;
pub mod notify;
pub mod rules;

pub use error::Error;
pub use rules::{NameValidation, Rule, RuleFile, RuleGroup, load_rule_file, parse_rule_file, parse_rule_file_with};

/// What a rule evaluation needs from the stores: an instant query at a time, answering a vector of
/// (labels, value). Implemented by the server over the tsdb and the indexer.
pub trait RuleQuerier: Send + Sync {
    /// Evaluates `expr` at `time_ms` for `tenant`.
    fn query(&self, tenant: &model::TenantId, expr: &str, time_ms: i64) -> Result<Vec<(model::Labels, f64)>, Error>;
}
