//! Whole-dataset reads (`zenith.load`) and metadata summaries (`zenith.info`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::cache::{self, FileStamp};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
pub use crate::source::statistics::{ColumnStatistics, ColumnStorage, StatValue};
use crate::source::{DecodeOptions, Format};

/// Options of [`read`].
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Columns to keep, in this order (all when `None`).
    pub columns: Option<Vec<String>>,
    /// Format override; detected from magic bytes, then extension, when `None`.
    pub format: Option<Format>,
    /// Decoder settings (CSV schema, delimiter, unit size).
    pub decode: DecodeOptions,
    /// Skip the small-dataset cache.
    pub no_cache: bool,
    /// Counts rows as units are read (for progress bars), and the rows to read.
    pub progress: Option<Arc<ReadProgress>>,
    /// Units (Parquet row groups) whose statistics rule this filter out are not read; the
    /// rows of the others are returned unfiltered (the caller applies the exact filter).
    pub prune: Option<Arc<crate::source::predicate::Predicate>>,
}

/// Where a read is: rows read so far out of the dataset's rows (0 until it is opened).
#[derive(Debug, Default)]
pub struct ReadProgress {
    /// Rows of the dataset.
    pub total: AtomicU64,
    /// Rows of the units read so far.
    pub done: AtomicU64,
}

/// Reads a whole dataset (file, directory or glob) into record batches, decoding units in
/// parallel. Small datasets are served from the cache on a repeated call while unchanged.
///
/// ```no_run
/// let batches = zenith_core::read("train.parquet", &zenith_core::ReadOptions::default())?;
/// # Ok::<(), zenith_core::Error>(())
/// ```
pub fn read(path: &str, options: &ReadOptions) -> Result<Vec<RecordBatch>> {
    read_many(&[path.to_string()], options).map(|(_, b)| b)
}

/// Like [`read`] over several path specs; also returns the output schema.
pub fn read_many(specs: &[String], options: &ReadOptions) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let decode = DecodeOptions {
        map_local: true,
        ..options.decode.clone()
    };
    let mut dataset = Dataset::open(specs, options.format, &decode)?;
    if let Some(predicate) = &options.prune {
        dataset.prune_units(predicate);
    }
    let projection = dataset.projection(options.columns.as_deref())?;
    let progress = options.progress.clone().unwrap_or_default();
    progress
        .total
        .store(dataset.num_rows() as u64, Ordering::Relaxed);
    // Arrow IPC is already zero-copy over the mapping; caching it would only pin memory.
    // Objects have no cheap local stamp, so a repeated read of a bucket fetches again.
    let cacheable = !options.no_cache
        && options.prune.is_none()
        && !matches!(dataset.format(), Format::Ipc | Format::IpcStream)
        && !specs.iter().any(|s| crate::store::is_url(s));
    // Decoder settings (CSV delimiter, image size, ...) change the result, so they are part of
    // the key; storage settings are not (and may hold credentials).
    let d = &options.decode;
    let key = format!(
        "{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        specs,
        dataset.format().name(),
        options.columns,
        d.csv_schema,
        d.csv_delimiter,
        d.csv_unit_bytes,
        d.image_size,
        d.fields,
        d.tar_unit_bytes
    );
    let stamps = if cacheable {
        dataset
            .files()
            .iter()
            .map(|f| FileStamp::of(f.path()).map_err(|e| Error::io(f.path(), e)))
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    if cacheable {
        if let Some(batches) = cache::get(&key, &stamps) {
            tracing::debug!(key, "served from cache");
            progress
                .done
                .store(dataset.num_rows() as u64, Ordering::Relaxed);
            return Ok((projection.schema, batches));
        }
    }
    let batches = dataset.read_all_counted(&projection, &progress.done)?;
    if cacheable {
        cache::put(key, stamps, &batches);
    }
    Ok((projection.schema, batches))
}

/// Reads Parquet files (format fixed).
pub fn load_parquet(path: &str) -> Result<Vec<RecordBatch>> {
    read(path, &fixed(Format::Parquet))
}

/// Reads CSV files with a header row (format fixed, schema inferred).
pub fn load_csv(path: &str) -> Result<Vec<RecordBatch>> {
    read(path, &fixed(Format::Csv))
}

/// Reads Arrow IPC files (format fixed), memory-mapped.
pub fn load_arrow_ipc(path: &str) -> Result<Vec<RecordBatch>> {
    read(path, &fixed(Format::Ipc))
}

fn fixed(format: Format) -> ReadOptions {
    ReadOptions {
        format: Some(format),
        ..Default::default()
    }
}

/// Per-file metadata in a [`DatasetInfo`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileInfo {
    /// The file's path.
    pub path: PathBuf,
    /// Rows in the file.
    pub rows: usize,
    /// Work units: row groups (Parquet), record batches (IPC), byte ranges (CSV).
    pub units: usize,
    /// File size in bytes.
    pub bytes: u64,
}

/// What `zenith.info(path)` reports: read from footers and headers, no data pages.
#[derive(Debug, Clone)]
pub struct DatasetInfo {
    /// Common format.
    pub format: Format,
    /// Common schema.
    pub schema: SchemaRef,
    /// Total rows.
    pub rows: usize,
    /// Total bytes on disk.
    pub bytes: u64,
    /// One entry per file.
    pub files: Vec<FileInfo>,
    /// Per-column statistics over all row groups (Parquet only).
    pub statistics: Option<Vec<ColumnStatistics>>,
    /// Per-column codecs and bytes over all row groups (Parquet only).
    pub storage: Option<Vec<ColumnStorage>>,
}

/// Per-column records of every file merged into the dataset's: `None` unless every file keeps
/// them, for the same columns.
fn merge_files<T>(
    per_file: impl Iterator<Item = Option<Vec<T>>>,
    merge: impl Fn(&mut T, &T),
) -> Option<Vec<T>> {
    let mut all: Option<Vec<T>> = None;
    for columns in per_file {
        let columns = columns?;
        match all.as_mut() {
            None => all = Some(columns),
            Some(all) if all.len() == columns.len() => {
                for (a, b) in all.iter_mut().zip(&columns) {
                    merge(a, b);
                }
            }
            Some(_) => return None,
        }
    }
    all
}

/// Summarises a dataset without decoding its data.
pub fn info(
    specs: &[String],
    format: Option<Format>,
    decode: &DecodeOptions,
) -> Result<DatasetInfo> {
    let dataset = Dataset::open(specs, format, decode)?;
    let files: Vec<FileInfo> = dataset
        .files()
        .iter()
        .map(|f| FileInfo {
            path: f.path().to_path_buf(),
            rows: f.units().iter().map(|u| u.rows).sum(),
            units: f.units().len(),
            bytes: f.file_bytes(),
        })
        .collect();
    let statistics = merge_files(
        dataset.files().iter().map(|f| f.column_statistics()),
        ColumnStatistics::merge,
    );
    let storage = merge_files(
        dataset.files().iter().map(|f| f.column_storage()),
        ColumnStorage::merge,
    );
    Ok(DatasetInfo {
        storage,
        format: dataset.format(),
        schema: dataset.schema(),
        rows: files.iter().map(|f| f.rows).sum(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        files,
        statistics,
    })
}
