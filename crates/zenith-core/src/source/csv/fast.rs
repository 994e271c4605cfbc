//! The CSV fast path: ranges without quotes whose projected columns are plain numbers,
//! booleans or strings are split and parsed here, straight into typed builders. Anything
//! unexpected (a quote, a field that does not parse, a wrong field count, a blank line, a lone
//! `\r`, invalid UTF-8) makes it give up, and the range is decoded again by `arrow_csv`, whose
//! error messages name the line and byte. Values are those of the `arrow_csv` path: pyarrow's
//! null spellings (`nulls`) are null in typed columns, kept as text in string columns (an
//! empty field is an empty string there); numbers and booleans are parsed by the same
//! `arrow_cast` parsers, except that plain decimals (`-12.345`) whose value is exact in one
//! division are computed directly. The spelling check is a byte comparison of short fields,
//! made only for fields that did not parse (and, for floats, that are not plain decimals).

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

use super::decimal::{scan_decimal, ExactDecimal};
use super::nulls::is_null_spelling;

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
                if field.eq_ignore_ascii_case(b"false") {
                    b.append_value(false);
                } else if field.eq_ignore_ascii_case(b"true") {
                    b.append_value(true);
                } else if is_null_spelling(field) {
                    b.append_null();
                } else {
                    return None;
                }
                Some(end)
            }
            Self::Utf8(b) => {
                // An empty field is an empty string, as in pyarrow (see the module doc of `csv`).
                let end = field_end(data, start, delimiter, has_cr)?;
                b.append_value(std::str::from_utf8(&data[start..end]).ok()?);
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

/// Parses an integer field with `arrow_cast`'s parser for `T` (what `arrow_csv` does); a field
/// that does not parse is null if it is a null spelling (none of which is an integer, so
/// values never pay for the check).
#[inline]
fn push_parsed<T: ArrowPrimitiveType + Parser>(
    b: &mut Prim<T>,
    data: &[u8],
    start: usize,
    delimiter: u8,
    has_cr: bool,
) -> Option<usize> {
    let end = field_end(data, start, delimiter, has_cr)?;
    let field = &data[start..end];
    if end == start {
        b.append_null();
    } else if let Some(v) = std::str::from_utf8(field).ok().and_then(T::parse) {
        b.append_value(v);
    } else if is_null_spelling(field) {
        b.append_null();
    } else {
        return None;
    }
    Some(end)
}

/// Pushes a float field: computed directly when it is an exact plain decimal, else null when
/// it is a null spelling, else parsed by `arrow_cast`.
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
    // `NaN` and `nan` parse as floats but are null spellings: checked first.
    let end = field_end(data, start, delimiter, has_cr)?;
    let field = &data[start..end];
    if is_null_spelling(field) {
        b.append_null();
    } else {
        b.append_value(T::parse(std::str::from_utf8(field).ok()?)?);
    }
    Some(end)
}

/// Decodes `data` (whole records, `rows` of them) without `arrow_csv`; `None` when the fast
/// path does not apply or meets anything it does not handle.
pub(super) fn decode_fast(
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
    let (slot, mut columns) = projected_columns(schema, projection, rows, data.len())?;
    let has_cr = carriage_returns(data)?;
    let count = parse_records(data, delimiter, has_cr, &slot, &mut columns)?;
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

/// One builder per projected column, in output order, and `slot[c]`: where file column `c`
/// goes in the output, if it is projected. `None` for a repeated or unknown column, or a type
/// the fast path does not build.
fn projected_columns(
    schema: &Schema,
    projection: Option<&[usize]>,
    rows: usize,
    bytes: usize,
) -> Option<(Vec<Option<usize>>, Vec<FastColumn>)> {
    let ncols = schema.fields().len();
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
        columns.push(FastColumn::new(schema.field(c).data_type(), rows, bytes)?);
    }
    Some((slot, columns))
}

/// One pass for quotes (not handled here: `None`) and carriage returns (whether fields must be
/// checked for them).
fn carriage_returns(data: &[u8]) -> Option<bool> {
    match memchr::memchr2(b'"', b'\r', data) {
        None => Some(false),
        Some(i) if data[i] == b'"' => None,
        Some(i) => memchr::memchr(b'"', &data[i..]).is_none().then_some(true),
    }
}

/// Splits `data` into records and fields, pushing projected fields into their builders;
/// returns the number of records, or `None` at the first record that is not plain.
fn parse_records(
    data: &[u8],
    delimiter: u8,
    has_cr: bool,
    slot: &[Option<usize>],
    columns: &mut [FastColumn],
) -> Option<usize> {
    let n = data.len();
    let ncols = slot.len();
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
    Some(count)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use arrow_schema::Field;
    use bytes::Bytes;

    use super::super::{CsvFile, DecodeOptions, FileReader};
    use super::*;

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
        assert_eq!(batch.column(1).null_count(), 0);
        let strings: &arrow_array::StringArray = batch.column(1).as_any().downcast_ref().unwrap();
        assert_eq!(
            strings.iter().collect::<Vec<_>>(),
            [Some("x"), Some("y"), Some("")]
        );
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
}
