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
