//! Binary operators: arithmetic, comparisons (filtering or `bool`), and the set operators, with
//! Prometheus's vector matching (`on`/`ignoring`, `group_left`/`group_right`) and its rules for
//! when `__name__` is dropped.

use std::collections::{HashMap, HashSet};

use model::{FloatHistogram, Labels, METRIC_NAME};
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::annotations::Anchor;
use super::eval::Evaluator;
use super::value::{VSample, Value};
use crate::error::{Error, Result};

/// Arithmetic operators drop the metric name: the result is no longer that metric.
fn drops_name(op: TokenType) -> bool {
    [token::T_ADD, token::T_SUB, token::T_MUL, token::T_DIV, token::T_MOD, token::T_POW, token::T_ATAN2]
        .contains(&op.id())
}

/// Applies `op`; for comparisons returns (lhs, whether the comparison holds).
pub(super) fn apply(op: TokenType, l: f64, r: f64) -> Result<(f64, bool)> {
    let id = op.id();
    let value = match id {
        token::T_ADD => l + r,
        token::T_SUB => l - r,
        token::T_MUL => l * r,
        token::T_DIV => l / r,
        token::T_MOD => l % r,
        token::T_POW => l.powf(r),
        token::T_ATAN2 => l.atan2(r),
        token::T_EQLC => return Ok((l, l == r)),
        token::T_NEQ => return Ok((l, l != r)),
        token::T_GTR => return Ok((l, l > r)),
        token::T_LSS => return Ok((l, l < r)),
        token::T_GTE => return Ok((l, l >= r)),
        token::T_LTE => return Ok((l, l <= r)),
        _ => return Err(Error::BadData(format!("operator {op} not allowed here"))),
    };
    Ok((value, true))
}

pub(super) fn eval_binary(ev: &Evaluator<'_>, b: &BinaryExpr, t: i64) -> Result<Value> {
    let lhs = ev.eval(&b.lhs, t)?;
    let rhs = ev.eval(&b.rhs, t)?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let comparison = b.op.is_comparison_operator();
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            let (v, keep) = apply(b.op, l, r)?;
            Ok(Value::Scalar(if comparison { if keep { 1.0 } else { 0.0 } } else { v }))
        }
        (Value::Vector(l), Value::Scalar(r)) => {
            let mut skipped = Vec::new();
            let out = vector_scalar(b.op, l, r, false, return_bool, t, &mut skipped);
            note_incompatible(ev, b.op, skipped);
            out
        }
        (Value::Scalar(l), Value::Vector(r)) => {
            let mut skipped = Vec::new();
            let out = vector_scalar(b.op, r, l, true, return_bool, t, &mut skipped);
            note_incompatible(ev, b.op, skipped);
            out
        }
        (Value::Vector(l), Value::Vector(r)) => {
            if b.op.is_set_operator() {
                Ok(Value::Vector(set_op(b, l, r)))
            } else {
                let mut skipped = Vec::new();
                let out = vector_vector(b, l, r, return_bool, t, &mut skipped);
                note_incompatible(ev, b.op, skipped);
                out
            }
        }
        (l, r) => Err(Error::BadData(format!(
            "binary operator {} not defined between {} and {}",
            b.op,
            l.type_name(),
            r.type_name()
        ))),
    }
}

/// Prometheus's info for elements dropped because the operator is not defined between their
/// sample types (`histogram * histogram`, `float + histogram`, ...).
fn note_incompatible(ev: &Evaluator<'_>, op: TokenType, skipped: Vec<(&'static str, &'static str)>) {
    for (l, r) in skipped {
        let message = format!("incompatible sample types encountered for binary operator \"{op}\": {l} {op} {r}");
        ev.notes.info(Anchor::Query, &message);
    }
}

fn kind(h: Option<&FloatHistogram>) -> &'static str {
    if h.is_some() { "histogram" } else { "float" }
}

fn vector_scalar(
    op: TokenType,
    v: Vec<VSample>,
    s: f64,
    swap: bool,
    return_bool: bool,
    t: i64,
    skipped: &mut Vec<(&'static str, &'static str)>,
) -> Result<Value> {
    let comparison = op.is_comparison_operator();
    let mut out = Vec::with_capacity(v.len());
    for sample in v {
        if let Some(h) = &sample.h {
            let (lh, rh) = if swap { (None, Some(&**h)) } else { (Some(&**h), None) };
            let (lv, rv) = if swap { (s, 0.0) } else { (0.0, s) };
            match histogram_arithmetic(op, lv, lh, rv, rh) {
                Some(h) => out.push(VSample::histogram(sample.labels, t, h, true)),
                None => skipped.push((kind(lh), kind(rh))),
            }
            continue;
        }
        let (l, r) = if swap { (s, sample.v) } else { (sample.v, s) };
        let (mut value, keep) = apply(op, l, r)?;
        if comparison {
            // The vector's value is the output, even when the scalar is on the left.
            value = sample.v;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let drop_name = sample.drop_name || drops_name(op) || return_bool;
        out.push(VSample::float(sample.labels, t, value, drop_name));
    }
    Ok(Value::Vector(out))
}

/// Arithmetic with a histogram operand: histogram `+`/`-` histogram, histogram `*` float (either
/// side), histogram `/` float. Any other combination has no result (the element is dropped).
fn histogram_arithmetic(
    op: TokenType,
    lv: f64,
    lh: Option<&FloatHistogram>,
    rv: f64,
    rh: Option<&FloatHistogram>,
) -> Option<FloatHistogram> {
    let mut out = match (op.id(), lh, rh) {
        (token::T_ADD, Some(l), Some(r)) => {
            let mut h = l.clone();
            h.add(r).ok()?;
            h
        }
        (token::T_SUB, Some(l), Some(r)) => {
            let mut h = l.clone();
            h.sub(r).ok()?;
            h
        }
        (token::T_MUL, Some(l), None) => {
            let mut h = l.clone();
            h.mul(rv);
            h
        }
        (token::T_MUL, None, Some(r)) => {
            let mut h = r.clone();
            h.mul(lv);
            h
        }
        (token::T_DIV, Some(l), None) => {
            let mut h = l.clone();
            h.div(rv);
            h
        }
        _ => return None,
    };
    out.counter_reset_hint = model::CounterResetHint::Gauge;
    out.compact(0);
    Some(out)
}

/// A label set the way Prometheus's `labels.Labels.String()` writes it in error messages:
/// `{__name__="x", a="b"}`.
fn go_labels(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// The part of a label set that decides which samples match.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    let mut b = labels.to_builder();
    match matching {
        Some(LabelModifier::Include(on)) => {
            let keep: Vec<(String, String)> =
                on.labels.iter().filter_map(|n| labels.get(n).map(|v| (n.clone(), v.to_string()))).collect();
            return Labels::from_pairs(keep);
        }
        Some(LabelModifier::Exclude(ignoring)) => {
            for n in &ignoring.labels {
                b.remove(n);
            }
        }
        None => {}
    }
    b.remove(METRIC_NAME);
    b.build()
}

fn set_op(b: &BinaryExpr, lhs: Vec<VSample>, rhs: Vec<VSample>) -> Vec<VSample> {
    let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
    let rhs_sigs: HashSet<Labels> = rhs.iter().map(|s| signature(&s.labels, matching)).collect();
    match b.op.id() {
        token::T_LAND => lhs.into_iter().filter(|s| rhs_sigs.contains(&signature(&s.labels, matching))).collect(),
        token::T_LUNLESS => lhs.into_iter().filter(|s| !rhs_sigs.contains(&signature(&s.labels, matching))).collect(),
        _ => {
            let lhs_sigs: HashSet<Labels> = lhs.iter().map(|s| signature(&s.labels, matching)).collect();
            let mut out = lhs;
            out.extend(rhs.into_iter().filter(|s| !lhs_sigs.contains(&signature(&s.labels, matching))));
            out
        }
    }
}

fn vector_vector(
    b: &BinaryExpr,
    lhs: Vec<VSample>,
    rhs: Vec<VSample>,
    return_bool: bool,
    t: i64,
    skipped: &mut Vec<(&'static str, &'static str)>,
) -> Result<Value> {
    let modifier = b.modifier.as_ref();
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let card = modifier.map(|m| m.card.clone()).unwrap_or(VectorMatchCardinality::OneToOne);
    let (include, one_to_many) = match &card {
        VectorMatchCardinality::ManyToOne(l) => (l.labels.clone(), false),
        VectorMatchCardinality::OneToMany(l) => (l.labels.clone(), true),
        _ => (Vec::new(), false),
    };
    // Work as many-to-one: the "many" side is `many`, the "one" side is `one`.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: HashMap<Labels, &VSample> = HashMap::new();
    for s in &one {
        let sig = signature(&s.labels, matching);
        if let Some(prev) = one_by_sig.insert(sig.clone(), s) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(Error::Execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                go_labels(&sig),
                go_labels(&prev.labels),
                go_labels(&s.labels)
            )));
        }
    }
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let mut matched_sigs: HashSet<Labels> = HashSet::new();
    let mut result_labels: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for m in &many {
        let sig = signature(&m.labels, matching);
        let Some(o) = one_by_sig.get(&sig) else { continue };
        if one_to_one && !matched_sigs.insert(sig.clone()) {
            return Err(Error::Execution(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
            ));
        }
        let (l, r) = if one_to_many { (o.v, m.v) } else { (m.v, o.v) };
        let (lh, rh) = if one_to_many { (o.h.as_deref(), m.h.as_deref()) } else { (m.h.as_deref(), o.h.as_deref()) };
        if lh.is_some() || rh.is_some() {
            let labels = result_metric(&m.labels, &o.labels, one_to_one, matching, &include);
            if b.op.is_comparison_operator() {
                // Histograms compare only for (in)equality, with each other; the counter-reset
                // hint is not part of the value.
                let (Some(x), Some(y)) = (lh, rh) else {
                    skipped.push((kind(lh), kind(rh)));
                    continue;
                };
                let mut y_unhinted = y.clone();
                y_unhinted.counter_reset_hint = model::CounterResetHint::Unknown;
                let equal = x.matches(&y_unhinted, |p, q| p == q);
                let keep = match b.op.id() {
                    token::T_EQLC => equal,
                    token::T_NEQ => !equal,
                    _ => {
                        skipped.push((kind(lh), kind(rh)));
                        continue;
                    }
                };
                if return_bool {
                    out.push(VSample::float(labels, t, if keep { 1.0 } else { 0.0 }, true));
                } else if keep {
                    out.push(VSample::histogram(labels, t, x.clone(), m.drop_name));
                }
            } else {
                match histogram_arithmetic(b.op, l, lh, r, rh) {
                    Some(h) => out.push(VSample::histogram(labels, t, h, true)),
                    None => skipped.push((kind(lh), kind(rh))),
                }
            }
            continue;
        }
        let (mut value, keep) = apply(b.op, l, r)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let labels = result_metric(&m.labels, &o.labels, one_to_one, matching, &include);
        if !one_to_one && !result_labels.insert(labels.clone()) {
            return Err(Error::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        let drop_name = m.drop_name || drops_name(b.op) || return_bool;
        out.push(VSample::float(labels, t, value, drop_name));
    }
    Ok(Value::Vector(out))
}

/// The labels of a vector-matching result; `__name__` stays (delayed removal, see `VSample`).
fn result_metric(
    many: &Labels,
    one: &Labels,
    one_to_one: bool,
    matching: Option<&LabelModifier>,
    include: &[String],
) -> Labels {
    let mut b = many.to_builder();
    if one_to_one {
        match matching {
            Some(LabelModifier::Include(on)) => {
                let mut kept = model::LabelsBuilder::default();
                for n in &on.labels {
                    if let Some(v) = b.get(n) {
                        kept.set(n.clone(), v.to_string());
                    }
                }
                b = kept;
            }
            Some(LabelModifier::Exclude(ignoring)) => {
                for n in &ignoring.labels {
                    b.remove(n);
                }
            }
            None => {}
        }
    }
    for n in include {
        match one.get(n) {
            Some(v) => b.set(n.clone(), v.to_string()),
            None => b.remove(n),
        };
    }
    b.build()
}
