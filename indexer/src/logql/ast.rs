//! The syntax tree of the LogQL subset the indexer executes, and its canonical printing (which
//! parses back to the same tree, so queries can be normalised, logged and cached by text).

use std::fmt;

use model::wire::selector_text::go_quote;

pub use model::MatchOp;

/// One `name op "value"` matcher of a stream selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMatcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Literal value or regex source.
    pub value: String,
}

/// A line filter operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFilterOp {
    /// `|=` the line contains the text.
    Contains,
    /// `!=` the line does not contain the text.
    NotContains,
    /// `|~` the line matches the (unanchored) regex.
    Matches,
    /// `!~` the line does not match the regex.
    NotMatches,
}

impl LineFilterOp {
    fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Matches => "|~",
            LineFilterOp::NotMatches => "!~",
        }
    }
}

/// One line filter stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineFilter {
    /// Operator.
    pub op: LineFilterOp,
    /// Text or regex source.
    pub pattern: String,
}

/// A log query: a stream selector, the line filters written right after it (pushed down into the
/// index), then the rest of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct LogQuery {
    /// The stream selector's matchers, in written order.
    pub matchers: Vec<LabelMatcher>,
    /// Line filters before the first other stage, applied in order (all must pass).
    pub filters: Vec<LineFilter>,
    /// The stages after those filters (parsers, label filters, formatting, more line filters).
    pub stages: Vec<Stage>,
}

/// A comparison of a label filter on numbers, durations or byte sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` (or `=`)
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl CmpOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }

    /// Whether `a op b`.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

/// What a label filter compares a value as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A float (`status >= 500`).
    Number,
    /// A Go duration, compared in seconds (`latency > 250ms`).
    Duration,
    /// A byte size (`size > 1KB`).
    Bytes,
}

/// A label filter expression (`| status >= 500 and level = "error"`).
#[derive(Clone, Debug, PartialEq)]
pub enum LabelFilter {
    /// A string matcher on a label (absent labels read as empty).
    Match(LabelMatcher),
    /// A numeric, duration or bytes comparison; `text` is the literal as written.
    Compare {
        /// Label name.
        name: String,
        /// Operator.
        op: CmpOp,
        /// How values are read.
        kind: ValueKind,
        /// The literal, converted (seconds for durations, bytes for sizes).
        value: f64,
        /// The literal as written, for printing.
        text: String,
    },
    /// Both must pass (`and`, `,` or juxtaposition).
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// Either passes.
    Or(Box<LabelFilter>, Box<LabelFilter>),
}

/// One pipeline stage after the pushed-down line filters.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// A line filter after a parser or formatter.
    LineFilter(LineFilter),
    /// `| json`: every scalar field becomes a label, nested keys joined with `_`.
    Json,
    /// `| logfmt`.
    Logfmt,
    /// `| regexp "<re>"`: named groups become labels.
    Regexp(String),
    /// `| pattern "<_> <ip> ..."`.
    Pattern(String),
    /// `| <label filter>`.
    LabelFilter(LabelFilter),
    /// `| line_format "<template>"`.
    LineFormat(String),
    /// `| drop a, b`.
    Drop(Vec<String>),
    /// `| keep a, b`.
    Keep(Vec<String>),
    /// `| label_format dst=src, dst2="{{.a}}-{{.b}}"`.
    LabelFormat(Vec<LabelFmt>),
}

/// One assignment of `| label_format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelFmt {
    /// `dst=src`: the label moves to a new name.
    Rename {
        /// New name.
        dst: String,
        /// Old name (removed).
        src: String,
    },
    /// `dst="template"`: the label is set from a line_format-style template over the labels as
    /// they were before this stage.
    Template {
        /// Label set.
        dst: String,
        /// The template.
        template: String,
    },
}

impl fmt::Display for LabelFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelFmt::Rename { dst, src } => write!(f, "{dst}={src}"),
            LabelFmt::Template { dst, template } => write!(f, "{dst}={}", go_quote(template)),
        }
    }
}

/// A range aggregation over log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeFunc {
    /// Lines in the range.
    CountOverTime,
    /// Lines per second (with `unwrap`: the sum of the values per second).
    Rate,
    /// Bytes of lines in the range.
    BytesOverTime,
    /// Bytes per second.
    BytesRate,
    /// The following take unwrapped values: their sum, mean, least, greatest, earliest, latest.
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    FirstOverTime,
    LastOverTime,
    /// Population standard deviation and variance.
    StddevOverTime,
    StdvarOverTime,
    /// `quantile_over_time(φ, ...)`, Prometheus's interpolation.
    QuantileOverTime,
    /// Per-second rate of a counter (resets and extrapolation as Prometheus's `rate`).
    RateCounter,
}

/// How `| unwrap` reads the label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwrapConv {
    /// A float.
    Number,
    /// `duration(x)` / `duration_seconds(x)`: a Go duration, in seconds.
    Duration,
    /// `bytes(x)`: a humanized byte size.
    Bytes,
}

/// `| unwrap [conv(]label[)]` and the label filters written after it (`| __error__=""`).
#[derive(Clone, Debug, PartialEq)]
pub struct Unwrap {
    /// The label whose value becomes the sample.
    pub label: String,
    /// How it is read.
    pub conv: UnwrapConv,
    /// The conversion as written (`duration`, `duration_seconds`, `bytes`), for printing.
    pub conv_text: Option<String>,
    /// Label filters after the unwrap.
    pub filters: Vec<LabelFilter>,
}

const RANGE_FUNCS: [(RangeFunc, &str); 14] = [
    (RangeFunc::CountOverTime, "count_over_time"),
    (RangeFunc::Rate, "rate"),
    (RangeFunc::BytesOverTime, "bytes_over_time"),
    (RangeFunc::BytesRate, "bytes_rate"),
    (RangeFunc::SumOverTime, "sum_over_time"),
    (RangeFunc::AvgOverTime, "avg_over_time"),
    (RangeFunc::MinOverTime, "min_over_time"),
    (RangeFunc::MaxOverTime, "max_over_time"),
    (RangeFunc::FirstOverTime, "first_over_time"),
    (RangeFunc::LastOverTime, "last_over_time"),
    (RangeFunc::StddevOverTime, "stddev_over_time"),
    (RangeFunc::StdvarOverTime, "stdvar_over_time"),
    (RangeFunc::QuantileOverTime, "quantile_over_time"),
    (RangeFunc::RateCounter, "rate_counter"),
];

/// The name of `value` in a (value, name) table.
fn name_in<T: PartialEq>(table: &[(T, &'static str)], value: &T) -> &'static str {
    table.iter().find(|(v, _)| v == value).map_or("", |(_, n)| n)
}

/// The value named `name` in a (value, name) table.
fn value_in<T: Copy>(table: &[(T, &'static str)], name: &str) -> Option<T> {
    table.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
}

impl RangeFunc {
    pub(crate) fn as_str(self) -> &'static str {
        name_in(&RANGE_FUNCS, &self)
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        value_in(&RANGE_FUNCS, name)
    }

    /// Whether the function works on lines (counts, bytes) rather than unwrapped values.
    pub fn on_lines(self) -> bool {
        matches!(self, RangeFunc::CountOverTime | RangeFunc::BytesOverTime | RangeFunc::BytesRate)
    }

    /// Whether it needs `| unwrap` (rate takes either).
    pub fn needs_unwrap(self) -> bool {
        !self.on_lines() && self != RangeFunc::Rate
    }
}

/// A vector aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
    /// `topk(k, ...)`
    Topk,
    /// `bottomk(k, ...)`
    Bottomk,
}

impl AggOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Count => "count",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "count" => AggOp::Count,
            "topk" => AggOp::Topk,
            "bottomk" => AggOp::Bottomk,
            _ => return None,
        })
    }
}

/// `by (a, b)` or `without (a, b)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    /// `without` rather than `by`.
    pub without: bool,
    /// The label names.
    pub labels: Vec<String>,
}

/// A metric query.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricExpr {
    /// `count_over_time({...} |= "x" [5m])`.
    Range {
        /// The function.
        func: RangeFunc,
        /// φ of quantile_over_time.
        param: Option<f64>,
        /// The log query selecting lines.
        query: LogQuery,
        /// `| unwrap ...`, for the functions over values.
        unwrap: Option<Unwrap>,
        /// The range in nanoseconds.
        range_ns: i64,
        /// The range as written.
        range_text: String,
        /// `offset <duration>`: the window ends this long before each evaluation time.
        offset_ns: i64,
        /// The offset as written.
        offset_text: Option<String>,
    },
    /// `sum by (x) (...)`, `topk(3, ...)`.
    Aggregate {
        /// The aggregation.
        op: AggOp,
        /// `k` of topk/bottomk.
        param: Option<usize>,
        /// Grouping, if any.
        grouping: Option<Grouping>,
        /// The aggregated expression.
        inner: Box<MetricExpr>,
    },
    /// `lhs op [bool] [on/ignoring(...) [group_x(...)]] rhs`.
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<MetricExpr>,
        /// Right operand.
        rhs: Box<MetricExpr>,
        /// `bool`: comparisons answer 1/0 instead of filtering.
        return_bool: bool,
        /// Vector matching, when written.
        matching: Option<VectorMatching>,
    },
    /// A number literal.
    Number(f64),
}

/// A binary operator between metric expressions and numbers, PromQL's set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Unless,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

const BIN_OPS: [(BinOp, &str); 15] = [
    (BinOp::Or, "or"),
    (BinOp::And, "and"),
    (BinOp::Unless, "unless"),
    (BinOp::Eq, "=="),
    (BinOp::Ne, "!="),
    (BinOp::Gt, ">"),
    (BinOp::Ge, ">="),
    (BinOp::Lt, "<"),
    (BinOp::Le, "<="),
    (BinOp::Add, "+"),
    (BinOp::Sub, "-"),
    (BinOp::Mul, "*"),
    (BinOp::Div, "/"),
    (BinOp::Mod, "%"),
    (BinOp::Pow, "^"),
];

impl BinOp {
    pub(crate) fn as_str(self) -> &'static str {
        name_in(&BIN_OPS, &self)
    }

    pub(crate) fn from_str(s: &str) -> Option<Self> {
        value_in(&BIN_OPS, s)
    }

    /// PromQL's precedence: `or` < `and unless` < comparisons < `+ -` < `* / %` < `^`.
    pub(crate) fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
            BinOp::Pow => 6,
        }
    }

    /// `==`, `!=`, `>`, `>=`, `<`, `<=`.
    pub fn is_comparison(self) -> bool {
        self.precedence() == 3
    }

    /// `and`, `or`, `unless`.
    pub fn is_set(self) -> bool {
        self.precedence() <= 2
    }
}

/// Which side of a many-to-one match has the many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupSide {
    /// `group_left`: many on the left.
    Left,
    /// `group_right`: many on the right.
    Right,
}

/// `on(...)` / `ignoring(...)` and an optional `group_left(...)` / `group_right(...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorMatching {
    /// `on` rather than `ignoring`.
    pub on: bool,
    /// The labels matched on or ignored.
    pub labels: Vec<String>,
    /// Many-to-one matching and the labels copied from the "one" side.
    pub group: Option<(GroupSide, Vec<String>)>,
}

/// A parsed LogQL expression: a log query or a metric query.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// Returns log lines (`streams`).
    Log(LogQuery),
    /// Returns samples (`vector` / `matrix`).
    Metric(MetricExpr),
}

impl fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op.as_str(), go_quote(&self.value))
    }
}

impl fmt::Display for LogQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")?;
        for filter in &self.filters {
            write!(f, " {filter}")?;
        }
        for stage in &self.stages {
            write!(f, " {stage}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LineFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.as_str(), go_quote(&self.pattern))
    }
}

impl fmt::Display for LabelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilter::Match(m) => write!(f, "{m}"),
            LabelFilter::Compare { name, op, text, .. } => write!(f, "{name}{}{text}", op.as_str()),
            // `and` is left-associative: a nested `and` on the right needs parentheses.
            LabelFilter::And(a, b) if matches!(**b, LabelFilter::And(..)) => write!(f, "{a} and ({b})"),
            LabelFilter::And(a, b) => write!(f, "{a} and {b}"),
            LabelFilter::Or(a, b) => write!(f, "({a} or {b})"),
        }
    }
}

fn write_names(f: &mut fmt::Formatter<'_>, names: &[String]) -> fmt::Result {
    f.write_str(&names.join(", "))
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(filter) => write!(f, "{filter}"),
            Stage::Json => f.write_str("| json"),
            Stage::Logfmt => f.write_str("| logfmt"),
            Stage::Regexp(re) => write!(f, "| regexp {}", go_quote(re)),
            Stage::Pattern(p) => write!(f, "| pattern {}", go_quote(p)),
            Stage::LabelFilter(lf) => write!(f, "| {lf}"),
            Stage::LineFormat(t) => write!(f, "| line_format {}", go_quote(t)),
            Stage::Drop(names) => {
                f.write_str("| drop ")?;
                write_names(f, names)
            }
            Stage::LabelFormat(items) => {
                f.write_str("| label_format ")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                Ok(())
            }
            Stage::Keep(names) => {
                f.write_str("| keep ")?;
                write_names(f, names)
            }
        }
    }
}

impl fmt::Display for MetricExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::Range { func, param, query, unwrap, range_text, offset_text, .. } => {
                write!(f, "{}(", func.as_str())?;
                if let Some(p) = param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{query}")?;
                if let Some(u) = unwrap {
                    match &u.conv_text {
                        Some(conv) => write!(f, " | unwrap {conv}({})", u.label)?,
                        None => write!(f, " | unwrap {}", u.label)?,
                    }
                    for filter in &u.filters {
                        write!(f, " | {filter}")?;
                    }
                }
                write!(f, " [{range_text}]")?;
                if let Some(o) = offset_text {
                    write!(f, " offset {o}")?;
                }
                f.write_str(")")
            }
            MetricExpr::Number(v) => write!(f, "{v}"),
            MetricExpr::Binary { op, lhs, rhs, return_bool, matching } => {
                write!(f, "({lhs} {}", op.as_str())?;
                if *return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = matching {
                    write!(f, " {}(", if m.on { "on" } else { "ignoring" })?;
                    write_names(f, &m.labels)?;
                    f.write_str(")")?;
                    if let Some((side, include)) = &m.group {
                        write!(f, " {}(", if *side == GroupSide::Left { "group_left" } else { "group_right" })?;
                        write_names(f, include)?;
                        f.write_str(")")?;
                    }
                }
                write!(f, " {rhs})")
            }
            MetricExpr::Aggregate { op, param, grouping, inner } => {
                f.write_str(op.as_str())?;
                if let Some(g) = grouping {
                    write!(f, " {} (", if g.without { "without" } else { "by" })?;
                    write_names(f, &g.labels)?;
                    f.write_str(")")?;
                }
                match param {
                    Some(k) => write!(f, " ({k}, {inner})"),
                    None => write!(f, " ({inner})"),
                }
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(q) => write!(f, "{q}"),
            Expr::Metric(m) => write!(f, "{m}"),
        }
    }
}
