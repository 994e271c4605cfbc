//! Whole-dataset reads (`read`, `read_many`, the fixed-format loaders) and the small-dataset
//! cache behind them: what a hit returns, what bypasses or invalidates an entry (the cache
//! validates each file's size and modification time), and the budget with its LRU eviction.
//! The cache is process-global: every cache assertion lives in one test, and the other tests
//! here read with `no_cache`, which never touches its counters.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use zenith_core::cache;
use zenith_core::{DecodeOptions, Error, Format, ReadOptions};

fn batch(first: i64, n: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
    ]));
    let ids = first..first + n as i64;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.clone())),
        Arc::new(Float64Array::from_iter_values(ids.map(|i| i as f64 * 2.0))),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn write_parquet(path: &Path, b: &RecordBatch) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(100))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, b.schema(), Some(props)).unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
}

fn write_ipc(path: &Path, b: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = arrow_ipc::writer::FileWriter::try_new(file, &b.schema()).unwrap();
    w.write(b).unwrap();
    w.finish().unwrap();
}

fn s(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

fn uncached() -> ReadOptions {
    ReadOptions {
        no_cache: true,
        ..Default::default()
    }
}

/// Counters relative to a snapshot: (entries, hits, misses).
struct Counters {
    hits: u64,
    misses: u64,
}

impl Counters {
    fn now() -> Counters {
        let s = cache::stats();
        Counters {
            hits: s.hits,
            misses: s.misses,
        }
    }

    /// (entries now, hits since, misses since).
    fn since(&self) -> (usize, u64, u64) {
        let s = cache::stats();
        (s.entries, s.hits - self.hits, s.misses - self.misses)
    }
}

fn bytes_of(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.get_array_memory_size()).sum()
}

#[test]
fn the_cache_serves_unchanged_files_and_rereads_changed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.parquet");
    write_parquet(&a, &batch(0, 500));
    let opts = ReadOptions::default();
    cache::clear();
    assert_eq!(cache::stats().limit_bytes, cache::DEFAULT_CACHE_BYTES);
    let c = Counters::now();

    // A first read misses and stores; the second is a hit with equal batches.
    let first = zenith_core::read(&s(&a), &opts).unwrap();
    assert_eq!(c.since(), (1, 0, 1));
    assert_eq!(cache::stats().used_bytes, bytes_of(&first));
    let second = zenith_core::read(&s(&a), &opts).unwrap();
    assert_eq!(c.since(), (1, 1, 1));
    assert_eq!(second, first);
    assert_eq!(ids(&second), (0..500).collect::<Vec<_>>());

    // `no_cache` neither looks up nor stores.
    assert_eq!(zenith_core::read(&s(&a), &uncached()).unwrap(), first);
    assert_eq!(c.since(), (1, 1, 1));

    // Another projection is another entry.
    let only_x = ReadOptions {
        columns: Some(vec!["x".into()]),
        ..Default::default()
    };
    let x = zenith_core::read(&s(&a), &only_x).unwrap();
    assert_eq!(x[0].num_columns(), 1);
    assert_eq!(c.since(), (2, 1, 2));
    zenith_core::read(&s(&a), &only_x).unwrap();
    assert_eq!(c.since(), (2, 2, 2));

    // A rewrite of another size is a miss: the stale entry goes, the new contents come back.
    write_parquet(&a, &batch(1000, 300));
    let changed = zenith_core::read(&s(&a), &opts).unwrap();
    assert_eq!(ids(&changed), (1000..1300).collect::<Vec<_>>());
    assert_eq!(c.since(), (2, 2, 3));
    assert_eq!(zenith_core::read(&s(&a), &opts).unwrap(), changed);
    assert_eq!(c.since(), (2, 3, 3));

    // A rewrite of the same size with another modification time is a miss too.
    let before = std::fs::metadata(&a).unwrap();
    write_parquet(&a, &batch(2000, 300));
    let file = std::fs::File::options().write(true).open(&a).unwrap();
    file.set_modified(before.modified().unwrap() + Duration::from_secs(5))
        .unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(&a).unwrap().len(), before.len());
    let same_size = zenith_core::read(&s(&a), &opts).unwrap();
    assert_eq!(ids(&same_size), (2000..2300).collect::<Vec<_>>());
    assert_eq!(c.since(), (2, 3, 4));

    // Decoder settings are part of the key: a CSV read with another delimiter is not a hit.
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "a;b\n1;2\n3;4\n").unwrap();
    let comma = zenith_core::read(&s(&csv), &opts).unwrap();
    assert_eq!(comma[0].num_columns(), 1);
    let semicolon = ReadOptions {
        decode: DecodeOptions {
            csv_delimiter: Some(b';'),
            ..Default::default()
        },
        ..Default::default()
    };
    let split = zenith_core::read(&s(&csv), &semicolon).unwrap();
    assert_eq!(split[0].num_columns(), 2);
    assert_eq!(c.since(), (4, 3, 6));

    // Arrow IPC is never cached (already zero-copy over the mapping).
    let ipc = dir.path().join("t.arrow");
    write_ipc(&ipc, &batch(0, 10));
    zenith_core::read(&s(&ipc), &opts).unwrap();
    zenith_core::read(&s(&ipc), &opts).unwrap();
    assert_eq!(c.since(), (4, 3, 6));

    // A budget of 0 evicts everything and stores nothing.
    cache::set_limit(0);
    assert_eq!(cache::stats().used_bytes, 0);
    assert_eq!(c.since(), (0, 3, 6));
    zenith_core::read(&s(&a), &opts).unwrap();
    zenith_core::read(&s(&a), &opts).unwrap();
    assert_eq!(c.since(), (0, 3, 8));

    // A budget of two entries evicts the least recently used one.
    let files: Vec<_> = (0..3)
        .map(|i| {
            let p = dir.path().join(format!("lru{i}.parquet"));
            write_parquet(&p, &batch(i * 100, 100));
            p
        })
        .collect();
    let one = bytes_of(&zenith_core::read(&s(&files[0]), &uncached()).unwrap());
    cache::set_limit(2 * one + one / 2);
    let c = Counters::now();
    zenith_core::read(&s(&files[0]), &opts).unwrap();
    zenith_core::read(&s(&files[1]), &opts).unwrap();
    zenith_core::read(&s(&files[0]), &opts).unwrap(); // hit: 0 is now the most recent
    zenith_core::read(&s(&files[2]), &opts).unwrap(); // evicts 1
    assert_eq!(c.since(), (2, 1, 3));
    assert_eq!(cache::stats().used_bytes, 2 * one);
    zenith_core::read(&s(&files[0]), &opts).unwrap();
    assert_eq!(c.since(), (2, 2, 3));
    zenith_core::read(&s(&files[1]), &opts).unwrap();
    assert_eq!(c.since(), (2, 2, 4));

    cache::clear();
    assert_eq!(cache::stats().used_bytes, 0);
    assert_eq!(c.since(), (0, 2, 4));
    cache::set_limit(cache::DEFAULT_CACHE_BYTES);
}

#[test]
fn read_many_concatenates_specs_in_order_with_the_projected_schema() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    write_parquet(&a, &batch(0, 150));
    write_parquet(&b, &batch(150, 50));
    let opts = ReadOptions {
        columns: Some(vec!["x".into(), "id".into()]),
        no_cache: true,
        ..Default::default()
    };
    let (schema, got) = zenith_core::read_many(&[s(&b), s(&a)], &opts).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["x", "id"]);
    let rows: Vec<usize> = got.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(rows, [50, 100, 50]);
    let ids: Vec<i64> = got
        .iter()
        .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    let want: Vec<i64> = (150..200).chain(0..150).collect();
    assert_eq!(ids, want);
}

#[test]
fn a_format_override_reads_any_name_and_fixed_loaders_refuse_other_formats() {
    // (The fixed loaders read with the cache on: only failing calls, which stop before it.)
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("table.dat");
    std::fs::write(&csv, "id,x\n1,0.5\n2,1.5\n").unwrap();
    // Neither magic bytes nor a known extension.
    let err = zenith_core::read(&s(&csv), &uncached()).unwrap_err();
    assert!(
        matches!(&err, Error::Format { path, location, .. } if path == &csv && location == "byte 0"),
        "{err}"
    );
    let opts = ReadOptions {
        format: Some(Format::Csv),
        no_cache: true,
        ..Default::default()
    };
    let got = zenith_core::read(&s(&csv), &opts).unwrap();
    assert_eq!(ids(&got), [1, 2]);
    let err = zenith_core::load_parquet(&s(&csv)).unwrap_err();
    assert!(
        matches!(&err, Error::Format { path, location, .. } if path == &csv && location == "footer"),
        "{err}"
    );
    let err = zenith_core::load_arrow_ipc(&s(&csv)).unwrap_err();
    assert!(
        matches!(&err, Error::Format { path, location, .. } if path == &csv && location == "byte 0"),
        "{err}"
    );
}
