//! Alertmanager's configuration (`alerting::notify::config`): YAML, then the checks that build the
//! routing plan. `templates:` globs are dropped: they would read the fuzzing machine's files.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(mut config) = alerting::notify::NotifyConfig::from_yaml(text) else { return };
    config.templates.clear();
    let _ = config.validate();
});
