//! Prometheus remote_write bodies (`model::wire::remote_write`): the input as the snappy-framed
//! body, and snappy-compressed by the target so the protobuf decoding sees it directly.
#![no_main]
use libfuzzer_sys::fuzz_target;

const MAX_DECODED: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = model::wire::remote_write::decode_request(data, MAX_DECODED);
    let framed = snap::raw::Encoder::new().compress_vec(data).expect("compressing a buffer");
    if let Ok(decoded) = model::wire::remote_write::decode_request(&framed, MAX_DECODED) {
        // What decodes must encode and decode to the same series.
        let again = model::wire::remote_write::encode(&decoded.series);
        let round = model::wire::remote_write::decode(&again, usize::MAX).expect("our own encoding decodes");
        // Bit for bit: NaN values (stale markers among them) are not equal to themselves.
        let bits = |series: &[model::TimeSeries]| -> Vec<(model::Labels, Vec<(i64, u64)>)> {
            let samples =
                |s: &model::TimeSeries| s.samples.iter().map(|p| (p.timestamp_ms, p.value.to_bits())).collect();
            series.iter().map(|s| (s.labels.clone(), samples(s))).collect()
        };
        assert_eq!(bits(&round), bits(&decoded.series));
    }
});
