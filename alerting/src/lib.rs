//! Tarsier's alerting: rule files in Prometheus's format, evaluated over the tsdb (PromQL) and the
//! indexer (LogQL), with alert state and Alertmanager-style routing to receivers. The engine talks
//! to the stores through the small [`eval::RuleStore`] trait, never their internals, so it can be
//! tested against a fake and reused against remote stores.

pub mod error;
pub mod eval;
pub mod manager;
pub mod notify;
pub mod promtool;
pub mod rules;
mod rules_position;
pub mod template;

pub use error::Error;
pub use rules::{
    NameValidation, Rule, RuleFile, RuleGroup, load_rule_file, parse_log_rule_file, parse_rule_file,
    parse_rule_file_with,
};
