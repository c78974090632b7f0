//! Prometheus text exposition 0.0.4 as a scrape target serves it (`collector::scrape::exposition`).
#![no_main]
use libfuzzer_sys::fuzz_target;

/// Samples compared by the bits of their values (NaN is a value here).
fn comparable(
    parsed: Result<Vec<collector::scrape::exposition::ScrapedSample>, collector::scrape::exposition::ExpositionError>,
) -> Result<Vec<(String, Vec<(String, String)>, u64, Option<i64>)>, (usize, String)> {
    parsed
        .map(|samples| samples.into_iter().map(|s| (s.name, s.labels, s.value.to_bits(), s.timestamp_ms)).collect())
        .map_err(|e| (e.line, e.message))
}

fuzz_target!(|text: &str| {
    let mut seen = 0;
    let parsed = collector::scrape::exposition::parse_each(text, |sample| {
        let _ = sample.to_owned_sample();
        seen += 1;
    });
    if let Ok(count) = parsed {
        assert_eq!(count, seen, "parse_each reports the samples it handed over");
    }
    let fast = comparable(collector::scrape::exposition::parse(text));
    let careful = comparable(collector::fuzzing::exposition_carefully(text));
    assert_eq!(fast, careful, "the fast path for plain lines gives what the careful path gives");
    let _ = collector::scrape::exposition::parse_for_content_type(Some("text/plain; version=0.0.4"), text);
});
