//! Entry points for the fuzz targets under `fuzz/`: the parsers of outside input that are private
//! to this crate, reachable without making them part of its API. Not for other uses.

use crate::parse::body::{self, BodyFormat, Level};

/// Parses a message body as `format` and detects its level, as the tailer does per record.
pub fn parse_body(format: BodyFormat, message: &str) -> (Vec<(String, String)>, Option<Level>) {
    let fields = body::parse_fields(format, message);
    let level = body::detect_level(&fields, message);
    (fields, level)
}

/// The text exposition format parsed with every line on the careful path (no fast path for
/// plain lines): `exposition::parse` must agree with it on every input.
pub fn exposition_carefully(
    text: &str,
) -> Result<Vec<crate::scrape::exposition::ScrapedSample>, crate::scrape::exposition::ExpositionError> {
    crate::scrape::exposition::parse_carefully(text)
}
