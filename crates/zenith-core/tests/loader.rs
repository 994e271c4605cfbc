//! `DataLoader` through the public API on generated Parquet, CSV and Arrow IPC files: each
//! epoch delivers the exact multiset of rows with or without shuffling, `len` and `drop_last`
//! agree with what is delivered, ranks partition the rows, a saved state resumes under another
//! thread count and world size delivering every row exactly once, `set_epoch` is
//! reproducible, and a corrupt unit is skipped and counted exactly under `OnError::Skip`.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use proptest::prelude::*;
use zenith_core::{DataLoader, DecodeOptions, Error, LoaderConfig, LoaderState, OnError};

const ROWS: i64 = 1200;
const BATCH: usize = 64;

fn batch(first: i64, n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(first..first + n)),
        Arc::new(Float64Array::from_iter_values(
            (first..first + n).map(|i| i as f64 + 0.25),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn write_parquet(path: &Path, b: &RecordBatch, row_group: usize) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .set_dictionary_enabled(false)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, b.schema(), Some(props)).unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
}

fn s(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// Writes ids `0..ROWS` in three formats under `dir`: `pq/` (two files, row groups of 100 and
/// 64), `csv/` (two files, small byte-range units) and `ipc/` (one file of four batches).
/// Returns (name, source, decoder settings).
fn datasets(dir: &Path) -> Vec<(&'static str, String, DecodeOptions)> {
    for sub in ["pq", "csv", "ipc"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    write_parquet(&dir.join("pq/a.parquet"), &batch(0, 700), 100);
    write_parquet(&dir.join("pq/b.parquet"), &batch(700, ROWS - 700), 64);
    for (name, first, n) in [("a.csv", 0, 450), ("b.csv", 450, ROWS - 450)] {
        let mut f = std::fs::File::create(dir.join("csv").join(name)).unwrap();
        arrow_csv::Writer::new(&mut f)
            .write(&batch(first, n))
            .unwrap();
    }
    let file = std::fs::File::create(dir.join("ipc/t.arrow")).unwrap();
    let b = batch(0, ROWS);
    let mut w = arrow_ipc::writer::FileWriter::try_new(file, &b.schema()).unwrap();
    for (offset, len) in [(0, 300), (300, 200), (500, 400), (900, 300)] {
        w.write(&b.slice(offset, len)).unwrap();
    }
    w.finish().unwrap();
    let csv = DecodeOptions {
        csv_unit_bytes: Some(1024),
        ..Default::default()
    };
    vec![
        ("parquet", s(&dir.join("pq")), DecodeOptions::default()),
        ("csv", s(&dir.join("csv")), csv),
        ("ipc", s(&dir.join("ipc")), DecodeOptions::default()),
    ]
}

fn config(shuffle: bool) -> LoaderConfig {
    LoaderConfig {
        batch_size: BATCH,
        shuffle,
        seed: 3,
        num_workers: Some(2),
        ..Default::default()
    }
}

fn loader(source: &str, config: LoaderConfig) -> DataLoader {
    DataLoader::new(&[source.to_string()], config).unwrap()
}

/// One epoch (or its rest) as the ids of each batch.
fn epoch(loader: &DataLoader) -> Vec<Vec<i64>> {
    loader
        .record_batches()
        .unwrap()
        .map(|b| {
            let b = b.unwrap();
            b.column(0).as_primitive::<Int64Type>().values().to_vec()
        })
        .collect()
}

/// The first `n` batches of an epoch; the iteration then stops.
fn take(loader: &DataLoader, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    for b in loader.record_batches().unwrap().take(n) {
        out.extend(b.unwrap().column(0).as_primitive::<Int64Type>().values());
    }
    out
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

#[test]
fn every_epoch_is_the_exact_multiset_with_and_without_shuffle() {
    let dir = tempfile::tempdir().unwrap();
    for (name, source, decode) in datasets(dir.path()) {
        let units = zenith_core::Dataset::open(std::slice::from_ref(&source), None, &decode)
            .unwrap()
            .units()
            .len();
        assert!(units >= 4, "{name}: {units} units");
        for shuffle in [false, true] {
            let l = loader(
                &source,
                LoaderConfig {
                    decode: decode.clone(),
                    // Several windows when shuffling, so that windows mix units.
                    shuffle_window: Some(256),
                    ..config(shuffle)
                },
            );
            let batches = epoch(&l);
            let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
            let mut want = vec![BATCH; ROWS as usize / BATCH];
            want.push(ROWS as usize % BATCH);
            assert_eq!(sizes, want, "{name} shuffle={shuffle}");
            let ids: Vec<i64> = batches.concat();
            if shuffle {
                assert_ne!(ids, (0..ROWS).collect::<Vec<_>>(), "{name}");
            } else {
                assert_eq!(ids, (0..ROWS).collect::<Vec<_>>(), "{name}");
            }
            assert_eq!(sorted(ids), (0..ROWS).collect::<Vec<_>>(), "{name}");
            let stats = l.stats();
            assert_eq!(
                (stats.rows, stats.batches, stats.skipped_units),
                (ROWS as u64, want.len() as u64, 0),
                "{name}"
            );
        }
    }
}

#[test]
fn len_and_drop_last_match_what_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let source = datasets(dir.path()).remove(0).1;
    for (world, drop_last, len, rows) in [
        (1, false, 19, 1200),
        (1, true, 18, 1152),
        (3, false, 7, 400),
        (3, true, 6, 384),
    ] {
        for rank in 0..world {
            let l = loader(
                &source,
                LoaderConfig {
                    drop_last,
                    rank,
                    world_size: world,
                    ..config(true)
                },
            );
            assert_eq!(l.rows_per_epoch(), 1200 / world);
            assert_eq!(l.len(), len, "world {world} drop_last {drop_last}");
            assert!(!l.is_empty());
            let batches = epoch(&l);
            assert_eq!(batches.len(), len);
            assert!(batches.iter().all(|b| !drop_last || b.len() == BATCH));
            assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), rows);
        }
    }
}

#[test]
fn ranks_partition_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let source = datasets(dir.path()).remove(0).1;
    // One more row: it is left out so that the ranks stay in step.
    let odd = dir.path().join("odd.parquet");
    write_parquet(&odd, &batch(0, ROWS + 1), 100);
    for shuffle in [false, true] {
        for (source, rows) in [(source.clone(), ROWS), (s(&odd), ROWS + 1)] {
            for world in 1..=3usize {
                let mut all = Vec::new();
                for rank in 0..world {
                    let l = loader(
                        &source,
                        LoaderConfig {
                            rank,
                            world_size: world,
                            ..config(shuffle)
                        },
                    );
                    let ids = epoch(&l).concat();
                    assert_eq!(ids.len(), rows as usize / world, "rank {rank}/{world}");
                    all.extend(ids);
                }
                let all = sorted(all);
                let mut unique = all.clone();
                unique.dedup();
                assert_eq!(unique, all, "world {world}: a row went to two ranks");
                assert_eq!(all.len(), rows as usize / world * world);
                if rows == ROWS {
                    assert_eq!(all, (0..ROWS).collect::<Vec<_>>());
                }
                if !shuffle {
                    // Unshuffled, rank r holds the r-th contiguous share.
                    assert_eq!(all, (0..all.len() as i64).collect::<Vec<_>>());
                }
            }
        }
    }
}

/// Runs `w0` ranks for `stop` batches each, saves rank 0's state (through JSON), resumes it
/// on `w1` ranks with `workers` threads each and returns every id delivered.
fn interrupted_epoch(
    source: &str,
    shuffle: bool,
    w0: usize,
    stop: usize,
    w1: usize,
    workers: usize,
) -> Vec<i64> {
    let base = LoaderConfig {
        batch_size: 50,
        shuffle_window: Some(200),
        ..config(shuffle)
    };
    let mut seen = Vec::new();
    let mut states = Vec::new();
    for rank in 0..w0 {
        let l = loader(
            source,
            LoaderConfig {
                rank,
                world_size: w0,
                num_workers: Some(1),
                ..base.clone()
            },
        );
        seen.extend(take(&l, stop));
        states.push(l.state());
    }
    for (rank, s) in states.iter().enumerate() {
        // Ranks in step write the same state but for their rank.
        assert_eq!(s.plan.rank, rank);
        let mut same = s.clone();
        same.plan.rank = 0;
        assert_eq!(same, states[0]);
    }
    assert_eq!(states[0].plan.rows, stop * 50);
    // One rank's state says where all are; the merged states of all say the same.
    let one = if stop % 2 == 1 {
        zenith_core::merge_states(&states).unwrap()
    } else {
        states[0].clone()
    };
    let json = serde_json::to_string(&one).unwrap();
    let state: LoaderState = serde_json::from_str(&json).unwrap();
    assert_eq!(state, one);
    for rank in 0..w1 {
        let mut l = loader(
            source,
            LoaderConfig {
                rank,
                world_size: w1,
                num_workers: Some(workers),
                ..base.clone()
            },
        );
        l.load_state(&state).unwrap();
        seen.extend(epoch(&l).concat());
        assert_eq!(l.epoch(), 1, "the resumed epoch ran to its end");
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn a_resumed_epoch_delivers_every_row_exactly_once(
        shuffle: bool,
        w0 in 1usize..=3,
        w1 in 1usize..=3,
        workers in 1usize..=3,
        stop_fraction in 0.0f64..1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let source = s(&dir.path().join("t.parquet"));
        write_parquet(Path::new(&source), &batch(0, ROWS), 90);
        // Strictly inside the epoch of every rank.
        let batches_per_rank = (ROWS as usize / w0).div_ceil(50);
        let stop = (stop_fraction * batches_per_rank as f64) as usize;
        let seen = interrupted_epoch(&source, shuffle, w0, stop, w1, workers);
        prop_assert_eq!(sorted(seen), (0..ROWS).collect::<Vec<_>>());
    }
}

#[test]
fn a_resume_under_the_same_settings_continues_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    for (name, source, decode) in datasets(dir.path()) {
        let base = LoaderConfig {
            decode,
            shuffle_window: Some(300),
            ..config(true)
        };
        let full = epoch(&loader(&source, base.clone())).concat();
        let l = loader(&source, base.clone());
        let mut seen = take(&l, 5);
        let mut resumed = loader(
            &source,
            LoaderConfig {
                num_workers: Some(3),
                ..base
            },
        );
        resumed.load_state(&l.state()).unwrap();
        seen.extend(epoch(&resumed).concat());
        assert_eq!(seen, full, "{name}");
    }
}

#[test]
fn set_epoch_changes_the_order_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let source = datasets(dir.path()).remove(0).1;
    let l = loader(&source, config(true));
    assert_eq!(l.epoch(), 0);
    let e0 = epoch(&l).concat();
    // A finished epoch moves on to the next one.
    assert_eq!(l.epoch(), 1);
    let e1 = epoch(&l).concat();
    assert_ne!(e0, e1);
    l.set_epoch(3);
    assert_eq!(l.epoch(), 3);
    let e3 = epoch(&l).concat();
    assert_ne!(e3, e0);
    assert_ne!(e3, e1);
    let other = loader(&source, config(true));
    other.set_epoch(1);
    assert_eq!(epoch(&other).concat(), e1);
    other.set_epoch(3);
    assert_eq!(epoch(&other).concat(), e3);
    other.set_epoch(0);
    assert_eq!(epoch(&other).concat(), e0);
    assert_eq!(sorted(e3), (0..ROWS).collect::<Vec<_>>());
    // Another seed is another order of the same rows.
    let seeded = loader(
        &source,
        LoaderConfig {
            seed: 4,
            ..config(true)
        },
    );
    let s0 = epoch(&seeded).concat();
    assert_ne!(s0, e0);
    assert_eq!(sorted(s0), (0..ROWS).collect::<Vec<_>>());
}

#[test]
fn a_state_of_other_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = datasets(dir.path()).remove(0).1;
    let l = loader(&source, config(true));
    take(&l, 2);
    let state = l.state();
    let small = dir.path().join("small.parquet");
    write_parquet(&small, &batch(0, 10), 10);
    let mut other = loader(&s(&small), config(true));
    assert_eq!(
        other.load_state(&state).unwrap_err().to_string(),
        "invalid argument `state`: state is for a dataset of 1200 rows, this one has 10"
    );
    let mut unshuffled = loader(&source, config(false));
    assert!(matches!(
        unshuffled.load_state(&state),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn a_corrupt_unit_is_skipped_and_counted_or_raised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    write_parquet(&path, &batch(0, ROWS), 100);
    let meta =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&path).unwrap())
            .map(|r| parquet::file::reader::FileReader::metadata(&r).clone())
            .unwrap();
    let start = meta.row_group(3).column(0).data_page_offset() as usize;
    let mut bytes = std::fs::read(&path).unwrap();
    // An invalid Thrift field header where row group 3's first page header starts.
    bytes[start..start + 4].copy_from_slice(&[0xff; 4]);
    std::fs::write(&path, &bytes).unwrap();
    let source = s(&path);
    for shuffle in [false, true] {
        let l = loader(
            &source,
            LoaderConfig {
                on_error: OnError::Skip,
                ..config(shuffle)
            },
        );
        let ids = sorted(epoch(&l).concat());
        let want: Vec<i64> = (0..300).chain(400..ROWS).collect();
        assert_eq!(ids, want, "shuffle={shuffle}");
        let stats = l.stats();
        assert_eq!((stats.skipped_units, stats.skipped_rows), (1, 100));
        assert_eq!(stats.rows, 1100);
        assert_eq!(stats.skipped.len(), 1);
        assert!(
            stats.skipped[0].contains(&source) && stats.skipped[0].contains("row group 3"),
            "{}",
            stats.skipped[0]
        );
        // The skipped rows still count as consumed: the epoch is done.
        assert_eq!(l.epoch(), 1);
    }
    let l = loader(&source, config(false));
    let err = l
        .record_batches()
        .unwrap()
        .find_map(Result::err)
        .expect("the corrupt unit fails the epoch");
    assert!(
        matches!(&err, Error::Format { path: p, location, .. } if p == &path && location == "row group 3"),
        "{err}"
    );
}

#[test]
fn the_shuffle_window_of_list_rows_keeps_to_the_budget_by_their_size_in_the_footers() {
    use arrow_array::builder::{Int32Builder, ListBuilder};
    let dir = tempfile::tempdir().unwrap();
    // 5,000 rows of 100 int32 tokens: about 400 bytes a row before compression.
    let mut lists = ListBuilder::new(Int32Builder::new());
    for r in 0..5000 {
        for t in 0..100 {
            lists.values().append_value(r * 100 + t);
        }
        lists.append(true);
    }
    let schema = Arc::new(Schema::new(vec![Field::new(
        "ids",
        DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
        true,
    )]));
    let b = RecordBatch::try_new(schema, vec![Arc::new(lists.finish()) as ArrayRef]).unwrap();
    let path = dir.path().join("lists.parquet");
    write_parquet(&path, &b, 500);
    let budget = 1 << 20;
    let l = loader(
        &s(&path),
        LoaderConfig {
            memory_budget: Some(budget),
            ..config(true)
        },
    );
    // Half the budget in rows of ~400 bytes (at least 1,024 rows): not the whole dataset, as
    // a fixed 64-byte guess per list row made it.
    let window = l.window_rows();
    assert!((1024..=budget / 2 / 390).contains(&window), "{window}");
    let rows: usize = l
        .record_batches()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 5000);
}
