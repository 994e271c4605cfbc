//! Format readers. Each file type is a [`FileReader`]: it knows its schema and its work units
//! (row groups, record batches, byte ranges) and decodes one unit on request. Readers know
//! nothing about shuffling or batching.

pub mod csv;
pub mod detect;
pub(crate) mod image_decode;
pub mod imagefolder;
pub mod ipc;
pub(crate) mod jpeg_scaled;
pub mod lines;
pub mod listing;
pub mod location;
pub(crate) mod npy;
pub mod parquet;
mod parquet_compat;
mod parquet_list;
mod parquet_plain;
pub mod predicate;
pub mod statistics;
pub mod tokens;
pub mod webdataset;

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

pub use detect::{detect_format, Format};
pub use location::Location;
pub use statistics::{ColumnStatistics, ColumnStorage, StatValue};

use crate::error::Result;

/// Metadata of one work unit, known without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitMeta {
    /// Rows in the unit.
    pub rows: usize,
    /// Bytes of the unit on disk (compressed for Parquet).
    pub bytes: u64,
}

/// One opened data file.
pub trait FileReader: Send + Sync {
    /// The file's path.
    fn path(&self) -> &Path;
    /// The format of the file.
    fn format(&self) -> Format;
    /// The full (unprojected) schema.
    fn schema(&self) -> SchemaRef;
    /// The work units, in file order.
    fn units(&self) -> &[UnitMeta];
    /// Where unit `index` is, for errors: the file and the unit's number (an ImageFolder
    /// names the image's own file).
    fn unit_location(&self, index: usize) -> String {
        format!("{} unit {index}", self.path().display())
    }
    /// Decodes unit `index`, keeping only the `projection` column indices (all when `None`).
    fn read_unit(&self, index: usize, projection: Option<&[usize]>) -> Result<RecordBatch>;
    /// Size of the file in bytes.
    fn file_bytes(&self) -> u64;
    /// Per-column statistics of the whole file from its metadata, where the format keeps them
    /// (Parquet).
    fn column_statistics(&self) -> Option<Vec<ColumnStatistics>> {
        None
    }
    /// Per-column statistics of unit `index` from the file's metadata, where the format keeps
    /// them (a Parquet row group).
    fn unit_statistics(&self, _index: usize) -> Option<Vec<ColumnStatistics>> {
        None
    }
    /// Per-column codecs and sizes of the whole file from its metadata, where the format keeps
    /// them (Parquet).
    fn column_storage(&self) -> Option<Vec<ColumnStorage>> {
        None
    }
}

/// Reader options that change how files are decoded.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// Explicit schema of CSV and JSON Lines files; inferred from the first file when `None`.
    pub csv_schema: Option<SchemaRef>,
    /// CSV delimiter (default `,`).
    pub csv_delimiter: Option<u8>,
    /// Target bytes per work unit of CSV, text and JSON Lines files (default 4 MiB).
    pub csv_unit_bytes: Option<usize>,
    /// WebDataset: decode `jpg`/`jpeg`/`png`/`webp` fields to RGB `uint8 [height, width, 3]`
    /// (center-crop to the aspect ratio, then resize); raw bytes when `None`.
    pub image_size: Option<(u32, u32)>,
    /// WebDataset: the fields (extensions) to keep; all when `None`.
    pub fields: Option<Vec<String>>,
    /// WebDataset: target member bytes per work unit of a plain tar shard (default 1 MiB).
    pub tar_unit_bytes: Option<usize>,
    /// Read local Parquet files through a memory map instead of positioned reads: faster for
    /// whole-dataset reads (`zenith.load`), while streaming keeps positioned reads so that an
    /// epoch does not count every page it read towards the resident set.
    pub map_local: bool,
    /// Object-storage settings (credentials, endpoint, retries) for `s3://`, `gs://`, `az://`.
    pub storage: crate::store::StorageOptions,
    /// Token files without an index: the token width (default `uint16`).
    pub token_dtype: Option<crate::dtype::DType>,
    /// Token files without an index: tokens per row (default a packer's `seq_len`, else 2048).
    pub token_chunk: Option<usize>,
}

/// Opens one file as the given format.
pub fn open_file(
    path: &Path,
    format: Format,
    options: &DecodeOptions,
) -> Result<Arc<dyn FileReader>> {
    Ok(match format {
        Format::Parquet => Arc::new(parquet::ParquetFile::open_with(path, options.map_local)?),
        Format::Csv => Arc::new(csv::CsvFile::open(path, options)?),
        Format::Ipc => Arc::new(ipc::IpcFile::open(path)?),
        Format::IpcStream => Arc::new(ipc::IpcStreamFile::open_stream(path)?),
        Format::WebDataset => Arc::new(webdataset::TarShard::open(path, options)?),
        Format::ImageFolder => Arc::new(imagefolder::ImageFolder::open(path)?),
        Format::Tokens => Arc::new(tokens::TokenFile::open(
            path,
            options.token_dtype,
            options.token_chunk,
        )?),
        Format::Text | Format::JsonLines => {
            Arc::new(lines::LinesFile::open(path, format, options)?)
        }
    })
}

/// `schema` keeping the `projection` column indices (all when `None`); `path` names the file in
/// the error of an index past its columns.
pub(crate) fn project_schema(
    path: &Path,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
) -> Result<SchemaRef> {
    Ok(match projection {
        Some(cols) => Arc::new(
            schema
                .project(cols)
                .map_err(|e| crate::Error::schema(path, e))?,
        ),
        None => schema.clone(),
    })
}

/// Maps a file into memory read-only. Zero-length files map to an empty buffer.
pub(crate) fn map_file(path: &Path) -> Result<bytes::Bytes> {
    let file = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| crate::Error::io(path, e))?
        .len();
    if len == 0 {
        return Ok(bytes::Bytes::new());
    }
    // SAFETY: the mapping is read-only; like every mmap-based reader we assume the file is not
    // truncated by another process while it is mapped.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| crate::Error::io(path, e))?;
    Ok(bytes::Bytes::from_owner(mmap))
}

/// Runs one decoding step of `path` (`location` names it, "opening" or "unit 3", and is only
/// built after a panic) so that a panic inside a decoder dependency on input it should have
/// rejected comes back as [`Error::Format`] naming the file and the place, never as an unwind
/// into the loader, Python or a C caller.
pub(crate) fn guard<T>(
    path: &Path,
    location: impl FnOnce() -> String,
    decode: impl FnOnce() -> Result<T>,
) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(result) => result,
        Err(panic) => {
            let message = crate::error::panic_message(panic.as_ref());
            Err(crate::error::Error::format(
                path,
                location(),
                format!("the decoder failed on this input: {message}"),
            ))
        }
    }
}
