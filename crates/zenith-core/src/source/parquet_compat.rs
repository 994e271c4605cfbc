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

/// `meta` read with pyarrow's schema, or `meta` itself when the crate's schema already is
/// pyarrow's (or, defensively, when the crate refuses the adjusted schema).
pub(super) fn pyarrow_compatible(meta: ArrowReaderMetadata) -> ArrowReaderMetadata {
    let hint = embedded_schema(meta.metadata());
    let Some(schema) = adjusted_schema(meta.schema(), hint.as_ref(), meta.parquet_schema()) else {
        return meta;
    };
    let mut options = ArrowReaderOptions::new().with_schema(Arc::new(schema));
    if !embedded_schema_converts(meta.metadata()) {
        options = options.with_skip_arrow_metadata(true);
    }
    ArrowReaderMetadata::try_new(meta.metadata().clone(), options).unwrap_or(meta)
}

/// The Arrow schema embedded in the footer (`ARROW:schema`), when there is one that decodes.
fn embedded_schema(meta: &ParquetMetaData) -> Option<Schema> {
    let bytes = base64_decode(embedded_schema_text(meta)?)?;
    // An IPC message, with or without the continuation marker and length.
    let message = match bytes.get(..4) {
        Some([0xff, 0xff, 0xff, 0xff]) => bytes.get(8..)?,
        _ => &bytes[..],
    };
    let schema = arrow_ipc::root_as_message(message)
        .ok()?
        .header_as_schema()?;
    // arrow-ipc panics on schemas it cannot convert; those are left out, as undecodable.
    super::ipc::schema::check(schema).ok()?;
    Some(arrow_ipc::convert::fb_to_schema(schema))
}

/// Whether the footer's embedded Arrow schema (`ARROW:schema`), if any, is one that arrow-ipc
/// converts without panicking. The parquet crate decodes it while building the Arrow schema
/// and panics inside arrow-ipc on, say, an unknown float precision; a file whose embedded
/// schema fails this check is read without it, from the Parquet schema alone (as the crate
/// does when the embedded schema does not decode at all).
pub(super) fn embedded_schema_converts(meta: &ParquetMetaData) -> bool {
    let Some(bytes) = embedded_schema_text(meta).and_then(base64_decode) else {
        return true;
    };
    let message = match bytes.get(..4) {
        Some([0xff, 0xff, 0xff, 0xff]) => bytes.get(8..).unwrap_or_default(),
        _ => &bytes[..],
    };
    match arrow_ipc::root_as_message(message) {
        Ok(message) => match message.header_as_schema() {
            Some(schema) => super::ipc::schema::check(schema).is_ok(),
            None => true,
        },
        // Not a message: the crate ignores it.
        Err(_) => true,
    }
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

/// Decodes standard base64 (padding optional); `None` on any other byte.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text.trim_end_matches('=').as_bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
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
