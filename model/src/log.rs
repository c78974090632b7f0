//! Log records: one line of a stream, with nanosecond time as Loki has it.

use serde::{Deserialize, Serialize};

use crate::labels::Labels;

/// One log line with its stream labels. Timestamps are nanoseconds since the Unix epoch, as in
/// Loki's API, so nothing is lost on the way through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub timestamp_ns: i64,
    pub labels: Labels,
    pub line: String,
}

/// One line of a stream whose labels are held by the enclosing [`LogStream`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub timestamp_ns: i64,
    pub line: String,
}

/// Lines sharing one label set: the unit of Loki's push and query APIs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStream {
    pub labels: Labels,
    pub entries: Vec<LogEntry>,
}

impl LogStream {
    /// Flattens streams into records.
    pub fn into_records(streams: Vec<LogStream>) -> Vec<LogRecord> {
        let mut out = Vec::with_capacity(streams.iter().map(|s| s.entries.len()).sum());
        for stream in streams {
            for entry in stream.entries {
                out.push(LogRecord {
                    timestamp_ns: entry.timestamp_ns,
                    labels: stream.labels.clone(),
                    line: entry.line,
                });
            }
        }
        out
    }

    /// Groups records by label set, keeping each stream's entries in the order given.
    pub fn group(records: Vec<LogRecord>) -> Vec<LogStream> {
        let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
        let mut streams: Vec<LogStream> = Vec::new();
        for record in records {
            let slot = *index.entry(record.labels.clone()).or_insert_with(|| {
                streams.push(LogStream { labels: record.labels.clone(), entries: Vec::new() });
                streams.len() - 1
            });
            streams[slot].entries.push(LogEntry { timestamp_ns: record.timestamp_ns, line: record.line });
        }
        streams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_and_flatten_round_trip() {
        let a = Labels::from_pairs([("job", "a")]);
        let b = Labels::from_pairs([("job", "b")]);
        let records = vec![
            LogRecord { timestamp_ns: 1, labels: a.clone(), line: "one".into() },
            LogRecord { timestamp_ns: 2, labels: b.clone(), line: "two".into() },
            LogRecord { timestamp_ns: 3, labels: a.clone(), line: "three".into() },
        ];
        let streams = LogStream::group(records.clone());
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].entries.len(), 2);
        let mut back = LogStream::into_records(streams);
        back.sort_by_key(|r| r.timestamp_ns);
        assert_eq!(back, records);
    }
}
