//! Arrow IPC files and streams as other writers leave them, read through the public API with
//! the values pyarrow reads: LZ4 and ZSTD bodies, pre-0.15 stream framing, schema-only streams,
//! dictionary deltas and replacements (fixtures in `tests/data/ipc/`, written by
//! `scripts/make_ipc_fixtures.py`), detection from content whatever the name, and big-endian
//! files and streams (built here: pyarrow cannot write them), swapped to native order.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, DictionaryArray, Float64Array, Int32Array,
    Int64Array, RecordBatch, StringArray,
};
use arrow_ipc::writer::FileWriter;
use arrow_schema::{DataType, Field, Schema};
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};
use zenith_core::{DecodeOptions, Error, Format, ReadOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ipc")
        .join(name)
}

fn s(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

fn read(path: &Path) -> zenith_core::Result<Vec<RecordBatch>> {
    zenith_core::read(&s(path), &ReadOptions::default())
}

fn concat(batches: &[RecordBatch], schema: &Arc<Schema>) -> RecordBatch {
    arrow_select::concat::concat_batches(schema, batches).unwrap()
}

/// The fixture table of `make_ipc_fixtures.py`: 40 rows of `id`, `x`, `s`, `d`.
fn fixture_table() -> RecordBatch {
    let ids = 0..40i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("x", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("d", DataType::Decimal128(9, 2), true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.clone())),
        Arc::new(Float64Array::from_iter(
            ids.clone().map(|i| (i % 7 != 0).then_some(i as f64 * 0.25)),
        )),
        Arc::new(StringArray::from_iter(
            ids.clone()
                .map(|i| (i % 9 != 0).then(|| format!("s{}", i % 5))),
        )),
        Arc::new(
            Decimal128Array::from_iter_values(ids.map(|i| i as i128 * 101))
                .with_precision_and_scale(9, 2)
                .unwrap(),
        ),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn info(path: &Path) -> zenith_core::DatasetInfo {
    zenith_core::info(&[s(path)], None, &DecodeOptions::default()).unwrap()
}

#[test]
fn compressed_files_and_streams_read_back_exactly() {
    let want = fixture_table();
    for (name, format) in [
        ("lz4.feather", Format::Ipc),
        ("zstd.arrow", Format::Ipc),
        ("lz4.arrows", Format::IpcStream),
        ("zstd.stream", Format::IpcStream),
        ("legacy.stream", Format::IpcStream),
    ] {
        let path = fixture(name);
        let got = read(&path).unwrap();
        let rows: Vec<usize> = got.iter().map(|b| b.num_rows()).collect();
        assert_eq!(rows, [16, 16, 8], "{name}");
        assert_eq!(got[0].schema(), want.schema(), "{name}");
        assert_eq!(concat(&got, &want.schema()), want, "{name}");
        let info = info(&path);
        assert_eq!((info.format, info.rows), (format, 40), "{name}");
        assert_eq!(info.files[0].units, 3, "{name}");
    }
}

#[test]
fn content_decides_the_format_whatever_the_name() {
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [
        ("lz4.feather", Format::Ipc),
        ("lz4.arrows", Format::IpcStream),
        ("legacy.stream", Format::IpcStream),
        ("empty.arrows", Format::IpcStream),
    ] {
        for target in ["data", "data.bin", "data.csv", "data.stream", "data.arrow"] {
            let path = dir.path().join(format!("{name}-{target}"));
            std::fs::copy(fixture(name), &path).unwrap();
            assert_eq!(
                zenith_core::source::detect_format(&path).unwrap(),
                format,
                "{name} as {target}"
            );
            assert_eq!(info(&path).format, format, "{name} as {target}");
            std::fs::remove_file(&path).unwrap();
        }
    }
    let unknown = dir.path().join("mystery");
    std::fs::write(&unknown, [0x10u8, 0, 0, 0, 1, 2, 3, 4, 5, 6]).unwrap();
    let err = zenith_core::source::detect_format(&unknown).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: byte 0: cannot detect the format (no Parquet, Arrow or tar magic bytes, no Arrow \
             stream schema, unknown extension); pass format=",
            unknown.display()
        )
    );
}

#[test]
fn a_schema_only_stream_is_empty_with_its_schema() {
    let path = fixture("empty.arrows");
    assert_eq!(read(&path).unwrap(), Vec::<RecordBatch>::new());
    let ds = zenith_core::Dataset::open(&[s(&path)], None, &DecodeOptions::default()).unwrap();
    assert_eq!(ds.schema(), fixture_table().schema());
    assert_eq!(ds.units().len(), 0);
    let info = info(&path);
    assert_eq!((info.rows, info.files[0].units), (0, 0));
}

#[test]
fn dictionary_deltas_and_replacements_give_each_batch_its_dictionary() {
    let keys = [vec![0, 1, 1], vec![2, 0], vec![3, 3, 1, 2]];
    let sizes = [2, 3, 4];
    let words = ["a", "b", "c", "d"];
    for name in ["dict-delta.arrows", "dict-replace.arrows"] {
        let got = read(&fixture(name)).unwrap();
        assert_eq!(got.len(), 3, "{name}");
        for (i, batch) in got.iter().enumerate() {
            let dict = batch
                .column(0)
                .as_any()
                .downcast_ref::<DictionaryArray<Int32Type>>()
                .unwrap();
            let want = DictionaryArray::<Int32Type>::try_new(
                Int32Array::from(keys[i].clone()),
                Arc::new(StringArray::from(words[..sizes[i]].to_vec())),
            )
            .unwrap();
            assert_eq!(dict, &want, "{name} batch {i}");
            let v = Int32Array::from_iter_values(0..keys[i].len() as i32);
            assert_eq!(batch.column(1).as_ref(), &v as &dyn Array, "{name}");
        }
    }
}

#[test]
fn a_stream_cut_inside_a_message_names_the_file_and_byte() {
    let bytes = std::fs::read(fixture("legacy.stream")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.stream");
    std::fs::write(&path, &bytes[..bytes.len() - 30]).unwrap();
    let err = read(&path).unwrap_err();
    match &err {
        Error::Format { path: p, .. } => assert_eq!(p, &path),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("runs past the end"), "{err}");
}

/// The table of the big-endian files: int32 with a null, float64, decimal128(10, 2), bool.
fn endian_table() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int32, true),
        Field::new("f", DataType::Float64, false),
        Field::new("d", DataType::Decimal128(10, 2), false),
        Field::new("b", DataType::Boolean, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![
            Some(1),
            None,
            Some(-2),
            Some(0x0102_0304),
            Some(i32::MIN),
        ])),
        Arc::new(Float64Array::from(vec![1.5, -0.25, 1e300, 0.0, f64::MIN])),
        Arc::new(
            Decimal128Array::from(vec![12345, -1, 0, 9_999_999_999, -10_000_000_000])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
            Some(false),
        ])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// The flatbuffer type of a column of `endian_table` (and `Utf8`, to test the refusal).
fn fb_type<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    data_type: &DataType,
) -> (arrow_ipc::Type, WIPOffset<UnionWIPOffset>) {
    match data_type {
        DataType::Int32 => {
            let mut b = arrow_ipc::IntBuilder::new(fbb);
            b.add_bitWidth(32);
            b.add_is_signed(true);
            (arrow_ipc::Type::Int, b.finish().as_union_value())
        }
        DataType::Float64 => {
            let mut b = arrow_ipc::FloatingPointBuilder::new(fbb);
            b.add_precision(arrow_ipc::Precision::DOUBLE);
            (arrow_ipc::Type::FloatingPoint, b.finish().as_union_value())
        }
        DataType::Decimal128(p, s) => {
            let mut b = arrow_ipc::DecimalBuilder::new(fbb);
            b.add_precision(i32::from(*p));
            b.add_scale(i32::from(*s));
            b.add_bitWidth(128);
            (arrow_ipc::Type::Decimal, b.finish().as_union_value())
        }
        DataType::Boolean => {
            let b = arrow_ipc::BoolBuilder::new(fbb);
            (arrow_ipc::Type::Bool, b.finish().as_union_value())
        }
        DataType::Utf8 => {
            let b = arrow_ipc::Utf8Builder::new(fbb);
            (arrow_ipc::Type::Utf8, b.finish().as_union_value())
        }
        other => panic!("{other}"),
    }
}

/// A big-endian schema flatbuffer for `schema`.
fn be_schema<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    schema: &Schema,
) -> WIPOffset<arrow_ipc::Schema<'a>> {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            let name = fbb.create_string(f.name());
            let (type_type, type_) = fb_type(fbb, f.data_type());
            let children = fbb.create_vector::<WIPOffset<arrow_ipc::Field>>(&[]);
            let mut b = arrow_ipc::FieldBuilder::new(fbb);
            b.add_name(name);
            b.add_nullable(f.is_nullable());
            b.add_type_type(type_type);
            b.add_type_(type_);
            b.add_children(children);
            b.finish()
        })
        .collect();
    let fields = fbb.create_vector(&fields);
    let mut b = arrow_ipc::SchemaBuilder::new(fbb);
    b.add_endianness(arrow_ipc::Endianness::Big);
    b.add_fields(fields);
    b.finish()
}

/// An encapsulated message: marker, length, metadata padded to 8 bytes.
fn encapsulate(metadata: &[u8]) -> Vec<u8> {
    let padded = metadata.len().div_ceil(8) * 8;
    let mut out = vec![0xff; 4];
    out.extend_from_slice(&(padded as u32).to_le_bytes());
    out.extend_from_slice(metadata);
    out.resize(8 + padded, 0);
    out
}

/// The big-endian schema message of `schema`.
fn be_schema_message(schema: &Schema) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let fb_schema = be_schema(&mut fbb, schema);
    let mut m = arrow_ipc::MessageBuilder::new(&mut fbb);
    m.add_version(arrow_ipc::MetadataVersion::V5);
    m.add_header_type(arrow_ipc::MessageHeader::Schema);
    m.add_header(fb_schema.as_union_value());
    let m = m.finish();
    fbb.finish(m, None);
    encapsulate(fbb.finished_data())
}

/// The record batch messages of `batch` with every fixed-width value buffer byte-swapped:
/// written little-endian by arrow-ipc, then swapped buffer by buffer.
fn be_batch_messages(batch: &RecordBatch) -> Vec<Vec<u8>> {
    let mut le = Vec::new();
    let mut w = FileWriter::try_new(&mut le, &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
    drop(w);
    let footer_len = i32::from_le_bytes(le[le.len() - 10..le.len() - 6].try_into().unwrap());
    let footer_start = le.len() - 10 - footer_len as usize;
    let footer = arrow_ipc::root_as_footer(&le[footer_start..le.len() - 10]).unwrap();
    let widths: Vec<usize> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().primitive_width().unwrap_or(1))
        .collect();
    footer
        .recordBatches()
        .unwrap()
        .iter()
        .map(|block| {
            let start = block.offset() as usize;
            let meta = block.metaDataLength() as usize;
            let mut bytes = le[start..start + meta + block.bodyLength() as usize].to_vec();
            let message = arrow_ipc::root_as_message(&le[start + 8..start + meta]).unwrap();
            let buffers = message.header_as_record_batch().unwrap().buffers().unwrap();
            // Two buffers per column (validity, values): swap each column's values.
            for (k, width) in widths.iter().enumerate() {
                let b = buffers.get(2 * k + 1);
                let at = meta + b.offset() as usize;
                for v in bytes[at..at + b.length() as usize].chunks_exact_mut(*width) {
                    v.reverse();
                }
            }
            bytes
        })
        .collect()
}

/// A big-endian IPC file of `batch`.
fn be_file(batch: &RecordBatch) -> Vec<u8> {
    let mut out = b"ARROW1\0\0".to_vec();
    out.extend(be_schema_message(&batch.schema()));
    let mut blocks = Vec::new();
    for message in be_batch_messages(batch) {
        let m = arrow_ipc::root_as_message(&message[8..]).unwrap();
        let meta = message.len() - m.bodyLength() as usize;
        blocks.push(arrow_ipc::Block::new(
            out.len() as i64,
            meta as i32,
            m.bodyLength(),
        ));
        out.extend(message);
    }
    let mut fbb = FlatBufferBuilder::new();
    let fb_schema = be_schema(&mut fbb, &batch.schema());
    let blocks = fbb.create_vector(&blocks);
    let mut f = arrow_ipc::FooterBuilder::new(&mut fbb);
    f.add_version(arrow_ipc::MetadataVersion::V5);
    f.add_schema(fb_schema);
    f.add_recordBatches(blocks);
    let f = f.finish();
    fbb.finish(f, None);
    out.extend_from_slice(fbb.finished_data());
    out.extend_from_slice(&(fbb.finished_data().len() as i32).to_le_bytes());
    out.extend_from_slice(b"ARROW1");
    out
}

/// A big-endian IPC stream of `batch`, with its end-of-stream marker.
fn be_stream(batch: &RecordBatch) -> Vec<u8> {
    let mut out = be_schema_message(&batch.schema());
    for message in be_batch_messages(batch) {
        out.extend(message);
    }
    out.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    out
}

/// The big-endian file is also a fixture, for the Python tests to compare with pyarrow; set
/// `ZENITH_WRITE_FIXTURES=1` to write it again after changing `endian_table`.
#[test]
fn big_endian_file_is_swapped_to_native() {
    let want = endian_table();
    let file = be_file(&want);
    let checked_in = fixture("big-endian.arrow");
    if std::env::var_os("ZENITH_WRITE_FIXTURES").is_some() {
        std::fs::write(&checked_in, &file).unwrap();
    }
    assert_eq!(std::fs::read(&checked_in).unwrap(), file);
    assert_eq!(read(&checked_in).unwrap(), vec![want.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let stream = dir.path().join("be.arrows");
    std::fs::write(&stream, be_stream(&want)).unwrap();
    assert_eq!(read(&stream).unwrap(), vec![want]);
}

#[test]
fn big_endian_strings_are_refused_naming_the_column() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int32, false),
        Field::new("s", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["a", "b"])),
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("be.arrow", be_file(&batch)),
        ("be.arrows", be_stream(&batch)),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = read(&path).unwrap_err();
        let location = if name.ends_with("arrow") {
            "schema"
        } else {
            "message at byte 0"
        };
        assert_eq!(
            err.to_string(),
            format!(
                "{}: {location}: column \"s\" of type Utf8 is stored big-endian; only fixed-width \
                 columns (integers, floats, decimals, temporals, booleans) of big-endian files \
                 are read",
                path.display()
            )
        );
        assert!(matches!(err, Error::Format { .. }));
    }
}
