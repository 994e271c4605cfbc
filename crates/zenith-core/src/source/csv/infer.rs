//! Schema inference as `pyarrow.csv.read_csv` does it with its defaults, over a sample (the
//! first 1000 records or 1 MiB). pyarrow tries, per column, null -> int64 -> boolean -> date32
//! -> time32[s] -> timestamp[s] -> timestamp[ns] -> float64 -> string and keeps the first kind
//! every non-null field converts to; here each field clears the kinds it cannot be, and the
//! first kind left wins. A kind is only offered for a field `arrow_csv`/`arrow_cast` (which
//! decode the values) parse to the same value, so inference never picks a type whose decode
//! would fail or differ; where pyarrow accepts more, the column stays a string column (the
//! module doc of `csv` lists those cases).

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::timezone::Tz;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, Time32SecondType};
use arrow_cast::parse::{string_to_datetime, string_to_timestamp_nanos, Parser};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::nulls::is_null_spelling;
use super::split::scan_quoted;
use crate::error::{Error, Result};

const INFER_BYTES: usize = 1 << 20;
const INFER_RECORDS: usize = 1000;

const INT: u16 = 1;
const BOOL: u16 = 1 << 1;
const DATE: u16 = 1 << 2;
const TIME: u16 = 1 << 3;
const TS_S: u16 = 1 << 4;
const TS_S_UTC: u16 = 1 << 5;
const TS_NS: u16 = 1 << 6;
const TS_NS_UTC: u16 = 1 << 7;
const FLOAT: u16 = 1 << 8;
const ANY: u16 = (1 << 9) - 1;

/// The type of the first kind in `kinds` (pyarrow's order); string when none is left.
fn kind_type(kinds: u16) -> DataType {
    let utc = || Some(Arc::from("UTC"));
    match kinds & kinds.wrapping_neg() {
        INT => DataType::Int64,
        BOOL => DataType::Boolean,
        DATE => DataType::Date32,
        TIME => DataType::Time32(TimeUnit::Second),
        TS_S => DataType::Timestamp(TimeUnit::Second, None),
        TS_S_UTC => DataType::Timestamp(TimeUnit::Second, utc()),
        TS_NS => DataType::Timestamp(TimeUnit::Nanosecond, None),
        TS_NS_UTC => DataType::Timestamp(TimeUnit::Nanosecond, utc()),
        FLOAT => DataType::Float64,
        _ => DataType::Utf8,
    }
}

/// Infers the schema of the file whose header (already parsed) is `header`.
pub(super) fn infer_schema(
    path: &Path,
    data: &[u8],
    delimiter: u8,
    header: &[String],
) -> Result<SchemaRef> {
    let mut sample_end = data.len().min(INFER_BYTES);
    if sample_end < data.len() {
        // Cut the sample at a record end so the last sampled record is whole (quote-aware,
        // reading only the sample).
        sample_end = scan_quoted(data, 0, INFER_BYTES).0;
    }
    let err = |e| Error::format(path, "schema inference", e);
    super::check_utf8(path, 0, &data[..sample_end])?;
    // arrow_csv splits the sample into fields (quotes and all); every column as text.
    let text = Schema::new(
        header
            .iter()
            .map(|name| Field::new(name, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let mut reader = arrow_csv::ReaderBuilder::new(Arc::new(text))
        .with_header(true)
        .with_delimiter(delimiter)
        .with_batch_size(INFER_RECORDS)
        .build(Cursor::new(&data[..sample_end]))
        .map_err(err)?;
    let sample = reader.next().transpose().map_err(err)?;
    let fields: Vec<Field> = header
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let data_type = match &sample {
                Some(batch) => column_type(batch.column(c).as_string::<i32>()),
                None => DataType::Null,
            };
            Field::new(name, data_type, true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The type pyarrow gives a column of these fields (an `arrow_csv` null is an empty field).
fn column_type(fields: &arrow_array::StringArray) -> DataType {
    let mut kinds = ANY;
    let mut seen = false;
    for field in fields.iter().flatten() {
        if !is_null_spelling(field.as_bytes()) {
            seen = true;
            kinds &= field_kinds(field);
        }
    }
    if seen {
        kind_type(kinds)
    } else {
        DataType::Null
    }
}

/// The kinds a non-null field converts to.
fn field_kinds(field: &str) -> u16 {
    let mut kinds = 0;
    // pyarrow and arrow_cast both allow spaces around numbers.
    let number = field.trim_matches([' ', '\t']);
    if is_integer(number) {
        if Int64Type::parse(number).is_some() {
            kinds |= INT;
        }
    } else if matches!(
        field,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
    ) {
        kinds |= BOOL;
    } else {
        kinds |= temporal_kinds(field.as_bytes(), field);
    }
    if is_float(number) && Float64Type::parse(number).is_some() {
        kinds |= FLOAT;
    }
    kinds
}

/// `-?[0-9]+`: pyarrow's integers (a `+` sign makes a float).
fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?`, or `inf`, `infinity`, `nan` in any case
/// with an optional sign.
fn is_float(s: &str) -> bool {
    let b = s.as_bytes();
    let b = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    if [&b"inf"[..], b"infinity", b"nan"]
        .iter()
        .any(|w| b.eq_ignore_ascii_case(w))
    {
        return true;
    }
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int_end = digits(0);
    let (mantissa_end, mantissa_digits) = if b.get(int_end) == Some(&b'.') {
        let end = digits(int_end + 1);
        (end, end - 1)
    } else {
        (int_end, int_end)
    };
    if mantissa_digits == 0 {
        return false;
    }
    match b.get(mantissa_end) {
        None => true,
        Some(b'e' | b'E') => {
            let mut from = mantissa_end + 1;
            if matches!(b.get(from), Some(b'+' | b'-')) {
                from += 1;
            }
            let end = digits(from);
            end > from && end == b.len()
        }
        Some(_) => false,
    }
}

/// Whether `arrow_cast` (which decodes timestamps to seconds) parses `s`.
fn parses_as_datetime(s: &str) -> bool {
    "+00:00"
        .parse::<Tz>()
        .is_ok_and(|utc| string_to_datetime(&utc, s).is_ok())
}

/// Two ASCII digits at `b[i..i + 2]` as a number, if they are digits.
fn two_digits(b: &[u8], i: usize) -> Option<u8> {
    match b.get(i..i + 2)? {
        [h, l] if h.is_ascii_digit() && l.is_ascii_digit() => Some((h - b'0') * 10 + (l - b'0')),
        _ => None,
    }
}

/// `hh:mm:ss` at `b[i..]` with pyarrow's ranges (no leap second).
fn is_hms(b: &[u8], i: usize) -> bool {
    matches!(
        (
            two_digits(b, i),
            b.get(i + 2),
            two_digits(b, i + 3),
            b.get(i + 5),
            two_digits(b, i + 6)
        ),
        (
            Some(0..=23),
            Some(b':'),
            Some(0..=59),
            Some(b':'),
            Some(0..=59)
        )
    )
}

/// `YYYY-MM-DD` (a real date), `hh:mm[:ss]`, or `YYYY-MM-DD[T ]hh:mm:ss[.f{1,9}]` with an
/// optional `Z` or `±hh[[:]mm]`.
fn temporal_kinds(b: &[u8], s: &str) -> u16 {
    match b.len() {
        5 | 8 => {
            let minutes = matches!(
                (two_digits(b, 0), b[2], two_digits(b, 3)),
                (Some(0..=23), b':', Some(0..=59))
            );
            let ok = minutes && (b.len() == 5 || (b[5] == b':' && is_hms(b, 0)));
            return if ok && Time32SecondType::parse(s).is_some() {
                TIME
            } else {
                0
            };
        }
        10 | 19.. => {}
        _ => return 0,
    }
    let date = b[..10].iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        _ => c.is_ascii_digit(),
    });
    if !date || Date32Type::parse(&s[..10]).is_none() {
        return 0;
    }
    let ns_fits = || string_to_timestamp_nanos(s).is_ok();
    if b.len() == 10 {
        return DATE | TS_S | if ns_fits() { TS_NS } else { 0 };
    }
    if !matches!(b[10], b'T' | b' ') || !is_hms(b, 11) {
        return 0;
    }
    let mut end = 19;
    let fraction = b.get(19) == Some(&b'.');
    if fraction {
        let n = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return 0;
        }
        end = 20 + n;
    }
    let zone = &b[end..];
    let utc = match zone {
        [] => false,
        [b'Z'] => true,
        [b'+' | b'-', rest @ ..] => {
            let ok = match rest.len() {
                2 => two_digits(rest, 0).is_some(),
                4 => two_digits(rest, 0).is_some() && two_digits(rest, 2).is_some(),
                5 => {
                    two_digits(rest, 0).is_some()
                        && rest[2] == b':'
                        && two_digits(rest, 3).is_some()
                }
                _ => false,
            };
            if !ok {
                return 0;
            }
            true
        }
        _ => return 0,
    };
    if !parses_as_datetime(s) {
        return 0;
    }
    let ns = if ns_fits() {
        if utc {
            TS_NS_UTC
        } else {
            TS_NS
        }
    } else {
        0
    };
    match (fraction, utc) {
        (true, _) => ns,
        (false, false) => TS_S | ns,
        (false, true) => TS_S_UTC | ns,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{CsvFile, DecodeOptions, FileReader};
    use super::*;

    fn inferred(values: &[&str]) -> DataType {
        let text = format!("a\n{}\n", values.join("\n"));
        let file = CsvFile::from_bytes(
            Path::new("t.csv"),
            Bytes::from(text.into_bytes()),
            &DecodeOptions::default(),
        )
        .unwrap();
        file.schema().field(0).data_type().clone()
    }

    #[test]
    fn inference_follows_pyarrow() {
        let ts = |unit, tz: Option<&str>| DataType::Timestamp(unit, tz.map(Arc::from));
        let (s, ns) = (TimeUnit::Second, TimeUnit::Nanosecond);
        let cases: Vec<(Vec<&str>, DataType)> = vec![
            (
                vec!["9223372036854775807", "-9223372036854775808"],
                DataType::Int64,
            ),
            (vec!["1", "9223372036854775808"], DataType::Float64),
            (vec!["-9223372036854775809", "2"], DataType::Float64),
            (vec!["1", "2.5"], DataType::Float64),
            (vec![" 5 ", "007", "-0"], DataType::Int64),
            (vec!["+5"], DataType::Float64),
            (vec!["1", "0"], DataType::Int64),
            (vec!["1", "NA", "null", ""], DataType::Int64),
            (
                vec!["1.5", "-1.#IND", "NaN", "nan", "-nan"],
                DataType::Float64,
            ),
            (
                vec!["Nan", "NAN", "inf", "-Infinity", ".5", "5.", "1e5"],
                DataType::Float64,
            ),
            (vec!["1.5e"], DataType::Utf8),
            (
                vec!["True", "FALSE", "true", "false", "N/A"],
                DataType::Boolean,
            ),
            (vec!["tRuE", "false"], DataType::Utf8),
            (vec!["NA", "null", ""], DataType::Null),
            (vec!["2021-01-01", "9999-12-31"], DataType::Date32),
            (vec!["2021-02-30"], DataType::Utf8),
            (vec!["2021-01-01", "5"], DataType::Utf8),
            (vec!["12:34:56", "00:00"], DataType::Time32(s)),
            (vec!["12:34:56.5"], DataType::Utf8),
            (vec!["24:00:00"], DataType::Utf8),
            (vec!["2021-01-01", "2021-01-01 00:00:00"], ts(s, None)),
            (
                vec!["2021-01-02T03:04:05", "1500-01-01 00:00:00"],
                ts(s, None),
            ),
            (
                vec!["2021-01-01 00:00:00.5", "2021-01-01T00:00:01"],
                ts(ns, None),
            ),
            (vec!["2021-01-01 00:00:00.000"], ts(ns, None)),
            (vec!["1500-01-01 00:00:00.5"], DataType::Utf8),
            (vec!["2021-01-01 00:00:00.1234567891"], DataType::Utf8),
            (
                vec!["2021-01-01 00:00:00Z", "2021-01-01T00:00:00+01:00"],
                ts(s, Some("UTC")),
            ),
            (
                vec!["2021-01-01T00:00:00+0100", "2021-01-01T00:00:00-05"],
                ts(s, Some("UTC")),
            ),
            (
                vec!["2021-01-01 00:00:00.5Z", "2021-01-01 00:00:00Z"],
                ts(ns, Some("UTC")),
            ),
            (
                vec!["2021-01-01 00:00:00Z", "2021-01-01 00:00:00"],
                DataType::Utf8,
            ),
            (
                vec!["2021-01-01 00:00:00.5", "2021-01-01 00:00:00Z"],
                DataType::Utf8,
            ),
            (vec!["2021-01-01T00:00:00 +01:00"], DataType::Utf8),
            (vec!["2021-01-01t00:00:00"], DataType::Utf8),
            (vec!["2021-01-01 23:59:60"], DataType::Utf8),
        ];
        for (values, want) in cases {
            assert_eq!(inferred(&values), want, "{values:?}");
        }
    }

    #[test]
    fn inference_reads_quoted_fields_and_reports_ragged_rows() {
        assert_eq!(inferred(&["\"1\"", "\"NA\"", "2"]), DataType::Int64);
        let err = CsvFile::from_bytes(
            Path::new("t.csv"),
            Bytes::from_static(b"a,b\n1,2\n3\n"),
            &DecodeOptions::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("schema inference"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn documented_differences_from_pyarrow() {
        // pyarrow: boolean, int64, timestamp[s], date32 and float64; strings here (module doc).
        for values in [
            &["1", "0", "true"][..],
            &["0x10"],
            &["2021-01-01 00:00"],
            &["2021-01-01 00"],
            &[" 2021-01-01"],
            &["nan(1)"],
        ] {
            assert_eq!(inferred(values), DataType::Utf8, "{values:?}");
        }
    }
}
