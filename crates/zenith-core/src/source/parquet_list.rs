//! A direct decoder for a list of fixed-width numbers (`list<int32 | int64 | float | double>`
//! stored as the standard three-level LIST: `<optional|required> group <name> (LIST) {
//! repeated group list { <optional|required> <type> element; } }`), the shape of token ids,
//! tags and ragged features, whose elements are not null.
//!
//! The general Arrow reader decodes such a chunk into repetition and definition levels of
//! 16 bits per entry, then walks them in a generic record reader to build offsets and null
//! masks, then copies the values; on the load benchmark's mixed table that one column took as
//! long as the other four together. Here the levels (bit widths 1 and 2) are unpacked into
//! bytes, one pass over them writes the offsets (and a validity bit where a list is null), and
//! the values are appended with the flat path's PLAIN copy or dictionary gather. A chunk with
//! a null element, or anything else this path does not decode exactly, is left to the general
//! reader (`Ok(None)`), so the result is always the general reader's.

use std::sync::Arc;

use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{ArrayRef, ArrowPrimitiveType, ListArray, PrimitiveArray};
use arrow_buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, FieldRef};
use parquet::basic::{Encoding, LogicalType, Repetition};
use parquet::column::page::{Page, PageReader};
use parquet::errors::ParquetError;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::ChunkReader;
use parquet::file::serialized_reader::SerializedPageReader;
use parquet::schema::types::Type;

use super::parquet_plain::{
    append_plain, encodings_handled, gather_from, leaf_matches, read_dictionary_page, read_uleb128,
};

/// Whether the column chunk of the root field `root` (the Parquet group of the Arrow column
/// of type `data_type`) may take the direct path, judged from the schema and footer alone.
pub(super) fn eligible(root: &Type, chunk: &ColumnChunkMetaData, data_type: &DataType) -> bool {
    let DataType::List(item) = data_type else {
        return false;
    };
    let descr = chunk.column_descr();
    let Some(shape) = ListShape::of(root) else {
        return false;
    };
    leaf_matches(descr, item.data_type())
        && descr.path().parts().len() == 3
        && descr.max_rep_level() == 1
        && descr.max_def_level() == shape.max_def()
        && encodings_handled(chunk)
}

/// Which levels of a three-level list may be absent.
#[derive(Debug, Clone, Copy)]
struct ListShape {
    /// The list itself is optional (may be null).
    list_optional: bool,
    /// The element is optional (may be null; a null element makes the chunk decline).
    element_optional: bool,
}

impl ListShape {
    /// The shape of `root` when it is a LIST-annotated group of one repeated group of one
    /// primitive element.
    fn of(root: &Type) -> Option<ListShape> {
        let info = root.get_basic_info();
        let annotated = matches!(info.logical_type_ref(), Some(LogicalType::List))
            || info.converted_type() == parquet::basic::ConvertedType::LIST;
        if !root.is_group() || !annotated || info.repetition() == Repetition::REPEATED {
            return None;
        }
        let [middle] = root.get_fields() else {
            return None;
        };
        if !middle.is_group() || middle.get_basic_info().repetition() != Repetition::REPEATED {
            return None;
        }
        let [element] = middle.get_fields() else {
            return None;
        };
        let element_repetition = element.get_basic_info().repetition();
        if !element.is_primitive() || element_repetition == Repetition::REPEATED {
            return None;
        }
        Some(ListShape {
            list_optional: info.repetition() == Repetition::OPTIONAL,
            element_optional: element_repetition == Repetition::OPTIONAL,
        })
    }

    fn max_def(self) -> i16 {
        i16::from(self.list_optional) + 1 + i16::from(self.element_optional)
    }
}

/// Decodes an [`eligible`] chunk of `rows` rows. `Ok(None)` when a page turns out not to fit
/// (a null element, an encoding other than PLAIN or dictionary indices).
pub(super) fn decode<R: ChunkReader + 'static>(
    input: Arc<R>,
    root: &Type,
    chunk: &ColumnChunkMetaData,
    data_type: &DataType,
    rows: usize,
) -> Result<Option<ArrayRef>, ParquetError> {
    let (DataType::List(item), Some(shape)) = (data_type, ListShape::of(root)) else {
        return Ok(None);
    };
    let pages = SerializedPageReader::new(input, chunk, rows, None)?;
    let item = item.clone();
    // Level entries of the chunk (values, empty and null lists): the values' capacity, within
    // reason, so that they are not copied while growing.
    let entries = usize::try_from(chunk.num_values()).unwrap_or(0);
    Ok(match item.data_type() {
        DataType::Int32 => decode_typed::<Int32Type>(pages, item, shape, rows, entries)?,
        DataType::Int64 => decode_typed::<Int64Type>(pages, item, shape, rows, entries)?,
        DataType::Float32 => decode_typed::<Float32Type>(pages, item, shape, rows, entries)?,
        DataType::Float64 => decode_typed::<Float64Type>(pages, item, shape, rows, entries)?,
        _ => None,
    })
}

/// The level and value sections of one data page.
struct PageSections {
    rep: std::ops::Range<usize>,
    def: std::ops::Range<usize>,
    values: usize,
}

fn eof(what: &str) -> ParquetError {
    ParquetError::EOF(format!("{what} of a list column's data page is truncated"))
}

/// v1 level sections: a little-endian u32 byte length, then that many bytes.
fn prefixed(buf: &[u8], at: usize, what: &str) -> Result<std::ops::Range<usize>, ParquetError> {
    let len = buf.get(at..at.saturating_add(4)).ok_or_else(|| eof(what))?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let start = at + 4;
    let end = start.checked_add(len).filter(|&e| e <= buf.len());
    end.map(|end| start..end).ok_or_else(|| eof(what))
}

fn decode_typed<T: ArrowPrimitiveType>(
    mut pages: impl PageReader,
    item: FieldRef,
    shape: ListShape,
    rows: usize,
    entries: usize,
) -> Result<Option<ArrayRef>, ParquetError> {
    // Entries of the chunk's data pages not yet read: a page claiming more is an error, so that
    // the levels decoded stay within what the footer says the chunk holds.
    let mut entries_left = entries;
    let value_def = shape.max_def() as u8;
    // The definition level of a present, empty list: the repeated group is absent.
    let empty_def = u8::from(shape.list_optional);
    let def_width = if value_def >= 2 { 2 } else { 1 };
    // The start of every row (`starts` of them so far), then (at the end) the total: the list
    // offsets. Grown a page at a time, by the page's entries, so that memory follows the data
    // read and not the footer's claims.
    let mut offsets: Vec<i32> = Vec::new();
    let mut starts = 0usize;
    let mut null_rows: Vec<usize> = Vec::new();
    let mut values: Vec<T::Native> = Vec::with_capacity(entries.min(1 << 24));
    let mut dictionary: Option<ScalarBuffer<T::Native>> = None;
    let (mut reps, mut defs) = (Vec::new(), Vec::new());
    let mut count = 0usize;
    while let Some(page) = pages.get_next_page()? {
        let (buf, n, encoding, sections) = match page {
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                rep_level_encoding,
                ..
            } => {
                if def_level_encoding != Encoding::RLE || rep_level_encoding != Encoding::RLE {
                    return Ok(None);
                }
                let rep = prefixed(&buf, 0, "repetition levels")?;
                let def = prefixed(&buf, rep.end, "definition levels")?;
                let values = def.end;
                (
                    buf,
                    num_values as usize,
                    encoding,
                    PageSections { rep, def, values },
                )
            }
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                let rep_end = rep_levels_byte_len as usize;
                let def_end = rep_end.saturating_add(def_levels_byte_len as usize);
                if def_end > buf.len() {
                    return Err(eof("levels"));
                }
                let sections = PageSections {
                    rep: 0..rep_end,
                    def: rep_end..def_end,
                    values: def_end,
                };
                (buf, num_values as usize, encoding, sections)
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
        entries_left = entries_left.checked_sub(n).ok_or_else(|| {
            ParquetError::General(format!(
                "a data page of {n} values, more than the {entries} of its column chunk"
            ))
        })?;
        reps.clear();
        unpack_levels(&buf[sections.rep], 1, 1, n, &mut reps)?;
        defs.clear();
        unpack_levels(&buf[sections.def], def_width, value_def, n, &mut defs)?;
        if reps.first() == Some(&1) && starts == 0 {
            return Err(continues_without_value(1, defs[0]));
        }
        // Every value index of this page fits the offsets' i32 (checked once per page).
        if i32::try_from(count.saturating_add(n)).is_err() {
            return Err(too_many(count.saturating_add(n)));
        }
        let base = count as i32;
        let mut present = 0i32;
        let mut odd = false;
        // At most one row starts per entry, and `rows` in a valid chunk: room for them, plus
        // the total. Past `rows` (a damaged chunk, reported after the loop) the last slot is
        // overwritten.
        let room = (starts + n).min(rows) + 1;
        if offsets.len() < room {
            offsets.resize(room, 0);
        }
        for (&rep, &def) in reps.iter().zip(&defs) {
            // Without a branch on where rows start (random for ragged lists): every entry
            // writes the next row's offset (the values before it), and a row start keeps it.
            let start = rep == 0;
            offsets[starts.min(rows)] = base + present;
            starts += usize::from(start);
            if start & (def < empty_def) {
                null_rows.push(starts - 1);
            }
            present += i32::from(def == value_def);
            // Anything but a value, an empty list or a null list: classified below.
            odd |= def != value_def && (def > empty_def || rep == 1);
        }
        if odd {
            for (&rep, &def) in reps.iter().zip(&defs) {
                if def != value_def && def > empty_def {
                    // A null element: the general reader builds the element validity.
                    return Ok(None);
                }
                if def != value_def && rep == 1 {
                    return Err(continues_without_value(rep, def));
                }
            }
        }
        let present = present as usize;
        let data = &buf[sections.values..];
        match encoding {
            Encoding::PLAIN => append_plain(&mut values, data, present)?,
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY if present > 0 => {
                gather_from(dictionary.as_deref(), data, present, &mut values)?;
            }
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {}
            _ => return Ok(None),
        }
        count += present;
    }
    let rows_seen = starts;
    offsets.truncate(starts);
    offsets.push(i32::try_from(count).map_err(|_| too_many(count))?);
    if rows_seen != rows {
        return Err(ParquetError::General(format!(
            "column chunk holds {rows_seen} lists, the row group has {rows} rows"
        )));
    }
    let nulls = (!null_rows.is_empty()).then(|| {
        let mut valid = vec![true; rows];
        for &r in &null_rows {
            valid[r] = false;
        }
        NullBuffer::new(BooleanBuffer::from(valid))
    });
    let values = PrimitiveArray::<T>::new(ScalarBuffer::from(values), None);
    // Offsets start at 0 and never decrease (each is a running count), so this cannot fail;
    // an error would still be returned rather than a panic.
    let list = ListArray::try_new(
        item,
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(values),
        nulls,
    )
    .map_err(|e| ParquetError::General(e.to_string()))?;
    Ok(Some(Arc::new(list)))
}

fn too_many(count: usize) -> ParquetError {
    ParquetError::General(format!(
        "{count} list elements in one row group, more than 32-bit list offsets hold"
    ))
}

fn continues_without_value(rep: u8, def: u8) -> ParquetError {
    ParquetError::General(format!(
        "a list entry of repetition level {rep} continues a list with definition level {def}, \
         not a value"
    ))
}

/// For each byte, its `N` levels of `8 / N` bits each, least significant first.
const fn level_table<const N: usize>() -> [[u8; N]; 256] {
    let width = 8 / N;
    let mask = (1usize << width) - 1;
    let mut t = [[0u8; N]; 256];
    let mut b = 0;
    while b < 256 {
        let mut k = 0;
        while k < N {
            t[b][k] = ((b >> (width * k)) & mask) as u8;
            k += 1;
        }
        b += 1;
    }
    t
}

/// One-bit levels (repetition, and definition of a two-level maximum) and two-bit levels.
const ONE_BIT: [[u8; 8]; 256] = level_table::<8>();
const TWO_BIT: [[u8; 4]; 256] = level_table::<4>();

/// Appends `n` levels of `bit_width` (1 or 2) bits, RLE/bit-packed hybrid encoded in `data`, to
/// `out`. A level above `max`, a truncated or empty run is an error.
fn unpack_levels(
    data: &[u8],
    bit_width: usize,
    max: u8,
    n: usize,
    out: &mut Vec<u8>,
) -> Result<(), ParquetError> {
    let truncated = || ParquetError::EOF(format!("levels of {n} values are truncated"));
    let too_high = |level: u8| {
        ParquetError::General(format!(
            "a level of {level}, above the column's maximum {max}"
        ))
    };
    // Runs may expand a few bytes to many levels; the reservation is bounded, growth is not.
    out.reserve(n.min(1 << 20));
    let mut rest = data;
    let mut left = n;
    let mask = (1u8 << bit_width) - 1;
    while left > 0 {
        let (header, used) = read_uleb128(rest).ok_or_else(truncated)?;
        rest = &rest[used..];
        let count = usize::try_from(header >> 1).map_err(|_| truncated())?;
        if count == 0 {
            return Err(ParquetError::General("an empty run in levels".to_string()));
        }
        if header & 1 == 0 {
            let (&level, after) = rest.split_first().ok_or_else(truncated)?;
            rest = after;
            if level > max {
                return Err(too_high(level));
            }
            let take = count.min(left);
            out.extend(std::iter::repeat_n(level, take));
            left -= take;
        } else {
            let bytes = count.checked_mul(bit_width).ok_or_else(truncated)?;
            let run = rest.get(..bytes).ok_or_else(truncated)?;
            rest = &rest[bytes..];
            let take = count.saturating_mul(8).min(left);
            let start = out.len();
            let whole = take * bit_width / 8;
            if bit_width == 1 {
                for &byte in &run[..whole] {
                    out.extend_from_slice(&ONE_BIT[usize::from(byte)]);
                }
            } else {
                for &byte in &run[..whole] {
                    out.extend_from_slice(&TWO_BIT[usize::from(byte)]);
                }
            }
            let per_byte = 8 / bit_width;
            if let Some(&byte) = run.get(whole).filter(|_| take % per_byte != 0) {
                let levels: &[u8] = if bit_width == 1 {
                    &ONE_BIT[usize::from(byte)]
                } else {
                    &TWO_BIT[usize::from(byte)]
                };
                out.extend_from_slice(&levels[..take % per_byte]);
            }
            if max < mask {
                if let Some(&high) = out[start..].iter().find(|&&l| l > max) {
                    return Err(too_high(high));
                }
            }
            left -= take;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{Int32Builder, ListBuilder};
    use arrow_array::{Array, RecordBatch};
    use bytes::Bytes;
    use parquet::basic::Compression;
    use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
    use parquet::file::properties::{WriterProperties, WriterVersion};

    fn written(batch: &RecordBatch, props: WriterProperties) -> (Bytes, ParquetMetaData) {
        let mut out = Vec::new();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        let bytes = Bytes::from(out);
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        (bytes, meta)
    }

    fn props(dictionary: bool, v2: bool) -> WriterProperties {
        WriterProperties::builder()
            .set_dictionary_enabled(dictionary)
            .set_dictionary_page_size_limit(1024)
            .set_data_page_size_limit(1024)
            .set_write_batch_size(97)
            .set_compression(Compression::SNAPPY)
            .set_writer_version(if v2 {
                WriterVersion::PARQUET_2_0
            } else {
                WriterVersion::PARQUET_1_0
            })
            .build()
    }

    /// Lists of 0-6 ints, every seventh list null when `null_lists`, element `j` of list `i`
    /// null when `null_elements` and `(i + j) % 11 == 0`.
    fn lists(n: usize, null_lists: bool, null_elements: bool, distinct: i32) -> ListArray {
        let mut b = ListBuilder::new(Int32Builder::new());
        for i in 0..n {
            if null_lists && i % 7 == 3 {
                b.append(false);
                continue;
            }
            for j in 0..(i * 31 % 7) {
                if null_elements && (i + j) % 11 == 0 {
                    b.values().append_null();
                } else {
                    b.values()
                        .append_value(((i * 7919 + j * 104_729) as i32) % distinct - 40);
                }
            }
            b.append(true);
        }
        b.finish()
    }

    /// The direct path's result for `array` written with `props`: `Err(())` when the chunk is
    /// not eligible (a version 2 writer's DELTA_BINARY_PACKED integers).
    fn roundtrip(array: &ListArray, props: WriterProperties) -> Result<Option<ArrayRef>, ()> {
        let batch =
            RecordBatch::try_from_iter([("tags", Arc::new(array.clone()) as ArrayRef)]).unwrap();
        let (bytes, meta) = written(&batch, props);
        let root = meta
            .file_metadata()
            .schema_descr()
            .get_column_root(0)
            .clone();
        let chunk = meta.row_group(0).column(0);
        let dt = batch.schema().field(0).data_type().clone();
        if !eligible(&root, chunk, &dt) {
            assert!(chunk
                .encodings()
                .any(|e| e == Encoding::DELTA_BINARY_PACKED));
            return Err(());
        }
        Ok(decode(Arc::new(bytes), &root, chunk, &dt, array.len()).unwrap())
    }

    #[test]
    fn lists_decode_as_the_general_reader_does() {
        let mut decoded = 0;
        for null_lists in [false, true] {
            for dictionary in [false, true] {
                for v2 in [false, true] {
                    for distinct in [3, 200, 100_000] {
                        let array = lists(5000, null_lists, false, distinct);
                        let case = format!(
                            "nulls {null_lists} dict {dictionary} v2 {v2} distinct {distinct}"
                        );
                        let Ok(got) = roundtrip(&array, props(dictionary, v2)) else {
                            // Version 2 integers outside a dictionary are delta-encoded.
                            assert!(v2 && (!dictionary || distinct == 100_000), "{case}");
                            continue;
                        };
                        let got = got.unwrap_or_else(|| panic!("{case}: declined"));
                        assert_eq!(got.to_data(), array.to_data(), "{case}");
                        assert_eq!(got.null_count(), if null_lists { 714 } else { 0 }, "{case}");
                        decoded += 1;
                    }
                }
            }
        }
        // Per null setting: 3 cardinalities of v1 without and with a dictionary, and the two
        // small cardinalities of v2 with one.
        assert_eq!(decoded, 2 * (3 + 3 + 2));
    }

    #[test]
    fn null_elements_are_left_to_the_general_reader() {
        let array = lists(3000, true, true, 50);
        assert_eq!(roundtrip(&array, props(true, false)), Ok(None));
        assert_eq!(roundtrip(&array, props(false, false)), Ok(None));
        assert_eq!(roundtrip(&array, props(true, true)), Ok(None));
    }

    #[test]
    fn other_columns_are_not_eligible() {
        let array = lists(10, false, false, 5);
        let batch = RecordBatch::try_from_iter([("tags", Arc::new(array) as ArrayRef)]).unwrap();
        let (_, meta) = written(&batch, props(true, false));
        let schema = meta.file_metadata().schema_descr();
        let root = schema.get_column_root(0);
        let chunk = meta.row_group(0).column(0);
        // The Arrow type must be the list of the leaf's own type.
        let int64_list = DataType::List(Arc::new(arrow_schema::Field::new(
            "item",
            DataType::Int64,
            true,
        )));
        assert!(!eligible(root, chunk, &int64_list));
        assert!(!eligible(root, chunk, &DataType::Int32));
    }

    #[test]
    fn levels_are_checked() {
        let mut out = Vec::new();
        // RLE run of 4 levels of value 3 with bit width 2 and maximum 2.
        let e = unpack_levels(&[0x08, 0x03], 2, 2, 4, &mut out).unwrap_err();
        assert!(
            e.to_string().contains("above the column's maximum 2"),
            "{e}"
        );
        // A bit-packed group whose bytes are missing.
        out.clear();
        let e = unpack_levels(&[0x03], 1, 1, 8, &mut out).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        // An empty run.
        out.clear();
        let e = unpack_levels(&[0x00, 0x01], 1, 1, 8, &mut out).unwrap_err();
        assert!(e.to_string().contains("empty run"), "{e}");
        // One bit-packed group of 8 at width 2: 0,1,2,1,0,0,2,2.
        out.clear();
        unpack_levels(&[0x03, 0b0110_0100, 0b1010_0000], 2, 2, 8, &mut out).unwrap();
        assert_eq!(out, [0, 1, 2, 1, 0, 0, 2, 2]);
    }
}
