//! A log message body parsed as JSON or logfmt, and its level detected
//! (`collector::parse::body` through `collector::fuzzing`).
#![no_main]
use collector::BodyFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knob, rest)) = data.split_first() else { return };
    let Ok(message) = std::str::from_utf8(rest) else { return };
    let format = [BodyFormat::Off, BodyFormat::Json, BodyFormat::Logfmt, BodyFormat::Auto][usize::from(knob & 3)];
    let _ = collector::fuzzing::parse_body(format, message);
});
