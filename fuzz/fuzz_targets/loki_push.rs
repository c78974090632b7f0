//! Loki push bodies (`model::wire::loki_push`): snappy-framed protobuf (the input as the body, and
//! compressed by the target so the protobuf decoding sees it directly) and JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

const MAX_DECODED: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = model::wire::loki_push::decode_protobuf(data, MAX_DECODED);
    let framed = snap::raw::Encoder::new().compress_vec(data).expect("compressing a buffer");
    let _ = model::wire::loki_push::decode_protobuf(&framed, MAX_DECODED);
    if let Ok(streams) = model::wire::loki_push::decode_json(data) {
        let again = model::wire::loki_push::encode_json(&streams);
        let _ = model::wire::loki_push::decode_json(&again).expect("our own JSON decodes");
    }
});
