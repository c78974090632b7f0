//! Warn and info annotations: what Prometheus returns beside a result when a query is legal but
//! suspicious (a quantile outside [0, 1], a bucket without a usable `le`, ...). Each names where
//! in the query it applies as `(line:column)`, like Prometheus. `promql-parser`'s AST carries no
//! positions, so a node is found in the text by its order among nodes of the same name.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use promql_parser::parser::{AggregateExpr, Call, Expr};

/// The annotations of one query, deduplicated by text and sorted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// The sub-expression an annotation points at.
pub(super) enum Anchor<'e> {
    /// Argument `n` of a function call.
    CallArg(&'e Call, usize),
    /// The call itself.
    Call(&'e Call),
    /// The parameter of an aggregation (`quantile(0.9, ...)`'s 0.9).
    AggParam(&'e AggregateExpr),
    /// An aggregation as a whole.
    Aggregation(&'e AggregateExpr),
    /// The start of the query (binary expressions carry no position to find them by).
    Query,
}

/// Collects annotations while a query is evaluated.
pub(super) struct Collector<'q> {
    query: &'q str,
    /// Node address -> its index among the nodes of the same name, in textual (pre-)order.
    occurrence: HashMap<usize, usize>,
    warnings: RefCell<BTreeSet<String>>,
    infos: RefCell<BTreeSet<String>>,
}

fn address<T>(node: &T) -> usize {
    node as *const T as usize
}

fn number_nodes(expr: &Expr, counts: &mut HashMap<String, usize>, out: &mut HashMap<usize, usize>) {
    let mut note = |key: String, addr: usize| {
        let n = counts.entry(key).or_default();
        out.insert(addr, *n);
        *n += 1;
    };
    match expr {
        Expr::Aggregate(a) => {
            note(format!("agg:{}", a.op.to_string().to_lowercase()), address(a));
            if let Some(p) = &a.param {
                number_nodes(p, counts, out);
            }
            number_nodes(&a.expr, counts, out);
        }
        Expr::Call(c) => {
            note(format!("fn:{}", c.func.name), address(c));
            c.args.args.iter().for_each(|a| number_nodes(a, counts, out));
        }
        Expr::Unary(u) => number_nodes(&u.expr, counts, out),
        Expr::Binary(b) => {
            number_nodes(&b.lhs, counts, out);
            number_nodes(&b.rhs, counts, out);
        }
        Expr::Paren(p) => number_nodes(&p.expr, counts, out),
        Expr::Subquery(s) => number_nodes(&s.expr, counts, out),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

impl<'q> Collector<'q> {
    pub(super) fn new(query: &'q str, expr: &Expr) -> Self {
        let mut occurrence = HashMap::new();
        number_nodes(expr, &mut HashMap::new(), &mut occurrence);
        Self { query, occurrence, warnings: RefCell::default(), infos: RefCell::default() }
    }

    pub(super) fn warn(&self, anchor: Anchor<'_>, message: &str) {
        let text = format!("PromQL warning: {message} ({})", self.position(&anchor));
        self.warnings.borrow_mut().insert(text);
    }

    pub(super) fn info(&self, anchor: Anchor<'_>, message: &str) {
        let text = format!("PromQL info: {message} ({})", self.position(&anchor));
        self.infos.borrow_mut().insert(text);
    }

    pub(super) fn take(&self) -> Annotations {
        Annotations {
            warnings: self.warnings.borrow().iter().cloned().collect(),
            infos: self.infos.borrow().iter().cloned().collect(),
        }
    }

    /// `line:column` of the anchor, 1-based, columns in bytes (as Prometheus counts them).
    fn position(&self, anchor: &Anchor<'_>) -> String {
        let offset = match anchor {
            Anchor::Call(c) => self.find_open(false, c.func.name, address(*c)).map(|(start, _)| start),
            Anchor::CallArg(c, n) => {
                self.find_open(false, c.func.name, address(*c)).and_then(|(_, open)| arg_start(self.query, open, *n))
            }
            Anchor::Query => Some(0),
            Anchor::Aggregation(a) => {
                let name = a.op.to_string().to_lowercase();
                self.find_open(true, &name, address(*a)).map(|(start, _)| start)
            }
            Anchor::AggParam(a) => {
                let name = a.op.to_string().to_lowercase();
                self.find_open(true, &name, address(*a)).and_then(|(_, open)| arg_start(self.query, open, 0))
            }
        }
        .unwrap_or(0);
        let before = &self.query.as_bytes()[..offset.min(self.query.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = offset - before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
        format!("{line}:{column}")
    }

    /// The start of the node's name and the offset of its argument list's `(`.
    fn find_open(&self, aggregation: bool, name: &str, addr: usize) -> Option<(usize, usize)> {
        let nth = *self.occurrence.get(&addr)?;
        openings(self.query, name, aggregation).into_iter().nth(nth)
    }
}

/// Byte ranges of string literals and comments, which the scanners skip.
fn skip_literal(bytes: &[u8], i: usize) -> usize {
    match bytes[i] {
        q @ (b'"' | b'\'' | b'`') => {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != q {
                j += if bytes[j] == b'\\' && q != b'`' { 2 } else { 1 };
            }
            j + 1
        }
        b'#' => bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p),
        _ => i,
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Every place `name` is applied, in textual order: (start of the name, its `(`). For an
/// aggregation the name is case-insensitive and a `by (...)`/`without (...)` clause may sit
/// between the name and the arguments.
fn openings(query: &str, name: &str, aggregation: bool) -> Vec<(usize, usize)> {
    let bytes = query.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let skipped = skip_literal(bytes, i);
        if skipped != i {
            i = skipped;
            continue;
        }
        if !is_ident(bytes[i]) || (i > 0 && is_ident(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        let word = &query[start..i];
        let same = if aggregation { word.eq_ignore_ascii_case(name) } else { word == name };
        if !same {
            continue;
        }
        let mut j = skip_space(bytes, i);
        if aggregation {
            let rest = &query[j..];
            let lower = rest.get(..7).unwrap_or(rest).to_ascii_lowercase();
            let clause = if lower.starts_with("by") && !rest.as_bytes().get(2).copied().is_some_and(is_ident) {
                Some(2)
            } else if lower.starts_with("without") && !rest.as_bytes().get(7).copied().is_some_and(is_ident) {
                Some(7)
            } else {
                None
            };
            if let Some(len) = clause {
                j = skip_space(bytes, j + len);
                if bytes.get(j) == Some(&b'(') {
                    j = bytes[j..].iter().position(|&b| b == b')').map_or(bytes.len(), |p| j + p + 1);
                    j = skip_space(bytes, j);
                }
            }
        }
        if bytes.get(j) == Some(&b'(') {
            out.push((start, j));
        }
    }
    out
}

/// Where argument `n` starts in the argument list opened at `open`.
fn arg_start(query: &str, open: usize, n: usize) -> Option<usize> {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    let mut i = open + 1;
    if n == 0 {
        return Some(skip_space(bytes, i));
    }
    while i < bytes.len() {
        let skipped = skip_literal(bytes, i);
        if skipped != i {
            i = skipped;
            continue;
        }
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => return None,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                index += 1;
                if index == n {
                    return Some(skip_space(bytes, i + 1));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_call(expr: &Expr) -> Option<&Call> {
        match expr {
            Expr::Call(c) => Some(c),
            Expr::Aggregate(a) => first_call(&a.expr),
            Expr::Paren(p) => first_call(&p.expr),
            _ => None,
        }
    }

    #[test]
    fn positions_point_at_arguments_and_calls() {
        let q = "histogram_fraction(-Inf, 1, series)";
        let expr = promql_parser::parser::parse(q).unwrap();
        let c = Collector::new(q, &expr);
        let call = first_call(&expr).unwrap();
        c.warn(Anchor::CallArg(call, 2), "x");
        assert_eq!(c.take().warnings, vec!["PromQL warning: x (1:29)".to_string()]);

        let q = "sum(sort(series))";
        let expr = promql_parser::parser::parse(q).unwrap();
        let c = Collector::new(q, &expr);
        c.info(Anchor::Call(first_call(&expr).unwrap()), "y");
        assert_eq!(c.take().infos, vec!["PromQL info: y (1:5)".to_string()]);

        let q = "quantile without(point)((scalar(foo)), data)";
        let expr = promql_parser::parser::parse(q).unwrap();
        let Expr::Aggregate(a) = &expr else { panic!("not an aggregation") };
        let c = Collector::new(q, &expr);
        c.warn(Anchor::AggParam(a), "z");
        assert_eq!(c.take().warnings, vec!["PromQL warning: z (1:25)".to_string()]);
    }
}
