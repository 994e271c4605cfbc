//! Parquet: one unit per row group, column projection pushed into the decoder. Column chunks
//! are read with positioned reads (`pread`), so threads share one descriptor without racing on
//! a file offset and the process holds only the chunks it is decoding (a memory map would make
//! every page read count towards the resident set until the map is dropped).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

use super::{FileReader, Format, UnitMeta};
use crate::error::{Error, Result};

/// An opened Parquet file: its footer is parsed once; row groups are decoded on demand.
pub struct ParquetFile {
    path: PathBuf,
    data: PreadFile,
    meta: ArrowReaderMetadata,
    units: Vec<UnitMeta>,
}

impl ParquetFile {
    /// Maps the file and parses its footer (no data pages are read).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let data = PreadFile {
            file: Arc::new(file),
            len,
        };
        let meta = ArrowReaderMetadata::load(&data, ArrowReaderOptions::new())
            .map_err(|e| Error::format(path, "footer", e))?;
        let units = meta
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| UnitMeta {
                rows: rg.num_rows() as usize,
                bytes: rg.compressed_size() as u64,
            })
            .collect();
        Ok(ParquetFile {
            path: path.to_path_buf(),
            data,
            meta,
            units,
        })
    }

    /// The parsed footer (row groups, column chunks, statistics).
    pub fn metadata(&self) -> &ParquetMetaData {
        self.meta.metadata()
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
        self.data.len
    }

    fn read_unit(&self, index: usize, projection: Option<&[usize]>) -> Result<RecordBatch> {
        let location = || format!("row group {index}");
        let rows =
            self.units.get(index).map(|u| u.rows).ok_or_else(|| {
                Error::format(&self.path, location(), "row group index out of range")
            })?;
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.data.clone(),
            self.meta.clone(),
        )
        .with_row_groups(vec![index])
        .with_batch_size(rows.max(1));
        let schema = match projection {
            Some(cols) => {
                let mask = ProjectionMask::roots(self.meta.parquet_schema(), cols.iter().copied());
                builder = builder.with_projection(mask);
                std::sync::Arc::new(
                    self.meta
                        .schema()
                        .project(cols)
                        .map_err(|e| Error::schema(&self.path, e))?,
                )
            }
            None => self.meta.schema().clone(),
        };
        let reader = builder
            .build()
            .map_err(|e| Error::format(&self.path, location(), e))?;
        let mut batches = Vec::with_capacity(1);
        for batch in reader {
            batches.push(batch.map_err(|e| Error::format(&self.path, location(), e))?);
        }
        let batch = match batches.len() {
            0 => RecordBatch::new_empty(schema),
            1 => batches.pop().expect("one batch"),
            _ => arrow_select::concat::concat_batches(&schema, &batches)
                .map_err(|e| Error::format(&self.path, location(), e))?,
        };
        if batch.num_rows() != rows {
            return Err(Error::format(
                &self.path,
                location(),
                format!("decoded {} rows, footer says {rows}", batch.num_rows()),
            ));
        }
        Ok(batch)
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
        let mut buf = vec![0u8; length];
        self.file.read_exact_at(&mut buf, start)?;
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
