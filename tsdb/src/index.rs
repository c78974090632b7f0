//! The per-tenant series index: label set → series id, and inverted postings (label name → value →
//! sorted series ids) so selectors touch only the series they can match. Matchers follow
//! Prometheus: regexes are fully anchored, and a matcher that matches the empty string also
//! matches series that lack the label.

use std::collections::{BTreeMap, HashMap};

use model::Labels;
use promql_parser::label::{MatchOp, Matcher};

/// A global series id. Ids are handed out in increasing order, which keeps postings sorted by
/// pushing at the end.
pub type SeriesId = u64;

/// The hasher of the head's per-sample maps (label set → id, id → series): every appended sample
/// looks up both, and SipHash of the key was most of `Tsdb::append`'s own time in a scrape profile.
/// foldhash is a few multiplies per `u64` and still seeded per map.
pub(crate) type FastState = foldhash::fast::RandomState;

/// Series of one tenant, findable by labels and by matchers.
#[derive(Default)]
pub struct Index {
    by_labels: HashMap<Labels, SeriesId, FastState>,
    labels_by_id: HashMap<SeriesId, Labels, FastState>,
    postings: BTreeMap<String, BTreeMap<String, Vec<SeriesId>>>,
}

impl Index {
    pub fn len(&self) -> usize {
        self.by_labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_labels.is_empty()
    }

    pub fn get(&self, labels: &Labels) -> Option<SeriesId> {
        self.by_labels.get(labels).copied()
    }

    pub fn labels(&self, id: SeriesId) -> Option<&Labels> {
        self.labels_by_id.get(&id)
    }

    /// Adds a series; ids must be added in increasing order.
    pub fn insert(&mut self, id: SeriesId, labels: Labels) {
        for label in &labels {
            let ids = self.postings.entry(label.name.clone()).or_default().entry(label.value.clone()).or_default();
            if ids.last().is_none_or(|last| *last < id) {
                ids.push(id);
            } else if let Err(pos) = ids.binary_search(&id) {
                ids.insert(pos, id);
            }
        }
        self.by_labels.insert(labels.clone(), id);
        self.labels_by_id.insert(id, labels);
    }

    /// Removes a series (it has no samples left in the head).
    pub fn remove(&mut self, id: SeriesId) {
        let Some(labels) = self.labels_by_id.remove(&id) else { return };
        self.by_labels.remove(&labels);
        for label in &labels {
            let Some(values) = self.postings.get_mut(&label.name) else { continue };
            if let Some(ids) = values.get_mut(&label.value) {
                if let Ok(pos) = ids.binary_search(&id) {
                    ids.remove(pos);
                }
                if ids.is_empty() {
                    values.remove(&label.value);
                }
            }
            if values.is_empty() {
                self.postings.remove(&label.name);
            }
        }
    }

    /// Every label pair with the number of series carrying it, by name then value.
    pub fn postings_counts(&self) -> impl Iterator<Item = (&str, &str, usize)> {
        self.postings
            .iter()
            .flat_map(|(n, values)| values.iter().map(move |(v, ids)| (n.as_str(), v.as_str(), ids.len())))
    }

    /// All label names, sorted.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.postings.keys().map(String::as_str)
    }

    /// Ids of the series every matcher accepts, sorted. With no matcher that rejects the empty
    /// string, every series is a candidate (callers enforce the non-empty rule where it applies).
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut candidates: Option<Vec<SeriesId>> = None;
        for m in matchers.iter().filter(|m| !m.is_match("")) {
            let ids = self.postings_for(m);
            candidates = Some(match candidates {
                None => ids,
                Some(prev) => intersect(&prev, &ids),
            });
            if candidates.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let mut ids = candidates.unwrap_or_else(|| {
            let mut all: Vec<SeriesId> = self.labels_by_id.keys().copied().collect();
            all.sort_unstable();
            all
        });
        // Matchers that accept "" also accept a missing label, so check them on the label sets.
        let empty_matching: Vec<&Matcher> = matchers.iter().filter(|m| m.is_match("")).collect();
        if !empty_matching.is_empty() {
            ids.retain(|id| {
                self.labels_by_id
                    .get(id)
                    .is_some_and(|ls| empty_matching.iter().all(|m| m.is_match(ls.get(&m.name).unwrap_or(""))))
            });
        }
        ids
    }

    fn postings_for(&self, m: &Matcher) -> Vec<SeriesId> {
        let Some(values) = self.postings.get(&m.name) else {
            return Vec::new();
        };
        if let MatchOp::Equal = m.op {
            return values.get(&m.value).cloned().unwrap_or_default();
        }
        let mut ids: Vec<SeriesId> =
            values.iter().filter(|(v, _)| m.is_match(v)).flat_map(|(_, ids)| ids.iter().copied()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Builds a matcher with Prometheus semantics (anchored regex). Used by tests and callers that
/// do not go through the PromQL parser.
pub fn matcher(name: &str, op: &str, value: &str) -> Result<Matcher, String> {
    let op = match op {
        "=" => MatchOp::Equal,
        "!=" => MatchOp::NotEqual,
        "=~" | "!~" => {
            let re = regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| e.to_string())?;
            if op == "=~" { MatchOp::Re(re) } else { MatchOp::NotRe(re) }
        }
        other => return Err(format!("unknown match operator {other:?}")),
    };
    Ok(Matcher::new(op, name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        let mut idx = Index::default();
        let series = [
            vec![("__name__", "up"), ("job", "api"), ("instance", "a")],
            vec![("__name__", "up"), ("job", "api"), ("instance", "b")],
            vec![("__name__", "up"), ("job", "db")],
            vec![("__name__", "errors"), ("job", "api"), ("code", "500")],
        ];
        for (i, pairs) in series.into_iter().enumerate() {
            idx.insert(i as SeriesId, Labels::from_pairs(pairs));
        }
        idx
    }

    #[test]
    fn matchers_follow_prometheus_semantics() {
        let idx = index();
        type Case<'a> = (&'a [(&'a str, &'a str, &'a str)], &'a [SeriesId]);
        let cases: &[Case<'_>] = &[
            (&[("__name__", "=", "up")], &[0, 1, 2]),
            (&[("__name__", "=", "up"), ("job", "!=", "api")], &[2]),
            (&[("job", "=~", "a.*")], &[0, 1, 3]),
            (&[("job", "=~", "p")], &[]),
            (&[("job", "!~", "api|db")], &[]),
            (&[("__name__", "=", "up"), ("instance", "=", "")], &[2]),
            (&[("__name__", "=", "up"), ("instance", "!~", ".+")], &[2]),
            (&[("__name__", "=", "up"), ("instance", "=~", "a|")], &[0, 2]),
            (&[("__name__", "=", "up"), ("instance", "!=", "a")], &[1, 2]),
            (&[("code", "=~", "5..")], &[3]),
            (&[("nope", "=", "x")], &[]),
        ];
        for (matchers, want) in cases {
            let ms: Vec<Matcher> = matchers.iter().map(|(n, o, v)| matcher(n, o, v).unwrap()).collect();
            assert_eq!(idx.select(&ms), *want, "{matchers:?}");
        }
    }

    #[test]
    fn removed_series_leave_no_postings() {
        let mut idx = index();
        idx.remove(3);
        idx.remove(42);
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.label_names().collect::<Vec<_>>(), ["__name__", "instance", "job"]);
        assert_eq!(idx.select(&[matcher("job", "=", "api").unwrap()]), [0, 1]);
    }

    #[test]
    fn label_names_are_sorted() {
        let idx = index();
        let names: Vec<&str> = idx.label_names().collect();
        assert_eq!(names, ["__name__", "code", "instance", "job"]);
    }
}
