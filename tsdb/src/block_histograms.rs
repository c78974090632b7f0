//! Native histograms in a block. A head cut moves histogram series out of memory and the WAL into
//! the block like float series, so a histogram-only tenant's WAL can be truncated and old
//! histograms live on disk. They get two Parquet files of their own beside the float ones (the
//! float layout in `block.rs` stays as it is; blocks without these files read as before):
//!
//! - `histogram_series.parquet`: `series_id: uint32` (block-local, rows sorted by labels),
//!   `labels: map<string,string>`, `first_row: uint64` and `rows: uint32` (the series' rows in
//!   the samples file), `min_time_ms`/`max_time_ms: int64`.
//! - `histograms.parquet`: `series_id: uint32`, `timestamp_ms: int64`, `count: float64` and
//!   `sum: float64` (for readers that need no buckets), `histogram: binary` (the whole histogram
//!   as `histogram_codec::put_histogram` encodes it). Sorted by series then time, zstd.
//!
//! `meta.json`'s `histograms` names both files and counts their series and samples.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{MapBuilder, StringBuilder};
use arrow_array::{ArrayRef, BinaryArray, Float64Array, Int64Array, UInt32Array, UInt64Array};
use model::{HistogramSample, Labels};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use promql_parser::label::Matcher;
use serde::{Deserialize, Serialize};

use crate::block::{SeriesData, arrow, bad, column, io, pq, read_labels, write_parquet};
use crate::error::Result;
use crate::histogram_codec;
use crate::wal::Cursor;

pub const SERIES_FILE: &str = "histogram_series.parquet";
pub const SAMPLES_FILE: &str = "histograms.parquet";

/// `meta.json`'s `histograms`: where a block keeps its native histograms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistogramsMeta {
    pub series_file: String,
    pub samples_file: String,
    pub series: u64,
    pub samples: u64,
}

/// Writes `series` (any order; samples in time order) into the block directory `dir`; `None`
/// (and no files) when no series has a sample.
pub(crate) fn write(dir: &Path, mut series: Vec<SeriesData<HistogramSample>>) -> Result<Option<HistogramsMeta>> {
    series.retain(|s| !s.samples.is_empty());
    if series.is_empty() {
        return Ok(None);
    }
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let zstd = || Ok::<_, crate::Error>(Compression::ZSTD(ZstdLevel::try_new(6).map_err(pq("zstd level"))?));

    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let (mut first_rows, mut rows, mut mins, mut maxs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ids, mut ts, mut counts, mut sums, mut encoded) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, s) in series.iter().enumerate() {
        for l in &s.labels {
            labels.keys().append_value(&l.name);
            labels.values().append_value(&l.value);
        }
        labels.append(true).map_err(arrow("building labels"))?;
        first_rows.push(ids.len() as u64);
        rows.push(s.samples.len() as u32);
        mins.push(s.samples[0].timestamp_ms);
        maxs.push(s.samples[s.samples.len() - 1].timestamp_ms);
        for sample in &s.samples {
            ids.push(id as u32);
            ts.push(sample.timestamp_ms);
            counts.push(sample.h.count);
            sums.push(sample.h.sum);
            let mut bytes = Vec::with_capacity(64);
            histogram_codec::put_histogram(&mut bytes, &sample.h);
            encoded.push(bytes);
        }
    }
    let samples = ids.len() as u64;
    let series_columns: Vec<(&str, ArrayRef)> = vec![
        ("series_id", Arc::new(UInt32Array::from_iter_values(0..series.len() as u32))),
        ("labels", Arc::new(labels.finish())),
        ("first_row", Arc::new(UInt64Array::from(first_rows))),
        ("rows", Arc::new(UInt32Array::from(rows))),
        ("min_time_ms", Arc::new(Int64Array::from(mins))),
        ("max_time_ms", Arc::new(Int64Array::from(maxs))),
    ];
    let props = WriterProperties::builder().set_compression(zstd()?).build();
    write_parquet(&dir.join(SERIES_FILE), series_columns, props)?;
    let sample_columns: Vec<(&str, ArrayRef)> = vec![
        ("series_id", Arc::new(UInt32Array::from(ids))),
        ("timestamp_ms", Arc::new(Int64Array::from(ts))),
        ("count", Arc::new(Float64Array::from(counts))),
        ("sum", Arc::new(Float64Array::from(sums))),
        ("histogram", Arc::new(BinaryArray::from_iter_values(encoded.iter()))),
    ];
    let props = WriterProperties::builder()
        .set_compression(zstd()?)
        .set_dictionary_enabled(false)
        .set_column_encoding(ColumnPath::from("series_id"), Encoding::DELTA_BINARY_PACKED)
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    write_parquet(&dir.join(SAMPLES_FILE), sample_columns, props)?;
    Ok(Some(HistogramsMeta {
        series_file: SERIES_FILE.to_string(),
        samples_file: SAMPLES_FILE.to_string(),
        series: series.len() as u64,
        samples,
    }))
}

/// A block's histogram series (labels and row ranges in memory), samples read on demand.
pub struct BlockHistograms {
    samples_path: PathBuf,
    labels: Vec<Labels>,
    first_row: Vec<u64>,
    rows: Vec<u32>,
    min_t: Vec<i64>,
    max_t: Vec<i64>,
    samples_meta: ArrowReaderMetadata,
    bytes: u64,
}

impl BlockHistograms {
    pub(crate) fn open(dir: &Path, meta: &HistogramsMeta) -> Result<BlockHistograms> {
        let series_path = dir.join(&meta.series_file);
        let file = File::open(&series_path).map_err(io(format!("opening {}", series_path.display())))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq("reading histogram series"))?;
        let (mut labels, mut first_row, mut rows, mut min_t, mut max_t) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for batch in reader.build().map_err(pq("reading histogram series"))? {
            let batch = batch.map_err(arrow("reading histogram series"))?;
            read_labels(&batch, &mut labels)?;
            first_row.extend(column::<UInt64Array>(&batch, "first_row")?.values().iter());
            rows.extend(column::<UInt32Array>(&batch, "rows")?.values().iter());
            min_t.extend(column::<Int64Array>(&batch, "min_time_ms")?.values().iter());
            max_t.extend(column::<Int64Array>(&batch, "max_time_ms")?.values().iter());
        }
        let samples_path = dir.join(&meta.samples_file);
        let file = File::open(&samples_path).map_err(io(format!("opening {}", samples_path.display())))?;
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let samples_meta = ArrowReaderMetadata::load(&file, options).map_err(pq("reading histograms footer"))?;
        let bytes =
            [&series_path, &samples_path].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        Ok(BlockHistograms { samples_path, labels, first_row, rows, min_t, max_t, samples_meta, bytes })
    }

    /// Bytes of the histogram files.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Local ids of the series matching every matcher with samples in `[mint, maxt]`.
    fn select_ids(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<usize> {
        (0..self.labels.len())
            .filter(|&i| self.max_t[i] >= mint && self.min_t[i] <= maxt)
            .filter(|&i| matchers.iter().all(|m| m.is_match(self.labels[i].get(&m.name).unwrap_or(""))))
            .collect()
    }

    /// Label sets of the series with samples in `[mint, maxt]`.
    pub fn labels(&self, mint: i64, maxt: i64) -> impl Iterator<Item = &Labels> {
        self.select_ids(&[], mint, maxt).into_iter().map(|i| &self.labels[i])
    }

    /// Series matching every matcher, with their samples in `[mint, maxt]` (series without one
    /// left out).
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<(Labels, Vec<HistogramSample>)>> {
        let ids = self.select_ids(matchers, mint, maxt);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut selectors = Vec::new();
        let mut pos = 0u64;
        for &id in &ids {
            let (first, n) = (self.first_row[id], u64::from(self.rows[id]));
            if first > pos {
                selectors.push(RowSelector::skip((first - pos) as usize));
            }
            selectors.push(RowSelector::select(n as usize));
            pos = first + n;
        }
        let file = File::open(&self.samples_path).map_err(io(format!("opening {}", self.samples_path.display())))?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.samples_meta.clone());
        let mask = ProjectionMask::columns(builder.parquet_schema(), ["timestamp_ms", "histogram"]);
        let reader = builder
            .with_projection(mask)
            .with_row_selection(RowSelection::from(selectors))
            .build()
            .map_err(pq("reading histograms"))?;
        let mut out: Vec<(Labels, Vec<HistogramSample>)> = Vec::with_capacity(ids.len());
        let mut remaining = ids.iter().map(|&id| (id, self.rows[id] as usize));
        let mut want = 0usize;
        for batch in reader {
            let batch = batch.map_err(arrow("reading histograms"))?;
            let ts = column::<Int64Array>(&batch, "timestamp_ms")?.values();
            let encoded = column::<BinaryArray>(&batch, "histogram")?;
            for (row, t) in ts.iter().enumerate() {
                while want == 0 {
                    let (id, n) = remaining.next().ok_or_else(|| bad("more histogram rows than selected"))?;
                    out.push((self.labels[id].clone(), Vec::new()));
                    want = n;
                }
                want -= 1;
                if *t >= mint && *t <= maxt {
                    let h = histogram_codec::get_histogram(&mut Cursor::new(encoded.value(row)))
                        .ok_or_else(|| bad("histogram encoding"))?;
                    out.last_mut().expect("pushed above").1.push(HistogramSample { timestamp_ms: *t, h });
                }
            }
        }
        if want != 0 || remaining.next().is_some() {
            return Err(bad("fewer histogram rows than selected"));
        }
        out.retain(|(_, samples)| !samples.is_empty());
        Ok(out)
    }

    /// Every series with all its samples (compaction, snapshots).
    pub fn read_all(&self) -> Result<Vec<SeriesData<HistogramSample>>> {
        Ok(self
            .select(&[], i64::MIN, i64::MAX)?
            .into_iter()
            .map(|(labels, samples)| SeriesData { labels, samples })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64, text: &str) -> HistogramSample {
        HistogramSample { timestamp_ms: t, h: model::notation::parse_histogram(text).unwrap() }
    }

    #[test]
    fn histograms_round_trip_with_selection_and_none_without_samples() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(write(dir.path(), Vec::new()).unwrap(), None);
        assert!(!dir.path().join(SAMPLES_FILE).exists());
        let series: Vec<SeriesData<HistogramSample>> = (0..20)
            .rev()
            .map(|i| SeriesData {
                labels: Labels::from_pairs([("__name__", "h"), ("i", &format!("{i:02}"))]),
                samples: (0..=i)
                    .map(|j| sample(j * 1000, &format!("{{{{schema:0 sum:{j} count:{} buckets:[{j} 1]}}}}", j + 1)))
                    .collect(),
            })
            .collect();
        let meta = write(dir.path(), series).unwrap().unwrap();
        assert_eq!((meta.series, meta.samples), (20, (1..=20).sum::<u64>()));
        let block = BlockHistograms::open(dir.path(), &meta).unwrap();
        let sel = [crate::index::matcher("i", "=~", "0[37]|19").unwrap()];
        let got = block.select(&sel, 2000, 5000).unwrap();
        let names: Vec<&str> = got.iter().map(|(l, _)| l.get("i").unwrap()).collect();
        assert_eq!(names, ["03", "07", "19"]);
        assert_eq!(got[0].1.iter().map(|s| s.timestamp_ms).collect::<Vec<_>>(), [2000, 3000]);
        assert_eq!(got[2].1[0], sample(2000, "{{schema:0 sum:2 count:3 buckets:[2 1]}}"));
        // Series 00 and 01 have no sample in the range.
        assert_eq!(block.labels(2000, 3000).count(), 18);
        let all = block.read_all().unwrap();
        assert_eq!(all.iter().map(|s| s.samples.len() as u64).sum::<u64>(), meta.samples);
    }
}
