//! Prometheus text exposition 0.0.4 as a scrape target serves it (`collector::scrape::exposition`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut seen = 0;
    let parsed = collector::scrape::exposition::parse_each(text, |sample| {
        let _ = sample.to_owned_sample();
        seen += 1;
    });
    if let Ok(count) = parsed {
        assert_eq!(count, seen, "parse_each reports the samples it handed over");
    }
    let _ = collector::scrape::exposition::parse_for_content_type(Some("text/plain; version=0.0.4"), text);
});
