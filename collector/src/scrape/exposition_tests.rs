//! Exposition parser tests: the reference parser's cases from the shared corpus, real pages, and
//! a property test that formatted samples parse back.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn corpus(rel: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora");
    assert!(root.is_dir(), "the shared test corpus is missing at {} (expected /work/shared/corpora)", root.display());
    root.join(rel)
}

#[test]
fn expfmt_cases_match_expected_tsv() {
    let dir = corpus("exposition/prometheus-common-expfmt/fuzz-corpus");
    let table = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut checked = 0;
    for row in table.lines().skip(1) {
        let fields: Vec<&str> = row.split('\t').collect();
        let (file, expected, message) = (fields[0], fields[1], fields.get(2).copied().unwrap_or(""));
        let text = String::from_utf8(std::fs::read(dir.join(file)).unwrap()).unwrap();
        let result = parse(&text);
        match expected {
            "valid" => assert!(result.is_ok(), "{file}: {result:?}"),
            _ => {
                let err = result.expect_err(file);
                // The reference message names the line: "... in line N: ...".
                if let Some(line) = message.strip_prefix("text format parsing error in line ") {
                    let (number, reference) = line.split_once(':').unwrap();
                    assert_eq!(err.line.to_string(), number, "{file}: {err}");
                    let reference = reference.trim().replace("\\\"", "\"");
                    let head: String = reference.chars().take_while(|c| *c != '"').collect();
                    assert!(err.message.starts_with(head.trim()), "{file}: got {err}, reference {reference}");
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 26);
}

#[test]
fn expfmt_valid_case_values() {
    let dir = corpus("exposition/prometheus-common-expfmt/fuzz-corpus");
    let samples = parse(&std::fs::read_to_string(dir.join("from_test_parse_2")).unwrap()).unwrap();
    let escaped = samples.iter().find(|s| s.labels.iter().any(|(_, v)| v.contains('\n'))).unwrap();
    assert_eq!(escaped.labels[1], ("basename".to_string(), "base\"v\\al\nue".to_string()));
    assert_eq!((escaped.value, escaped.timestamp_ms), (0.23, Some(1234567890)));
    assert!(samples[0].value.is_nan());
    assert!(samples.iter().any(|s| s.name == "name2" && s.value == f64::INFINITY));
    assert!(samples.iter().any(|s| s.name == "name2" && s.value == f64::NEG_INFINITY));
}

#[test]
fn prometheus_textparse_dump_parses_completely() {
    for file in ["alltypes.237mfs.prom.txt", "alltypes.237mfs.nometa.prom.txt"] {
        let text = std::fs::read_to_string(corpus("exposition/prometheus-textparse").join(file)).unwrap();
        let expected = text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).count();
        let samples = parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(samples.len(), expected, "{file}");
        assert!(samples.iter().any(|s| s.name.contains(':') || s.name.ends_with("_bucket")));
    }
}

/// The corpus page and a live node_exporter page's lines (minus the rare odd ones) take the fast
/// path, so its speed is what a scrape gets, and it reads them exactly as the careful path does.
#[test]
fn plain_lines_take_the_fast_path_and_read_as_the_careful_path() {
    let dir = corpus("exposition/prometheus-textparse");
    for file in ["alltypes.237mfs.prom.txt", "alltypes.237mfs.nometa.prom.txt"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let lines = parse_lines(&text, true, |_| {}).unwrap();
        // The few that do not: values the fast float path leaves to `str::parse` (NaN, +Inf,
        // more than 19 digits).
        assert!(lines.plain * 100 >= lines.samples * 97, "{file}: {} of {} plain", lines.plain, lines.samples);
        assert_eq!(comparable(parse(&text)), comparable(parse_carefully(&text)), "{file}");
    }
}

type Comparable = Result<Vec<(String, Vec<(String, String)>, u64, Option<i64>)>, (usize, String)>;

/// Samples compared by the bits of their values (NaN is a value here), errors by line and text.
fn comparable(parsed: Result<Vec<ScrapedSample>, ExpositionError>) -> Comparable {
    parsed
        .map(|samples| samples.into_iter().map(|s| (s.name, s.labels, s.value.to_bits(), s.timestamp_ms)).collect())
        .map_err(|e| (e.line, e.message))
}

/// One line of a generated page: few names and label names so families, repeated label sets and
/// duplicates happen; values with escapes, odd spacing and every kind of number.
fn page_line() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["m", "m_bucket", "m_sum", "m_count", "n", "n_total", "__name__", "1x", "a:b"]);
    let label = prop::sample::select(vec!["le", "quantile", "a", "b", "__name__", "0", "a b"]);
    let text = prop::sample::select(vec!["x", "", "0.5", "+Inf", "1e3", "a\\\"b", "a\\n", "a\\q", "é", "x\"", "a,b}"]);
    let value = prop::sample::select(vec![
        "1",
        "-0",
        "1.5e-3",
        "NaN",
        "+Inf",
        "-Inf",
        "0x1",
        "1_0",
        "",
        "1e",
        "12345678901234567890",
    ]);
    let space = prop::sample::select(vec![" ", "", "  ", "\t"]);
    let sample = (
        name.clone(),
        prop::option::of(prop::collection::vec((label, text, space.clone()), 0..4)),
        space.clone(),
        value,
        prop::option::of(prop::sample::select(vec!["5", "-7", "x", "1.5", "99999999999999999999", ""])),
        prop::sample::select(vec!["", ",", " "]),
    )
        .prop_map(|(name, labels, space, value, ts, trailer)| {
            let mut line = name.to_string();
            if let Some(labels) = labels {
                let pairs: Vec<String> = labels.iter().map(|(l, v, s)| format!("{l}{s}=\"{v}\"")).collect();
                line.push_str(&format!("{{{}{trailer}}}", pairs.join(",")));
            }
            line.push_str(space);
            line.push_str(value);
            if let Some(ts) = ts {
                line.push_str(&format!(" {ts}"));
            }
            line
        });
    let kind = prop::sample::select(vec!["counter", "histogram", "summary", "untyped", "gauge", "other"]);
    let comment = (prop::sample::select(vec!["HELP", "TYPE", "other"]), name, kind)
        .prop_map(|(k, n, t)| format!("# {k} {n} {t}"));
    prop_oneof![6 => sample, 2 => comment, 1 => Just(String::new())]
}

proptest! {
    /// The word-at-a-time search for a label value's end finds the first stop byte, as a plain
    /// search does.
    #[test]
    fn value_stop_finds_the_first_stop_byte(bytes in prop::collection::vec(prop::sample::select(b"a\"\\\n\x80\xff\x00!".to_vec()), 0..40)) {
        let expected = bytes.iter().position(|&c| matches!(c, b'"' | b'\\' | b'\n'));
        prop_assert_eq!(value_stop(&bytes), expected);
    }

    /// Whatever page it reads, the fast path for plain lines gives the samples and the errors the
    /// careful path gives.
    #[test]
    fn fast_path_matches_the_careful_path(lines in prop::collection::vec(page_line(), 1..8), newline in any::<bool>()) {
        let mut text = lines.join("\n");
        if newline {
            text.push('\n');
        }
        prop_assert_eq!(comparable(parse(&text)), comparable(parse_carefully(&text)), "{:?}", text);
    }
}

#[test]
fn expfmt_text_page_parses_and_needs_its_final_newline() {
    let text = std::fs::read_to_string(corpus("exposition/prometheus-common-expfmt/text")).unwrap();
    let samples = parse(&text).unwrap();
    assert_eq!(samples.len(), text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count());
    let cut = text.trim_end_matches('\n');
    let err = parse(cut).unwrap_err();
    assert_eq!((err.line, err.message.as_str()), (cut.lines().count(), "unexpected end of input stream"));
}

#[test]
fn colons_timestamps_and_specials() {
    let page = "job:rate5m{a=\"x\",} 1e3 -5\nm -Inf\nn +Inf\no NaN\n";
    let samples = parse(page).unwrap();
    assert_eq!(samples[0].name, "job:rate5m");
    assert_eq!((samples[0].value, samples[0].timestamp_ms), (1000.0, Some(-5)));
    assert_eq!(samples[1].value, f64::NEG_INFINITY);
    assert!(samples[3].value.is_nan());
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

proptest! {
    #[test]
    fn formatted_samples_parse_back(
        name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "[ -~\n]{0,12}", 0..4),
        value in proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
        ts in proptest::option::of(any::<i64>()),
    ) {
        let labels: Vec<(String, String)> = labels.into_iter().filter(|(n, _)| n != "__name__").collect();
        let rendered: Vec<String> = labels.iter().map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect();
        let mut line = format!("{name}{{{}}} {value:?}", rendered.join(","));
        if let Some(ts) = ts {
            line.push_str(&format!(" {ts}"));
        }
        line.push('\n');
        let parsed = parse(&line).unwrap();
        prop_assert_eq!(parsed, vec![ScrapedSample { name, labels, value, timestamp_ms: ts }]);
    }

    #[test]
    fn arbitrary_input_never_panics(text in "[ -~\n\t]{0,200}") {
        let _ = parse(&text);
    }
}

proptest! {
    /// `parse_float` (the fast path for plain decimals, then `str::parse`) agrees with the
    /// general decimal parser bit for bit, also for leading zeros and lengths around the fast
    /// path's limits.
    #[test]
    fn parse_float_matches_the_general_parser(n in 0u64..10_000_000_000_000_000u64, zeros in 0usize..3, point in 0usize..20) {
        let digits = format!("{}{n}", "0".repeat(zeros));
        let mut decimal = digits.clone();
        decimal.insert(point.min(digits.len()), '.');
        for text in [digits, decimal] {
            prop_assert_eq!(parse_float(&text).map(f64::to_bits), text.parse::<f64>().ok().map(f64::to_bits), "{}", text);
        }
    }
}
