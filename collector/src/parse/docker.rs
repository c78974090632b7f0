//! Docker's json-file log driver: `{"log":"line\n","stream":"stdout","time":"<RFC 3339>"}`. A `log`
//! value without a trailing `\n` is a partial (docker splits lines at 16 KiB).

use std::borrow::Cow;

use serde::Deserialize;

use super::{Framed, Stream};

#[derive(Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(default)]
    stream: Option<Cow<'a, str>>,
    #[serde(default)]
    time: Option<Cow<'a, str>>,
}

/// Parses one json-file line; `None` if it is not one. A missing `stream` means stdout and a
/// missing or unreadable `time` leaves the timestamp to the reader (read time).
pub(crate) fn parse_docker(line: &str) -> Option<Framed<'_>> {
    if !line.starts_with('{') {
        return None;
    }
    let parsed: DockerLine<'_> = serde_json::from_str(line).ok()?;
    let stream = match parsed.stream.as_deref() {
        None => Stream::Stdout,
        Some(s) => Stream::parse(s)?,
    };
    let timestamp_ns = parsed.time.as_deref().and_then(|t| model::time::parse_loki_time(t).ok());
    let (partial, message) = match parsed.log {
        Cow::Borrowed(s) => match s.strip_suffix('\n') {
            Some(stripped) => (false, Cow::Borrowed(stripped)),
            None => (true, Cow::Borrowed(s)),
        },
        Cow::Owned(mut s) => {
            let complete = s.ends_with('\n');
            if complete {
                s.pop();
            }
            (!complete, Cow::Owned(s))
        }
    };
    Some(Framed { timestamp_ns, stream, partial, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_and_partial_lines() {
        let f =
            parse_docker(r#"{"log":"a \"q\"\n","stream":"stderr","time":"2021-02-16T09:15:12.50286486Z"}"#).unwrap();
        assert_eq!((f.stream, f.partial, f.message.as_ref()), (Stream::Stderr, false, "a \"q\""));
        assert_eq!(f.timestamp_ns, Some(1_613_466_912_502_864_860));
        let f = parse_docker(r#"{"log":"part"}"#).unwrap();
        assert_eq!((f.stream, f.partial, f.timestamp_ns), (Stream::Stdout, true, None));
    }

    #[test]
    fn other_lines_are_refused() {
        for line in ["plain", "{not json", r#"{"msg":"x"}"#, r#"{"log":"x","stream":"stdin"}"#] {
            assert!(parse_docker(line).is_none(), "{line:?}");
        }
    }
}
