//! Entry points for the fuzz targets under `fuzz/`: the parsers of outside input that are private
//! to this crate, reachable without making them part of its API. Not for other uses.

use crate::parse::body::{self, BodyFormat, Level};

/// Parses a message body as `format` and detects its level, as the tailer does per record.
pub fn parse_body(format: BodyFormat, message: &str) -> (Vec<(String, String)>, Option<Level>) {
    let fields = body::parse_fields(format, message);
    let level = body::detect_level(&fields, message);
    (fields, level)
}
