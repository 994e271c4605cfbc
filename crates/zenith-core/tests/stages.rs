//! The loader's chain of stages through the public API: a per-sample stage sees every sample
//! once with its dataset-wide id, draws the same numbers for any thread count and after a
//! resume, may read columns the output does not name, and its failures are typed and
//! skippable.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use rand::Rng;
use zenith_core::{
    BatchColumn, DataLoader, Error, FieldSource, LoaderConfig, OnError, OutputField, SampleContext,
    SampleStage, TensorData,
};

const ROWS: i64 = 3000;

/// Adds `noise`: one seeded draw per sample, and `echo`: the id it was given for the row.
struct Noise {
    /// Samples whose unit fails (to test error handling), if any.
    fail_on: Option<u64>,
}

impl SampleStage for Noise {
    fn name(&self) -> &str {
        "noise"
    }
    fn required_columns(&self) -> Vec<String> {
        vec!["id".to_string()]
    }
    fn output_schema(&self, input: &SchemaRef) -> zenith_core::Result<SchemaRef> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("noise", DataType::Int64, false));
        fields.push(Field::new("echo", DataType::Int64, false));
        Ok(Arc::new(Schema::new(fields)))
    }
    fn apply(
        &self,
        batch: RecordBatch,
        first: u64,
        ctx: &SampleContext,
    ) -> zenith_core::Result<RecordBatch> {
        let n = batch.num_rows() as u64;
        if let Some(bad) = self.fail_on {
            if (first..first + n).contains(&bad) {
                return Err(Error::format("noise", format!("sample {bad}"), "refused"));
            }
        }
        let noise: Int64Array = (first..first + n).map(|s| draw(ctx, s)).collect();
        let echo = Int64Array::from_iter_values((first..first + n).map(|s| s as i64));
        let schema = self.output_schema(&batch.schema())?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(noise));
        columns.push(Arc::new(echo));
        RecordBatch::try_new(schema, columns).map_err(|e| Error::invalid("noise", e))
    }
}

fn draw(ctx: &SampleContext, sample: u64) -> i64 {
    ctx.rng(sample).random_range(0..1_000_000_000i64)
}

/// Two Parquet files of `ROWS / 2` ids each, in row groups of 250.
fn dataset(dir: &Path) -> String {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    for (i, range) in [(0, 0..ROWS / 2), (1, ROWS / 2..ROWS)] {
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(range))],
        )
        .unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(250))
            .build();
        let file = std::fs::File::create(dir.join(format!("part-{i}.parquet"))).unwrap();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
    }
    dir.to_str().unwrap().to_string()
}

fn field(name: &str) -> OutputField {
    OutputField {
        name: name.to_string(),
        source: FieldSource::Column(name.to_string()),
        dtype: None,
    }
}

fn config(workers: usize, fail_on: Option<u64>) -> LoaderConfig {
    LoaderConfig {
        batch_size: 64,
        seed: 11,
        num_workers: Some(workers),
        shuffle_window: Some(700),
        columns: Some(vec![field("noise"), field("echo")]),
        sample_stages: vec![Arc::new(Noise { fail_on })],
        ..Default::default()
    }
}

fn column(batch: &zenith_core::Batch, name: &str) -> Vec<i64> {
    let (_, col) = batch.columns.iter().find(|(n, _)| n == name).unwrap();
    match col {
        BatchColumn::Tensor(t) => match &t.data {
            TensorData::I64(v) => v.clone(),
            other => panic!("{name}: {:?}", other.dtype()),
        },
        BatchColumn::Arrow(a) => a.as_primitive::<Int64Type>().values().to_vec(),
    }
}

/// (sample id, noise) pairs of an epoch, in delivery order.
fn epoch(loader: &DataLoader) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for b in loader.iter().unwrap() {
        let b = b.unwrap();
        out.extend(column(&b, "echo").into_iter().zip(column(&b, "noise")));
    }
    out
}

#[test]
fn a_sample_stage_sees_each_sample_once_with_its_dataset_id_and_seeded_draws() {
    let dir = tempfile::tempdir().unwrap();
    let loader = DataLoader::new(&[dataset(dir.path())], config(2, None)).unwrap();
    assert_eq!(loader.output_names(), ["noise", "echo"]);
    let got = epoch(&loader);
    let mut ids: Vec<i64> = got.iter().map(|p| p.0).collect();
    assert_ne!(ids, (0..ROWS).collect::<Vec<_>>(), "shuffled");
    ids.sort_unstable();
    assert_eq!(ids, (0..ROWS).collect::<Vec<_>>());
    let ctx = SampleContext {
        seed: 11,
        epoch: 0,
        stage: 0,
    };
    for (id, noise) in &got {
        assert_eq!(*noise, draw(&ctx, *id as u64), "sample {id}");
    }
    // The next epoch draws anew for the same samples.
    let next = epoch(&loader);
    let ctx1 = SampleContext { epoch: 1, ..ctx };
    assert!(next.iter().all(|(id, n)| *n == draw(&ctx1, *id as u64)));
    assert_ne!(next, got);
}

#[test]
fn thread_count_and_resume_do_not_change_an_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let src = dataset(dir.path());
    let one = epoch(&DataLoader::new(std::slice::from_ref(&src), config(1, None)).unwrap());
    let three = epoch(&DataLoader::new(std::slice::from_ref(&src), config(3, None)).unwrap());
    assert_eq!(one, three);

    let loader = DataLoader::new(std::slice::from_ref(&src), config(2, None)).unwrap();
    let mut it = loader.iter().unwrap();
    let mut head = Vec::new();
    for _ in 0..9 {
        let b = it.next().unwrap().unwrap();
        head.extend(column(&b, "echo").into_iter().zip(column(&b, "noise")));
    }
    let state = loader.state();
    drop(it);
    assert_eq!(state.plan.rows, 9 * 64);
    let mut resumed = DataLoader::new(std::slice::from_ref(&src), config(3, None)).unwrap();
    resumed.load_state(&state).unwrap();
    let tail = epoch(&resumed);
    assert_eq!([head, tail].concat(), one);
}

#[test]
fn a_failing_sample_stage_raises_naming_the_unit_or_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let src = dataset(dir.path());
    let loader = DataLoader::new(std::slice::from_ref(&src), config(2, Some(1600))).unwrap();
    let err = loader
        .iter()
        .unwrap()
        .find_map(|b| b.err())
        .expect("the stage's error");
    assert_eq!(err.to_string(), "noise: sample 1600: refused");

    let skipping = LoaderConfig {
        on_error: OnError::Skip,
        ..config(2, Some(1600))
    };
    let loader = DataLoader::new(std::slice::from_ref(&src), skipping).unwrap();
    let got = epoch(&loader);
    // Sample 1600 is in the second file's row group of ids 1500..1750.
    let mut ids: Vec<i64> = got.iter().map(|p| p.0).collect();
    ids.sort_unstable();
    let expected: Vec<i64> = (0..ROWS).filter(|i| !(1500..1750).contains(i)).collect();
    assert_eq!(ids, expected);
    let stats = loader.stats();
    assert_eq!((stats.skipped_units, stats.skipped_rows), (1, 250));
    assert_eq!(stats.skipped, ["noise: sample 1600: refused"]);
}

#[test]
fn an_output_no_stage_produces_is_an_unknown_column() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = LoaderConfig {
        columns: Some(vec![field("noise"), field("nothing")]),
        ..config(1, None)
    };
    match DataLoader::new(&[dataset(dir.path())], wrong) {
        Err(Error::UnknownColumn {
            column, available, ..
        }) => {
            assert_eq!(
                (column.as_str(), available.as_str()),
                ("nothing", "id, noise, echo")
            );
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened"),
    }
}
