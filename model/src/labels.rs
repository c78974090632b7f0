//! Label sets: the identity of a series and of a log stream. A `Labels` is always sorted by name
//! with unique names, so equal sets compare, hash and print the same whatever order they were
//! built in.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One name/value pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }
}

/// A sorted set of labels with unique names. Empty values are dropped, as in Prometheus, where a
/// label with an empty value is the same as no label.
///
/// Immutable and shared: a clone is a reference count, not a copy of every name and value, and
/// the [`Labels::stable_hash`] is computed once when the set is built. A scraped series' labels
/// travel from the scrape cache through the shipper into the tsdb's index as one allocation, and
/// a lookup of a set the index already holds hashes one `u64` and compares one pointer.
#[derive(Clone)]
pub struct Labels {
    labels: Arc<[Label]>,
    hash: u64,
}

impl Default for Labels {
    fn default() -> Self {
        Self::empty()
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.labels, &other.labels) || (self.hash == other.hash && self.labels == other.labels)
    }
}

impl Eq for Labels {}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.labels.cmp(&other.labels)
    }
}

/// Hashes the precomputed stable hash: equal sets have equal stable hashes.
impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Labels").field(&&*self.labels).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.labels.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Vec::<Label>::deserialize(deserializer).map(Labels::from_vec)
    }
}

impl Labels {
    /// The empty set.
    pub fn empty() -> Self {
        Self::from_vec(Vec::new())
    }

    /// Wraps labels already in the set's order, computing the hash once.
    fn from_vec(labels: Vec<Label>) -> Self {
        let hash = fnv_labels(&labels);
        Self { labels: labels.into(), hash }
    }

    /// Builds a set from pairs in any order; on duplicate names the last one wins.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut builder = LabelsBuilder::default();
        for (name, value) in pairs {
            builder.set(name, value);
        }
        builder.build()
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels.binary_search_by(|l| l.name.as_str().cmp(name)).ok().map(|i| self.labels[i].value.as_str())
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.labels.iter()
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.labels
    }

    /// A builder holding a copy of this set, to add or remove labels.
    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder { labels: self.labels.to_vec() }
    }

    /// A stable 64-bit hash (FNV-1a over names and values with separators): the same on every
    /// platform and release, so it can be stored on disk and used to shard. Computed when the set
    /// was built.
    pub fn stable_hash(&self) -> u64 {
        self.hash
    }

    /// Checks every name against Prometheus's rules: label names `[a-zA-Z_][a-zA-Z0-9_]*`, the
    /// metric name `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    pub fn validate(&self) -> Result<()> {
        for label in self.labels.iter() {
            let ok = if label.name == METRIC_NAME {
                is_valid_metric_name(&label.value)
            } else {
                is_valid_label_name(&label.name)
            };
            if !ok {
                let (name, what) = if label.name == METRIC_NAME {
                    (label.value.clone(), "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*")
                } else {
                    (label.name.clone(), "label name must match [a-zA-Z_][a-zA-Z0-9_]*")
                };
                return Err(Error::InvalidLabel { name, reason: what.to_string() });
            }
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.labels.iter()
    }
}

/// Prometheus text form: `name{a="b", c="d"}` when there is a metric name, else `{a="b"}`.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(name) = name {
            f.write_str(name)?;
        }
        let rest: Vec<&Label> = self.labels.iter().filter(|l| l.name != METRIC_NAME).collect();
        if rest.is_empty() && name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, label) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", label.name, label.value)?;
        }
        f.write_str("}")
    }
}

/// Accumulates labels in any order and produces a sorted, deduplicated [`Labels`].
#[derive(Clone, Debug, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// Sets `name` to `value`, replacing an earlier value; an empty value deletes the label.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let (name, value) = (name.into(), value.into());
        self.labels.retain(|l| l.name != name);
        if !value.is_empty() {
            self.labels.push(Label { name, value });
        }
        self
    }

    /// Removes `name` if present.
    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|l| l.name == name).map(|l| l.value.as_str())
    }

    pub fn build(&self) -> Labels {
        let mut labels = self.labels.clone();
        labels.sort();
        Labels::from_vec(labels)
    }
}

/// FNV-1a over names and values with separators (the stable hash).
fn fnv_labels(labels: &[Label]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for label in labels {
        feed(label.name.as_bytes());
        feed(&[0xff]);
        feed(label.value.as_bytes());
        feed(&[0xfe]);
    }
    hash
}

/// Whether `name` is a valid Prometheus label name.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is a valid Prometheus metric name (colons allowed, for recording rules).
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sorted_and_deduplicated() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn prints_metric_name_first() {
        let l = Labels::from_pairs([("job", "node"), ("__name__", "up")]);
        assert_eq!(l.to_string(), r#"up{job="node"}"#);
        assert_eq!(Labels::from_pairs([("__name__", "up")]).to_string(), "up");
    }

    #[test]
    fn validation_names_the_offender() {
        let err = Labels::from_pairs([("bad-name", "x")]).validate().unwrap_err();
        assert!(err.to_string().contains("bad-name"), "{err}");
        assert!(Labels::from_pairs([("__name__", "job:rate:5m")]).validate().is_ok());
        assert!(Labels::from_pairs([("__name__", "1up")]).validate().is_err());
    }

    #[test]
    fn deserialized_and_cloned_sets_hash_and_compare_like_built_ones() {
        use std::collections::hash_map::DefaultHasher;
        let built = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        let read: Labels = serde_json::from_str(&serde_json::to_string(&built).unwrap()).unwrap();
        let std_hash = |l: &Labels| {
            let mut h = DefaultHasher::new();
            l.hash(&mut h);
            h.finish()
        };
        assert_eq!(read, built);
        assert_eq!(read.stable_hash(), built.stable_hash());
        assert_eq!(std_hash(&read), std_hash(&built));
        assert_eq!(built.clone(), built);
        assert_ne!(built, Labels::from_pairs([("__name__", "up"), ("job", "nodes")]));
        assert_eq!(Labels::default().stable_hash(), Labels::from_pairs::<&str, &str>([]).stable_hash());
        assert!(Labels::from_pairs([("a", "1")]) < Labels::from_pairs([("a", "2")]));
    }

    proptest! {
        #[test]
        fn order_of_insertion_does_not_matter(pairs in proptest::collection::vec(("[a-d]", "[x-z]{1,2}"), 0..8)) {
            let forward = Labels::from_pairs(pairs.clone());
            let mut dedup: Vec<(String, String)> = Vec::new();
            for (n, v) in pairs.iter().rev() {
                if !dedup.iter().any(|(dn, _)| dn == n) { dedup.push((n.clone(), v.clone())); }
            }
            let backward = Labels::from_pairs(dedup);
            prop_assert_eq!(forward.stable_hash(), backward.stable_hash());
            prop_assert_eq!(forward, backward);
        }
    }
}

/// How a label matcher compares a value: the four operators of Prometheus, Loki and Alertmanager
/// selectors. Regexes are fully anchored in all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    /// The operator as written in a selector.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}
