//! OpenMetrics 1.0 text as a scrape target serves it (`collector::scrape::openmetrics`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = collector::scrape::openmetrics::parse(text);
});
