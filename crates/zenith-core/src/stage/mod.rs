//! The stages of a loader and the contract every stage keeps.
//!
//! A batch travels a chain of stages, each in its own room:
//!
//! ```text
//! source     units (row groups, IPC batches, CSV ranges, tar runs) and their decoding  source/
//!   -> plan      the order: (listing, seed, epoch, rank, world size) -> windows, rank split  plan/
//!   -> per-sample stages   one decoded unit at a time, row by row (image transforms, maps)    stage/
//!   -> regrouping stages   rows in plan order -> other rows (sequence packing, mixing)        stage/
//!   -> collate   rows into contiguous tensors in output layout                               collate.rs
//!   -> hand-over the bounded, ordered queue the consumer reads                               loader/
//! ```
//!
//! # The contract of a stage
//!
//! 1. **Determinism.** What a stage produces depends only on its input and on the plan: the
//!    seed, the epoch and the identity of the sample (or of the batch). Randomness comes from
//!    [`SampleContext::rng`], a generator seeded by (seed, epoch, sample id, stage position),
//!    never from a thread's own state or the time, so an epoch is the same for any thread
//!    count and a resumed epoch continues with the same draws.
//! 2. **Sample identity.** A sample's id is its row's position in the dataset's listing
//!    (file order, then unit, then row): it does not depend on the rank, the world size, the
//!    shuffle or the window, so a sample is transformed the same way wherever it lands.
//! 3. **State.** A stage that carries anything from one batch to the next (a regrouping stage:
//!    a packer's partly filled sequence, a mixer's per-source positions) owns one section of
//!    [`LoaderState`](crate::loader::LoaderState)`.stages`, under its name: a small,
//!    versioned JSON value from which it continues exactly (positions and offsets, or what
//!    recomputes the carry-over, not the data). The section describes the stage *after the
//!    last batch the consumer received*: the pipeline runs ahead of the consumer, so a
//!    stateful stage attaches its state to every batch it emits and the loader keeps the one
//!    of the batch handed over last. Stages without state (every per-sample stage) have no
//!    section; a state whose sections name a stage the loader does not have is refused.
//! 4. **Errors.** A stage's error names the stage and the sample or unit; under
//!    `on_error="skip"` a failing unit is skipped and counted like a decoding failure.
//! 5. **Schema.** A stage declares the schema it produces from the schema it receives
//!    ([`SampleStage::output_schema`]) before any data is read, so collation is planned once.
//!
//! Per-sample stages implement [`SampleStage`] and run on the decode threads, on each unit
//! right after it is decoded, so their cost scales with the threads like decoding does.

pub mod pack;
pub mod tokenize;
pub mod vision;

pub use pack::{PackConfig, PackMode, PackState};
pub use tokenize::{TokenizeConfig, TokenizeStage};
pub use vision::{ImageStage, VisionTransform};

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// What a per-sample stage knows about where it runs: the plan's seed and epoch, and its own
/// position in the chain (so two stages draw independent numbers for the same sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleContext {
    /// The loader's base seed.
    pub seed: u64,
    /// The epoch being read.
    pub epoch: u64,
    /// Position of the stage in the loader's chain of per-sample stages.
    pub stage: usize,
}

impl SampleContext {
    /// The generator of sample `sample` for this stage and epoch: the same numbers for the
    /// same (seed, epoch, sample, stage), whichever thread asks.
    pub fn rng(&self, sample: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(crate::plan::mix(&[
            self.seed,
            self.epoch,
            sample,
            self.stage as u64,
        ]))
    }
}

/// A stage that transforms the rows of one decoded unit, each row on its own: it keeps the
/// number of rows and their order. Row `i` of `batch` is sample `first_sample + i`.
pub trait SampleStage: Send + Sync {
    /// A short name for errors, stats and logs ("image", "map").
    fn name(&self) -> &str;

    /// Source columns this stage reads, beyond the ones the output names (none by default).
    fn required_columns(&self) -> Vec<String> {
        Vec::new()
    }

    /// The schema this stage produces from `input` (checked before any data is read).
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef>;

    /// Transforms one unit's rows.
    fn apply(
        &self,
        batch: RecordBatch,
        first_sample: u64,
        context: &SampleContext,
    ) -> Result<RecordBatch>;
}

/// The per-sample stages of a loader, applied in order.
#[derive(Clone, Default)]
pub(crate) struct SampleChain {
    stages: Vec<Arc<dyn SampleStage>>,
    /// The schema each stage must produce (`schemas[i]` after stage `i`).
    schemas: Vec<SchemaRef>,
}

impl SampleChain {
    /// Plans the chain over the decoded schema `input`; returns it and the schema it produces.
    pub(crate) fn plan(
        stages: Vec<Arc<dyn SampleStage>>,
        input: SchemaRef,
    ) -> Result<(SampleChain, SchemaRef)> {
        let mut schema = input;
        let mut schemas = Vec::with_capacity(stages.len());
        for stage in &stages {
            schema = stage.output_schema(&schema)?;
            schemas.push(schema.clone());
        }
        Ok((SampleChain { stages, schemas }, schema))
    }

    /// True when there is no stage.
    pub(crate) fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs every stage over one unit's rows; `location` names the unit in errors.
    pub(crate) fn apply(
        &self,
        mut batch: RecordBatch,
        first_sample: u64,
        seed: u64,
        epoch: u64,
        location: &dyn Fn() -> String,
    ) -> Result<RecordBatch> {
        for (i, (stage, schema)) in self.stages.iter().zip(&self.schemas).enumerate() {
            let rows = batch.num_rows();
            let context = SampleContext {
                seed,
                epoch,
                stage: i,
            };
            batch = stage
                .apply(batch, first_sample, &context)
                .map_err(|e| match e {
                    // A stage names the sample; the chain adds the unit it came from.
                    Error::Format {
                        path,
                        location: at,
                        message,
                    } if path.as_os_str().is_empty() => {
                        Error::format(location(), format!("{} stage, {at}", stage.name()), message)
                    }
                    other => other,
                })?;
            if batch.num_rows() != rows || batch.schema().fields() != schema.fields() {
                return Err(Error::schema(
                    location(),
                    format!(
                        "stage {:?} returned {} rows of schema {:?}; it must keep the {rows} rows and return {:?}",
                        stage.name(),
                        batch.num_rows(),
                        batch.schema().fields(),
                        schema.fields()
                    ),
                ));
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array};
    use arrow_schema::{DataType, Field, Schema};
    use rand::Rng;

    /// Adds a column with one seeded draw per sample.
    struct Noise;

    impl SampleStage for Noise {
        fn name(&self) -> &str {
            "noise"
        }
        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
            let mut fields: Vec<Field> =
                input.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new("noise", DataType::Int64, false));
            Ok(Arc::new(Schema::new(fields)))
        }
        fn apply(
            &self,
            batch: RecordBatch,
            first: u64,
            ctx: &SampleContext,
        ) -> Result<RecordBatch> {
            let noise: Int64Array = (0..batch.num_rows() as u64)
                .map(|i| ctx.rng(first + i).random_range(0..1_000_000i64))
                .collect();
            let schema = self.output_schema(&batch.schema())?;
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(noise));
            RecordBatch::try_new(schema, columns).map_err(|e| Error::invalid("noise", e))
        }
    }

    /// Breaks the contract: drops a row.
    struct DropsARow;

    impl SampleStage for DropsARow {
        fn name(&self) -> &str {
            "drops"
        }
        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
            Ok(input.clone())
        }
        fn apply(&self, batch: RecordBatch, _: u64, _: &SampleContext) -> Result<RecordBatch> {
            Ok(batch.slice(1, batch.num_rows() - 1))
        }
    }

    fn ids(range: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(range))]).unwrap()
    }

    fn noise(batch: &RecordBatch) -> Vec<i64> {
        let col = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        (0..col.len()).map(|i| col.value(i)).collect()
    }

    #[test]
    fn draws_depend_on_the_sample_not_on_how_units_are_cut() {
        let input = ids(0..0).schema();
        let (chain, out) = SampleChain::plan(vec![Arc::new(Noise)], input).unwrap();
        assert_eq!(out.field(1).name(), "noise");
        let loc = || "unit".to_string();
        let whole = chain.apply(ids(0..10), 100, 7, 1, &loc).unwrap();
        let head = chain.apply(ids(0..4), 100, 7, 1, &loc).unwrap();
        let tail = chain.apply(ids(4..10), 104, 7, 1, &loc).unwrap();
        assert_eq!(noise(&whole), [noise(&head), noise(&tail)].concat());
        let other_epoch = chain.apply(ids(0..10), 100, 7, 2, &loc).unwrap();
        assert_ne!(noise(&whole), noise(&other_epoch));
    }

    #[test]
    fn a_stage_that_changes_the_row_count_is_an_error_naming_it() {
        let (chain, _) = SampleChain::plan(vec![Arc::new(DropsARow)], ids(0..0).schema()).unwrap();
        let e = chain
            .apply(ids(0..5), 0, 0, 0, &|| "f.parquet unit 3".to_string())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("f.parquet unit 3: stage \"drops\" returned 4 rows"),
            "{e}"
        );
    }
}
