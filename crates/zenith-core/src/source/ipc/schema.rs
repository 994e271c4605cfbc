//! The schema of an IPC file or stream, and the byte order of its buffers. arrow-ipc 59 reads
//! buffers as they lie: its `FileDecoder` and `StreamDecoder` never look at the schema's
//! endianness (so a big-endian body decodes to byte-swapped values), its `fb_to_schema` panics on
//! a big-endian decimal and on a schema without fields, and only its `FileReader` refuses
//! big-endian input. So the schema is converted here, and a big-endian file's fixed-width columns
//! are swapped to native order after decoding, as pyarrow does; columns of other types are refused.

use std::collections::HashMap;

use arrow_array::{make_array, ArrayRef, RecordBatch};
use arrow_buffer::{Buffer, MutableBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// A converted schema and whether its buffers are in the other byte order than this machine's.
pub(super) struct IpcSchema {
    /// The Arrow schema.
    pub schema: SchemaRef,
    /// The buffers must be byte-swapped to native order after decoding.
    pub swap: bool,
}

/// Converts a flatbuffer schema without arrow-ipc's panics; `Err` is the message for the user.
pub(super) fn convert(fb: arrow_ipc::Schema) -> Result<IpcSchema, String> {
    check(fb)?;
    let fb_fields = fb.fields().ok_or("the schema has no field list")?;
    let swap = !fb.endianness().equals_to_target_endianness();
    let mut fields = Vec::with_capacity(fb_fields.len());
    for fb_field in fb_fields {
        let field = Field::from(fb_field);
        if swap && !swappable(field.data_type()) {
            return Err(format!(
                "column {:?} of type {} is stored big-endian; only fixed-width columns \
                 (integers, floats, decimals, temporals, booleans) of big-endian files are read",
                field.name(),
                field.data_type()
            ));
        }
        fields.push(field);
    }
    let metadata: HashMap<String, String> = fb
        .custom_metadata()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv.key()?.to_string(), kv.value()?.to_string())))
        .collect();
    Ok(IpcSchema {
        schema: std::sync::Arc::new(Schema::new_with_metadata(fields, metadata)),
        swap,
    })
}

/// Checks a flatbuffer schema for everything arrow-ipc 59's conversion (`fb_to_schema`,
/// `Field::from`) would panic on instead of returning an error: a missing field list, a type
/// table missing for its tag, integer or decimal widths, float precisions, date, time,
/// timestamp, interval and duration units it does not know, lists and maps without their one
/// child, union modes and type ids, unknown type tags. Every schema it accepts converts.
pub(crate) fn check(fb: arrow_ipc::Schema) -> Result<(), String> {
    let fields = fb.fields().ok_or("the schema has no field list")?;
    for (i, field) in fields.iter().enumerate() {
        let name = field.name().unwrap_or_default();
        check_field(field, 0).map_err(|e| format!("column {i} ({name:?}): {e}"))?;
    }
    Ok(())
}

/// Nesting deeper than this is refused (the flatbuffer verifier allows 64 table levels).
const MAX_DEPTH: usize = 64;

fn check_field(field: arrow_ipc::Field<'_>, depth: usize) -> Result<(), String> {
    use arrow_ipc::{DateUnit, IntervalUnit, Precision, TimeUnit, Type, UnionMode};
    if depth > MAX_DEPTH {
        return Err(format!("types nested more than {MAX_DEPTH} deep"));
    }
    let missing = |what: &str| format!("a {what} type without its parameters");
    let int_width = |width: i32| matches!(width, 8 | 16 | 32 | 64);
    if let Some(dictionary) = field.dictionary() {
        let index = dictionary
            .indexType()
            .ok_or("a dictionary without an index type")?;
        if !int_width(index.bitWidth()) {
            return Err(format!("a dictionary index of {} bits", index.bitWidth()));
        }
    }
    let children = field.children();
    let child_count = children.map_or(0, |c| c.len());
    let one_child = |what: &str| -> Result<(), String> {
        if child_count == 1 {
            Ok(())
        } else {
            Err(format!("a {what} with {child_count} child fields, not one"))
        }
    };
    let unit_ok = |unit: TimeUnit| {
        matches!(
            unit,
            TimeUnit::SECOND | TimeUnit::MILLISECOND | TimeUnit::MICROSECOND | TimeUnit::NANOSECOND
        )
    };
    match field.type_type() {
        Type::Null
        | Type::Bool
        | Type::Binary
        | Type::BinaryView
        | Type::LargeBinary
        | Type::Utf8
        | Type::Utf8View
        | Type::LargeUtf8
        | Type::Struct_ => {}
        Type::Int => {
            let int = field.type_as_int().ok_or_else(|| missing("Int"))?;
            if !int_width(int.bitWidth()) {
                return Err(format!("an integer of {} bits", int.bitWidth()));
            }
        }
        Type::FixedSizeBinary => {
            field
                .type_as_fixed_size_binary()
                .ok_or_else(|| missing("FixedSizeBinary"))?;
        }
        Type::FloatingPoint => {
            let float = field
                .type_as_floating_point()
                .ok_or_else(|| missing("FloatingPoint"))?;
            if !matches!(
                float.precision(),
                Precision::HALF | Precision::SINGLE | Precision::DOUBLE
            ) {
                return Err(format!("a float of precision {:?}", float.precision()));
            }
        }
        Type::Date => {
            let date = field.type_as_date().ok_or_else(|| missing("Date"))?;
            if !matches!(date.unit(), DateUnit::DAY | DateUnit::MILLISECOND) {
                return Err(format!("a date of unit {:?}", date.unit()));
            }
        }
        Type::Time => {
            let time = field.type_as_time().ok_or_else(|| missing("Time"))?;
            if !matches!(
                (time.bitWidth(), time.unit()),
                (32, TimeUnit::SECOND | TimeUnit::MILLISECOND)
                    | (64, TimeUnit::MICROSECOND | TimeUnit::NANOSECOND)
            ) {
                return Err(format!(
                    "a time of {} bits in unit {:?}",
                    time.bitWidth(),
                    time.unit()
                ));
            }
        }
        Type::Timestamp => {
            let ts = field
                .type_as_timestamp()
                .ok_or_else(|| missing("Timestamp"))?;
            if !unit_ok(ts.unit()) {
                return Err(format!("a timestamp of unit {:?}", ts.unit()));
            }
        }
        Type::Duration => {
            let d = field
                .type_as_duration()
                .ok_or_else(|| missing("Duration"))?;
            if !unit_ok(d.unit()) {
                return Err(format!("a duration of unit {:?}", d.unit()));
            }
        }
        Type::Interval => {
            let i = field
                .type_as_interval()
                .ok_or_else(|| missing("Interval"))?;
            if !matches!(
                i.unit(),
                IntervalUnit::YEAR_MONTH | IntervalUnit::DAY_TIME | IntervalUnit::MONTH_DAY_NANO
            ) {
                return Err(format!("an interval of unit {:?}", i.unit()));
            }
        }
        Type::List => one_child("list")?,
        Type::LargeList => one_child("large list")?,
        Type::ListView => one_child("list view")?,
        Type::LargeListView => one_child("large list view")?,
        Type::FixedSizeList => {
            one_child("fixed-size list")?;
            field
                .type_as_fixed_size_list()
                .ok_or_else(|| missing("FixedSizeList"))?;
        }
        Type::Map => {
            one_child("map")?;
            field.type_as_map().ok_or_else(|| missing("Map"))?;
        }
        Type::RunEndEncoded => {
            if child_count != 2 {
                return Err(format!(
                    "a run-end encoded type with {child_count} child fields, not two"
                ));
            }
        }
        Type::Decimal => {
            let d = field.type_as_decimal().ok_or_else(|| missing("Decimal"))?;
            if u8::try_from(d.precision()).is_err() || i8::try_from(d.scale()).is_err() {
                return Err(format!(
                    "a decimal of precision {} and scale {}",
                    d.precision(),
                    d.scale()
                ));
            }
            if !matches!(d.bitWidth(), 32 | 64 | 128 | 256) {
                return Err(format!("a decimal of {} bits", d.bitWidth()));
            }
        }
        Type::Union => {
            let union = field.type_as_union().ok_or_else(|| missing("Union"))?;
            if !matches!(union.mode(), UnionMode::Sparse | UnionMode::Dense) {
                return Err(format!("a union of mode {:?}", union.mode()));
            }
            // Type ids as arrow reads them (i8), non-negative and distinct, one per child;
            // without ids the children are numbered 0.., which must fit an i8.
            match union.typeIds() {
                None if child_count > 128 => {
                    return Err(format!("a union of {child_count} children (at most 128)"));
                }
                None => {}
                Some(ids) => {
                    let mut seen = 0u128;
                    for id in ids.iter().map(|i| i as i8) {
                        if id < 0 || seen & (1u128 << id) != 0 {
                            return Err(format!("a union with type id {id} negative or repeated"));
                        }
                        seen |= 1u128 << id;
                    }
                    if ids.len() != child_count {
                        return Err(format!(
                            "a union of {child_count} children with {} type ids",
                            ids.len()
                        ));
                    }
                }
            }
        }
        other => return Err(format!("a type arrow does not read ({other:?})")),
    }
    for child in children.into_iter().flatten() {
        let name = child.name().unwrap_or_default();
        check_field(child, depth + 1).map_err(|e| format!("child {name:?}: {e}"))?;
    }
    Ok(())
}

/// Types whose only data buffer holds fixed-width values, which swapping each value fixes.
fn swappable(data_type: &DataType) -> bool {
    data_type.is_primitive() && !matches!(data_type, DataType::Interval(_))
        || matches!(data_type, DataType::Boolean | DataType::Null)
}

/// Swaps every column of `batch` from the other byte order to native order.
pub(super) fn swap_batch(batch: RecordBatch) -> Result<RecordBatch, String> {
    let columns = batch
        .columns()
        .iter()
        .map(swap_array)
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| e.to_string())
}

fn swap_array(array: &ArrayRef) -> Result<ArrayRef, String> {
    let width = match array.data_type().primitive_width() {
        Some(width) if width > 1 => width,
        _ => return Ok(array.clone()),
    };
    let data = array.to_data();
    let buffers = data
        .buffers()
        .iter()
        .map(|b| swap_values(b, width))
        .collect();
    let swapped = data
        .into_builder()
        .buffers(buffers)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(make_array(swapped))
}

/// Reverses the bytes of each `width`-byte value; a trailing partial value (padding) is kept.
fn swap_values(buffer: &Buffer, width: usize) -> Buffer {
    let mut out = MutableBuffer::from_len_zeroed(buffer.len());
    let chunks = buffer.chunks_exact(width);
    let tail = chunks.remainder();
    let whole = buffer.len() - tail.len();
    for (dst, src) in out.as_slice_mut().chunks_exact_mut(width).zip(chunks) {
        dst.copy_from_slice(src);
        dst.reverse();
    }
    out.as_slice_mut()[whole..].copy_from_slice(tail);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_reversed_and_padding_kept() {
        let b = Buffer::from(vec![1u8, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(swap_values(&b, 4).as_slice(), &[4, 3, 2, 1, 8, 7, 6, 5, 9]);
        assert!(swappable(&DataType::Decimal128(10, 2)));
        assert!(swappable(&DataType::Boolean));
        assert!(!swappable(&DataType::Utf8));
        assert!(!swappable(&DataType::Interval(
            arrow_schema::IntervalUnit::MonthDayNano
        )));
    }
}
