//! PyO3 bindings of Zenith (`zenith._zenith`): type conversion, GIL release and error mapping
//! only. Every call that reads data releases the GIL; blocking waits poll for Ctrl-C.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::PyArray;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3_arrow::{PyArray as ArrowArray, PyRecordBatch, PySchema, PyTable};
use zenith_core::source::ipc::MappedBatches;
use zenith_core::Poll;

mod blocking;
mod dlpack;
mod errors;
mod jobs;
mod text;
mod vision;

use blocking::{run_interruptible, run_interruptible_with};
use errors::BindingResult;
pub(crate) use errors::{JobError, ZenithError};

/// Zenith's own buffers (read buffers, decoded columns, batch tensors: kilobytes to megabytes,
/// freed and allocated again every few milliseconds, often freed by another thread than the one
/// that allocated them) come from mimalloc, which keeps freed memory for reuse; the system
/// allocator returned many of them to the kernel and paid a page fault and a zero-fill per page
/// on the next (an epoch of 4M rows at batch 64 took 1.05 s with it, 0.69 s with mimalloc).
/// Memory handed to numpy, torch or pyarrow is released through Zenith's own callbacks, so it
/// always returns to this allocator. Python, torch and everything else keep theirs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc's `mi_option_e`.
#[cfg(target_os = "linux")]
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs when the extension is loaded, before its first allocation: arenas commit memory as
/// it is used, not whole. Committed eagerly, they are backed by transparent huge pages that a
/// few live buffers keep resident, so a `zenith.load` of a 520 MB table grew the process by
/// 716 MB instead of 568 MB. `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still decides.
#[cfg(target_os = "linux")]
extern "C" fn configure_allocator() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // SAFETY: sets one documented option; no allocation has been made by this library yet.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
    }
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;
use zenith_core::{
    BatchColumn, DType, DataLoader, DecodeOptions, FieldSource, Format, LoaderConfig, LoaderState,
    OutputField, OutputKind, ReadOptions, StorageOptions, TensorData,
};

fn parse_format(format: Option<&str>) -> BindingResult<Option<Format>> {
    Ok(format.map(Format::parse).transpose()?)
}

fn decode_options(
    csv_schema: Option<PySchema>,
    delimiter: Option<&str>,
    storage_options: Option<HashMap<String, String>>,
    tar: TarOptions,
) -> BindingResult<DecodeOptions> {
    let TarOptions { image_size, fields } = tar;
    let csv_delimiter = delimiter
        .map(zenith_core::loader::parse_delimiter)
        .transpose()?;
    Ok(DecodeOptions {
        csv_schema: csv_schema.map(PySchema::into_inner),
        csv_delimiter,
        csv_unit_bytes: None,
        storage: StorageOptions::new(storage_options.unwrap_or_default()),
        image_size,
        fields,
        tar_unit_bytes: None,
        map_local: false,
        token_dtype: None,
        token_chunk: None,
    })
}

/// WebDataset decode settings from Python.
struct TarOptions {
    /// Images are center-cropped and resized to (height, width).
    image_size: Option<(u32, u32)>,
    /// Member extensions to keep as fields.
    fields: Option<Vec<String>>,
}

/// Reads a dataset into a pyarrow.Table (GIL released while reading; buffers handed over
/// through the Arrow C stream interface without a copy).
#[pyfunction]
#[pyo3(signature = (paths, columns=None, format=None, schema=None, delimiter=None, cache=true, storage_options=None, image_size=None, fields=None, progress=None, prune=None))]
#[allow(clippy::too_many_arguments)]
fn load<'py>(
    py: Python<'py>,
    paths: Vec<String>,
    columns: Option<Vec<String>>,
    format: Option<&str>,
    schema: Option<PySchema>,
    delimiter: Option<&str>,
    cache: bool,
    storage_options: Option<HashMap<String, String>>,
    image_size: Option<(u32, u32)>,
    fields: Option<Vec<String>>,
    progress: Option<Py<PyAny>>,
    prune: Option<&str>,
) -> BindingResult<Bound<'py, PyAny>> {
    let counter = Arc::new(zenith_core::ReadProgress::default());
    let prune = prune
        .map(zenith_core::source::predicate::Predicate::from_json)
        .transpose()?
        .map(Arc::new);
    let options = ReadOptions {
        columns,
        format: parse_format(format)?,
        decode: decode_options(
            schema,
            delimiter,
            storage_options,
            TarOptions { image_size, fields },
        )?,
        no_cache: !cache,
        progress: Some(counter.clone()),
        prune,
    };
    // `progress(rows_done, rows_total)` at every signal check, and once at the end.
    let tick = |py: Python<'_>| -> PyResult<()> {
        if let Some(f) = &progress {
            let load =
                |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            f.call1(py, (load(&counter.done), load(&counter.total)))?;
        }
        Ok(())
    };
    let (schema, batches) = run_interruptible_with(
        py,
        "load",
        move || zenith_core::read_many(&paths, &options),
        tick,
    )?;
    table_to_pyarrow(py, PyTable::try_new(batches, schema)?)
}

/// A `pyarrow.Table` over the batches through the Arrow C stream, without a copy. Read through
/// `RecordBatchReader.from_stream` rather than `pyarrow.table()`, which imports pandas (about
/// 0.2 s) on its first call to check whether its argument is a DataFrame.
fn table_to_pyarrow<'py>(py: Python<'py>, table: PyTable) -> BindingResult<Bound<'py, PyAny>> {
    let reader = py
        .import(intern!(py, "pyarrow"))?
        .getattr(intern!(py, "RecordBatchReader"))?;
    match reader.getattr(intern!(py, "from_stream")) {
        Ok(from_stream) => Ok(from_stream
            .call1((table,))?
            .call_method0(intern!(py, "read_all"))?),
        // pyarrow 14 has no from_stream.
        Err(_) => Ok(table.into_pyarrow(py)?),
    }
}

/// Summarises a dataset from footers and headers (no data pages read).
#[pyfunction]
#[pyo3(signature = (paths, format=None, schema=None, delimiter=None, storage_options=None, image_size=None, fields=None))]
#[allow(clippy::too_many_arguments)]
fn dataset_info<'py>(
    py: Python<'py>,
    paths: Vec<String>,
    format: Option<&str>,
    schema: Option<PySchema>,
    delimiter: Option<&str>,
    storage_options: Option<HashMap<String, String>>,
    image_size: Option<(u32, u32)>,
    fields: Option<Vec<String>>,
) -> BindingResult<Bound<'py, PyDict>> {
    let format = parse_format(format)?;
    let decode = decode_options(
        schema,
        delimiter,
        storage_options,
        TarOptions { image_size, fields },
    )?;
    let info = run_interruptible(py, "info", move || {
        zenith_core::info(&paths, format, &decode)
    })?;
    let out = PyDict::new(py);
    out.set_item("format", info.format.name())?;
    out.set_item(
        "schema",
        PySchema::new(info.schema.clone()).into_pyarrow(py)?,
    )?;
    out.set_item("rows", info.rows)?;
    out.set_item("bytes", info.bytes)?;
    let files = PyList::empty(py);
    for f in &info.files {
        let d = PyDict::new(py);
        d.set_item("path", f.path.to_string_lossy().to_string())?;
        d.set_item("rows", f.rows)?;
        d.set_item("units", f.units)?;
        d.set_item("bytes", f.bytes)?;
        files.append(d)?;
    }
    out.set_item("files", files)?;
    let statistics = per_column(py, info.statistics.as_deref(), |c, d| {
        d.set_item("min", stat_value(py, c.min.as_ref())?)?;
        d.set_item("max", stat_value(py, c.max.as_ref())?)?;
        d.set_item("null_count", c.null_count)?;
        Ok(&c.column)
    })?;
    out.set_item("statistics", statistics)?;
    let storage = per_column(py, info.storage.as_deref(), |c, d| {
        d.set_item("compression", c.compression.clone())?;
        d.set_item("compressed_bytes", c.compressed_bytes)?;
        d.set_item("uncompressed_bytes", c.uncompressed_bytes)?;
        Ok(&c.column)
    })?;
    out.set_item("storage", storage)?;
    Ok(out)
}

/// `{column: {...}}` of per-column records, each dict filled by `fill` (which returns the
/// column's name); `None` where the files keep no such records.
fn per_column<'py, T>(
    py: Python<'py>,
    columns: Option<&[T]>,
    fill: impl for<'a> Fn(&'a T, &Bound<'py, PyDict>) -> PyResult<&'a String>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(columns) = columns else {
        return Ok(None);
    };
    let out = PyDict::new(py);
    for c in columns {
        let d = PyDict::new(py);
        let name = fill(c, &d)?;
        out.set_item(name, d)?;
    }
    Ok(Some(out))
}

/// A footer statistic as a Python scalar (None when unknown).
fn stat_value<'py>(
    py: Python<'py>,
    value: Option<&zenith_core::StatValue>,
) -> PyResult<Bound<'py, PyAny>> {
    use zenith_core::StatValue;
    Ok(match value {
        None => py.None().into_bound(py),
        Some(StatValue::Bool(b)) => b.into_pyobject(py)?.to_owned().into_any(),
        Some(StatValue::Int(i)) => i.into_pyobject(py)?.into_any(),
        Some(StatValue::Float(f)) => f.into_pyobject(py)?.into_any(),
        Some(StatValue::Text(t)) => PyString::new(py, t).into_any(),
    })
}

/// Build facts: version, profile, default thread count, features, cache settings.
#[pyfunction]
fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", zenith_core::VERSION)?;
    d.set_item(
        "profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    d.set_item("threads", zenith_core::pool::default_num_workers())?;
    let formats: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
    d.set_item("formats", formats)?;
    let schemes: Vec<&str> = zenith_core::store::Scheme::ALL
        .iter()
        .map(|s| s.prefix())
        .collect();
    d.set_item("storage", schemes)?;
    let stats = zenith_core::cache::stats();
    let cache = PyDict::new(py);
    cache.set_item("limit_bytes", stats.limit_bytes)?;
    cache.set_item("used_bytes", stats.used_bytes)?;
    cache.set_item("entries", stats.entries)?;
    cache.set_item("hits", stats.hits)?;
    cache.set_item("misses", stats.misses)?;
    d.set_item("cache", cache)?;
    Ok(d)
}

/// Object-storage traffic of this process: GET requests, payload bytes, list/HEAD requests,
/// and the reads and listings the disk cache served instead.
#[pyfunction]
fn storage_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let s = zenith_core::store::stats();
    let d = PyDict::new(py);
    d.set_item("requests", s.requests)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("metadata_requests", s.metadata_requests)?;
    d.set_item("cache_hits", s.cache_hits)?;
    d.set_item("cache_bytes", s.cache_bytes)?;
    d.set_item("cached_listings", s.cached_listings)?;
    Ok(d)
}

/// Sets the small-dataset cache budget in bytes (0 disables it).
#[pyfunction]
fn set_cache_limit(limit_bytes: usize) {
    zenith_core::cache::set_limit(limit_bytes);
}

/// Drops every cache entry.
#[pyfunction]
fn clear_cache() {
    zenith_core::cache::clear();
}

/// Installs the tracing subscriber with a filter (`ZENITH_LOG_LEVEL` syntax); first call wins.
#[pyfunction]
fn init_logging(filter: &str) -> bool {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init()
        .is_ok()
}

pub(crate) fn tensor_to_numpy<'py>(
    py: Python<'py>,
    data: TensorData,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    fn make<'py, T: numpy::Element>(
        py: Python<'py>,
        v: Vec<T>,
        shape: &[usize],
    ) -> PyResult<Bound<'py, PyAny>> {
        if shape.len() == 1 {
            return Ok(PyArray::from_vec(py, v).into_any());
        }
        let arr = ArrayD::from_shape_vec(IxDyn(shape), v)
            .map_err(|e| ZenithError::new_err(e.to_string()))?;
        Ok(PyArray::from_owned_array(py, arr).into_any())
    }
    zenith_core::with_tensor_data!(data, v => make(py, v, shape))
}

/// How errors and stats name an in-memory table source.
const IN_MEMORY_NAME: &str = "<in-memory table>";

/// A normalised output field from Python: (name, columns, stacked, dtype).
type FieldSpec = (String, Vec<String>, bool, Option<String>);

/// A loader over a dataset; `iter()` starts an epoch.
#[pyclass(module = "zenith._zenith")]
struct Loader {
    inner: DataLoader,
    arrow_output: bool,
}

fn parse_fields(columns: Vec<FieldSpec>) -> BindingResult<Vec<OutputField>> {
    columns
        .into_iter()
        .map(|(name, cols, stacked, dtype)| {
            let dtype = dtype.as_deref().map(DType::parse).transpose()?;
            let source = if stacked {
                FieldSource::Stack(cols)
            } else {
                FieldSource::Column(cols.into_iter().next().ok_or_else(|| {
                    zenith_core::Error::invalid(
                        "columns",
                        format!("field {name:?} names no column"),
                    )
                })?)
            };
            Ok(OutputField {
                name,
                source,
                dtype,
            })
        })
        .collect()
}

#[pymethods]
impl Loader {
    /// Opens the dataset and plans the loader (see `zenith.DataLoader`).
    #[new]
    #[pyo3(signature = (paths, batch_size, shuffle, seed, columns, num_workers, drop_last, prefetch, rank, world_size, on_error, output, shuffle_window=None, memory_budget=None, reuse_budget=None, format=None, storage_options=None, image_size=None, fields=None, table=None, image=None, tokens=None, filter=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        paths: Vec<String>,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        columns: Option<Vec<FieldSpec>>,
        num_workers: Option<usize>,
        drop_last: bool,
        prefetch: Option<usize>,
        rank: usize,
        world_size: usize,
        on_error: &str,
        output: &str,
        shuffle_window: Option<usize>,
        memory_budget: Option<usize>,
        reuse_budget: Option<usize>,
        format: Option<&str>,
        storage_options: Option<HashMap<String, String>>,
        image_size: Option<(u32, u32)>,
        fields: Option<Vec<String>>,
        table: Option<PyTable>,
        image: Option<vision::ImageSpec>,
        tokens: Option<text::PackSpec>,
        filter: Option<&str>,
    ) -> BindingResult<Self> {
        let on_error = on_error.parse()?;
        let filter = filter
            .map(zenith_core::source::predicate::Predicate::from_json)
            .transpose()?
            .map(std::sync::Arc::new);
        let mut sample_stages: Vec<std::sync::Arc<dyn zenith_core::SampleStage>> = Vec::new();
        if let Some(spec) = &image {
            sample_stages.push(std::sync::Arc::new(spec.stage()?));
        }
        if let Some(stage) = tokens.as_ref().map(|t| t.tokenize_stage()).transpose()? {
            sample_stages.extend(stage.map(|s| std::sync::Arc::new(s) as _));
        }
        let output: OutputKind = output.parse()?;
        let token_dtype = tokens
            .as_ref()
            .map(|t| t.file_dtype())
            .transpose()?
            .flatten();
        let config = LoaderConfig {
            batch_size,
            shuffle,
            seed,
            columns: columns.map(parse_fields).transpose()?,
            num_workers,
            drop_last,
            prefetch,
            rank,
            world_size,
            on_error,
            output,
            shuffle_window,
            memory_budget,
            format: parse_format(format)?,
            decode: decode_options(
                None,
                None,
                storage_options,
                TarOptions { image_size, fields },
            )?,
            sample_stages,
            reuse_budget,
            pack: tokens.map(|t| t.config()).transpose()?,
            filter,
        };
        let mut config = config;
        config.decode.token_dtype = token_dtype;
        let inner = match table {
            // Arrow data in memory (anything with `__arrow_c_stream__`), imported without a copy.
            Some(table) => {
                let (batches, schema) = table.into_inner();
                let reader = MappedBatches::in_memory(IN_MEMORY_NAME, schema, batches)?;
                let dataset = zenith_core::Dataset::from_reader(std::sync::Arc::new(reader));
                py.detach(|| DataLoader::from_dataset(dataset, config))?
            }
            None => run_interruptible(py, "open", move || DataLoader::new(&paths, config))?,
        };
        Ok(Loader {
            inner,
            arrow_output: output == OutputKind::Arrow,
        })
    }

    fn __len__(&self) -> PyResult<usize> {
        if self.inner.is_packed() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "a packed loader (tokens=) has no length: its number of sequences depends on the documents",
            ));
        }
        Ok(self.inner.len())
    }

    /// True when batches are packed token sequences (`tokens=`).
    #[getter]
    fn packed(&self) -> bool {
        self.inner.is_packed()
    }

    /// Starts an iteration of the current epoch; `convert`, when given, is called on every
    /// tensor column while the batch is built: on its NumPy array (e.g. `torch.from_numpy`),
    /// or with `dlpack=True` on a DLPack `"dltensor"` capsule owning the buffer (e.g.
    /// `torch.from_dlpack`), which skips making a NumPy array per column.
    #[pyo3(signature = (convert=None, dlpack=false))]
    fn iter(
        &self,
        py: Python<'_>,
        convert: Option<Py<PyAny>>,
        dlpack: bool,
    ) -> BindingResult<LoaderIter> {
        if dlpack && convert.is_none() {
            return Err(zenith_core::Error::invalid(
                "dlpack",
                "dlpack=True needs a `convert` that takes the capsules (e.g. torch.from_dlpack)",
            )
            .into());
        }
        let it = py.detach(|| self.inner.iter())?;
        Ok(LoaderIter {
            inner: Some(it),
            arrow_output: self.arrow_output,
            names: Vec::new(),
            convert,
            dlpack,
        })
    }

    /// The epoch the next iteration runs.
    #[getter]
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }

    /// Rows per shuffle window in use.
    #[getter]
    fn window_rows(&self) -> usize {
        self.inner.window_rows()
    }

    /// Rows of this rank per epoch.
    #[getter]
    fn rows_per_epoch(&self) -> usize {
        self.inner.rows_per_epoch()
    }

    /// The class names of an ImageFolder source, in label order (`None` for other sources).
    #[getter]
    fn classes(&self) -> Option<Vec<String>> {
        let schema = self.inner.dataset().schema();
        let json = schema
            .metadata()
            .get(zenith_core::source::imagefolder::CLASSES_KEY)?;
        serde_json::from_str(json).ok()
    }

    /// Sets the epoch of the next iteration.
    fn set_epoch(&self, epoch: u64) {
        self.inner.set_epoch(epoch);
    }

    /// The resume state as a JSON string.
    fn state_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.state()).map_err(|e| ZenithError::new_err(e.to_string()))
    }

    /// Restores a state from its JSON string: one state, or a list of the states of all
    /// ranks of a run (merged, so that another world size continues it).
    fn load_state_json(&mut self, state: &str) -> BindingResult<()> {
        let invalid = |e| zenith_core::Error::invalid("state", e);
        if state.trim_start().starts_with('[') {
            let states: Vec<LoaderState> = serde_json::from_str(state).map_err(invalid)?;
            return Ok(self.inner.load_states(&states)?);
        }
        let state: LoaderState = serde_json::from_str(state).map_err(invalid)?;
        Ok(self.inner.load_state(&state)?)
    }

    /// Counters as a JSON string.
    fn stats_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.stats()).map_err(|e| ZenithError::new_err(e.to_string()))
    }
}

/// A running iteration; dropping or closing it stops the decode threads.
#[pyclass(module = "zenith._zenith")]
struct LoaderIter {
    inner: Option<zenith_core::BatchIterator>,
    arrow_output: bool,
    /// Interned output names, made on the first batch.
    names: Vec<Py<PyString>>,
    /// Called on each tensor column (a tensor maker for zenith.torch).
    convert: Option<Py<PyAny>>,
    /// `convert` takes DLPack capsules rather than NumPy arrays.
    dlpack: bool,
}

#[pymethods]
impl LoaderIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> BindingResult<Option<Bound<'py, PyAny>>> {
        let Some(it) = self.inner.as_mut() else {
            return Ok(None);
        };
        // A prefetched batch is usually waiting: take it without releasing the GIL.
        let mut polled = it.poll_next(Duration::ZERO);
        let batch = loop {
            match polled {
                Poll::Pending => {
                    py.check_signals()?;
                    polled = py.detach(|| it.poll_next(Duration::from_millis(50)));
                }
                Poll::Ready(None) => {
                    self.inner = None;
                    return Ok(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    self.inner = None;
                    return Err(e.into());
                }
                Poll::Ready(Some(Ok(b))) => break b,
            }
        };
        let started = std::time::Instant::now();
        let out = hand_over(
            py,
            &mut self.names,
            self.arrow_output,
            self.convert.as_ref().map(|f| (f, self.dlpack)),
            batch,
        );
        it.add_handover(started.elapsed());
        Ok(Some(out?))
    }

    /// Stops the pipeline and joins its threads.
    fn close(&mut self, py: Python<'_>) {
        if let Some(mut it) = self.inner.take() {
            py.detach(|| it.stop());
        }
    }
}

/// Builds the Python form of a batch: a dict of NumPy arrays (Arrow arrays for columns that
/// stay Arrow), or a pyarrow RecordBatch, without copying the buffers. `names` keeps the
/// interned output names between batches; `convert` (with whether it takes DLPack capsules)
/// turns each tensor column into the caller's type.
fn hand_over<'py>(
    py: Python<'py>,
    names: &mut Vec<Py<PyString>>,
    arrow_output: bool,
    convert: Option<(&Py<PyAny>, bool)>,
    batch: zenith_core::Batch,
) -> BindingResult<Bound<'py, PyAny>> {
    if arrow_output {
        let rb = batch.to_record_batch()?;
        return Ok(PyRecordBatch::new(rb).into_pyarrow(py)?);
    }
    let out = PyDict::new(py);
    if names.len() != batch.columns.len() {
        *names = batch
            .columns
            .iter()
            .map(|(n, _)| PyString::intern(py, n).unbind())
            .collect();
    }
    for (name, (_, col)) in names.iter().zip(batch.columns) {
        let value = match col {
            BatchColumn::Tensor(t) => match convert {
                Some((f, true)) => f
                    .bind(py)
                    .call1((dlpack::capsule(py, t.data, &t.shape)?,))?,
                Some((f, false)) => f
                    .bind(py)
                    .call1((tensor_to_numpy(py, t.data, &t.shape)?,))?,
                None => tensor_to_numpy(py, t.data, &t.shape)?,
            },
            BatchColumn::Arrow(a) => ArrowArray::from_array_ref(a)
                .to_pyarrow(py)?
                .unbind()
                .into_bound(py),
        };
        out.set_item(name.bind(py), value)?;
    }
    Ok(out.into_any())
}

/// The native module.
#[pymodule]
fn _zenith(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", zenith_core::VERSION)?;
    errors::register(m)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_info, m)?)?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    m.add_function(wrap_pyfunction!(storage_stats, m)?)?;
    m.add_function(wrap_pyfunction!(set_cache_limit, m)?)?;
    m.add_function(wrap_pyfunction!(clear_cache, m)?)?;
    m.add_function(wrap_pyfunction!(init_logging, m)?)?;
    m.add_function(wrap_pyfunction!(vision::vision_resized_crop, m)?)?;
    m.add_function(wrap_pyfunction!(vision::vision_check, m)?)?;
    m.add_function(wrap_pyfunction!(vision::vision_decode_bench, m)?)?;
    m.add_function(wrap_pyfunction!(text::text_check, m)?)?;
    m.add_function(wrap_pyfunction!(text::text_encode, m)?)?;
    m.add_function(wrap_pyfunction!(text::text_token_ids, m)?)?;
    m.add_class::<Loader>()?;
    m.add_class::<LoaderIter>()?;
    jobs::register(m)?;
    Ok(())
}
