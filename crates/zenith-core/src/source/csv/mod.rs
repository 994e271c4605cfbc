//! CSV: the file is memory-mapped, split into byte ranges that end on record boundaries
//! (quote-aware, in `split`), and each range is one work unit decoded independently with the
//! shared schema: by the hand-written `fast` path where it applies, else by `arrow_csv`.
//!
//! Types and values follow `pyarrow.csv.read_csv` with its defaults. The schema is inferred
//! by `infer` with pyarrow's order (null, int64, boolean, date32, time32[s], timestamp[s],
//! timestamp[ns], float64, string): integers past int64 are float64, only `true`/`True`/`TRUE`
//! and the same spellings of `false` are booleans (`tRuE` is a string), `hh:mm[:ss]` is
//! time32[s], fractional timestamps are timestamp[ns], and `Z` or offset timestamps are
//! `tz=UTC`. pyarrow's null spellings (`nulls`: the empty field, `NA`, `NULL`, `null`, `NaN`,
//! `nan`, `N/A`, `n/a`, `#N/A`, `-nan` and a few more) are null in typed columns and text in
//! string columns, where an empty field is an empty string, quoted or not. Known
//! differences: `1`/`0` mixed with `true`/`false` make a string column (pyarrow: boolean;
//! `arrow_csv` parses booleans from `true`/`false` only), as do hexadecimal integers (`0x10`,
//! pyarrow: int64), timestamps without seconds (`2021-01-01 00:00`, pyarrow: timestamp[s]),
//! dates with spaces around them and NaN payloads (`nan(1)`); inference reads the first 1000
//! records or 1 MiB (pyarrow: the first 1 MiB block); past that sample, values are parsed by
//! `arrow_cast`, which takes booleans in any case and leap seconds where pyarrow fails.

mod decimal;
mod fast;
mod infer;
mod nulls;
mod split;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StringArray, StringViewArray};
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;

use super::{DecodeOptions, FileReader, Format, UnitMeta};
use crate::error::{Error, Result};
use fast::decode_fast;
use nulls::null_regex;
use split::find_record_end;
pub(crate) use split::{count_bounds, ranges_of};
pub use split::{split_records, RecordRange};

const DEFAULT_UNIT_BYTES: usize = 4 << 20;

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
            None => infer::infer_schema(path, &data, delimiter, &header)?,
        };
        let unit_bytes = options.csv_unit_bytes.unwrap_or(DEFAULT_UNIT_BYTES).max(1);
        let ranges = split_records(&data, header_end, unit_bytes);
        let units = units_of(&ranges);
        // Inference and the split read the file through; its units fault in what they read.
        super::release_pages(&data);
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
        let out_schema = super::project_schema(&self.path, &self.schema, projection)?;
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

    fn release_unit(&self, index: usize) {
        if let Some(r) = self.ranges.get(index) {
            super::release_pages(&self.data[r.start..r.end]);
        }
    }
}

/// The work units of record ranges: each range's rows and bytes.
pub(crate) fn units_of(ranges: &[RecordRange]) -> Vec<UnitMeta> {
    ranges
        .iter()
        .map(|r| UnitMeta {
            rows: r.rows,
            bytes: (r.end - r.start) as u64,
        })
        .collect()
}

/// Whether a column keeps null spellings as text (pyarrow's `strings_can_be_null=False`).
fn is_text(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::Utf8View)
}

/// Whether a float column holds a NaN: `arrow_csv` without the null regex reads pyarrow's
/// null spellings `NaN`, `nan`, `-NaN` and `-nan` as NaN.
fn has_nan(batch: &RecordBatch) -> bool {
    batch.columns().iter().any(|c| match c.data_type() {
        DataType::Float64 => c
            .as_primitive::<arrow_array::types::Float64Type>()
            .values()
            .iter()
            .any(|v| v.is_nan()),
        DataType::Float32 => c
            .as_primitive::<arrow_array::types::Float32Type>()
            .values()
            .iter()
            .any(|v| v.is_nan()),
        _ => false,
    })
}

impl CsvFile {
    /// Decodes a range with `arrow_csv`: the general path, and the one whose errors users see.
    /// pyarrow's null spellings are null in typed columns only, but `arrow_csv`'s null regex
    /// applies to every column (and empties the null slots of string columns), so typed and
    /// string columns are decoded apart when both are projected and a typed field may be a
    /// null spelling; a first pass without the regex is exact when it parses and has no NaN
    /// (any other spelling fails to parse in a typed column).
    fn read_unit_arrow(
        &self,
        range: RecordRange,
        bytes: &[u8],
        projection: Option<&[usize]>,
        out_schema: SchemaRef,
    ) -> Result<RecordBatch> {
        // Once per unit, before any of the up to three arrow_csv passes below.
        check_utf8(&self.path, range.start, bytes)?;
        let cols: Vec<usize> = match projection {
            Some(cols) => cols.to_vec(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let (text, typed): (Vec<usize>, Vec<usize>) =
            (0..cols.len()).partition(|&k| is_text(self.schema.field(cols[k]).data_type()));
        let regex = || null_regex().map_err(|e| Error::format(&self.path, "null spellings", e));
        if text.is_empty() || typed.is_empty() {
            let regex = if typed.is_empty() {
                None
            } else {
                Some(regex()?)
            };
            return self
                .decode_arrow(range, bytes, &cols, regex, out_schema)
                .map(empty_strings_not_null);
        }
        if let Ok(batch) = self.decode_arrow(range, bytes, &cols, None, out_schema.clone()) {
            if !has_nan(&batch) {
                return Ok(empty_strings_not_null(batch));
            }
        }
        let part = |ks: &[usize], regex| -> Result<RecordBatch> {
            let part_cols: Vec<usize> = ks.iter().map(|&k| cols[k]).collect();
            let schema = self
                .schema
                .project(&part_cols)
                .map_err(|e| Error::schema(&self.path, e))?;
            self.decode_arrow(range, bytes, &part_cols, regex, Arc::new(schema))
        };
        let typed_batch = part(&typed, Some(regex()?))?;
        let text_batch = empty_strings_not_null(part(&text, None)?);
        let mut columns: Vec<Option<ArrayRef>> = vec![None; cols.len()];
        for (ks, batch) in [(&typed, &typed_batch), (&text, &text_batch)] {
            for (&k, column) in ks.iter().zip(batch.columns()) {
                columns[k] = Some(column.clone());
            }
        }
        RecordBatch::try_new_with_options(
            out_schema,
            columns.into_iter().flatten().collect(),
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(range.rows)),
        )
        .map_err(|e| Error::schema(&self.path, e))
    }

    /// One `arrow_csv` decode of the file columns `cols`, nulls being the fields `null_regex`
    /// matches (the empty field when none).
    fn decode_arrow(
        &self,
        range: RecordRange,
        bytes: &[u8],
        cols: &[usize],
        null_regex: Option<regex::Regex>,
        out_schema: SchemaRef,
    ) -> Result<RecordBatch> {
        let location = || format!("line {} (byte {})", range.first_line, range.start);
        let mut builder = arrow_csv::ReaderBuilder::new(self.schema.clone())
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_batch_size(range.rows.max(1))
            .with_projection(cols.to_vec());
        if let Some(regex) = null_regex {
            builder = builder.with_null_regex(regex);
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

/// Refuses text that is not UTF-8 before `arrow_csv` sees it. arrow-csv 59 checks the UTF-8 of
/// the fields' bytes joined together, then cuts each field out without a check, so a character
/// split by a delimiter or a line end (`d5 0a 96`) passes its check and becomes a `str` that is
/// not UTF-8 (undefined behaviour; a panic with debug assertions). Valid UTF-8 around ASCII
/// delimiters cannot be split that way. pyarrow reads such a column as binary; Zenith reads
/// text columns as strings only, and says where the bytes are not UTF-8.
pub(super) fn check_utf8(path: &std::path::Path, start: usize, bytes: &[u8]) -> Result<()> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::format(
            path,
            format!("byte {}", start + e.valid_up_to()),
            "invalid UTF-8: CSV text columns are read as UTF-8 strings (pyarrow would read this \
             column as binary)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::types::{
        Date32Type, Float64Type, Int64Type, Time32SecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    use arrow_array::Array;
    use arrow_schema::TimeUnit;

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

    fn open(text: &str) -> CsvFile {
        CsvFile::from_bytes(
            Path::new("t.csv"),
            Bytes::from(text.as_bytes().to_vec()),
            &DecodeOptions::default(),
        )
        .unwrap()
    }

    /// The inferred type of each column, in order.
    fn column_types(file: &CsvFile) -> Vec<DataType> {
        file.schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }

    #[test]
    fn null_spellings_are_null_in_typed_columns_only_on_both_paths() {
        for spelling in nulls::NULL_SPELLINGS {
            let plain =
                format!("f,i,b,s\n1.5,1,true,a\n{spelling},{spelling},{spelling},{spelling}\n");
            let quoted =
                format!("f,i,b,s\n1.5,1,true,\"a\"\n{spelling},{spelling},{spelling},{spelling}\n");
            for (text, fast) in [(plain, true), (quoted, false)] {
                let file = open(&text);
                let types = column_types(&file);
                assert_eq!(
                    types,
                    [
                        DataType::Float64,
                        DataType::Int64,
                        DataType::Boolean,
                        DataType::Utf8
                    ],
                    "{text:?}"
                );
                let range = file.ranges()[0];
                let bytes = &file.data[range.start..range.end];
                let took_fast =
                    decode_fast(bytes, b',', &file.schema, None, &file.schema, range.rows)
                        .is_some();
                assert_eq!(took_fast, fast, "{text:?}");
                for projection in [None, Some(&[3, 0][..]), Some(&[1, 2][..]), Some(&[3][..])] {
                    let batch = file.read_unit(0, projection).unwrap();
                    for (k, &c) in projection.unwrap_or(&[0, 1, 2, 3]).iter().enumerate() {
                        let column = batch.column(k);
                        match c {
                            0 => assert_eq!(
                                column
                                    .as_primitive::<Float64Type>()
                                    .iter()
                                    .collect::<Vec<_>>(),
                                [Some(1.5), None]
                            ),
                            1 => assert_eq!(
                                column
                                    .as_primitive::<Int64Type>()
                                    .iter()
                                    .collect::<Vec<_>>(),
                                [Some(1), None]
                            ),
                            2 => assert_eq!(
                                column.as_boolean().iter().collect::<Vec<_>>(),
                                [Some(true), None]
                            ),
                            _ => {
                                assert_eq!(column.null_count(), 0);
                                assert_eq!(
                                    column.as_string::<i32>().iter().collect::<Vec<_>>(),
                                    [Some("a"), Some(spelling)]
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn nan_that_is_not_a_null_spelling_stays_nan() {
        for text in [
            "f,s\nNan,a\nNAN,b\nnan,c\n",
            "f,s\nNan,\"a\"\nNAN,b\nnan,c\n",
        ] {
            let batch = open(text).read_unit(0, None).unwrap();
            let f = batch.column(0).as_primitive::<Float64Type>();
            assert!(f.value(0).is_nan() && f.value(1).is_nan(), "{text:?}");
            assert_eq!(f.null_count(), 1);
            assert!(f.is_null(2));
        }
    }

    #[test]
    fn integers_past_int64_are_float64() {
        for text in [
            "big\n1\n9223372036854775808\n",
            "big\n-9223372036854775809\n\"2\"\n",
        ] {
            let file = open(text);
            assert_eq!(file.schema().field(0).data_type(), &DataType::Float64);
            let batch = file.read_unit(0, None).unwrap();
            let want = if text.contains('"') {
                [-9.223372036854776e18, 2.0]
            } else {
                [1.0, 9.223372036854776e18]
            };
            let got: Vec<f64> = batch
                .column(0)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn temporal_values() {
        let file = open(
            "t,ns,z,d\n\
             12:34:56,2021-01-01 00:00:00.5,2021-01-01T00:00:00+01:00,2021-01-02\n\
             00:01,2021-01-01T00:00:01,2021-01-01 00:00:00Z,NA\n",
        );
        let types = column_types(&file);
        assert_eq!(
            types,
            [
                DataType::Time32(TimeUnit::Second),
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                DataType::Timestamp(TimeUnit::Second, Some(Arc::from("UTC"))),
                DataType::Date32,
            ]
        );
        let batch = file.read_unit(0, None).unwrap();
        assert_eq!(
            batch
                .column(0)
                .as_primitive::<Time32SecondType>()
                .values()
                .to_vec(),
            [45296, 60]
        );
        assert_eq!(
            batch
                .column(1)
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .to_vec(),
            [1_609_459_200_500_000_000, 1_609_459_201_000_000_000]
        );
        assert_eq!(
            batch
                .column(2)
                .as_primitive::<TimestampSecondType>()
                .values()
                .to_vec(),
            [1_609_455_600, 1_609_459_200]
        );
        let d = batch.column(3).as_primitive::<Date32Type>();
        assert_eq!(d.iter().collect::<Vec<_>>(), [Some(18629), None]);
    }
}
