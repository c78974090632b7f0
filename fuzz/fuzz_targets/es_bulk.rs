//! Elasticsearch `_bulk` NDJSON bodies (`model::wire::es_bulk`), with and without a default index.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now_ns = 1_700_000_000_000_000_000;
    let _ = model::wire::es_bulk::parse(data, None, now_ns);
    let _ = model::wire::es_bulk::parse(data, Some("logs"), now_ns);
});
