//! The streaming loader: wires the chain of stages (see [`crate::stage`]) for a dataset and a
//! configuration, and runs it one epoch per iteration.
//!
//! - `config`: the settings and the parsers of their option strings;
//! - `stats`: counters per stage;
//! - `state`: the resume document, one section per stateful stage;
//! - `pipeline`: the producer thread (plan -> decode + per-sample stages on a pool ->
//!   permute -> gather exact-size batches);
//! - `iter`: the hand-over (a bounded, ordered queue and the iterator over it).
//!
//! Dropping an iterator stops and joins every thread it started.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::{FieldRef, Schema, SchemaRef};

use crate::collate::{self, FieldPlan, FieldSource, OutputField};
use crate::dataset::{Dataset, Projection, UnitRef};
use crate::error::{Error, Result};
use crate::plan::{self, PlanInputs, PlanState, Stop};
use crate::stage::pack::{PackState, PACK_STAGE};
use crate::stage::{PackConfig, SampleChain};

mod config;
mod iter;
mod packing;
mod pipeline;
mod reuse;
mod state;
mod stats;

pub use config::{parse_delimiter, LoaderConfig, OnError, OutputKind};
pub use iter::{Batch, BatchIterator, Poll};
pub use reuse::{default_reuse_budget, default_reuse_budget_for};
pub use state::{LoaderState, STATE_VERSION};
pub use stats::{LoaderStats, StatsSnapshot};

use plan::state::Progress;
use reuse::DecodedUnits;

/// Everything an iteration needs that the configuration fixed when the loader was opened:
/// the source, the column selection, the per-sample stages and the collation plan.
pub(crate) struct Chain {
    /// The source: listing, units and decoding.
    pub(crate) dataset: Arc<Dataset>,
    /// Columns decoded from the source.
    pub(crate) projection: Projection,
    /// Per-sample stages run on each decoded unit.
    pub(crate) samples: SampleChain,
    /// Id of each unit's first sample: `first_sample[file][unit]`.
    pub(crate) first_sample: Vec<Vec<u64>>,
    /// How each output field is collated.
    pub(crate) fields: Vec<FieldPlan>,
    /// Output field names, in order.
    pub(crate) names: Vec<String>,
    /// The source field behind each output field that is one column as it is (renamed to the
    /// output name): its metadata, extension type and nullability go into Arrow batches.
    pub(crate) source_fields: Arc<Vec<Option<FieldRef>>>,
    /// The schema collation reads (after the per-sample stages).
    pub(crate) schema: SchemaRef,
    /// Rows kept of each decoded unit (see [`LoaderConfig::filter`]).
    pub(crate) filter: Option<Arc<crate::source::predicate::Predicate>>,
}

impl Chain {
    /// The id of the first sample of `unit` (its position in the dataset's listing).
    pub(crate) fn first_sample(&self, unit: UnitRef) -> u64 {
        self.first_sample[unit.file][unit.unit]
    }

    /// "file unit N", for errors and skip records.
    pub(crate) fn location(&self, unit: UnitRef) -> String {
        self.dataset.files()[unit.file].unit_location(unit.unit)
    }
}

/// A streaming loader over a dataset. Iterate with [`DataLoader::iter`]; each completed
/// iteration advances the epoch.
pub struct DataLoader {
    chain: Arc<Chain>,
    config: LoaderConfig,
    inputs: PlanInputs,
    progress: Arc<Mutex<Progress>>,
    stats: Arc<LoaderStats>,
    /// Decoded units kept across epochs (`None`: the dataset streams every epoch).
    reuse: Option<Arc<DecodedUnits>>,
    /// Sequence packing (`None`: batches of rows).
    pack: Option<Arc<PackConfig>>,
    /// Where the packer stood after the last packed batch delivered, or from a loaded state.
    carry: Arc<Mutex<Stop>>,
    /// The packer's carry of a loaded state, for the next iteration.
    resume_skip: Mutex<Option<Stop>>,
    /// Estimated bytes of one output row (or packed sequence), for the sizes in flight.
    row_bytes: usize,
}

fn fields_of(schema: &Schema) -> Vec<OutputField> {
    schema
        .fields()
        .iter()
        .map(|f| OutputField {
            name: f.name().clone(),
            source: FieldSource::Column(f.name().clone()),
            dtype: None,
        })
        .collect()
}

/// The schema's field for an output field that is one column in its own type, renamed to the
/// output name; `None` for stacks and casts.
fn source_field(field: &OutputField, schema: &Schema) -> Option<FieldRef> {
    match (&field.source, field.dtype) {
        (FieldSource::Column(c), None) => schema
            .field_with_name(c)
            .ok()
            .map(|f| Arc::new(f.clone().with_name(field.name.clone()))),
        _ => None,
    }
}

/// Source columns the output fields name, in first-use order; an output name used twice is
/// an error.
fn referenced_columns(fields: &[OutputField]) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let mut outputs = std::collections::HashSet::new();
    for f in fields {
        if !outputs.insert(f.name.as_str()) {
            return Err(Error::invalid(
                "columns",
                format!("output name {:?} is used twice", f.name),
            ));
        }
        let cols = match &f.source {
            FieldSource::Column(c) => std::slice::from_ref(c),
            FieldSource::Stack(cs) => cs.as_slice(),
        };
        for c in cols {
            if !names.contains(c) {
                names.push(c.clone());
            }
        }
    }
    Ok(names)
}

/// Ids of each unit's first sample, in listing order.
fn first_samples(dataset: &Dataset) -> Vec<Vec<u64>> {
    let mut out: Vec<Vec<u64>> = vec![Vec::new(); dataset.files().len()];
    let mut next = 0u64;
    for u in dataset.units() {
        let units = &mut out[u.file];
        if units.len() <= u.unit {
            units.resize(u.unit + 1, 0);
        }
        units[u.unit] = next;
        next += u.rows as u64;
    }
    out
}

/// Bytes of decoded rows the shuffle may hold when the caller gives no `memory_budget`: windows
/// of half of it. On the bench's 4M-row table in 65,536-row row groups, 100 MB windows mix too
/// few row groups (shuffle quality 0.90 by the bench's measure); these mix about eleven (0.95)
/// and the streaming epoch grows the process by about 300 MB.
pub const DEFAULT_MEMORY_BUDGET: usize = 200_000_000;

/// Rows per shuffle window and of the first window: the whole dataset when it fits the
/// budget (an exact permutation), otherwise windows of half the budget (the first a quarter of
/// a window, so the first batch comes early).
fn window_sizes(config: &LoaderConfig, total: usize, row_bytes: usize) -> (usize, usize) {
    let budget = config.memory_budget.unwrap_or(DEFAULT_MEMORY_BUDGET);
    match config.shuffle_window {
        Some(w) => (w, w),
        None if total.saturating_mul(row_bytes) <= budget => (total.max(1), total.max(1)),
        None => {
            // Half the budget, and at least 1024 rows where those fit in it (rows of numbers,
            // so that a window mixes several row groups); rows of decoded images (600 KB at
            // 3x224x224 float32) keep to the budget, with two batches at the least.
            let floor = if row_bytes.saturating_mul(1024) <= budget {
                (config.batch_size * 4).max(1024)
            } else {
                config.batch_size * 2
            };
            let w = (budget / row_bytes / 2).max(floor).max(1);
            (w, (w / 4).max(config.batch_size).min(w))
        }
    }
}

impl DataLoader {
    /// Opens the dataset, plans the stages and checks the configuration.
    pub fn new(sources: &[String], mut config: LoaderConfig) -> Result<DataLoader> {
        config.validate()?;
        if let Some(pack) = &config.pack {
            // A token file without an index is cut into rows of one sequence.
            config.decode.token_chunk = config.decode.token_chunk.or(Some(pack.seq_len));
        }
        let dataset = Dataset::open(sources, config.format, &config.decode)?;
        Self::from_dataset(dataset, config)
    }

    /// A loader over a dataset already opened (e.g. [`Dataset::from_reader`] of an in-memory
    /// table); the same plan, shuffle, split and resume as over files.
    pub fn from_dataset(mut dataset: Dataset, config: LoaderConfig) -> Result<DataLoader> {
        config.validate()?;
        if let Some(filter) = &config.filter {
            dataset.prune_units(filter);
        }
        let dataset = Arc::new(dataset);
        let pack = config.pack.clone().map(Arc::new);
        let chain = match &pack {
            None => Self::wire(dataset, &config)?,
            Some(pack) => {
                // The producer reads the token column alone (or what a stage makes it from,
                // e.g. the text a tokenizer reads); the packer makes the fields.
                let mut staged = dataset.schema();
                for stage in &config.sample_stages {
                    staged = stage.output_schema(&staged)?;
                }
                let column = staged
                    .field_with_name(&pack.column)
                    .map(|f| f.data_type().clone())
                    .map_err(|_| Error::UnknownColumn {
                        path: dataset.files()[0].path().to_path_buf(),
                        column: pack.column.clone(),
                        available: staged
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
                pack.check_column(&column)?;
                let read = LoaderConfig {
                    columns: Some(vec![OutputField {
                        name: pack.column.clone(),
                        source: FieldSource::Column(pack.column.clone()),
                        dtype: None,
                    }]),
                    output: OutputKind::Tensors,
                    ..config.clone()
                };
                Self::wire(dataset, &read)?
            }
        };
        let chain = Arc::new(chain);
        // Lists and strings: their size in the files' footers where a source column as it is
        // (not a stage's output) has one, so that the shuffle's window of long rows keeps to
        // the memory budget and the first batch comes early. One pass over the footers for
        // all of them.
        let source_schema = chain.dataset.schema();
        let sized: Vec<&str> = chain
            .fields
            .iter()
            .filter_map(|p| match p {
                FieldPlan::Arrow { column } => {
                    let field = chain.schema.field(*column);
                    source_schema
                        .field_with_name(field.name())
                        .ok()
                        .filter(|f| f.data_type() == field.data_type())
                        .map(|f| f.name().as_str())
                }
                FieldPlan::Tensor { .. } => None,
            })
            .collect();
        let footer_bytes = chain
            .dataset
            .column_bytes_per_row(&sized)
            .unwrap_or_default();
        let arrow_bytes = |column: &usize| {
            let name = chain.schema.field(*column).name();
            sized
                .iter()
                .position(|c| c == name)
                .and_then(|i| footer_bytes.get(i).copied())
                .unwrap_or(0)
                .max(64)
        };
        let row_bytes: usize = chain
            .fields
            .iter()
            .map(|p| match p {
                FieldPlan::Tensor { dtype, width, .. } => width * dtype.size(),
                FieldPlan::Arrow { column } => arrow_bytes(column),
            })
            .sum::<usize>()
            .max(1);
        // Documents have no size before they are read: the shuffle's budget counts each as a
        // sequence of 32-bit tokens.
        let row_bytes = pack.as_ref().map_or(row_bytes, |p| p.seq_len * 4);
        let total = chain.dataset.num_rows();
        // Kept data would freeze what per-sample stages draw anew each epoch.
        // A packed loader streams by default: token corpora are read an epoch or a few, and
        // what the shuffle holds should be the memory it takes.
        let budget = config.reuse_budget.unwrap_or_else(|| match pack {
            Some(_) => 0,
            None => reuse::default_reuse_budget_for(config.world_size),
        });
        let fits = row_bytes.saturating_mul(total) <= budget;
        // A filter keeps a different number of rows per unit: decoded units are not kept.
        let reuse = (config.filter.is_none() && chain.samples.is_empty() && budget > 0 && fits)
            .then(|| Arc::new(DecodedUnits::new(budget)));
        let (mut window_rows, first_window_rows) = window_sizes(&config, total, row_bytes);
        let exact_size = chain
            .fields
            .iter()
            .all(|f| matches!(f, FieldPlan::Tensor { .. }));
        if reuse.is_some() && exact_size && config.shuffle_window.is_none() {
            // Every decoded unit is kept anyway (and its size was known exactly): windows grow
            // to the whole dataset, an exact permutation after the first windows, at no
            // further memory cost.
            window_rows = window_rows.max(total);
        }
        let mut first_window_rows = first_window_rows;
        if config.shuffle_window.is_none() && chain.dataset.units().iter().all(|u| u.rows <= 1) {
            // Every unit is one row (an ImageFolder's image): the epoch's unit permutation
            // alone is an exact shuffle, so windows only bound the memory held and the wait
            // for the first batch. Two batches, the first one batch.
            window_rows = window_rows.min(config.batch_size * 2).max(1);
            first_window_rows = first_window_rows.min(config.batch_size).max(1);
        }
        let inputs = PlanInputs {
            seed: config.seed,
            shuffle: config.shuffle,
            dataset_rows: total,
            window_rows,
            first_window_rows,
        };
        let progress = Progress::start(0, config.world_size);
        Ok(DataLoader {
            chain,
            config,
            inputs,
            progress: Arc::new(Mutex::new(progress)),
            stats: Arc::new(LoaderStats::default()),
            reuse,
            pack,
            carry: Arc::new(Mutex::new(Stop::default())),
            resume_skip: Mutex::new(None),
            row_bytes,
        })
    }

    /// Resolves the columns through the per-sample stages and plans the collation.
    fn wire(dataset: Arc<Dataset>, config: &LoaderConfig) -> Result<Chain> {
        let stages = config.sample_stages.clone();
        // The filter's columns are read too (and left out of the output unless asked for);
        // one the source lacks is an error naming it, whatever `columns` says.
        let filter_columns: Vec<String> = config
            .filter
            .iter()
            .flat_map(|f| f.columns())
            .map(str::to_string)
            .collect();
        for c in &filter_columns {
            dataset.projection(Some(std::slice::from_ref(c)))?;
        }
        let (projection, fields) = match &config.columns {
            None => {
                let projection = dataset.projection(None)?;
                (projection, None)
            }
            Some(fields) => {
                let referenced = referenced_columns(fields)?;
                let source_schema = dataset.schema();
                // Columns the source has are read; the others must come from a stage.
                let mut read: Vec<String> = referenced
                    .iter()
                    .filter(|c| stages.is_empty() || source_schema.index_of(c).is_ok())
                    .cloned()
                    .collect();
                let needed = stages
                    .iter()
                    .flat_map(|s| s.required_columns())
                    .chain(filter_columns);
                for c in needed {
                    if !read.contains(&c) {
                        read.push(c);
                    }
                }
                (dataset.projection(Some(&read))?, Some(fields.clone()))
            }
        };
        let (samples, schema) = SampleChain::plan(stages, projection.schema.clone())?;
        let fields = match fields {
            Some(fields) => {
                for c in referenced_columns(&fields)? {
                    if schema.index_of(&c).is_err() {
                        return Err(Error::UnknownColumn {
                            path: dataset.files()[0].path().to_path_buf(),
                            column: c,
                            available: schema
                                .fields()
                                .iter()
                                .map(|f| f.name().as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                }
                fields
            }
            None => fields_of(&schema),
        };
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let plans = collate::plan_fields(
            &fields,
            &columns,
            &schema,
            config.output == OutputKind::Arrow,
        )?;
        let source_fields = fields.iter().map(|f| source_field(f, &schema)).collect();
        Ok(Chain {
            first_sample: first_samples(&dataset),
            dataset,
            projection,
            samples,
            fields: plans,
            names: fields.into_iter().map(|f| f.name).collect(),
            source_fields: Arc::new(source_fields),
            schema,
            filter: config.filter.clone(),
        })
    }

    /// The dataset being read.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.chain.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Rows per shuffle window in use.
    pub fn window_rows(&self) -> usize {
        self.inputs.window_rows
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rows this rank receives in a full epoch.
    pub fn rows_per_epoch(&self) -> usize {
        plan::rows_per_rank(self.dataset().num_rows(), self.config.world_size)
    }

    /// True when batches are packed sequences (`tokens=`): their number per epoch depends on
    /// the documents and is not known before they are read (see [`DataLoader::len`]).
    pub fn is_packed(&self) -> bool {
        self.pack.is_some()
    }

    /// Batches this rank receives in a full epoch; for a packed loader, batches of
    /// documents as read (the number of sequences is only known after reading them).
    pub fn len(&self) -> usize {
        let rows = self.rows_per_epoch();
        if self.config.drop_last {
            rows / self.config.batch_size
        } else {
            rows.div_ceil(self.config.batch_size)
        }
    }

    /// True when an epoch yields no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The epoch the next iteration runs.
    pub fn epoch(&self) -> u64 {
        self.lock().next_epoch()
    }

    /// Sets the epoch of the next iteration (from its start).
    pub fn set_epoch(&self, epoch: u64) {
        *self.lock() = Progress::start(epoch, self.config.world_size);
        *self.resume_skip.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Counters summed over iterations.
    pub fn stats(&self) -> StatsSnapshot {
        let mut s = self.stats.snapshot();
        s.kept_bytes = self.reuse.as_ref().map_or(0, |r| r.usage().1 as u64);
        s
    }

    /// Names of the stages that keep a section in the state: the packer (per-sample stages
    /// are stateless and the plan's section is separate).
    fn stateful_stages(&self) -> Vec<&str> {
        self.pack.iter().map(|_| PACK_STAGE).collect()
    }

    /// The resume state: where this rank is in the current epoch.
    pub fn state(&self) -> LoaderState {
        let plan = self.lock().state(&self.inputs, self.config.rank);
        let mut stages = BTreeMap::new();
        if let Some(pack) = &self.pack {
            let carry = *self.carry.lock().unwrap_or_else(|p| p.into_inner());
            let section = PackState {
                mode: pack.mode,
                seq_len: pack.seq_len,
                skip: carry.skip,
                span: carry.span as u64,
                key: carry.key,
            };
            stages.insert(
                PACK_STAGE.to_string(),
                serde_json::to_value(section).unwrap_or_default(),
            );
        }
        LoaderState::new(plan, stages)
    }

    /// Restores a state; the next iteration continues right after the rows it had consumed,
    /// also under another world size (the rest of the epoch is re-split) or thread count.
    /// A packed loader's ranks stop at their own documents: under another world size it
    /// needs the states of all ranks, merged (see [`DataLoader::load_states`]).
    pub fn load_state(&mut self, state: &LoaderState) -> Result<()> {
        state.check_stages(self.stateful_stages())?;
        let p = &state.plan;
        let own = match &self.pack {
            None => Stop {
                rows: p.rows,
                ..Stop::default()
            },
            Some(pack) => match state.stages.get(PACK_STAGE) {
                Some(section) => PackState::from_section(section, pack)?.stop(p.rows),
                None if p.rows == 0 && p.resumes.is_empty() && p.ranks.is_empty() => {
                    Stop::default()
                }
                None => return Err(Error::invalid(
                    "state",
                    "the state has no \"pack\" section: it was saved by a loader without tokens=",
                )),
            },
        };
        if self.pack.is_none() && p.ranks.iter().any(|s| s.skip > 0) {
            return Err(Error::invalid(
                "state",
                "the state was saved by a packed loader (tokens=)",
            ));
        }
        let (progress, inputs, stop) = Progress::restore(
            p,
            own,
            &self.inputs,
            (self.config.rank, self.config.world_size),
            self.pack.is_none(),
        )?;
        self.inputs = inputs;
        self.config.seed = inputs.seed;
        *self.lock() = progress;
        *self.resume_skip.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop);
        *self.carry.lock().unwrap_or_else(|p| p.into_inner()) = stop;
        Ok(())
    }

    /// Restores the states of all ranks of an earlier run (any order), merged by
    /// [`merge_states`].
    pub fn load_states(&mut self, states: &[LoaderState]) -> Result<()> {
        self.load_state(&merge_states(states)?)
    }

    /// Starts an iteration of the current epoch (from its start, or from a loaded state).
    pub fn iter(&self) -> Result<BatchIterator> {
        let (spec, skip) = self.lock().begin(&self.inputs, self.config.world_size);
        let plan = plan::plan_rank(
            self.dataset().units(),
            &spec,
            self.config.rank,
            self.config.world_size,
        )?;
        let segments = plan::skip_rows(&plan.segments, skip);
        let shared = Arc::new(pipeline::Shared {
            chain: self.chain.clone(),
            on_error: self.config.on_error,
            stats: self.stats.clone(),
            cancel: AtomicBool::new(false),
            decoding: AtomicUsize::new(0),
            seed: spec.seed,
            epoch: spec.epoch,
            reuse: self.reuse.clone(),
        });
        let workers = self.dataset().decode_threads(
            self.config
                .num_workers
                .unwrap_or_else(crate::pool::default_loader_workers),
        );
        self.stats
            .threads
            .store(workers as u64, std::sync::atomic::Ordering::Relaxed);
        let resume_skip = self
            .resume_skip
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        let pack = self.pack.as_ref().map(|config| {
            *self.carry.lock().unwrap_or_else(|p| p.into_inner()) = resume_skip;
            let run = packing::PackRun {
                config: config.clone(),
                batch_size: self.config.batch_size,
                drop_last: self.config.drop_last,
                start: skip as u64,
                skip: resume_skip.skip,
                heads: plan.heads,
            };
            (run, self.carry.clone())
        });
        let settings = pipeline::Settings {
            workers,
            prefetch: self.config.prefetch.unwrap_or(8),
            // A packer reads documents in batches of its own size and sends its sequences.
            batch_size: match pack {
                Some(_) => packing::DOCS_PER_READ,
                None => self.config.batch_size,
            },
            drop_last: self.config.drop_last && pack.is_none(),
            lookahead_rows: self.inputs.window_rows,
            row_bytes: self.row_bytes,
        };
        iter::BatchIterator::start(shared, settings, segments, self.progress.clone(), pack)
    }

    /// Iterates the current epoch as Arrow record batches (the Rust-facing form).
    pub fn record_batches(&self) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
        Ok(self.iter()?.map(|b| b.and_then(|b| b.to_record_batch())))
    }

    /// The output field names, in order.
    pub fn output_names(&self) -> Vec<String> {
        match &self.pack {
            Some(pack) => pack.field_names(),
            None => self.chain.names.clone(),
        }
    }

    /// The schema collation reads: the projected source columns after the per-sample stages.
    pub fn input_schema(&self) -> SchemaRef {
        self.chain.schema.clone()
    }
}

/// Merges the states of all ranks of one run (`state_dict()` of each, any order) into one
/// state that every rank of a new run, of any world size, loads: it holds each rank's stop.
/// The states must be of one epoch and one configuration, one per rank; a rank that finished
/// the epoch (its state is at the next one) stopped after all its rows.
pub fn merge_states(states: &[LoaderState]) -> Result<LoaderState> {
    let Some(first) = states.first() else {
        return Err(Error::invalid("state", "an empty list of states"));
    };
    let world = first.plan.world_size;
    if states.len() != world {
        return Err(Error::invalid(
            "state",
            format!(
                "{} states for a run of world size {world}: pass one state per rank",
                states.len()
            ),
        ));
    }
    let epoch = states.iter().map(|s| s.plan.epoch).min().unwrap_or(0);
    let finished = |p: &PlanState| p.epoch == epoch + 1 && p.rows == 0 && p.resumes.is_empty();
    let Some(reference) = states.iter().find(|s| !finished(&s.plan)) else {
        // Every rank finished: the next epoch starts, under any world size.
        let mut next = first.clone();
        next.plan.rank = 0;
        return Ok(next);
    };
    let stages = |s: &LoaderState| -> Vec<Option<(String, u64)>> {
        s.stages
            .values()
            .map(|v| Some((v.get("mode")?.to_string(), v.get("seq_len")?.as_u64()?)))
            .collect()
    };
    let mut stops = vec![None; world];
    for state in states {
        let p = &state.plan;
        if !p.ranks.is_empty() {
            return Err(Error::invalid(
                "state",
                "a state in the list is already merged",
            ));
        }
        let r = &reference.plan;
        let same = if finished(p) {
            (
                p.seed,
                p.shuffle,
                p.world_size,
                p.dataset_rows,
                p.window_rows,
            ) == (
                r.seed,
                r.shuffle,
                r.world_size,
                r.dataset_rows,
                r.window_rows,
            )
        } else {
            PlanState {
                rank: r.rank,
                rows: r.rows,
                ..p.clone()
            } == *r
        };
        if !same || stages(state) != stages(reference) {
            return Err(Error::invalid(
                "state",
                format!(
                    "the state of rank {} is of another epoch, configuration or resume than rank {}'s",
                    p.rank, r.rank
                ),
            ));
        }
        let stop = match state.stages.get(PACK_STAGE) {
            _ if finished(p) => Stop {
                rows: usize::MAX,
                ..Stop::default()
            },
            Some(v) => PackState::read(v)?.stop(p.rows),
            None => Stop {
                rows: p.rows,
                ..Stop::default()
            },
        };
        match stops.get_mut(p.rank) {
            Some(slot @ None) => *slot = Some(stop),
            _ => {
                return Err(Error::invalid(
                    "state",
                    format!(
                        "rank {} is given twice or is not below the world size {world}",
                        p.rank
                    ),
                ))
            }
        }
    }
    let mut plan = reference.plan.clone();
    plan.ranks = stops.into_iter().map(|s| s.unwrap_or_default()).collect();
    plan.rows = 0;
    plan.rank = 0;
    let mut stages = reference.stages.clone();
    if let Some(section) = stages.get_mut(PACK_STAGE) {
        for key in ["skip", "span", "key"] {
            section[key] = 0.into();
        }
    }
    Ok(LoaderState::new(plan, stages))
}
