//! Prometheus and Loki rule files (`alerting::rules`): YAML, rulefmt's checks, the expressions and
//! the label and annotation templates.
#![no_main]
use alerting::rules::NameValidation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = alerting::rules::parse_rule_file(text, "fuzz.yaml");
    let _ = alerting::rules::parse_rule_file_with(text, "fuzz.yaml", NameValidation::Legacy);
    let _ = alerting::rules::parse_log_rule_file(text, "fuzz.yaml");
});
