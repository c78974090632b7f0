//! One tantivy index per (tenant, time partition). Partitions make retention a directory delete
//! and let queries skip whole indexes by time. Each keeps an in-memory map of its streams
//! (hash → labels), rebuilt on open from the term dictionary of `labels_text`, so stream
//! selection, label names and label values never touch postings.
//!
//! Layout: `<tenant dir>/<start-unix-secs>/meta.json` (our format version and time range),
//! `<...>/index/` (tantivy's files) and `<...>/terms/` (per-segment word lists, `term_lists.rs`).
//! The commit payload of the index records the WAL position the commit covers, so replay after a
//! crash skips what this partition already has.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use model::wire::selector_text::{format_label_set, parse_label_set};
use model::{Labels, LogRecord, TenantId};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tantivy::merge_policy::LogMergePolicy;
use tantivy::schema::{FAST, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, TantivyDocument};

use crate::config::{StoreSettings, WriterSettings};
use crate::error::Error;
use crate::needle::{LINE_TOKENIZER, LineTokenizer};
use crate::term_lists::{TermLists, WordListCache};
use crate::wal::sync_dir;

/// Bump when the schema or layout changes. 2: `ts` no longer indexed, no `labels` field,
/// `labels_text` not stored. 3: `line` uses [`LineTokenizer`] (every word indexed, long words as a
/// marker), so any `|=` needle pre-filters. Formats 1-2 still open (fields are found by name).
pub(crate) const PARTITION_FORMAT_VERSION: u32 = 3;
/// The first format whose `line` field uses [`LineTokenizer`].
const LINE_TOKENIZER_FORMAT: u32 = 3;
/// The oldest format this build reads.
const OLDEST_READABLE_FORMAT: u32 = 1;
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
    pub labels_text: Field,
    pub line: Field,
}

/// The schema of new partitions (format 2). Every field is there for a query path; the costs were
/// measured with `tarsier-bench indexer-ingest` (see docs/ARCHITECTURE.md):
/// - `ts` is a fast field only: time ranges run on the column, and an indexed `ts` gave every
///   line its own term, which made the term dictionary the largest cost of a commit.
/// - `stream` (the label set's hash) is indexed and fast: selectors resolve to stream terms.
/// - `labels_text` is one raw term per stream, not stored: its term dictionary is the list of
///   streams the partition holds, which rebuilds the stream map on open; a hit's labels come from
///   that map by `stream`.
/// - `line` is tokenized by [`LineTokenizer`] (doc ids only) and stored.
fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_i64_field("ts", FAST);
    // No fieldnorms on the stream fields (tantivy's `INDEXED` and `STRING` have them): nothing is
    // scored, and they cost two bytes a line (0.01 of the raw bytes in `tarsier-bench needle`).
    // Partitions written with them read the same.
    b.add_u64_field("stream", NumericOptions::default().set_indexed().set_fast());
    let labels_indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false);
    b.add_text_field("labels_text", TextOptions::default().set_indexing_options(labels_indexing));
    // Doc ids only: the pre-filter needs which lines hold a token, never where or how often,
    // and nothing is scored. Dropping positions and fieldnorms took ingest from 7.6 to 11.4 MB
    // per CPU-second (`tarsier-bench indexer-ingest --lines 200000`).
    let line_indexing = TextFieldIndexing::default()
        .set_tokenizer(LINE_TOKENIZER)
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(false);
    b.add_text_field("line", TextOptions::default().set_indexing_options(line_indexing).set_stored());
    b.build()
}

/// Looks the fields up by name, so partitions of format 1 (which also had an indexed `ts` and a
/// `labels` field) and format 2 read the same way.
fn fields_of(schema: &Schema, dir: &Path) -> Result<Fields, Error> {
    let get = |name: &str| {
        schema.get_field(name).map_err(|_| Error::Corrupt(format!("{}: index has no field {name}", dir.display())))
    };
    Ok(Fields { ts: get("ts")?, stream: get("stream")?, labels_text: get("labels_text")?, line: get("line")? })
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
    /// Whether `line` was tokenized by [`LineTokenizer`] (format 3 on): then every needle word
    /// can pre-filter, else only interior words shorter than 40 bytes.
    pub full_word_index: bool,
    index: Index,
    reader: IndexReader,
    streams: RwLock<HashMap<u64, Labels>>,
    /// Per-segment word lists for needle expansion (format 3 on; `None` if they cannot be
    /// opened: needles then walk the dictionaries).
    term_lists: Option<TermLists>,
    writer: Mutex<Option<OpenWriter>>,
    /// WAL position covered by the last commit (from the commit payload).
    committed_wal_position: AtomicU64,
}

impl Partition {
    /// Creates a new partition directory; `meta.json` is written last, so a directory without it
    /// is an interrupted creation holding no data.
    pub fn create(
        dir: &Path,
        tenant: &TenantId,
        start_ns: i64,
        end_ns: i64,
        store: StoreSettings,
        word_lists: &Arc<WordListCache>,
    ) -> Result<Partition, Error> {
        let index_dir = dir.join(INDEX_DIR);
        fs::create_dir_all(&index_dir).map_err(|e| Error::io(format!("create {}", index_dir.display()), e))?;
        let docstore_compression = if store.zstd_level == 0 {
            Compressor::Lz4
        } else {
            Compressor::Zstd(ZstdCompressor { compression_level: Some(store.zstd_level) })
        };
        let settings =
            IndexSettings { docstore_compression, docstore_blocksize: store.block_bytes, ..Default::default() };
        Index::builder()
            .schema(schema())
            .settings(settings)
            .create_in_dir(&index_dir)
            .map_err(|e| Error::index("create partition index", e))?;
        let meta = PartitionMeta { version: PARTITION_FORMAT_VERSION, tenant: tenant.to_string(), start_ns, end_ns };
        let tmp = dir.join("meta.json.tmp");
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Corrupt(e.to_string()))?;
        fs::write(&tmp, json)
            .and_then(|_| fs::File::open(&tmp)?.sync_all())
            .and_then(|_| fs::rename(&tmp, dir.join(META_FILE)))
            .map_err(|e| Error::io(format!("write {}", dir.join(META_FILE).display()), e))?;
        sync_dir(dir)?;
        Self::open(dir, tenant, word_lists)
    }

    /// Opens a partition; `Ok(None)` for an interrupted creation (no `meta.json`).
    pub fn open_existing(
        dir: &Path,
        tenant: &TenantId,
        word_lists: &Arc<WordListCache>,
    ) -> Result<Option<Partition>, Error> {
        if !dir.join(META_FILE).exists() {
            return Ok(None);
        }
        Self::open(dir, tenant, word_lists).map(Some)
    }

    fn open(dir: &Path, tenant: &TenantId, word_lists: &Arc<WordListCache>) -> Result<Partition, Error> {
        let meta_path = dir.join(META_FILE);
        let raw = fs::read(&meta_path).map_err(|e| Error::io(format!("read {}", meta_path.display()), e))?;
        let meta: PartitionMeta =
            serde_json::from_slice(&raw).map_err(|e| Error::Corrupt(format!("{}: {e}", meta_path.display())))?;
        if !(OLDEST_READABLE_FORMAT..=PARTITION_FORMAT_VERSION).contains(&meta.version) {
            return Err(Error::Corrupt(format!(
                "{} has format version {}, this build reads {PARTITION_FORMAT_VERSION}",
                meta_path.display(),
                meta.version
            )));
        }
        let index = Index::open_in_dir(dir.join(INDEX_DIR)).map_err(|e| Error::index("open partition index", e))?;
        index.tokenizers().register(LINE_TOKENIZER, LineTokenizer::default());
        let fields = fields_of(&index.schema(), dir)?;
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
        let full_word_index = meta.version >= LINE_TOKENIZER_FORMAT;
        let term_lists = if full_word_index {
            TermLists::open(dir, &reader.searcher(), Arc::clone(word_lists))
                .inspect_err(|e| tracing::warn!(partition = %dir.display(), error = %e, "cannot open word lists"))
                .ok()
        } else {
            None
        };
        let partition = Partition {
            tenant: tenant.clone(),
            start_ns: meta.start_ns,
            end_ns: meta.end_ns,
            dir: dir.to_path_buf(),
            fields,
            full_word_index,
            index,
            reader,
            streams: RwLock::new(HashMap::new()),
            term_lists,
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

    /// The label sets `keep` takes, cloning only those; stops at `cancel` (a lookup over
    /// millions of streams must stop at the query timeout like a query does).
    pub fn matching_streams(
        &self,
        keep: impl Fn(&Labels) -> bool,
        cancel: &crate::cancel::Cancel,
    ) -> Result<Vec<Labels>, crate::error::Error> {
        let streams = self.streams.read();
        let mut out = Vec::new();
        for (i, labels) in streams.values().enumerate() {
            cancel.check_every(i)?;
            if keep(labels) {
                out.push(labels.clone());
            }
        }
        Ok(out)
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
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
    pub fn add(&self, records: Vec<LogRecord>, settings: WriterSettings) -> Result<bool, Error> {
        let mut guard = self.writer.lock();
        let opened = guard.is_none();
        if opened {
            // tantivy splits the budget between its indexing threads.
            let writer = self
                .index
                .writer_with_num_threads(settings.threads, settings.memory_bytes)
                .map_err(|e| Error::index(format!("open writer for {}", self.dir.display()), e))?;
            let mut policy = LogMergePolicy::default();
            policy.set_max_docs_before_merge(settings.merge_max_segment_docs);
            policy.set_min_num_segments(settings.merge_min_segments);
            writer.set_merge_policy(Box::new(policy));
            *guard = Some(OpenWriter { writer, pending_docs: 0, last_used: Instant::now() });
        }
        let Some(open) = guard.as_mut() else { return Ok(opened) };
        let mut streams = self.streams.write();
        let count = records.len();
        let mut previous: Option<(Labels, u64)> = None;
        for record in records {
            // Batches usually hold one stream: hash a label set once per run of equal ones.
            let hash = match &previous {
                Some((labels, hash)) if *labels == record.labels => *hash,
                _ => {
                    let hash = record.labels.stable_hash();
                    previous = Some((record.labels.clone(), hash));
                    hash
                }
            };
            let mut doc = TantivyDocument::default();
            doc.add_i64(self.fields.ts, record.timestamp_ns);
            doc.add_u64(self.fields.stream, hash);
            match streams.get(&hash) {
                Some(existing) if existing != &record.labels => {
                    tracing::warn!(a = %existing, b = %record.labels, "stream hash collision");
                }
                Some(_) => {}
                None => {
                    // The first line of a stream in this partition carries its labels term, which
                    // is all the stream map needs on reopen (merges keep terms; nothing is deleted
                    // but whole partitions).
                    doc.add_text(self.fields.labels_text, format_label_set(&record.labels));
                    streams.insert(hash, record.labels);
                }
            }
            doc.add_text(self.fields.line, record.line);
            open.writer.add_document(doc).map_err(|e| Error::index("add document", e))?;
        }
        open.pending_docs += count;
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
        drop(guard);
        self.sync_term_lists();
        Ok(true)
    }

    /// The per-segment word lists, if this partition has them.
    pub fn term_lists(&self) -> Option<&TermLists> {
        self.term_lists.as_ref()
    }

    /// Lists the words of segments the reader now has and drops the lists of merged-away ones. A
    /// failure only costs speed (needles walk those dictionaries), so it is logged, not returned.
    fn sync_term_lists(&self) {
        let Some(lists) = &self.term_lists else { return };
        let started = Instant::now();
        match lists.sync(&self.reader.searcher(), self.fields.line) {
            Ok(counts) if counts.written + counts.deleted > 0 => tracing::debug!(
                partition = %self.dir.display(),
                written = counts.written,
                deleted = counts.deleted,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "word lists synced"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(partition = %self.dir.display(), error = %e, "cannot sync word lists"),
        }
    }

    /// Commits (if needed) and closes the writer, releasing its memory and threads.
    pub fn close_writer(&self, wal_position: u64) -> Result<bool, Error> {
        self.commit(wal_position)?;
        let writer = self.writer.lock().take();
        if let Some(open) = writer {
            open.writer.wait_merging_threads().map_err(|e| Error::index("close writer", e))?;
            // Merges that ended since the commit are visible from here on: list their words now
            // rather than at the first needle query (after a restart, or when writing resumes).
            self.reader.reload().map_err(|e| Error::index("reload reader", e))?;
            self.sync_term_lists();
            return Ok(true);
        }
        Ok(false)
    }

    /// Size and shape of the committed index.
    pub fn stats(&self) -> PartitionStats {
        let searcher = self.reader.searcher();
        PartitionStats {
            tenant: self.tenant.clone(),
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            disk_bytes: dir_bytes(&self.dir),
            segments: searcher.segment_readers().len(),
            lines: searcher.num_docs(),
        }
    }

    /// Drops the writer without committing (crash simulation, retention).
    pub fn abandon_writer(&self) -> bool {
        self.writer.lock().take().is_some()
    }
}

/// One partition as [`crate::Indexer::partition_stats`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionStats {
    /// Whose partition.
    pub tenant: TenantId,
    /// Time range `[start_ns, end_ns)` it holds.
    pub start_ns: i64,
    pub end_ns: i64,
    /// Bytes of its files on disk.
    pub disk_bytes: u64,
    /// Committed tantivy segments.
    pub segments: usize,
    /// Committed lines.
    pub lines: u64,
}

/// Bytes of all files under `dir` (0 for what cannot be read: the directory may be going away).
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
