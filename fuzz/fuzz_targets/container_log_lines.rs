//! Container log files: CRI and docker json-file framing, partial-line joining per stream and the
//! multiline modes (`collector::parse`), as the tailer decodes a file line by line. The first byte
//! picks the format, the multiline mode and a small line limit so truncation is reached.
#![no_main]
use collector::{LogFormat, MultilineConfig, MultilineMode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let format = [LogFormat::Auto, LogFormat::Cri, LogFormat::Docker, LogFormat::Plain][usize::from(knobs & 3)];
    let mode =
        [MultilineMode::None, MultilineMode::Java, MultilineMode::Python, MultilineMode::Go, MultilineMode::Ruby]
            [usize::from((knobs >> 2) & 7) % 5];
    let max_line_bytes = if knobs & 0x80 != 0 { 16 } else { 64 * 1024 };
    let config = MultilineConfig { mode, ..MultilineConfig::default() };
    let lines: Vec<&str> = text.split('\n').collect();
    let records = collector::join_lines(&config, format, max_line_bytes, &lines).expect("built-in modes are valid");
    if mode == MultilineMode::None {
        for record in &records {
            assert!(record.len() <= max_line_bytes.max(text.len()), "a record is never longer than its input");
        }
    }
});
