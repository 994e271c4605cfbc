//! A dataset is a list of opened files of one format that share one schema. It hands out
//! work units and decodes them with a column projection; it knows nothing of shuffling.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::source::{location, DecodeOptions, FileReader, Format, Location};

/// Threads that open objects (footers, headers) concurrently.
const OBJECT_OPEN_THREADS: usize = 16;
/// Decode threads per worker for objects: a unit of an object waits on the network before it
/// decodes, so more threads keep requests in flight while others decode.
pub const OBJECT_THREADS_PER_WORKER: usize = 8;

/// One work unit of a dataset: unit `unit` of file `file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitRef {
    /// Index of the file in [`Dataset::files`].
    pub file: usize,
    /// Index of the unit in the file (row group, record batch, byte range).
    pub unit: usize,
    /// Rows in the unit.
    pub rows: usize,
}

/// Column selection resolved against a schema: the sorted indices the readers decode and the
/// order in which the caller asked for them.
#[derive(Debug, Clone)]
pub struct Projection {
    /// Sorted, unique file column indices (`None` = all columns).
    pub indices: Option<Vec<usize>>,
    /// For each requested column, its position within the decoded (sorted) batch.
    pub order: Option<Vec<usize>>,
    /// The schema of the batches after projection and reordering.
    pub schema: SchemaRef,
}

/// Opened files sharing one schema.
pub struct Dataset {
    specs: Vec<String>,
    format: Format,
    schema: SchemaRef,
    files: Vec<Arc<dyn FileReader>>,
    units: Vec<UnitRef>,
}

impl Dataset {
    /// Lists `specs` (files, directories, globs, object URLs and prefixes), detects or applies
    /// the format, opens every file's metadata and checks that all files share the first
    /// file's schema.
    pub fn open(
        specs: &[String],
        format: Option<Format>,
        options: &DecodeOptions,
    ) -> Result<Dataset> {
        if let Some(root) = image_folder_root(specs, format) {
            let folder = crate::source::imagefolder::ImageFolder::open(&root)?;
            let mut dataset = Dataset::from_reader(Arc::new(folder));
            dataset.specs = specs.to_vec();
            return Ok(dataset);
        }
        let paths = location::list_locations(specs, options)?;
        if paths.is_empty() {
            return Err(Error::EmptySource {
                path: specs.join(", "),
            });
        }
        let format = match format {
            Some(f) => f,
            None => detect_common_format(&paths)?,
        };
        // A token file's Megatron index is read with it, not as a file of its own.
        let mut indexes = std::collections::HashMap::new();
        let paths: Vec<Location> = if format == Format::Tokens {
            let (idx, bins): (Vec<Location>, Vec<Location>) = paths
                .into_iter()
                .partition(|p| crate::source::tokens::is_index(&p.path()));
            for i in idx {
                indexes.insert(i.path().with_extension("bin"), i);
            }
            if bins.is_empty() {
                return Err(Error::EmptySource {
                    path: specs.join(", "),
                });
            }
            bins
        } else {
            paths
        };
        let open = |p: &Location, options: &DecodeOptions| match format {
            Format::Tokens => p.open_tokens(indexes.get(&p.path()), options),
            _ => p.open(format, options),
        };
        let first = open(&paths[0], options)?;
        let mut rest_options = options.clone();
        if matches!(format, Format::Csv | Format::JsonLines) && rest_options.csv_schema.is_none() {
            rest_options.csv_schema = Some(first.schema());
        }
        let open_rest = || {
            paths[1..]
                .par_iter()
                .map(|p| open(p, &rest_options))
                .collect::<Result<Vec<_>>>()
        };
        // Opening an object waits on the network, not the CPU: open many at once.
        let rest: Vec<Arc<dyn FileReader>> =
            if matches!(paths[0], Location::Object(_)) && paths.len() > 2 {
                crate::pool::build(OBJECT_OPEN_THREADS, "zenith-open")?.install(open_rest)?
            } else {
                crate::pool::global()?.install(open_rest)?
            };
        let schema = first.schema();
        for file in &rest {
            check_same_schema(first.path(), &schema, file.path(), &file.schema())?;
        }
        let mut files = Vec::with_capacity(paths.len());
        files.push(first);
        files.extend(rest);
        let units = files
            .iter()
            .enumerate()
            .flat_map(|(fi, f)| {
                f.units().iter().enumerate().map(move |(ui, u)| UnitRef {
                    file: fi,
                    unit: ui,
                    rows: u.rows,
                })
            })
            .collect();
        Ok(Dataset {
            specs: specs.to_vec(),
            format,
            schema,
            files,
            units,
        })
    }

    /// The path specs the dataset was opened from.
    pub fn specs(&self) -> &[String] {
        &self.specs
    }

    /// A dataset of one reader already opened (an in-memory table, see
    /// [`crate::source::ipc::MappedBatches::in_memory`]).
    pub fn from_reader(reader: Arc<dyn FileReader>) -> Dataset {
        let units = reader
            .units()
            .iter()
            .enumerate()
            .map(|(unit, u)| UnitRef {
                file: 0,
                unit,
                rows: u.rows,
            })
            .collect();
        Dataset {
            specs: vec![reader.path().to_string_lossy().into_owned()],
            format: reader.format(),
            schema: reader.schema(),
            files: vec![reader],
            units,
        }
    }

    /// The common format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The common (full) schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The opened files in listing order.
    pub fn files(&self) -> &[Arc<dyn FileReader>] {
        &self.files
    }

    /// Every unit of every file, in file order.
    pub fn units(&self) -> &[UnitRef] {
        &self.units
    }

    /// True when the files are objects in a bucket (reads wait on the network).
    pub fn is_remote(&self) -> bool {
        self.files
            .first()
            .is_some_and(|f| crate::store::is_url(&f.path().to_string_lossy()))
    }

    /// Decode threads to use for `workers` CPU workers (more for objects, see
    /// [`OBJECT_THREADS_PER_WORKER`]).
    pub fn decode_threads(&self, workers: usize) -> usize {
        if self.is_remote() {
            workers * OBJECT_THREADS_PER_WORKER
        } else {
            workers
        }
    }

    /// Total rows.
    pub fn num_rows(&self) -> usize {
        self.units.iter().map(|u| u.rows).sum()
    }

    /// Bytes per row of each top-level column of `columns` as its pages hold it before
    /// compression, from the footers (Parquet), in one pass over them; `None` where the files
    /// do not say. A size estimate for columns whose values have no fixed width (lists,
    /// strings).
    pub fn column_bytes_per_row(&self, columns: &[&str]) -> Option<Vec<usize>> {
        let mut bytes = vec![0u64; columns.len()];
        for file in &self.files {
            for leaf in file.column_storage()? {
                for (i, c) in columns.iter().enumerate() {
                    // The column itself, or a leaf nested in it (`ids.list.element`).
                    let under = leaf.column.strip_prefix(c);
                    if under.is_some_and(|rest| rest.is_empty() || rest.starts_with('.')) {
                        bytes[i] += leaf.uncompressed_bytes;
                    }
                }
            }
        }
        let rows = self.num_rows().max(1) as u64;
        Some(
            bytes
                .into_iter()
                .map(|b| usize::try_from(b / rows).unwrap_or(usize::MAX))
                .collect(),
        )
    }

    /// Resolves column names against the schema; unknown names are an error naming the file.
    pub fn projection(&self, columns: Option<&[String]>) -> Result<Projection> {
        let Some(columns) = columns else {
            return Ok(Projection {
                indices: None,
                order: None,
                schema: self.schema.clone(),
            });
        };
        let mut wanted = Vec::with_capacity(columns.len());
        for name in columns {
            let idx = self
                .schema
                .index_of(name)
                .map_err(|_| Error::UnknownColumn {
                    path: self.files[0].path().to_path_buf(),
                    column: name.clone(),
                    available: self
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            if wanted.contains(&idx) {
                return Err(Error::invalid(
                    "columns",
                    format!("column {name:?} is listed twice"),
                ));
            }
            wanted.push(idx);
        }
        let mut sorted = wanted.clone();
        sorted.sort_unstable();
        let order: Vec<usize> = wanted
            .iter()
            // `sorted` holds every wanted index once: its partition point is its position.
            .map(|w| sorted.partition_point(|s| s < w))
            .collect();
        let schema = Arc::new(Schema::new(
            wanted
                .iter()
                .map(|&i| self.schema.field(i).clone())
                .collect::<Vec<_>>(),
        ));
        Ok(Projection {
            indices: Some(sorted),
            order: Some(order),
            schema,
        })
    }

    /// Decodes one unit with a projection; columns come back in the requested order.
    pub fn read_unit(&self, unit: UnitRef, projection: &Projection) -> Result<RecordBatch> {
        let batch = self.decode_columns(unit, projection.indices.as_deref())?;
        self.reorder(unit, projection, batch)
    }

    /// Hands back the pages of a mapped file that `unit` was decoded from, once its rows have
    /// been copied where they are kept (see [`FileReader::release_unit`]).
    pub fn release_unit(&self, unit: UnitRef) {
        self.files[unit.file].release_unit(unit.unit);
    }

    /// Decodes file columns `indices` (sorted; `None`: all) of a unit, behind the panic boundary.
    fn decode_columns(&self, unit: UnitRef, indices: Option<&[usize]>) -> Result<RecordBatch> {
        let file = &self.files[unit.file];
        crate::source::guard(
            file.path(),
            || format!("unit {}", unit.unit),
            || file.read_unit(unit.unit, indices),
        )
    }

    /// Puts a decoded unit's columns in the order the projection asked for them.
    fn reorder(
        &self,
        unit: UnitRef,
        projection: &Projection,
        batch: RecordBatch,
    ) -> Result<RecordBatch> {
        match &projection.order {
            Some(order) => {
                let columns = order.iter().map(|&i| batch.column(i).clone()).collect();
                RecordBatch::try_new(projection.schema.clone(), columns).map_err(|e| {
                    Error::format(
                        self.files[unit.file].path(),
                        format!("unit {}", unit.unit),
                        e,
                    )
                })
            }
            None => Ok(batch),
        }
    }

    /// Drops the units whose statistics prove that no row matches `predicate` (Parquet row
    /// groups; units without statistics stay) and returns how many were dropped. The rows of
    /// the units kept still need the exact filter.
    pub fn prune_units(&mut self, predicate: &crate::source::predicate::Predicate) -> usize {
        let before = self.units.len();
        let files = &self.files;
        self.units.retain(|u| {
            files[u.file]
                .unit_statistics(u.unit)
                .is_none_or(|stats| predicate.may_match(&stats, u.rows))
        });
        let pruned = before - self.units.len();
        tracing::debug!(
            pruned,
            kept = self.units.len(),
            "units ruled out by the filter"
        );
        pruned
    }

    /// Decodes every unit in parallel on the global pool (a wider one for objects), in file
    /// order. Parquet files with fewer row groups than threads are also split by columns, each
    /// group of columns of a unit decoded on its own thread, so one big row group (or a few)
    /// still uses every core.
    pub fn read_all(&self, projection: &Projection) -> Result<Vec<RecordBatch>> {
        self.read_all_counted(projection, &std::sync::atomic::AtomicU64::new(0))
    }

    /// [`Dataset::read_all`], adding the rows of each unit to `done` as it is read.
    pub fn read_all_counted(
        &self,
        projection: &Projection,
        done: &std::sync::atomic::AtomicU64,
    ) -> Result<Vec<RecordBatch>> {
        let pool = if self.is_remote() {
            let threads = self.decode_threads(crate::pool::default_num_workers());
            Arc::new(crate::pool::build(threads, "zenith-read-io")?)
        } else {
            crate::pool::global()?
        };
        let groups = self.column_groups(projection, pool.current_num_threads());
        // Decoded units own their rows, except IPC's, which are the mapping itself.
        let release = !matches!(self.format(), Format::Ipc | Format::IpcStream);
        pool.install(|| {
            self.units
                .par_iter()
                .map(|u| {
                    let batch = match &groups {
                        None => self.read_unit(*u, projection),
                        Some(groups) => self.read_unit_by_columns(*u, projection, groups),
                    };
                    done.fetch_add(u.rows as u64, std::sync::atomic::Ordering::Relaxed);
                    if release {
                        self.release_unit(*u);
                    }
                    batch
                })
                .collect()
        })
    }

    /// Groups of sorted file columns to decode separately when a read of local Parquet files has
    /// fewer units than twice the threads; `None` when splitting would not add parallelism.
    fn column_groups(&self, projection: &Projection, threads: usize) -> Option<Vec<Vec<usize>>> {
        let units = self.units.len().max(1);
        // Objects are fetched a row group per request; a split would fetch each column alone.
        if self.format != Format::Parquet || self.is_remote() || threads < 2 || units >= 2 * threads
        {
            return None;
        }
        let columns: Vec<usize> = match &projection.indices {
            Some(indices) => indices.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let parts = (2 * threads).div_ceil(units).min(columns.len());
        if parts < 2 {
            return None;
        }
        let per = columns.len().div_ceil(parts);
        Some(columns.chunks(per).map(<[usize]>::to_vec).collect())
    }

    /// [`Dataset::read_unit`] with the columns decoded a group at a time in parallel and put
    /// side by side: the same batch, since every group reads the same rows.
    fn read_unit_by_columns(
        &self,
        unit: UnitRef,
        projection: &Projection,
        groups: &[Vec<usize>],
    ) -> Result<RecordBatch> {
        let parts = groups
            .par_iter()
            .map(|g| self.decode_columns(unit, Some(g)))
            .collect::<Result<Vec<_>>>()?;
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for part in &parts {
            fields.extend(part.schema().fields().iter().cloned());
            columns.extend(part.columns().iter().cloned());
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            parts
                .first()
                .map(|p| p.schema().metadata().clone())
                .unwrap_or_default(),
        ));
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(unit.rows));
        let batch = RecordBatch::try_new_with_options(schema, columns, &options).map_err(|e| {
            Error::format(
                self.files[unit.file].path(),
                format!("unit {}", unit.unit),
                e,
            )
        })?;
        self.reorder(unit, projection, batch)
    }
}

/// The root directory when `specs` name an ImageFolder: `format="imagefolder"` with one local
/// directory, or one local directory laid out as one (see
/// [`ImageFolder::looks_like`](crate::source::imagefolder::ImageFolder::looks_like)).
fn image_folder_root(specs: &[String], format: Option<Format>) -> Option<std::path::PathBuf> {
    let [spec] = specs else {
        return None;
    };
    if spec.contains("://") {
        return None;
    }
    let path = std::path::PathBuf::from(spec);
    match format {
        Some(Format::ImageFolder) => Some(path),
        None if path.is_dir() && crate::source::imagefolder::ImageFolder::looks_like(&path) => {
            Some(path)
        }
        _ => None,
    }
}

fn detect_common_format(paths: &[Location]) -> Result<Format> {
    let first = paths[0].detect_format()?;
    for p in &paths[1..] {
        let f = p.detect_format()?;
        if f != first {
            return Err(Error::schema(
                p.path(),
                format!(
                    "format {} differs from {} ({}); pass format= or separate the files",
                    f.name(),
                    first.name(),
                    paths[0].path().display()
                ),
            ));
        }
    }
    Ok(first)
}

/// Checks that `other` has the same column names and types as `first`; the error says how
/// they differ.
pub fn check_same_schema(
    first_path: &Path,
    first: &Schema,
    path: &Path,
    other: &Schema,
) -> Result<()> {
    let names = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    };
    if names(first) != names(other) {
        return Err(Error::schema(
            path,
            format!(
                "schema differs from {}: columns {:?} here, {:?} there",
                first_path.display(),
                names(other),
                names(first)
            ),
        ));
    }
    for (a, b) in first.fields().iter().zip(other.fields()) {
        if a.data_type() != b.data_type() {
            return Err(Error::schema(
                path,
                format!(
                    "schema differs from {}: column {:?} is {} here but {} there",
                    first_path.display(),
                    a.name(),
                    b.data_type(),
                    a.data_type()
                ),
            ));
        }
    }
    Ok(())
}
