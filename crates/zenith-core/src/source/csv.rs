//! CSV: the file is memory-mapped, split into byte ranges that end on record boundaries
//! (quote-aware), and each range is one work unit decoded independently with the shared schema.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;

use super::{DecodeOptions, FileReader, Format, UnitMeta};
use crate::error::{Error, Result};

const DEFAULT_UNIT_BYTES: usize = 4 << 20;
const INFER_BYTES: usize = 1 << 20;
const INFER_RECORDS: usize = 1000;

/// A byte range of records, `[start, end)`, with the number of records in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRange {
    /// First byte of the first record.
    pub start: usize,
    /// One past the last byte of the last record.
    pub end: usize,
    /// Records in the range.
    pub rows: usize,
    /// 1-based line number of the first record in the file (the header is line 1).
    pub first_line: usize,
}

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
        let data = super::map_file(path)?;
        let delimiter = options.csv_delimiter.unwrap_or(b',');
        let header_end = match find_record_end(&data, 0) {
            Some(end) => end,
            None if data.is_empty() => {
                return Err(Error::format(path, "byte 0", "empty CSV file (no header row)"))
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
                        format!("CSV header {header:?} does not match the schema's columns {names:?}"),
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
        let range = *self
            .ranges
            .get(index)
            .ok_or_else(|| Error::format(&self.path, format!("unit {index}"), "unit index out of range"))?;
        let location = || format!("line {} (byte {})", range.first_line, range.start);
        let mut builder = arrow_csv::ReaderBuilder::new(self.schema.clone())
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_batch_size(range.rows.max(1));
        if let Some(cols) = projection {
            builder = builder.with_projection(cols.to_vec());
        }
        let reader = builder
            .build(Cursor::new(&self.data[range.start..range.end]))
            .map_err(|e| Error::format(&self.path, location(), e))?;
        let out_schema = match projection {
            Some(cols) => Arc::new(self.schema.project(cols).map_err(|e| Error::schema(&self.path, e))?),
            None => self.schema.clone(),
        };
        let mut batches = Vec::with_capacity(1);
        for batch in reader {
            batches.push(batch.map_err(|e| Error::format(&self.path, location(), e))?);
        }
        let batch = match batches.len() {
            0 => RecordBatch::new_empty(out_schema),
            1 => batches.pop().expect("one batch"),
            _ => arrow_select::concat::concat_batches(&out_schema, &batches)
                .map_err(|e| Error::format(&self.path, location(), e))?,
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
        // Cut the sample at a record end so the last sampled record is whole.
        let boundaries = split_records(data, 0, INFER_BYTES);
        sample_end = boundaries.first().map(|r| r.end).unwrap_or(data.len());
    }
    let (schema, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter)
        .infer_schema(Cursor::new(&data[..sample_end]), Some(INFER_RECORDS))
        .map_err(|e| Error::format(path, "schema inference", e))?;
    Ok(Arc::new(Schema::new(schema.fields().clone())))
}

/// End (one past the newline) of the record starting at `start`, quote-aware; `None` when the
/// record runs to the end of the data without a newline.
fn find_record_end(data: &[u8], start: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut pos = start;
    while let Some(off) = memchr::memchr2(b'"', b'\n', &data[pos..]) {
        let i = pos + off;
        if data[i] == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            return Some(i + 1);
        }
        pos = i + 1;
    }
    None
}

/// Splits `data[start..]` into ranges of about `target` bytes ending on record boundaries.
/// Newlines inside quoted fields are not boundaries. Files without any quote take a fast path
/// that only looks for newlines.
pub fn split_records(data: &[u8], start: usize, target: usize) -> Vec<RecordRange> {
    let has_quotes = memchr::memchr(b'"', &data[start..]).is_some();
    let mut ranges = Vec::new();
    let mut pos = start;
    let mut line = 2usize;
    while pos < data.len() {
        let tentative = pos.saturating_add(target).min(data.len());
        let (end, rows) = if has_quotes {
            scan_quoted(data, pos, tentative)
        } else {
            let end = if tentative >= data.len() {
                data.len()
            } else {
                memchr::memchr(b'\n', &data[tentative..]).map_or(data.len(), |i| tentative + i + 1)
            };
            let newlines = memchr::memchr_iter(b'\n', &data[pos..end]).count();
            let unterminated = end == data.len() && data[end - 1] != b'\n';
            (end, newlines + usize::from(unterminated))
        };
        if rows > 0 {
            ranges.push(RecordRange {
                start: pos,
                end,
                rows,
                first_line: line,
            });
        }
        line += rows;
        pos = end;
    }
    ranges
}

/// Quote-aware scan from `pos`: returns the first record end at or after `min_end` and the
/// number of records between.
fn scan_quoted(data: &[u8], pos: usize, min_end: usize) -> (usize, usize) {
    let mut rows = 0;
    let mut in_quotes = false;
    let mut i = pos;
    while let Some(off) = memchr::memchr2(b'"', b'\n', &data[i..]) {
        let at = i + off;
        i = at + 1;
        if data[at] == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes {
            rows += 1;
            if i >= min_end {
                return (i, rows);
            }
        }
    }
    if i <= data.len() && data.len() > pos && data[data.len() - 1] != b'\n' {
        rows += 1;
    }
    (data.len(), rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_of(data: &[u8], target: usize) -> Vec<(usize, usize, usize)> {
        split_records(data, 0, target).iter().map(|r| (r.start, r.end, r.rows)).collect()
    }

    #[test]
    fn split_plain_lines() {
        let data = b"1,a\n2,b\n3,c\n";
        assert_eq!(rows_of(data, 1), vec![(0, 4, 1), (4, 8, 1), (8, 12, 1)]);
        assert_eq!(rows_of(data, 5), vec![(0, 8, 2), (8, 12, 1)]);
        assert_eq!(rows_of(b"1,a\n2,b", 100), vec![(0, 7, 2)]);
    }

    #[test]
    fn quoted_newlines_are_not_boundaries() {
        let data = b"1,\"x\ny\"\n2,\"z\"\n";
        let ranges = rows_of(data, 1);
        assert_eq!(ranges, vec![(0, 8, 1), (8, 14, 1)]);
        assert_eq!(find_record_end(data, 0), Some(8));
    }

    #[test]
    fn header_parsing() {
        let h = parse_header(Path::new("x"), b"a,\"b,c\",\"d\"\"e\"\r\n", b',').unwrap();
        assert_eq!(h, vec!["a", "b,c", "d\"e"]);
    }
}
