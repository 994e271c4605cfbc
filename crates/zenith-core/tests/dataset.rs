//! `Dataset` through the public API: listing directories and globs, the units it hands out
//! and what each decodes to, projections, and the typed errors of missing, empty, mixed or
//! mismatched sources (each naming the files involved).
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use zenith_core::{Dataset, DecodeOptions, Error, Format, UnitRef};

/// `id` first.., `x` = id / 2 (nullable column without nulls).
fn batch(first: i64, n: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
    ]));
    let ids = first..first + n as i64;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.clone())),
        Arc::new(Float64Array::from_iter_values(ids.map(|i| i as f64 / 2.0))),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn write_parquet(path: &Path, b: &RecordBatch, row_group: usize) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, b.schema(), Some(props)).unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
}

fn s(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

fn open(specs: &[String]) -> zenith_core::Result<Dataset> {
    Dataset::open(specs, None, &DecodeOptions::default())
}

fn ids(b: &RecordBatch, column: usize) -> Vec<i64> {
    b.column(column)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

/// a.parquet: ids 0..250 (row groups of 100), b.parquet: 250..400 (of 64), sub/c.parquet:
/// 400..410, and a hidden file that listings skip.
fn three_files(dir: &Path) {
    write_parquet(&dir.join("a.parquet"), &batch(0, 250), 100);
    write_parquet(&dir.join("b.parquet"), &batch(250, 150), 64);
    std::fs::create_dir(dir.join("sub")).unwrap();
    write_parquet(&dir.join("sub").join("c.parquet"), &batch(400, 10), 100);
    write_parquet(&dir.join(".hidden.parquet"), &batch(-5, 5), 100);
}

#[test]
fn a_directory_lists_recursively_and_hands_out_every_unit() {
    let dir = tempfile::tempdir().unwrap();
    three_files(dir.path());
    let ds = open(&[s(dir.path())]).unwrap();
    assert_eq!(ds.format(), Format::Parquet);
    assert_eq!(ds.specs(), [s(dir.path())]);
    let paths: Vec<&Path> = ds.files().iter().map(|f| f.path()).collect();
    assert_eq!(
        paths,
        [
            dir.path().join("a.parquet"),
            dir.path().join("b.parquet"),
            dir.path().join("sub").join("c.parquet")
        ]
    );
    let unit = |file, unit, rows| UnitRef { file, unit, rows };
    assert_eq!(
        ds.units(),
        [
            unit(0, 0, 100),
            unit(0, 1, 100),
            unit(0, 2, 50),
            unit(1, 0, 64),
            unit(1, 1, 64),
            unit(1, 2, 22),
            unit(2, 0, 10)
        ]
    );
    assert_eq!(ds.num_rows(), 410);
    assert_eq!(ds.units().iter().map(|u| u.rows).sum::<usize>(), 410);
    assert!(!ds.is_remote());
    assert_eq!(ds.decode_threads(3), 3);
    // Every unit decodes to its own rows, in order.
    let all = ds.projection(None).unwrap();
    let mut next = 0;
    for u in ds.units() {
        let b = ds.read_unit(*u, &all).unwrap();
        assert_eq!(b.num_rows(), u.rows);
        assert_eq!(ids(&b, 0), (next..next + u.rows as i64).collect::<Vec<_>>());
        next += u.rows as i64;
    }
    let batches = ds.read_all(&all).unwrap();
    assert_eq!(batches.len(), 7);
    assert_eq!(
        batches.iter().flat_map(|b| ids(b, 0)).collect::<Vec<_>>(),
        (0..410).collect::<Vec<_>>()
    );
}

#[test]
fn a_glob_matches_only_its_pattern() {
    let dir = tempfile::tempdir().unwrap();
    three_files(dir.path());
    let glob = s(&dir.path().join("*.parquet"));
    let ds = open(std::slice::from_ref(&glob)).unwrap();
    assert_eq!(ds.files().len(), 2);
    assert_eq!(ds.num_rows(), 400);
    let nested = s(&dir.path().join("**").join("c.parquet"));
    assert_eq!(open(&[nested]).unwrap().num_rows(), 10);
    // Several specs keep their order, a file and a glob alike.
    let ds = open(&[s(&dir.path().join("sub").join("c.parquet")), glob]).unwrap();
    let rows: Vec<usize> = ds.units().iter().map(|u| u.rows).collect();
    assert_eq!(rows, [10, 100, 100, 50, 64, 64, 22]);
}

#[test]
fn projection_resolves_names_in_the_requested_order() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("a.parquet"), &batch(0, 30), 10);
    let ds = open(&[s(dir.path())]).unwrap();
    let p = ds.projection(Some(&["x".into(), "id".into()])).unwrap();
    assert_eq!(p.indices, Some(vec![0, 1]));
    assert_eq!(p.order, Some(vec![1, 0]));
    let names: Vec<&str> = p
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["x", "id"]);
    let b = ds.read_unit(ds.units()[1], &p).unwrap();
    assert_eq!(b.schema(), p.schema);
    assert_eq!(ids(&b, 1), (10..20).collect::<Vec<_>>());
    let all = ds.projection(None).unwrap();
    assert_eq!((all.indices, all.order), (None, None));
    assert_eq!(all.schema, ds.schema());
}

#[test]
fn an_unknown_column_lists_the_available_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.parquet");
    write_parquet(&path, &batch(0, 3), 10);
    let ds = open(&[s(dir.path())]).unwrap();
    match ds.projection(Some(&["id".into(), "y".into()])) {
        Err(Error::UnknownColumn {
            path: p,
            column,
            available,
        }) => {
            assert_eq!(
                (p, column.as_str(), available.as_str()),
                (path, "y", "id, x")
            );
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("an unknown column was accepted"),
    }
}

#[test]
fn files_with_different_schemas_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    write_parquet(&a, &batch(0, 5), 10);
    // Another type for `x`.
    let ints = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Int64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int64Array::from(vec![2])),
        ],
    )
    .unwrap();
    write_parquet(&b, &ints, 10);
    let err = open(&[s(dir.path())]).err().unwrap();
    assert!(
        matches!(&err, Error::Schema { path, .. } if path == &b),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: schema differs from {}: column \"x\" is Int64 here but Float64 there",
            b.display(),
            a.display()
        )
    );
    // Other column names (here: the same columns in another order).
    write_parquet(&b, &batch(5, 5).project(&[1, 0]).unwrap(), 10);
    let err = open(&[s(dir.path())]).err().unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: schema differs from {}: columns [\"x\", \"id\"] here, [\"id\", \"x\"] there",
            b.display(),
            a.display()
        )
    );
}

#[test]
fn schemas_unify_on_names_and_types_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    write_parquet(&a, &batch(0, 5), 10);
    // Same names and types; `id` nullable here and a key-value metadata entry on `x`.
    let loose = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("x", DataType::Float64, true).with_metadata(
            [("unit".to_string(), "m".to_string())]
                .into_iter()
                .collect(),
        ),
    ]));
    let other = RecordBatch::try_new(loose, batch(5, 5).columns().to_vec()).unwrap();
    write_parquet(&b, &other, 10);
    let ds = open(&[s(dir.path())]).unwrap();
    // The dataset's schema is the first file's.
    assert!(!ds.schema().field(0).is_nullable());
    assert!(ds.schema().field(1).metadata().is_empty());
    assert_eq!(ds.num_rows(), 10);
    let p = ds.projection(Some(&["id".into()])).unwrap();
    let got: Vec<i64> = ds
        .read_all(&p)
        .unwrap()
        .iter()
        .flat_map(|b| ids(b, 0))
        .collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn mixed_formats_are_a_schema_error_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.csv");
    write_parquet(&a, &batch(0, 5), 10);
    std::fs::write(&b, "id,x\n1,0.5\n").unwrap();
    let err = open(&[s(dir.path())]).err().unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: format csv differs from parquet ({}); pass format= or separate the files",
            b.display(),
            a.display()
        )
    );
    // A format override applies to every file: the CSV file has no Parquet footer.
    let err = Dataset::open(
        &[s(dir.path())],
        Some(Format::Parquet),
        &DecodeOptions::default(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, Error::Format { path, location, .. } if path == &b && location == "footer"),
        "{err}"
    );
}

#[test]
fn missing_and_empty_sources_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = s(&dir.path().join("nope"));
    match open(std::slice::from_ref(&missing)) {
        Err(Error::NotFound { path }) => assert_eq!(path, missing),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a missing path opened"),
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let only_hidden = dir.path().join("hidden");
    std::fs::create_dir(&only_hidden).unwrap();
    write_parquet(&only_hidden.join(".x.parquet"), &batch(0, 1), 1);
    for spec in [s(&empty), s(&only_hidden), s(&dir.path().join("*.nothing"))] {
        match open(std::slice::from_ref(&spec)) {
            Err(e @ Error::EmptySource { .. }) => assert_eq!(
                e.to_string(),
                format!("no data files found under {spec} (hidden files are ignored)")
            ),
            Err(other) => panic!("{spec}: {other}"),
            Ok(_) => panic!("{spec}: an empty source opened"),
        }
    }
}

#[test]
fn an_in_memory_table_is_cut_into_units_and_loads_every_row() {
    use zenith_core::source::ipc::{MappedBatches, MEMORY_UNIT_ROWS};
    use zenith_core::{DataLoader, LoaderConfig, TensorData};
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = |from: i64, to: i64| {
        RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(from..to)) as ArrayRef],
        )
        .unwrap()
    };
    let reader = MappedBatches::in_memory(
        "<table>",
        schema.clone(),
        vec![batch(0, 150_000), batch(150_000, 150_010)],
    )
    .unwrap();
    let dataset = Dataset::from_reader(Arc::new(reader));
    let rows: Vec<usize> = dataset.units().iter().map(|u| u.rows).collect();
    assert_eq!(rows, vec![MEMORY_UNIT_ROWS, MEMORY_UNIT_ROWS, 18_928, 10]);
    let loader = DataLoader::from_dataset(
        dataset,
        LoaderConfig {
            batch_size: 1000,
            seed: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let mut ids = Vec::new();
    for b in loader.iter().unwrap() {
        let b = b.unwrap();
        let zenith_core::BatchColumn::Tensor(t) = &b.columns[0].1 else {
            panic!("id is a tensor");
        };
        let TensorData::I64(v) = &t.data else {
            panic!("int64");
        };
        ids.extend_from_slice(v);
    }
    assert_ne!(ids[..10], (0..10).collect::<Vec<i64>>()[..]);
    ids.sort_unstable();
    assert_eq!(ids, (0..150_010).collect::<Vec<i64>>());

    let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let wrong = RecordBatch::try_new(
        other,
        vec![Arc::new(Int64Array::from_iter_values(0..3)) as ArrayRef],
    )
    .unwrap();
    let err = MappedBatches::in_memory("<table>", schema, vec![wrong])
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("<table>: record batch 0 has schema"),
        "{err}"
    );
}
