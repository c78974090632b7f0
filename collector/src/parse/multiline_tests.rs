//! Unit tests of the multiline joiner: the state machine, per-stream separation, the flush
//! timeout, the size limit, the checkpoint hold-back, and a property test that joining keeps
//! every byte in order.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

const SEC: i64 = 1_000_000_000;

fn rec(stream: Option<Stream>, line: &str) -> ParsedLine {
    ParsedLine { timestamp_ns: 0, stream, line: line.to_string(), truncated: false }
}

fn config(mode: MultilineMode) -> MultilineConfig {
    MultilineConfig { mode, ..Default::default() }
}

fn regex_config(rules: &[(&str, &str, &str)]) -> MultilineConfig {
    MultilineConfig {
        mode: MultilineMode::Regex,
        rules: rules
            .iter()
            .map(|(s, r, n)| MultilineRule { state: s.to_string(), regex: r.to_string(), next_state: n.to_string() })
            .collect(),
        flush_timeout: Duration::from_secs(1),
    }
}

fn joiner(c: &MultilineConfig, max: usize) -> Joiner {
    c.joiner(max).unwrap().unwrap()
}

fn lines(out: &[ParsedLine]) -> Vec<&str> {
    out.iter().map(|r| r.line.as_str()).collect()
}

#[test]
fn java_trace_is_one_record_and_the_next_line_closes_it() {
    let mut j = joiner(&config(MultilineMode::Java), 1 << 20);
    let mut out = Vec::new();
    for (i, l) in [
        "start",
        "java.lang.IllegalStateException: boom",
        "\tat a.b(C.java:1)",
        "Caused by: x.Y: z",
        "\t... 3 more",
        "next",
    ]
    .iter()
    .enumerate()
    {
        j.push(rec(None, l), i as u64 * 100, 0, &mut out);
    }
    assert_eq!(
        lines(&out),
        ["start", "java.lang.IllegalStateException: boom\n\tat a.b(C.java:1)\nCaused by: x.Y: z\n\t... 3 more", "next"]
    );
    assert_eq!(j.pending_start(), None);
}

#[test]
fn streams_never_mix() {
    let c = regex_config(&[("start_state", r"^\[", "cont"), ("cont", r"^\s+", "cont")]);
    let mut j = joiner(&c, 1 << 20);
    let mut out = Vec::new();
    let out_s = Some(Stream::Stdout);
    let err_s = Some(Stream::Stderr);
    j.push(rec(out_s, "[out] a"), 0, 0, &mut out);
    j.push(rec(err_s, "[err] a"), 10, 0, &mut out);
    j.push(rec(out_s, "  out more"), 20, 0, &mut out);
    j.push(rec(err_s, "  err more"), 30, 0, &mut out);
    j.push(rec(err_s, "err done"), 40, 0, &mut out);
    assert_eq!(lines(&out), ["[err] a\n  err more", "err done"]);
    assert_eq!(j.pending_start(), Some(0), "stdout's record still pending holds the checkpoint");
    j.push(rec(out_s, "out done"), 50, 0, &mut out);
    assert_eq!(lines(&out[2..]), ["[out] a\n  out more", "out done"]);
    assert!(out.iter().all(|r| r.stream.is_some()));
    assert_eq!(out[2].stream, out_s);
}

#[test]
fn flush_timeout_emits_a_pending_record_only_once_it_expired() {
    let mut c = config(MultilineMode::Python);
    c.flush_timeout = Duration::from_millis(1500);
    let mut j = joiner(&c, 1 << 20);
    let mut out = Vec::new();
    j.push(rec(None, "Traceback (most recent call last):"), 7, 10 * SEC, &mut out);
    j.push(rec(None, "  File \"x.py\", line 1, in <module>"), 8, 11 * SEC, &mut out);
    j.flush_expired(12 * SEC, &mut out);
    assert!(out.is_empty(), "0.5 s after the last line: still waiting");
    assert_eq!(j.pending_start(), Some(7));
    j.flush_expired(11 * SEC + 1_500_000_000, &mut out);
    assert_eq!(lines(&out), ["Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>"]);
    assert_eq!(j.pending_start(), None);
}

#[test]
fn a_record_is_emitted_before_it_would_exceed_max_bytes() {
    let c = regex_config(&[("start_state", r"^S", "cont"), ("cont", r"^ ", "cont")]);
    let mut j = joiner(&c, 10);
    let mut out = Vec::new();
    for l in ["S1234", " 678", " 9", " ab"] {
        j.push(rec(None, l), 0, 0, &mut out);
    }
    // "S1234\n 678" is 10 bytes; adding "\n 9" would make 13, so it is emitted and " 9" (no
    // start line) stands alone, as does " ab".
    assert_eq!(lines(&out), ["S1234\n 678", " 9", " ab"]);
    assert_eq!(j.pending_start(), None);
    assert!(out.iter().all(|r| r.line.len() <= 10));
}

#[test]
fn python_traceback_ends_at_the_exception_line() {
    let mut j = joiner(&config(MultilineMode::Python), 1 << 20);
    let mut out = Vec::new();
    for l in
        ["Traceback (most recent call last):", "  File \"a.py\", line 3, in f", "    g()", "ValueError: bad", "after"]
    {
        j.push(rec(None, l), 0, 0, &mut out);
    }
    assert_eq!(
        lines(&out),
        ["Traceback (most recent call last):\n  File \"a.py\", line 3, in f\n    g()\nValueError: bad", "after"]
    );
}

#[test]
fn validate_names_the_key() {
    let mut c = regex_config(&[("start_state", "(", "cont")]);
    let e = c.validate("collector.tail.multiline").unwrap_err();
    assert!(e.starts_with("collector.tail.multiline.rules[0].regex"), "{e}");
    c = regex_config(&[("cont", "a", "cont")]);
    assert!(c.validate("k").unwrap_err().contains("start_state"));
    c = config(MultilineMode::Java);
    c.rules = regex_config(&[("start_state", "a", "b")]).rules;
    assert!(c.validate("k").unwrap_err().starts_with("k.rules"));
    c = config(MultilineMode::Regex);
    assert!(c.validate("k").unwrap_err().starts_with("k.rules"));
    c = config(MultilineMode::Go);
    c.flush_timeout = Duration::ZERO;
    assert!(c.validate("k").unwrap_err().starts_with("k.flush_timeout"));
    for mode in
        [MultilineMode::None, MultilineMode::Java, MultilineMode::Python, MultilineMode::Go, MultilineMode::Ruby]
    {
        config(mode).validate("k").unwrap();
    }
    assert!(config(MultilineMode::None).joiner(10).unwrap().is_none());
}

#[test]
fn config_reads_from_yaml_with_defaults() {
    let c: MultilineConfig = serde_yaml_ng::from_str(
        "mode: regex\nrules:\n  - {state: start_state, regex: '/^\\[/', next_state: cont}\n  - {state: cont, regex: '^\\s', next_state: cont}\n",
    )
    .unwrap();
    assert_eq!(c.flush_timeout, Duration::from_secs(1));
    c.validate("k").unwrap();
    assert!(serde_yaml_ng::from_str::<MultilineConfig>("mode: java\nflush: 1s\n").is_err());
    assert_eq!(MultilineConfig::default().mode, MultilineMode::None);
}

fn arb_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Traceback (most recent call last):".to_string()),
        Just("  File \"a.py\", line 1".to_string()),
        Just("ValueError: x".to_string()),
        Just("java.lang.Error: boom".to_string()),
        Just("\tat x.Y(Z.java:1)".to_string()),
        Just("panic: oh".to_string()),
        Just(String::new()),
        Just("goroutine 1 [running]:".to_string()),
        "[ -~]{0,12}",
    ]
}

proptest! {
    /// Whatever the mode, size limit, flush times and stream interleaving: per stream, the
    /// emitted records joined by `\n` are exactly the input lines joined by `\n`.
    #[test]
    fn joining_never_loses_or_reorders_bytes(
        mode in prop_oneof![Just(MultilineMode::Java), Just(MultilineMode::Python), Just(MultilineMode::Go), Just(MultilineMode::Ruby)],
        input in proptest::collection::vec((0usize..3, arb_line(), any::<bool>()), 0..60),
        max in 1usize..80,
    ) {
        let streams = [None, Some(Stream::Stdout), Some(Stream::Stderr)];
        let mut j = joiner(&config(mode), max);
        let mut out = Vec::new();
        let mut now = 0;
        for (i, (s, line, tick)) in input.iter().enumerate() {
            if *tick {
                now += 2 * SEC;
                j.flush_expired(now, &mut out);
            }
            j.push(rec(streams[*s], line), i as u64, now, &mut out);
            if let Some(p) = j.pending_start() {
                prop_assert!(p <= i as u64);
            }
        }
        j.flush_all(&mut out);
        for (k, stream) in streams.iter().enumerate() {
            let want: Vec<&str> = input.iter().filter(|(s, _, _)| *s == k).map(|(_, l, _)| l.as_str()).collect();
            let got: Vec<&str> = out.iter().filter(|r| r.stream == *stream).map(|r| r.line.as_str()).collect();
            prop_assert_eq!(got.join("\n"), want.join("\n"));
        }
    }
}
