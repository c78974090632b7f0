//! The YAML configuration file (`tarsier::config::Config::from_yaml`: parse, then validate).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = tarsier::config::Config::from_yaml(text);
});
