//! The log shipper's disk buffer for outages: when the sink fails, batches are written here
//! instead of being held in memory, reading goes on until the buffer reaches its size limit (then
//! it pauses: nothing is dropped), and the batches are delivered in order once the sink is back.
//!
//! Records are framed `[len u32 LE][crc32 u32 LE][payload]` in segment files (`<n>.seg`, rolled at
//! `segment_bytes`); a segment is deleted once all its batches were delivered. The payload carries
//! the batch's sequence number and file acknowledgements, so checkpoints still move only after
//! delivery. The buffer does not outlive the process: the checkpoints never passed its lines, so
//! after a restart they are read again from the files, and leftover segments are discarded at
//! start. All file work runs on the blocking pool.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::error::Error;
use crate::metrics::CollectorMetrics;
use crate::ship::FileAck;

/// Bytes of a record's header (length and crc).
const HEADER: u64 = 8;

/// One buffered batch as written to disk.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct BufferedBatch<T> {
    pub seq: u64,
    pub acks: Vec<(u64, u64)>,
    pub items: Vec<T>,
}

impl<T> BufferedBatch<T> {
    pub(crate) fn file_acks(&self) -> Vec<FileAck> {
        self.acks.iter().map(|&(file, offset)| FileAck { file, offset }).collect()
    }
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
}

fn io<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(context, path, e)
}

impl DiskQueue {
    /// Opens the queue in `dir`, discarding segments a previous process left (their lines were
    /// never checkpointed and are read again). Returns the queue and the bytes discarded.
    pub(crate) fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> Result<(DiskQueue, u64), Error> {
        std::fs::create_dir_all(dir).map_err(io("creating disk buffer directory", dir))?;
        let mut discarded = 0;
        for entry in std::fs::read_dir(dir).map_err(io("listing disk buffer", dir))? {
            let path = entry.map_err(io("listing disk buffer", dir))?.path();
            if path.extension().is_some_and(|e| e == "seg") {
                discarded += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(&path).map_err(io("removing old disk buffer segment", &path))?;
            }
        }
        let queue = DiskQueue {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: segment_bytes.max(1),
            segments: VecDeque::new(),
            slots: VecDeque::new(),
            writer: None,
            next_segment: 0,
            bytes: 0,
        };
        Ok((queue, discarded))
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
        self.bytes -= slot.len;
        let Some(pos) = self.segments.iter().position(|s| s.id == slot.segment) else { return Ok(()) };
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
        Ok(())
    }
}

/// A batch as serialized (borrowing its items).
#[derive(Serialize)]
struct BatchRef<'a, T> {
    seq: u64,
    acks: Vec<(u64, u64)>,
    items: &'a [T],
}

/// The disk queue shared by a shipper's batch tasks (which push) and its drainer.
pub(crate) struct Spill {
    queue: Arc<Mutex<DiskQueue>>,
    /// Batches waiting (readable without the queue's lock, which disk writes hold).
    waiting: AtomicUsize,
    changed: Notify,
    full: AtomicBool,
    metrics: CollectorMetrics,
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
    pub(crate) fn new(queue: DiskQueue, metrics: CollectorMetrics) -> Self {
        Self {
            queue: Arc::new(Mutex::new(queue)),
            waiting: AtomicUsize::new(0),
            changed: Notify::new(),
            full: AtomicBool::new(false),
            metrics,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a batch, waiting while the buffer is full (the caller holds a shipping slot, so
    /// reading pauses behind it: backpressure, never a drop).
    pub(crate) async fn push<T: Serialize + Send + Sync + 'static>(
        &self,
        seq: u64,
        acks: &[FileAck],
        items: Arc<Vec<T>>,
    ) {
        let acks: Vec<(u64, u64)> = acks.iter().map(|a| (a.file, a.offset)).collect();
        let mut payload =
            match tokio::task::spawn_blocking(move || serde_json::to_vec(&BatchRef { seq, acks, items: &items })).await
            {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => unreachable!("log batches always serialize: {e}"),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
        let mut failing = false;
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
                    if failing {
                        tracing::info!("disk buffer writable again");
                    }
                    self.waiting.fetch_add(1, Ordering::AcqRel);
                    self.metrics.buffer_bytes.set(bytes as i64);
                    self.metrics.buffered_batches.inc();
                    if self.full.swap(false, Ordering::AcqRel) {
                        self.metrics.buffer_full.set(0);
                        tracing::info!("disk buffer has room again, reading resumes");
                    }
                    self.changed.notify_waiters();
                    return;
                }
                Pushed::Full(back) => {
                    payload = back;
                    if !self.full.swap(true, Ordering::AcqRel) {
                        self.metrics.buffer_full.set(1);
                        tracing::warn!(
                            bytes = self.metrics.buffer_bytes.get(),
                            "disk buffer full, reading paused until the sink takes data again"
                        );
                    }
                    notified.await;
                }
                Pushed::Failed(e, back) => {
                    payload = back;
                    if !failing {
                        // Once, not every second: the batch stays in memory and reading waits.
                        tracing::error!(error = %e, "writing the disk buffer failed, retrying every second");
                        failing = true;
                    }
                    tokio::time::sleep(DISK_ERROR_RETRY).await;
                }
            }
        }
    }

    /// Delivers buffered batches oldest first, forever (aborted at shutdown). `deliver` retries
    /// until the sink takes the batch and applies its acknowledgements.
    pub(crate) async fn drain<T, F, Fut>(&self, deliver: F)
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(u64, Vec<FileAck>, Vec<T>) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let queue = self.queue.clone();
            let head =
                tokio::task::spawn_blocking(move || queue.lock().unwrap_or_else(|e| e.into_inner()).peek()).await;
            match head {
                Ok(Ok(None)) => {
                    notified.await;
                    continue;
                }
                Ok(Ok(Some(payload))) => match serde_json::from_slice::<BufferedBatch<T>>(&payload) {
                    Ok(batch) => {
                        let acks = batch.file_acks();
                        deliver(batch.seq, acks, batch.items).await;
                    }
                    // Its acknowledgement never comes: checkpoints stop there and a restart reads
                    // the lines again, so nothing is lost.
                    Err(e) => tracing::error!(error = %e, "undecodable disk buffer record, skipping it"),
                },
                Ok(Err(e)) => tracing::error!(error = %e, "unreadable disk buffer record, skipping it"),
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
                    self.metrics.buffer_bytes.set(bytes as i64);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "removing a delivered disk buffer segment failed"),
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
        let (mut q, discarded) = DiskQueue::open(dir.path(), 1 << 20, 100).unwrap();
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
        let (mut q, _) = DiskQueue::open(dir.path(), 100, 1 << 20).unwrap();
        assert!(q.fits(500), "an empty queue takes an oversized batch");
        q.push(&[0; 40]).unwrap();
        assert!(q.fits(40));
        q.push(&[0; 40]).unwrap();
        assert!(!q.fits(1), "96 + 9 > 100");
    }

    #[test]
    fn a_corrupt_record_is_an_error_and_old_segments_are_discarded_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        q.push(b"hello world").unwrap();
        let seg = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&seg, &bytes).unwrap();
        assert!(q.peek().unwrap_err().to_string().contains("crc"));
        let (q, discarded) = DiskQueue::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        assert_eq!((q.len(), discarded), (0, 19));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
