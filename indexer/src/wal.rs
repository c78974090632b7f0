//! The write-ahead log: an append is acknowledged only once its bytes are fsync'ed here, so a
//! crash between acknowledgement and the next tantivy commit loses nothing. Records are replayed
//! into tantivy on open; segments wholly below the committed position are deleted.
//!
//! Layout: `dir/<start-position:020>.wal` segment files, each starting with a 16-byte header
//! (`TRSWAL\0\0` + format version u32 LE + reserved u32). A record is `len u32 LE | crc32 u32 LE |
//! payload`. A record's position is its segment's start position plus its byte offset in the
//! file, so positions grow monotonically across segments and fit one `u64`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use prometheus_client::metrics::counter::Counter;

use model::{Labels, LabelsBuilder, LogRecord, TenantId};

use crate::error::Error;

const MAGIC: &[u8; 8] = b"TRSWAL\0\0";
/// Bump when the record encoding changes; older versions must stay readable or be rejected loudly.
pub(crate) const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
const RECORD_HEADER_LEN: usize = 8;
/// One append is one record; bounded so a corrupt length cannot make replay allocate gigabytes.
const MAX_RECORD_BYTES: usize = 1 << 30;

/// One acknowledged append: a tenant's batch of records.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WalEntry {
    pub tenant: TenantId,
    pub records: Vec<LogRecord>,
}

/// The append side of the log plus the list of segments on disk.
pub(crate) struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    /// Start positions of all segments, ascending; the last one is `active`.
    segments: Vec<u64>,
    active: Arc<File>,
    active_len: u64,
}

impl Wal {
    /// Opens the log in `dir`, validating every segment and truncating a torn or corrupt tail of
    /// the last one. `min_start` is where a fresh log starts (the committed position), so new
    /// positions never fall below positions already recorded in partitions.
    pub fn open(dir: &Path, segment_bytes: u64, min_start: u64) -> Result<Wal, Error> {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("create wal dir {}", dir.display()), e))?;
        let segments = list_segments(dir)?;
        if let Some((&last, earlier)) = segments.split_last() {
            for &start in earlier {
                // Only the tail of the newest segment can be torn by a crash; damage elsewhere is
                // reported during replay but the file is left for inspection.
                let (_, valid) = scan_segment(dir, start, &mut |_, _| Ok(()))?;
                let len = fs::metadata(segment_path(dir, start)).map(|m| m.len()).unwrap_or(0);
                if valid < len {
                    tracing::warn!(segment = start, offset = valid, "corrupt record in non-final wal segment");
                }
            }
            let path = segment_path(dir, last);
            let (_, valid) = scan_segment(dir, last, &mut |_, _| Ok(()))?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(format!("open wal segment {}", path.display()), e))?;
            let len = file.metadata().map_err(|e| Error::io("stat wal segment", e))?.len();
            if valid < len {
                tracing::warn!(segment = %path.display(), offset = valid, dropped_bytes = len - valid, "truncating torn wal tail");
                file.set_len(valid).map_err(|e| Error::io("truncate wal segment", e))?;
            }
            let mut file = file;
            let mut active_len = valid;
            if valid < HEADER_LEN {
                file.set_len(0).map_err(|e| Error::io("reset wal segment", e))?;
                file.write_all(&header()).map_err(|e| Error::io("write wal header", e))?;
                file.sync_all().map_err(|e| Error::io("fsync wal segment", e))?;
                active_len = HEADER_LEN;
            }
            use std::io::Seek;
            file.seek(std::io::SeekFrom::End(0)).map_err(|e| Error::io("seek wal segment", e))?;
            Ok(Wal { dir: dir.to_path_buf(), segment_bytes, segments, active: Arc::new(file), active_len })
        } else {
            let (file, len) = create_segment(dir, min_start)?;
            Ok(Wal {
                dir: dir.to_path_buf(),
                segment_bytes,
                segments: vec![min_start],
                active: Arc::new(file),
                active_len: len,
            })
        }
    }

    /// Calls `apply(position, entry)` for every valid record at or after `from`, oldest first.
    pub fn replay(&self, from: u64, apply: &mut dyn FnMut(u64, WalEntry) -> Result<(), Error>) -> Result<u64, Error> {
        let mut count = 0;
        for (i, &start) in self.segments.iter().enumerate() {
            let end = self.segments.get(i + 1).copied().unwrap_or(u64::MAX);
            if end <= from {
                continue;
            }
            scan_segment(&self.dir, start, &mut |pos, entry| {
                if pos >= from {
                    count += 1;
                    apply(pos, entry)?;
                }
                Ok(())
            })?;
        }
        Ok(count)
    }

    /// Appends one entry and fsyncs it; returns the entry's position and record size.
    #[cfg(test)]
    pub fn append(&mut self, entry: &WalEntry) -> Result<(u64, usize), Error> {
        let record = encode_record(entry);
        let position = self.write(&record)?;
        self.active.sync_data().map_err(|e| Error::io("wal fsync", e))?;
        Ok((position, record.len()))
    }

    /// Writes one encoded record (from [`encode_record`]) without fsync; returns its position.
    /// It is durable once a later [`Wal::sync_handle`] file has been synced past it.
    pub fn write(&mut self, record: &[u8]) -> Result<u64, Error> {
        if self.active_len >= self.segment_bytes {
            self.roll()?;
        }
        let position = self.end_position();
        if let Err(e) = (&*self.active).write_all(record) {
            // Leave no half-written record behind the next append: cut back to the last good end.
            let _ = self.active.set_len(self.active_len);
            use std::io::Seek;
            let _ = (&*self.active).seek(std::io::SeekFrom::Start(self.active_len));
            return Err(Error::io("wal append", e));
        }
        self.active_len += record.len() as u64;
        Ok(position)
    }

    /// The active segment and the end position an fsync of it makes durable (earlier segments
    /// were synced when the log rolled past them).
    pub fn sync_handle(&self) -> (Arc<File>, u64) {
        (Arc::clone(&self.active), self.end_position())
    }

    /// The position the next record will get; everything below it is durable.
    pub fn end_position(&self) -> u64 {
        self.segments.last().copied().unwrap_or(0) + self.active_len
    }

    /// Deletes segments whose every record lies below `position` (never the active one).
    pub fn remove_segments_below(&mut self, position: u64) -> Result<usize, Error> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1] <= position {
            let start = self.segments.remove(0);
            let path = segment_path(&self.dir, start);
            fs::remove_file(&path).map_err(|e| Error::io(format!("remove wal segment {}", path.display()), e))?;
            removed += 1;
        }
        Ok(removed)
    }

    fn roll(&mut self) -> Result<(), Error> {
        // A sync of the new segment must imply the old one is durable too.
        self.active.sync_data().map_err(|e| Error::io("wal fsync before roll", e))?;
        let start = self.end_position();
        let (file, len) = create_segment(&self.dir, start)?;
        self.active = Arc::new(file);
        self.active_len = len;
        self.segments.push(start);
        Ok(())
    }

    #[cfg(test)]
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// The WAL shared by concurrent appenders, with group commit: appenders write their records under
/// a short lock, then wait until an fsync covers them. Whoever finds no fsync running starts one
/// (outside the lock) for everything written so far, so N concurrent pushes share one fsync
/// instead of queueing N of them behind a lock.
pub(crate) struct SharedWal {
    wal: Mutex<Wal>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    fsyncs: Counter,
}

struct SyncState {
    /// Everything below this position is fsync'ed.
    durable: u64,
    syncing: bool,
    /// A failed fsync leaves the page cache in an unknown state: stop for good.
    failed: Option<String>,
}

impl SharedWal {
    pub fn new(wal: Wal, fsyncs: Counter) -> SharedWal {
        let durable = wal.end_position();
        SharedWal {
            wal: Mutex::new(wal),
            sync: Mutex::new(SyncState { durable, syncing: false, failed: None }),
            synced: Condvar::new(),
            fsyncs,
        }
    }

    /// Runs `f` with the log locked: writes happen in position order, and whatever `f` does
    /// after a write (queueing the entry for indexing) happens in that order too.
    pub fn with<R>(&self, f: impl FnOnce(&mut Wal) -> R) -> R {
        f(&mut self.wal.lock())
    }

    /// Returns once everything below `position` is fsync'ed.
    pub fn sync_to(&self, position: u64) -> Result<(), Error> {
        let mut state = self.sync.lock();
        loop {
            if let Some(failed) = &state.failed {
                return Err(Error::Failed(failed.clone()));
            }
            if state.durable >= position {
                return Ok(());
            }
            if state.syncing {
                self.synced.wait(&mut state);
                continue;
            }
            state.syncing = true;
            drop(state);
            let (file, target) = self.wal.lock().sync_handle();
            let result = file.sync_data();
            self.fsyncs.inc();
            state = self.sync.lock();
            state.syncing = false;
            match result {
                Ok(()) => state.durable = state.durable.max(target),
                Err(e) => state.failed = Some(format!("wal fsync: {e}")),
            }
            self.synced.notify_all();
        }
    }

    /// Whether an fsync failed (the store then refuses appends).
    pub fn failure(&self) -> Option<String> {
        self.sync.lock().failed.clone()
    }
}

fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.wal"))
}

fn create_segment(dir: &Path, start: u64) -> Result<(File, u64), Error> {
    let path = segment_path(dir, start);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .read(true)
        .open(&path)
        .map_err(|e| Error::io(format!("create wal segment {}", path.display()), e))?;
    file.write_all(&header()).and_then(|_| file.sync_all()).map_err(|e| Error::io("write wal header", e))?;
    sync_dir(dir)?;
    Ok((file, HEADER_LEN))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(format!("fsync dir {}", dir.display()), e))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, Error> {
    let mut starts = Vec::new();
    for item in fs::read_dir(dir).map_err(|e| Error::io("list wal dir", e))? {
        let item = item.map_err(|e| Error::io("list wal dir", e))?;
        let name = item.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else { continue };
        match stem.parse::<u64>() {
            Ok(start) => starts.push(start),
            Err(_) => tracing::warn!(file = ?name, "ignoring unexpected file in wal dir"),
        }
    }
    starts.sort_unstable();
    Ok(starts)
}

/// Reads a segment, calling `visit` for each valid record; returns (records, valid length).
/// Stops at the first torn or corrupt record.
fn scan_segment(
    dir: &Path,
    start: u64,
    visit: &mut dyn FnMut(u64, WalEntry) -> Result<(), Error>,
) -> Result<(usize, u64), Error> {
    let path = segment_path(dir, start);
    let mut data = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| Error::io(format!("read wal segment {}", path.display()), e))?;
    if data.len() < HEADER_LEN as usize {
        return Ok((0, 0));
    }
    if &data[..8] != MAGIC {
        return Err(Error::Corrupt(format!("wal segment {} has a bad magic number", path.display())));
    }
    let version = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    if version != FORMAT_VERSION {
        return Err(Error::Corrupt(format!(
            "wal segment {} has format version {version}, this build reads {FORMAT_VERSION}",
            path.display()
        )));
    }
    let mut offset = HEADER_LEN as usize;
    let mut count = 0;
    while offset + RECORD_HEADER_LEN <= data.len() {
        let len = u32::from_le_bytes([data[offset], data[offset + 1], data[offset + 2], data[offset + 3]]) as usize;
        let crc = u32::from_le_bytes([data[offset + 4], data[offset + 5], data[offset + 6], data[offset + 7]]);
        let body_start = offset + RECORD_HEADER_LEN;
        if len > MAX_RECORD_BYTES || body_start + len > data.len() {
            break;
        }
        let payload = &data[body_start..body_start + len];
        if crc32fast::hash(payload) != crc {
            tracing::warn!(segment = %path.display(), offset, "wal record checksum mismatch");
            break;
        }
        let Some(entry) = decode_entry(payload) else {
            tracing::warn!(segment = %path.display(), offset, "undecodable wal record");
            break;
        };
        visit(start + offset as u64, entry)?;
        count += 1;
        offset = body_start + len;
    }
    Ok((count, offset as u64))
}

/// One entry framed as a record: `len | crc32 | payload`. Done outside any lock by the caller.
pub(crate) fn encode_record(entry: &WalEntry) -> Vec<u8> {
    let mut buf = encode_entry(entry, RECORD_HEADER_LEN);
    let len = (buf.len() - RECORD_HEADER_LEN) as u32;
    let crc = crc32fast::hash(&buf[RECORD_HEADER_LEN..]);
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    buf
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// The payload, after `reserve` zero bytes the caller fills in.
fn encode_entry(entry: &WalEntry, reserve: usize) -> Vec<u8> {
    let size: usize = entry.records.iter().map(|r| r.line.len() + 16 + r.labels.len() * 24).sum();
    let mut buf = Vec::with_capacity(reserve + size + 16);
    buf.resize(reserve, 0);
    put_str(&mut buf, entry.tenant.as_str());
    buf.extend_from_slice(&(entry.records.len() as u32).to_le_bytes());
    for record in &entry.records {
        buf.extend_from_slice(&record.timestamp_ns.to_le_bytes());
        buf.extend_from_slice(&(record.labels.len() as u32).to_le_bytes());
        for label in &record.labels {
            put_str(&mut buf, &label.name);
            put_str(&mut buf, &label.value);
        }
        put_str(&mut buf, &record.line);
    }
    buf
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        Some(i64::from_le_bytes(b.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).ok().map(str::to_owned)
    }
}

fn decode_entry(payload: &[u8]) -> Option<WalEntry> {
    let mut r = Reader { data: payload, pos: 0 };
    let tenant = TenantId::new(&r.string()?).ok()?;
    let count = r.u32()? as usize;
    let mut records = Vec::with_capacity(count.min(payload.len() / 16));
    for _ in 0..count {
        let timestamp_ns = r.i64()?;
        let nlabels = r.u32()? as usize;
        let mut builder = LabelsBuilder::default();
        for _ in 0..nlabels {
            let name = r.string()?;
            let value = r.string()?;
            builder.set(name, value);
        }
        let labels: Labels = builder.build();
        let line = r.string()?;
        records.push(LogRecord { timestamp_ns, labels, line });
    }
    (r.pos == payload.len()).then_some(WalEntry { tenant, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tenant: &str, lines: &[&str]) -> WalEntry {
        let labels = Labels::from_pairs([("job", "a"), ("pod", "p-1")]);
        WalEntry {
            tenant: TenantId::new(tenant).unwrap(),
            records: lines
                .iter()
                .enumerate()
                .map(|(i, l)| LogRecord { timestamp_ns: i as i64 * 7 - 3, labels: labels.clone(), line: l.to_string() })
                .collect(),
        }
    }

    fn replay_all(wal: &Wal, from: u64) -> Vec<(u64, WalEntry)> {
        let mut out = Vec::new();
        wal.replay(from, &mut |pos, e| {
            out.push((pos, e));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn entries_round_trip_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 4096, 0).unwrap();
        let mut written = Vec::new();
        for i in 0..60 {
            let e = entry("t1", &[&format!("line {i} {}", "x".repeat(100)), "ünïcode"]);
            let (pos, _) = wal.append(&e).unwrap();
            written.push((pos, e));
        }
        assert!(wal.segment_count() > 1, "small segment size must roll");
        assert!(written.windows(2).all(|w| w[0].0 < w[1].0), "positions grow");
        drop(wal);
        let wal = Wal::open(dir.path(), 4096, 0).unwrap();
        assert_eq!(replay_all(&wal, 0), written);
        let from = written[30].0;
        assert_eq!(replay_all(&wal, from), written[30..].to_vec());
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        let first = entry("t1", &["one"]);
        wal.append(&first).unwrap();
        let (second_pos, _) = wal.append(&entry("t1", &["two"])).unwrap();
        drop(wal);
        // Simulate a crash mid-write: chop the last record in half.
        let path = segment_path(dir.path(), 0);
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 5).unwrap();
        drop(f);
        let mut wal = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(wal.end_position(), second_pos);
        let third = entry("t2", &["three"]);
        let (third_pos, _) = wal.append(&third).unwrap();
        assert_eq!(third_pos, second_pos);
        let got: Vec<WalEntry> = replay_all(&wal, 0).into_iter().map(|(_, e)| e).collect();
        assert_eq!(got, vec![first, third]);
    }

    #[test]
    fn flipped_byte_stops_replay_at_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        wal.append(&entry("t1", &["one"])).unwrap();
        let (pos, _) = wal.append(&entry("t1", &["two"])).unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 0);
        let mut data = fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&path, data).unwrap();
        let wal = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(replay_all(&wal, 0).len(), 1);
        assert_eq!(wal.end_position(), pos);
    }

    #[test]
    fn old_segments_are_removed_and_fresh_log_starts_at_committed_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 4096, 0).unwrap();
        for _ in 0..40 {
            wal.append(&entry("t1", &[&"y".repeat(300)])).unwrap();
        }
        let end = wal.end_position();
        let before = wal.segment_count();
        let removed = wal.remove_segments_below(end).unwrap();
        assert_eq!(removed, before - 1);
        assert_eq!(wal.segment_count(), 1);
        assert!(replay_all(&wal, end).is_empty());
        let fresh_dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(fresh_dir.path(), 4096, 12345).unwrap();
        assert_eq!(wal.end_position(), 12345 + HEADER_LEN);
    }

    #[test]
    fn one_fsync_acknowledges_every_record_written_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let fsyncs = Counter::default();
        let shared = SharedWal::new(Wal::open(dir.path(), 1 << 20, 0).unwrap(), fsyncs.clone());
        let ends: Vec<u64> = (0..3)
            .map(|i| {
                shared.with(|wal| {
                    wal.write(&encode_record(&entry("t1", &[&format!("l{i}")]))).unwrap();
                    wal.end_position()
                })
            })
            .collect();
        shared.sync_to(ends[2]).unwrap();
        shared.sync_to(ends[0]).unwrap();
        shared.sync_to(ends[1]).unwrap();
        assert_eq!(fsyncs.get(), 1, "later waiters are covered by the first fsync");
        let more = shared.with(|wal| {
            wal.write(&encode_record(&entry("t1", &["l3"]))).unwrap();
            wal.end_position()
        });
        shared.sync_to(more).unwrap();
        assert_eq!(fsyncs.get(), 2);
        shared.with(|wal| assert_eq!(replay_all(wal, 0).len(), 4));
    }

    #[test]
    fn unknown_version_is_rejected_loudly() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = header();
        h[8] = 99;
        fs::write(segment_path(dir.path(), 0), h).unwrap();
        let err = Wal::open(dir.path(), 4096, 0).err().unwrap();
        assert!(err.to_string().contains("format version 99"), "{err}");
    }
}
