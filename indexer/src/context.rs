//! Context around a log line: the N lines before and after it in the same stream, the view a
//! user opens from a hit (Loki has no API for it; Grafana pages with two range queries). The
//! stream is named by its exact label set, the line by its timestamp.

use model::{Labels, LogEntry, TenantId};

use crate::error::Error;
use crate::query::{Direction, LogQueryRequest};
use crate::store::Indexer;

/// Which line, and how much around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextRequest {
    /// The stream's exact label set.
    pub stream: Labels,
    /// The line's timestamp, unix nanoseconds.
    pub timestamp_ns: i64,
    /// Lines wanted before it (older).
    pub before: usize,
    /// Lines wanted after it (newer).
    pub after: usize,
}

/// The lines around a timestamp, oldest first in each part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextResponse {
    /// The stream's labels.
    pub stream: Labels,
    /// Up to `before` lines older than the timestamp.
    pub before: Vec<LogEntry>,
    /// Every line at exactly the timestamp (the line itself and any written in the same
    /// nanosecond).
    pub at: Vec<LogEntry>,
    /// Up to `after` lines newer than the timestamp.
    pub after: Vec<LogEntry>,
}

impl Indexer {
    /// The lines around `req.timestamp_ns` in the stream `req.stream`.
    pub fn context(&self, tenant: &TenantId, req: &ContextRequest) -> Result<ContextResponse, Error> {
        if req.stream.is_empty() {
            return Err(Error::InvalidRequest("the stream's labels are required".into()));
        }
        let selector = model::wire::selector_text::format_label_set(&req.stream);
        let ts = req.timestamp_ns;
        let max = self.max_query_lines();
        let lines = |start_ns: i64, end_ns: i64, want: usize, direction: Direction| -> Result<Vec<LogEntry>, Error> {
            // The selector also matches streams with more labels, which share the limit: widen
            // it until the exact stream has enough lines or nothing more is there.
            let mut limit = want.min(max);
            loop {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let q = LogQueryRequest { query: selector.clone(), start_ns, end_ns, limit, direction };
                let resp = self.query(tenant, &q)?;
                let returned: usize = resp.streams.iter().map(|s| s.entries.len()).sum();
                let mut entries: Vec<LogEntry> =
                    resp.streams.into_iter().filter(|s| s.labels == req.stream).flat_map(|s| s.entries).collect();
                if entries.len() >= want || returned < limit || limit == max {
                    entries.sort_by_key(|e| e.timestamp_ns);
                    return Ok(entries);
                }
                limit = limit.saturating_mul(4).min(max);
            }
        };
        let mut before = lines(i64::MIN / 2, ts, req.before, Direction::Backward)?;
        // The exact-stream filter runs after the limit; keep only the newest `before`.
        let cut = before.len().saturating_sub(req.before);
        before.drain(..cut);
        let at = lines(ts, ts.saturating_add(1), max, Direction::Forward)?;
        let mut after = lines(ts.saturating_add(1), i64::MAX / 2, req.after, Direction::Forward)?;
        after.truncate(req.after);
        Ok(ContextResponse { stream: req.stream.clone(), before, at, after })
    }
}
