//! Log query execution and Loki's response shape. Streams are chosen from the partitions'
//! stream maps; tantivy narrows candidates by stream, time and the words of `|=` needles
//! (`needle.rs`); every candidate line is then checked exactly, so results equal a plain scan, and
//! run through the pipeline stages (parsers, label filters, formatting) when there are any.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::{Labels, LogEntry};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument, Term};

use crate::cancel::{CHECK_EVERY, Cancel};
use crate::error::Error;
use crate::logql::{CompiledQuery, LineFilterOp};
use crate::needle::{legacy_needle_terms, needle_clauses};
use crate::partition::Partition;

/// Which end of the time range results come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Newest first (Loki's default).
    #[default]
    Backward,
    /// Oldest first.
    Forward,
}

/// A log query over `[start_ns, end_ns)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogQueryRequest {
    /// LogQL: a stream selector with optional line filters.
    pub query: String,
    /// Inclusive start, unix nanoseconds.
    pub start_ns: i64,
    /// Exclusive end, unix nanoseconds.
    pub end_ns: i64,
    /// Maximum lines returned (1..=max_query_lines).
    pub limit: usize,
    /// Result order.
    pub direction: Direction,
}

/// One stream of a response with its entries in `direction` order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamResult {
    /// The stream's labels.
    pub labels: Labels,
    /// Matching entries.
    pub entries: Vec<LogEntry>,
}

/// Execution statistics, serialized as Loki's `stats.summary`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryStats {
    /// Lines read and checked against the line filters.
    pub total_lines_processed: u64,
    /// Bytes of those lines.
    pub total_bytes_processed: u64,
    /// Lines that passed the filters (before the limit cut).
    pub total_post_filter_lines: u64,
    /// Lines returned.
    pub total_entries_returned: u64,
    /// Wall time of the execution.
    pub exec_time: Duration,
}

/// The answer to a log query; serializes as the `data` object of Loki's `query_range` response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogQueryResponse {
    /// Streams, ordered by labels.
    pub streams: Vec<StreamResult>,
    /// Statistics.
    pub stats: QueryStats,
}

struct LabelsAsMap<'a>(&'a Labels);
impl Serialize for LabelsAsMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for label in self.0 {
            map.serialize_entry(&label.name, &label.value)?;
        }
        map.end()
    }
}

struct Values<'a>(&'a [LogEntry]);
impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for entry in self.0 {
            seq.serialize_element(&(entry.timestamp_ns.to_string(), &entry.line))?;
        }
        seq.end()
    }
}

impl Serialize for StreamResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("stream", &LabelsAsMap(&self.labels))?;
        map.serialize_entry("values", &Values(&self.entries))?;
        map.end()
    }
}

impl Serialize for QueryStats {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let secs = self.exec_time.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { (n as f64 / secs) as u64 } else { 0 };
        let mut summary = s.serialize_map(Some(1))?;
        summary.serialize_entry(
            "summary",
            &serde_json::json!({
                "bytesProcessedPerSecond": per_sec(self.total_bytes_processed),
                "linesProcessedPerSecond": per_sec(self.total_lines_processed),
                "totalBytesProcessed": self.total_bytes_processed,
                "totalLinesProcessed": self.total_lines_processed,
                "totalPostFilterLines": self.total_post_filter_lines,
                "totalEntriesReturned": self.total_entries_returned,
                "execTime": secs,
                "queueTime": 0.0,
                "subqueries": 0,
            }),
        )?;
        summary.end()
    }
}

impl Serialize for LogQueryResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("resultType", "streams")?;
        map.serialize_entry("result", &self.streams)?;
        map.serialize_entry("stats", &self.stats)?;
        map.end()
    }
}

/// A candidate document: timestamp and stream from fast fields, address for the stored line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub ts: i64,
    pub stream: u64,
    pub address: DocAddress,
}

/// Collects candidates until `cancel` is set: tantivy's collection cannot be interrupted, so
/// once it is, the rest of the documents are skipped without work and the caller checks again.
struct CandidateCollector<'a> {
    cancel: &'a Cancel,
}

struct CandidateSegmentCollector {
    segment_ord: SegmentOrdinal,
    ts: Column<i64>,
    stream: Column<u64>,
    out: Vec<Candidate>,
    cancel: Cancel,
    seen: usize,
    stopped: bool,
}

impl Collector for CandidateCollector<'_> {
    type Fruit = Vec<Candidate>;
    type Child = CandidateSegmentCollector;

    fn for_segment(&self, segment_ord: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(CandidateSegmentCollector {
            segment_ord,
            ts: segment.fast_fields().i64("ts")?,
            stream: segment.fast_fields().u64("stream")?,
            out: Vec::new(),
            cancel: self.cancel.clone(),
            seen: 0,
            stopped: self.cancel.is_cancelled(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Candidate>>) -> tantivy::Result<Vec<Candidate>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for CandidateSegmentCollector {
    type Fruit = Vec<Candidate>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if self.stopped {
            return;
        }
        self.seen += 1;
        if self.seen.is_multiple_of(16 * CHECK_EVERY) && self.cancel.is_cancelled() {
            self.stopped = true;
            return;
        }
        if let (Some(ts), Some(stream)) = (self.ts.first(doc), self.stream.first(doc)) {
            self.out.push(Candidate { ts, stream, address: DocAddress::new(self.segment_ord, doc) });
        }
    }

    fn harvest(self) -> Vec<Candidate> {
        self.out
    }
}

/// Everything a per-partition search needs.
pub(crate) struct Plan<'a> {
    pub query: &'a CompiledQuery,
    pub start_ns: i64,
    pub end_ns: i64,
    pub limit: usize,
    pub direction: Direction,
}

/// One matched line, ordered for the final merge.
struct Hit {
    ts: i64,
    stream: u64,
    line: String,
    /// The labels after the pipeline, when it has stages.
    labels: Option<Labels>,
}

/// Runs the plan over the partitions (already filtered by tenant and time) until `cancel` is set.
pub(crate) fn execute(
    partitions: &[Arc<Partition>],
    plan: &Plan<'_>,
    cancel: &Cancel,
) -> Result<LogQueryResponse, Error> {
    let started = Instant::now();
    let mut stats = QueryStats::default();
    let mut ordered: Vec<&Arc<Partition>> = partitions.iter().collect();
    match plan.direction {
        Direction::Backward => ordered.sort_by_key(|p| std::cmp::Reverse(p.end_ns)),
        Direction::Forward => ordered.sort_by_key(|p| p.start_ns),
    }
    let mut hits: Vec<Hit> = Vec::new();
    let mut labels_of: HashMap<u64, Labels> = HashMap::new();
    for partition in ordered {
        cancel.check()?;
        if hits.len() >= plan.limit {
            // Hits are sorted and cut to `limit`; a partition entirely beyond the worst kept hit
            // cannot contribute.
            let worst = hits[plan.limit - 1].ts;
            let beyond = match plan.direction {
                Direction::Backward => partition.end_ns <= worst,
                Direction::Forward => partition.start_ns > worst,
            };
            if beyond {
                continue;
            }
        }
        search_partition(partition, plan, &mut hits, &mut labels_of, &mut stats, cancel)?;
        sort_hits(&mut hits, plan.direction);
        hits.truncate(plan.limit);
    }
    let mut by_stream: BTreeMap<Labels, Vec<LogEntry>> = BTreeMap::new();
    stats.total_entries_returned = hits.len() as u64;
    for hit in hits {
        let labels = match hit.labels {
            Some(labels) => labels,
            None => labels_of.get(&hit.stream).cloned().unwrap_or_default(),
        };
        by_stream.entry(labels).or_default().push(LogEntry { timestamp_ns: hit.ts, line: hit.line });
    }
    stats.exec_time = started.elapsed();
    let streams = by_stream.into_iter().map(|(labels, entries)| StreamResult { labels, entries }).collect();
    Ok(LogQueryResponse { streams, stats })
}

fn sort_hits(hits: &mut [Hit], direction: Direction) {
    hits.sort_by(|a, b| (a.ts, a.stream, &a.line).cmp(&(b.ts, b.stream, &b.line)));
    if direction == Direction::Backward {
        hits.reverse();
    }
}

/// Candidate documents and the matching streams (hash, labels) of one partition.
pub(crate) type Candidates = (Vec<Candidate>, Vec<(u64, Labels)>);

/// The documents of `partition` in `[start_ns, end_ns)` whose stream matches the selector and
/// whose line holds every safe token of the `|=` needles (a superset of the matching lines), and
/// the matching streams' labels (`Error::Cancelled` once `cancel` is set). Nothing is loaded from
/// the doc store. The caller's `searcher`
/// must be the one it later loads lines with: a commit between two `partition.searcher()` calls
/// changes the segment list, and addresses from one searcher are invalid in the other.
pub(crate) fn partition_candidates(
    searcher: &tantivy::Searcher,
    partition: &Partition,
    query: &CompiledQuery,
    start_ns: i64,
    end_ns: i64,
    cancel: &Cancel,
) -> Result<Candidates, Error> {
    // The searcher was taken first, so every stream of its documents is in this snapshot.
    let all_streams = partition.streams();
    let stream_count = all_streams.len();
    let streams: Vec<(u64, Labels)> =
        all_streams.into_iter().filter(|(_, labels)| query.selector.matches(labels)).collect();
    if streams.is_empty() {
        return Ok((Vec::new(), streams));
    }
    let fields = partition.fields;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    // A range covering the whole partition and a selector taking all its streams hold for every
    // document: leaving them out spares intersecting a common word's postings with every
    // document's (the ts column and the stream postings).
    if start_ns > partition.start_ns || end_ns < partition.end_ns {
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_i64(fields.ts, start_ns)),
                Bound::Excluded(Term::from_field_i64(fields.ts, end_ns)),
            )),
        ));
    }
    if streams.len() < stream_count {
        let stream_terms: Vec<(Occur, Box<dyn Query>)> = streams
            .iter()
            .map(|(hash, _)| {
                let q: Box<dyn Query> =
                    Box::new(TermQuery::new(Term::from_field_u64(fields.stream, *hash), IndexRecordOption::Basic));
                (Occur::Should, q)
            })
            .collect();
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(stream_terms))));
    }
    for filter in query.filters.iter().filter(|f| f.op == LineFilterOp::Contains) {
        if partition.full_word_index {
            for clause in
                needle_clauses(searcher, fields.line, partition.term_lists(), &filter.pattern, (start_ns, end_ns))?
            {
                clauses.push((Occur::Must, clause));
            }
        } else {
            for token in legacy_needle_terms(&filter.pattern) {
                clauses.push((
                    Occur::Must,
                    Box::new(TermQuery::new(Term::from_field_text(fields.line, &token), IndexRecordOption::Basic)),
                ));
            }
        }
    }
    let query: Box<dyn Query> =
        if clauses.is_empty() { Box::new(AllQuery) } else { Box::new(BooleanQuery::new(clauses)) };
    let candidates =
        searcher.search(&query, &CandidateCollector { cancel }).map_err(|e| Error::index("search partition", e))?;
    cancel.check()?;
    Ok((candidates, streams))
}

/// The stored line of a candidate.
pub(crate) fn load_line(
    searcher: &tantivy::Searcher,
    partition: &Partition,
    address: DocAddress,
) -> Result<String, Error> {
    let doc: TantivyDocument = searcher.doc(address).map_err(|e| Error::index("read stored line", e))?;
    Ok(doc.get_first(partition.fields.line).and_then(|v| v.as_str()).unwrap_or_default().to_string())
}

fn search_partition(
    partition: &Partition,
    plan: &Plan<'_>,
    hits: &mut Vec<Hit>,
    labels_of: &mut HashMap<u64, Labels>,
    stats: &mut QueryStats,
    cancel: &Cancel,
) -> Result<(), Error> {
    let searcher = partition.searcher();
    let (mut candidates, streams) =
        partition_candidates(&searcher, partition, plan.query, plan.start_ns, plan.end_ns, cancel)?;
    let pipeline = &plan.query.pipeline;
    let mut stream_labels: HashMap<u64, Labels> = HashMap::new();
    for (hash, labels) in streams {
        if !pipeline.is_empty() {
            stream_labels.insert(hash, labels.clone());
        }
        labels_of.insert(hash, labels);
    }
    let empty = Labels::default();
    let mut matched = 0;
    for (i, candidate) in InOrder::new(&mut candidates, plan.direction, plan.limit).enumerate() {
        if matched >= plan.limit {
            break;
        }
        cancel.check_every(i)?;
        let line = load_line(&searcher, partition, candidate.address)?;
        stats.total_lines_processed += 1;
        stats.total_bytes_processed += line.len() as u64;
        if !plan.query.line_matches(&line) {
            continue;
        }
        let hit = if pipeline.is_empty() {
            Hit { ts: candidate.ts, stream: candidate.stream, line, labels: None }
        } else {
            let stream = stream_labels.get(&candidate.stream).unwrap_or(&empty);
            let Some((new_line, labels)) = pipeline.process(stream, &line) else { continue };
            Hit { ts: candidate.ts, stream: candidate.stream, line: new_line.unwrap_or(line), labels: Some(labels) }
        };
        matched += 1;
        stats.total_post_filter_lines += 1;
        hits.push(hit);
    }
    Ok(())
}

/// The candidates in result order, sorted a chunk at a time: a common word has a million
/// candidates of which the first `limit` or so are read, so each chunk is selected
/// (`select_nth_unstable`, linear) before only it is sorted; chunks double, so a filter that
/// rejects most candidates still costs O(n log n) at worst, as a full sort.
struct InOrder<'a> {
    rest: &'a mut [Candidate],
    chunk: std::slice::Iter<'a, Candidate>,
    next_len: usize,
    direction: Direction,
}

impl<'a> InOrder<'a> {
    fn new(candidates: &'a mut [Candidate], direction: Direction, limit: usize) -> InOrder<'a> {
        InOrder { rest: candidates, chunk: [].iter(), next_len: limit.max(64), direction }
    }
}

impl Iterator for InOrder<'_> {
    type Item = Candidate;

    fn next(&mut self) -> Option<Candidate> {
        if let Some(c) = self.chunk.next() {
            return Some(*c);
        }
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let k = self.next_len.min(rest.len());
        self.next_len = self.next_len.saturating_mul(2);
        let key = |c: &Candidate| (c.ts, c.stream, c.address);
        let order = |a: &Candidate, b: &Candidate| match self.direction {
            Direction::Forward => key(a).cmp(&key(b)),
            Direction::Backward => key(b).cmp(&key(a)),
        };
        if k < rest.len() {
            rest.select_nth_unstable_by(k - 1, order);
        }
        let (head, tail) = rest.split_at_mut(k);
        head.sort_unstable_by(order);
        self.rest = tail;
        self.chunk = head.iter();
        self.chunk.next().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_come_in_result_order_whatever_the_chunks() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut candidates: Vec<Candidate> = (0..5000u32)
            .map(|doc| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                // Few distinct timestamps and streams, so ties are ordered by the later keys.
                Candidate { ts: (rng % 300) as i64, stream: rng % 3, address: DocAddress::new(0, doc) }
            })
            .collect();
        for direction in [Direction::Forward, Direction::Backward] {
            for limit in [1, 100, 4999, 5000, 10_000] {
                let mut expected = candidates.clone();
                expected.sort_by_key(|c| (c.ts, c.stream, c.address));
                if direction == Direction::Backward {
                    expected.reverse();
                }
                let got: Vec<Candidate> = InOrder::new(&mut candidates, direction, limit).collect();
                let key = |c: &Candidate| (c.ts, c.stream, c.address);
                assert_eq!(got.iter().map(key).collect::<Vec<_>>(), expected.iter().map(key).collect::<Vec<_>>());
            }
        }
    }
}
