//! The Arrow schema of a Parquet file as pyarrow reads it. The parquet crate takes the embedded
//! Arrow schema (`ARROW:schema`) as a hint in a few places where pyarrow does not, so the same
//! file would load with other types (and, for INT96, other values) than
//! `pyarrow.parquet.read_table` gives. Here the crate's schema is adjusted leaf by leaf to
//! pyarrow's rules and handed back to the crate as the schema to read with:
//!
//! - INT96 timestamps are `timestamp[ns]` without a time zone whatever the hint says (pyarrow
//!   ignores the hint; values outside 1677..2262 wrap around as they do in pyarrow);
//! - a TIMESTAMP column keeps the unit it is stored in; the hint only restores the time zone of
//!   a column stored as adjusted to UTC (a `timestamp[s]` written by pyarrow is stored in ms and
//!   read as `timestamp[ms, tz]`);
//! - a `date64` hint on an INT32 DATE column is ignored (`date32`);
//! - a dictionary hint keeps its index type but takes the stored value type (`string`,
//!   `binary`), not a large or view variant;
//! - a UUID column is the `arrow.uuid` extension type (a `fixed_size_binary[16]` field marked
//!   with the extension name).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, TimeUnit};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::basic::{LogicalType, TimeUnit as ParquetUnit, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

/// Field metadata key naming an Arrow extension type.
const EXTENSION_NAME: &str = "ARROW:extension:name";
/// Field metadata key of an Arrow extension type's parameters.
const EXTENSION_METADATA: &str = "ARROW:extension:metadata";

/// The Arrow schema embedded in a footer (`ARROW:schema`), decoded once per file.
pub(super) enum Embedded {
    /// No embedded schema, or one the parquet crate does not decode either (it then ignores
    /// it).
    Absent,
    /// An embedded schema that arrow-ipc would panic converting: the file is read without it.
    Unconvertible,
    /// The embedded schema.
    Schema(Schema),
}

impl Embedded {
    /// Decodes the footer's embedded schema as the parquet crate does, checking it first.
    pub(super) fn of(meta: &ParquetMetaData) -> Embedded {
        let Some(bytes) = embedded_schema_text(meta).and_then(base64_decode) else {
            return Embedded::Absent;
        };
        // An IPC message, with or without the continuation marker and length.
        let message = match bytes.get(..4) {
            Some([0xff, 0xff, 0xff, 0xff]) if bytes.len() > 8 => &bytes[8..],
            _ => &bytes[..],
        };
        let Some(schema) = arrow_ipc::root_as_message(message)
            .ok()
            .and_then(|m| m.header_as_schema())
        else {
            return Embedded::Absent;
        };
        // arrow-ipc panics on schemas it cannot convert.
        if super::ipc::schema::check(schema).is_err() {
            return Embedded::Unconvertible;
        }
        Embedded::Schema(arrow_ipc::convert::fb_to_schema(schema))
    }

    /// Whether the parquet crate must be told to skip it.
    pub(super) fn skip(&self) -> bool {
        matches!(self, Embedded::Unconvertible)
    }
}

/// `meta` read with pyarrow's schema, or `meta` itself when the crate's schema already is
/// pyarrow's (or, defensively, when the crate refuses the adjusted schema). `embedded` is the
/// footer's embedded schema, [`Embedded::of`] its metadata.
pub(super) fn pyarrow_compatible(
    meta: ArrowReaderMetadata,
    embedded: &Embedded,
) -> ArrowReaderMetadata {
    let hint = match embedded {
        Embedded::Schema(schema) => Some(schema),
        _ => None,
    };
    let Some(schema) = adjusted_schema(meta.schema(), hint, meta.parquet_schema()) else {
        return meta;
    };
    let options = ArrowReaderOptions::new()
        .with_schema(Arc::new(schema))
        .with_skip_arrow_metadata(embedded.skip());
    ArrowReaderMetadata::try_new(meta.metadata().clone(), options).unwrap_or(meta)
}

/// The footer's `ARROW:schema` value as the parquet crate picks it: the last entry of that key
/// that has a value (it collects the key-value pairs into a map).
fn embedded_schema_text(meta: &ParquetMetaData) -> Option<&str> {
    meta.file_metadata()
        .key_value_metadata()?
        .iter()
        .rev()
        .filter(|kv| kv.key == "ARROW:schema")
        .find_map(|kv| kv.value.as_deref())
}

/// Decodes standard base64 (padding optional); `None` on any other byte or a lone last
/// character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const INVALID: u8 = 0xff;
    const VALUES: [u8; 256] = {
        let mut t = [INVALID; 256];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut i = 0;
        while i < 64 {
            t[alphabet[i] as usize] = i as u8;
            i += 1;
        }
        t
    };
    let digits = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(digits.len() / 4 * 3 + 2);
    let value = |c: u8| {
        Some(VALUES[usize::from(c)])
            .filter(|&v| v != INVALID)
            .map(u32::from)
    };
    let mut chunks = digits.chunks_exact(4);
    for c in &mut chunks {
        let n = (value(c[0])? << 18) | (value(c[1])? << 12) | (value(c[2])? << 6) | value(c[3])?;
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    match *chunks.remainder() {
        [] => {}
        [a, b] => out.push(((value(a)? << 2) | (value(b)? >> 4)) as u8),
        [a, b, c] => {
            let n = (value(a)? << 10) | (value(b)? << 4) | (value(c)? >> 2);
            out.extend_from_slice(&[(n >> 8) as u8, n as u8]);
        }
        _ => return None,
    }
    Some(out)
}

/// `schema` with every root field adjusted, or `None` when nothing changes. `hint` is the
/// embedded Arrow schema (the crate's schema loses the hint's time zone where units differ).
fn adjusted_schema(
    schema: &Schema,
    hint: Option<&Schema>,
    descr: &SchemaDescriptor,
) -> Option<Schema> {
    // A hint of another shape than the file's columns is no hint.
    let hint = hint.filter(|h| h.fields().len() == schema.fields().len());
    let mut leaves_of_root: Vec<Vec<ColumnDescPtr>> = vec![Vec::new(); schema.fields().len()];
    for leaf in 0..descr.num_columns() {
        leaves_of_root
            .get_mut(descr.get_column_root_idx(leaf))?
            .push(descr.column(leaf));
    }
    let mut changed = false;
    let fields = schema
        .fields()
        .iter()
        .zip(&leaves_of_root)
        .enumerate()
        .map(|(i, (field, leaves))| {
            let mut leaves = leaves.iter();
            let hint = hint.map(|h| h.field(i));
            let new = adjust_field(field, hint, &mut leaves)?;
            // Every leaf must have been matched to one Arrow leaf, else the walk misread the
            // field's shape and the crate's schema is kept.
            if leaves.next().is_some() {
                return None;
            }
            changed |= &new != field;
            Some(new)
        })
        .collect::<Option<Vec<FieldRef>>>()?;
    changed.then(|| Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `field` with its leaves adjusted; `hint` is the field's counterpart in the embedded schema,
/// `leaves` yields the field's Parquet leaves in order.
fn adjust_field<'a>(
    field: &FieldRef,
    hint: Option<&Field>,
    leaves: &mut impl Iterator<Item = &'a ColumnDescPtr>,
) -> Option<FieldRef> {
    let hint_child = hint.and_then(|h| match h.data_type() {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => Some(f.as_ref()),
        _ => None,
    });
    let data_type = match field.data_type() {
        DataType::List(f) => DataType::List(adjust_field(f, hint_child, leaves)?),
        DataType::LargeList(f) => DataType::LargeList(adjust_field(f, hint_child, leaves)?),
        DataType::ListView(f) => DataType::ListView(adjust_field(f, hint_child, leaves)?),
        DataType::LargeListView(f) => DataType::LargeListView(adjust_field(f, hint_child, leaves)?),
        DataType::FixedSizeList(f, n) => {
            DataType::FixedSizeList(adjust_field(f, hint_child, leaves)?, *n)
        }
        DataType::Map(f, sorted) => DataType::Map(adjust_field(f, hint_child, leaves)?, *sorted),
        DataType::Struct(fields) => {
            let hints = hint.and_then(|h| match h.data_type() {
                DataType::Struct(hs) if hs.len() == fields.len() => Some(hs),
                _ => None,
            });
            DataType::Struct(
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| adjust_field(f, hints.map(|hs| hs[i].as_ref()), leaves))
                    .collect::<Option<Fields>>()?,
            )
        }
        leaf_type => {
            let leaf = leaves.next()?;
            let hint_type = hint.map(|h| h.data_type());
            let mut out =
                Field::clone(field).with_data_type(leaf_data_type(leaf_type, hint_type, leaf));
            if is_uuid(leaf) && !field.metadata().contains_key(EXTENSION_NAME) {
                let mut metadata: HashMap<String, String> = field.metadata().clone();
                metadata.insert(EXTENSION_NAME.to_string(), "arrow.uuid".to_string());
                metadata.insert(EXTENSION_METADATA.to_string(), String::new());
                out = out.with_metadata(metadata);
            }
            return Some(Arc::new(out));
        }
    };
    Some(Arc::new(Field::clone(field).with_data_type(data_type)))
}

/// The Arrow type pyarrow gives the leaf `leaf` that the crate reads as `data_type` (with the
/// embedded schema's type `hint`).
fn leaf_data_type(data_type: &DataType, hint: Option<&DataType>, leaf: &ColumnDescPtr) -> DataType {
    match data_type {
        DataType::Timestamp(_, _) if leaf.physical_type() == PhysicalType::INT96 => {
            DataType::Timestamp(TimeUnit::Nanosecond, None)
        }
        DataType::Timestamp(_, _) => match leaf.logical_type_ref() {
            Some(LogicalType::Timestamp(ts)) if leaf.physical_type() == PhysicalType::INT64 => {
                let unit = match ts.unit {
                    ParquetUnit::MILLIS => TimeUnit::Millisecond,
                    ParquetUnit::MICROS => TimeUnit::Microsecond,
                    ParquetUnit::NANOS => TimeUnit::Nanosecond,
                };
                let hint_tz = match hint {
                    Some(DataType::Timestamp(_, Some(tz))) => Some(tz.clone()),
                    _ => None,
                };
                let tz = ts
                    .is_adjusted_to_u_t_c
                    .then(|| hint_tz.unwrap_or_else(|| "UTC".into()));
                DataType::Timestamp(unit, tz)
            }
            _ => data_type.clone(),
        },
        DataType::Date64 if leaf.physical_type() == PhysicalType::INT32 => DataType::Date32,
        DataType::Dictionary(key, value) if leaf.physical_type() == PhysicalType::BYTE_ARRAY => {
            let value = match value.as_ref() {
                DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
                DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            DataType::Dictionary(key.clone(), Box::new(value))
        }
        other => other.clone(),
    }
}

/// Whether `leaf` is a UUID column (a 16-byte FIXED_LEN_BYTE_ARRAY annotated UUID).
fn is_uuid(leaf: &ColumnDescPtr) -> bool {
    matches!(leaf.logical_type_ref(), Some(LogicalType::Uuid))
        && leaf.physical_type() == PhysicalType::FIXED_LEN_BYTE_ARRAY
        && leaf.type_length() == 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        assert_eq!(base64_decode("/+8A").unwrap(), [0xff, 0xef, 0x00]);
        assert_eq!(base64_decode("TW\nFu"), None);
    }

    #[test]
    fn a_schema_pyarrow_reads_alike_is_left_alone() {
        let descr = SchemaDescriptor::new(Arc::new(
            parquet::schema::parser::parse_message_type(
                "message m { required int64 a; optional binary s (STRING); }",
            )
            .unwrap(),
        ));
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]);
        assert_eq!(adjusted_schema(&schema, None, &descr), None);
    }
}
