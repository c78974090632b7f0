//! Turns raw file lines into log records: container runtimes wrap each application line in a
//! framing (CRI, docker json-file) that carries a timestamp and a stream, and split long lines
//! into partials that must be joined again. Plain files carry neither.

pub mod body;
mod cri;
mod docker;
pub mod multiline;

use crate::config::LogFormat;

pub(crate) use cri::parse_cri;
pub(crate) use docker::parse_docker;
pub(crate) use multiline::Joiner;

/// Which output stream of a container a line was written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub(crate) fn parse(s: &str) -> Option<Stream> {
        match s {
            "stdout" => Some(Stream::Stdout),
            "stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One framed line as the runtime wrote it.
#[derive(Debug, PartialEq)]
pub(crate) struct Framed<'a> {
    /// The runtime's time of the line, when it recorded one.
    pub timestamp_ns: Option<i64>,
    pub stream: Stream,
    /// Whether the application line continues in the next framed line.
    pub partial: bool,
    pub message: std::borrow::Cow<'a, str>,
}

/// A complete record ready to be labelled.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParsedLine {
    pub timestamp_ns: i64,
    pub stream: Option<Stream>,
    pub line: String,
    /// The joined partials exceeded `max_line_bytes` and were cut.
    pub truncated: bool,
}

#[derive(Debug)]
struct Partial {
    timestamp_ns: i64,
    text: String,
    truncated: bool,
}

/// Per-file decoder: detects the format on the first line (in `Auto`), joins partials per stream.
#[derive(Debug)]
pub(crate) struct LineParser {
    format: LogFormat,
    max_line_bytes: usize,
    partials: [Option<Partial>; 2],
}

impl LineParser {
    pub(crate) fn new(format: LogFormat, max_line_bytes: usize) -> Self {
        Self { format, max_line_bytes, partials: [None, None] }
    }

    /// The format in use (`Auto` until the first line was seen).
    #[cfg(test)]
    pub(crate) fn format(&self) -> LogFormat {
        self.format
    }

    /// Decodes one raw line (without its `\n`); complete records are appended to `out`.
    /// `read_time_ns` stamps lines that carry no time of their own.
    pub(crate) fn push(&mut self, raw: &str, read_time_ns: i64, out: &mut Vec<ParsedLine>) {
        if self.format == LogFormat::Auto && !raw.is_empty() {
            self.format = detect(raw);
        }
        let framed = match self.format {
            LogFormat::Cri => parse_cri(raw),
            LogFormat::Docker => parse_docker(raw),
            LogFormat::Plain | LogFormat::Auto => None,
        };
        let Some(framed) = framed else {
            // Plain files, or a line that does not fit the file's framing: keep it as it is.
            out.push(ParsedLine { timestamp_ns: read_time_ns, stream: None, line: raw.to_string(), truncated: false });
            return;
        };
        let slot = &mut self.partials[framed.stream.index()];
        if !framed.partial && slot.is_none() {
            // The common case: a whole line in one framed line, one allocation for its text.
            let truncated = framed.message.len() > self.max_line_bytes;
            let line = if truncated {
                prefix_within(&framed.message, self.max_line_bytes).to_string()
            } else {
                framed.message.into_owned()
            };
            out.push(ParsedLine {
                timestamp_ns: framed.timestamp_ns.unwrap_or(read_time_ns),
                stream: Some(framed.stream),
                line,
                truncated,
            });
            return;
        }
        let partial = slot.get_or_insert_with(|| Partial {
            timestamp_ns: framed.timestamp_ns.unwrap_or(read_time_ns),
            text: String::new(),
            truncated: false,
        });
        let room = self.max_line_bytes.saturating_sub(partial.text.len());
        if framed.message.len() > room {
            partial.text.push_str(prefix_within(&framed.message, room));
            partial.truncated = true;
        } else {
            partial.text.push_str(&framed.message);
        }
        if !framed.partial
            && let Some(done) = slot.take()
        {
            out.push(ParsedLine {
                timestamp_ns: done.timestamp_ns,
                stream: Some(framed.stream),
                line: done.text,
                truncated: done.truncated,
            });
        }
    }

    /// Whether a partial line waits for its continuation (its bytes are not safe to checkpoint).
    pub(crate) fn has_partial(&self) -> bool {
        self.partials.iter().any(Option::is_some)
    }

    /// Emits waiting partials as they are (the file ended without completing them).
    pub(crate) fn flush(&mut self, out: &mut Vec<ParsedLine>) {
        for (i, slot) in self.partials.iter_mut().enumerate() {
            if let Some(p) = slot.take() {
                let stream = if i == 0 { Stream::Stdout } else { Stream::Stderr };
                out.push(ParsedLine {
                    timestamp_ns: p.timestamp_ns,
                    stream: Some(stream),
                    line: p.text,
                    truncated: p.truncated,
                });
            }
        }
    }

    /// Forgets waiting partials (the file was truncated); the detected format is kept.
    pub(crate) fn reset(&mut self) {
        self.partials = [None, None];
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn prefix_within(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// Picks a file's format from its first line.
fn detect(first_line: &str) -> LogFormat {
    if parse_docker(first_line).is_some() {
        LogFormat::Docker
    } else if parse_cri(first_line).is_some() {
        LogFormat::Cri
    } else {
        LogFormat::Plain
    }
}

#[cfg(test)]
mod tests;
