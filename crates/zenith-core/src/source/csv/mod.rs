//! CSV: the file is memory-mapped, split into byte ranges that end on record boundaries
//! (quote-aware, in `split`), and each range is one work unit decoded independently with the
//! shared schema: by the hand-written `fast` path where it applies, else by `arrow_csv`.
//!
//! Values follow `pyarrow.csv.read_csv` with its defaults where the two agree or this reader
//! was made to: an empty field is null in typed columns but an empty string (never null) in
//! string columns, quoted or not; `true`/`false` in any case are booleans; integers that fit
//! int64 are int64; `YYYY-MM-DD` is date32 and `YYYY-MM-DD[T ]hh:mm:ss` timestamp[s]. Known
//! differences, from `arrow_csv` 59's inference and parsing: only the empty field is null
//! (pyarrow also takes `NULL`, `null`, `NaN`, `nan`, `N/A`, `NA`, `n/a`, `#N/A`, `-nan` and a
//! few more as null in typed columns, so such a column is a string column here); an integer
//! column with a value past int64 is a string column (pyarrow: float64); mixed-case booleans
//! (`tRuE`) are booleans (pyarrow: strings); fractional timestamps get the unit of their
//! longest fraction (pyarrow: ns); `Z` or offset timestamps are timezone-naive UTC (pyarrow:
//! `tz=UTC`), and `hh:mm:ss` stays a string (pyarrow: time32[s]).

mod decimal;
mod fast;
mod split;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StringArray, StringViewArray};
use arrow_schema::{DataType, Schema, SchemaRef};
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
            .map(empty_strings_not_null)
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

/// `arrow_csv` makes an empty field null in every column; pyarrow keeps it as an empty string in
/// string columns. The null slots of a string column `arrow_csv` built are empty values, so
/// dropping the validity gives exactly pyarrow's column, without copying the data.
fn empty_strings_not_null(batch: RecordBatch) -> RecordBatch {
    if !batch
        .columns()
        .iter()
        .any(|c| c.null_count() > 0 && matches!(c.data_type(), DataType::Utf8 | DataType::Utf8View))
    {
        return batch;
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8 if c.null_count() > 0 => {
                let (offsets, values, _) = c.as_string::<i32>().clone().into_parts();
                Arc::new(StringArray::new(offsets, values, None)) as ArrayRef
            }
            DataType::Utf8View if c.null_count() > 0 => {
                let (views, buffers, _) = c.as_string_view().clone().into_parts();
                Arc::new(StringViewArray::new(views, buffers, None)) as ArrayRef
            }
            _ => c.clone(),
        })
        .collect();
    // The schema is the batch's own; only validity changed, so this cannot fail.
    RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .unwrap_or(batch)
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
    use arrow_array::Array;

    use super::*;

    #[test]
    fn empty_string_fields_are_empty_strings_on_both_paths() {
        // Quoted fields take the arrow_csv path, plain ones the fast path.
        for text in ["s,n\na,1\n,2\nc,\n", "s,n\n\"a\",1\n,2\n\"\",\n"] {
            let file = CsvFile::from_bytes(
                Path::new("t.csv"),
                Bytes::from(text.as_bytes().to_vec()),
                &DecodeOptions::default(),
            )
            .unwrap();
            let batch = file.read_unit(0, None).unwrap();
            let s = batch.column(0).as_string::<i32>();
            assert_eq!(s.null_count(), 0, "{text:?}");
            let want = if text.contains('"') {
                ["a", "", ""]
            } else {
                ["a", "", "c"]
            };
            assert_eq!(s.iter().collect::<Vec<_>>(), want.map(Some), "{text:?}");
            let n = batch
                .column(1)
                .as_primitive::<arrow_array::types::Int64Type>();
            assert_eq!(n.iter().collect::<Vec<_>>(), [Some(1), Some(2), None]);
        }
    }

    #[test]
    fn header_parsing() {
        let h = parse_header(Path::new("x"), b"a,\"b,c\",\"d\"\"e\"\r\n", b',').unwrap();
        assert_eq!(h, vec!["a", "b,c", "d\"e"]);
    }
}
