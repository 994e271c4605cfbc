//! Parquet files as other writers leave them, built here with the parquet crate's low-level
//! writer: Zenith reads them with the schema and values pyarrow gives (the expected values are
//! pyarrow 26's for the same layout): INT96 timestamps whatever the embedded Arrow schema says,
//! time zones restored where the stored unit differs from the hint, `date64` hints on INT32
//! dates, dictionary hints with large value types, UUID columns, brotli pages, repeated fields
//! without a LIST annotation, list elements stored narrower than the hint, and dictionary page
//! offsets that pyarrow ignores.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMillisecondType, TimestampNanosecondType};
use arrow_array::{Array, ArrayRef, Date32Array, DictionaryArray, Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, FixedLenByteArray, Int96};
use parquet::file::metadata::{
    ColumnChunkMetaData, KeyValue, ParquetMetaDataReader, ParquetMetaDataWriter,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::parser::parse_message_type;
use zenith_core::{DecodeOptions, ReadOptions};

fn s(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// Writes one row group of the Parquet schema `message` with `columns` (which writes each
/// column in order), embedding `hint` as the Arrow schema when given.
fn write_raw(
    path: &Path,
    message: &str,
    hint: Option<&Schema>,
    columns: impl FnOnce(&mut SerializedRowGroupWriter<'_, File>),
) {
    let schema = Arc::new(parse_message_type(message).unwrap());
    let kv = hint.map(|h| {
        vec![KeyValue::new(
            parquet::arrow::ARROW_SCHEMA_META_KEY.to_string(),
            parquet::arrow::encode_arrow_schema(h),
        )]
    });
    let props = Arc::new(
        WriterProperties::builder()
            .set_key_value_metadata(kv)
            .build(),
    );
    let mut w = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    columns(&mut rg);
    rg.close().unwrap();
    w.close().unwrap();
}

/// Writes the next column of `rg` with the typed writer for `T`.
fn column<T: parquet::data_type::DataType>(
    rg: &mut SerializedRowGroupWriter<'_, File>,
    values: &[T::T],
    def: Option<&[i16]>,
    rep: Option<&[i16]>,
) {
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<T>().write_batch(values, def, rep).unwrap();
    c.close().unwrap();
}

/// The file read both ways the engine reads (mapped through `read`, positioned reads through
/// a `Dataset`), each concatenated into one batch; both must agree.
fn read(path: &Path) -> RecordBatch {
    let opts = ReadOptions {
        no_cache: true,
        ..Default::default()
    };
    let mapped = zenith_core::read(&s(path), &opts).unwrap();
    let ds = zenith_core::Dataset::open(&[s(path)], None, &DecodeOptions::default()).unwrap();
    let pread = ds.read_all(&ds.projection(None).unwrap()).unwrap();
    let one = |batches: Vec<RecordBatch>| {
        arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
    };
    let (mapped, pread) = (one(mapped), one(pread));
    assert_eq!(mapped, pread, "mapped and positioned reads differ");
    mapped
}

fn int96(julian_day: u32, nanos: u64) -> Int96 {
    let mut v = Int96::new();
    v.set_data(nanos as u32, (nanos >> 32) as u32, julian_day);
    v
}

#[test]
fn int96_is_nanoseconds_without_a_time_zone_whatever_the_hint_says() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("int96.parquet");
    // As pyarrow writes `timestamp[us, tz=UTC]` with use_deprecated_int96_timestamps: the hint
    // keeps the unit and zone, the column is INT96.
    let hint = Schema::new(vec![Field::new(
        "t",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )]);
    // 1000-01-01T00:00:01, null, 9000-12-31T23:59:59.999999, 2001-02-03T04:05:06.789012.
    let values = [
        int96(2_086_303, 1_000_000_000),
        int96(5_008_607, 86_399_999_999_000),
        int96(2_451_944, 14_706_789_012_000),
    ];
    write_raw(
        &path,
        "message m { optional int96 t; }",
        Some(&hint),
        |rg| {
            column::<parquet::data_type::Int96Type>(rg, &values, Some(&[1, 0, 1, 1]), None);
        },
    );
    let got = read(&path);
    assert_eq!(
        got.schema().field(0).data_type(),
        &DataType::Timestamp(TimeUnit::Nanosecond, None)
    );
    // pyarrow's values: years 1000 and 9000 wrap around the nanosecond range as they do there.
    let t = got.column(0).as_primitive::<TimestampNanosecondType>();
    assert_eq!(
        t.iter().collect::<Vec<_>>(),
        [
            Some(6_283_264_148_419_103_232),
            None,
            Some(515_999_115_485_379_608),
            Some(981_173_106_789_012_000)
        ]
    );
}

#[test]
fn a_time_zone_is_restored_when_the_stored_unit_differs_from_the_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tz.parquet");
    // pyarrow stores `timestamp[s, tz=Europe/Paris]` as TIMESTAMP(MILLIS, adjusted to UTC) and
    // reads it back as `timestamp[ms, tz=Europe/Paris]`; `date64` is stored as an INT32 DATE
    // and read back as `date32`.
    let hint = Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Second, Some("Europe/Paris".into())),
            true,
        ),
        Field::new("local", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("d", DataType::Date64, true),
    ]);
    let message = "message m {
        optional int64 ts (TIMESTAMP(MILLIS, true));
        optional int64 local (TIMESTAMP(MILLIS, false));
        optional int32 d (DATE);
    }";
    write_raw(&path, message, Some(&hint), |rg| {
        column::<parquet::data_type::Int64Type>(rg, &[1_000, 86_400_000], Some(&[1, 1]), None);
        column::<parquet::data_type::Int64Type>(rg, &[-5_000], Some(&[0, 1]), None);
        column::<parquet::data_type::Int32Type>(rg, &[18_000, -1], Some(&[1, 1]), None);
    });
    let got = read(&path);
    let types: Vec<DataType> = got
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        [
            DataType::Timestamp(TimeUnit::Millisecond, Some("Europe/Paris".into())),
            DataType::Timestamp(TimeUnit::Millisecond, None),
            DataType::Date32,
        ]
    );
    let ts = got.column(0).as_primitive::<TimestampMillisecondType>();
    assert_eq!(ts.values().to_vec(), [1_000, 86_400_000]);
    let local = got.column(1).as_primitive::<TimestampMillisecondType>();
    assert_eq!(local.iter().collect::<Vec<_>>(), [None, Some(-5_000)]);
    let d = got
        .column(2)
        .as_any()
        .downcast_ref::<Date32Array>()
        .unwrap();
    assert_eq!(d.values().to_vec(), [18_000, -1]);
}

#[test]
fn a_dictionary_hint_takes_the_stored_value_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dict.parquet");
    // polars writes its categoricals with a `dictionary<uint32, large_string>` hint; pyarrow
    // reads `dictionary<uint32, string>`.
    let hint = Schema::new(vec![Field::new(
        "cat",
        DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::LargeUtf8)),
        true,
    )]);
    let values: Vec<ByteArray> = ["a", "b", "a"].iter().map(|v| (*v).into()).collect();
    write_raw(
        &path,
        "message m { optional binary cat (STRING); }",
        Some(&hint),
        |rg| column::<parquet::data_type::ByteArrayType>(rg, &values, Some(&[1, 0, 1, 1]), None),
    );
    let got = read(&path);
    assert_eq!(
        got.schema().field(0).data_type(),
        &DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
    );
    let dict = got
        .column(0)
        .as_any()
        .downcast_ref::<DictionaryArray<arrow_array::types::UInt32Type>>()
        .unwrap();
    let strings = arrow_cast::cast(dict, &DataType::Utf8).unwrap();
    assert_eq!(
        strings.as_string::<i32>().iter().collect::<Vec<_>>(),
        [Some("a"), None, Some("b"), Some("a")]
    );
}

#[test]
fn a_uuid_column_is_the_arrow_uuid_extension_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uuid.parquet");
    let id: Vec<u8> = (0u8..16).collect();
    let values = [FixedLenByteArray::from(id.clone())];
    write_raw(
        &path,
        "message m { required fixed_len_byte_array(16) id (UUID); }",
        None,
        |rg| column::<parquet::data_type::FixedLenByteArrayType>(rg, &values, None, None),
    );
    let got = read(&path);
    let field = got.schema().field(0).clone();
    assert_eq!(field.data_type(), &DataType::FixedSizeBinary(16));
    assert_eq!(
        field
            .metadata()
            .get("ARROW:extension:name")
            .map(String::as_str),
        Some("arrow.uuid")
    );
    assert_eq!(got.column(0).as_fixed_size_binary().value(0), &id[..]);
}

#[test]
fn brotli_pages_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brotli.parquet");
    let values = Int32Array::from_iter((0..3000).map(|i| (i % 7 != 0).then_some(i * 3 - 5)));
    let batch = RecordBatch::try_from_iter([("v", Arc::new(values.clone()) as ArrayRef)]).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::BROTLI(Default::default()))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        File::create(&path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let got = read(&path);
    assert_eq!(got.column(0).as_primitive::<Int32Type>(), &values);
}

#[test]
fn a_repeated_field_without_a_list_annotation_is_a_list_of_required_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repeated.parquet");
    // Rows [1, 2], [], [3] of a bare `repeated int32` (pyarrow: list<int32 not null>), and a
    // repeated group of one field (pyarrow: list<struct<s: string not null> not null>).
    let strings: Vec<ByteArray> = ["x", "y"].iter().map(|v| (*v).into()).collect();
    write_raw(
        &path,
        "message m { repeated int32 xs; repeated group g { required binary s (STRING); } }",
        None,
        |rg| {
            column::<parquet::data_type::Int32Type>(
                rg,
                &[1, 2, 3],
                Some(&[1, 1, 0, 1]),
                Some(&[0, 1, 0, 0]),
            );
            column::<parquet::data_type::ByteArrayType>(
                rg,
                &strings,
                Some(&[1, 0, 1]),
                Some(&[0, 0, 0]),
            );
        },
    );
    let got = read(&path);
    assert_eq!(got.num_rows(), 3);
    let xs = got.column(0).as_list::<i32>();
    let rows: Vec<Vec<i32>> = (0..3)
        .map(|i| xs.value(i).as_primitive::<Int32Type>().values().to_vec())
        .collect();
    assert_eq!(rows, [vec![1, 2], vec![], vec![3]]);
    assert_eq!(xs.null_count(), 0);
    let g = got.column(1).as_list::<i32>();
    let lens: Vec<usize> = (0..3).map(|i| g.value(i).len()).collect();
    assert_eq!(lens, [1, 0, 1]);
    let s = g.values().as_struct().column(0).as_string::<i32>();
    assert_eq!(s.iter().collect::<Vec<_>>(), [Some("x"), Some("y")]);
}

#[test]
fn a_list_element_stored_narrower_than_the_hint_keeps_the_stored_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("narrow.parquet");
    // The hint says list<int64>, the element is stored as INT32 (pyarrow: list<int32>).
    let hint = Schema::new(vec![Field::new(
        "l",
        DataType::List(Arc::new(Field::new("element", DataType::Int64, true))),
        true,
    )]);
    let message = "message m {
        optional group l (LIST) { repeated group list { optional int32 element; } }
    }";
    write_raw(&path, message, Some(&hint), |rg| {
        // Rows [7, null], null, [].
        column::<parquet::data_type::Int32Type>(rg, &[7], Some(&[3, 2, 0, 1]), Some(&[0, 1, 0, 0]));
    });
    let got = read(&path);
    let l = got.column(0).as_list::<i32>();
    assert_eq!(
        l.value_type(),
        DataType::Int32,
        "{:?}",
        got.schema().field(0)
    );
    assert_eq!(
        l.iter().map(|v| v.map(|a| a.len())).collect::<Vec<_>>(),
        [Some(2), None, Some(0)]
    );
    let values = l.values().as_primitive::<Int32Type>();
    assert_eq!(values.iter().collect::<Vec<_>>(), [Some(7), None]);
}

/// `file` (a whole Parquet file) with the footer rewritten after `edit` changed its metadata.
fn with_edited_footer(
    file: &[u8],
    edit: impl Fn(usize, ColumnChunkMetaData) -> ColumnChunkMetaData,
) -> Vec<u8> {
    let bytes = bytes::Bytes::copy_from_slice(file);
    let meta = ParquetMetaDataReader::new()
        .parse_and_finish(&bytes)
        .unwrap();
    let footer_len = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into().unwrap());
    let body = file.len() - 8 - footer_len as usize;
    let mut builder = meta.into_builder();
    let row_groups = builder
        .take_row_groups()
        .into_iter()
        .map(|rg| {
            let columns = rg
                .columns()
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, c)| edit(i, c))
                .collect();
            rg.into_builder()
                .set_column_metadata(columns)
                .build()
                .unwrap()
        })
        .collect();
    let meta = builder.set_row_groups(row_groups).build();
    let mut out = file[..body].to_vec();
    ParquetMetaDataWriter::new(&mut out, &meta)
        .finish()
        .unwrap();
    out
}

#[test]
fn dictionary_page_offsets_pyarrow_ignores_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    // `a` without a dictionary and a dictionary page offset of 0 (as some writers record "no
    // dictionary"); `b` dictionary-encoded with its dictionary page offset pointing past its
    // data page offset (pyarrow then reads from the data page offset, where the dictionary
    // page lies). Both columns also take the direct path's decoder.
    let a = arrow_array::Int64Array::from_iter_values((0..500).map(|i| i * 11));
    let b = arrow_array::Int64Array::from_iter_values((0..500).map(|i| i % 3));
    let batch = RecordBatch::try_from_iter([
        ("a", Arc::new(a.clone()) as ArrayRef),
        ("b", Arc::new(b.clone()) as ArrayRef),
    ])
    .unwrap();
    let props = WriterProperties::builder()
        .set_column_dictionary_enabled("a".into(), false)
        .set_column_dictionary_enabled("b".into(), true)
        .build();
    let mut file = Vec::new();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let edited = with_edited_footer(&file, |i, c| {
        let builder = c.clone().into_builder();
        match i {
            0 => builder.set_dictionary_page_offset(Some(0)),
            _ => {
                let dict = c.dictionary_page_offset().unwrap();
                builder
                    .set_data_page_offset(dict)
                    .set_dictionary_page_offset(Some(dict + 1))
            }
        }
        .build()
        .unwrap()
    });
    let path = dir.path().join("offsets.parquet");
    std::fs::write(&path, edited).unwrap();
    let got = read(&path);
    assert_eq!(
        got.column(0)
            .as_primitive::<arrow_array::types::Int64Type>(),
        &a
    );
    assert_eq!(
        got.column(1)
            .as_primitive::<arrow_array::types::Int64Type>(),
        &b
    );
}
