//! The CRI log format written by containerd and CRI-O:
//! `<RFC 3339 time> <stdout|stderr> <P|F>[:<more tags>] <message>`.

use std::borrow::Cow;

use super::{Framed, Stream};

/// Parses one CRI line; `None` if it is not one.
pub(crate) fn parse_cri(line: &str) -> Option<Framed<'_>> {
    let (time, rest) = line.split_once(' ')?;
    // Require the date-time shape so bare numbers are not mistaken for Unix timestamps.
    if !time.contains('T') {
        return None;
    }
    let timestamp_ns = model::time::parse_loki_time(time).ok()?;
    let (stream, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let stream = Stream::parse(stream)?;
    let (tags, message) = rest.split_once(' ').unwrap_or((rest, ""));
    let partial = match tags.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return None,
    };
    Some(Framed { timestamp_ns: Some(timestamp_ns), stream, partial, message: Cow::Borrowed(message) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_and_crio_lines() {
        let f = parse_cri("2021-02-16T09:21:15.518430714Z stdout F example: 10").unwrap();
        assert_eq!(f.timestamp_ns, Some(1_613_467_275_518_430_714));
        assert_eq!((f.stream, f.partial, f.message.as_ref()), (Stream::Stdout, false, "example: 10"));
        let f = parse_cri("2021-02-16T08:59:33.254364766+00:00 stderr P part").unwrap();
        assert_eq!((f.stream, f.partial, f.message.as_ref()), (Stream::Stderr, true, "part"));
        let f = parse_cri("2021-02-16T08:59:33Z stdout F").unwrap();
        assert_eq!(f.message, "");
    }

    #[test]
    fn non_cri_lines_are_refused() {
        for line in [
            "hello world",
            "1613467275 stdout F x",
            "2021-02-16T09:21:15Z stdin F x",
            "2021-02-16T09:21:15Z stdout X x",
            "",
        ] {
            assert!(parse_cri(line).is_none(), "{line:?}");
        }
    }
}
