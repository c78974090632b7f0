//! The syntax tree of the LogQL subset the indexer executes, and its canonical printing (which
//! parses back to the same tree, so queries can be normalised, logged and cached by text).

use std::fmt;

use model::wire::selector_text::go_quote;

/// A label matcher operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored regex)
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

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

/// A log query: a stream selector followed by line filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogQuery {
    /// The stream selector's matchers, in written order.
    pub matchers: Vec<LabelMatcher>,
    /// Line filters, applied in order (all must pass).
    pub filters: Vec<LineFilter>,
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
            write!(f, " {} {}", filter.op.as_str(), go_quote(&filter.pattern))?;
        }
        Ok(())
    }
}
