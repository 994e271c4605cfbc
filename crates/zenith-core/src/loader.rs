//! The streaming loader: plans an epoch, decodes windows of units on a thread pool, permutes
//! them, gathers exact-size batches in output layout and hands them over through a bounded,
//! ordered queue. Dropping the iterator stops and joins every thread it started.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};

use crate::collate::{self, BatchColumn, Block, FieldPlan, FieldSource, OutputField};
use crate::dataset::{Dataset, Projection};
use crate::error::{Error, Result};
use crate::plan::{self, PlanSpec, Segment, Window};
use crate::source::{DecodeOptions, Format};

/// What to do with a unit that fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop the iteration with the error (default).
    #[default]
    Raise,
    /// Skip the unit, count it in [`LoaderStats`] and log its location.
    Skip,
}

/// Output form of batch columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputKind {
    /// Numbers and fixed-size lists become contiguous tensors; other columns stay Arrow.
    #[default]
    Tensors,
    /// Every column stays an Arrow array.
    Arrow,
}

/// Settings of a [`DataLoader`].
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Rows per batch; the last batch of an epoch may be shorter unless `drop_last`.
    pub batch_size: usize,
    /// Permute units and rows each epoch.
    pub shuffle: bool,
    /// Base seed of every permutation.
    pub seed: u64,
    /// Output fields; every column as itself when `None`.
    pub columns: Option<Vec<OutputField>>,
    /// Decode threads; `ZENITH_NUM_WORKERS` or the CPU count when `None`.
    pub num_workers: Option<usize>,
    /// Drop the last short batch.
    pub drop_last: bool,
    /// Batches prepared ahead of the consumer (default 8).
    pub prefetch: Option<usize>,
    /// This process's rank.
    pub rank: usize,
    /// Number of ranks.
    pub world_size: usize,
    /// Error policy.
    pub on_error: OnError,
    /// Output form.
    pub output: OutputKind,
    /// Rows per shuffle window; derived from `memory_budget` when `None`.
    pub shuffle_window: Option<usize>,
    /// Bytes the shuffle may hold; a dataset that fits is permuted exactly (one window).
    /// Default: the cache budget (100 MB unless `ZENITH_CACHE_BYTES`).
    pub memory_budget: Option<usize>,
    /// Format override.
    pub format: Option<Format>,
    /// Decoder settings.
    pub decode: DecodeOptions,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 32,
            shuffle: true,
            seed: 0,
            columns: None,
            num_workers: None,
            drop_last: false,
            prefetch: None,
            rank: 0,
            world_size: 1,
            on_error: OnError::Raise,
            output: OutputKind::Tensors,
            shuffle_window: None,
            memory_budget: None,
            format: None,
            decode: DecodeOptions::default(),
        }
    }
}

/// Counters of a loader, summed over its iterations.
#[derive(Debug, Default)]
pub struct LoaderStats {
    rows: AtomicU64,
    batches: AtomicU64,
    bytes: AtomicU64,
    read_ns: AtomicU64,
    collate_unit_ns: AtomicU64,
    shuffle_ns: AtomicU64,
    collate_ns: AtomicU64,
    wait_ns: AtomicU64,
    skipped_units: AtomicU64,
    skipped_rows: AtomicU64,
    skipped: Mutex<Vec<String>>,
}

/// A snapshot of [`LoaderStats`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StatsSnapshot {
    /// Rows delivered.
    pub rows: u64,
    /// Batches delivered.
    pub batches: u64,
    /// Bytes of delivered batch columns.
    pub bytes: u64,
    /// Seconds decoding units (summed over threads).
    pub read_s: f64,
    /// Seconds converting decoded units into output layout (summed over threads).
    pub decode_s: f64,
    /// Seconds computing permutations.
    pub shuffle_s: f64,
    /// Seconds gathering batches.
    pub collate_s: f64,
    /// Seconds the consumer waited for a batch.
    pub wait_s: f64,
    /// Units skipped under `on_error="skip"`.
    pub skipped_units: u64,
    /// Rows in skipped units.
    pub skipped_rows: u64,
    /// Where the skipped units were (first 100).
    pub skipped: Vec<String>,
}

impl LoaderStats {
    fn add(counter: &AtomicU64, start: Instant) {
        counter.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// A consistent-enough copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let s = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64 / 1e9;
        StatsSnapshot {
            rows: self.rows.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            read_s: s(&self.read_ns),
            decode_s: s(&self.collate_unit_ns),
            shuffle_s: s(&self.shuffle_ns),
            collate_s: s(&self.collate_ns),
            wait_s: s(&self.wait_ns),
            skipped_units: self.skipped_units.load(Ordering::Relaxed),
            skipped_rows: self.skipped_rows.load(Ordering::Relaxed),
            skipped: self.skipped.lock().map(|v| v.clone()).unwrap_or_default(),
        }
    }
}

/// One batch: named columns of equal length.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Rows in the batch.
    pub rows: usize,
    /// Columns in field order.
    pub columns: Vec<(String, BatchColumn)>,
    /// Planned positions this batch consumed (rows plus skipped rows); used for resume.
    pub positions: usize,
}

impl Batch {
    /// Converts to an Arrow record batch (tensors `[B, k]` become fixed-size lists).
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        let arrays: Vec<_> = self.columns.iter().map(|(_, c)| c.to_arrow()).collect();
        let fields: Vec<Field> = self
            .columns
            .iter()
            .zip(&arrays)
            .map(|((n, _), a)| {
                Field::new(
                    n,
                    a.data_type().clone(),
                    a.null_count() > 0 || matches!(a.data_type(), arrow_schema::DataType::Null),
                )
            })
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::invalid("batch", e))
    }
}

/// Resume state: small, JSON-serialisable, independent of thread count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoaderState {
    /// Format version of the state.
    pub version: u32,
    /// Epoch in progress (or next, when `rows` is 0).
    pub epoch: u64,
    /// Base seed.
    pub seed: u64,
    /// Shuffle on or off.
    pub shuffle: bool,
    /// World size at the start of the epoch.
    pub epoch_world_size: usize,
    /// Earlier interruptions of this epoch: (world size, rows each rank had consumed).
    pub resumes: Vec<(usize, usize)>,
    /// World size of the ranks that wrote this state.
    pub world_size: usize,
    /// Planned rows this rank consumed in the epoch since the last resume.
    pub rows: usize,
    /// Rows in the dataset (a guard against resuming on other data).
    pub dataset_rows: usize,
    /// Rows per shuffle window (the plan depends on it).
    pub window_rows: usize,
    /// Rows of the first window.
    pub first_window_rows: usize,
}

#[derive(Debug, Clone)]
struct Progress {
    epoch: u64,
    epoch_world_size: usize,
    resumes: Vec<(usize, usize)>,
    /// World size of the generation that `rows` counts in.
    world_size: usize,
    rows: usize,
    /// Set by `load_state_dict`: the next iteration continues from `rows`.
    resume_pending: bool,
    /// The iteration of `epoch` ran to its end.
    finished: bool,
}

impl Progress {
    /// The start of `epoch` under `world_size`, nothing consumed.
    fn start(epoch: u64, world_size: usize) -> Progress {
        Progress {
            epoch,
            epoch_world_size: world_size,
            resumes: Vec::new(),
            world_size,
            rows: 0,
            resume_pending: false,
            finished: false,
        }
    }
}

struct Shared {
    dataset: Arc<Dataset>,
    projection: Projection,
    plans: Vec<FieldPlan>,
    names: Vec<String>,
    on_error: OnError,
    stats: Arc<LoaderStats>,
    cancel: AtomicBool,
}

/// A streaming loader over a dataset. Iterate with [`DataLoader::iter`]; each completed
/// iteration advances the epoch.
pub struct DataLoader {
    shared_parts: (Arc<Dataset>, Projection, Vec<FieldPlan>, Vec<String>),
    config: LoaderConfig,
    window_rows: usize,
    first_window_rows: usize,
    progress: Arc<Mutex<Progress>>,
    stats: Arc<LoaderStats>,
}

fn default_fields(schema: &Schema) -> Vec<OutputField> {
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

impl DataLoader {
    /// Opens the dataset and checks the configuration.
    pub fn new(sources: &[String], config: LoaderConfig) -> Result<DataLoader> {
        if config.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be at least 1"));
        }
        if config.world_size == 0 || config.rank >= config.world_size {
            return Err(Error::invalid(
                "rank",
                format!(
                    "rank {} must be below world_size {}",
                    config.rank, config.world_size
                ),
            ));
        }
        if config.num_workers == Some(0) {
            return Err(Error::invalid(
                "num_workers",
                "must be at least 1 (decoding always runs on Rust threads)",
            ));
        }
        if config.prefetch == Some(0) {
            return Err(Error::invalid("prefetch", "must be at least 1"));
        }
        let dataset = Arc::new(Dataset::open(sources, config.format, &config.decode)?);
        let fields = config
            .columns
            .clone()
            .unwrap_or_else(|| default_fields(&dataset.schema()));
        let mut names: Vec<String> = Vec::new();
        let mut seen_fields = std::collections::HashSet::new();
        for f in &fields {
            if !seen_fields.insert(f.name.clone()) {
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
        let projection = dataset.projection(Some(&names))?;
        let plans = collate::plan_fields(
            &fields,
            &names,
            &projection.schema,
            config.output == OutputKind::Arrow,
        )?;
        let row_bytes: usize = plans
            .iter()
            .map(|p| match p {
                FieldPlan::Tensor { dtype, width, .. } => width * dtype.size(),
                FieldPlan::Arrow { .. } => 64,
            })
            .sum::<usize>()
            .max(1);
        let total = dataset.num_rows();
        let budget = config
            .memory_budget
            .unwrap_or_else(|| crate::cache::stats().0.max(1 << 20));
        let (window_rows, first_window_rows) = match config.shuffle_window {
            Some(0) => return Err(Error::invalid("shuffle_window", "must be at least 1 row")),
            Some(w) => (w, w),
            None if total.saturating_mul(row_bytes) <= budget => (total.max(1), total.max(1)),
            None => {
                let w = (budget / row_bytes / 2)
                    .max(config.batch_size * 4)
                    .max(1024);
                (w, (w / 4).max(config.batch_size).min(w))
            }
        };
        let stats = Arc::new(LoaderStats::default());
        let progress = Progress::start(0, config.world_size);
        let field_names = fields.iter().map(|f| f.name.clone()).collect();
        Ok(DataLoader {
            shared_parts: (dataset, projection, plans, field_names),
            config,
            window_rows,
            first_window_rows,
            progress: Arc::new(Mutex::new(progress)),
            stats,
        })
    }

    /// The dataset being read.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.shared_parts.0
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Rows per shuffle window in use.
    pub fn window_rows(&self) -> usize {
        self.window_rows
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rows this rank receives in a full epoch.
    pub fn rows_per_epoch(&self) -> usize {
        plan::rows_per_rank(self.dataset().num_rows(), self.config.world_size)
    }

    /// Batches this rank receives in a full epoch.
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
        let p = self.lock();
        if p.finished {
            p.epoch + 1
        } else {
            p.epoch
        }
    }

    /// Sets the epoch of the next iteration (from its start).
    pub fn set_epoch(&self, epoch: u64) {
        let mut p = self.lock();
        *p = Progress::start(epoch, self.config.world_size);
    }

    /// Counters summed over iterations.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The resume state: where this rank is in the current epoch.
    pub fn state(&self) -> LoaderState {
        let p = self.lock();
        let (epoch, rows, resumes, epoch_world) = if p.finished {
            (p.epoch + 1, 0, Vec::new(), p.world_size)
        } else {
            (p.epoch, p.rows, p.resumes.clone(), p.epoch_world_size)
        };
        LoaderState {
            version: 1,
            epoch,
            seed: self.config.seed,
            shuffle: self.config.shuffle,
            epoch_world_size: epoch_world,
            resumes,
            world_size: p.world_size,
            rows,
            dataset_rows: self.dataset().num_rows(),
            window_rows: self.window_rows,
            first_window_rows: self.first_window_rows,
        }
    }

    /// Restores a state; the next iteration continues right after the rows it had consumed,
    /// also under another world size (the rest of the epoch is re-split) or thread count.
    pub fn load_state(&mut self, state: &LoaderState) -> Result<()> {
        if state.version != 1 {
            return Err(Error::invalid(
                "state",
                format!("unknown state version {}", state.version),
            ));
        }
        if state.dataset_rows != self.dataset().num_rows() {
            return Err(Error::invalid(
                "state",
                format!(
                    "state is for a dataset of {} rows, this one has {}",
                    state.dataset_rows,
                    self.dataset().num_rows()
                ),
            ));
        }
        if state.shuffle != self.config.shuffle {
            return Err(Error::invalid(
                "state",
                "state was saved with a different shuffle setting",
            ));
        }
        if state.world_size == 0 || state.epoch_world_size == 0 || state.window_rows == 0 {
            return Err(Error::invalid(
                "state",
                "world sizes and window rows must be positive",
            ));
        }
        self.config.seed = state.seed;
        self.window_rows = state.window_rows;
        self.first_window_rows = state.first_window_rows;
        let mut resumes = state.resumes.clone();
        let mut epoch_world_size = state.epoch_world_size;
        let rows = if state.rows == 0 && resumes.is_empty() {
            // Nothing consumed yet: the epoch simply starts under the current world size.
            epoch_world_size = self.config.world_size;
            0
        } else if resumes.is_empty() && state.world_size == self.config.world_size {
            state.rows
        } else {
            resumes.push((state.world_size, state.rows));
            0
        };
        let mut p = self.lock();
        *p = Progress {
            epoch: state.epoch,
            epoch_world_size,
            resumes,
            world_size: self.config.world_size,
            rows,
            resume_pending: true,
            finished: false,
        };
        Ok(())
    }

    /// Starts an iteration of the current epoch (from its start, or from a loaded state).
    pub fn iter(&self) -> Result<BatchIterator> {
        let (spec, skip) = {
            let mut p = self.lock();
            if p.finished {
                *p = Progress::start(p.epoch + 1, self.config.world_size);
            } else if !p.resume_pending {
                p.rows = 0;
                p.resumes.clear();
                p.epoch_world_size = self.config.world_size;
            }
            p.resume_pending = false;
            let spec = PlanSpec {
                seed: self.config.seed,
                epoch: p.epoch,
                shuffle: self.config.shuffle,
                window_rows: self.window_rows,
                first_window_rows: self.first_window_rows,
                world_size: p.epoch_world_size,
                resumes: p.resumes.clone(),
            };
            (spec, p.rows)
        };
        let segments = plan::plan_rank(
            self.dataset().units(),
            &spec,
            self.config.rank,
            self.config.world_size,
        )?;
        let segments = plan::skip_rows(&segments, skip);
        let (dataset, projection, plans, names) = &self.shared_parts;
        let shared = Arc::new(Shared {
            dataset: dataset.clone(),
            projection: projection.clone(),
            plans: plans.clone(),
            names: names.clone(),
            on_error: self.config.on_error,
            stats: self.stats.clone(),
            cancel: AtomicBool::new(false),
        });
        let workers = self.dataset().decode_threads(
            self.config
                .num_workers
                .unwrap_or_else(crate::pool::default_num_workers),
        );
        let prefetch = self.config.prefetch.unwrap_or(8);
        let (tx, rx) = bounded(prefetch);
        let producer_shared = shared.clone();
        let batch_size = self.config.batch_size;
        let drop_last = self.config.drop_last;
        let lookahead_rows = self.window_rows;
        let pool = crate::pool::build(workers, "zenith-decode")?;
        let handle = std::thread::Builder::new()
            .name("zenith-loader".into())
            .spawn(move || {
                let producer = Producer {
                    shared: producer_shared,
                    pool,
                    batch_size,
                    drop_last,
                    lookahead_rows,
                    tx,
                };
                producer.run(segments);
            })
            .map_err(|e| Error::resource("the loader thread", e))?;
        Ok(BatchIterator {
            rx: Some(rx),
            handle: Some(handle),
            shared,
            progress: self.progress.clone(),
            done: false,
        })
    }

    /// Iterates the current epoch as Arrow record batches (the Rust-facing form).
    pub fn record_batches(&self) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
        Ok(self.iter()?.map(|b| b.and_then(|b| b.to_record_batch())))
    }

    /// The schema of batches in Arrow form.
    pub fn output_names(&self) -> &[String] {
        &self.shared_parts.3
    }

    /// The projected input schema.
    pub fn input_schema(&self) -> SchemaRef {
        self.shared_parts.1.schema.clone()
    }
}

/// A running iteration. Dropping it stops the pipeline and joins its threads.
pub struct BatchIterator {
    rx: Option<Receiver<Result<Batch>>>,
    handle: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    progress: Arc<Mutex<Progress>>,
    done: bool,
}

/// Result of waiting a bounded time for the next batch.
pub enum Poll {
    /// A batch or an error.
    Ready(Option<Result<Batch>>),
    /// Nothing arrived in time; poll again (lets callers check for Ctrl-C).
    Pending,
}

impl BatchIterator {
    /// Waits at most `timeout` for the next batch.
    pub fn poll_next(&mut self, timeout: Duration) -> Poll {
        if self.done {
            return Poll::Ready(None);
        }
        let Some(rx) = self.rx.as_ref() else {
            return Poll::Ready(None);
        };
        let start = Instant::now();
        let got = rx.recv_timeout(timeout);
        LoaderStats::add(&self.shared.stats.wait_ns, start);
        match got {
            Ok(Ok(batch)) => {
                let stats = &self.shared.stats;
                stats.rows.fetch_add(batch.rows as u64, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                let bytes: usize = batch.columns.iter().map(|(_, c)| c.nbytes()).sum();
                stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
                p.rows += batch.positions;
                Poll::Ready(Some(Ok(batch)))
            }
            Ok(Err(e)) => {
                self.finish(false);
                Poll::Ready(Some(Err(e)))
            }
            Err(RecvTimeoutError::Timeout) => Poll::Pending,
            Err(RecvTimeoutError::Disconnected) => {
                self.finish(true);
                Poll::Ready(None)
            }
        }
    }

    fn finish(&mut self, completed: bool) {
        self.done = true;
        if completed {
            let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            p.finished = true;
        }
        self.stop();
    }

    /// Stops the pipeline and joins its threads (idempotent).
    pub fn stop(&mut self) {
        self.shared.cancel.store(true, Ordering::SeqCst);
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Iterator for BatchIterator {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        loop {
            if let Poll::Ready(item) = self.poll_next(Duration::from_millis(100)) {
                return item;
            }
        }
    }
}

impl Drop for BatchIterator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Decoded blocks of one window: per slice (None when skipped), per field.
struct WindowData {
    blocks: Vec<Option<Vec<Block>>>,
    /// (slice, row) in emission order.
    order: Vec<(u32, u32)>,
}

struct WindowJob {
    window: Arc<Window>,
    rx: Receiver<(usize, Result<Vec<Block>>)>,
}

struct Producer {
    shared: Arc<Shared>,
    pool: rayon::ThreadPool,
    batch_size: usize,
    drop_last: bool,
    lookahead_rows: usize,
    tx: Sender<Result<Batch>>,
}

struct PendingBatch {
    chunks: Vec<(Arc<WindowData>, Vec<collate::Pick>)>,
    rows: usize,
    positions: usize,
}

impl Producer {
    fn cancelled(&self) -> bool {
        self.shared.cancel.load(Ordering::Relaxed)
    }

    fn dispatch(&self, window: Arc<Window>) -> WindowJob {
        let (tx, rx) = unbounded();
        for (i, slice) in window.slices.iter().copied().enumerate() {
            let shared = self.shared.clone();
            let tx = tx.clone();
            self.pool.spawn(move || {
                if shared.cancel.load(Ordering::Relaxed) {
                    let _ = tx.send((i, Err(Error::Interrupted)));
                    return;
                }
                let start = Instant::now();
                let result = shared
                    .dataset
                    .read_unit(slice.unit, &shared.projection)
                    .map(|b| {
                        if slice.start == 0 && slice.end == b.num_rows() {
                            b
                        } else {
                            b.slice(slice.start, slice.rows())
                        }
                    });
                LoaderStats::add(&shared.stats.read_ns, start);
                let start = Instant::now();
                let location = || {
                    let file = &shared.dataset.files()[slice.unit.file];
                    format!("{} unit {}", file.path().display(), slice.unit.unit)
                };
                let result = result.and_then(|b| collate::to_blocks(&b, &shared.plans, &location));
                LoaderStats::add(&shared.stats.collate_unit_ns, start);
                let _ = tx.send((i, result));
            });
        }
        WindowJob { window, rx }
    }

    fn collect(&self, job: WindowJob) -> Result<WindowData> {
        let n = job.window.slices.len();
        let mut blocks: Vec<Option<Vec<Block>>> = (0..n).map(|_| None).collect();
        for _ in 0..n {
            let (i, result) = job.rx.recv().map_err(|_| Error::Interrupted)?;
            match result {
                Ok(b) => blocks[i] = Some(b),
                Err(Error::Interrupted) => return Err(Error::Interrupted),
                Err(e) if self.shared.on_error == OnError::Skip => {
                    let slice = job.window.slices[i];
                    let stats = &self.shared.stats;
                    stats.skipped_units.fetch_add(1, Ordering::Relaxed);
                    stats
                        .skipped_rows
                        .fetch_add(slice.rows() as u64, Ordering::Relaxed);
                    tracing::warn!(error = %e, "skipping unit");
                    if let Ok(mut v) = stats.skipped.lock() {
                        if v.len() < 100 {
                            v.push(e.to_string());
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let start = Instant::now();
        let mut order: Vec<(u32, u32)> = Vec::with_capacity(job.window.rows);
        for (i, slice) in job.window.slices.iter().enumerate() {
            order.extend((0..slice.rows() as u32).map(|r| (i as u32, r)));
        }
        job.window.permute(&mut order);
        LoaderStats::add(&self.shared.stats.shuffle_ns, start);
        Ok(WindowData { blocks, order })
    }

    fn emit(&self, pending: &mut PendingBatch) -> bool {
        let start = Instant::now();
        let mut columns = Vec::with_capacity(self.shared.plans.len());
        for (f, plan) in self.shared.plans.iter().enumerate() {
            let mut parts = Vec::with_capacity(pending.chunks.len());
            for (wd, picks) in &pending.chunks {
                let blocks: Vec<&Block> = wd
                    .blocks
                    .iter()
                    .map(|b| b.as_ref().map_or(&EMPTY_BLOCK, |v| &v[f]))
                    .collect();
                parts.push((blocks, picks.as_slice()));
            }
            match collate::gather_chunks(plan, &parts) {
                Ok(col) => columns.push((self.shared.names[f].clone(), col)),
                Err(e) => {
                    let _ = self.tx.send(Err(e));
                    return false;
                }
            }
        }
        LoaderStats::add(&self.shared.stats.collate_ns, start);
        let batch = Batch {
            rows: pending.rows,
            columns,
            positions: pending.positions,
        };
        *pending = PendingBatch {
            chunks: Vec::new(),
            rows: 0,
            positions: 0,
        };
        self.tx.send(Ok(batch)).is_ok()
    }

    fn run(self, segments: Vec<Segment>) {
        let mut jobs: VecDeque<WindowJob> = VecDeque::new();
        let mut next_dispatch = 0;
        let mut pending = PendingBatch {
            chunks: Vec::new(),
            rows: 0,
            positions: 0,
        };
        for seg in &segments {
            // Keep the next windows decoding while this one is emitted.
            while next_dispatch < segments.len()
                && (jobs.len() < 2
                    || jobs.iter().map(|j| j.window.rows).sum::<usize>() < self.lookahead_rows)
            {
                jobs.push_back(self.dispatch(segments[next_dispatch].window.clone()));
                next_dispatch += 1;
            }
            let Some(job) = jobs.pop_front() else { break };
            let wd = match self.collect(job) {
                Ok(wd) => Arc::new(wd),
                Err(e) => {
                    if !self.cancelled() {
                        let _ = self.tx.send(Err(e));
                    }
                    return;
                }
            };
            let mut picks: Vec<(u32, u32)> = Vec::with_capacity(self.batch_size);
            for &pick in &wd.order[seg.from..seg.to.min(wd.order.len())] {
                pending.positions += 1;
                if wd.blocks[pick.0 as usize].is_none() {
                    continue;
                }
                picks.push(pick);
                pending.rows += 1;
                if pending.rows == self.batch_size {
                    pending
                        .chunks
                        .push((wd.clone(), std::mem::take(&mut picks)));
                    if self.cancelled() || !self.emit(&mut pending) {
                        return;
                    }
                }
            }
            if !picks.is_empty() {
                pending.chunks.push((wd.clone(), picks));
            }
        }
        if pending.rows > 0 && !self.drop_last {
            self.emit(&mut pending);
        }
    }
}

static EMPTY_BLOCK: Block = Block::Tensor(collate::TensorData::Bool(Vec::new()));
