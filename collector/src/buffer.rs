//! The shippers' disk buffers for outages: when the sink fails, batches are written here instead
//! of being held in memory, reading and scraping go on until a buffer reaches its size limit (then
//! they pause: nothing is dropped), and the batches are delivered in order once the sink is back.
//! Logs and samples have a buffer each (samples in the `samples` subdirectory).
//!
//! Records are framed `[len u32 LE][crc32 u32 LE][payload]` in segment files (`<n>.seg`, rolled at
//! `segment_bytes`); a segment is deleted once all its batches were delivered. The payload is
//! `[seq u64 LE][acks u32 LE][(file u64 LE, offset u64 LE) x acks][items]`: the batch's sequence
//! number and file acknowledgements, so checkpoints still move only after delivery, then the items
//! in their kind's exact encoding ([`SpillItem`]: samples as a remote_write body, which keeps every
//! NaN payload such as staleness markers bit for bit).
//!
//! What a restart does with a buffer depends on the kind. Logs: the checkpoints never passed the
//! buffered lines, so they are read again from their files and leftover segments are discarded.
//! Samples: a buffered batch is the only copy (a scrape cannot be repeated), so leftover segments
//! are read back (a torn last record is cut off) and delivered before anything new. All file work
//! runs on the blocking pool.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::{LogStream, TimeSeries};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use crate::error::Error;
use crate::ship::FileAck;

/// How one kind of shipped item is written into a disk buffer, exactly.
pub(crate) trait SpillItem: Sized + Send + Sync + 'static {
    fn encode(items: &[Self], out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Result<Vec<Self>, String>;
}

impl SpillItem for LogStream {
    fn encode(items: &[Self], out: &mut Vec<u8>) {
        serde_json::to_writer(out, items).expect("log streams always serialize");
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Self>, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

impl SpillItem for TimeSeries {
    fn encode(items: &[Self], out: &mut Vec<u8>) {
        out.extend_from_slice(&model::wire::remote_write::encode(items));
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Self>, String> {
        model::wire::remote_write::decode(bytes, u32::MAX as usize).map_err(|e| e.to_string())
    }
}

/// Bytes of the payload before the acknowledgements: seq and their count.
const PAYLOAD_PREFIX: usize = 12;

fn encode_batch<T: SpillItem>(seq: u64, acks: &[FileAck], items: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PAYLOAD_PREFIX + acks.len() * 16 + items.len() * 64);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(acks.len() as u32).to_le_bytes());
    for ack in acks {
        out.extend_from_slice(&ack.file.to_le_bytes());
        out.extend_from_slice(&ack.offset.to_le_bytes());
    }
    T::encode(items, &mut out);
    out
}

fn decode_batch<T: SpillItem>(payload: &[u8]) -> Result<BufferedBatch<T>, String> {
    let u64_at = |i: usize| payload.get(i..i + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let seq = u64_at(0).ok_or("record shorter than its header")?;
    let count = payload.get(8..12).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).unwrap_or(0) as usize;
    let items_at = PAYLOAD_PREFIX + count * 16;
    if payload.len() < items_at {
        return Err(format!("record of {} bytes is shorter than its {count} acknowledgements", payload.len()));
    }
    let acks = (0..count)
        .map(|i| {
            let at = PAYLOAD_PREFIX + i * 16;
            FileAck { file: u64_at(at).expect("length checked"), offset: u64_at(at + 8).expect("length checked") }
        })
        .collect();
    Ok(BufferedBatch { seq, acks, items: T::decode(&payload[items_at..])? })
}

/// The gauges and counter one buffer keeps current.
#[derive(Clone)]
pub(crate) struct SpillMetrics {
    /// `log` or `samples`, for log messages.
    pub kind: &'static str,
    pub bytes: Gauge,
    pub full: Gauge,
    pub batches: Counter,
}

/// Bytes of a record's header (length and crc).
const HEADER: u64 = 8;

/// One buffered batch as read back from disk.
#[derive(Debug, PartialEq)]
pub(crate) struct BufferedBatch<T> {
    pub seq: u64,
    pub acks: Vec<FileAck>,
    pub items: Vec<T>,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    /// Bytes written to it.
    size: u64,
    /// Records written to it and not yet delivered.
    live: usize,
}

/// Where a record sits.
#[derive(Clone, Copy, Debug)]
struct Slot {
    segment: u64,
    offset: u64,
    len: u64,
}

/// A bounded FIFO of batches on disk.
#[derive(Debug)]
pub(crate) struct DiskQueue {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    slots: VecDeque<Slot>,
    writer: Option<File>,
    next_segment: u64,
    bytes: u64,
    /// Records at the front left by a previous process (kept buffers only).
    old_records: usize,
    /// Kept buffers: where the position after the last delivered record is written, so a
    /// restart does not deliver it again.
    head_file: Option<PathBuf>,
}

fn io<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(context, path, e)
}

impl DiskQueue {
    /// Opens the queue in `dir`. Segments a previous process left are discarded (`keep` false:
    /// their lines were never checkpointed and are read again) or read back to be delivered first
    /// (`keep` true; a torn or corrupt tail is cut off). Returns the queue and the bytes discarded.
    pub(crate) fn open(dir: &Path, max_bytes: u64, segment_bytes: u64, keep: bool) -> Result<(DiskQueue, u64), Error> {
        std::fs::create_dir_all(dir).map_err(io("creating disk buffer directory", dir))?;
        let mut old: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io("listing disk buffer", dir))? {
            let path = entry.map_err(io("listing disk buffer", dir))?.path();
            if path.extension().is_some_and(|e| e == "seg") {
                let id = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok());
                old.push((id.unwrap_or(u64::MAX), path));
            }
        }
        old.sort();
        let head_file = dir.join("delivered");
        // (segment, offset): everything before it was delivered. Unreadable: deliver all again.
        let delivered = match std::fs::read(&head_file) {
            Ok(b) if b.len() == 16 => (
                u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
            ),
            _ => (0, 0),
        };
        let mut queue = DiskQueue {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: segment_bytes.max(1),
            segments: VecDeque::new(),
            slots: VecDeque::new(),
            writer: None,
            next_segment: 0,
            bytes: 0,
            old_records: 0,
            head_file: keep.then_some(head_file),
        };
        let mut discarded = 0;
        for (id, path) in old {
            let bytes = std::fs::read(&path).map_err(io("reading old disk buffer segment", &path))?;
            // (bytes of whole records, records left to deliver)
            let (whole, live) = match (keep, id) {
                (false, _) | (true, u64::MAX) => (0, 0),
                (true, id) if id < delivered.0 => (bytes.len() as u64, 0),
                (true, id) => queue.recover_segment(id, &bytes, if id == delivered.0 { delivered.1 } else { 0 }),
            };
            discarded += bytes.len() as u64 - whole;
            if live == 0 {
                std::fs::remove_file(&path).map_err(io("removing old disk buffer segment", &path))?;
            } else if whole < bytes.len() as u64 {
                let file = std::fs::OpenOptions::new().write(true).open(&path).map_err(io("opening", &path))?;
                file.set_len(whole).map_err(io("cutting the torn end of a disk buffer segment", &path))?;
            }
        }
        if keep {
            // New segments sort after every old one and after the delivered position.
            queue.next_segment = queue.next_segment.max(delivered.0 + 1);
        }
        queue.old_records = queue.slots.len();
        Ok((queue, discarded))
    }

    /// Takes the whole records of an old segment up to the first torn or corrupt one, skipping
    /// those before offset `delivered`; returns the bytes the whole records span and how many
    /// are left to deliver.
    fn recover_segment(&mut self, id: u64, bytes: &[u8], delivered: u64) -> (u64, usize) {
        let mut offset = 0usize;
        let mut live = 0;
        while let Some(header) = bytes.get(offset..offset + HEADER as usize) {
            let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let Some(payload) = bytes.get(offset + HEADER as usize..offset + HEADER as usize + len) else { break };
            if crc32fast::hash(payload) != crc {
                break;
            }
            let record = HEADER + len as u64;
            if offset as u64 >= delivered {
                self.slots.push_back(Slot { segment: id, offset: offset as u64, len: record });
                self.bytes += record;
                live += 1;
            }
            offset += record as usize;
        }
        if live > 0 {
            // Never appended to again: the next push starts a new segment.
            self.segments.push_back(Segment { id, size: offset as u64, live });
            self.next_segment = self.next_segment.max(id + 1);
        }
        (offset as u64, live)
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016}.seg"))
    }

    /// Bytes held on disk.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Batches waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether a record of `len` payload bytes fits now. An empty queue always takes one record,
    /// however large, so a batch bigger than the limit cannot block forever.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.slots.is_empty() || self.bytes + HEADER + len as u64 <= self.max_bytes
    }

    /// Appends one record (the caller checked [`DiskQueue::fits`]).
    pub(crate) fn push(&mut self, payload: &[u8]) -> Result<(), Error> {
        let roll = self.segments.back().is_none_or(|s| s.size >= self.segment_bytes) || self.writer.is_none();
        if roll {
            let id = self.next_segment;
            self.next_segment += 1;
            let path = self.segment_path(id);
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io("creating disk buffer segment", &path))?;
            self.writer = Some(file);
            self.segments.push_back(Segment { id, size: 0, live: 0 });
        }
        let segment = self.segments.back_mut().expect("a segment was just ensured");
        let writer = self.writer.as_mut().expect("a writer was just ensured");
        let mut record = Vec::with_capacity(payload.len() + HEADER as usize);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        let path = self.dir.join(format!("{:016}.seg", segment.id));
        if let Err(e) = writer.write_all(&record) {
            // Part of the record may be on disk (a full disk): cut it off so the retry appends
            // where it should; if even that fails, start a new segment so offsets stay right.
            if writer.set_len(segment.size).is_err() {
                segment.size = segment.size.max(self.segment_bytes);
                self.writer = None;
            }
            return Err(Error::io("writing disk buffer segment", path, e));
        }
        self.slots.push_back(Slot { segment: segment.id, offset: segment.size, len: record.len() as u64 });
        segment.size += record.len() as u64;
        segment.live += 1;
        self.bytes += record.len() as u64;
        Ok(())
    }

    /// Whether the oldest record was left by a previous process.
    pub(crate) fn front_is_old(&self) -> bool {
        self.old_records > 0
    }

    /// The oldest record's payload, checked against its crc.
    pub(crate) fn peek(&self) -> Result<Option<Vec<u8>>, Error> {
        let Some(slot) = self.slots.front().copied() else { return Ok(None) };
        let path = self.segment_path(slot.segment);
        let mut file = File::open(&path).map_err(io("opening disk buffer segment", &path))?;
        file.seek(SeekFrom::Start(slot.offset)).map_err(io("reading disk buffer segment", &path))?;
        let mut record = vec![0u8; slot.len as usize];
        file.read_exact(&mut record).map_err(io("reading disk buffer segment", &path))?;
        let len = u32::from_le_bytes(record[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(record[4..8].try_into().expect("4 bytes"));
        let payload = record.split_off(HEADER as usize);
        if payload.len() != len || crc32fast::hash(&payload) != crc {
            let reason = format!("record at offset {} fails its crc", slot.offset);
            return Err(Error::io(
                "reading disk buffer segment",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
            ));
        }
        Ok(Some(payload))
    }

    /// Drops the oldest record (delivered); deletes its segment once nothing in it is waiting.
    pub(crate) fn pop(&mut self) -> Result<(), Error> {
        let Some(slot) = self.slots.pop_front() else { return Ok(()) };
        self.old_records = self.old_records.saturating_sub(1);
        self.bytes -= slot.len;
        // The position first, the segment after: a failed position write (a full disk) must
        // not keep a delivered segment, and so its space, forever.
        let recorded = self.record_delivered(slot);
        let Some(pos) = self.segments.iter().position(|s| s.id == slot.segment) else { return recorded };
        self.segments[pos].live -= 1;
        let is_writing = pos + 1 == self.segments.len();
        if self.segments[pos].live == 0 && (!is_writing || self.segments[pos].size >= self.segment_bytes) {
            if is_writing {
                self.writer = None;
            }
            let segment = self.segments.remove(pos).expect("position is valid");
            let path = self.segment_path(segment.id);
            std::fs::remove_file(&path).map_err(io("removing delivered disk buffer segment", &path))?;
        }
        recorded
    }

    /// Kept buffers: overwrites the delivered position in place (16 bytes in a block the file
    /// already has, so a full disk does not refuse it once the file exists; a truncating write
    /// would free and reallocate the block). Not synced: after a power loss a batch may be
    /// delivered twice, never lost; a failed write means the same.
    fn record_delivered(&self, slot: Slot) -> Result<(), Error> {
        use std::os::unix::fs::FileExt;
        let Some(head_file) = &self.head_file else { return Ok(()) };
        let mut position = [0u8; 16];
        position[..8].copy_from_slice(&slot.segment.to_le_bytes());
        position[8..].copy_from_slice(&(slot.offset + slot.len).to_le_bytes());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(head_file)
            .map_err(io("recording the delivered position", head_file))?;
        file.write_all_at(&position, 0).map_err(io("recording the delivered position", head_file))
    }
}

/// The disk queue shared by a shipper's batch tasks (which push) and its drainer.
pub(crate) struct Spill {
    queue: Arc<Mutex<DiskQueue>>,
    /// Batches waiting (readable without the queue's lock, which disk writes hold).
    waiting: AtomicUsize,
    changed: Notify,
    full: AtomicBool,
    /// A write failed (a full filesystem, ENOSPC) and no write succeeded since: one episode,
    /// logged once however many batches wait on it.
    failing: AtomicBool,
    metrics: SpillMetrics,
}

/// What one attempt to queue a batch did.
enum Pushed {
    Done(u64),
    Full(Vec<u8>),
    Failed(Error, Vec<u8>),
}

/// Pause after a disk error before trying again (the data stays in memory meanwhile).
const DISK_ERROR_RETRY: Duration = Duration::from_secs(1);

impl Spill {
    pub(crate) fn new(queue: DiskQueue, metrics: SpillMetrics) -> Self {
        metrics.bytes.set(queue.bytes() as i64);
        Self {
            waiting: AtomicUsize::new(queue.slots.len()),
            queue: Arc::new(Mutex::new(queue)),
            changed: Notify::new(),
            full: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            metrics,
        }
    }

    /// A reload's `max_bytes` and `segment_bytes` (blocking: takes the queue's lock, which disk
    /// writes hold). A push waiting for room tries again at once.
    pub(crate) fn set_limits(&self, max_bytes: u64, segment_bytes: u64) {
        {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.max_bytes = max_bytes;
            queue.segment_bytes = segment_bytes.max(1);
        }
        self.changed.notify_waiters();
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a batch, waiting while the buffer is full (the caller holds a shipping slot, so
    /// reading pauses behind it: backpressure, never a drop). A failed write (the filesystem is
    /// full) is retried every second the same way: the batch stays in memory, the buffer counts
    /// as full meanwhile, and the episode is logged once when it starts and once when it ends.
    pub(crate) async fn push<T: SpillItem>(&self, seq: u64, acks: &[FileAck], items: Arc<Vec<T>>) {
        let acks = acks.to_vec();
        let mut payload = tokio::task::spawn_blocking(move || encode_batch(seq, &acks, &items))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let queue = self.queue.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                if !q.fits(payload.len()) {
                    return Pushed::Full(payload);
                }
                match q.push(&payload) {
                    Ok(()) => Pushed::Done(q.bytes()),
                    Err(e) => Pushed::Failed(e, payload),
                }
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            match outcome {
                Pushed::Done(bytes) => {
                    let was_failing = self.failing.swap(false, Ordering::AcqRel);
                    self.waiting.fetch_add(1, Ordering::AcqRel);
                    self.metrics.bytes.set(bytes as i64);
                    self.metrics.batches.inc();
                    let was_full = self.full.swap(false, Ordering::AcqRel);
                    if was_full {
                        self.metrics.full.set(0);
                    }
                    if was_failing {
                        tracing::info!(kind = self.metrics.kind, "disk buffer writable again, resuming");
                    } else if was_full {
                        tracing::info!(kind = self.metrics.kind, "disk buffer has room again, reading resumes");
                    }
                    self.changed.notify_waiters();
                    return;
                }
                Pushed::Full(back) => {
                    payload = back;
                    if !self.full.swap(true, Ordering::AcqRel) {
                        self.metrics.full.set(1);
                        tracing::warn!(
                            kind = self.metrics.kind,
                            bytes = self.metrics.bytes.get(),
                            "disk buffer full, reading paused until the sink takes data again"
                        );
                    }
                    notified.await;
                }
                Pushed::Failed(e, back) => {
                    payload = back;
                    if !self.failing.swap(true, Ordering::AcqRel) {
                        // Once per episode, not every second nor per batch waiting on it.
                        tracing::error!(
                            kind = self.metrics.kind,
                            error = %e,
                            "writing the disk buffer failed, the batch waits in memory and reading or scraping pauses; retrying every second"
                        );
                    }
                    if !self.full.swap(true, Ordering::AcqRel) {
                        self.metrics.full.set(1);
                    }
                    // A delivery frees room: try again then, or after the pause.
                    let _ = tokio::time::timeout(DISK_ERROR_RETRY, notified).await;
                }
            }
        }
    }

    /// Delivers buffered batches oldest first, forever (aborted at shutdown). `deliver` retries
    /// until the sink takes the batch and applies its acknowledgements; its sequence number is
    /// `None` for a batch a previous process buffered (kept buffers only).
    pub(crate) async fn drain<T, F, Fut>(&self, deliver: F)
    where
        T: SpillItem,
        F: Fn(Option<u64>, Vec<FileAck>, Vec<T>) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let queue = self.queue.clone();
            let head = tokio::task::spawn_blocking(move || {
                let q = queue.lock().unwrap_or_else(|e| e.into_inner());
                q.peek().map(|p| p.map(|p| (p, q.front_is_old())))
            })
            .await;
            let kind = self.metrics.kind;
            match head {
                Ok(Ok(None)) => {
                    notified.await;
                    continue;
                }
                Ok(Ok(Some((payload, old)))) => match decode_batch::<T>(&payload) {
                    Ok(batch) => deliver((!old).then_some(batch.seq), batch.acks, batch.items).await,
                    // Its acknowledgement never comes: checkpoints stop there and a restart reads
                    // the lines again, so no line is lost (a sample batch is).
                    Err(e) => tracing::error!(kind, error = %e, "undecodable disk buffer record, skipping it"),
                },
                Ok(Err(e)) => tracing::error!(kind, error = %e, "unreadable disk buffer record, skipping it"),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
            let queue = self.queue.clone();
            let popped = tokio::task::spawn_blocking(move || {
                let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                q.pop().map(|()| q.bytes())
            })
            .await;
            match popped {
                Ok(Ok(bytes)) => {
                    self.metrics.bytes.set(bytes as i64);
                }
                Ok(Err(e)) => tracing::warn!(kind, error = %e, "removing a delivered disk buffer segment failed"),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.changed.notify_waiters();
        }
    }

    /// Resolves once every buffered batch was delivered.
    pub(crate) async fn wait_empty(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_and_segments_go_once_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, discarded) = DiskQueue::open(dir.path(), 1 << 20, 100, false).unwrap();
        assert_eq!(discarded, 0);
        for i in 0..10u8 {
            assert!(q.fits(40));
            q.push(&[i; 40]).unwrap();
        }
        assert_eq!(q.len(), 10);
        assert_eq!(q.bytes(), 480);
        let segments = || std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(segments(), 4, "48-byte records go into a segment until it reaches 100 bytes: 3+3+3+1");
        for i in 0..10u8 {
            assert_eq!(q.peek().unwrap().unwrap(), vec![i; 40]);
            q.pop().unwrap();
        }
        assert!(q.is_empty() && q.peek().unwrap().is_none());
        assert!(segments() <= 1, "delivered segments are deleted");
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn the_size_limit_is_enforced_but_one_record_always_fits() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(dir.path(), 100, 1 << 20, false).unwrap();
        assert!(q.fits(500), "an empty queue takes an oversized batch");
        q.push(&[0; 40]).unwrap();
        assert!(q.fits(40));
        q.push(&[0; 40]).unwrap();
        assert!(!q.fits(1), "96 + 9 > 100");
    }

    #[test]
    fn a_corrupt_record_is_an_error_and_old_segments_are_discarded_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(dir.path(), 1 << 20, 1 << 20, false).unwrap();
        q.push(b"hello world").unwrap();
        let seg = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&seg, &bytes).unwrap();
        assert!(q.peek().unwrap_err().to_string().contains("crc"));
        let (q, discarded) = DiskQueue::open(dir.path(), 1 << 20, 1 << 20, false).unwrap();
        assert_eq!((q.len(), discarded), (0, 19));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn sample_batches_round_trip_exactly_with_their_acknowledgements() {
        let stale = TimeSeries::new(
            model::Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            vec![
                model::Sample::new(1, model::stale_nan()),
                model::Sample::new(2, f64::NAN),
                model::Sample::new(3, 1.5),
            ],
        );
        let acks = [FileAck { file: 7, offset: 1 << 40 }, FileAck { file: u64::MAX, offset: 0 }];
        let payload = encode_batch(42, &acks, std::slice::from_ref(&stale));
        let batch = decode_batch::<TimeSeries>(&payload).unwrap();
        assert_eq!((batch.seq, batch.acks.as_slice()), (42, &acks[..]));
        let bits: Vec<u64> = batch.items[0].samples.iter().map(|s| s.value.to_bits()).collect();
        assert_eq!(bits, stale.samples.iter().map(|s| s.value.to_bits()).collect::<Vec<_>>(), "NaN payloads kept");
        assert_eq!(batch.items[0].labels, stale.labels);
        assert!(decode_batch::<TimeSeries>(&payload[..10]).is_err());
        assert!(decode_batch::<LogStream>(b"\0\0\0\0\0\0\0\0\xff\xff\xff\xff").is_err(), "an absurd ack count");
    }

    #[test]
    fn a_failed_position_write_still_frees_the_delivered_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(dir.path(), 1 << 20, 1, true).unwrap();
        for i in 0..3u8 {
            q.push(&[i; 40]).unwrap();
        }
        let segments = || {
            let files = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path());
            files.filter(|p| p.extension().is_some_and(|e| e == "seg")).count()
        };
        assert_eq!(segments(), 3, "a segment per record");
        // The position cannot be written (as on a full disk before the file exists).
        std::fs::create_dir(dir.path().join("delivered")).unwrap();
        assert!(q.pop().unwrap_err().to_string().contains("delivered position"));
        assert_eq!(segments(), 2, "the delivered segment is gone all the same");
        assert_eq!((q.len(), q.bytes()), (2, 96));
        std::fs::remove_dir(dir.path().join("delivered")).unwrap();
        q.pop().unwrap();
        drop(q);
        let (q, _) = DiskQueue::open(dir.path(), 1 << 20, 1, true).unwrap();
        assert_eq!(q.peek().unwrap().unwrap(), vec![2; 40], "the position written in place holds");
    }

    #[test]
    fn a_kept_buffer_comes_back_in_order_without_its_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(dir.path(), 1 << 20, 100, true).unwrap();
        for i in 0..5u8 {
            q.push(&[i; 40]).unwrap();
        }
        q.peek().unwrap();
        q.pop().unwrap();
        drop(q);
        // A crash in the middle of the next record.
        let segment_files = || {
            let files = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path());
            files.filter(|p| p.extension().is_some_and(|e| e == "seg")).collect::<Vec<_>>()
        };
        let last = segment_files().into_iter().max().unwrap();
        let mut torn = std::fs::OpenOptions::new().append(true).open(&last).unwrap();
        torn.write_all(&[48, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
        drop(torn);

        let (mut q, discarded) = DiskQueue::open(dir.path(), 1 << 20, 100, true).unwrap();
        assert_eq!((q.len(), discarded, q.bytes()), (4, 10, 4 * 48));
        q.push(&[9; 40]).unwrap();
        let mut order = Vec::new();
        while let Some(payload) = q.peek().unwrap() {
            order.push((payload[0], q.front_is_old()));
            q.pop().unwrap();
        }
        assert_eq!(order, [(1, true), (2, true), (3, true), (4, true), (9, false)]);
        let segments =
            std::fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some()).count();
        assert!(segments <= 1, "delivered segments are deleted");

        // Restarted again with two new records, one delivered: only the other comes back.
        q.push(&[10; 40]).unwrap();
        q.push(&[11; 40]).unwrap();
        q.peek().unwrap();
        q.pop().unwrap();
        drop(q);
        let (mut q, discarded) = DiskQueue::open(dir.path(), 1 << 20, 100, true).unwrap();
        assert_eq!((q.len(), discarded), (1, 0));
        assert_eq!(q.peek().unwrap().unwrap(), vec![11; 40]);
        q.pop().unwrap();
        drop(q);
        let (q, _) = DiskQueue::open(dir.path(), 1 << 20, 100, true).unwrap();
        assert!(q.is_empty(), "nothing is delivered twice");
    }
}
