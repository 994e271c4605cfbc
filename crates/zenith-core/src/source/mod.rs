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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

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
    /// Called once unit `index` has been decoded and its rows copied where they are kept:
    /// a reader over a mapped file hands the unit's pages back ([`release_pages`]).
    fn release_unit(&self, _index: usize) {}
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

/// Address ranges (start to end) of the live mappings [`map_file`] made, so that
/// [`release_pages`] only ever advises pages of a file mapping, never memory of the heap (where
/// `MADV_DONTNEED` would zero it).
static MAPPINGS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

/// A read-only file mapping, registered in [`MAPPINGS`] while it lives.
struct FileMap(memmap2::Mmap);

impl FileMap {
    fn new(map: memmap2::Mmap) -> FileMap {
        let start = map.as_ptr() as usize;
        lock_mappings().insert(start, start + map.len());
        FileMap(map)
    }
}

impl AsRef<[u8]> for FileMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // Runs before the mapping itself is unmapped.
        lock_mappings().remove(&(self.0.as_ptr() as usize));
    }
}

fn lock_mappings() -> std::sync::MutexGuard<'static, BTreeMap<usize, usize>> {
    MAPPINGS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands the whole pages of `part` back to the kernel when `part` lies in a file mapping made
/// by [`map_file`] (no-op for anything else: fetched objects, tables in memory). The data stays
/// in the page cache and a later read of it faults the pages in again; until then they no
/// longer count towards the process's resident set, so an epoch over a mapped CSV, IPC or tar
/// file does not grow the process by the file's size. Readers call it once a unit's rows have
/// been decoded or copied out.
pub(crate) fn release_pages(part: &[u8]) {
    #[cfg(unix)]
    {
        const PAGE: usize = 4096;
        let start = part.as_ptr() as usize;
        let end = start + part.len();
        // Whole pages only (a page shared with a neighbouring unit stays), and at least 64 KiB
        // of them: smaller releases cost more system calls than the memory is worth.
        let (lo, hi) = (start.next_multiple_of(PAGE), end / PAGE * PAGE);
        if hi < lo + (16 * PAGE) {
            return;
        }
        let inside = lock_mappings()
            .range(..=start)
            .next_back()
            .is_some_and(|(_, &map_end)| end <= map_end);
        if inside {
            // SAFETY: [lo, hi) lies in a live read-only file mapping (the caller holds `part`,
            // which keeps it mapped); MADV_DONTNEED on such pages only drops them from this
            // process's page tables, and a later access reads the same file bytes again.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED);
            }
        }
    }
}

/// [`release_pages`] for every buffer of `batch` (e.g. a record batch decoded in place over a
/// mapped IPC file), children included.
pub(crate) fn release_batch_pages(batch: &RecordBatch) {
    fn walk(data: &arrow_data::ArrayData) {
        for buffer in data.buffers() {
            release_pages(buffer.as_slice());
        }
        data.child_data().iter().for_each(walk);
    }
    for column in batch.columns() {
        walk(&column.to_data());
    }
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
    Ok(bytes::Bytes::from_owner(FileMap::new(mmap)))
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
