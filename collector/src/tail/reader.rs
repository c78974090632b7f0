//! The tailing loop: one dedicated thread (file reads are blocking) that rescans, reads every open
//! file's new bytes, turns them into records and hands them to the log shipper. Rotated and
//! deleted files are read to their end through their open handle before the file now at their
//! path, so a stream's lines stay in order across a rotation.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use model::{LogEntry, LogStream};
use tokio::sync::mpsc;

use crate::config::{StartAt, TailConfig};
use crate::kubernetes::PodMetadata;
use crate::metrics::CollectorMetrics;
use crate::parse::body::{BodyParser, Derived};
use crate::parse::{LineParser, ParsedLine, Stream};
use crate::ship::{Chunk, FileAck};
use crate::tail::checkpoint::{CheckpointEntry, CheckpointStore};
use crate::tail::discovery::Discovery;
use crate::tail::file::{FINGERPRINT_BYTES, Fingerprint, Identity, TailedFile};
use crate::tail::labels::FileLabels;

/// Bytes read from one file per pass, so one busy file cannot starve the others.
const READ_BUDGET_PER_FILE: usize = 1024 * 1024;
/// Longest wait between read passes when no watch event arrives (bounds latency without inotify).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Wait between attempts to hand a chunk to a full shipper channel.
const BACKPRESSURE_RETRY: Duration = Duration::from_millis(10);

/// A configuration reload for the tailing thread, taken at the start of its next pass.
pub(crate) struct TailReload {
    pub config: TailConfig,
    pub discovery: Discovery,
    /// The re-created Kubernetes metadata watch (`Some(None)`: now off), when it changed.
    pub metadata: Option<Option<Arc<PodMetadata>>>,
}

/// State of the tailing thread.
pub(crate) struct Tailer {
    pub config: TailConfig,
    pub discovery: Discovery,
    pub store: Arc<CheckpointStore>,
    pub tx: mpsc::Sender<Chunk<LogStream>>,
    pub metrics: CollectorMetrics,
    pub stop: Arc<AtomicBool>,
    pub rescan_requested: Arc<AtomicBool>,
    pub wake_rx: std::sync::mpsc::Receiver<()>,
    pub node_name: Option<String>,
    /// Per-workload counters for autoscaling (counting only while `collector.signals.enabled`).
    signals: Option<Arc<crate::signals::Signals>>,
    /// Pod metadata from the Kubernetes API, when `collector.kubernetes` is active.
    metadata: Option<Arc<PodMetadata>>,
    /// A configuration reload, taken on the next pass.
    pending_reload: Arc<std::sync::Mutex<Option<TailReload>>>,
    /// The next rescan follows a reload: `start_at` applies to files it finds at new paths.
    reload_scan: bool,
    /// Pod files whose metadata has not arrived, and until when their reading waits for it.
    awaiting_metadata: HashMap<u64, Instant>,
    /// Open pod files' path labels and the metadata they carry, to refresh them when the pod
    /// changes (only with `metadata`).
    pod_files: HashMap<u64, PodFileLabels>,
    files: HashMap<u64, TailedFile>,
    /// Read buffer shared by every file.
    buf: Vec<u8>,
    by_identity: HashMap<Identity, u64>,
    next_id: u64,
    first_scan: bool,
}

/// A pod file's labels before metadata, the metadata they carry now, and the metadata generation
/// that was checked last.
struct PodFileLabels {
    path_only: FileLabels,
    extra: Vec<(String, String)>,
    generation: u64,
}

impl Tailer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: TailConfig,
        discovery: Discovery,
        store: Arc<CheckpointStore>,
        tx: mpsc::Sender<Chunk<LogStream>>,
        metrics: CollectorMetrics,
        stop: Arc<AtomicBool>,
        rescan_requested: Arc<AtomicBool>,
        wake_rx: std::sync::mpsc::Receiver<()>,
        node_name: Option<String>,
        signals: Option<Arc<crate::signals::Signals>>,
        metadata: Option<Arc<PodMetadata>>,
        pending_reload: Arc<std::sync::Mutex<Option<TailReload>>>,
    ) -> Self {
        Tailer {
            config,
            discovery,
            store,
            tx,
            metrics,
            stop,
            rescan_requested,
            wake_rx,
            node_name,
            signals,
            metadata,
            pending_reload,
            reload_scan: false,
            awaiting_metadata: HashMap::new(),
            pod_files: HashMap::new(),
            files: HashMap::new(),
            buf: Vec::new(),
            by_identity: HashMap::new(),
            next_id: 0,
            first_scan: true,
        }
    }

    /// Runs until `stop` is set. Lines read but not yet acknowledged are simply not checkpointed,
    /// so stopping at any point loses nothing.
    pub(crate) fn run(mut self) {
        let mut last_scan: Option<Instant> = None;
        while !self.stopped() {
            let reload = self.pending_reload.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(reload) = reload {
                if !self.apply_reload(reload) {
                    break;
                }
                last_scan = None;
            }
            let rescan_due = last_scan.is_none_or(|t| t.elapsed() >= self.config.rescan_interval);
            if rescan_due || self.rescan_requested.swap(false, Ordering::AcqRel) {
                self.rescan();
                last_scan = Some(Instant::now());
            }
            let more = match self.read_all() {
                Some(more) => more,
                None => break,
            };
            if !more {
                let until_scan = last_scan
                    .map(|t| self.config.rescan_interval.saturating_sub(t.elapsed()))
                    .unwrap_or(Duration::ZERO);
                let _ = self.wake_rx.recv_timeout(until_scan.min(POLL_INTERVAL));
            }
        }
        self.metrics.open_files.set(0);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Opens newly matching files and marks files no path leads to any more as orphaned.
    fn rescan(&mut self) {
        let paths = self.discovery.scan();
        let mut seen: HashMap<Identity, PathBuf> = HashMap::new();
        for path in &paths {
            let Ok(meta) = std::fs::metadata(path) else { continue };
            seen.entry(Identity::of(&meta)).or_insert_with(|| path.clone());
        }
        for file in self.files.values_mut() {
            if file.deselected && seen.contains_key(&file.identity) {
                // Matched again before it was released: keep reading it as before.
                tracing::debug!(path = %file.path.display(), "file matched again");
                (file.orphaned, file.orphaned_since, file.deselected) = (false, None, false);
                continue;
            }
            if !file.orphaned && !seen.contains_key(&file.identity) {
                // Still at its path but not matched: the globs changed (a reload). Its checkpoint
                // is kept after release, so matching it again later resumes where it stopped.
                file.deselected = std::fs::metadata(&file.path).is_ok_and(|m| Identity::of(&m) == file.identity);
                tracing::debug!(path = %file.path.display(), deselected = file.deselected, "file rotated, deleted or no longer matched, reading it to its end");
                file.orphaned = true;
                file.orphaned_since = Some(Instant::now());
                if !file.deselected {
                    self.metrics.rotations.inc();
                }
            }
        }
        let mut skipped = 0usize;
        for (identity, path) in seen {
            if self.by_identity.contains_key(&identity) {
                continue;
            }
            if self.files.len() >= self.config.max_open_files {
                skipped += 1;
                continue;
            }
            if let Err(e) = self.open(&path, identity) {
                tracing::warn!(path = %path.display(), error = %e, "cannot open log file");
            }
        }
        if skipped > 0 {
            tracing::warn!(skipped, max_open_files = self.config.max_open_files, "too many open files, some wait");
        }
        self.store.prune_unclaimed(|entry| {
            std::fs::metadata(&entry.path).is_ok_and(|m| Identity::of(&m) == entry.identity())
        });
        self.first_scan = false;
        self.reload_scan = false;
    }

    /// Applies a reloaded `collector.tail` (and Kubernetes metadata watch) to the open files, each
    /// at its current position: lines read from now on get the new labels, body parsing, line
    /// format and multiline joining; what the old parser or joiner held is shipped first as it
    /// stood. `false` when stopping.
    fn apply_reload(&mut self, reload: TailReload) -> bool {
        let old = std::mem::replace(&mut self.config, reload.config);
        self.discovery = reload.discovery;
        let new = &self.config;
        let metadata_changed = reload.metadata.is_some();
        if let Some(metadata) = reload.metadata {
            self.metadata = metadata;
            self.awaiting_metadata.clear();
            self.pod_files.clear();
        }
        let labels_changed = old.labels != new.labels || metadata_changed;
        let lines_changed =
            old.format != new.format || old.multiline != new.multiline || old.max_line_bytes != new.max_line_bytes;
        let parse_changed = old.parse != new.parse;
        self.reload_scan = old.start_at != new.start_at || old.include != new.include || old.exclude != new.exclude;
        tracing::info!(labels_changed, lines_changed, parse_changed, "tail configuration reloaded, rescanning");
        let mut ids: Vec<u64> = self.files.keys().copied().collect();
        ids.sort();
        for id in ids {
            if labels_changed {
                self.relabel(id, metadata_changed);
            }
            let Some(file) = self.files.get_mut(&id) else { continue };
            if parse_changed {
                file.body = Some(self.config.parse.for_path(&file.path)).filter(BodyParser::is_active);
            }
            if !lines_changed {
                continue;
            }
            let (parser, joiner) = line_parsing(&self.config, &file.path);
            let records = file.reconfigure(parser, joiner, self.config.max_line_bytes, model::time::now_ns());
            if !records.is_empty() && !self.ship(id, records) {
                return false;
            }
        }
        true
    }

    /// Rebuilds file `id`'s labels from its path and the current `labels`; a pod file keeps the
    /// metadata it had, or, with a new metadata watch, looks its pod up again on its next read.
    fn relabel(&mut self, id: u64, metadata_changed: bool) {
        let Some(file) = self.files.get_mut(&id) else { return };
        let path_only = FileLabels::new(&file.path, &self.config.labels, self.node_name.as_deref());
        if metadata_changed {
            if self.metadata.is_some() && path_only.pod.is_some() {
                // A generation no watch has: the next read pass looks the pod up.
                let state = PodFileLabels { path_only: path_only.clone(), extra: Vec::new(), generation: u64::MAX };
                self.pod_files.insert(id, state);
            }
            file.labels = path_only;
        } else if let Some(state) = self.pod_files.get_mut(&id) {
            file.labels = path_only.with_extra(&state.extra);
            state.path_only = path_only;
        } else {
            file.labels = path_only;
        }
    }

    /// Hands records of file `id` to the shipper (with signals counted), acknowledging its
    /// current safe offset. `false` when stopping.
    fn ship(&self, id: u64, records: Vec<ParsedLine>) -> bool {
        let Some(file) = self.files.get(&id) else { return true };
        let items = group_records(records, &file.labels, file.body.as_ref());
        if let Some(signals) = &self.signals {
            signals.observe(&items);
        }
        self.send(Chunk {
            bytes: items.iter().flat_map(|s| &s.entries).map(|e| e.line.len()).sum(),
            items,
            order_key: file.order_key,
            ack: Some(FileAck { file: id, offset: file.safe_offset() }),
        })
    }

    fn open(&mut self, path: &Path, expected: Identity) -> std::io::Result<()> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let identity = Identity::of(&meta);
        if identity != expected {
            return Ok(()); // replaced between scan and open: the next scan sees the new one
        }
        let fingerprint = Fingerprint::read(&file, FINGERPRINT_BYTES)?;
        // (offset to read from, offset sent before the restart): the sent offset stays in the
        // checkpoint until the lines are acknowledged again, so a restart killed before sending
        // them still counts them at the next start.
        let (start, sent) = match self.store.claim(identity) {
            Some(cp)
                if cp.offset <= meta.len() && Fingerprint::read(&file, cp.fingerprint_len)?.hash == cp.fingerprint =>
            {
                if cp.sent_offset > cp.offset {
                    let again = count_lines(&file, cp.offset, cp.sent_offset.min(meta.len()))?;
                    tracing::info!(path = %path.display(), lines = again, "lines sent before the restart without an acknowledgement are sent again");
                    self.metrics.duplicates_after_restart.inc_by(again);
                }
                (cp.offset, cp.sent_offset)
            }
            // No checkpoint, or the inode was reused by another file. After a reload, `start_at`
            // applies to files at paths not tailed before (not to a rotation's new file).
            _ if self.config.start_at == StartAt::End
                && (self.first_scan || (self.reload_scan && !self.files.values().any(|f| f.path == path))) =>
            {
                (meta.len(), 0)
            }
            _ => (0, 0),
        };
        let id = self.next_id;
        self.next_id += 1;
        let mut labels = FileLabels::new(path, &self.config.labels, self.node_name.as_deref());
        if let (Some(metadata), Some(uid)) = (&self.metadata, labels.pod.as_ref().map(|p| p.uid.clone())) {
            // Read before the lookup: a change between the two is seen at the next read pass.
            let generation = metadata.generation();
            let extra = metadata.stream_labels(&uid);
            self.pod_files.insert(
                id,
                PodFileLabels { path_only: labels.clone(), extra: extra.clone().unwrap_or_default(), generation },
            );
            match extra {
                Some(extra) => labels = labels.with_extra(&extra),
                None if !metadata.wait().is_zero() => {
                    self.awaiting_metadata.insert(id, Instant::now() + metadata.wait());
                }
                None => {
                    self.metrics.metadata_missing.inc();
                }
            }
        }
        let (parser, joiner) = line_parsing(&self.config, path);
        self.store.register(
            id,
            CheckpointEntry {
                dev: identity.dev,
                ino: identity.ino,
                fingerprint_len: fingerprint.len,
                fingerprint: fingerprint.hash,
                offset: start,
                sent_offset: sent,
                path: path.to_string_lossy().into_owned(),
            },
        );
        tracing::debug!(path = %path.display(), offset = start, "tailing file");
        let mut tailed = TailedFile::new(
            id,
            path,
            file,
            identity,
            fingerprint,
            labels,
            start,
            parser,
            joiner,
            self.config.max_line_bytes,
        );
        tailed.body = Some(self.config.parse.for_path(path)).filter(BodyParser::is_active);
        self.files.insert(id, tailed);
        self.by_identity.insert(identity, id);
        self.metrics.open_files.set(self.files.len() as i64);
        Ok(())
    }

    /// One read pass over all files, orphaned ones first. Returns whether some file has more to
    /// read right away, or `None` when stopping.
    fn read_all(&mut self) -> Option<bool> {
        let mut ids: Vec<(bool, u64)> = self.files.values().map(|f| (!f.orphaned, f.id)).collect();
        ids.sort();
        let mut more = false;
        for (_, id) in ids {
            let now_ns = model::time::now_ns();
            if !self.metadata_ready(id) {
                continue;
            }
            self.refresh_labels(id);
            let Some(file) = self.files.get_mut(&id) else { continue };
            let outcome = match file.read_with(&mut self.buf, READ_BUDGET_PER_FILE, now_ns) {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(path = %file.path.display(), error = %e, "read failed, releasing file");
                    self.release(id);
                    continue;
                }
            };
            let metrics = &self.metrics;
            metrics.bytes_read.inc_by(outcome.bytes);
            metrics.lines_read.inc_by(outcome.records.len() as u64);
            metrics.lines_truncated.inc_by(outcome.truncated_lines);
            if outcome.truncated_file {
                tracing::info!(path = %file.path.display(), "file truncated, reading from the start");
                metrics.truncations.inc();
            }
            if let Some(fp) = outcome.new_fingerprint {
                self.store.set_fingerprint(id, fp);
            }
            let lag = outcome.size.saturating_sub(file.read_offset());
            let lag_labels = vec![("path".to_string(), file.path.to_string_lossy().into_owned())];
            metrics.file_lag_bytes.get_or_create(&lag_labels).set(lag as i64);
            if let Some(signals) = &self.signals {
                signals.set_lag(id, Some(lag));
            }
            more |= !outcome.at_eof;
            if (outcome.bytes > 0 || !outcome.records.is_empty() || outcome.truncated_file)
                && !self.ship(id, outcome.records)
            {
                return None;
            }
            // Released only after a quiet rescan interval at EOF: an application that has not
            // reopened its log yet still appends to the rotated file for a moment.
            let file = &self.files[&id];
            let quiet = file.orphaned_since.is_some_and(|t| t.elapsed() >= self.config.rescan_interval);
            if file.orphaned && quiet && outcome.at_eof && outcome.bytes == 0 {
                self.release(id);
            }
        }
        Some(more)
    }

    /// Whether file `id` may be read: its pod's metadata arrived (its labels are completed now) or
    /// the wait for it is over (its lines go out with the path's labels: late, never dropped).
    fn metadata_ready(&mut self, id: u64) -> bool {
        let Some(deadline) = self.awaiting_metadata.get(&id).copied() else { return true };
        let Some(file) = self.files.get_mut(&id) else { return true };
        let extra = file.labels.pod.as_ref().zip(self.metadata.as_ref()).and_then(|(p, m)| m.stream_labels(&p.uid));
        if let Some(extra) = extra {
            file.labels = file.labels.with_extra(&extra);
            if let Some(state) = self.pod_files.get_mut(&id) {
                state.extra = extra;
            }
        } else if Instant::now() < deadline {
            return false;
        } else {
            tracing::debug!(path = %file.path.display(), "no pod metadata in time, shipping with path labels");
            self.metrics.metadata_missing.inc();
        }
        self.awaiting_metadata.remove(&id);
        true
    }

    /// Gives file `id` its pod's current metadata labels when the metadata changed since they were
    /// made (a pod relabelled while its file is open): lines read from now on carry them. A pod
    /// the API no longer knows keeps its last labels.
    fn refresh_labels(&mut self, id: u64) {
        let (Some(metadata), Some(state)) = (&self.metadata, self.pod_files.get_mut(&id)) else { return };
        let generation = metadata.generation();
        if generation == state.generation {
            return;
        }
        state.generation = generation;
        let Some(uid) = state.path_only.pod.as_ref().map(|p| p.uid.as_str()) else { return };
        let Some(extra) = metadata.stream_labels(uid) else { return };
        if extra == state.extra {
            return;
        }
        let Some(file) = self.files.get_mut(&id) else { return };
        tracing::debug!(path = %file.path.display(), "pod metadata changed, new labels for the file's next lines");
        file.labels = state.path_only.with_extra(&extra);
        state.extra = extra;
    }

    /// Hands a chunk to the shipper, waiting while its channel is full. `false` when stopping.
    fn send(&self, mut chunk: Chunk<LogStream>) -> bool {
        loop {
            match self.tx.try_send(chunk) {
                Ok(()) => {
                    self.metrics.read_paused.set(0);
                    return true;
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    self.metrics.read_paused.set(1);
                    if self.stopped() {
                        return false;
                    }
                    chunk = back;
                    std::thread::sleep(BACKPRESSURE_RETRY);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
    }

    fn release(&mut self, id: u64) {
        self.awaiting_metadata.remove(&id);
        self.pod_files.remove(&id);
        if let Some(file) = self.files.remove(&id) {
            tracing::debug!(path = %file.path.display(), "released file");
            self.by_identity.remove(&file.identity);
            self.store.release(id, file.safe_offset(), file.deselected);
            if let Some(signals) = &self.signals {
                signals.set_lag(id, None);
            }
            let lag_labels = vec![("path".to_string(), file.path.to_string_lossy().into_owned())];
            // Another open file may share the path (the new file after a rotation).
            if !self.files.values().any(|f| f.path == file.path) {
                self.metrics.file_lag_bytes.remove(&lag_labels);
            }
        }
        self.metrics.open_files.set(self.files.len() as i64);
    }
}

/// A file's line parser and multiline joiner under `config`.
fn line_parsing(config: &TailConfig, _path: &Path) -> (LineParser, Option<crate::parse::Joiner>) {
    let parser = LineParser::new(config.format, config.max_line_bytes);
    // Validated with the configuration; a failure here leaves the file unjoined, not unread.
    let joiner = config.multiline.joiner(config.max_line_bytes).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "multiline rules do not compile, lines are not joined");
        None
    });
    (parser, joiner)
}

/// One stream per label set present in `records` (container stream, level, promoted fields),
/// each keeping its records' order: labels are cloned once per stream, not once per line.
fn group_records(records: Vec<ParsedLine>, labels: &FileLabels, body: Option<&BodyParser>) -> Vec<LogStream> {
    let slot = |s: Option<Stream>| match s {
        None => 0usize,
        Some(Stream::Stdout) => 1,
        Some(Stream::Stderr) => 2,
    };
    let Some(body) = body else {
        let mut streams: [Option<LogStream>; 3] = [None, None, None];
        let mut order = Vec::with_capacity(3);
        for r in records {
            let i = slot(r.stream);
            let stream = streams[i].get_or_insert_with(|| {
                order.push(i);
                LogStream { labels: labels.for_stream(r.stream).clone(), entries: Vec::new() }
            });
            stream.entries.push(LogEntry { timestamp_ns: r.timestamp_ns, line: r.line });
        }
        return order.into_iter().filter_map(|i| streams[i].take()).collect();
    };
    let mut groups: Vec<((usize, Derived), LogStream)> = Vec::new();
    for r in records {
        let key = (slot(r.stream), body.derive(&r.line));
        let at = match groups.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                let mut builder = labels.for_stream(r.stream).to_builder();
                if let Some(level) = key.1.level {
                    builder.set("level", level.as_str());
                }
                for (name, value) in body.field_labels.iter().zip(&key.1.labels) {
                    if let Some(value) = value {
                        builder.set(name, value);
                    }
                }
                groups.push((key, LogStream { labels: builder.build(), entries: Vec::new() }));
                groups.len() - 1
            }
        };
        groups[at].1.entries.push(LogEntry { timestamp_ns: r.timestamp_ns, line: r.line });
    }
    groups.into_iter().map(|(_, s)| s).collect()
}

/// Newlines in `file` between two offsets (the lines a restart reads again).
fn count_lines(file: &File, from: u64, to: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut at, mut lines) = (from, 0u64);
    while at < to {
        let want = buf.len().min((to - at) as usize);
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        at += n as u64;
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::body::{BodyFormat, ParseConfig};

    fn rec(stream: Option<Stream>, line: &str) -> ParsedLine {
        ParsedLine { timestamp_ns: 1, stream, line: line.into(), truncated: false }
    }

    #[test]
    fn records_group_by_stream_level_and_promoted_fields_keeping_order() {
        let labels = FileLabels::new(Path::new("/var/log/app.log"), &Default::default(), None);
        let config = ParseConfig {
            body: BodyFormat::Logfmt,
            detect_level: true,
            field_labels: vec!["component".into()],
            ..Default::default()
        };
        let body = config.for_path(Path::new("/var/log/app.log"));
        let records = vec![
            rec(None, "level=info component=db msg=a"),
            rec(None, "level=error component=db msg=b"),
            rec(None, "level=info component=db msg=c"),
            rec(None, "plain words"),
        ];
        let streams = group_records(records, &labels, Some(&body));
        let got: Vec<(Option<&str>, Option<&str>, Vec<&str>)> = streams
            .iter()
            .map(|s| {
                (s.labels.get("level"), s.labels.get("component"), s.entries.iter().map(|e| e.line.as_str()).collect())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("info"), Some("db"), vec!["level=info component=db msg=a", "level=info component=db msg=c"]),
                (Some("error"), Some("db"), vec!["level=error component=db msg=b"]),
                (None, None, vec!["plain words"]),
            ]
        );
        let plain = group_records(vec![rec(Some(Stream::Stdout), "x"), rec(Some(Stream::Stderr), "y")], &labels, None);
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[1].labels.get("stream"), Some("stderr"));
    }
}
