//! Wire codecs for the protocols Tarsier speaks with the rest of the ecosystem. Each codec turns
//! bytes into the crate's own types and back, with errors that say what was wrong.

pub mod es_bulk;
pub mod loki_push;
pub mod remote_write;
pub mod remote_write_histogram;
pub mod selector_text;

use crate::error::{Error, Result};

/// Decompresses a snappy block (the framing remote_write and Loki push use), refusing bodies that
/// declare more than `max_decoded` bytes before allocating anything.
pub fn snappy_decompress_bounded(body: &[u8], max_decoded: usize) -> Result<Vec<u8>> {
    let declared = snap::raw::decompress_len(body)?;
    if declared > max_decoded {
        return Err(Error::InvalidPayload(format!(
            "decompressed body of {declared} bytes exceeds the limit of {max_decoded} bytes"
        )));
    }
    Ok(snap::raw::Decoder::new().decompress_vec(body)?)
}
