//! CSV: the file is memory-mapped, split into byte ranges that end on record boundaries
//! (quote-aware), and each range is one work unit decoded independently with the shared schema.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, StringBuilder};
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{ArrayRef, ArrowPrimitiveType, PrimitiveArray, RecordBatch, RecordBatchOptions};
use arrow_buffer::{NullBufferBuilder, ScalarBuffer};
use arrow_cast::parse::Parser;
use arrow_schema::{DataType, Schema, SchemaRef};
use bytes::Bytes;
use rayon::prelude::*;

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
/// Newlines inside quoted fields are not boundaries. The boundaries are first found by seeking
/// (a range ends at the first newline at or after `start + target`); the ranges are then
/// checked for quotes and their newlines counted in parallel. Only when a quote turns up is
/// the data scanned again, serially and quote-aware.
pub fn split_records(data: &[u8], start: usize, target: usize) -> Vec<RecordRange> {
    let mut bounds = Vec::new();
    let mut pos = start;
    while pos < data.len() {
        let tentative = pos.saturating_add(target).min(data.len());
        let end = if tentative >= data.len() {
            data.len()
        } else {
            memchr::memchr(b'\n', &data[tentative..]).map_or(data.len(), |i| tentative + i + 1)
        };
        bounds.push((pos, end));
        pos = end;
    }
    let count = |&(s, e): &(usize, usize)| -> Option<usize> {
        let part = &data[s..e];
        if memchr::memchr(b'"', part).is_some() {
            return None;
        }
        let unterminated = e == data.len() && data[e - 1] != b'\n';
        Some(memchr::memchr_iter(b'\n', part).count() + usize::from(unterminated))
    };
    // Counting serially gives the same answer when no pool can be had.
    let pool = (bounds.len() > 1)
        .then(crate::pool::global)
        .and_then(Result::ok);
    let counts: Option<Vec<usize>> = match pool {
        Some(pool) => pool.install(|| bounds.par_iter().map(count).collect()),
        None => bounds.iter().map(count).collect(),
    };
    let Some(counts) = counts else {
        return split_quoted(data, start, target);
    };
    let mut line = 2usize;
    let mut ranges = Vec::with_capacity(bounds.len());
    for ((start, end), rows) in bounds.into_iter().zip(counts) {
        if rows > 0 {
            ranges.push(RecordRange {
                start,
                end,
                rows,
                first_line: line,
            });
        }
        line += rows;
    }
    ranges
}

/// [`split_records`] over data with quotes: one serial quote-aware pass.
fn split_quoted(data: &[u8], start: usize, target: usize) -> Vec<RecordRange> {
    let mut ranges = Vec::new();
    let mut pos = start;
    let mut line = 2usize;
    while pos < data.len() {
        let tentative = pos.saturating_add(target).min(data.len());
        let (end, rows) = scan_quoted(data, pos, tentative);
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

// ---------------------------------------------------------------------------------------------
// Fast path: ranges without quotes whose projected columns are plain numbers, booleans or
// strings are split and parsed here, straight into typed builders. Anything unexpected (a
// quote, a field that does not parse, a wrong field count, a blank line, a lone `\r`, invalid
// UTF-8) makes it give up, and the range is decoded again by `arrow_csv`, whose error messages
// name the line and byte. Nulls and parsing follow `arrow_csv` 59: an empty field is null,
// numbers and booleans are parsed by the same `arrow_cast` parsers, except that plain decimals
// (`-12.345`) whose value is exact in one division are computed directly.
// ---------------------------------------------------------------------------------------------

/// A primitive column: values in a `Vec`, validity only once a null shows up.
struct Prim<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
}

impl<T: ArrowPrimitiveType> Prim<T> {
    fn with_capacity(rows: usize) -> Self {
        Prim {
            values: Vec::with_capacity(rows),
            nulls: NullBufferBuilder::new(rows),
        }
    }

    #[inline]
    fn append_value(&mut self, v: T::Native) {
        self.values.push(v);
        self.nulls.append_non_null();
    }

    #[inline]
    fn append_null(&mut self) {
        self.values.push(T::Native::default());
        self.nulls.append_null();
    }

    fn finish(mut self) -> PrimitiveArray<T> {
        PrimitiveArray::new(ScalarBuffer::from(self.values), self.nulls.finish())
    }
}

/// One projected column being decoded by the fast path.
enum FastColumn {
    F64(Prim<Float64Type>),
    F32(Prim<Float32Type>),
    I8(Prim<Int8Type>),
    I16(Prim<Int16Type>),
    I32(Prim<Int32Type>),
    I64(Prim<Int64Type>),
    U8(Prim<UInt8Type>),
    U16(Prim<UInt16Type>),
    U32(Prim<UInt32Type>),
    U64(Prim<UInt64Type>),
    Bool(BooleanBuilder),
    Utf8(StringBuilder),
}

impl FastColumn {
    fn new(data_type: &DataType, rows: usize, bytes: usize) -> Option<Self> {
        Some(match data_type {
            DataType::Float64 => Self::F64(Prim::with_capacity(rows)),
            DataType::Float32 => Self::F32(Prim::with_capacity(rows)),
            DataType::Int8 => Self::I8(Prim::with_capacity(rows)),
            DataType::Int16 => Self::I16(Prim::with_capacity(rows)),
            DataType::Int32 => Self::I32(Prim::with_capacity(rows)),
            DataType::Int64 => Self::I64(Prim::with_capacity(rows)),
            DataType::UInt8 => Self::U8(Prim::with_capacity(rows)),
            DataType::UInt16 => Self::U16(Prim::with_capacity(rows)),
            DataType::UInt32 => Self::U32(Prim::with_capacity(rows)),
            DataType::UInt64 => Self::U64(Prim::with_capacity(rows)),
            DataType::Boolean => Self::Bool(BooleanBuilder::with_capacity(rows)),
            DataType::Utf8 => Self::Utf8(StringBuilder::with_capacity(rows, bytes.min(1 << 20))),
            _ => return None,
        })
    }

    /// Decodes the field starting at `data[start]` and returns where it ends (the index of its
    /// terminator, or `data.len()`); `None` when the field does not parse.
    #[inline]
    fn push(&mut self, data: &[u8], start: usize, delimiter: u8, has_cr: bool) -> Option<usize> {
        match self {
            Self::F64(b) => push_float(b, data, start, delimiter, has_cr),
            Self::F32(b) => push_float(b, data, start, delimiter, has_cr),
            Self::I8(b) => push_parsed(b, data, start, delimiter, has_cr),
            Self::I16(b) => push_parsed(b, data, start, delimiter, has_cr),
            Self::I32(b) => push_parsed(b, data, start, delimiter, has_cr),
            Self::I64(b) => push_parsed(b, data, start, delimiter, has_cr),
            Self::U8(b) => push_parsed(b, data, start, delimiter, has_cr),
            Self::U16(b) => push_parsed(b, data, start, delimiter, has_cr),
            Self::U32(b) => push_parsed(b, data, start, delimiter, has_cr),
            Self::U64(b) => push_parsed(b, data, start, delimiter, has_cr),
            Self::Bool(b) => {
                let end = field_end(data, start, delimiter, has_cr)?;
                let field = &data[start..end];
                if field.is_empty() {
                    b.append_null();
                } else if field.eq_ignore_ascii_case(b"false") {
                    b.append_value(false);
                } else if field.eq_ignore_ascii_case(b"true") {
                    b.append_value(true);
                } else {
                    return None;
                }
                Some(end)
            }
            Self::Utf8(b) => {
                let end = field_end(data, start, delimiter, has_cr)?;
                if end == start {
                    b.append_null();
                } else {
                    b.append_value(std::str::from_utf8(&data[start..end]).ok()?);
                }
                Some(end)
            }
        }
    }

    fn finish(self) -> ArrayRef {
        fn done<T: ArrowPrimitiveType>(b: Prim<T>) -> ArrayRef {
            Arc::new(b.finish())
        }
        match self {
            Self::F64(b) => done(b),
            Self::F32(b) => done(b),
            Self::I8(b) => done(b),
            Self::I16(b) => done(b),
            Self::I32(b) => done(b),
            Self::I64(b) => done(b),
            Self::U8(b) => done(b),
            Self::U16(b) => done(b),
            Self::U32(b) => done(b),
            Self::U64(b) => done(b),
            Self::Bool(mut b) => Arc::new(b.finish()),
            Self::Utf8(mut b) => Arc::new(b.finish()),
        }
    }
}

/// End of the field starting at `start`: the next delimiter or newline (a `\r` right before
/// the newline is left out), or `data.len()`. `None` when the field holds a `\r` anywhere
/// else (`arrow_csv` would end the record there).
#[inline]
fn field_end(data: &[u8], start: usize, delimiter: u8, has_cr: bool) -> Option<usize> {
    let mut end =
        memchr::memchr2(delimiter, b'\n', &data[start..]).map_or(data.len(), |i| start + i);
    if has_cr {
        if end > start && data[end - 1] == b'\r' && data.get(end) == Some(&b'\n') {
            end -= 1;
        }
        if memchr::memchr(b'\r', &data[start..end]).is_some() {
            return None;
        }
    }
    Some(end)
}

/// Parses a field with `arrow_cast`'s parser for `T` (what `arrow_csv` does); empty is null.
#[inline]
fn push_parsed<T: ArrowPrimitiveType + Parser>(
    b: &mut Prim<T>,
    data: &[u8],
    start: usize,
    delimiter: u8,
    has_cr: bool,
) -> Option<usize> {
    let end = field_end(data, start, delimiter, has_cr)?;
    if end == start {
        b.append_null();
    } else {
        b.append_value(T::parse(std::str::from_utf8(&data[start..end]).ok()?)?);
    }
    Some(end)
}

/// Floats whose plain decimal form can be turned into the correctly rounded value with one
/// exact division (the mantissa and the power of ten are both exact in the type), which is
/// the value `lexical_core` (behind `arrow_cast`) gives too.
trait ExactDecimal: ArrowPrimitiveType + Parser {
    fn exact(negative: bool, mantissa: u64, fraction_digits: usize) -> Option<Self::Native>;
}

const POW10_F64: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
const POW10_F32: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

impl ExactDecimal for Float64Type {
    #[inline]
    fn exact(negative: bool, mantissa: u64, fraction_digits: usize) -> Option<f64> {
        if mantissa > 1 << 53 || fraction_digits >= POW10_F64.len() {
            return None;
        }
        let v = mantissa as f64 / POW10_F64[fraction_digits];
        Some(if negative { -v } else { v })
    }
}

impl ExactDecimal for Float32Type {
    #[inline]
    fn exact(negative: bool, mantissa: u64, fraction_digits: usize) -> Option<f32> {
        if mantissa > 1 << 24 || fraction_digits >= POW10_F32.len() {
            return None;
        }
        let v = mantissa as f32 / POW10_F32[fraction_digits];
        Some(if negative { -v } else { v })
    }
}

/// Reads `-?\d+(\.\d+)?` at `start` (at most 19 digits) followed by a delimiter, `\r`, `\n`
/// or the end: (negative, mantissa, fraction digits, end).
#[inline]
fn scan_decimal(data: &[u8], start: usize, delimiter: u8) -> Option<(bool, u64, usize, usize)> {
    let mut i = start;
    let negative = data.get(i) == Some(&b'-');
    i += usize::from(negative);
    let mut mantissa = 0u64;
    let int_start = i;
    while let Some(d) = data
        .get(i)
        .map(|c| c.wrapping_sub(b'0'))
        .filter(|d| *d <= 9)
    {
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let int_digits = i - int_start;
    if int_digits == 0 {
        return None;
    }
    let mut fraction_digits = 0;
    if data.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while let Some(d) = data
            .get(i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|d| *d <= 9)
        {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        fraction_digits = i - frac_start;
        if fraction_digits == 0 {
            return None;
        }
    }
    if int_digits + fraction_digits > 19 {
        return None;
    }
    match data.get(i) {
        None => {}
        Some(&c) if c == delimiter || c == b'\n' || c == b'\r' => {}
        Some(_) => return None,
    }
    Some((negative, mantissa, fraction_digits, i))
}

#[inline]
fn push_float<T: ExactDecimal>(
    b: &mut Prim<T>,
    data: &[u8],
    start: usize,
    delimiter: u8,
    has_cr: bool,
) -> Option<usize> {
    if let Some((negative, mantissa, fraction_digits, end)) = scan_decimal(data, start, delimiter) {
        if let Some(v) = T::exact(negative, mantissa, fraction_digits) {
            b.append_value(v);
            return Some(end);
        }
    }
    push_parsed(b, data, start, delimiter, has_cr)
}

/// Decodes `data` (whole records, `rows` of them) without `arrow_csv`; `None` when the fast
/// path does not apply or meets anything it does not handle.
fn decode_fast(
    data: &[u8],
    delimiter: u8,
    schema: &Schema,
    projection: Option<&[usize]>,
    out_schema: &SchemaRef,
    rows: usize,
) -> Option<RecordBatch> {
    let ncols = schema.fields().len();
    if ncols == 0
        || !delimiter.is_ascii()
        || matches!(delimiter, b'"' | b'\n' | b'\r')
        || data.len() > i32::MAX as usize
        || (!data.is_ascii() && std::str::from_utf8(data).is_err())
    {
        return None;
    }
    // slot[c]: where column c goes in the output, if it is projected.
    let mut slot: Vec<Option<usize>> = vec![None; ncols];
    let mut columns = Vec::new();
    let all: Vec<usize>;
    let cols = match projection {
        Some(cols) => cols,
        None => {
            all = (0..ncols).collect();
            &all
        }
    };
    for (k, &c) in cols.iter().enumerate() {
        if c >= ncols || slot[c].is_some() {
            return None;
        }
        slot[c] = Some(k);
        columns.push(FastColumn::new(
            schema.field(c).data_type(),
            rows,
            data.len(),
        )?);
    }
    // One pass for quotes (not handled here) and carriage returns (checked per field if any).
    let has_cr = match memchr::memchr2(b'"', b'\r', data) {
        None => false,
        Some(i) if data[i] == b'"' => return None,
        Some(i) => {
            if memchr::memchr(b'"', &data[i..]).is_some() {
                return None;
            }
            true
        }
    };
    let n = data.len();
    let mut pos = 0;
    let mut count = 0;
    while pos < n {
        if data[pos] == b'\n' {
            return None; // a blank line: arrow_csv skips it and the row count is off
        }
        for (c, s) in slot.iter().enumerate() {
            let end = match s {
                Some(k) => columns[*k].push(data, pos, delimiter, has_cr)?,
                None => field_end(data, pos, delimiter, has_cr)?,
            };
            if c + 1 < ncols {
                if data.get(end) != Some(&delimiter) {
                    return None;
                }
                pos = end + 1;
            } else {
                pos = match data.get(end) {
                    None => n,
                    Some(b'\n') => end + 1,
                    Some(b'\r') if data.get(end + 1) == Some(&b'\n') => end + 2,
                    Some(_) => return None,
                };
            }
        }
        count += 1;
    }
    if count != rows {
        return None;
    }
    let arrays = columns.into_iter().map(FastColumn::finish).collect();
    RecordBatch::try_new_with_options(
        out_schema.clone(),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow_schema::Field;

    fn open_csv(text: &str, schema: Option<Schema>, unit_bytes: usize) -> CsvFile {
        let options = DecodeOptions {
            csv_schema: schema.map(Arc::new),
            csv_unit_bytes: Some(unit_bytes),
            ..Default::default()
        };
        CsvFile::from_bytes(
            Path::new("t.csv"),
            Bytes::from(text.as_bytes().to_vec()),
            &options,
        )
        .unwrap()
    }

    /// Decodes every unit both ways and checks that the fast path ran and agreed.
    fn assert_fast_matches(file: &CsvFile, projection: Option<&[usize]>) -> Vec<RecordBatch> {
        let out_schema = match projection {
            Some(cols) => Arc::new(file.schema.project(cols).unwrap()),
            None => file.schema.clone(),
        };
        let mut out = Vec::new();
        for (i, range) in file.ranges().iter().enumerate() {
            let bytes = &file.data[range.start..range.end];
            let fast = decode_fast(
                bytes,
                file.delimiter,
                &file.schema,
                projection,
                &out_schema,
                range.rows,
            )
            .unwrap_or_else(|| panic!("fast path declined unit {i}"));
            let slow = file
                .read_unit_arrow(*range, bytes, projection, out_schema.clone())
                .unwrap();
            assert_eq!(fast, slow, "unit {i}");
            assert_eq!(fast.num_rows(), range.rows);
            assert_eq!(file.read_unit(i, projection).unwrap(), slow);
            out.push(fast);
        }
        out
    }

    fn mixed_schema() -> Schema {
        Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("g", DataType::Float32, true),
            Field::new("i", DataType::Int64, true),
            Field::new("u", DataType::UInt8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("j", DataType::Int16, true),
        ])
    }

    const MIXED: &str = "f,g,i,u,b,s,j\n\
        -0.122,1.5,-7,0,true,abc,12\n\
        1e3,-2.25e-3,+8,255,FALSE,,-3\n\
        ,,,,,,\n\
        inf,NaN,0,7,True,x y,0\n\
        -0.0,0.1,9223372036854775807,1,false,-1.5,-32768\n\
        12345678901234567890.5,3.4028235e38, 42 ,2,TRUE, pad ,7\n\
        .5,5.,-9223372036854775808,3,true,z,1\n\
        0.30000000000000004,16777217,1,4,false,q,2\n\
        1.7976931348623157e308,-0,2,5,true,w,3\n\
        -infinity,-inf, 3,6 ,false,v,4";

    #[test]
    fn fast_path_matches_arrow_csv() {
        for unit_bytes in [1, 40, 1 << 20] {
            let file = open_csv(MIXED, Some(mixed_schema()), unit_bytes);
            let batches = assert_fast_matches(&file, None);
            assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 10);
            assert_fast_matches(&file, Some(&[5, 0, 3]));
            assert_fast_matches(&file, Some(&[6]));
            assert_fast_matches(&file, Some(&[]));
        }
        let crlf = MIXED.replace('\n', "\r\n") + "\r\n";
        for unit_bytes in [1, 64, 1 << 20] {
            let file = open_csv(&crlf, Some(mixed_schema()), unit_bytes);
            assert_fast_matches(&file, None);
            assert_fast_matches(&file, Some(&[2, 1]));
        }
    }

    #[test]
    fn fast_path_nulls_only_where_empty() {
        let file = open_csv("a,b\n1.5,x\n,y\n2.5,\n", None, 1 << 20);
        let batch = &assert_fast_matches(&file, None)[0];
        assert_eq!(batch.column(0).null_count(), 1);
        assert_eq!(batch.column(1).null_count(), 1);
        let file = open_csv("a,b\n1.5,x\n2.5,y\n", None, 1 << 20);
        let batch = &assert_fast_matches(&file, None)[0];
        assert!(batch.column(0).nulls().is_none());
        assert!(batch.column(1).nulls().is_none());
    }

    #[test]
    fn fast_path_declines_and_errors_stay() {
        let schema = || {
            Schema::new(vec![
                Field::new("a", DataType::Float64, true),
                Field::new("b", DataType::Int64, true),
            ])
        };
        let cases = [
            "a,b\n1.0,2\n1.x,3\n",     // bad float
            "a,b\n1.0,2\n1.5,3.5\n",   // bad int
            "a,b\n1.0,2\n1.5\n",       // too few fields
            "a,b\n1.0,2\n1.5,3,4\n",   // too many fields
            "a,b\n1.0,2\n\n1.5,3\n",   // blank line
            "a,b\n1.0,2\r1.5,3\n",     // lone carriage return
            "a,b\n1.0,\"2\"\n1.5,3\n", // quotes: arrow_csv decodes it
        ];
        for text in cases {
            let file = open_csv(text, Some(schema()), 1 << 20);
            let range = file.ranges()[0];
            let bytes = &file.data[range.start..range.end];
            let out = file.schema.clone();
            assert!(
                decode_fast(bytes, b',', &file.schema, None, &out, range.rows).is_none(),
                "{text:?}"
            );
            let slow = file.read_unit_arrow(range, bytes, None, out);
            match (file.read_unit(0, None), slow) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("{text:?}: {a:?} vs {b:?}"),
            }
        }
        let file = open_csv("a,b\n1.0,2\n1.x,3\n", Some(schema()), 1 << 20);
        let err = file.read_unit(0, None).unwrap_err().to_string();
        assert!(err.contains("line 2 (byte 4)"), "{err}");
        assert!(err.contains("'1.x'"), "{err}");
    }

    #[test]
    fn exact_decimals_match_arrow_cast() {
        // Deterministic pseudo-random decimals of every length up to 20 digits.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for s in [
            "-0",
            "-0.000",
            "0.0",
            "007.50",
            "9007199254740992",
            "9007199254740993",
        ] {
            let (neg, m, f, _) = scan_decimal(s.as_bytes(), 0, b',').unwrap();
            if let Some(v) = Float64Type::exact(neg, m, f) {
                assert_eq!(v.to_bits(), Float64Type::parse(s).unwrap().to_bits(), "{s}");
            }
        }
        for _ in 0..200_000 {
            let r = next();
            let int_digits = 1 + (r % 12) as usize;
            let frac_digits = ((r >> 8) % 12) as usize;
            let mut s = String::new();
            if r & (1 << 20) != 0 {
                s.push('-');
            }
            for k in 0..int_digits + frac_digits {
                if k == int_digits {
                    s.push('.');
                }
                s.push(char::from(b'0' + (next() % 10) as u8));
            }
            let bytes = s.as_bytes();
            if let Some((neg, m, f, end)) = scan_decimal(bytes, 0, b',') {
                assert_eq!(end, bytes.len());
                if let Some(v) = Float64Type::exact(neg, m, f) {
                    let want = Float64Type::parse(&s).unwrap();
                    assert_eq!(v.to_bits(), want.to_bits(), "{s}");
                }
                if let Some(v) = Float32Type::exact(neg, m, f) {
                    let want = Float32Type::parse(&s).unwrap();
                    assert_eq!(v.to_bits(), want.to_bits(), "{s}");
                }
            }
        }
    }

    #[test]
    fn split_counts_lines_per_range() {
        let text: String = (0..1000).map(|i| format!("{i},{}\n", i * 7)).collect();
        let ranges = split_records(text.as_bytes(), 0, 100);
        assert!(ranges.len() > 10);
        let mut line = 2;
        let mut pos = 0;
        for r in &ranges {
            assert_eq!(r.start, pos);
            assert_eq!(r.first_line, line);
            assert_eq!(
                r.rows,
                text.as_bytes()[r.start..r.end]
                    .iter()
                    .filter(|&&c| c == b'\n')
                    .count()
            );
            line += r.rows;
            pos = r.end;
        }
        assert_eq!(pos, text.len());
        assert_eq!(line - 2, 1000);
    }

    fn rows_of(data: &[u8], target: usize) -> Vec<(usize, usize, usize)> {
        split_records(data, 0, target)
            .iter()
            .map(|r| (r.start, r.end, r.rows))
            .collect()
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
