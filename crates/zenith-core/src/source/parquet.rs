//! Parquet: one unit per row group, column projection pushed into the decoder, the file
//! memory-mapped so that page reads are slices of the mapping.

use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;

use super::{FileReader, Format, UnitMeta};
use crate::error::{Error, Result};

/// An opened Parquet file: its footer is parsed once; row groups are decoded on demand.
pub struct ParquetFile {
    path: PathBuf,
    data: Bytes,
    meta: ArrowReaderMetadata,
    units: Vec<UnitMeta>,
}

impl ParquetFile {
    /// Maps the file and parses its footer (no data pages are read).
    pub fn open(path: &Path) -> Result<Self> {
        let data = super::map_file(path)?;
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
        self.data.len() as u64
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
