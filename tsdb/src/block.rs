//! Immutable on-disk blocks: one tenant's samples of one time range as two Parquet files, so that
//! memory and WAL replay stay bounded by the head and standard tools (pyarrow, DuckDB) can read
//! the data. The layout is documented in `tsdb/BLOCKS.md`:
//!
//! - `series.parquet`: `series_id: uint32` (block-local, rows sorted by labels), `labels:
//!   map<string,string>` (names sorted, `__name__` included), `first_row: uint64` and
//!   `rows: uint32` (the series' rows in the samples file), `min_time_ms`/`max_time_ms: int64`.
//!   Format 2 adds `value_exponent: uint8`, the series' decimal exponent.
//! - `samples.parquet`: `series_id: uint32`, `timestamp_ms: int64`, then the value: format 2 as a
//!   nullable `mantissa: int64` (value = mantissa / 10^value_exponent, see `decimal.rs`) with a
//!   nullable `value: float64` for what does not round-trip as a decimal; format 1 as `value`
//!   only. Sorted by series then time. Ids DELTA_BINARY_PACKED, timestamps and mantissas
//!   BYTE_STREAM_SPLIT, floats PLAIN, all zstd-compressed (the encodings are Parquet's own, so any
//!   reader decodes them; blocks written with other encodings read the same).
//! - `histogram_series.parquet` and `histograms.parquet`, only in blocks with native histograms
//!   (named in `meta.json`'s `histograms`; see `block_histograms.rs`).
//! - `meta.json`, written last: a block without it is incomplete and removed at open.
//!
//! A block is written into `.tmp-<name>` and renamed into place, so a crash never leaves a
//! half-written block under its real name.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::builder::{MapBuilder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, MapArray, RecordBatch, StringArray, UInt8Array, UInt32Array, UInt64Array,
};
use arrow_schema::{Field, Schema};
use model::{HistogramSample, Labels, Sample};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::arrow_writer::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use promql_parser::label::Matcher;
use serde::{Deserialize, Serialize};

use crate::block_histograms::{self, BlockHistograms, HistogramsMeta};
use crate::decimal;
use crate::error::{Error, Result};
use crate::index::Index;

/// Bump when the block layout changes; open refuses versions it does not know. Version 2 stores
/// values as decimal mantissas where exact (`decimal.rs`); version 1 blocks still open.
pub const BLOCK_FORMAT_VERSION: u32 = 2;
const OLDEST_READABLE_FORMAT: u32 = 1;
const SERIES_FILE: &str = "series.parquet";
const SAMPLES_FILE: &str = "samples.parquet";
const META_FILE: &str = "meta.json";
/// Prefix of a block being written; such directories are deleted at open.
pub const TMP_PREFIX: &str = ".tmp-";

/// `meta.json`: what a block holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub version: u32,
    pub tenant: String,
    /// Inclusive lower bound of the block's time range (ms).
    pub min_time_ms: i64,
    /// Exclusive upper bound of the block's time range (ms).
    pub max_time_ms: i64,
    pub series: u64,
    pub samples: u64,
    /// Blocks this one replaces (compaction). At open, any of them still on disk is deleted.
    #[serde(default)]
    pub compacted_from: Vec<String>,
    /// The block's native histograms (`block_histograms.rs`); absent when it has none, and in
    /// blocks written before histograms were cut into blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<HistogramsMeta>,
}

/// One series' samples (floats, or [`model::HistogramSample`]s), ready to be written.
pub struct SeriesData<S = Sample> {
    pub labels: Labels,
    pub samples: Vec<S>,
}

pub(crate) fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(context, e)
}

pub(crate) fn pq(context: &'static str) -> impl FnOnce(parquet::errors::ParquetError) -> Error {
    move |e| Error::Block(format!("{context}: {e}"))
}

pub(crate) fn arrow(context: &'static str) -> impl FnOnce(arrow_schema::ArrowError) -> Error {
    move |e| Error::Block(format!("{context}: {e}"))
}

fn fsync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `series` (any order; samples in time order) as block `name` under `parent`; returns
/// the block's directory. Empty series are skipped.
pub fn write_block(parent: &Path, name: &str, meta: BlockMeta, series: Vec<SeriesData>) -> Result<PathBuf> {
    write_block_with_histograms(parent, name, meta, series, Vec::new())
}

/// [`write_block`] with native-histogram series too (written to their own files, see
/// `block_histograms.rs`).
pub fn write_block_with_histograms(
    parent: &Path,
    name: &str,
    mut meta: BlockMeta,
    mut series: Vec<SeriesData>,
    histograms: Vec<SeriesData<HistogramSample>>,
) -> Result<PathBuf> {
    series.retain(|s| !s.samples.is_empty());
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let tmp = parent.join(format!("{TMP_PREFIX}{name}"));
    let dir = parent.join(name);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(format!("removing {}", tmp.display())))?;
    }
    fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    meta.series = series.len() as u64;
    meta.samples = series.iter().map(|s| s.samples.len() as u64).sum();
    meta.version = BLOCK_FORMAT_VERSION;
    let series: Vec<(SeriesData, u8)> = series
        .into_iter()
        .map(|s| {
            let exponent = decimal::series_exponent(s.samples.iter().map(|x| x.value));
            (s, exponent)
        })
        .collect();
    let written = (|| {
        write_series_file(&tmp.join(SERIES_FILE), &series)?;
        write_samples_file(&tmp.join(SAMPLES_FILE), &series)?;
        meta.histograms = block_histograms::write(&tmp, histograms)?;
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Block(format!("encoding meta.json: {e}")))?;
        let meta_path = tmp.join(META_FILE);
        fs::write(&meta_path, json).map_err(io(format!("writing {}", meta_path.display())))?;
        File::open(&meta_path).and_then(|f| f.sync_all()).map_err(io(format!("fsyncing {}", meta_path.display())))
    })();
    if let Err(e) = written {
        // A full disk: give the space of the half-written block back at once.
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    fsync_dir(&tmp);
    fs::rename(&tmp, &dir).map_err(io(format!("renaming {} into place", tmp.display())))?;
    fsync_dir(parent);
    Ok(dir)
}

fn write_series_file(path: &Path, series: &[(SeriesData, u8)]) -> Result<()> {
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let (mut first_rows, mut rows, mut mins, mut maxs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut next_row = 0u64;
    for (s, _) in series {
        for l in &s.labels {
            labels.keys().append_value(&l.name);
            labels.values().append_value(&l.value);
        }
        labels.append(true).map_err(arrow("building labels"))?;
        first_rows.push(next_row);
        rows.push(s.samples.len() as u32);
        next_row += s.samples.len() as u64;
        mins.push(s.samples[0].timestamp_ms);
        maxs.push(s.samples[s.samples.len() - 1].timestamp_ms);
    }
    let labels = labels.finish();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("series_id", Arc::new(UInt32Array::from_iter_values(0..series.len() as u32))),
        ("labels", Arc::new(labels)),
        ("first_row", Arc::new(UInt64Array::from(first_rows))),
        ("rows", Arc::new(UInt32Array::from(rows))),
        ("min_time_ms", Arc::new(Int64Array::from(mins))),
        ("max_time_ms", Arc::new(Int64Array::from(maxs))),
        ("value_exponent", Arc::new(UInt8Array::from_iter_values(series.iter().map(|(_, e)| *e)))),
    ];
    // The row-number-like columns delta-packed (~0 bytes), label strings plain + zstd
    // (the label values of neighbouring series repeat, which zstd finds better than a dictionary
    // of mostly unique strings; measured in tsdb/BLOCKS.md).
    let delta = ["series_id", "first_row", "rows", "min_time_ms", "max_time_ms"];
    let props = delta
        .iter()
        .fold(WriterProperties::builder(), |b, c| {
            b.set_column_encoding(ColumnPath::from(*c), Encoding::DELTA_BINARY_PACKED)
        })
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(6).map_err(pq("zstd level"))?))
        .set_dictionary_enabled(false)
        .build();
    write_parquet(path, columns, props)
}

fn write_samples_file(path: &Path, series: &[(SeriesData, u8)]) -> Result<()> {
    let total: usize = series.iter().map(|(s, _)| s.samples.len()).sum();
    let (mut ids, mut ts) = (Vec::with_capacity(total), Vec::with_capacity(total));
    let (mut mantissas, mut floats) = (Vec::with_capacity(total), Vec::with_capacity(total));
    for (id, (s, exponent)) in series.iter().enumerate() {
        for sample in &s.samples {
            ids.push(id as u32);
            ts.push(sample.timestamp_ms);
            let mantissa = decimal::encode(sample.value, *exponent);
            floats.push(if mantissa.is_some() { None } else { Some(sample.value) });
            mantissas.push(mantissa);
        }
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("series_id", Arc::new(UInt32Array::from(ids))),
        ("timestamp_ms", Arc::new(Int64Array::from(ts))),
        ("mantissa", Arc::new(Int64Array::from(mantissas))),
        ("value", Arc::new(Float64Array::from(floats))),
    ];
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(6).map_err(pq("zstd level"))?))
        .set_dictionary_enabled(false)
        .set_column_encoding(ColumnPath::from("series_id"), Encoding::DELTA_BINARY_PACKED)
        // Timestamps and mantissas BYTE_STREAM_SPLIT: their high bytes hardly change, so
        // split into one stream per byte position zstd stores those streams for almost nothing and
        // entropy-codes the low ones (measured on node_exporter data, see tsdb/BLOCKS.md).
        .set_column_encoding(ColumnPath::from("timestamp_ms"), Encoding::BYTE_STREAM_SPLIT)
        .set_column_encoding(ColumnPath::from("mantissa"), Encoding::BYTE_STREAM_SPLIT)
        .set_column_encoding(ColumnPath::from("value"), Encoding::PLAIN)
        // Value statistics serve no query (rows are selected by series); the offset index stays.
        .set_column_statistics_enabled(ColumnPath::from("mantissa"), EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from("value"), EnabledStatistics::None)
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    write_parquet(path, columns, props)
}

pub(crate) fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, props: WriterProperties) -> Result<()> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), matches!(*n, "mantissa" | "value")))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect())
        .map_err(arrow("building record batch"))?;
    let file = File::create(path).map_err(io(format!("creating {}", path.display())))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(pq("opening parquet writer"))?;
    writer.write(&batch).map_err(pq("writing parquet"))?;
    let file = writer.into_inner().map_err(pq("closing parquet"))?;
    file.sync_all().map_err(io(format!("fsyncing {}", path.display())))
}

/// An open block: its series (labels, row ranges) in memory, samples read on demand.
pub struct Block {
    pub name: String,
    pub dir: PathBuf,
    pub meta: BlockMeta,
    /// Bytes of the block's files.
    pub bytes: u64,
    index: Index,
    labels: Vec<Labels>,
    first_row: Vec<u64>,
    rows: Vec<u32>,
    min_t: Vec<i64>,
    max_t: Vec<i64>,
    /// Each series' decimal exponent (format 2; all zero in format 1, which has no mantissas).
    exponents: Vec<u8>,
    samples_meta: ArrowReaderMetadata,
    /// The block's native-histogram series, if it has any.
    pub histograms: Option<BlockHistograms>,
    /// Set when the block was replaced or expired: its directory is removed once no query holds it.
    delete_on_drop: AtomicBool,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block").field("name", &self.name).field("meta", &self.meta).finish()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if self.delete_on_drop.load(Ordering::Acquire) {
            if let Err(e) = fs::remove_dir_all(&self.dir) {
                tracing::warn!(block = %self.dir.display(), error = %e, "removing deleted block failed");
            }
            if let Some(parent) = self.dir.parent() {
                fsync_dir(parent);
            }
        }
    }
}

/// Reads `dir/meta.json` (None if it is missing: an incomplete block).
pub fn read_meta(dir: &Path) -> Result<Option<BlockMeta>> {
    let path = dir.join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let meta: BlockMeta =
        serde_json::from_slice(&bytes).map_err(|e| Error::Block(format!("{}: {e}", path.display())))?;
    if !(OLDEST_READABLE_FORMAT..=BLOCK_FORMAT_VERSION).contains(&meta.version) {
        return Err(Error::Block(format!(
            "{} has format version {}, this build reads {OLDEST_READABLE_FORMAT} to {BLOCK_FORMAT_VERSION}",
            path.display(),
            meta.version
        )));
    }
    Ok(Some(meta))
}

impl Block {
    /// Opens a complete block directory.
    pub fn open(dir: &Path, meta: BlockMeta) -> Result<Block> {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let series_path = dir.join(SERIES_FILE);
        let file = File::open(&series_path).map_err(io(format!("opening {}", series_path.display())))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq("reading series.parquet"))?;
        let (mut labels, mut first_row, mut rows, mut min_t, mut max_t, mut exponents) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for batch in reader.build().map_err(pq("reading series.parquet"))? {
            let batch = batch.map_err(arrow("reading series.parquet"))?;
            read_labels(&batch, &mut labels)?;
            first_row.extend(column::<UInt64Array>(&batch, "first_row")?.values().iter());
            rows.extend(column::<UInt32Array>(&batch, "rows")?.values().iter());
            min_t.extend(column::<Int64Array>(&batch, "min_time_ms")?.values().iter());
            max_t.extend(column::<Int64Array>(&batch, "max_time_ms")?.values().iter());
            if meta.version >= 2 {
                exponents.extend(column::<UInt8Array>(&batch, "value_exponent")?.values().iter());
            }
        }
        exponents.resize(labels.len(), 0);
        let mut index = Index::default();
        for (id, ls) in labels.iter().enumerate() {
            index.insert(id as u64, ls.clone());
        }
        let samples_path = dir.join(SAMPLES_FILE);
        let file = File::open(&samples_path).map_err(io(format!("opening {}", samples_path.display())))?;
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let samples_meta = ArrowReaderMetadata::load(&file, options).map_err(pq("reading samples.parquet footer"))?;
        let bytes: u64 = [SERIES_FILE, SAMPLES_FILE, META_FILE]
            .iter()
            .filter_map(|f| fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum();
        let histograms = meta.histograms.as_ref().map(|h| BlockHistograms::open(dir, h)).transpose()?;
        let bytes = bytes + histograms.as_ref().map_or(0, BlockHistograms::bytes);
        Ok(Block {
            name,
            dir: dir.to_path_buf(),
            meta,
            bytes,
            index,
            labels,
            first_row,
            rows,
            min_t,
            max_t,
            exponents,
            samples_meta,
            histograms,
            delete_on_drop: AtomicBool::new(false),
        })
    }

    /// Marks the block for removal once the last reference goes away.
    pub fn delete_when_unused(&self) {
        self.delete_on_drop.store(true, Ordering::Release);
    }

    /// Every series label set in the block (sorted).
    pub fn all_labels(&self) -> &[Labels] {
        &self.labels
    }

    /// Series matching `matchers` with samples in `[mint, maxt]`, as (label set, local id).
    pub fn select_ids(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<u32> {
        self.index
            .select(matchers)
            .into_iter()
            .map(|id| id as u32)
            .filter(|&id| self.max_t[id as usize] >= mint && self.min_t[id as usize] <= maxt)
            .collect()
    }

    pub fn labels(&self, id: u32) -> &Labels {
        &self.labels[id as usize]
    }

    /// The samples of `ids` (sorted ascending), one vector per id, restricted to `[mint, maxt]`.
    pub fn read(&self, ids: &[u32], mint: i64, maxt: i64) -> Result<Vec<Vec<Sample>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut selectors = Vec::new();
        let mut pos = 0u64;
        for &id in ids {
            let (first, n) = (self.first_row[id as usize], self.rows[id as usize] as u64);
            if first > pos {
                selectors.push(RowSelector::skip((first - pos) as usize));
            }
            selectors.push(RowSelector::select(n as usize));
            pos = first + n;
        }
        let path = self.dir.join(SAMPLES_FILE);
        let file = File::open(&path).map_err(io(format!("opening {}", path.display())))?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.samples_meta.clone());
        let columns = if self.meta.version >= 2 { vec![1, 2, 3] } else { vec![1, 2] };
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns);
        let reader = builder
            .with_projection(mask)
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(64 * 1024)
            .build()
            .map_err(pq("reading samples.parquet"))?;
        let mut out: Vec<Vec<Sample>> = Vec::with_capacity(ids.len());
        let mut remaining = ids.iter().map(|&id| (self.rows[id as usize] as usize, self.exponents[id as usize]));
        let (mut want, mut exponent) = remaining.next().unwrap_or((0, 0));
        out.push(Vec::with_capacity(want));
        for batch in reader {
            let batch = batch.map_err(arrow("reading samples.parquet"))?;
            let ts = column::<Int64Array>(&batch, "timestamp_ms")?.values();
            let floats = column::<Float64Array>(&batch, "value")?;
            let mantissas = if self.meta.version >= 2 { Some(column::<Int64Array>(&batch, "mantissa")?) } else { None };
            for (row, t) in ts.iter().enumerate() {
                while want == 0 {
                    (want, exponent) = remaining.next().ok_or_else(|| bad("more rows than selected"))?;
                    out.push(Vec::with_capacity(want));
                }
                want -= 1;
                if *t >= mint && *t <= maxt {
                    let value = match mantissas {
                        Some(m) if m.is_valid(row) => decimal::decode(m.value(row), exponent),
                        _ => floats.value(row),
                    };
                    out.last_mut().expect("pushed above").push(Sample::new(*t, value));
                }
            }
        }
        out.extend(remaining.map(|_| Vec::new()));
        if out.len() != ids.len() {
            return Err(bad("fewer rows than selected"));
        }
        Ok(out)
    }

    /// Every series with all its samples (compaction).
    pub fn read_all(&self) -> Result<Vec<SeriesData>> {
        let ids: Vec<u32> = (0..self.labels.len() as u32).collect();
        let samples = self.read(&ids, i64::MIN, i64::MAX)?;
        Ok(self.labels.iter().cloned().zip(samples).map(|(labels, samples)| SeriesData { labels, samples }).collect())
    }

    /// Every native-histogram series with all its samples (compaction); none in a block
    /// without histograms.
    pub fn read_all_histograms(&self) -> Result<Vec<SeriesData<HistogramSample>>> {
        self.histograms.as_ref().map_or(Ok(Vec::new()), BlockHistograms::read_all)
    }
}

/// Appends the label sets of a series file's `labels` column (a map of strings) to `out`.
pub(crate) fn read_labels(batch: &RecordBatch, out: &mut Vec<Labels>) -> Result<()> {
    let map = column::<MapArray>(batch, "labels")?;
    let keys = map.keys().as_any().downcast_ref::<StringArray>().ok_or_else(|| bad("labels keys"))?;
    let values = map.values().as_any().downcast_ref::<StringArray>().ok_or_else(|| bad("labels values"))?;
    let offsets = map.value_offsets();
    for i in 0..map.len() {
        let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
        out.push(Labels::from_pairs((a..b).map(|j| (keys.value(j), values.value(j)))));
    }
    Ok(())
}

/// Compressed bytes per column (`file/column`, e.g. `samples.parquet/mantissa`) and per file's
/// footer (`file/footer`) of the block in `dir`: what the bytes of a block are spent on.
pub fn column_bytes(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for name in [SERIES_FILE, SAMPLES_FILE] {
        let path = dir.join(name);
        let file = File::open(&path).map_err(io(format!("opening {}", path.display())))?;
        let len = file.metadata().map_err(io(format!("reading {}", path.display())))?.len();
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(pq("reading a block footer"))?;
        let mut columns: Vec<(String, u64)> = Vec::new();
        for group in meta.metadata().row_groups() {
            for chunk in group.columns() {
                let column = format!("{name}/{}", chunk.column_path().string());
                let bytes = chunk.compressed_size() as u64;
                match columns.iter_mut().find(|(c, _)| *c == column) {
                    Some((_, b)) => *b += bytes,
                    None => columns.push((column, bytes)),
                }
            }
        }
        let data: u64 = columns.iter().map(|(_, b)| b).sum();
        columns.push((format!("{name}/footer"), len.saturating_sub(data)));
        out.extend(columns);
    }
    Ok(out)
}

pub(crate) fn bad(what: &str) -> Error {
    Error::Block(format!("unexpected block content: {what}"))
}

pub(crate) fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| bad(&format!("column {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> BlockMeta {
        BlockMeta {
            version: BLOCK_FORMAT_VERSION,
            tenant: "t".into(),
            min_time_ms: 0,
            max_time_ms: 1_000_000,
            series: 0,
            samples: 0,
            compacted_from: Vec::new(),
            histograms: None,
        }
    }

    #[test]
    fn written_blocks_read_back_with_selection() {
        let dir = tempfile::tempdir().unwrap();
        let series: Vec<SeriesData> = (0..50)
            .map(|i| SeriesData {
                labels: Labels::from_pairs([("__name__", "m"), ("i", &format!("{i:03}"))]),
                samples: (0..(i * 7 + 1)).map(|j| Sample::new(j * 1000, (i * 1000 + j) as f64)).collect(),
            })
            .collect();
        let path = write_block(dir.path(), "b1", meta(), series).unwrap();
        assert!(!dir.path().join(".tmp-b1").exists());
        let m = read_meta(&path).unwrap().unwrap();
        assert_eq!(m.series, 50);
        let block = Block::open(&path, m).unwrap();
        let sel = [crate::index::matcher("i", "=~", "00[37]|049").unwrap()];
        let ids = block.select_ids(&sel, i64::MIN, i64::MAX);
        assert_eq!(ids, [3, 7, 49]);
        let got = block.read(&ids, 5000, 20_000).unwrap();
        assert_eq!(
            got[0].iter().map(|s| s.timestamp_ms).collect::<Vec<_>>(),
            (5..=20).map(|j| j * 1000).collect::<Vec<_>>()
        );
        assert_eq!(got[2].len(), 16);
        assert_eq!(got[2][0].value, 49_005.0);
        let all = block.read_all().unwrap();
        assert_eq!(all.iter().map(|s| s.samples.len()).sum::<usize>() as u64, block.meta.samples);
        // Marked blocks disappear with their last reference.
        block.delete_when_unused();
        drop(block);
        assert!(!path.exists());
    }

    #[test]
    fn values_round_trip_bit_exactly_through_mantissas_and_floats() {
        let dir = tempfile::tempdir().unwrap();
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let values = [0.0, 0.125, -3.5, 1e15, 123_456.789, stale, f64::INFINITY, -0.0, std::f64::consts::E, 9.0e300];
        let series = vec![SeriesData {
            labels: Labels::from_pairs([("__name__", "m")]),
            samples: values.iter().enumerate().map(|(i, v)| Sample::new(i as i64, *v)).collect(),
        }];
        let path = write_block(dir.path(), "b1", meta(), series).unwrap();
        let block = Block::open(&path, read_meta(&path).unwrap().unwrap()).unwrap();
        assert_eq!(block.meta.version, BLOCK_FORMAT_VERSION);
        let got = block.read(&[0], i64::MIN, i64::MAX).unwrap();
        let bits: Vec<u64> = got[0].iter().map(|s| s.value.to_bits()).collect();
        assert_eq!(bits, values.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn format_1_blocks_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let block_dir = dir.path().join("b1");
        fs::create_dir_all(&block_dir).unwrap();
        let series = [(
            SeriesData {
                labels: Labels::from_pairs([("__name__", "m")]),
                samples: vec![Sample::new(1, 0.5), Sample::new(2, 7.0)],
            },
            0,
        )];
        write_series_file(&block_dir.join(SERIES_FILE), &series).unwrap();
        // Format 1's samples file: plain float values, no mantissa column.
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("series_id", Arc::new(UInt32Array::from(vec![0, 0]))),
            ("timestamp_ms", Arc::new(Int64Array::from(vec![1, 2]))),
            ("value", Arc::new(Float64Array::from(vec![0.5, 7.0]))),
        ];
        write_parquet(&block_dir.join(SAMPLES_FILE), columns, WriterProperties::builder().build()).unwrap();
        let old = BlockMeta { version: 1, series: 1, samples: 2, ..meta() };
        fs::write(block_dir.join(META_FILE), serde_json::to_vec(&old).unwrap()).unwrap();
        let block = Block::open(&block_dir, read_meta(&block_dir).unwrap().unwrap()).unwrap();
        let got = block.read(&[0], i64::MIN, i64::MAX).unwrap();
        assert_eq!(got[0], vec![Sample::new(1, 0.5), Sample::new(2, 7.0)]);
    }
}
