//! A direct decoder for the most common column chunk of ML tables: a flat, fixed-width numeric
//! column (int32, int64, float, double) whose data pages are PLAIN-encoded and hold no nulls.
//!
//! The general Arrow reader zero-fills and then copies every value into its own buffer after
//! the page was decompressed; here the decompressed page *is* the column's values, so a chunk
//! of one page becomes the Arrow buffer without another pass, and a chunk of several pages is
//! one copy. Anything else (dictionary pages, other encodings, a null, nested or converted
//! types) is left to the general reader, column by column.

use std::sync::Arc;

use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{ArrayRef, ArrowPrimitiveType, PrimitiveArray};
use arrow_buffer::{Buffer, ScalarBuffer};
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::basic::{Compression, ConvertedType, Encoding, LogicalType, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::errors::ParquetError;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::ChunkReader;
use parquet::file::serialized_reader::SerializedPageReader;

/// Whether a column chunk may take the direct path for the Arrow type `data_type`, judged from
/// the footer alone (its pages are checked again while decoding).
pub(super) fn eligible(chunk: &ColumnChunkMetaData, data_type: &DataType) -> bool {
    let descr = chunk.column_descr();
    let physical = matches!(
        (descr.physical_type(), data_type),
        (PhysicalType::INT32, DataType::Int32)
            | (PhysicalType::INT64, DataType::Int64)
            | (PhysicalType::FLOAT, DataType::Float32)
            | (PhysicalType::DOUBLE, DataType::Float64)
    );
    let logical = match descr.logical_type_ref() {
        None => true,
        Some(LogicalType::Integer(int)) => {
            int.is_signed
                && matches!(
                    (int.bit_width, data_type),
                    (32, DataType::Int32) | (64, DataType::Int64)
                )
        }
        Some(_) => false,
    };
    let converted = matches!(
        descr.converted_type(),
        ConvertedType::NONE | ConvertedType::INT_32 | ConvertedType::INT_64
    );
    cfg!(target_endian = "little")
        && physical
        && logical
        && converted
        && descr.path().parts().len() == 1
        && descr.max_rep_level() == 0
        && descr.max_def_level() <= 1
        && chunk.dictionary_page_offset().is_none()
        && chunk
            .encodings()
            .all(|e| matches!(e, Encoding::PLAIN | Encoding::RLE))
}

/// Decodes an [`eligible`] column chunk of `rows` rows. `Ok(None)` when a page turns out not
/// to fit the direct path (the caller then uses the general reader).
pub(super) fn decode<R: ChunkReader + 'static>(
    input: Arc<R>,
    chunk: &ColumnChunkMetaData,
    data_type: &DataType,
    rows: usize,
) -> Result<Option<ArrayRef>, ParquetError> {
    let pages = SerializedPageReader::new(input, chunk, rows, None)?;
    let max_def = chunk.column_descr().max_def_level();
    // A decompressed page is a fresh buffer the column may keep; an uncompressed page is a
    // view of the input (a mapped file, say), which a column must not keep: the file may be
    // rewritten while the table lives.
    let owned = chunk.compression() != Compression::UNCOMPRESSED;
    Ok(match data_type {
        DataType::Int32 => decode_typed::<Int32Type>(pages, max_def, rows, owned)?,
        DataType::Int64 => decode_typed::<Int64Type>(pages, max_def, rows, owned)?,
        DataType::Float32 => decode_typed::<Float32Type>(pages, max_def, rows, owned)?,
        DataType::Float64 => decode_typed::<Float64Type>(pages, max_def, rows, owned)?,
        _ => None,
    })
}

fn decode_typed<T: ArrowPrimitiveType>(
    mut pages: impl PageReader,
    max_def: i16,
    rows: usize,
    owned: bool,
) -> Result<Option<ArrayRef>, ParquetError> {
    let width = std::mem::size_of::<T::Native>();
    let mut parts: Vec<Bytes> = Vec::with_capacity(1);
    let mut values = 0usize;
    while let Some(page) = pages.get_next_page()? {
        let (buf, n, encoding, levels) = match page {
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                ..
            } => {
                let n = num_values as usize;
                let levels = if max_def == 0 {
                    0
                } else if def_level_encoding == Encoding::RLE {
                    match v1_levels_all_present(&buf, n) {
                        Some(len) => len,
                        None => return Ok(None),
                    }
                } else {
                    return Ok(None);
                };
                (buf, n, encoding, levels)
            }
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                num_nulls,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                if num_nulls != 0 {
                    return Ok(None);
                }
                let levels = def_levels_byte_len as usize + rep_levels_byte_len as usize;
                (buf, num_values as usize, encoding, levels)
            }
            Page::DictionaryPage { .. } => return Ok(None),
        };
        if encoding != Encoding::PLAIN {
            return Ok(None);
        }
        let body = n.checked_mul(width).and_then(|b| b.checked_add(levels));
        if body.is_none_or(|end| end > buf.len()) {
            return Err(ParquetError::EOF(format!(
                "data page of {n} values holds {} bytes, fewer than {} needed",
                buf.len(),
                n.saturating_mul(width).saturating_add(levels)
            )));
        }
        if n > 0 {
            parts.push(buf.slice(levels..levels + n * width));
        }
        values += n;
    }
    if values != rows {
        return Err(ParquetError::General(format!(
            "column chunk holds {values} values, the row group has {rows} rows"
        )));
    }
    let aligned = |b: &Bytes| b.as_ptr().align_offset(std::mem::align_of::<T::Native>()) == 0;
    let buffer = match parts.as_slice() {
        [] => Buffer::from(Vec::<u8>::new()),
        [one] if owned && aligned(one) => Buffer::from(one.clone()),
        _ => {
            let mut out: Vec<T::Native> = Vec::with_capacity(rows);
            let dst = out.as_mut_ptr().cast::<u8>();
            let mut at = 0usize;
            for p in &parts {
                // SAFETY: the parts add up to `rows * width` bytes (checked above), which is the
                // capacity of `out`; the source and destination do not overlap.
                unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), dst.add(at), p.len()) };
                at += p.len();
            }
            // SAFETY: all `rows` values were written above; every bit pattern is a valid
            // i32/i64/f32/f64 and the page bytes are little-endian like the target.
            unsafe { out.set_len(rows) };
            Buffer::from_vec(out)
        }
    };
    let values = ScalarBuffer::<T::Native>::new(buffer, 0, rows);
    Ok(Some(Arc::new(PrimitiveArray::<T>::new(values, None))))
}

/// For a v1 data page whose definition levels (bit width 1) are RLE/bit-packed hybrid with a
/// 4-byte length prefix: the byte length of the levels section when all `n` levels are 1 (no
/// nulls), `None` otherwise.
fn v1_levels_all_present(buf: &[u8], n: usize) -> Option<usize> {
    let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let mut data = buf.get(4..4 + len)?;
    let mut seen = 0usize;
    while seen < n {
        let (header, used) = read_uleb128(data)?;
        data = &data[used..];
        let count = usize::try_from(header >> 1).ok()?;
        if header & 1 == 0 {
            // RLE run: `count` copies of one value stored in one byte (bit width 1).
            if count == 0 || *data.first()? != 1 {
                return None;
            }
            data = &data[1..];
            seen += count;
        } else {
            // Bit-packed run of `count` groups of 8 values, one byte per group.
            let groups = data.get(..count)?;
            let take = (n - seen).min(count * 8);
            let full = take / 8;
            if groups[..full].iter().any(|&b| b != 0xff) {
                return None;
            }
            let rest = take % 8;
            if rest > 0 && groups[full] & ((1u8 << rest) - 1) != (1u8 << rest) - 1 {
                return None;
            }
            data = &data[count..];
            seen += count * 8;
        }
    }
    Some(4 + len)
}

fn read_uleb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_len(levels: &[u8]) -> Vec<u8> {
        let mut out = (levels.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(levels);
        out
    }

    #[test]
    fn rle_run_of_ones_is_all_present() {
        // 300 values: header 300 << 1 = 600 = uleb128 [0xd8, 0x04], value 1.
        let buf = with_len(&[0xd8, 0x04, 0x01]);
        assert_eq!(v1_levels_all_present(&buf, 300), Some(7));
    }

    #[test]
    fn rle_run_of_zeros_has_nulls() {
        let buf = with_len(&[0x08, 0x00]);
        assert_eq!(v1_levels_all_present(&buf, 4), None);
    }

    #[test]
    fn bit_packed_levels_check_only_the_values_present() {
        // One group of 8 with 5 values, all set; padding bits are zero.
        let buf = with_len(&[0x03, 0b0001_1111]);
        assert_eq!(v1_levels_all_present(&buf, 5), Some(6));
        // Value 2 is null.
        let buf = with_len(&[0x03, 0b0001_1011]);
        assert_eq!(v1_levels_all_present(&buf, 5), None);
    }

    /// Writes `batch` as one row group with small pages and returns (file bytes, metadata).
    fn parquet_of(
        batch: &arrow_array::RecordBatch,
        compression: Compression,
    ) -> (Bytes, parquet::file::metadata::ParquetMetaData) {
        let props = parquet::file::properties::WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_data_page_size_limit(1024)
            .set_write_batch_size(100)
            .set_compression(compression)
            .build();
        let mut out = Vec::new();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        let bytes = Bytes::from(out);
        let meta = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        (bytes, meta)
    }

    #[test]
    fn direct_path_decodes_plain_columns_and_declines_nulls() {
        use arrow_array::{Array, Float32Array, Int64Array};
        let n = 5000;
        let floats = Float32Array::from_iter_values((0..n).map(|i| i as f32 * 0.5 - 7.0));
        let ints = Int64Array::from_iter_values((0..n).map(|i| i64::from(i) * 1_000_003));
        let nulls = Int64Array::from_iter((0..n).map(|i| (i % 3 != 0).then_some(i64::from(i))));
        let batch = arrow_array::RecordBatch::try_from_iter([
            ("f", Arc::new(floats.clone()) as ArrayRef),
            ("i", Arc::new(ints.clone()) as ArrayRef),
            ("n", Arc::new(nulls) as ArrayRef),
        ])
        .unwrap();
        let (bytes, meta) = parquet_of(&batch, Compression::SNAPPY);
        let rg = meta.row_group(0);
        let input = Arc::new(bytes);
        let rows = n as usize;
        assert!(
            rg.column(0).compressed_size() > 1024,
            "several pages per chunk"
        );
        for (col, expected) in [(0, &floats as &dyn Array), (1, &ints as &dyn Array)] {
            let dt = expected.data_type();
            assert!(eligible(rg.column(col), dt));
            let got = decode(input.clone(), rg.column(col), dt, rows)
                .unwrap()
                .expect("direct");
            assert_eq!(&got.to_data(), &expected.to_data());
        }
        // Nulls: eligible from the footer, declined by the page's levels.
        assert!(eligible(rg.column(2), &DataType::Int64));
        assert!(decode(input.clone(), rg.column(2), &DataType::Int64, rows)
            .unwrap()
            .is_none());
        // A different Arrow type is not eligible.
        assert!(!eligible(rg.column(1), &DataType::Int32));
        // A wrong row count is an error, not a short column.
        assert!(decode(input, rg.column(0), &DataType::Float32, rows + 1).is_err());
    }

    #[test]
    fn uncompressed_pages_are_copied_out_of_the_input() {
        use arrow_array::{Array, Float64Array};
        let n = 100; // 800 bytes: one page
        let values = Float64Array::from_iter_values((0..n).map(f64::from));
        let batch =
            arrow_array::RecordBatch::try_from_iter([("v", Arc::new(values.clone()) as ArrayRef)])
                .unwrap();
        let (file, _) = parquet_of(&batch, Compression::UNCOMPRESSED);
        // Place the file at every alignment, so that for one of them the page's values are
        // aligned where they lie and could have been kept in place.
        for shift in 0..8 {
            let mut padded = vec![0u8; shift];
            padded.extend_from_slice(&file);
            let input = Bytes::from(padded).slice(shift..);
            let meta = parquet::file::metadata::ParquetMetaDataReader::new()
                .parse_and_finish(&input)
                .unwrap();
            let chunk = meta.row_group(0).column(0);
            let (lo, hi) = (
                input.as_ptr() as usize,
                input.as_ptr() as usize + input.len(),
            );
            let got = decode(
                Arc::new(input.clone()),
                chunk,
                &DataType::Float64,
                n as usize,
            )
            .unwrap()
            .expect("direct");
            assert_eq!(&got.to_data(), &values.to_data());
            let at = got.to_data().buffers()[0].as_ptr() as usize;
            assert!(
                !(lo..hi).contains(&at),
                "column points into the input (shift {shift})"
            );
        }
    }

    #[test]
    fn truncated_levels_are_rejected() {
        assert_eq!(v1_levels_all_present(&[9, 0, 0, 0, 1], 3), None);
        assert_eq!(v1_levels_all_present(&[], 3), None);
    }
}
