//! The write-ahead log: every accepted append is written here and fsync'ed before `append`
//! returns (by a group fsync shared by concurrent appends: [`GroupSync`]), and replayed into the
//! head on open. Segment files `dir/wal/00000001`, ... start with
//! an 8-byte header (magic `TRSWAL` + format version); each record is
//! `len: u32 LE | crc32(payload): u32 LE | payload`. A torn or corrupt record at the end of the
//! last segment (a crash mid-write) is cut off at open with a warning.
//!
//! Truncation: once the head has been cut into blocks, the store rotates to a new segment and
//! writes a checkpoint `checkpoint.N` (same framing) holding what the head still needs from
//! segments `<= N` (its live series and samples); then those segments are deleted. Open replays
//! the newest checkpoint, then the segments after it. A checkpoint is written as
//! `checkpoint.N.tmp` and renamed, so a crash leaves either the old segments or the checkpoint.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use model::{HistogramSample, Labels};

use crate::error::{Error, Result};
use crate::index::SeriesId;

const MAGIC: &[u8; 6] = b"TRSWAL";
/// Bump when the record layout changes; open refuses versions it does not know. Version 2 adds
/// the compact samples record, version 3 the native-histogram record; version 1 segments
/// (fixed-width samples) and 2 are still read.
pub const FORMAT_VERSION: u16 = 3;
const OLDEST_READABLE_VERSION: u16 = 1;
const HEADER_LEN: u64 = 8;
const RECORD_SERIES: u8 = 1;
/// Samples as fixed-width (id, timestamp, value bits): 24 bytes each (format 1; still read).
const RECORD_SAMPLES: u8 = 2;
/// Samples delta-encoded: per sample the id and timestamp as zigzag varint differences from the
/// previous sample, the value as its bits XOR the previous value of the same series (a run of one
/// series costs ~2 bytes of id+time and little for a slowly moving value; about a third of
/// format 1's 24 bytes on node_exporter-like data).
const RECORD_SAMPLES_DELTA: u8 = 3;
/// Native-histogram samples of one tenant, by label set (`histogram_codec` lays them out). The
/// labels travel with every record: histogram series have no ids of their own.
const RECORD_HISTOGRAMS: u8 = 4;
/// A record longer than this is treated as corruption rather than allocated.
const MAX_RECORD_LEN: u32 = 1 << 30;

/// One logical WAL entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// New series of a tenant, with their ids.
    Series { tenant: String, series: Vec<(SeriesId, Labels)> },
    /// Samples for series defined by earlier series records: (id, timestamp ms, value).
    Samples(Vec<(SeriesId, i64, f64)>),
    /// Native-histogram samples of a tenant, by series label set.
    Histograms { tenant: String, series: Vec<(Labels, Vec<HistogramSample>)> },
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::Series { tenant, series } => {
                out.push(RECORD_SERIES);
                put_str(&mut out, tenant);
                out.extend_from_slice(&(series.len() as u32).to_le_bytes());
                for (id, labels) in series {
                    out.extend_from_slice(&id.to_le_bytes());
                    out.extend_from_slice(&(labels.len() as u32).to_le_bytes());
                    for l in labels {
                        put_str(&mut out, &l.name);
                        put_str(&mut out, &l.value);
                    }
                }
            }
            Record::Samples(samples) => {
                out.reserve(5 + samples.len() * 8);
                out.push(RECORD_SAMPLES_DELTA);
                out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
                let (mut prev_id, mut prev_t, mut prev_bits) = (0u64, 0i64, 0u64);
                for &(id, t, v) in samples {
                    put_varint(&mut out, zigzag(id.wrapping_sub(prev_id) as i64));
                    put_varint(&mut out, zigzag(t.wrapping_sub(prev_t)));
                    let bits = v.to_bits();
                    let xor = if id == prev_id { bits ^ prev_bits } else { bits };
                    // Trailing zero bits dropped: round values and small changes stay short.
                    let shift = xor.trailing_zeros();
                    out.push(shift as u8);
                    if xor != 0 {
                        put_varint(&mut out, xor >> shift);
                    }
                    (prev_id, prev_t, prev_bits) = (id, t, bits);
                }
            }
            Record::Histograms { tenant, series } => {
                out.push(RECORD_HISTOGRAMS);
                put_str(&mut out, tenant);
                out.extend_from_slice(&(series.len() as u32).to_le_bytes());
                for (labels, samples) in series {
                    crate::histogram_codec::put_series(&mut out, labels, samples);
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let mut r = Cursor::new(bytes);
        match r.u8()? {
            RECORD_SERIES => {
                let tenant = r.string()?;
                let n = r.u32()?;
                let mut series = Vec::new();
                for _ in 0..n {
                    let id = r.u64()?;
                    let nlabels = r.u32()?;
                    let mut pairs = Vec::new();
                    for _ in 0..nlabels {
                        pairs.push((r.string()?, r.string()?));
                    }
                    series.push((id, Labels::from_pairs(pairs)));
                }
                (r.pos == bytes.len()).then_some(Record::Series { tenant, series })
            }
            RECORD_SAMPLES => {
                let n = r.u32()?;
                let mut samples = Vec::new();
                for _ in 0..n {
                    samples.push((r.u64()?, r.u64()? as i64, f64::from_bits(r.u64()?)));
                }
                (r.pos == bytes.len()).then_some(Record::Samples(samples))
            }
            RECORD_SAMPLES_DELTA => {
                let n = r.u32()? as usize;
                // Each sample takes at least 3 bytes: never allocate more than the record holds.
                let mut samples = Vec::with_capacity(n.min(bytes.len() / 3));
                let (mut prev_id, mut prev_t, mut prev_bits) = (0u64, 0i64, 0u64);
                for _ in 0..n {
                    let id = prev_id.wrapping_add(unzigzag(r.varint()?) as u64);
                    let t = prev_t.wrapping_add(unzigzag(r.varint()?));
                    let shift = u32::from(r.u8()?);
                    let xor = match shift {
                        64 => 0,
                        0..64 => r.varint()?.checked_shl(shift)?,
                        _ => return None,
                    };
                    let bits = if id == prev_id { xor ^ prev_bits } else { xor };
                    samples.push((id, t, f64::from_bits(bits)));
                    (prev_id, prev_t, prev_bits) = (id, t, bits);
                }
                (r.pos == bytes.len()).then_some(Record::Samples(samples))
            }
            RECORD_HISTOGRAMS => {
                let tenant = r.string()?;
                let n = r.u32()? as usize;
                let mut series = Vec::with_capacity(n.min(r.remaining() / 8));
                for _ in 0..n {
                    series.push(crate::histogram_codec::get_series(&mut r)?);
                }
                (r.pos == bytes.len()).then_some(Record::Histograms { tenant, series })
            }
            _ => None,
        }
    }
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A reader over a record's bytes; every getter returns `None` past the end.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let slice = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }
    pub(crate) fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The open WAL, positioned at the end of its last segment.
pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    /// The current segment; shared so that [`GroupSync`] can fsync it without the WAL's lock.
    file: Arc<File>,
    seq: u64,
    size: u64,
    total_bytes: u64,
    /// Bytes written since open: the log position [`GroupSync`] makes durable.
    position: u64,
    /// Framed records a write could not store (disk full). The head holds them already, so they
    /// go out first with the next write, and nothing written after them is acknowledged before.
    pending: Vec<u8>,
}

/// Group commit: writers append under the WAL's lock, then wait here until an fsync covers their
/// position. One waiter fsyncs for everyone written before it while the others keep appending,
/// so concurrent writers share fsyncs instead of queueing one fsync each behind a lock.
#[derive(Default)]
pub struct GroupSync {
    state: parking_lot::Mutex<SyncState>,
    synced: parking_lot::Condvar,
}

struct SyncState {
    durable: u64,
    syncing: bool,
    /// When the last fsync finished: deferred writers sync once this is older than their interval.
    last_sync: std::time::Instant,
}

impl Default for SyncState {
    fn default() -> Self {
        Self { durable: 0, syncing: false, last_sync: std::time::Instant::now() }
    }
}

impl GroupSync {
    /// Whether a writer that may defer its fsync should sync now: the last fsync finished at
    /// least `interval` ago (and none is running, which would cover it anyway).
    pub fn sync_due(&self, interval: std::time::Duration) -> bool {
        let state = self.state.lock();
        !state.syncing && state.last_sync.elapsed() >= interval
    }

    /// Returns once everything written up to `position` (from [`Wal::write`]) is fsynced; `true`
    /// when this call did the fsync. A failed fsync is returned to the caller that ran it, and
    /// the others try again themselves.
    pub fn wait_durable(&self, wal: &parking_lot::Mutex<Wal>, position: u64) -> Result<bool> {
        let mut state = self.state.lock();
        loop {
            if state.durable >= position {
                return Ok(false);
            }
            if state.syncing {
                self.synced.wait(&mut state);
                continue;
            }
            state.syncing = true;
            drop(state);
            let (file, target) = {
                let wal = wal.lock();
                (wal.file.clone(), wal.position)
            };
            let result = file.sync_data();
            state = self.state.lock();
            state.syncing = false;
            if result.is_ok() {
                state.durable = state.durable.max(target);
                state.last_sync = std::time::Instant::now();
            }
            self.synced.notify_all();
            result.map_err(|e| Error::io("fsyncing wal", e))?;
            return Ok(true);
        }
    }
}

/// What replay found, for logging and metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayStats {
    pub records: u64,
    pub truncated_tails: u64,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:08}"))
}

fn checkpoint_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("checkpoint.{seq:08}"))
}

/// The WAL directory's segments and checkpoints, sorted; stale `.tmp` checkpoints are removed.
fn list(dir: &Path) -> Result<(Vec<u64>, Vec<u64>)> {
    let (mut segments, mut checkpoints) = (Vec::new(), Vec::new());
    let entries = fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        if let Ok(seq) = name.parse::<u64>() {
            segments.push(seq);
        } else if let Some(rest) = name.strip_prefix("checkpoint.") {
            if rest.ends_with(".tmp") {
                fs::remove_file(entry.path()).map_err(|e| Error::io(format!("removing {name}"), e))?;
            } else if let Ok(seq) = rest.parse::<u64>() {
                checkpoints.push(seq);
            }
        }
    }
    segments.sort_unstable();
    checkpoints.sort_unstable();
    Ok((segments, checkpoints))
}

fn frame(records: &[Record], buf: &mut Vec<u8>) {
    for record in records {
        let payload = record.encode();
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
    }
}

/// Writes `checkpoint.upto` from `records` (pulled until `None`), atomically. Runs without the
/// WAL's lock: appends go on into the newer segments meanwhile.
pub fn write_checkpoint(dir: &Path, upto: u64, mut records: impl FnMut() -> Option<Vec<Record>>) -> Result<u64> {
    let final_path = checkpoint_path(dir, upto);
    let tmp = dir.join(format!("checkpoint.{upto:08}.tmp"));
    let mut file = std::io::BufWriter::with_capacity(
        1 << 20,
        File::create(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?,
    );
    file.write_all(&header()).map_err(|e| Error::io("writing checkpoint", e))?;
    let mut bytes = HEADER_LEN;
    let mut buf = Vec::new();
    while let Some(batch) = records() {
        buf.clear();
        frame(&batch, &mut buf);
        file.write_all(&buf).map_err(|e| Error::io("writing checkpoint", e))?;
        bytes += buf.len() as u64;
    }
    let file = file.into_inner().map_err(|e| Error::io("writing checkpoint", e.into_error()))?;
    file.sync_all().map_err(|e| Error::io("fsyncing checkpoint", e))?;
    fs::rename(&tmp, &final_path).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(bytes)
}

fn header() -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..6].copy_from_slice(MAGIC);
    h[6..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

impl Wal {
    /// Opens (or creates) the WAL in `dir`, feeding every stored record to `apply` in order.
    pub fn open(dir: &Path, segment_bytes: u64, mut apply: impl FnMut(Record)) -> Result<(Wal, ReplayStats)> {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let (mut seqs, checkpoints) = list(dir)?;
        let mut stats = ReplayStats::default();
        let mut total_bytes = 0;
        if let Some(&cp) = checkpoints.last() {
            // Finish an interrupted truncation: what the checkpoint covers is not needed any more.
            remove_upto(dir, cp, &mut seqs, &checkpoints)?;
            let path = checkpoint_path(dir, cp);
            total_bytes += replay_segment(&path, false, &mut apply, &mut stats)?;
        }
        let first_seq = checkpoints.last().map_or(0, |cp| cp + 1);
        for (i, seq) in seqs.iter().enumerate() {
            let is_last = i + 1 == seqs.len();
            let path = segment_path(dir, *seq);
            let valid_len = replay_segment(&path, is_last, &mut apply, &mut stats)?;
            total_bytes += valid_len;
        }
        let seq = seqs.last().copied().unwrap_or(0);
        let (file, size) = if seq == 0 {
            (create_segment(dir, first_seq.max(1))?, HEADER_LEN)
        } else {
            let path = segment_path(dir, seq);
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
            let size = file.metadata().map_err(|e| Error::io("reading wal segment size", e))?.len();
            (file, size)
        };
        let seq = if seq == 0 { first_seq.max(1) } else { seq };
        let file = Arc::new(file);
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment_bytes,
            file,
            seq,
            size,
            total_bytes: total_bytes.max(size),
            position: 0,
            pending: Vec::new(),
        };
        Ok((wal, stats))
    }

    /// Writes the records and fsyncs; on return they survive a crash.
    pub fn log(&mut self, records: &[Record]) -> Result<u64> {
        let (written, _) = self.write(records)?;
        self.file.sync_data().map_err(|e| Error::io("fsyncing wal", e))?;
        Ok(written)
    }

    /// Writes the records without fsyncing: returns the bytes written and the log position after
    /// them, which [`GroupSync::wait_durable`] makes durable.
    ///
    /// A failed write (a full disk) leaves no torn bytes behind: the segment is cut back to its
    /// last whole record and the framed records are kept as pending, written before anything
    /// else by the next call (also one with no records: see [`Wal::has_pending`]).
    pub fn write(&mut self, records: &[Record]) -> Result<(u64, u64)> {
        let mut buf = std::mem::take(&mut self.pending);
        frame(records, &mut buf);
        if buf.is_empty() {
            return Ok((0, self.position));
        }
        if self.size > HEADER_LEN
            && self.size + buf.len() as u64 > self.segment_bytes
            && let Err(e) = self.rotate()
        {
            self.pending = buf;
            return Err(e);
        }
        if let Err(e) = (&*self.file).write_all(&buf) {
            // Cut back to the last whole record: appends after torn bytes would be lost at replay.
            let _ = self.file.set_len(self.size);
            self.pending = buf;
            return Err(Error::io("writing wal", e));
        }
        self.size += buf.len() as u64;
        self.total_bytes += buf.len() as u64;
        self.position += buf.len() as u64;
        Ok((buf.len() as u64, self.position))
    }

    /// Whether records of a failed write wait to be written (see [`Wal::write`]).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn rotate(&mut self) -> Result<()> {
        self.file.sync_all().map_err(|e| Error::io("fsyncing wal segment", e))?;
        self.file = Arc::new(create_segment(&self.dir, self.seq + 1)?);
        self.seq += 1;
        self.size = HEADER_LEN;
        self.total_bytes += HEADER_LEN;
        Ok(())
    }

    /// Starts a new segment and returns the last sequence number before it: a checkpoint up to
    /// that number may then replace the older segments.
    pub fn cut_segment(&mut self) -> Result<u64> {
        let upto = self.seq;
        self.rotate()?;
        Ok(upto)
    }

    /// Deletes segments and older checkpoints covered by `checkpoint.upto`.
    pub fn truncate(&mut self, upto: u64) -> Result<()> {
        let (mut seqs, checkpoints) = list(&self.dir)?;
        remove_upto(&self.dir, upto, &mut seqs, &checkpoints)?;
        self.total_bytes = fs::read_dir(&self.dir)
            .map_err(|e| Error::io("listing wal", e))?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        Ok(())
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fsyncs the current segment (used at shutdown).
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_all().map_err(|e| Error::io("fsyncing wal", e))
    }

    /// Bytes held by all segments.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

/// Removes segments `<= upto` (from `seqs` too) and checkpoints older than `upto`.
fn remove_upto(dir: &Path, upto: u64, seqs: &mut Vec<u64>, checkpoints: &[u64]) -> Result<()> {
    for seq in seqs.iter().filter(|s| **s <= upto) {
        let path = segment_path(dir, *seq);
        fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    }
    seqs.retain(|s| *s > upto);
    for cp in checkpoints.iter().filter(|c| **c < upto) {
        let path = checkpoint_path(dir, *cp);
        fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn create_segment(dir: &Path, seq: u64) -> Result<File> {
    let path = segment_path(dir, seq);
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    if let Err(e) = file.write_all(&header()).and_then(|_| file.sync_all()) {
        // A full disk: leave no headerless segment behind (the next attempt creates it anew).
        let _ = fs::remove_file(&path);
        return Err(Error::io("writing wal header", e));
    }
    // Make the new file's directory entry durable too.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(file)
}

/// Replays one segment; returns its valid length. A bad tail of the last segment is truncated.
fn replay_segment(path: &Path, is_last: bool, apply: &mut impl FnMut(Record), stats: &mut ReplayStats) -> Result<u64> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut pos: usize = 0;
    let bad = if bytes.len() < HEADER_LEN as usize || &bytes[..6] != MAGIC {
        Some("missing or torn header")
    } else {
        let version = u16::from_le_bytes([bytes[6], bytes[7]]);
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Error::WalCorrupt(format!(
                "{} has format version {version}, this build reads {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}",
                path.display()
            )));
        }
        pos = HEADER_LEN as usize;
        loop {
            if pos == bytes.len() {
                break None;
            }
            let Some(head) = bytes.get(pos..pos + 8) else { break Some("torn record header") };
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            if len > MAX_RECORD_LEN {
                break Some("implausible record length");
            }
            let Some(payload) = bytes.get(pos + 8..pos + 8 + len as usize) else { break Some("torn record") };
            if crc32fast::hash(payload) != crc {
                break Some("crc mismatch");
            }
            let Some(record) = Record::decode(payload) else { break Some("undecodable record") };
            apply(record);
            stats.records += 1;
            pos += 8 + len as usize;
        }
    };
    let Some(reason) = bad else { return Ok(bytes.len() as u64) };
    if !is_last {
        return Err(Error::WalCorrupt(format!("{}: {reason} at offset {pos}", path.display())));
    }
    tracing::warn!(segment = %path.display(), offset = pos, reason, "wal tail corrupt, truncating");
    stats.truncated_tails += 1;
    let mut file =
        OpenOptions::new().write(true).open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    if pos < HEADER_LEN as usize {
        // Not even the header survived: rewrite it so the segment stays appendable.
        file.set_len(0).map_err(|e| Error::io("truncating wal", e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| Error::io("seeking wal", e))?;
        file.write_all(&header()).map_err(|e| Error::io("writing wal header", e))?;
        pos = HEADER_LEN as usize;
    } else {
        file.set_len(pos as u64).map_err(|e| Error::io("truncating wal", e))?;
    }
    file.sync_all().map_err(|e| Error::io("fsyncing wal", e))?;
    Ok(pos as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_records() -> Vec<Record> {
        vec![
            Record::Series { tenant: "t1".into(), series: vec![(1, Labels::from_pairs([("__name__", "up")]))] },
            Record::Samples(vec![(1, 1000, 1.0), (1, 2000, model::stale_nan())]),
        ]
    }

    fn sample_bits(record: &Record) -> Vec<(u64, i64, u64)> {
        match record {
            Record::Samples(s) => s.iter().map(|&(id, t, v)| (id, t, v.to_bits())).collect(),
            _ => panic!("not a samples record"),
        }
    }

    proptest::proptest! {
        #[test]
        fn delta_samples_roundtrip_bit_exactly(
            samples in proptest::collection::vec((0u64..6, proptest::num::i64::ANY, proptest::num::u64::ANY), 0..60),
            runs in proptest::collection::vec((proptest::num::u64::ANY, 0i64..100_000, 1u64..40), 0..20),
        ) {
            // Arbitrary ids/times/bit patterns (NaN payloads, -0.0, infinities), then runs of one
            // series with steadily moving times and values, as appends produce them.
            let mut all: Vec<(u64, i64, f64)> = samples.iter().map(|&(id, t, b)| (id, t, f64::from_bits(b))).collect();
            for &(id, step, n) in &runs {
                all.extend((0..n).map(|k| (id, 1_700_000_000_000 + k as i64 * step, (k * 3) as f64 / 7.0)));
            }
            let record = Record::Samples(all);
            let decoded = Record::decode(&record.encode()).expect("decodes");
            proptest::prop_assert_eq!(sample_bits(&decoded), sample_bits(&record));
        }

        #[test]
        fn garbage_never_panics_the_decoder(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = Record::decode(&bytes);
        }
    }

    #[test]
    fn format_1_samples_records_still_decode_and_delta_is_smaller() {
        let samples: Vec<(u64, i64, f64)> =
            (0..1000).map(|i| (i % 10, 1_700_000_000_000 + (i / 10) as i64 * 15_000, (i / 10) as f64 * 0.25)).collect();
        let mut v1 = vec![RECORD_SAMPLES];
        v1.extend_from_slice(&(samples.len() as u32).to_le_bytes());
        for (id, t, v) in &samples {
            v1.extend_from_slice(&id.to_le_bytes());
            v1.extend_from_slice(&t.to_le_bytes());
            v1.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        let record = Record::Samples(samples);
        assert_eq!(Record::decode(&v1), Some(record.clone()));
        let v2 = record.encode();
        assert!(v2.len() * 2 < v1.len(), "delta record {} bytes vs fixed {}", v2.len(), v1.len());
    }

    fn replay(dir: &Path) -> Vec<Record> {
        let mut got = Vec::new();
        Wal::open(dir, 1 << 20, |r| got.push(r)).unwrap();
        got
    }

    /// Segments written before the histogram record (format 2) still replay; a histogram record
    /// round-trips through a format 3 segment after them.
    #[test]
    fn format_2_segments_replay_beside_histogram_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = b"TRSWAL".to_vec();
        old.extend_from_slice(&2u16.to_le_bytes());
        frame(&sample_records()[..1], &mut old);
        fs::write(segment_path(dir.path(), 1), &old).unwrap();
        let h = model::notation::parse_histogram("{{schema:-53 count:2 custom_values:[1] buckets:[1 1]}}").unwrap();
        let histograms = Record::Histograms {
            tenant: "t1".into(),
            series: vec![(Labels::from_pairs([("__name__", "h")]), vec![HistogramSample { timestamp_ms: 5, h }])],
        };
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, |_| {}).unwrap();
        wal.cut_segment().unwrap();
        wal.log(std::slice::from_ref(&histograms)).unwrap();
        drop(wal);
        assert_eq!(replay(dir.path()), vec![sample_records()[0].clone(), histograms]);
    }

    #[test]
    fn records_roundtrip_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, |_| {}).unwrap();
        wal.log(&sample_records()).unwrap();
        drop(wal);
        let got = replay(dir.path());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], sample_records()[0]);
        let Record::Samples(s) = &got[1] else { panic!("expected samples") };
        assert!(model::is_stale_nan(s[1].2));
    }

    /// A write on a full disk (here /dev/full) fails, keeps its records and writes them before
    /// the next ones once the disk has room: replay sees everything, in order, once.
    #[test]
    fn records_of_a_write_on_a_full_disk_go_out_first_with_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, |_| {}).unwrap();
        let records = sample_records();
        wal.log(&records[..1]).unwrap();
        let segment =
            std::mem::replace(&mut wal.file, Arc::new(OpenOptions::new().append(true).open("/dev/full").unwrap()));
        let err = wal.write(&records[1..]).unwrap_err();
        assert!(err.is_storage_full(), "{err}");
        assert!(wal.has_pending());
        assert!(wal.write(&[]).unwrap_err().is_storage_full(), "still full: still failing");
        wal.file = segment;
        let (written, position) = wal.write(&[]).unwrap();
        assert!(written > 0 && !wal.has_pending());
        assert_eq!(wal.write(&[]).unwrap(), (0, position), "nothing left to write");
        wal.sync().unwrap();
        drop(wal);
        let got = replay(dir.path());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], records[0]);
        assert_eq!(sample_bits(&got[1]), sample_bits(&records[1]), "stale NaNs compare by bits");
    }

    #[test]
    fn torn_tail_is_truncated_at_every_cut_point() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, |_| {}).unwrap();
        wal.log(&sample_records()[..1]).unwrap();
        wal.log(&sample_records()[1..]).unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let full = fs::read(&path).unwrap();
        let first_record_end = {
            let len = u32::from_le_bytes(full[8..12].try_into().unwrap()) as usize;
            8 + 8 + len
        };
        for cut in 1..full.len() - HEADER_LEN as usize {
            fs::write(&path, &full[..full.len() - cut]).unwrap();
            let got = replay(dir.path());
            let want = if full.len() - cut >= first_record_end { 1 } else { 0 };
            assert_eq!(got.len(), want, "cut {cut}");
            // After truncation the WAL must accept appends and replay them.
            let (mut wal, _) = Wal::open(dir.path(), 1 << 20, |_| {}).unwrap();
            wal.log(&sample_records()[1..]).unwrap();
            drop(wal);
            assert_eq!(replay(dir.path()).len(), want + 1, "cut {cut}");
        }
    }

    #[test]
    fn checkpoints_replace_the_segments_they_cover() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, |_| {}).unwrap();
        wal.log(&sample_records()).unwrap();
        let upto = wal.cut_segment().unwrap();
        wal.log(&sample_records()[1..]).unwrap();
        let mut batches = vec![sample_records()[..1].to_vec()];
        // A crash while writing a checkpoint leaves a .tmp file: ignored and removed.
        fs::write(dir.path().join("checkpoint.00000001.tmp"), b"garbage").unwrap();
        write_checkpoint(dir.path(), upto, || batches.pop()).unwrap();
        // Crash before truncation: open finishes it.
        drop(wal);
        let got = replay(dir.path());
        assert_eq!(got.len(), 2, "checkpoint (1 record) then the newer segment (1 record)");
        let mut names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["00000002", "checkpoint.00000001"]);
        // The next truncation drops the older checkpoint.
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, |_| {}).unwrap();
        let upto = wal.cut_segment().unwrap();
        write_checkpoint(dir.path(), upto, || None).unwrap();
        wal.truncate(upto).unwrap();
        wal.log(&sample_records()[1..]).unwrap();
        drop(wal);
        assert_eq!(replay(dir.path()).len(), 1);
        assert!(!dir.path().join("checkpoint.00000001").exists());
    }

    #[test]
    fn segments_rotate_at_the_configured_size() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 4096, |_| {}).unwrap();
        let big = Record::Samples((0..400).map(|i| (1, i, (i as f64).sqrt())).collect());
        for _ in 0..5 {
            wal.log(std::slice::from_ref(&big)).unwrap();
        }
        drop(wal);
        assert!(fs::read_dir(dir.path()).unwrap().count() >= 2);
        assert_eq!(replay(dir.path()).len(), 5);
    }

    #[test]
    fn group_sync_makes_every_concurrent_write_durable_with_shared_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 64 << 10, |_| {}).unwrap();
        let (wal, sync) = (parking_lot::Mutex::new(wal), GroupSync::default());
        let fsyncs = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|scope| {
            for t in 0..8i64 {
                let (wal, sync, fsyncs) = (&wal, &sync, &fsyncs);
                scope.spawn(move || {
                    for i in 0..100 {
                        let record = Record::Samples(vec![(t as u64, i, (t * 1000 + i) as f64)]);
                        let (_, position) = wal.lock().write(std::slice::from_ref(&record)).unwrap();
                        if sync.wait_durable(wal, position).unwrap() {
                            fsyncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        assert!(sync.state.lock().durable >= position, "returned before its write was synced");
                    }
                });
            }
        });
        let fsyncs = fsyncs.into_inner();
        assert!((1..=800).contains(&fsyncs), "{fsyncs} fsyncs for 800 writes");
        drop(wal);
        let records = replay(dir.path());
        assert_eq!(records.len(), 800, "every acknowledged write is in the log, across segment rotations");
    }
}
