//! A direct decoder for the most common column chunk of ML tables: a flat, fixed-width numeric
//! column (int32, int64, float, double) without nulls whose data pages are PLAIN-encoded or
//! dictionary-encoded (RLE_DICTIONARY / PLAIN_DICTIONARY, what pyarrow writes by default while
//! the dictionary fits, then PLAIN for the rest of the chunk).
//!
//! The general Arrow reader zero-fills and then copies every value into its own buffer after
//! the page was decompressed, and for a dictionary column first builds the keys and then
//! gathers. Here the decompressed PLAIN page *is* the column's values, so a chunk of one page
//! becomes the Arrow buffer without another pass, a chunk of several pages is one copy, and a
//! dictionary page's indices are unpacked and gathered from the dictionary straight into the
//! column's buffer in one pass. Anything else (other encodings, a null, nested or converted
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
use parquet::schema::types::ColumnDescriptor;

/// Whether a column chunk may take the direct path for the Arrow type `data_type`, judged from
/// the footer alone (its pages are checked again while decoding).
pub(super) fn eligible(chunk: &ColumnChunkMetaData, data_type: &DataType) -> bool {
    let descr = chunk.column_descr();
    leaf_matches(descr, data_type)
        && descr.path().parts().len() == 1
        && descr.max_rep_level() == 0
        && descr.max_def_level() <= 1
        && encodings_handled(chunk)
}

/// Whether a leaf column's physical and logical types store exactly the Arrow type `data_type`
/// (int32, int64, float, double; signed integers of their own width, no conversion), on a
/// little-endian target (PLAIN values are little-endian).
pub(super) fn leaf_matches(descr: &ColumnDescriptor, data_type: &DataType) -> bool {
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
    cfg!(target_endian = "little") && physical && logical && converted
}

/// Whether every encoding of the chunk is one the direct paths decode (PLAIN values,
/// dictionary indices, RLE levels).
pub(super) fn encodings_handled(chunk: &ColumnChunkMetaData) -> bool {
    chunk.encodings().all(|e| {
        matches!(
            e,
            Encoding::PLAIN | Encoding::RLE | Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
        )
    })
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

/// The values section of one data page.
enum PagePart {
    /// PLAIN values: the bytes of `n` little-endian values.
    Plain(Bytes),
    /// Dictionary indices of `n` values: a bit-width byte, then RLE/bit-packed hybrid runs.
    Indexed(Bytes, usize),
}

fn decode_typed<T: ArrowPrimitiveType>(
    mut pages: impl PageReader,
    max_def: i16,
    rows: usize,
    owned: bool,
) -> Result<Option<ArrayRef>, ParquetError> {
    let width = std::mem::size_of::<T::Native>();
    let mut owned = owned;
    let mut parts: Vec<PagePart> = Vec::with_capacity(1);
    let mut dictionary: Option<ScalarBuffer<T::Native>> = None;
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
                is_compressed,
                ..
            } => {
                if num_nulls != 0 {
                    return Ok(None);
                }
                // A version 2 page may be stored uncompressed in a compressed chunk: its bytes
                // are then a view of the input, not a fresh buffer.
                owned &= is_compressed;
                let levels = def_levels_byte_len as usize + rep_levels_byte_len as usize;
                (buf, num_values as usize, encoding, levels)
            }
            Page::DictionaryPage {
                buf,
                num_values,
                encoding,
                ..
            } => {
                if !read_dictionary_page(&mut dictionary, &buf, num_values, encoding)? {
                    return Ok(None);
                }
                continue;
            }
        };
        if buf.len() < levels {
            return Err(ParquetError::EOF(format!(
                "data page of {} bytes is shorter than its {levels} bytes of levels",
                buf.len()
            )));
        }
        match encoding {
            Encoding::PLAIN => {
                let body = n.checked_mul(width).and_then(|b| b.checked_add(levels));
                if body.is_none_or(|end| end > buf.len()) {
                    return Err(ParquetError::EOF(format!(
                        "data page of {n} values holds {} bytes, fewer than {} needed",
                        buf.len(),
                        n.saturating_mul(width).saturating_add(levels)
                    )));
                }
                if n > 0 {
                    parts.push(PagePart::Plain(buf.slice(levels..levels + n * width)));
                }
            }
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                if n > 0 {
                    parts.push(PagePart::Indexed(buf.slice(levels..), n));
                }
            }
            _ => return Ok(None),
        }
        values = values.saturating_add(n);
    }
    if values != rows {
        return Err(ParquetError::General(format!(
            "column chunk holds {values} values, the row group has {rows} rows"
        )));
    }
    let aligned = |b: &Bytes| b.as_ptr().align_offset(std::mem::align_of::<T::Native>()) == 0;
    let buffer = match parts.as_slice() {
        [] => Buffer::from_vec(Vec::<T::Native>::new()),
        [PagePart::Plain(one)] if owned && aligned(one) => Buffer::from(one.clone()),
        _ => {
            let mut out: Vec<T::Native> = Vec::with_capacity(rows);
            for part in &parts {
                match part {
                    PagePart::Plain(bytes) => append_plain(&mut out, bytes, bytes.len() / width)?,
                    PagePart::Indexed(data, n) => {
                        gather_from(dictionary.as_deref(), data, *n, &mut out)?;
                    }
                }
            }
            Buffer::from_vec(out)
        }
    };
    let values = ScalarBuffer::<T::Native>::new(buffer, 0, rows);
    Ok(Some(Arc::new(PrimitiveArray::<T>::new(values, None))))
}

/// Appends `n` little-endian PLAIN values from `bytes` to `out` (one copy).
pub(super) fn append_plain<V: arrow_buffer::ArrowNativeType>(
    out: &mut Vec<V>,
    bytes: &[u8],
    n: usize,
) -> Result<(), ParquetError> {
    let width = std::mem::size_of::<V>();
    let len = n
        .checked_mul(width)
        .filter(|&len| len <= bytes.len())
        .ok_or_else(|| {
            ParquetError::EOF(format!(
                "page of {n} values holds {} bytes, fewer than {} needed",
                bytes.len(),
                n.saturating_mul(width)
            ))
        })?;
    out.reserve(n);
    // SAFETY: `len` = `n * size_of::<V>()` bytes are in `bytes` (checked) and fit the spare
    // capacity of `out` (reserved); they do not overlap. Every bit pattern is a valid
    // i32/i64/f32/f64, and the page bytes are little-endian like the target (`eligible`
    // requires a little-endian target).
    unsafe {
        let dst = out.as_mut_ptr().add(out.len()).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, len);
        out.set_len(out.len() + n);
    }
    Ok(())
}

/// Reads a dictionary page into `dictionary`: `Ok(false)` when its encoding is not one the
/// direct paths decode (the caller then leaves the chunk to the general reader); a second
/// dictionary page in one chunk is an error.
pub(super) fn read_dictionary_page<V: arrow_buffer::ArrowNativeType>(
    dictionary: &mut Option<ScalarBuffer<V>>,
    page: &Bytes,
    num_values: u32,
    encoding: Encoding,
) -> Result<bool, ParquetError> {
    if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
        return Ok(false);
    }
    if dictionary.is_some() {
        return Err(ParquetError::General(
            "a second dictionary page in one column chunk".to_string(),
        ));
    }
    *dictionary = Some(dictionary_values(page, num_values as usize)?);
    Ok(true)
}

/// [`gather_indexed`] from the chunk's dictionary, which a dictionary-encoded page needs.
pub(super) fn gather_from<V: Copy>(
    dictionary: Option<&[V]>,
    data: &[u8],
    n: usize,
    out: &mut Vec<V>,
) -> Result<(), ParquetError> {
    let dict = dictionary.ok_or_else(|| {
        ParquetError::General("a dictionary-encoded page without a dictionary page".to_string())
    })?;
    gather_indexed(data, n, dict, out)
}

/// The values of a dictionary page: its decompressed buffer itself when aligned (the usual
/// case: a fresh allocation), else a copy. A dictionary can be as large as the chunk's data
/// (a float column of distinct values), so it is not copied without need.
fn dictionary_values<V: arrow_buffer::ArrowNativeType>(
    page: &Bytes,
    n: usize,
) -> Result<ScalarBuffer<V>, ParquetError> {
    let len = n.saturating_mul(std::mem::size_of::<V>());
    if len <= page.len() && page.as_ptr().align_offset(std::mem::align_of::<V>()) == 0 {
        return Ok(ScalarBuffer::new(Buffer::from(page.slice(..len)), 0, n));
    }
    let mut out = Vec::new();
    append_plain(&mut out, page, n)?;
    Ok(ScalarBuffer::from(out))
}

/// Unpacks the dictionary indices of `n` values (a bit-width byte, then RLE/bit-packed hybrid
/// runs) and appends `dict[index]` for each to `out`. An index outside the dictionary, a
/// truncated run or a bit width above 32 is an error.
fn gather_indexed<V: Copy>(
    data: &[u8],
    n: usize,
    dict: &[V],
    out: &mut Vec<V>,
) -> Result<(), ParquetError> {
    let eof = || ParquetError::EOF(format!("dictionary indices of {n} values are truncated"));
    let (&bit_width, mut rest) = data.split_first().ok_or_else(eof)?;
    let bit_width = usize::from(bit_width);
    if bit_width > 32 {
        return Err(ParquetError::General(format!(
            "dictionary indices of bit width {bit_width} (at most 32)"
        )));
    }
    let lookup = |index: u64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| dict.get(i).copied())
            .ok_or_else(|| out_of_range(index, dict.len()))
    };
    let mut left = n;
    while left > 0 {
        let (header, used) = read_uleb128(rest).ok_or_else(eof)?;
        rest = &rest[used..];
        let count = usize::try_from(header >> 1).map_err(|_| eof())?;
        if count == 0 {
            return Err(ParquetError::General(
                "an empty run in dictionary indices".to_string(),
            ));
        }
        if header & 1 == 0 {
            // RLE run: `count` copies of one index, stored in ceil(bit_width / 8) bytes.
            let raw = rest.get(..bit_width.div_ceil(8)).ok_or_else(eof)?;
            rest = &rest[raw.len()..];
            let index = raw
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            let take = count.min(left);
            out.extend(std::iter::repeat_n(lookup(index)?, take));
            left -= take;
        } else {
            // Bit-packed run of `count` groups of 8 indices, `bit_width` bytes per group.
            let bytes = count.checked_mul(bit_width).ok_or_else(eof)?;
            let run = rest.get(..bytes).ok_or_else(eof)?;
            rest = &rest[bytes..];
            let take = count.saturating_mul(8).min(left);
            unpack_gather(run, bit_width, take, dict, out)?;
            left -= take;
        }
    }
    Ok(())
}

/// The error of an index outside the dictionary.
fn out_of_range(index: u64, len: usize) -> ParquetError {
    ParquetError::General(format!(
        "dictionary index {index} out of range (dictionary of {len} values)"
    ))
}

/// Appends `dict[index]` for the first `take` indices of a bit-packed run (LSB first).
fn unpack_gather<V: Copy>(
    run: &[u8],
    bit_width: usize,
    take: usize,
    dict: &[V],
    out: &mut Vec<V>,
) -> Result<(), ParquetError> {
    if bit_width == 0 {
        let only = dict.first().copied().ok_or_else(|| out_of_range(0, 0))?;
        out.extend(std::iter::repeat_n(only, take));
        return Ok(());
    }
    let mask = (1u64 << bit_width) - 1;
    let index_at = |word: u64, bit: usize| (word >> (bit & 7)) & mask;
    // Indices whose 8-byte window lies inside the run are read straight from it, in a loop
    // without a bounds decision per index; the last few from a zero-padded copy of the tail.
    let direct = if run.len() >= 8 {
        ((run.len() - 8) * 8 / bit_width + 1).min(take)
    } else {
        0
    };
    out.reserve(take);
    let last = dict
        .len()
        .checked_sub(1)
        .ok_or_else(|| out_of_range(0, 0))? as u64;
    // The direct indices are gathered without a branch per value: an index past the end is
    // clamped for the read and remembered, and the run fails after the loop if there was one.
    // Common widths get a loop compiled for their width (whole groups of 8 indices, every
    // shift a constant); the rest, and the last partial group, the loop below.
    let base = out.len();
    let spare = &mut out.spare_capacity_mut()[..direct];
    let (grouped, mut past_end) = match bit_width {
        1 => gather_groups::<1, V>(run, dict, last, spare),
        2 => gather_groups::<2, V>(run, dict, last, spare),
        3 => gather_groups::<3, V>(run, dict, last, spare),
        4 => gather_groups::<4, V>(run, dict, last, spare),
        5 => gather_groups::<5, V>(run, dict, last, spare),
        6 => gather_groups::<6, V>(run, dict, last, spare),
        7 => gather_groups::<7, V>(run, dict, last, spare),
        8 => gather_groups::<8, V>(run, dict, last, spare),
        9 => gather_groups::<9, V>(run, dict, last, spare),
        10 => gather_groups::<10, V>(run, dict, last, spare),
        11 => gather_groups::<11, V>(run, dict, last, spare),
        12 => gather_groups::<12, V>(run, dict, last, spare),
        13 => gather_groups::<13, V>(run, dict, last, spare),
        14 => gather_groups::<14, V>(run, dict, last, spare),
        15 => gather_groups::<15, V>(run, dict, last, spare),
        16 => gather_groups::<16, V>(run, dict, last, spare),
        _ => (0, false),
    };
    for (k, slot) in spare.iter_mut().enumerate().skip(grouped) {
        let bit = k * bit_width;
        // SAFETY: `k < direct`, so `bit / 8 + 8 <= run.len()` (see `direct`).
        let word = unsafe { run.as_ptr().add(bit >> 3).cast::<u64>().read_unaligned() };
        let index = (u64::from_le(word) >> (bit & 7)) & mask;
        past_end |= index > last;
        // SAFETY: `index.min(last) <= last < dict.len()`.
        slot.write(unsafe { *dict.get_unchecked(index.min(last) as usize) });
    }
    // SAFETY: the first `direct` spare slots were written above (`grouped <= direct`).
    unsafe { out.set_len(base + direct) };
    if past_end {
        let first_bad = (0..direct)
            .map(|k| {
                let bit = k * bit_width;
                let mut word = [0u8; 8];
                word.copy_from_slice(&run[bit >> 3..(bit >> 3) + 8]);
                index_at(u64::from_le_bytes(word), bit)
            })
            .find(|&i| i > last)
            .unwrap_or(last + 1);
        return Err(out_of_range(first_bad, dict.len()));
    }
    for k in direct..take {
        let bit = k * bit_width;
        let mut word = [0u8; 8];
        let tail = run.get(bit >> 3..).unwrap_or_default();
        let used = tail.len().min(8);
        word[..used].copy_from_slice(&tail[..used]);
        let index = index_at(u64::from_le_bytes(word), bit);
        match dict.get(index as usize) {
            Some(&v) => out.push(v),
            None => return Err(out_of_range(index, dict.len())),
        }
    }
    Ok(())
}

/// Writes `dict[index]` into `out` for whole groups of 8 indices of width `W` at the start of a
/// bit-packed run, as many groups as `out` holds: (indices written, whether one was past the
/// dictionary's end; those are clamped to `last`). Each group is `W` bytes; its 8 indices are
/// read from 8-byte windows at constant offsets, so the caller guarantees `out.len() * W / 8 + 8`
/// bytes of `run` (its `direct` count does).
#[inline(always)]
fn gather_groups<const W: usize, V: Copy>(
    run: &[u8],
    dict: &[V],
    last: u64,
    out: &mut [std::mem::MaybeUninit<V>],
) -> (usize, bool) {
    let mask = (1u64 << W) - 1;
    let groups = out.len() / 8;
    let mut past_end = false;
    for (g, slots) in out.chunks_exact_mut(8).take(groups).enumerate() {
        let start = g * W;
        let mut indices = [0u64; 8];
        for (j, index) in indices.iter_mut().enumerate() {
            let bit = j * W;
            // SAFETY: the group's last window ends at `start + 7W/8 + 8`, at most
            // `out.len() * W / 8 + 8 <= run.len()` bytes in (see above).
            let word = unsafe {
                run.as_ptr()
                    .add(start + (bit >> 3))
                    .cast::<u64>()
                    .read_unaligned()
            };
            *index = (u64::from_le(word) >> (bit & 7)) & mask;
        }
        for (slot, &index) in slots.iter_mut().zip(&indices) {
            past_end |= index > last;
            // SAFETY: `index.min(last) <= last < dict.len()`.
            slot.write(unsafe { *dict.get_unchecked(index.min(last) as usize) });
        }
    }
    (groups * 8, past_end)
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

pub(super) fn read_uleb128(data: &[u8]) -> Option<(u64, usize)> {
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

    /// Writes `batch` with `props`; returns (file bytes, metadata).
    fn written(
        batch: &arrow_array::RecordBatch,
        props: parquet::file::properties::WriterProperties,
    ) -> (Bytes, parquet::file::metadata::ParquetMetaData) {
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
        written(batch, props)
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
        use arrow_array::Float64Array;
        let n = 100; // 800 bytes: one page
        let values = Float64Array::from_iter_values((0..n).map(f64::from));
        let batch =
            arrow_array::RecordBatch::try_from_iter([("v", Arc::new(values.clone()) as ArrayRef)])
                .unwrap();
        let (file, _) = parquet_of(&batch, Compression::UNCOMPRESSED);
        assert_copied_out_at_every_alignment(&file, &values, Compression::UNCOMPRESSED);
    }

    /// Decodes the one Float64 column of `file` placed at every alignment (so that for one of
    /// them the page's values are aligned where they lie and could have been kept in place)
    /// and checks the values and that the column's buffer is not a view of the input.
    fn assert_copied_out_at_every_alignment(
        file: &[u8],
        values: &arrow_array::Float64Array,
        compression: Compression,
    ) {
        use arrow_array::Array;
        for shift in 0..8 {
            let mut padded = vec![0u8; shift];
            padded.extend_from_slice(file);
            let input = Bytes::from(padded).slice(shift..);
            let meta = parquet::file::metadata::ParquetMetaDataReader::new()
                .parse_and_finish(&input)
                .unwrap();
            let chunk = meta.row_group(0).column(0);
            assert_eq!(chunk.compression(), compression);
            let (lo, hi) = (
                input.as_ptr() as usize,
                input.as_ptr() as usize + input.len(),
            );
            let got = decode(
                Arc::new(input.clone()),
                chunk,
                &DataType::Float64,
                values.len(),
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
    fn v2_pages_stored_uncompressed_in_a_compressed_chunk_are_copied_out_of_the_input() {
        use arrow_array::Float64Array;
        // A version 2 page keeps its values uncompressed (`is_compressed` false) when the codec
        // does not shrink them, though the chunk names a codec: the page is then a view of the
        // input, which the column must not keep.
        let values = Float64Array::from_iter_values((0..100).map(|i| f64::from(i) * 1.25));
        let batch =
            arrow_array::RecordBatch::try_from_iter([("v", Arc::new(values.clone()) as ArrayRef)])
                .unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_compression(Compression::SNAPPY)
            .set_writer_version(parquet::file::properties::WriterVersion::PARQUET_2_0)
            .set_data_page_v2_compression_ratio_threshold(1e-9)
            .build();
        let (file, _) = written(&batch, props);
        assert_copied_out_at_every_alignment(&file, &values, Compression::SNAPPY);
    }

    #[test]
    fn columns_the_direct_path_does_not_decode_exactly_are_not_eligible() {
        use arrow_array::{Decimal128Array, Float64Array, Int32Array, Int64Array};
        use parquet::basic::Encoding as E;
        let n = 300;
        let dec = Decimal128Array::from_iter_values((0..n).map(i128::from))
            .with_precision_and_scale(9, 2)
            .unwrap();
        let batch = arrow_array::RecordBatch::try_from_iter([
            (
                "f16",
                arrow_cast::cast(
                    &arrow_array::Float32Array::from_iter_values((0..n).map(|i| i as f32)),
                    &DataType::Float16,
                )
                .unwrap(),
            ),
            ("dec", Arc::new(dec) as ArrayRef),
            (
                "delta",
                Arc::new(Int64Array::from_iter_values((0..n).map(i64::from))) as ArrayRef,
            ),
            (
                "bss",
                Arc::new(Float64Array::from_iter_values((0..n).map(f64::from))) as ArrayRef,
            ),
            (
                "u32",
                Arc::new(arrow_array::UInt32Array::from_iter_values(
                    (0..n).map(|i| i as u32),
                )) as ArrayRef,
            ),
            (
                "plain",
                Arc::new(Int32Array::from_iter_values(0..n)) as ArrayRef,
            ),
        ])
        .unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_column_encoding("delta".into(), E::DELTA_BINARY_PACKED)
            .set_column_encoding("bss".into(), E::BYTE_STREAM_SPLIT)
            .build();
        let (_, meta) = written(&batch, props);
        let rg = meta.row_group(0);
        let verdicts: Vec<bool> = batch
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| eligible(rg.column(i), f.data_type()))
            .collect();
        // Only the PLAIN int32 column; the decimal is stored as INT32 too, but annotated.
        assert_eq!(verdicts, [false, false, false, false, false, true]);
        assert_eq!(
            rg.column(1).column_descr().physical_type(),
            PhysicalType::INT32
        );
    }

    #[test]
    fn truncated_levels_are_rejected() {
        assert_eq!(v1_levels_all_present(&[9, 0, 0, 0, 1], 3), None);
        assert_eq!(v1_levels_all_present(&[], 3), None);
    }

    /// Writes `batch` dictionary-encoded (v1 or v2 pages, small pages, a dictionary page limit
    /// of `dict_limit` bytes after which the writer falls back to PLAIN).
    fn dictionary_parquet(
        batch: &arrow_array::RecordBatch,
        v2: bool,
        dict_limit: usize,
    ) -> (Bytes, parquet::file::metadata::ParquetMetaData) {
        use parquet::file::properties::WriterVersion;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_dictionary_enabled(true)
            .set_dictionary_page_size_limit(dict_limit)
            .set_data_page_size_limit(2048)
            .set_write_batch_size(256)
            .set_compression(Compression::SNAPPY)
            .set_writer_version(if v2 {
                WriterVersion::PARQUET_2_0
            } else {
                WriterVersion::PARQUET_1_0
            })
            .build();
        written(batch, props)
    }

    #[test]
    fn dictionary_pages_are_gathered_directly_for_every_index_width() {
        use arrow_array::{Array, Float32Array, Float64Array, Int32Array, Int64Array};
        let n = 9000usize;
        let mut direct = 0;
        // Cardinalities 1, 2, 3, 5, 17, 129, 200, 256, 300, 1025, 4096, 5000 and 9000 give index
        // widths 0, 1, 2, 3, 5, 8, 8, 8, 9, 11, 12, 13 and 14 (each width has its own unpacking
        // loop); 2, 256 and 4096 fill their width (every index names an entry).
        for distinct in [
            1usize, 2, 3, 5, 17, 129, 200, 256, 300, 1025, 4096, 5000, 9000,
        ] {
            let key = |i: usize| ((i * 7919) % distinct) as i64;
            let f32s = Float32Array::from_iter_values((0..n).map(|i| key(i) as f32 * 0.25 - 3.0));
            let f64s = Float64Array::from_iter_values((0..n).map(|i| key(i) as f64 * 1e-3));
            let i32s = Int32Array::from_iter_values((0..n).map(|i| key(i) as i32 - 50));
            let i64s = Int64Array::from_iter_values((0..n).map(|i| key(i) * 1_000_003));
            let batch = arrow_array::RecordBatch::try_from_iter([
                ("f", Arc::new(f32s.clone()) as ArrayRef),
                ("d", Arc::new(f64s.clone()) as ArrayRef),
                ("i", Arc::new(i32s.clone()) as ArrayRef),
                ("l", Arc::new(i64s.clone()) as ArrayRef),
            ])
            .unwrap();
            for v2 in [false, true] {
                // A generous limit keeps every value in the dictionary; a small one makes the
                // writer fall back to PLAIN pages part way through the chunk.
                for dict_limit in [1 << 20, 512] {
                    let (bytes, meta) = dictionary_parquet(&batch, v2, dict_limit);
                    let rg = meta.row_group(0);
                    assert!(rg.column(0).dictionary_page_offset().is_some());
                    let input = Arc::new(bytes);
                    let expected: [&dyn Array; 4] = [&f32s, &f64s, &i32s, &i64s];
                    for (col, expected) in expected.into_iter().enumerate() {
                        let dt = expected.data_type();
                        let case = format!(
                            "distinct {distinct}, v2 {v2}, limit {dict_limit}, column {col}"
                        );
                        let chunk = rg.column(col);
                        // Version 2 writers fall back to DELTA_BINARY_PACKED for integers:
                        // not this path's encoding, so the general reader takes the chunk.
                        let handled = chunk.encodings().all(|e| {
                            !matches!(
                                e,
                                Encoding::DELTA_BINARY_PACKED | Encoding::BYTE_STREAM_SPLIT
                            )
                        });
                        assert_eq!(eligible(chunk, dt), handled, "{case}");
                        if !handled {
                            continue;
                        }
                        let got = decode(input.clone(), chunk, dt, n)
                            .unwrap()
                            .unwrap_or_else(|| panic!("{case}: declined"));
                        assert_eq!(&got.to_data(), &expected.to_data(), "{case}");
                        direct += 1;
                    }
                }
            }
        }
        // 13 cardinalities x 4 columns x 2 page versions x 2 limits, less the integer columns of
        // the version 2 files that overflowed their dictionary.
        assert!(direct >= 160, "{direct} chunks took the direct path");
    }

    #[test]
    fn dictionary_columns_with_nulls_are_left_to_the_general_reader() {
        use arrow_array::Int64Array;
        let values = Int64Array::from_iter((0..3000i64).map(|i| (i % 5 != 0).then_some(i % 7)));
        let batch =
            arrow_array::RecordBatch::try_from_iter([("v", Arc::new(values) as ArrayRef)]).unwrap();
        let (bytes, meta) = dictionary_parquet(&batch, false, 1 << 20);
        let chunk = meta.row_group(0).column(0);
        assert!(eligible(chunk, &DataType::Int64));
        assert!(decode(Arc::new(bytes), chunk, &DataType::Int64, 3000)
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_dictionary_indices_are_errors() {
        let dict = [10i64, 20, 30];
        let mut out = Vec::new();
        // Bit width 2, one bit-packed group of 8: indices 0,1,2,3 (3 is out of range).
        let data = [2u8, 0x03, 0b1110_0100, 0, 0];
        let e = gather_indexed(&data, 4, &dict, &mut out).unwrap_err();
        assert!(
            e.to_string().contains("dictionary index 3 out of range"),
            "{e}"
        );
        // The same group with in-range indices 0,1,2,0.
        out.clear();
        gather_indexed(&[2u8, 0x03, 0b0010_0100, 0], 4, &dict, &mut out).unwrap();
        assert_eq!(out, [10, 20, 30, 10]);
        // An RLE run of 5 copies of index 1, then nothing for the sixth value.
        out.clear();
        let e = gather_indexed(&[2u8, 0x0a, 0x01], 6, &dict, &mut out).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        assert_eq!(out, [20; 5]);
        // A long bit-packed run (4 groups, 8 bytes: the indices are read without a check per
        // value) with index 3 at position 13 and valid indices elsewhere.
        let mut packed = [0b1001_0010u8; 8]; // indices 2,0,1,2 in every byte
        packed[3] = 0b1001_1110; // position 13 (byte 3, bits 2 and 3) becomes 3
        let mut data = vec![2u8, (4 << 1) | 1];
        data.extend_from_slice(&packed);
        let e = gather_indexed(&data, 32, &dict, &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string().contains("dictionary index 3 out of range"),
            "{e}"
        );
        // The same run without the bad index gathers every value.
        let mut ok = vec![2u8, (4 << 1) | 1];
        ok.extend_from_slice(&[0b1001_0010u8; 8]);
        let mut out = Vec::new();
        gather_indexed(&ok, 32, &dict, &mut out).unwrap();
        assert_eq!(out, [30, 10, 20, 30].repeat(8));
        for (bad, what) in [
            (vec![33u8, 0x02, 0], "bit width 33"),
            (vec![2u8, 0x00], "empty run"),
            (vec![], "truncated"),
            (vec![2u8, 0x03], "truncated"),
        ] {
            let e = gather_indexed(&bad, 4, &dict, &mut Vec::new()).unwrap_err();
            assert!(e.to_string().contains(what), "{bad:?}: {e}");
        }
    }
}
