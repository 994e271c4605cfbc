//! Parquet: one unit per row group, column projection pushed into the decoder. Local column
//! chunks are read with positioned reads (`pread`), so threads share one descriptor without
//! racing on a file offset and the process holds only the chunks it is decoding (a memory map
//! would make every page read count towards the resident set until the map is dropped).
//! Objects in a bucket read their footer with one ranged GET and then, per row group, only the
//! projected column chunks (coalesced, several requests in flight).
//!
//! Files from other writers load with pyarrow's schema and values: the Arrow schema is adjusted
//! to pyarrow's reading of the embedded hint (INT96, time zones, `date64`, dictionary value
//! types, UUIDs; see [`super::parquet_compat`]), and a dictionary page offset that pyarrow
//! ignores (0, or past the data page) is ignored here too. Every codec pyarrow writes is
//! read (snappy, gzip, brotli, lz4 raw, zstd). The corpus of python/tests/test_parquet_corpus.py
//! (scripts/make_corpus.py: pyarrow, polars, DuckDB, fastparquet) has no file left whose
//! schema or values differ from pyarrow's, so no column is refused for such a difference.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    ColumnChunkMetaData, FooterTail, ParquetMetaData, ParquetMetaDataReader,
};
use parquet::file::reader::{ChunkReader, Length};

use super::statistics::{ColumnStatistics, ColumnStorage, StatValue};
use super::{parquet_compat, parquet_list, parquet_plain, FileReader, Format, UnitMeta};
use crate::error::{Error, Result};
use crate::store::ObjectRef;

/// Bytes fetched from the end of an object on open: the footer of most files fits, so one
/// request reads it; a larger footer costs one more.
const FOOTER_PREFETCH: u64 = 64 << 10;

/// Local column chunks closer than this are read with one positioned read.
const LOCAL_COALESCE_GAP: u64 = 1 << 20;

/// Where the file's bytes come from.
enum ParquetData {
    /// A local file read with positioned reads.
    Local(PreadFile),
    /// A local file mapped into memory (whole-dataset reads: no read calls, no copy out of the
    /// page cache; the map lives until the file is dropped).
    Mapped(Bytes),
    /// An object read by ranges.
    Object(ObjectRef),
}

/// An opened Parquet file: its footer is parsed once; row groups are decoded on demand.
pub struct ParquetFile {
    path: PathBuf,
    data: ParquetData,
    file_bytes: u64,
    meta: ArrowReaderMetadata,
    units: Vec<UnitMeta>,
    /// For each root column (Arrow field), its leaf column when it has exactly one (a flat
    /// column, or a list of one primitive).
    single_leaf: Vec<Option<usize>>,
}

impl ParquetFile {
    /// Opens the file and parses its footer (no data pages are read). Column chunks are read
    /// with positioned reads, so the process holds only the chunks being decoded.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, false)
    }

    /// Like [`ParquetFile::open`]; with `mapped` the file is memory-mapped instead, which is
    /// faster for reading all of it once but counts every page read towards the resident set
    /// while the file is open.
    pub fn open_with(path: &Path, mapped: bool) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let data = PreadFile {
            file: Arc::new(file),
            len,
        };
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&data)
            .map_err(|e| Error::format(path, "footer", e))?;
        let meta = arrow_metadata(path, metadata).map_err(|e| Error::format(path, "footer", e))?;
        // The Arrow reader may keep views of uncompressed pages as the buffers of string and
        // binary view columns; those must not point into a map of a file that can be
        // rewritten while the table lives, so such files are read, not mapped.
        let views = meta
            .schema()
            .fields()
            .iter()
            .any(|f| has_view_type(f.data_type()));
        let data = if mapped && !views {
            ParquetData::Mapped(super::map_file(path)?)
        } else {
            ParquetData::Local(data)
        };
        Ok(Self::new(path.to_path_buf(), len, data, meta))
    }

    /// Reads an object's footer with one suffix GET (two when the footer is larger than
    /// 64 KiB); no data pages are fetched.
    pub fn open_object(object: ObjectRef) -> Result<Self> {
        let path = PathBuf::from(object.url());
        let size = object.size();
        let fail =
            |message: &dyn std::fmt::Display| Error::format(&path, "footer", message.to_string());
        if size < 12 {
            return Err(fail(&format!(
                "{size} bytes is too small for a Parquet file"
            )));
        }
        let tail = object.get_suffix(FOOTER_PREFETCH)?;
        let n = tail.len();
        let last8: [u8; 8] = tail
            .get(n.saturating_sub(8)..)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| fail(&"short footer read"))?;
        let footer = FooterTail::try_new(&last8).map_err(|e| fail(&e))?;
        if footer.is_encrypted_footer() {
            return Err(fail(&"encrypted Parquet footers are not supported"));
        }
        let meta_len = footer.metadata_length() as u64;
        if meta_len + 12 > size {
            return Err(fail(&format!(
                "footer length {meta_len} exceeds the object ({size} bytes)"
            )));
        }
        let meta_bytes = if meta_len + 8 <= n as u64 {
            tail.slice(n - 8 - meta_len as usize..n - 8)
        } else {
            object.get_range(size - 8 - meta_len..size - 8)?
        };
        let metadata = ParquetMetaDataReader::decode_metadata(&meta_bytes).map_err(|e| fail(&e))?;
        let meta = arrow_metadata(&path, metadata).map_err(|e| fail(&e))?;
        Ok(Self::new(path, size, ParquetData::Object(object), meta))
    }

    fn new(path: PathBuf, file_bytes: u64, data: ParquetData, meta: ArrowReaderMetadata) -> Self {
        let units = meta
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| UnitMeta {
                rows: rg.num_rows().max(0) as usize,
                bytes: rg.compressed_size().max(0) as u64,
            })
            .collect();
        let descr = meta.parquet_schema();
        let mut leaves_of_root = vec![Vec::new(); descr.root_schema().get_fields().len()];
        for leaf in 0..descr.num_columns() {
            if let Some(leaves) = leaves_of_root.get_mut(descr.get_column_root_idx(leaf)) {
                leaves.push(leaf);
            }
        }
        let single_leaf = leaves_of_root
            .iter()
            .map(|leaves| match leaves.as_slice() {
                [leaf] => Some(*leaf),
                _ => None,
            })
            .collect();
        ParquetFile {
            path,
            data,
            file_bytes,
            meta,
            units,
            single_leaf,
        }
    }

    /// The parsed footer (row groups, column chunks, statistics).
    pub fn metadata(&self) -> &ParquetMetaData {
        self.meta.metadata()
    }

    /// Byte ranges of the column chunks that unit `index` decodes under `mask`.
    pub fn column_ranges(&self, index: usize, mask: &ProjectionMask) -> Result<Vec<Range<u64>>> {
        let rg = self.metadata().row_group(index);
        rg.columns()
            .iter()
            .enumerate()
            .filter(|(leaf, _)| mask.leaf_included(*leaf))
            .map(|(leaf, c)| self.column_range(index, leaf, c))
            .collect()
    }

    fn column_range(
        &self,
        index: usize,
        leaf: usize,
        c: &ColumnChunkMetaData,
    ) -> Result<Range<u64>> {
        let start = c
            .dictionary_page_offset()
            .unwrap_or_else(|| c.data_page_offset());
        let len = c.compressed_size();
        let range = u64::try_from(start)
            .ok()
            .zip(u64::try_from(len).ok())
            .and_then(|(s, l)| Some(s..s.checked_add(l)?))
            .filter(|r| r.end <= self.file_bytes);
        range.ok_or_else(|| {
            Error::format(
                &self.path,
                format!("row group {index} column {leaf}"),
                format!(
                    "column chunk at byte {start} of {len} bytes lies outside the file ({} bytes)",
                    self.file_bytes
                ),
            )
        })
    }

    /// Decodes row group `index` from its fetched (or mapped) column chunks: flat numeric
    /// columns without nulls (see [`super::parquet_plain`]) and lists of numbers without null
    /// elements (see [`super::parquet_list`]) directly, the rest with the general Arrow reader.
    fn decode(
        &self,
        input: FetchedChunks,
        index: usize,
        projection: Option<&[usize]>,
        schema: SchemaRef,
    ) -> Result<RecordBatch> {
        let location = || format!("row group {index}");
        let fail = |e: &dyn std::fmt::Display| Error::format(&self.path, location(), e.to_string());
        let rows = self.units[index].rows;
        let rg = self.metadata().row_group(index);
        let all: Vec<usize>;
        let roots = match projection {
            Some(cols) => cols,
            None => {
                all = (0..schema.fields().len()).collect();
                &all
            }
        };
        let shared = Arc::new(input.clone());
        let mut arrays: Vec<Option<ArrayRef>> = vec![None; roots.len()];
        for ((slot, &root), field) in arrays.iter_mut().zip(roots).zip(schema.fields()) {
            let Some(leaf) = self.single_leaf.get(root).copied().flatten() else {
                continue;
            };
            let chunk = rg.column(leaf);
            let root_type = self.meta.parquet_schema().get_column_root(leaf);
            if parquet_plain::eligible(chunk, field.data_type()) {
                *slot = parquet_plain::decode(shared.clone(), chunk, field.data_type(), rows)
                    .map_err(|e| fail(&e))?;
            } else if parquet_list::eligible(root_type, chunk, field.data_type()) {
                *slot =
                    parquet_list::decode(shared.clone(), root_type, chunk, field.data_type(), rows)
                        .map_err(|e| fail(&e))?;
            }
        }
        let rest: Vec<usize> = roots
            .iter()
            .zip(&arrays)
            .filter(|(_, a)| a.is_none())
            .map(|(r, _)| *r)
            .collect();
        if !rest.is_empty() {
            let mask = ProjectionMask::roots(self.meta.parquet_schema(), rest.iter().copied());
            let reader =
                ParquetRecordBatchReaderBuilder::new_with_metadata(input, self.meta.clone())
                    .with_row_groups(vec![index])
                    .with_batch_size(rows.max(1))
                    .with_projection(mask)
                    .build()
                    .map_err(|e| fail(&e))?;
            let mut batches = Vec::with_capacity(1);
            for batch in reader {
                batches.push(batch.map_err(|e| fail(&e))?);
            }
            let batch = match (batches.pop(), batches.is_empty()) {
                (Some(only), true) => only,
                (last, _) => {
                    batches.extend(last);
                    let rest_schema = Arc::new(
                        self.meta
                            .schema()
                            .project(&rest)
                            .map_err(|e| Error::schema(&self.path, e))?,
                    );
                    arrow_select::concat::concat_batches(&rest_schema, &batches)
                        .map_err(|e| fail(&e))?
                }
            };
            if batch.num_rows() != rows {
                return Err(fail(&format!(
                    "decoded {} rows, footer says {rows}",
                    batch.num_rows()
                )));
            }
            let mut decoded = batch.columns().iter();
            for slot in arrays.iter_mut().filter(|a| a.is_none()) {
                *slot = decoded.next().cloned();
            }
        }
        let columns = arrays
            .into_iter()
            .map(|a| a.ok_or_else(|| fail(&"a projected column was not decoded")))
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new_with_options(
            schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| fail(&e))
    }
}

/// The Arrow view of a parsed footer, with pyarrow's schema (see [`parquet_compat`]): its
/// embedded Arrow schema used as the hint it is, unless arrow-ipc would panic converting it
/// (see [`parquet_compat::Embedded`]), in which case the file is read by its Parquet schema
/// alone.
fn arrow_metadata(
    path: &Path,
    metadata: ParquetMetaData,
) -> std::result::Result<ArrowReaderMetadata, parquet::errors::ParquetError> {
    let embedded = parquet_compat::Embedded::of(&metadata);
    if embedded.skip() {
        tracing::warn!(
            path = %path.display(),
            "the footer's embedded Arrow schema (ARROW:schema) is invalid; reading by the Parquet schema"
        );
    }
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(embedded.skip());
    let meta = ArrowReaderMetadata::try_new(Arc::new(metadata), options.clone())
        .and_then(|meta| without_bogus_dictionary_offsets(meta, options))?;
    Ok(parquet_compat::pyarrow_compatible(meta, &embedded))
}

/// `meta` with each dictionary page offset that pyarrow ignores removed: one of 0 or past the
/// data page offset (writers that record "no dictionary" as offset 0, or a bogus one). Such a
/// chunk is read from its data page offset, as pyarrow reads it; a dictionary page found there
/// is still read as the dictionary. `options` are the ones `meta` was made with.
fn without_bogus_dictionary_offsets(
    meta: ArrowReaderMetadata,
    options: ArrowReaderOptions,
) -> Result<ArrowReaderMetadata, ParquetError> {
    // A chunk without data pages (zero rows) records data page offset 0 after its
    // dictionary page: that one is kept.
    let bogus = |c: &ColumnChunkMetaData| {
        let data = c.data_page_offset();
        c.dictionary_page_offset()
            .is_some_and(|d| d <= 0 || (data > 0 && d > data))
    };
    let any = meta
        .metadata()
        .row_groups()
        .iter()
        .any(|rg| rg.columns().iter().any(bogus));
    if !any {
        return Ok(meta);
    }
    let mut builder = ParquetMetaData::clone(meta.metadata()).into_builder();
    let row_groups = builder
        .take_row_groups()
        .into_iter()
        .map(|rg| {
            let columns = rg
                .columns()
                .iter()
                .map(|c| match bogus(c) {
                    true => c
                        .clone()
                        .into_builder()
                        .set_dictionary_page_offset(None)
                        .build(),
                    false => Ok(c.clone()),
                })
                .collect::<Result<Vec<_>, ParquetError>>()?;
            rg.into_builder().set_column_metadata(columns).build()
        })
        .collect::<Result<Vec<_>, ParquetError>>()?;
    let repaired = builder.set_row_groups(row_groups).build();
    ArrowReaderMetadata::try_new(Arc::new(repaired), options)
}

/// Whether `data_type` is or holds a string/binary view type.
fn has_view_type(data_type: &arrow_schema::DataType) -> bool {
    use arrow_schema::DataType as T;
    match data_type {
        T::Utf8View | T::BinaryView => true,
        T::List(f) | T::LargeList(f) | T::FixedSizeList(f, _) | T::Map(f, _) => {
            has_view_type(f.data_type())
        }
        T::ListView(f) | T::LargeListView(f) => has_view_type(f.data_type()),
        T::Struct(fields) => fields.iter().any(|f| has_view_type(f.data_type())),
        T::Dictionary(_, v) => has_view_type(v),
        _ => false,
    }
}

/// The statistics one column chunk records, as plain values where the column's type orders
/// them plainly (integers, floats, booleans, strings).
/// One record per leaf column of a file: `empty(path)`, with the record of each row group's
/// chunk (`chunk(meta, path)`) merged into it.
fn per_leaf<T>(
    meta: &ParquetMetaData,
    empty: impl Fn(String) -> T,
    chunk: impl Fn(&ColumnChunkMetaData, &str) -> T,
    merge: impl Fn(&mut T, &T),
) -> Vec<T> {
    let descr = meta.file_metadata().schema_descr();
    let paths: Vec<String> = (0..descr.num_columns())
        .map(|leaf| descr.column(leaf).path().string())
        .collect();
    let mut out: Vec<T> = paths.iter().cloned().map(empty).collect();
    for rg in meta.row_groups() {
        for (leaf, c) in rg.columns().iter().enumerate() {
            merge(&mut out[leaf], &chunk(c, &paths[leaf]));
        }
    }
    out
}

/// A codec as the footer names it (the footer keeps no level: the reader's default level that
/// arrow-rs shows would mislead).
fn codec_name(codec: parquet::basic::Compression) -> &'static str {
    use parquet::basic::Compression as C;
    match codec {
        C::UNCOMPRESSED => "UNCOMPRESSED",
        C::SNAPPY => "SNAPPY",
        C::GZIP(_) => "GZIP",
        C::LZO => "LZO",
        C::BROTLI(_) => "BROTLI",
        C::LZ4 => "LZ4",
        C::ZSTD(_) => "ZSTD",
        C::LZ4_RAW => "LZ4_RAW",
    }
}

fn row_group_statistics(chunk: &ColumnChunkMetaData, column: &str) -> ColumnStatistics {
    use parquet::basic::{ConvertedType, LogicalType};
    use parquet::file::statistics::Statistics;
    let descr = chunk.column_descr();
    let plain = match descr.logical_type_ref() {
        None => matches!(
            descr.converted_type(),
            ConvertedType::NONE
                | ConvertedType::UTF8
                | ConvertedType::INT_8
                | ConvertedType::INT_16
                | ConvertedType::INT_32
                | ConvertedType::INT_64
        ),
        Some(LogicalType::Integer(int)) => int.is_signed,
        Some(LogicalType::String) => true,
        Some(_) => false,
    };
    let stats = chunk.statistics();
    let (min, max) = match stats {
        Some(s) if plain => {
            let text = |v: Option<&[u8]>| {
                v.and_then(|b| std::str::from_utf8(b).ok())
                    .map(|t| StatValue::Text(t.to_string()))
            };
            // Both ends of a typed statistic, each converted by `value`.
            fn ends<T>(
                min: Option<&T>,
                max: Option<&T>,
                value: impl Fn(&T) -> StatValue,
            ) -> (Option<StatValue>, Option<StatValue>) {
                (min.map(&value), max.map(&value))
            }
            match s {
                Statistics::Boolean(v) => ends(v.min_opt(), v.max_opt(), |x| StatValue::Bool(*x)),
                Statistics::Int32(v) => {
                    ends(v.min_opt(), v.max_opt(), |x| StatValue::Int(i64::from(*x)))
                }
                Statistics::Int64(v) => ends(v.min_opt(), v.max_opt(), |x| StatValue::Int(*x)),
                Statistics::Float(v) => ends(v.min_opt(), v.max_opt(), |x| {
                    StatValue::Float(f64::from(*x))
                }),
                Statistics::Double(v) => ends(v.min_opt(), v.max_opt(), |x| StatValue::Float(*x)),
                Statistics::ByteArray(v) => (text(v.min_bytes_opt()), text(v.max_bytes_opt())),
                _ => (None, None),
            }
        }
        _ => (None, None),
    };
    let null_count = stats.and_then(|s| s.null_count_opt());
    let values = u64::try_from(chunk.num_values()).unwrap_or(0);
    ColumnStatistics {
        column: column.to_string(),
        min,
        max,
        null_count,
        // A chunk of nulls only has no range; one without statistics may hold values.
        has_values: null_count != Some(values),
    }
}

/// The column chunks of one row group fetched from an object: a sparse view of the file that
/// the decoder reads like the whole file.
#[derive(Clone)]
struct FetchedChunks {
    file_bytes: u64,
    /// (offset in the file, bytes), sorted by offset, disjoint.
    parts: Arc<[(u64, Bytes)]>,
}

impl FetchedChunks {
    fn slice(&self, start: u64, len: Option<u64>) -> Result<Bytes, ParquetError> {
        let idx = self.parts.partition_point(|(off, _)| *off <= start);
        let missing = || ParquetError::General(format!("byte {start} was not fetched"));
        let (off, bytes) = idx
            .checked_sub(1)
            .and_then(|i| self.parts.get(i))
            .ok_or_else(missing)?;
        let from = (start - off) as usize;
        let to = match len {
            Some(l) => from
                .checked_add(usize::try_from(l).map_err(|_| missing())?)
                .ok_or_else(missing)?,
            None => bytes.len(),
        };
        if from > bytes.len() || to > bytes.len() {
            return Err(missing());
        }
        Ok(bytes.slice(from..to))
    }
}

impl Length for FetchedChunks {
    fn len(&self) -> u64 {
        self.file_bytes
    }
}

impl ChunkReader for FetchedChunks {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        self.slice(start, Some(length as u64))
    }
}

impl FileReader for ParquetFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> Format {
        Format::Parquet
    }

    fn schema(&self) -> SchemaRef {
        self.meta.schema().clone()
    }

    fn units(&self) -> &[UnitMeta] {
        &self.units
    }

    fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    fn unit_statistics(&self, index: usize) -> Option<Vec<ColumnStatistics>> {
        let meta = self.metadata();
        let descr = meta.file_metadata().schema_descr();
        let row_group = meta.row_groups().get(index)?;
        Some(
            row_group
                .columns()
                .iter()
                .enumerate()
                .map(|(leaf, c)| row_group_statistics(c, &descr.column(leaf).path().string()))
                .collect(),
        )
    }

    fn column_statistics(&self) -> Option<Vec<ColumnStatistics>> {
        Some(per_leaf(
            self.metadata(),
            |column| ColumnStatistics {
                column,
                min: None,
                max: None,
                null_count: Some(0),
                has_values: false,
            },
            row_group_statistics,
            ColumnStatistics::merge,
        ))
    }

    fn column_storage(&self) -> Option<Vec<ColumnStorage>> {
        Some(per_leaf(
            self.metadata(),
            |column| ColumnStorage {
                column,
                compression: Vec::new(),
                compressed_bytes: 0,
                uncompressed_bytes: 0,
            },
            |chunk, _| ColumnStorage {
                column: String::new(),
                compression: vec![codec_name(chunk.compression()).to_string()],
                compressed_bytes: chunk.compressed_size().max(0) as u64,
                uncompressed_bytes: chunk.uncompressed_size().max(0) as u64,
            },
            ColumnStorage::merge,
        ))
    }

    fn read_unit(&self, index: usize, projection: Option<&[usize]>) -> Result<RecordBatch> {
        if index >= self.units.len() {
            return Err(Error::format(
                &self.path,
                format!("row group {index}"),
                "row group index out of range",
            ));
        }
        let (mask, schema) = match projection {
            Some(cols) => (
                ProjectionMask::roots(self.meta.parquet_schema(), cols.iter().copied()),
                Arc::new(
                    self.meta
                        .schema()
                        .project(cols)
                        .map_err(|e| Error::schema(&self.path, e))?,
                ),
            ),
            None => (ProjectionMask::all(), self.meta.schema().clone()),
        };
        let parts: Vec<(u64, Bytes)> = match &self.data {
            ParquetData::Mapped(map) => vec![(0, map.clone())],
            ParquetData::Local(data) => {
                // One positioned read per run of adjacent column chunks: the decoder then parses
                // page headers and slices page bodies from memory instead of issuing a read
                // call for every few header bytes.
                let ranges = self.column_ranges(index, &mask)?;
                crate::store::coalesce_ranges(&ranges, LOCAL_COALESCE_GAP)
                    .into_iter()
                    .map(|r| {
                        let start = r.start;
                        let bytes = data.read_range(r).map_err(|e| Error::io(&self.path, e))?;
                        Ok((start, bytes))
                    })
                    .collect::<Result<_>>()?
            }
            ParquetData::Object(object) => {
                object.get_ranges_unjoined(&self.column_ranges(index, &mask)?)?
            }
        };
        let input = FetchedChunks {
            file_bytes: self.file_bytes,
            parts: parts.into(),
        };
        self.decode(input, index, projection, schema)
    }
}

/// A file read with positioned reads; clones share the descriptor.
#[derive(Clone)]
struct PreadFile {
    file: Arc<File>,
    len: u64,
}

impl Length for PreadFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for PreadFile {
    type T = PreadReader;

    fn get_read(&self, start: u64) -> parquet::errors::Result<PreadReader> {
        Ok(PreadReader {
            file: self.file.clone(),
            pos: start,
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        Ok(self.read_range(start..start + length as u64)?)
    }
}

impl PreadFile {
    /// Reads `range` with positioned reads into a fresh buffer (not zero-filled first).
    fn read_range(&self, range: Range<u64>) -> std::io::Result<Bytes> {
        let len = usize::try_from(range.end.saturating_sub(range.start))
            .map_err(|_| std::io::Error::other("range exceeds the address space"))?;
        let mut buf: Vec<u8> = Vec::with_capacity(len);
        let mut filled = 0usize;
        while filled < len {
            let spare = &mut buf.spare_capacity_mut()[..len - filled];
            // SAFETY: pread writes at most `spare.len()` bytes into the spare capacity, which is
            // valid for writes; `set_len` below covers only bytes it reported as written.
            let n = unsafe {
                libc::pread(
                    std::os::fd::AsRawFd::as_raw_fd(&*self.file),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    (range.start + filled as u64) as libc::off_t,
                )
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("file ends before byte {}", range.end),
                ));
            }
            filled += n as usize;
            // SAFETY: the first `filled` bytes were written by pread.
            unsafe { buf.set_len(filled) };
        }
        Ok(buf.into())
    }
}

/// A sequential reader over a [`PreadFile`] with its own position.
struct PreadReader {
    file: Arc<File>,
    pos: u64,
}

impl Read for PreadReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
