//! One tantivy index per (tenant, time partition). Partitions make retention a directory delete
//! and let queries skip whole indexes by time. Each keeps an in-memory map of its streams
//! (hash → labels), rebuilt on open from the term dictionary of `labels_text`, so stream
//! selection, label names and label values never touch postings.
//!
//! Layout: `<tenant dir>/<start-unix-secs>/meta.json` (our format version and time range) and
//! `<...>/index/` (tantivy's files). The commit payload of the index records the WAL position
//! the commit covers, so replay after a crash skips what this partition already has.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use model::wire::selector_text::{format_label_set, parse_label_set};
use model::{Labels, LogRecord, TenantId};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tantivy::schema::{FAST, Field, INDEXED, STORED, STRING, Schema, TEXT};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument};

use crate::error::Error;
use crate::wal::sync_dir;

/// Bump when the schema or layout changes.
pub(crate) const PARTITION_FORMAT_VERSION: u32 = 1;
const META_FILE: &str = "meta.json";
const INDEX_DIR: &str = "index";

#[derive(Debug, Serialize, Deserialize)]
struct PartitionMeta {
    version: u32,
    tenant: String,
    start_ns: i64,
    end_ns: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CommitPayload {
    wal_position: u64,
}

/// The schema's fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields {
    pub ts: Field,
    pub stream: Field,
    pub labels: Field,
    pub labels_text: Field,
    pub line: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let ts = b.add_i64_field("ts", INDEXED | FAST);
    let stream = b.add_u64_field("stream", INDEXED | FAST);
    let labels = b.add_text_field("labels", STRING);
    // Indexed as one raw term as well as stored: the term dictionary doubles as the list of
    // streams the partition holds, which is how the stream map is rebuilt on open.
    let labels_text = b.add_text_field("labels_text", STRING | STORED);
    let line = b.add_text_field("line", TEXT | STORED);
    (b.build(), Fields { ts, stream, labels, labels_text, line })
}

struct OpenWriter {
    writer: IndexWriter,
    pending_docs: usize,
    last_used: Instant,
}

/// One partition.
pub(crate) struct Partition {
    pub tenant: TenantId,
    pub start_ns: i64,
    pub end_ns: i64,
    pub dir: PathBuf,
    pub fields: Fields,
    index: Index,
    reader: IndexReader,
    streams: RwLock<HashMap<u64, Labels>>,
    writer: Mutex<Option<OpenWriter>>,
    /// WAL position covered by the last commit (from the commit payload).
    committed_wal_position: AtomicU64,
}

impl Partition {
    /// Creates a new partition directory; `meta.json` is written last, so a directory without it
    /// is an interrupted creation holding no data.
    pub fn create(dir: &Path, tenant: &TenantId, start_ns: i64, end_ns: i64) -> Result<Partition, Error> {
        let index_dir = dir.join(INDEX_DIR);
        fs::create_dir_all(&index_dir).map_err(|e| Error::io(format!("create {}", index_dir.display()), e))?;
        let (schema, _) = schema();
        Index::create_in_dir(&index_dir, schema).map_err(|e| Error::index("create partition index", e))?;
        let meta = PartitionMeta { version: PARTITION_FORMAT_VERSION, tenant: tenant.to_string(), start_ns, end_ns };
        let tmp = dir.join("meta.json.tmp");
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Corrupt(e.to_string()))?;
        fs::write(&tmp, json)
            .and_then(|_| fs::File::open(&tmp)?.sync_all())
            .and_then(|_| fs::rename(&tmp, dir.join(META_FILE)))
            .map_err(|e| Error::io(format!("write {}", dir.join(META_FILE).display()), e))?;
        sync_dir(dir)?;
        Self::open(dir, tenant)
    }

    /// Opens a partition; `Ok(None)` for an interrupted creation (no `meta.json`).
    pub fn open_existing(dir: &Path, tenant: &TenantId) -> Result<Option<Partition>, Error> {
        if !dir.join(META_FILE).exists() {
            return Ok(None);
        }
        Self::open(dir, tenant).map(Some)
    }

    fn open(dir: &Path, tenant: &TenantId) -> Result<Partition, Error> {
        let meta_path = dir.join(META_FILE);
        let raw = fs::read(&meta_path).map_err(|e| Error::io(format!("read {}", meta_path.display()), e))?;
        let meta: PartitionMeta =
            serde_json::from_slice(&raw).map_err(|e| Error::Corrupt(format!("{}: {e}", meta_path.display())))?;
        if meta.version != PARTITION_FORMAT_VERSION {
            return Err(Error::Corrupt(format!(
                "{} has format version {}, this build reads {PARTITION_FORMAT_VERSION}",
                meta_path.display(),
                meta.version
            )));
        }
        let index = Index::open_in_dir(dir.join(INDEX_DIR)).map_err(|e| Error::index("open partition index", e))?;
        let (_, fields) = schema();
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| Error::index("open partition reader", e))?;
        let payload = index.load_metas().map_err(|e| Error::index("load partition metas", e))?.payload;
        let committed = match payload {
            Some(p) => {
                serde_json::from_str::<CommitPayload>(&p)
                    .map_err(|e| Error::Corrupt(format!("{}: bad commit payload: {e}", dir.display())))?
                    .wal_position
            }
            None => 0,
        };
        let partition = Partition {
            tenant: tenant.clone(),
            start_ns: meta.start_ns,
            end_ns: meta.end_ns,
            dir: dir.to_path_buf(),
            fields,
            index,
            reader,
            streams: RwLock::new(HashMap::new()),
            writer: Mutex::new(None),
            committed_wal_position: AtomicU64::new(committed),
        };
        partition.rebuild_streams()?;
        Ok(partition)
    }

    fn rebuild_streams(&self) -> Result<(), Error> {
        let searcher = self.reader.searcher();
        let mut streams = self.streams.write();
        for segment in searcher.segment_readers() {
            let inverted =
                segment.inverted_index(self.fields.labels_text).map_err(|e| Error::index("read streams", e))?;
            let mut terms = inverted.terms().stream().map_err(|e| Error::io("read stream terms", e))?;
            while terms.advance() {
                let Ok(text) = std::str::from_utf8(terms.key()) else { continue };
                match parse_label_set(text) {
                    Ok(labels) => {
                        streams.insert(labels.stable_hash(), labels);
                    }
                    Err(e) => tracing::warn!(partition = %self.dir.display(), error = %e, "unreadable stream labels"),
                }
            }
        }
        Ok(())
    }

    /// Whether the partition's time range overlaps `[start_ns, end_ns)`.
    pub fn overlaps(&self, start_ns: i64, end_ns: i64) -> bool {
        self.start_ns < end_ns && start_ns < self.end_ns
    }

    pub fn contains(&self, ts: i64) -> bool {
        self.start_ns <= ts && ts < self.end_ns
    }

    pub fn committed_wal_position(&self) -> u64 {
        self.committed_wal_position.load(Ordering::Acquire)
    }

    /// Snapshot of the stream map.
    pub fn streams(&self) -> Vec<(u64, Labels)> {
        self.streams.read().iter().map(|(h, l)| (*h, l.clone())).collect()
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn has_writer(&self) -> bool {
        self.writer.lock().is_some()
    }

    /// When the writer was last used, if one is open.
    pub fn writer_last_used(&self) -> Option<Instant> {
        self.writer.lock().as_ref().map(|w| w.last_used)
    }

    /// Adds records to the writer (opening it if needed). Not searchable until [`Partition::commit`].
    /// Returns whether a writer had to be opened.
    pub fn add(&self, records: &[LogRecord], memory_bytes: usize) -> Result<bool, Error> {
        let mut guard = self.writer.lock();
        let opened = guard.is_none();
        if opened {
            // One indexing thread per writer: the machine has few cores and several partitions
            // may be open; tantivy's budget is per thread.
            let writer = self
                .index
                .writer_with_num_threads(1, memory_bytes)
                .map_err(|e| Error::index(format!("open writer for {}", self.dir.display()), e))?;
            *guard = Some(OpenWriter { writer, pending_docs: 0, last_used: Instant::now() });
        }
        let Some(open) = guard.as_mut() else { return Ok(opened) };
        let mut streams = self.streams.write();
        for record in records {
            let hash = record.labels.stable_hash();
            if let Some(existing) = streams.get(&hash) {
                if existing != &record.labels {
                    tracing::warn!(a = %existing, b = %record.labels, "stream hash collision");
                }
            } else {
                streams.insert(hash, record.labels.clone());
            }
            let mut doc = TantivyDocument::default();
            doc.add_i64(self.fields.ts, record.timestamp_ns);
            doc.add_u64(self.fields.stream, hash);
            for label in &record.labels {
                doc.add_text(self.fields.labels, format!("{}={}", label.name, label.value));
            }
            doc.add_text(self.fields.labels_text, format_label_set(&record.labels));
            doc.add_text(self.fields.line, &record.line);
            open.writer.add_document(doc).map_err(|e| Error::index("add document", e))?;
        }
        open.pending_docs += records.len();
        open.last_used = Instant::now();
        Ok(opened)
    }

    /// Commits pending documents, recording `wal_position` (everything this partition received
    /// from WAL records below it is in the commit). Returns whether anything was committed.
    pub fn commit(&self, wal_position: u64) -> Result<bool, Error> {
        let mut guard = self.writer.lock();
        let Some(open) = guard.as_mut() else { return Ok(false) };
        if open.pending_docs == 0 {
            return Ok(false);
        }
        let payload =
            serde_json::to_string(&CommitPayload { wal_position }).map_err(|e| Error::Corrupt(e.to_string()))?;
        let mut prepared = open.writer.prepare_commit().map_err(|e| Error::index("prepare commit", e))?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(|e| Error::index(format!("commit {}", self.dir.display()), e))?;
        open.pending_docs = 0;
        self.committed_wal_position.store(wal_position, Ordering::Release);
        self.reader.reload().map_err(|e| Error::index("reload reader", e))?;
        Ok(true)
    }

    /// Commits (if needed) and closes the writer, releasing its memory and threads.
    pub fn close_writer(&self, wal_position: u64) -> Result<bool, Error> {
        self.commit(wal_position)?;
        let writer = self.writer.lock().take();
        if let Some(open) = writer {
            open.writer.wait_merging_threads().map_err(|e| Error::index("close writer", e))?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Drops the writer without committing (crash simulation, retention).
    pub fn abandon_writer(&self) -> bool {
        self.writer.lock().take().is_some()
    }
}
