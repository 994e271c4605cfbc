//! Decoded data kept across epochs: later epochs are served from the kept blocks and deliver
//! exactly what a loader that decodes every epoch delivers (same rows, same order, same
//! values), under shuffling windows that cut units, several ranks, thread counts and resume;
//! a budget the data does not fit keeps nothing.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use zenith_core::{BatchColumn, DataLoader, LoaderConfig, TensorData};

const ROWS: i64 = 5000;

/// Three Parquet files of ids and `x = id / 4`, row groups of 300 rows.
fn dataset(dir: &std::path::Path) -> String {
    dataset_of(dir, ROWS)
}

/// [`dataset`] with `rows` rows.
fn dataset_of(dir: &std::path::Path, rows: i64) -> String {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
    ]));
    let cuts = [0, rows * 17 / 50, rows * 34 / 50, rows];
    for (i, w) in cuts.windows(2).enumerate() {
        let ids = Int64Array::from_iter_values(w[0]..w[1]);
        let xs = Float64Array::from_iter_values((w[0]..w[1]).map(|i| i as f64 / 4.0));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(ids) as ArrayRef, Arc::new(xs) as ArrayRef],
        )
        .unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(300))
            .build();
        let file = std::fs::File::create(dir.join(format!("p{i}.parquet"))).unwrap();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
    }
    dir.to_str().unwrap().to_string()
}

fn config(reuse: usize, workers: usize, rank: usize, world: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: 50,
        seed: 9,
        // Windows smaller than a unit's multiple: slices cut units, so kept whole units are
        // read from an offset.
        shuffle_window: Some(1000),
        num_workers: Some(workers),
        rank,
        world_size: world,
        reuse_budget: Some(reuse),
        ..Default::default()
    }
}

fn tensor<'a>(b: &'a zenith_core::Batch, name: &str) -> &'a TensorData {
    match &b.columns.iter().find(|(n, _)| n == name).unwrap().1 {
        BatchColumn::Tensor(t) => &t.data,
        BatchColumn::Arrow(_) => panic!("{name} is not a tensor"),
    }
}

/// (id, x) of an epoch in delivery order.
fn epoch(loader: &DataLoader) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for b in loader.iter().unwrap() {
        let b = b.unwrap();
        let (TensorData::I64(ids), TensorData::F64(xs)) = (tensor(&b, "id"), tensor(&b, "x"))
        else {
            panic!("dtypes");
        };
        out.extend(ids.iter().copied().zip(xs.iter().copied()));
    }
    out
}

#[test]
fn kept_epochs_equal_decoded_epochs_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let src = dataset(dir.path());
    for (workers, rank, world) in [(2, 0, 1), (1, 1, 2), (3, 0, 3)] {
        let kept = DataLoader::new(
            std::slice::from_ref(&src),
            config(1 << 30, workers, rank, world),
        )
        .unwrap();
        let fresh =
            DataLoader::new(std::slice::from_ref(&src), config(0, workers, rank, world)).unwrap();
        for e in 0..3 {
            let got = epoch(&kept);
            assert_eq!(got, epoch(&fresh), "epoch {e}, rank {rank} of {world}");
            assert!(got.iter().all(|(id, x)| *x == *id as f64 / 4.0));
            let stats = kept.stats();
            if e == 0 {
                assert_eq!(stats.reused_units, 0);
            }
            assert!(stats.kept_bytes > 0);
        }
        let stats = kept.stats();
        assert!(stats.reused_units > 0, "later epochs reuse: {stats:?}");
        // What the first epoch read is what later epochs did not read again.
        assert_eq!(fresh.stats().reused_units, 0);
        assert!(kept.stats().read_s < fresh.stats().read_s * 2.0 + 1.0);
    }
}

#[test]
fn the_whole_dataset_is_kept_once_and_epochs_cover_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dataset(dir.path());
    let loader = DataLoader::new(&[src], config(1 << 30, 2, 0, 1)).unwrap();
    let mut ids: Vec<i64> = epoch(&loader).into_iter().map(|p| p.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..ROWS).collect::<Vec<_>>());
    // 16 bytes per row (an int64 and a float64 column per unit, shared as the tensors' own
    // buffers), each unit once, plus the arrays' own small headers (18 units x 2 columns).
    let kept = loader.stats().kept_bytes;
    assert!(
        (16 * ROWS as u64..16 * ROWS as u64 + 36 * 128).contains(&kept),
        "{kept}"
    );
    let second: Vec<i64> = epoch(&loader).into_iter().map(|p| p.0).collect();
    let mut sorted = second.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ids);
    assert_eq!(loader.stats().kept_bytes, kept);
}

#[test]
fn a_budget_the_data_does_not_fit_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dataset(dir.path());
    let small = DataLoader::new(
        std::slice::from_ref(&src),
        config(16 * ROWS as usize - 1, 2, 0, 1),
    )
    .unwrap();
    let fresh = DataLoader::new(&[src], config(0, 2, 0, 1)).unwrap();
    for _ in 0..2 {
        assert_eq!(epoch(&small), epoch(&fresh));
    }
    let s = small.stats();
    assert_eq!((s.reused_units, s.kept_bytes), (0, 0));
}

#[test]
fn a_resumed_loader_continues_from_kept_data_like_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = dataset(dir.path());
    let loader = DataLoader::new(std::slice::from_ref(&src), config(1 << 30, 2, 0, 1)).unwrap();
    epoch(&loader);
    let mut it = loader.iter().unwrap();
    let mut head = Vec::new();
    for _ in 0..7 {
        let b = it.next().unwrap().unwrap();
        if let TensorData::I64(ids) = tensor(&b, "id") {
            head.extend_from_slice(ids);
        }
    }
    let state = loader.state();
    drop(it);
    assert_eq!((state.plan.epoch, state.plan.rows), (1, 350));
    // The same loader, resumed from kept data, and a fresh loader without kept data.
    let mut same = loader;
    same.load_state(&state).unwrap();
    let mut other = DataLoader::new(&[src], config(0, 1, 0, 1)).unwrap();
    other.load_state(&state).unwrap();
    let rest: Vec<i64> = epoch(&same).into_iter().map(|p| p.0).collect();
    assert_eq!(
        rest,
        epoch(&other).into_iter().map(|p| p.0).collect::<Vec<_>>()
    );
    let mut all = [head, rest].concat();
    all.sort_unstable();
    assert_eq!(all, (0..ROWS).collect::<Vec<_>>());
}

/// Batches (their ids, in delivery order) of one epoch.
fn batches(loader: &DataLoader) -> Vec<Vec<i64>> {
    let mut out = Vec::new();
    for b in loader.iter().unwrap() {
        let b = b.unwrap();
        let TensorData::I64(ids) = tensor(&b, "id") else {
            panic!("dtype");
        };
        out.push(ids.clone());
    }
    out
}

#[test]
fn batches_gathered_in_groups_on_the_pool_keep_their_order_for_every_thread_count() {
    // Once nothing is left decoding, batches are gathered a group (8,192 rows) at a time on the
    // pool: 40,000 rows in batches of 30 make several groups and a short last batch.
    let dir = tempfile::tempdir().unwrap();
    let rows = 40_000;
    let src = dataset_of(dir.path(), rows);
    let run = |workers: usize, reuse: usize| {
        let loader = DataLoader::new(
            std::slice::from_ref(&src),
            LoaderConfig {
                batch_size: 30,
                seed: 4,
                num_workers: Some(workers),
                reuse_budget: Some(reuse),
                ..Default::default()
            },
        )
        .unwrap();
        (0..2).map(|_| batches(&loader)).collect::<Vec<_>>()
    };
    let one = run(1, 0);
    for epoch in &one {
        assert_eq!(epoch.len(), 1334);
        assert_eq!(epoch.last().unwrap().len(), 40_000 - 1333 * 30);
        let mut ids: Vec<i64> = epoch.iter().flatten().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..rows).collect::<Vec<_>>());
    }
    assert_ne!(one[0], one[1], "each epoch has its own order");
    for workers in [2, 4] {
        for reuse in [0, 1 << 30] {
            assert_eq!(
                run(workers, reuse),
                one,
                "{workers} workers, reuse budget {reuse}"
            );
        }
    }
}
