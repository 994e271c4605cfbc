//! End-to-end tests of the engine on real files: every reader round-trips values, bad input
//! gives the typed error naming the file, and the loader delivers exact multisets and resumes.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use zenith_core::{DataLoader, Error, LoaderConfig, ReadOptions};

fn batch(n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float32, false),
    ]));
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
    let xs: ArrayRef = Arc::new(Float32Array::from_iter_values(
        (0..n).map(|i| i as f32 * 0.5),
    ));
    RecordBatch::try_new(schema, vec![ids, xs]).expect("batch")
}

fn write_parquet(path: &Path, b: &RecordBatch, row_group: usize) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let file = std::fs::File::create(path).expect("create");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(file, b.schema(), Some(props)).expect("writer");
    w.write(b).expect("write");
    w.close().expect("close");
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

#[test]
fn every_format_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = batch(1000);
    write_parquet(&dir.path().join("a.parquet"), &b, 100);
    let mut csv = std::fs::File::create(dir.path().join("a.csv")).expect("csv");
    arrow_csv::Writer::new(&mut csv).write(&b).expect("csv");
    let ipc = std::fs::File::create(dir.path().join("a.arrow")).expect("ipc");
    let mut w = arrow_ipc::writer::FileWriter::try_new(ipc, &b.schema()).expect("ipc");
    w.write(&b.slice(0, 400)).expect("ipc");
    w.write(&b.slice(400, 600)).expect("ipc");
    w.finish().expect("ipc");
    for name in ["a.parquet", "a.csv", "a.arrow"] {
        let path = dir.path().join(name);
        let got =
            zenith_core::read(path.to_str().expect("utf8"), &ReadOptions::default()).expect(name);
        assert_eq!(ids(&got), (0..1000).collect::<Vec<_>>(), "{name}");
    }
    let pq = zenith_core::load_parquet(dir.path().join("a.parquet").to_str().expect("utf8"))
        .expect("parquet");
    assert_eq!(pq.len(), 10, "one batch per row group");
}

#[test]
fn bad_input_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.parquet");
    let err =
        zenith_core::read(missing.to_str().expect("utf8"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let bad = dir.path().join("bad.parquet");
    std::fs::write(&bad, b"PAR1 not really parquet").expect("write");
    let err = zenith_core::read(bad.to_str().expect("utf8"), &ReadOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: footer", bad.display())),
        "{err}"
    );
    let opts = ReadOptions {
        columns: Some(vec!["nope".into()]),
        ..Default::default()
    };
    write_parquet(&dir.path().join("ok.parquet"), &batch(10), 5);
    let err = zenith_core::read(dir.path().join("ok.parquet").to_str().expect("utf8"), &opts)
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownColumn { ref column, .. } if column == "nope"),
        "{err}"
    );
}

#[test]
fn loader_delivers_every_row_once_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_parquet(&dir.path().join("a.parquet"), &batch(2000), 128);
    let src = vec![dir.path().to_str().expect("utf8").to_string()];
    let config = LoaderConfig {
        batch_size: 64,
        seed: 5,
        shuffle_window: Some(500),
        ..Default::default()
    };
    let loader = DataLoader::new(&src, config.clone()).expect("loader");
    let full: Vec<RecordBatch> = loader
        .record_batches()
        .expect("iter")
        .collect::<Result<_, _>>()
        .expect("epoch");
    assert!(full.iter().take(full.len() - 1).all(|b| b.num_rows() == 64));
    let mut all = ids(&full);
    assert_ne!(all, (0..2000).collect::<Vec<_>>(), "shuffled");
    all.sort_unstable();
    assert_eq!(all, (0..2000).collect::<Vec<_>>());

    let loader = DataLoader::new(&src, config.clone()).expect("loader");
    let mut first: Vec<RecordBatch> = Vec::new();
    for b in loader.record_batches().expect("iter").take(7) {
        first.push(b.expect("batch"));
    }
    let state = loader.state();
    assert_eq!(state.plan.rows, 7 * 64);
    let mut resumed = DataLoader::new(
        &src,
        LoaderConfig {
            num_workers: Some(3),
            ..config
        },
    )
    .expect("loader");
    resumed.load_state(&state).expect("state");
    let rest: Vec<RecordBatch> = resumed
        .record_batches()
        .expect("iter")
        .collect::<Result<_, _>>()
        .expect("rest");
    let mut seen = ids(&first);
    seen.extend(ids(&rest));
    assert_eq!(seen, ids(&full), "same order as the uninterrupted epoch");
}
