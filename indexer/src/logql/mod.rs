//! LogQL, the query language of Loki, as far as the indexer executes it: stream selectors,
//! chained line filters, parser / label-filter / formatting stages, and metric queries (range and
//! vector aggregations). [`parse`] and [`parse_expr`] give the syntax tree; [`CompiledQuery`]
//! holds compiled regexes and the [`Pipeline`] and answers "does this stream / line match".

pub mod ast;
mod lexer;
mod parser;
mod parser_metric;
mod pipeline;
pub mod values;

use regex::Regex;

pub use ast::{
    AggOp, BinOp, CmpOp, Expr, GroupSide, Grouping, LabelFilter, LabelFmt, LabelMatcher, LineFilter, LineFilterOp,
    LogQuery, MatchOp, MetricExpr, RangeFunc, Stage, Unwrap, UnwrapConv, ValueKind, VectorMatching,
};
use model::Labels;
pub use pipeline::Pipeline;

use crate::error::Error;

/// Parses a LogQL log query (selector, line filters, stages).
pub fn parse(query: &str) -> Result<LogQuery, Error> {
    parser::parse_log_query(query).map_err(Error::BadQuery)
}

/// Parses any LogQL expression the indexer executes: a log query or a metric query.
pub fn parse_expr(query: &str) -> Result<Expr, Error> {
    parser::parse_expr(query).map_err(Error::BadQuery)
}

/// Parses a bare stream selector (`{job="x"}`), as the series API takes them.
pub fn parse_selector(selector: &str) -> Result<Vec<LabelMatcher>, Error> {
    parser::parse_selector(selector).map_err(Error::BadQuery)
}

/// A label matcher ready to evaluate.
#[derive(Clone, Debug)]
pub struct CompiledMatcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Literal for `=`/`!=`.
    pub value: String,
    regex: Option<Regex>,
}

impl CompiledMatcher {
    /// Compiles one matcher; regexes are anchored at both ends as in Prometheus and Loki.
    pub fn new(m: &LabelMatcher) -> Result<Self, Error> {
        let regex = match m.op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{})$", m.value))
                    .map_err(|e| Error::BadQuery(format!("invalid regex in matcher {m}: {e}")))?,
            ),
            _ => None,
        };
        Ok(Self { name: m.name.clone(), op: m.op, value: m.value.clone(), regex })
    }

    /// Whether a label value (empty when the label is absent) satisfies the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (_, None) => false,
        }
    }

    /// Whether a stream's label set satisfies the matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }
}

/// A line filter ready to evaluate.
#[derive(Clone, Debug)]
pub struct CompiledFilter {
    /// Operator.
    pub op: LineFilterOp,
    /// Text or regex source.
    pub pattern: String,
    regex: Option<Regex>,
}

impl CompiledFilter {
    /// Compiles one line filter; regexes are unanchored as in Loki.
    pub fn new(f: &LineFilter) -> Result<Self, Error> {
        let regex = match f.op {
            LineFilterOp::Matches | LineFilterOp::NotMatches => Some(
                Regex::new(&f.pattern)
                    .map_err(|e| Error::BadQuery(format!("invalid regex in line filter {:?}: {e}", f.pattern)))?,
            ),
            _ => None,
        };
        Ok(CompiledFilter { op: f.op, pattern: f.pattern.clone(), regex })
    }

    /// Whether `line` passes this filter.
    pub fn matches(&self, line: &str) -> bool {
        match (self.op, &self.regex) {
            (LineFilterOp::Contains, _) => line.contains(&self.pattern),
            (LineFilterOp::NotContains, _) => !line.contains(&self.pattern),
            (LineFilterOp::Matches, Some(re)) => re.is_match(line),
            (LineFilterOp::NotMatches, Some(re)) => !re.is_match(line),
            (_, None) => false,
        }
    }
}

/// A selector compiled for evaluation against stream label sets.
#[derive(Clone, Debug)]
pub struct CompiledSelector {
    /// The matchers; a stream matches when all do.
    pub matchers: Vec<CompiledMatcher>,
}

impl CompiledSelector {
    /// Compiles matchers, enforcing Loki's rule that a selector must not match every stream.
    pub fn new(matchers: &[LabelMatcher]) -> Result<Self, Error> {
        let matchers = matchers.iter().map(CompiledMatcher::new).collect::<Result<Vec<_>, _>>()?;
        if !matchers.iter().any(|m| !m.matches_value("")) {
            return Err(Error::BadQuery(
                "queries require at least one regexp or equality matcher that does not have an empty-compatible value. \
                 For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"
                    .to_string(),
            ));
        }
        Ok(Self { matchers })
    }

    /// Whether a stream's labels satisfy every matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// A log query compiled for execution.
#[derive(Clone, Debug)]
pub struct CompiledQuery {
    /// Stream selection.
    pub selector: CompiledSelector,
    /// Line filters, all of which must pass.
    pub filters: Vec<CompiledFilter>,
    /// The stages after the line filters.
    pub pipeline: Pipeline,
}

impl CompiledQuery {
    /// Parses and compiles `query`.
    pub fn parse(query: &str) -> Result<Self, Error> {
        Self::compile(&parse(query)?)
    }

    /// Compiles a parsed query.
    pub fn compile(query: &LogQuery) -> Result<Self, Error> {
        let selector = CompiledSelector::new(&query.matchers)?;
        let filters = query.filters.iter().map(CompiledFilter::new).collect::<Result<Vec<_>, Error>>()?;
        let pipeline = Pipeline::compile(&query.stages)?;
        Ok(Self { selector, filters, pipeline })
    }

    /// Whether `line` passes every line filter.
    pub fn line_matches(&self, line: &str) -> bool {
        self.filters.iter().all(|f| f.matches(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_selector_and_filters() {
        let q = parse(
            r#"{job="api", pod=~"web-.*", env!="dev", zone!~`us-.*`} |= "error" != `timeout` |~ "(?i)fail" !~ "x\ty""#,
        )
        .unwrap();
        assert_eq!(q.matchers.len(), 4);
        assert_eq!(q.matchers[1], LabelMatcher { name: "pod".into(), op: MatchOp::Regex, value: "web-.*".into() });
        assert_eq!(q.matchers[3].op, MatchOp::NotRegex);
        assert_eq!(q.filters.len(), 4);
        assert_eq!(q.filters[1], LineFilter { op: LineFilterOp::NotContains, pattern: "timeout".into() });
        assert_eq!(q.filters[3].pattern, "x\ty");
        assert_eq!(
            q.to_string(),
            r#"{job="api", pod=~"web-.*", env!="dev", zone!~"us-.*"} |= "error" != "timeout" |~ "(?i)fail" !~ "x\ty""#
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let err = parse(r#"{job="api" pod="x"}"#).unwrap_err().to_string();
        assert_eq!(err, r#"parse error at line 1, col 12: unexpected identifier "pod", expected ',' or '}'"#);
        let err = parse("{job=\"a\"}\n  |= 42").unwrap_err().to_string();
        assert!(err.starts_with("parse error at line 2, col 6:"), "{err}");
        let err = parse(r#"{job="a"#).unwrap_err().to_string();
        assert!(err.contains("col 6") && err.contains("string"), "{err}");
        assert!(parse("").unwrap_err().to_string().contains("empty query"));
        assert!(parse("{job=\"a\"}").is_ok());
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let cases = [
            (r#"{job="a"} | json foo="bar""#, "`| json` with parameters"),
            (r#"{job="a"} |= "x" | unwrap latency"#, "`| unwrap` belongs in a range aggregation"),
            (r#"sum(rate({job="a"}[1m])) + on(x) 2"#, "vector matching only allowed between vectors"),
            (r#"{job="a"}[5m]"#, "unexpected '['"),
            (r#"{job="a"} |> "<_> x""#, "pattern line filters (`|>`)"),
            (r#"{job="a"} |= "x" or "y""#, "`or` in line filters"),
            (r#"{job="a"} |= ip("10.0.0.1")"#, "ip() line filters"),
        ];
        for (q, want) in cases {
            let err = parse(q).unwrap_err().to_string();
            assert!(err.contains(want), "{q}: {err}");
            assert!(err.starts_with("parse error at line 1, col "), "{q}: {err}");
        }
    }

    #[test]
    fn parses_stages_and_prints_them_back() {
        let text = r#"{job="api"} |= "GET" | json | status >= 500 and latency > 250ms, size <= 1KiB or level=~"err.*" != "x" | logfmt | regexp "(?P<a>\\d+)" | pattern "<ip> <_>" | line_format "{{.a}}" | drop a, b | keep c"#;
        let q = parse(text).unwrap();
        assert_eq!(q.filters.len(), 1);
        assert_eq!(q.stages.len(), 9, "{:?}", q.stages);
        assert_eq!(q.stages[0], Stage::Json);
        let Stage::LabelFilter(LabelFilter::Or(left, right)) = &q.stages[1] else { panic!("{:?}", q.stages[1]) };
        assert!(matches!(**right, LabelFilter::Match(LabelMatcher { op: MatchOp::Regex, .. })));
        let LabelFilter::And(ab, c) = &**left else { panic!("{left:?}") };
        assert!(matches!(**c, LabelFilter::Compare { kind: ValueKind::Bytes, op: CmpOp::Le, value: 1024.0, .. }));
        let LabelFilter::And(a, b) = &**ab else { panic!("{ab:?}") };
        assert!(matches!(**a, LabelFilter::Compare { kind: ValueKind::Number, op: CmpOp::Ge, value: 500.0, .. }));
        assert!(matches!(**b, LabelFilter::Compare { kind: ValueKind::Duration, op: CmpOp::Gt, value: 0.25, .. }));
        assert_eq!(q.stages[2], Stage::LineFilter(LineFilter { op: LineFilterOp::NotContains, pattern: "x".into() }));
        assert_eq!(q.stages[7], Stage::Drop(vec!["a".into(), "b".into()]));
        let printed = q.to_string();
        assert_eq!(parse(&printed).unwrap(), q, "{printed}");
    }

    #[test]
    fn parses_metric_queries() {
        let Expr::Metric(MetricExpr::Aggregate { op, param, grouping, inner }) =
            parse_expr(r#"topk by (job) (3, rate({job="a"} |= "x" | json [5m]))"#).unwrap()
        else {
            panic!("not an aggregate")
        };
        assert_eq!((op, param), (AggOp::Topk, Some(3)));
        assert_eq!(grouping, Some(Grouping { without: false, labels: vec!["job".into()] }));
        let MetricExpr::Range { func, query, range_ns, .. } = *inner else { panic!("not a range") };
        assert_eq!((func, range_ns), (RangeFunc::Rate, 300_000_000_000));
        assert_eq!(query.filters.len(), 1);
        assert_eq!(query.stages, vec![Stage::Json]);
        for text in [
            r#"sum(count_over_time({job="a"}[1m])) without (pod, ns)"#,
            r#"bytes_rate({job="a"}[30s])"#,
            r#"max by (level) (bytes_over_time({job="a"} | logfmt [1h]))"#,
            r#"avg(min(count_over_time({job="a"}[1m])))"#,
            r#"count(bottomk(2, count_over_time({job="a"}[1m])))"#,
            r#"sum(rate({job="a"}[1m])) / on(job) group_left(team) sum by (job, team) (rate({job="b"}[1m])) > bool 0.5"#,
            r#"2 ^ 3 ^ count_over_time({job="a"}[1m]) - 1 * 4 or rate({job="b"}[1m]) unless rate({job="c"}[1m])"#,
            r#"(rate({job="a"}[1m]) + ignoring(pod) rate({job="b"}[1m])) % 3"#,
        ] {
            let e = parse_expr(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parse_expr(&e.to_string()).unwrap(), e, "{text} -> {e}");
        }
        assert!(matches!(parse_expr(r#"{job="a"} | json"#).unwrap(), Expr::Log(_)));
    }

    #[test]
    fn new_constructs_report_positions() {
        let cases = [
            (r#"{job="a"} | status >= "x""#, "col 23", "a number, duration or byte size"),
            (r#"{job="a"} | status >= 5xyz"#, "col 23", "invalid value"),
            (r#"{job="a"} | status"#, "col 19", "label filter operator"),
            (r#"{job="a"} | (a="b""#, "col 19", "')'"),
            (r#"{job="a"} | regexp"#, "col 19", "quoted string after `regexp`"),
            (r#"{job="a"} | line_format 3"#, "col 25", "quoted string after `line_format`"),
            (r#"{job="a"} | drop 1"#, "col 18", "label name after `drop`"),
            (r#"{job="a"} | drop a="b""#, "col 19", "matchers in `| drop`"),
            (r#"{job="a"} |"#, "col 12", "pipeline stage"),
            (r#"count_over_time({job="a"})"#, "col 26", "'['"),
            (r#"count_over_time({job="a"}[5x])"#, "col 27", "invalid range"),
            (r#"rate({job="a"}[5m] offset 1x)"#, "col 27", "invalid offset"),
            (r#"sum_over_time({job="a"}[5m])"#, "col 14", "without unwrap"),
            (r#"count_over_time({job="a"} | unwrap x [5m])"#, "col 29", "count_over_time with unwrap"),
            (r#"sum_over_time({job="a"} | unwrap x | json [5m])"#, "col 38", "only label filters"),
            (r#"sum_over_time({job="a"} | unwrap secs(x) [5m])"#, "col 34", "unknown conversion"),
            (r#"quantile_over_time(x, {job="a"} | unwrap x [5m])"#, "col 20", "the quantile"),
            (r#"topk(x, rate({job="a"}[5m]))"#, "col 6", "number of series"),
            (r#"topk(0, rate({job="a"}[5m]))"#, "col 6", "positive integer"),
            (r#"sum by job (rate({job="a"}[5m]))"#, "col 8", "'('"),
            (r#"sum(rate({job="a"}[5m])"#, "col 24", "')' closing sum"),
            (r#"sum({job="a"})"#, "col 5", "metric expression"),
            (r#"1 > 2"#, "col 3", "must use the bool modifier"),
            (r#"rate({job="a"}[5m]) + bool 2"#, "col 21", "bool modifier can only be used on comparison"),
            (r#"rate({job="a"}[5m]) and 2"#, "col 21", "set operator `and` not allowed with a number"),
            (r#"rate({job="a"}[5m]) * on(x) group_left(y rate({job="a"}[5m])"#, "col 42", "',' or ')'"),
            (r#"sum(rate({job="a"}[5m])) by (x) without (y)"#, "col 33", "end of query"),
        ];
        for (q, col, want) in cases {
            let err = parse_expr(q).unwrap_err().to_string();
            assert!(
                err.starts_with("parse error at line 1, ") && err.contains(col) && err.contains(want),
                "{q}: {err}"
            );
        }
    }

    #[test]
    fn compile_checks_regexes_and_empty_matching_selectors() {
        assert!(CompiledQuery::parse(r#"{job=~"("}"#).unwrap_err().to_string().contains("invalid regex"));
        assert!(CompiledQuery::parse(r#"{job="a"} |~ "(""#).unwrap_err().to_string().contains("invalid regex"));
        assert!(CompiledQuery::parse(r#"{job=~".*"}"#).unwrap_err().to_string().contains("empty-compatible"));
        assert!(CompiledQuery::parse(r#"{}"#).is_err());
        let q = CompiledQuery::parse(r#"{job=~"api|web", env!="dev"} |~ "(?i)error" != "debug""#).unwrap();
        let l = Labels::from_pairs([("job", "api")]);
        assert!(q.selector.matches(&l));
        assert!(!q.selector.matches(&Labels::from_pairs([("job", "apix")])), "regex is anchored");
        assert!(!q.selector.matches(&Labels::from_pairs([("job", "api"), ("env", "dev")])));
        assert!(q.line_matches("an ERROR happened"));
        assert!(!q.line_matches("debug: error"));
    }

    fn matcher() -> impl Strategy<Value = LabelMatcher> {
        let op =
            prop_oneof![Just(MatchOp::Equal), Just(MatchOp::NotEqual), Just(MatchOp::Regex), Just(MatchOp::NotRegex)];
        ("[a-zA-Z_][a-zA-Z0-9_]{0,6}", op, "\\PC{0,8}").prop_map(|(name, op, value)| LabelMatcher { name, op, value })
    }

    fn filter() -> impl Strategy<Value = LineFilter> {
        let op = prop_oneof![
            Just(LineFilterOp::Contains),
            Just(LineFilterOp::NotContains),
            Just(LineFilterOp::Matches),
            Just(LineFilterOp::NotMatches)
        ];
        (op, "(\\PC|[\t\n\"\\\\`]){0,10}").prop_map(|(op, pattern)| LineFilter { op, pattern })
    }

    fn label_name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_]{0,5}".prop_map(|n| format!("l_{n}"))
    }

    fn label_filter() -> impl Strategy<Value = LabelFilter> {
        let literal = prop::sample::select(vec!["500", "1.5", "0", "250ms", "1h30m", "1KB", "2MiB"]);
        let cmp = prop::sample::select(vec![CmpOp::Eq, CmpOp::Ne, CmpOp::Gt, CmpOp::Ge, CmpOp::Lt, CmpOp::Le]);
        let compare = (label_name(), cmp, literal).prop_map(|(name, op, text)| {
            let (kind, value) = if let Ok(v) = text.parse::<f64>() {
                (ValueKind::Number, v)
            } else if let Some(v) = values::parse_go_duration(text) {
                (ValueKind::Duration, v)
            } else {
                (ValueKind::Bytes, values::parse_bytes(text).unwrap_or_default())
            };
            LabelFilter::Compare { name, op, kind, value, text: text.to_string() }
        });
        let leaf = prop_oneof![
            matcher().prop_map(|mut m| {
                m.name = format!("l_{}", m.name);
                LabelFilter::Match(m)
            }),
            compare
        ];
        leaf.prop_recursive(3, 8, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| LabelFilter::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| LabelFilter::Or(Box::new(a), Box::new(b))),
            ]
        })
    }

    fn stage() -> impl Strategy<Value = Stage> {
        let text = "(\\PC|[\t\"\\\\`]){0,10}";
        prop_oneof![
            Just(Stage::Json),
            Just(Stage::Logfmt),
            filter().prop_map(Stage::LineFilter),
            text.prop_map(Stage::Regexp),
            text.prop_map(Stage::Pattern),
            text.prop_map(Stage::LineFormat),
            label_filter().prop_map(Stage::LabelFilter),
            proptest::collection::vec((label_name(), label_name(), prop::option::of(text)), 1..3).prop_map(|items| {
                Stage::LabelFormat(
                    items
                        .into_iter()
                        .map(|(dst, src, template)| match template {
                            Some(template) => LabelFmt::Template { dst, template },
                            None => LabelFmt::Rename { dst, src },
                        })
                        .collect(),
                )
            }),
        ]
    }

    fn log_query() -> impl Strategy<Value = LogQuery> {
        (
            proptest::collection::vec(matcher(), 0..3),
            proptest::collection::vec(filter(), 0..3),
            prop_oneof![Just(Stage::Json), Just(Stage::Logfmt)],
            proptest::collection::vec(stage(), 0..4),
            prop::option::of((any::<bool>(), proptest::collection::vec(label_name(), 1..3))),
        )
            .prop_map(|(matchers, filters, first, mut stages, last)| {
                stages.insert(0, first);
                if let Some((drop, names)) = last {
                    stages.push(if drop { Stage::Drop(names) } else { Stage::Keep(names) });
                }
                LogQuery { matchers, filters, stages }
            })
    }

    fn metric_expr() -> impl Strategy<Value = MetricExpr> {
        let func = prop::sample::select(vec![
            RangeFunc::CountOverTime,
            RangeFunc::Rate,
            RangeFunc::BytesOverTime,
            RangeFunc::BytesRate,
        ]);
        let range =
            prop::sample::select(vec![("5m", 300_000_000_000i64), ("30s", 30_000_000_000), ("250ms", 250_000_000)]);
        let unwrap = prop::option::of((
            label_name(),
            prop::sample::select(vec![
                (UnwrapConv::Number, None),
                (UnwrapConv::Duration, Some("duration")),
                (UnwrapConv::Bytes, Some("bytes")),
            ]),
        ));
        let offset =
            prop::option::of(prop::sample::select(vec![("1h", 3_600_000_000_000i64), ("90s", 90_000_000_000)]));
        let leaf = (func, log_query(), range, unwrap, offset).prop_map(|(func, query, (text, ns), unwrap, offset)| {
            // An unwrap turns the line functions into their value counterparts.
            let (func, param, unwrap) = match unwrap {
                Some((label, (conv, conv_text))) => {
                    let func = if func == RangeFunc::Rate { RangeFunc::Rate } else { RangeFunc::QuantileOverTime };
                    let param = (func == RangeFunc::QuantileOverTime).then_some(0.9);
                    let u = Unwrap { label, conv, conv_text: conv_text.map(str::to_string), filters: Vec::new() };
                    (func, param, Some(u))
                }
                None => (func, None, None),
            };
            MetricExpr::Range {
                func,
                param,
                query,
                unwrap,
                range_ns: ns,
                range_text: text.to_string(),
                offset_ns: offset.map_or(0, |o| o.1),
                offset_text: offset.map(|o| o.0.to_string()),
            }
        });
        let op = prop::sample::select(vec![
            AggOp::Sum,
            AggOp::Avg,
            AggOp::Min,
            AggOp::Max,
            AggOp::Count,
            AggOp::Topk,
            AggOp::Bottomk,
        ]);
        let grouping = || {
            prop::option::of(
                (any::<bool>(), proptest::collection::vec(label_name(), 0..3))
                    .prop_map(|(without, labels)| Grouping { without, labels }),
            )
        };
        let bin_op = prop::sample::select(vec![
            BinOp::Or,
            BinOp::And,
            BinOp::Unless,
            BinOp::Eq,
            BinOp::Ne,
            BinOp::Gt,
            BinOp::Le,
            BinOp::Add,
            BinOp::Sub,
            BinOp::Mul,
            BinOp::Div,
            BinOp::Mod,
            BinOp::Pow,
        ]);
        let matching = || {
            prop::option::of((
                any::<bool>(),
                proptest::collection::vec(label_name(), 0..3),
                prop::option::of((any::<bool>(), proptest::collection::vec(label_name(), 0..2))),
            ))
        };
        leaf.prop_recursive(2, 4, 2, move |inner| {
            prop_oneof![
                (op.clone(), 1usize..9, grouping(), inner.clone()).prop_map(|(op, k, grouping, inner)| {
                    let param = matches!(op, AggOp::Topk | AggOp::Bottomk).then_some(k);
                    MetricExpr::Aggregate { op, param, grouping, inner: Box::new(inner) }
                }),
                (
                    bin_op.clone(),
                    any::<bool>(),
                    matching(),
                    inner.clone(),
                    prop_oneof![inner, (0u32..100).prop_map(|n| MetricExpr::Number(f64::from(n) / 4.0))]
                )
                    .prop_map(|(op, want_bool, matching, lhs, rhs)| {
                        let number = matches!(rhs, MetricExpr::Number(_));
                        let matching = matching.filter(|_| !number).map(|(on, labels, group)| VectorMatching {
                            on,
                            labels,
                            group: group.filter(|_| !op.is_set()).map(|(left, include)| {
                                (if left { GroupSide::Left } else { GroupSide::Right }, include)
                            }),
                        });
                        let op = if number && op.is_set() { BinOp::Add } else { op };
                        MetricExpr::Binary {
                            op,
                            lhs: Box::new(lhs),
                            rhs: Box::new(rhs),
                            return_bool: want_bool && op.is_comparison(),
                            matching,
                        }
                    }),
            ]
        })
    }

    proptest! {
        #[test]
        fn pipelines_and_metric_queries_print_and_parse_back(query in log_query(), metric in metric_expr()) {
            let printed = query.to_string();
            let reparsed = parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
            prop_assert_eq!(&reparsed, &query, "{}", printed);
            let printed = metric.to_string();
            let reparsed = parse_expr(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
            prop_assert_eq!(reparsed, Expr::Metric(metric), "{}", printed);
        }

        #[test]
        fn print_parse_round_trips(matchers in proptest::collection::vec(matcher(), 0..4),
                                   filters in proptest::collection::vec(filter(), 0..4)) {
            let query = LogQuery { matchers, filters, stages: Vec::new() };
            let printed = query.to_string();
            let reparsed = parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
            prop_assert_eq!(&reparsed, &query);
            prop_assert_eq!(reparsed.to_string(), printed);
        }

        #[test]
        fn parser_never_panics(input in "\\PC{0,40}") {
            let _ = parse(&input);
        }
    }
}
