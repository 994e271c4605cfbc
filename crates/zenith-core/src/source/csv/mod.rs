//! CSV: the file is memory-mapped, split into byte ranges that end on record boundaries
//! (quote-aware, in `split`), and each range is one work unit decoded independently with the
//! shared schema: by the hand-written `fast` path where it applies, else by `arrow_csv`.

mod decimal;
mod fast;
mod split;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;

use super::{DecodeOptions, FileReader, Format, UnitMeta};
use crate::error::{Error, Result};
use fast::decode_fast;
use split::{find_record_end, scan_quoted};
pub use split::{split_records, RecordRange};

const DEFAULT_UNIT_BYTES: usize = 4 << 20;
const INFER_BYTES: usize = 1 << 20;
const INFER_RECORDS: usize = 1000;

/// An opened CSV file.
pub struct CsvFile {
    path: PathBuf,
    data: Bytes,
    schema: SchemaRef,
    delimiter: u8,
    ranges: Vec<RecordRange>,
    units: Vec<UnitMeta>,
}

impl CsvFile {
    /// Maps the file, reads its header, infers the schema (unless given) and finds the ranges.
    pub fn open(path: &Path, options: &DecodeOptions) -> Result<Self> {
        Self::from_bytes(path, super::map_file(path)?, options)
    }

    /// Like [`CsvFile::open`] over bytes already in memory (e.g. a fetched object); `path`
    /// names them in messages.
    pub fn from_bytes(path: &Path, data: Bytes, options: &DecodeOptions) -> Result<Self> {
        let delimiter = options.csv_delimiter.unwrap_or(b',');
        let header_end = match find_record_end(&data, 0) {
            Some(end) => end,
            None if data.is_empty() => {
                return Err(Error::format(
                    path,
                    "byte 0",
                    "empty CSV file (no header row)",
                ))
            }
            None => data.len(),
        };
        let header = parse_header(path, &data[..header_end], delimiter)?;
        let schema = match &options.csv_schema {
            Some(schema) => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                if names != header.iter().map(String::as_str).collect::<Vec<_>>() {
                    return Err(Error::schema(
                        path,
                        format!(
                            "CSV header {header:?} does not match the schema's columns {names:?}"
                        ),
                    ));
                }
                schema.clone()
            }
            None => infer_schema(path, &data, delimiter)?,
        };
        let unit_bytes = options.csv_unit_bytes.unwrap_or(DEFAULT_UNIT_BYTES).max(1);
        let ranges = split_records(&data, header_end, unit_bytes);
        let units = ranges
            .iter()
            .map(|r| UnitMeta {
                rows: r.rows,
                bytes: (r.end - r.start) as u64,
            })
            .collect();
        Ok(CsvFile {
            path: path.to_path_buf(),
            data,
            schema,
            delimiter,
            ranges,
            units,
        })
    }

    /// The record ranges, one per unit.
    pub fn ranges(&self) -> &[RecordRange] {
        &self.ranges
    }
}

impl FileReader for CsvFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> Format {
        Format::Csv
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn units(&self) -> &[UnitMeta] {
        &self.units
    }

    fn file_bytes(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_unit(&self, index: usize, projection: Option<&[usize]>) -> Result<RecordBatch> {
        let range = *self.ranges.get(index).ok_or_else(|| {
            Error::format(
                &self.path,
                format!("unit {index}"),
                "unit index out of range",
            )
        })?;
        let out_schema = match projection {
            Some(cols) => Arc::new(
                self.schema
                    .project(cols)
                    .map_err(|e| Error::schema(&self.path, e))?,
            ),
            None => self.schema.clone(),
        };
        let bytes = &self.data[range.start..range.end];
        if let Some(batch) = decode_fast(
            bytes,
            self.delimiter,
            &self.schema,
            projection,
            &out_schema,
            range.rows,
        ) {
            return Ok(batch);
        }
        self.read_unit_arrow(range, bytes, projection, out_schema)
    }
}

impl CsvFile {
    /// Decodes a range with `arrow_csv`: the general path, and the one whose errors users see.
    fn read_unit_arrow(
        &self,
        range: RecordRange,
        bytes: &[u8],
        projection: Option<&[usize]>,
        out_schema: SchemaRef,
    ) -> Result<RecordBatch> {
        let location = || format!("line {} (byte {})", range.first_line, range.start);
        let mut builder = arrow_csv::ReaderBuilder::new(self.schema.clone())
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_batch_size(range.rows.max(1));
        if let Some(cols) = projection {
            builder = builder.with_projection(cols.to_vec());
        }
        let reader = builder
            .build(Cursor::new(bytes))
            .map_err(|e| Error::format(&self.path, location(), e))?;
        let mut batches = Vec::with_capacity(1);
        for batch in reader {
            batches.push(batch.map_err(|e| Error::format(&self.path, location(), e))?);
        }
        let batch = match (batches.pop(), batches.is_empty()) {
            (None, _) => RecordBatch::new_empty(out_schema),
            (Some(only), true) => only,
            (Some(last), false) => {
                batches.push(last);
                arrow_select::concat::concat_batches(&out_schema, &batches)
                    .map_err(|e| Error::format(&self.path, location(), e))?
            }
        };
        if batch.num_rows() != range.rows {
            return Err(Error::format(
                &self.path,
                location(),
                format!(
                    "decoded {} records where {} lines were found (blank lines are not allowed)",
                    batch.num_rows(),
                    range.rows
                ),
            ));
        }
        Ok(batch)
    }
}

fn parse_header(path: &Path, line: &[u8], delimiter: u8) -> Result<Vec<String>> {
    let text = std::str::from_utf8(line).map_err(|e| Error::format(path, "line 1", e))?;
    let text = text.trim_end_matches(['\n', '\r']);
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c as u32 == delimiter as u32 && !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    Ok(fields)
}

fn infer_schema(path: &Path, data: &[u8], delimiter: u8) -> Result<SchemaRef> {
    let mut sample_end = data.len().min(INFER_BYTES);
    if sample_end < data.len() {
        // Cut the sample at a record end so the last sampled record is whole (quote-aware,
        // reading only the sample).
        sample_end = scan_quoted(data, 0, INFER_BYTES).0;
    }
    let (schema, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter)
        .infer_schema(Cursor::new(&data[..sample_end]), Some(INFER_RECORDS))
        .map_err(|e| Error::format(path, "schema inference", e))?;
    Ok(Arc::new(Schema::new(schema.fields().clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        let h = parse_header(Path::new("x"), b"a,\"b,c\",\"d\"\"e\"\r\n", b',').unwrap();
        assert_eq!(h, vec!["a", "b,c", "d\"e"]);
    }
}
