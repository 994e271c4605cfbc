//! One criterion bench per hot path: Parquet row-group decode, CSV range decode, the window
//! permutation, and collation (stacking into row-major blocks, gathering a shuffled batch).
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use zenith_core::collate::{self, Block, DType, FieldSource, OutputField};
use zenith_core::dataset::UnitRef;
use zenith_core::plan::{UnitSlice, Window};
use zenith_core::source::{self, DecodeOptions, Format};

const ROWS: usize = 16_384;
const FEATURES: usize = 32;

fn table() -> RecordBatch {
    let mut fields: Vec<Field> = (0..FEATURES)
        .map(|i| Field::new(format!("f{i:02}"), DataType::Float32, false))
        .collect();
    fields.push(Field::new("label", DataType::Int64, false));
    let mut cols: Vec<ArrayRef> = (0..FEATURES)
        .map(|j| {
            Arc::new(Float32Array::from_iter_values(
                (0..ROWS).map(|i| ((i * 31 + j * 7) % 1000) as f32 / 3.0),
            )) as ArrayRef
        })
        .collect();
    cols.push(Arc::new(Int64Array::from_iter_values(
        (0..ROWS as i64).map(|i| i / 100),
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("valid batch")
}

fn decode(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = table();
    let pq_path = dir.path().join("b.parquet");
    let file = std::fs::File::create(&pq_path).expect("create");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    let csv_path = dir.path().join("b.csv");
    let mut out = std::fs::File::create(&csv_path).expect("create");
    arrow_csv::Writer::new(&mut out).write(&batch).expect("csv");

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(ROWS as u64));
    let pq = source::open_file(&pq_path, Format::Parquet, &DecodeOptions::default()).expect("open");
    group.bench_function("parquet_row_group_16k_rows_33_cols", |b| {
        b.iter(|| black_box(pq.read_unit(0, None).expect("read")))
    });
    let options = DecodeOptions {
        csv_unit_bytes: Some(usize::MAX),
        ..Default::default()
    };
    let csv = source::open_file(&csv_path, Format::Csv, &options).expect("open");
    group.bench_function("csv_range_16k_rows_33_cols", |b| {
        b.iter(|| black_box(csv.read_unit(0, None).expect("read")))
    });
    group.finish();
}

fn shuffle(c: &mut Criterion) {
    let unit = UnitRef {
        file: 0,
        unit: 0,
        rows: 262_144,
    };
    let window = Window {
        slices: vec![UnitSlice {
            unit,
            start: 0,
            end: 262_144,
        }],
        rows: 262_144,
        perm_seed: Some(7),
    };
    let mut group = c.benchmark_group("shuffle");
    group.throughput(Throughput::Elements(262_144));
    group.bench_function("permute_window_256k_rows", |b| {
        b.iter(|| {
            let mut picks: Vec<(u32, u32)> = (0..262_144u32).map(|r| (0, r)).collect();
            window.permute(&mut picks);
            black_box(picks)
        })
    });
    group.finish();
}

fn collate_paths(c: &mut Criterion) {
    let batch = table();
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let fields = vec![
        OutputField {
            name: "x".into(),
            source: FieldSource::Stack(names[..FEATURES].to_vec()),
            dtype: Some(DType::F32),
        },
        OutputField {
            name: "y".into(),
            source: FieldSource::Column("label".into()),
            dtype: None,
        },
    ];
    let plans = collate::plan_fields(&fields, &names, &batch.schema(), false).expect("plan");
    let mut group = c.benchmark_group("collate");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("stack_32_f32_columns_16k_rows", |b| {
        b.iter(|| black_box(collate::to_blocks(&batch, &plans, &|| String::new()).expect("blocks")))
    });
    let blocks = collate::to_blocks(&batch, &plans, &|| String::new()).expect("blocks");
    let picks: Vec<(u32, u32)> = (0..256u32)
        .map(|i| (0, (i * 2_654_435_761u32) % ROWS as u32))
        .collect();
    group.throughput(Throughput::Elements(256));
    group.bench_function("gather_batch_256_of_x_f32x32", |b| {
        let field: Vec<&Block> = vec![&blocks[0]];
        b.iter(|| {
            black_box(
                collate::gather_chunks(&plans[0], &[(field.clone(), picks.as_slice())])
                    .expect("gather"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, decode, shuffle, collate_paths);
criterion_main!(benches);
