//! Binary operations of metric queries, with PromQL's semantics: arithmetic and comparisons
//! (filtering, or 1/0 with `bool`) between vectors and numbers, one-to-one and many-to-one vector
//! matching (`on`/`ignoring`, `group_left`/`group_right`), and the set operators `and`, `or`,
//! `unless`. LogQL series have no `__name__`, so no name is dropped.

use std::collections::{HashMap, HashSet};

use model::Labels;

use crate::error::Error;
use crate::logql::{BinOp, GroupSide, VectorMatching};

/// One instant vector.
pub(crate) type Vector = Vec<(Labels, f64)>;

/// `a op b` for arithmetic; for comparisons, whether it holds as 1/0.
fn apply(op: BinOp, a: f64, b: f64) -> f64 {
    let truth = |t: bool| if t { 1.0 } else { 0.0 };
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        // Go's math.Mod, as Prometheus: the sign of the dividend.
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Eq => truth(a == b),
        BinOp::Ne => truth(a != b),
        BinOp::Gt => truth(a > b),
        BinOp::Ge => truth(a >= b),
        BinOp::Lt => truth(a < b),
        BinOp::Le => truth(a <= b),
        BinOp::Or | BinOp::And | BinOp::Unless => f64::NAN,
    }
}

/// The value of one element pair, or `None` when a filtering comparison drops it.
/// `lhs_value` is kept by a filtering comparison, as Prometheus keeps the left sample.
fn element(op: BinOp, return_bool: bool, a: f64, b: f64, kept: f64) -> Option<f64> {
    let v = apply(op, a, b);
    if !op.is_comparison() || return_bool {
        return Some(v);
    }
    (v == 1.0).then_some(kept)
}

/// Number op number (comparisons have `bool`, the parser checks).
pub(crate) fn scalar_scalar(op: BinOp, a: f64, b: f64) -> f64 {
    apply(op, a, b)
}

/// Vector op number, or number op vector when `scalar_left`.
pub(crate) fn vector_scalar(op: BinOp, return_bool: bool, vector: Vector, scalar: f64, scalar_left: bool) -> Vector {
    vector
        .into_iter()
        .filter_map(|(labels, v)| {
            let (a, b) = if scalar_left { (scalar, v) } else { (v, scalar) };
            element(op, return_bool, a, b, v).map(|r| (labels, r))
        })
        .collect()
}

fn signature(labels: &Labels, matching: Option<&VectorMatching>) -> Labels {
    match matching {
        None => labels.clone(),
        Some(m) => Labels::from_pairs(
            labels.iter().filter(|l| m.labels.contains(&l.name) == m.on).map(|l| (l.name.clone(), l.value.clone())),
        ),
    }
}

/// Vector op vector.
pub(crate) fn vector_vector(
    op: BinOp,
    return_bool: bool,
    matching: Option<&VectorMatching>,
    lhs: Vector,
    rhs: Vector,
) -> Result<Vector, Error> {
    let sig = |l: &Labels| signature(l, matching);
    match op {
        BinOp::And => {
            let right: HashSet<Labels> = rhs.iter().map(|(l, _)| sig(l)).collect();
            return Ok(lhs.into_iter().filter(|(l, _)| right.contains(&sig(l))).collect());
        }
        BinOp::Unless => {
            let right: HashSet<Labels> = rhs.iter().map(|(l, _)| sig(l)).collect();
            return Ok(lhs.into_iter().filter(|(l, _)| !right.contains(&sig(l))).collect());
        }
        BinOp::Or => {
            let left: HashSet<Labels> = lhs.iter().map(|(l, _)| sig(l)).collect();
            let mut out = lhs;
            out.extend(rhs.into_iter().filter(|(l, _)| !left.contains(&sig(l))));
            return Ok(out);
        }
        _ => {}
    }
    let group = matching.and_then(|m| m.group.as_ref());
    // The "many" side is iterated; the "one" side must be unique per signature.
    let (many, one, swapped) = match group {
        Some((GroupSide::Right, _)) => (rhs, lhs, true),
        _ => (lhs, rhs, false),
    };
    let one_side = if swapped { "left" } else { "right" };
    let mut index: HashMap<Labels, (Labels, f64)> = HashMap::new();
    for (labels, v) in one {
        let key = sig(&labels);
        if index.contains_key(&key) {
            return Err(Error::BadQuery(format!(
                "found duplicate series for the match group {key} on the {one_side} hand-side of the operation; \
                 many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
        index.insert(key, (labels, v));
    }
    let mut seen_many: HashSet<Labels> = HashSet::new();
    let mut out: Vector = Vec::new();
    let mut result_labels: HashSet<Labels> = HashSet::new();
    for (labels, v) in many {
        let key = sig(&labels);
        let Some((one_labels, ov)) = index.get(&key) else { continue };
        if group.is_none() && !seen_many.insert(key.clone()) {
            return Err(Error::BadQuery(format!(
                "multiple matches for labels {key}: many-to-one matching must be explicit (group_left/group_right)"
            )));
        }
        let (a, b) = if swapped { (*ov, v) } else { (v, *ov) };
        let Some(value) = element(op, return_bool, a, b, a) else { continue };
        let result = match (matching, group) {
            (Some(m), None) => signature(&labels, Some(m)),
            (_, Some((_, include))) => {
                let mut pairs: Vec<(String, String)> = labels
                    .iter()
                    .filter(|l| !include.contains(&l.name))
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                for name in include {
                    if let Some(value) = one_labels.get(name) {
                        pairs.push((name.clone(), value.to_string()));
                    }
                }
                Labels::from_pairs(pairs)
            }
            (None, None) => labels,
        };
        if !result_labels.insert(result.clone()) {
            return Err(Error::BadQuery(format!("vector cannot contain metrics with the same labelset {result}")));
        }
        out.push((result, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())))
    }

    #[test]
    fn arithmetic_comparisons_and_bool_on_numbers() {
        let v = vec![(l(&[("job", "a")]), 4.0), (l(&[("job", "b")]), 1.0)];
        assert_eq!(vector_scalar(BinOp::Mul, false, v.clone(), 2.0, false)[0].1, 8.0);
        assert_eq!(vector_scalar(BinOp::Sub, false, v.clone(), 10.0, true)[1].1, 9.0);
        let filtered = vector_scalar(BinOp::Gt, false, v.clone(), 2.0, false);
        assert_eq!(filtered, vec![(l(&[("job", "a")]), 4.0)]);
        let as_bool = vector_scalar(BinOp::Gt, true, v, 2.0, false);
        assert_eq!(as_bool.iter().map(|e| e.1).collect::<Vec<_>>(), vec![1.0, 0.0]);
        assert_eq!(scalar_scalar(BinOp::Pow, 2.0, 3.0), 8.0);
        assert_eq!(scalar_scalar(BinOp::Mod, -7.0, 3.0), -1.0);
    }

    #[test]
    fn vector_matching_one_to_one_many_to_one_and_sets() {
        let errors = vec![(l(&[("job", "a"), ("pod", "1")]), 2.0), (l(&[("job", "a"), ("pod", "2")]), 6.0)];
        let totals = vec![(l(&[("job", "a"), ("team", "x")]), 8.0)];
        let on_job = VectorMatching { on: true, labels: vec!["job".into()], group: None };
        // One-to-one on job fails: two left series share the signature.
        assert!(vector_vector(BinOp::Div, false, Some(&on_job), errors.clone(), totals.clone()).is_err());
        let grouped = VectorMatching { group: Some((GroupSide::Left, vec!["team".into()])), ..on_job.clone() };
        let got = vector_vector(BinOp::Div, false, Some(&grouped), errors.clone(), totals.clone()).unwrap();
        assert_eq!(
            got,
            vec![
                (l(&[("job", "a"), ("pod", "1"), ("team", "x")]), 0.25),
                (l(&[("job", "a"), ("pod", "2"), ("team", "x")]), 0.75)
            ]
        );
        let right = VectorMatching { group: Some((GroupSide::Right, vec![])), ..on_job.clone() };
        let got = vector_vector(BinOp::Sub, false, Some(&right), totals.clone(), errors.clone()).unwrap();
        assert_eq!(got.iter().map(|e| e.1).collect::<Vec<_>>(), vec![6.0, 2.0]);
        // One-to-one with `on` keeps only the matched labels.
        let one = vec![(l(&[("job", "a"), ("pod", "1")]), 3.0)];
        let got = vector_vector(BinOp::Add, false, Some(&on_job), one.clone(), totals.clone()).unwrap();
        assert_eq!(got, vec![(l(&[("job", "a")]), 11.0)]);
        // Filtering comparison keeps the left value; bool answers 1/0.
        let got = vector_vector(BinOp::Lt, false, Some(&on_job), one.clone(), totals.clone()).unwrap();
        assert_eq!(got[0].1, 3.0);
        let got = vector_vector(BinOp::Gt, true, Some(&on_job), one.clone(), totals.clone()).unwrap();
        assert_eq!(got[0].1, 0.0);
        // Sets.
        let b = vec![(l(&[("job", "b")]), 1.0)];
        let ignoring_pod = VectorMatching { on: false, labels: vec!["pod".into(), "team".into()], group: None };
        assert_eq!(
            vector_vector(BinOp::And, false, Some(&ignoring_pod), errors.clone(), totals.clone()).unwrap().len(),
            2
        );
        assert_eq!(vector_vector(BinOp::Unless, false, Some(&ignoring_pod), errors.clone(), totals).unwrap().len(), 0);
        assert_eq!(vector_vector(BinOp::Or, false, None, errors, b).unwrap().len(), 3);
    }
}
