//! The Parquet reader through the public API (`read`, `info`, `Dataset`): every encoding,
//! compression and page version it meets reads back the exact values written, projections
//! keep the requested order, `info` reports the footer exactly, and damaged files give a typed
//! error naming the file instead of a panic.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::basic::{Compression, PageType, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::reader::{FileReader, SerializedFileReader};
use zenith_core::{ColumnStatistics, DecodeOptions, Error, Format, ReadOptions, StatValue};

const ROWS: usize = 1000;
const ROW_GROUP: usize = 128;

/// `id` 0.., `i32` = 3*id-7, `f32` = id/2, `f64` = id/4 (null every 7th), `name` (null every
/// 5th, 13 distinct values), `flag` (id % 3 == 0).
fn table(first: i64, n: usize) -> RecordBatch {
    let ids = first..first + n as i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("i32", DataType::Int32, false),
        Field::new("f32", DataType::Float32, false),
        Field::new("f64", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.clone())),
        Arc::new(Int32Array::from_iter_values(
            ids.clone().map(|i| 3 * i as i32 - 7),
        )),
        Arc::new(Float32Array::from_iter_values(
            ids.clone().map(|i| i as f32 / 2.0),
        )),
        Arc::new(Float64Array::from_iter(
            ids.clone().map(|i| (i % 7 != 0).then_some(i as f64 / 4.0)),
        )),
        Arc::new(StringArray::from_iter(
            ids.clone()
                .map(|i| (i % 5 != 0).then(|| format!("n{:02}", i % 13))),
        )),
        Arc::new(BooleanArray::from_iter(ids.map(|i| Some(i % 3 == 0)))),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn props(row_group: usize) -> parquet::file::properties::WriterPropertiesBuilder {
    WriterProperties::builder().set_max_row_group_row_count(Some(row_group))
}

fn write(path: &Path, batch: &RecordBatch, props: WriterProperties) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn s(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// Concatenates batches into one with `batch`'s schema for comparison.
fn concat(batches: &[RecordBatch], like: &RecordBatch) -> RecordBatch {
    let columns = (0..like.num_columns())
        .map(|c| {
            let parts: Vec<&dyn arrow_array::Array> =
                batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow_select::concat::concat(&parts).unwrap()
        })
        .collect();
    RecordBatch::try_new(like.schema(), columns).unwrap()
}

fn assert_same_values(got: &RecordBatch, want: &RecordBatch, what: &str) {
    assert_eq!(got.num_rows(), want.num_rows(), "{what}: rows");
    assert_eq!(got.num_columns(), want.num_columns(), "{what}: columns");
    for (i, field) in want.schema().fields().iter().enumerate() {
        assert_eq!(
            got.schema().field(i).name(),
            field.name(),
            "{what}: column {i}"
        );
        assert_eq!(
            got.column(i),
            want.column(i),
            "{what}: column {}",
            field.name()
        );
    }
}

/// Reads a file both ways the engine does: mapped (`read`) and with positioned reads (the
/// loader's `Dataset::open` without `map_local`).
fn read_both_ways(path: &Path) -> [Vec<RecordBatch>; 2] {
    let opts = ReadOptions {
        no_cache: true,
        ..Default::default()
    };
    let mapped = zenith_core::read(&s(path), &opts).unwrap();
    let ds = zenith_core::Dataset::open(&[s(path)], None, &DecodeOptions::default()).unwrap();
    let pread = ds.read_all(&ds.projection(None).unwrap()).unwrap();
    [mapped, pread]
}

#[test]
fn every_encoding_compression_and_page_version_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let want = table(0, ROWS);
    let compressions = [
        Compression::UNCOMPRESSED,
        Compression::SNAPPY,
        Compression::ZSTD(ZstdLevel::try_new(3).unwrap()),
    ];
    let mut checked = 0;
    for dictionary in [true, false] {
        for compression in compressions {
            for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
                // Small pages too: a chunk of several pages takes another path than one page.
                for pages in [None, Some(40)] {
                    let what = format!("dict={dictionary} {compression:?} {version:?} {pages:?}");
                    let mut b = props(ROW_GROUP)
                        .set_dictionary_enabled(dictionary)
                        .set_compression(compression)
                        .set_writer_version(version);
                    if let Some(rows) = pages {
                        b = b
                            .set_data_page_row_count_limit(rows)
                            .set_write_batch_size(rows);
                    }
                    let path = dir.path().join(format!("t{checked}.parquet"));
                    write(&path, &want, b.build());

                    // The file really has what this case claims.
                    let reader =
                        SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
                    let meta = reader.metadata();
                    assert_eq!(meta.num_row_groups(), ROWS.div_ceil(ROW_GROUP), "{what}");
                    let id = meta.row_group(0).column(0);
                    // The footer keeps the codec, not its level.
                    assert_eq!(
                        std::mem::discriminant(&id.compression()),
                        std::mem::discriminant(&compression),
                        "{what}"
                    );
                    assert_eq!(id.dictionary_page_offset().is_some(), dictionary, "{what}");
                    let mut page_reader = reader
                        .get_row_group(0)
                        .unwrap()
                        .get_column_page_reader(0)
                        .unwrap();
                    let mut data_pages = Vec::new();
                    while let Some(page) = page_reader.get_next_page().unwrap() {
                        if page.page_type() != PageType::DICTIONARY_PAGE {
                            data_pages.push(page.page_type());
                        }
                    }
                    let page_type = match version {
                        WriterVersion::PARQUET_1_0 => PageType::DATA_PAGE,
                        WriterVersion::PARQUET_2_0 => PageType::DATA_PAGE_V2,
                    };
                    assert!(data_pages.iter().all(|p| *p == page_type), "{what}");
                    let expect_pages = pages.map_or(1, |rows| ROW_GROUP.div_ceil(rows));
                    assert_eq!(data_pages.len(), expect_pages, "{what}");

                    for (way, got) in ["mapped", "pread"].iter().zip(read_both_ways(&path)) {
                        assert_eq!(got.len(), ROWS.div_ceil(ROW_GROUP), "{what} {way}");
                        assert!(got[..got.len() - 1]
                            .iter()
                            .all(|b| b.num_rows() == ROW_GROUP));
                        assert_same_values(&concat(&got, &want), &want, &format!("{what} {way}"));
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 24);
}

#[test]
fn a_dictionary_that_falls_back_to_plain_mid_chunk_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fallback.parquet");
    let want = table(0, ROWS);
    let p = props(500)
        .set_dictionary_page_size_limit(64)
        .set_data_page_row_count_limit(50)
        .set_write_batch_size(50)
        .build();
    write(&path, &want, p);
    for got in read_both_ways(&path) {
        assert_eq!(got.len(), 2);
        assert_same_values(&concat(&got, &want), &want, "fallback");
    }
}

#[test]
fn projection_keeps_the_requested_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    let one_group = dir.path().join("one.parquet");
    let full = table(0, ROWS);
    write(&path, &full, props(ROW_GROUP).build());
    // One row group: fewer units than threads, so `read` also splits it by columns, decoding
    // each group of columns on its own thread and putting them side by side.
    write(&one_group, &full, props(ROWS).build());
    let whole = zenith_core::read(
        &s(&one_group),
        &ReadOptions {
            no_cache: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_same_values(&concat(&whole, &full), &full, "one row group, every column");
    for (path, cols) in [&path, &one_group].into_iter().flat_map(|p| {
        [
            vec!["name", "id", "f64"],
            vec!["flag"],
            vec!["f32", "i32"],
            vec!["flag", "name", "f64", "f32", "i32", "id"],
        ]
        .map(|cols| (p, cols))
    }) {
        let opts = ReadOptions {
            columns: Some(cols.iter().map(|c| c.to_string()).collect()),
            no_cache: true,
            ..Default::default()
        };
        let (schema, got) = zenith_core::read_many(&[s(path)], &opts).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, cols);
        let indices: Vec<usize> = cols
            .iter()
            .map(|c| full.schema().index_of(c).unwrap())
            .collect();
        let want = full.project(&indices).unwrap();
        assert!(got.iter().all(|b| b.schema() == schema));
        assert_same_values(&concat(&got, &want), &want, &format!("{path:?} {cols:?}"));
    }
    let twice = ReadOptions {
        columns: Some(vec!["id".into(), "f32".into(), "id".into()]),
        no_cache: true,
        ..Default::default()
    };
    let err = zenith_core::read(&s(&path), &twice).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid argument `columns`: column \"id\" is listed twice"
    );
}

#[test]
fn several_files_read_in_listing_order() {
    let dir = tempfile::tempdir().unwrap();
    // Written out of order: the listing sorts by name.
    write(
        &dir.path().join("b.parquet"),
        &table(300, 450),
        props(100).build(),
    );
    write(
        &dir.path().join("a.parquet"),
        &table(0, 300),
        props(64).build(),
    );
    write(
        &dir.path().join("c.parquet"),
        &table(750, 50),
        props(1000).build(),
    );
    let got = zenith_core::read(
        &s(dir.path()),
        &ReadOptions {
            no_cache: true,
            ..Default::default()
        },
    )
    .unwrap();
    // 5 + 5 + 1 row groups, one batch each.
    let rows: Vec<usize> = got.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(rows, vec![64, 64, 64, 64, 44, 100, 100, 100, 100, 50, 50]);
    let want = table(0, 800);
    assert_same_values(&concat(&got, &want), &want, "three files");
}

fn stat(s: &[ColumnStatistics], column: &str) -> ColumnStatistics {
    s.iter().find(|c| c.column == column).unwrap().clone()
}

#[test]
fn info_reports_rows_units_bytes_and_statistics_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    write(&a, &table(0, 300), props(128).build());
    write(&b, &table(300, 500), props(200).build());
    let info = zenith_core::info(&[s(dir.path())], None, &DecodeOptions::default()).unwrap();
    assert_eq!(info.format, Format::Parquet);
    assert_eq!(info.rows, 800);
    assert_eq!(info.schema.fields().len(), 6);
    let sizes = [
        std::fs::metadata(&a).unwrap().len(),
        std::fs::metadata(&b).unwrap().len(),
    ];
    assert_eq!(info.bytes, sizes[0] + sizes[1]);
    let files: Vec<(&Path, usize, usize, u64)> = info
        .files
        .iter()
        .map(|f| (f.path.as_path(), f.rows, f.units, f.bytes))
        .collect();
    assert_eq!(
        files,
        vec![
            (a.as_path(), 300, 3, sizes[0]),
            (b.as_path(), 500, 3, sizes[1])
        ]
    );
    let st = info.statistics.expect("parquet keeps statistics");
    let names: Vec<&str> = st.iter().map(|c| c.column.as_str()).collect();
    assert_eq!(names, ["id", "i32", "f32", "f64", "name", "flag"]);
    let ends = |c: &str| {
        let c = stat(&st, c);
        (c.min, c.max, c.null_count, c.has_values)
    };
    assert_eq!(
        ends("id"),
        (
            Some(StatValue::Int(0)),
            Some(StatValue::Int(799)),
            Some(0),
            true
        )
    );
    assert_eq!(
        ends("i32"),
        (
            Some(StatValue::Int(-7)),
            Some(StatValue::Int(3 * 799 - 7)),
            Some(0),
            true
        )
    );
    assert_eq!(
        ends("f32"),
        (
            Some(StatValue::Float(0.0)),
            Some(StatValue::Float(399.5)),
            Some(0),
            true
        )
    );
    // Nulls at every multiple of 7 (0, 7, ..., 798) and 5 (0, ..., 795).
    assert_eq!(
        ends("f64"),
        (
            Some(StatValue::Float(0.25)),
            Some(StatValue::Float(799.0 / 4.0)),
            Some(115),
            true
        )
    );
    assert_eq!(
        ends("name"),
        (
            Some(StatValue::Text("n00".into())),
            Some(StatValue::Text("n12".into())),
            Some(160),
            true
        )
    );
    assert_eq!(
        ends("flag"),
        (
            Some(StatValue::Bool(false)),
            Some(StatValue::Bool(true)),
            Some(0),
            true
        )
    );
}

#[test]
fn info_of_an_all_null_column_has_no_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nulls.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(vec![None::<i64>; 10]))],
    )
    .unwrap();
    write(&path, &batch, props(4).build());
    let info = zenith_core::info(&[s(&path)], None, &DecodeOptions::default()).unwrap();
    let x = stat(&info.statistics.unwrap(), "x");
    assert_eq!(
        (x.min, x.max, x.null_count, x.has_values),
        (None, None, Some(10), false)
    );
    let got = zenith_core::load_parquet(&s(&path)).unwrap();
    assert_eq!(
        got.iter().map(|b| b.column(0).null_count()).sum::<usize>(),
        10
    );
}

/// Runs `f`, failing the test with `what` if it panics.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: the reader panicked: {msg}");
        }
    }
}

/// Reads `path` both ways (mapped and positioned reads), returning the first error.
fn read_result(path: &Path) -> Result<usize, Error> {
    let opts = ReadOptions {
        no_cache: true,
        ..Default::default()
    };
    let rows = zenith_core::read(&s(path), &opts)?
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    let ds = zenith_core::Dataset::open(&[s(path)], None, &DecodeOptions::default())?;
    ds.read_all(&ds.projection(None)?)?;
    Ok(rows)
}

#[test]
fn a_truncated_file_is_a_format_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write(&good, &table(0, 200), props(64).build());
    let bytes = std::fs::read(&good).unwrap();
    let path = dir.path().join("cut.parquet");
    for keep in [
        0,
        4,
        8,
        100,
        bytes.len() / 2,
        bytes.len() - 9,
        bytes.len() - 1,
    ] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = no_panic(&format!("keep {keep}"), || read_result(&path)).unwrap_err();
        match &err {
            Error::Format {
                path: p, location, ..
            } => {
                assert_eq!(p, &path, "keep {keep}");
                assert_eq!(location, "footer", "keep {keep}: {err}");
            }
            other => panic!("keep {keep}: {other}"),
        }
    }
}

#[test]
fn a_damaged_page_header_is_a_format_error_naming_the_row_group() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    for dictionary in [true, false] {
        write(
            &good,
            &table(0, 400),
            props(100).set_dictionary_enabled(dictionary).build(),
        );
        let meta = SerializedFileReader::new(std::fs::File::open(&good).unwrap())
            .unwrap()
            .metadata()
            .clone();
        for column in [0, 4] {
            let chunk = meta.row_group(2).column(column);
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or(chunk.data_page_offset()) as usize;
            let mut bytes = std::fs::read(&good).unwrap();
            // The first bytes of the page header become an invalid Thrift field header.
            bytes[start..start + 4].copy_from_slice(&[0xff; 4]);
            let path = dir
                .path()
                .join(format!("bad-{dictionary}-{column}.parquet"));
            std::fs::write(&path, &bytes).unwrap();
            let what = format!("dictionary {dictionary} column {column}");
            let err = no_panic(&what, || read_result(&path)).unwrap_err();
            match &err {
                Error::Format {
                    path: p, location, ..
                } => {
                    assert_eq!(p, &path, "{what}");
                    assert_eq!(location, "row group 2", "{what}: {err}");
                }
                other => panic!("{what}: {other}"),
            }
        }
    }
}

#[test]
fn any_flipped_byte_gives_values_or_a_typed_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    let small = table(0, 40);
    write(
        &good,
        &small.project(&[0, 3, 4]).unwrap(),
        props(20)
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .build(),
    );
    let bytes = std::fs::read(&good).unwrap();
    let path = dir.path().join("flipped.parquet");
    let mut errors = 0;
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        match no_panic(&format!("byte {at} of {} flipped", bytes.len()), || {
            read_result(&path)
        }) {
            Ok(rows) => assert_eq!(rows, 40, "byte {at}"),
            Err(e) => {
                errors += 1;
                assert!(
                    e.to_string().contains(&s(&path)),
                    "byte {at}: the error does not name the file: {e}"
                );
            }
        }
    }
    assert!(errors > 0);
}
