//! Bindings of `zenith-jobs`: the Validator, the job store and the scheduler's claims.
//!
//! Only type conversion, GIL release and error mapping live here; `python/zenith/jobs.py` and the
//! runner (`python/zenith/_runner.py`) build the user API and process management on top.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;

use zenith_jobs::validation;
use zenith_jobs::{
    Backend, CancelOutcome, Capacity, JobKind, JobRecord, JobSpec, JobState, JobsError,
    ValidationError as RustValidationError,
};

use crate::errors::validation_error;
use crate::JobError;

/// Maps a Validator error to `ValidationError`, with `field` and `rule` attributes.
fn validation_err(py: Python<'_>, err: &RustValidationError) -> PyErr {
    validation_error(py, err.field, &err.rule, err.to_string())
}

/// Maps a job-store error to its Python exception.
fn jobs_err(py: Python<'_>, err: JobsError) -> PyErr {
    match err {
        JobsError::Validation(v) => validation_err(py, &v),
        other => JobError::new_err(other.to_string()),
    }
}

fn parse_state(state: &str) -> PyResult<JobState> {
    state.parse().map_err(JobError::new_err)
}

fn parse_backend(py: Python<'_>, backend: &str) -> PyResult<Backend> {
    backend.parse().map_err(|_| {
        validation_err(
            py,
            &RustValidationError {
                field: "backend",
                rule: format!("{backend:?} is not \"local\" or \"slurm\""),
            },
        )
    })
}

/// Parses a memory string like `"512MB"`, `"8GB"` or `"1.5GiB"` into an exact byte count.
#[pyfunction]
fn parse_memory(py: Python<'_>, text: &str) -> PyResult<u64> {
    validation::parse_memory(text).map_err(|e| validation_err(py, &e))
}

/// Checks a job name (1–256 ASCII letters, digits, `-`, `_`); raises `ValidationError`.
#[pyfunction]
fn validate_name(py: Python<'_>, name: &str) -> PyResult<()> {
    validation::validate_name(name).map_err(|e| validation_err(py, &e))
}

/// Checks a path (≤ 4096 bytes, no NUL, no `..` component); raises `ValidationError`.
#[pyfunction]
fn validate_path(py: Python<'_>, path: &str) -> PyResult<()> {
    validation::validate_path(path).map_err(|e| validation_err(py, &e))
}

/// Checks a command given as argv (≤ 65536 bytes, no shell metacharacters); raises `ValidationError`.
#[pyfunction]
fn validate_command(py: Python<'_>, argv: Vec<String>) -> PyResult<()> {
    validation::validate_command(&argv).map_err(|e| validation_err(py, &e))
}

/// A stored job: its spec and what happened to it (a snapshot; read again for news).
#[pyclass(frozen, get_all, module = "zenith._zenith")]
pub struct JobInfo {
    /// Job id.
    id: i64,
    /// Job name.
    name: String,
    /// `"command"` or `"function"`.
    kind: String,
    /// Command argv, or `[python, payload]` for a function job.
    argv: Vec<String>,
    /// Working directory.
    cwd: String,
    /// Environment the job runs with.
    env: Vec<(String, String)>,
    /// GPUs requested.
    gpus: u32,
    /// Memory requested in bytes, or None.
    memory: Option<u64>,
    /// CPUs requested.
    cpus: u32,
    /// Priority (higher first).
    priority: i32,
    /// `"local"` or `"slurm"`.
    backend: String,
    /// `QUEUED`, `RUNNING`, `SUCCEEDED`, `FAILED` or `CANCELLED`.
    state: String,
    /// Exit code once finished (negative: killed by that signal).
    exit_code: Option<i32>,
    /// Error, traceback or cancel reason.
    error: Option<String>,
    /// Submission time (seconds since the epoch).
    submitted_at: f64,
    /// Start time.
    started_at: Option<f64>,
    /// End time.
    finished_at: Option<f64>,
    /// Local process id (also its process group).
    pid: Option<i64>,
    /// GPU ids assigned by the local executor.
    gpu_ids: Vec<u32>,
    /// Slurm job id.
    backend_id: Option<String>,
    /// True once a cancel was asked for while it ran.
    cancel_requested: bool,
}

impl From<JobRecord> for JobInfo {
    fn from(r: JobRecord) -> Self {
        Self {
            id: r.id,
            name: r.spec.name,
            kind: r.spec.kind.as_str().to_owned(),
            argv: r.spec.argv,
            cwd: r.spec.cwd,
            env: r.spec.env,
            gpus: r.spec.gpus,
            memory: r.spec.memory,
            cpus: r.spec.cpus,
            priority: r.spec.priority,
            backend: r.spec.backend.as_str().to_owned(),
            state: r.state.as_str().to_owned(),
            exit_code: r.exit_code,
            error: r.error,
            submitted_at: r.submitted_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            pid: r.pid,
            gpu_ids: r.gpu_ids,
            backend_id: r.backend_id,
            cancel_requested: r.cancel_requested,
        }
    }
}

#[pymethods]
impl JobInfo {
    fn __repr__(&self) -> String {
        format!(
            "JobInfo(id={}, name={:?}, state={}, backend={})",
            self.id, self.name, self.state, self.backend
        )
    }
}

/// The SQLite job store at a path (normally `$ZENITH_HOME/jobs.db`). Calls release the GIL.
#[pyclass(frozen, module = "zenith._zenith")]
pub struct JobStore {
    inner: Mutex<zenith_jobs::JobStore>,
}

impl JobStore {
    fn lock(&self) -> PyResult<MutexGuard<'_, zenith_jobs::JobStore>> {
        self.inner
            .lock()
            .map_err(|_| JobError::new_err("job store connection is unusable after a panic"))
    }

    /// Runs `f` on the store with the GIL released and maps its error.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut zenith_jobs::JobStore) -> Result<T, JobsError> + Send,
    ) -> PyResult<T> {
        let result = py.detach(|| -> PyResult<Result<T, JobsError>> {
            let mut guard = self.lock()?;
            Ok(f(&mut guard))
        })?;
        result.map_err(|e| jobs_err(py, e))
    }
}

#[pymethods]
impl JobStore {
    /// Opens (creating if needed) the store at `path`.
    #[new]
    fn new(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let store = py
            .detach(|| zenith_jobs::JobStore::open(&path))
            .map_err(|e| jobs_err(py, e))?;
        Ok(Self {
            inner: Mutex::new(store),
        })
    }

    /// The database file.
    #[getter]
    fn path(&self) -> PyResult<std::path::PathBuf> {
        Ok(self.lock()?.path().to_path_buf())
    }

    /// Validates and stores a job as QUEUED; returns its id. Raises `ValidationError` naming the field.
    #[pyo3(signature = (*, name, kind, argv, cwd, env, gpus, memory, cpus, priority, backend))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        name: String,
        kind: &str,
        argv: Vec<String>,
        cwd: String,
        env: Vec<(String, String)>,
        gpus: i64,
        memory: Option<i64>,
        cpus: i64,
        priority: i64,
        backend: &str,
    ) -> PyResult<i64> {
        let kind: JobKind = kind.parse().map_err(JobError::new_err)?;
        let backend = parse_backend(py, backend)?;
        // Range checks on the Python ints before narrowing, so that huge values are named, not wrapped.
        let check = |r: Result<(), RustValidationError>| r.map_err(|e| validation_err(py, &e));
        check(validation::validate_gpus(gpus))?;
        check(validation::validate_cpus(cpus))?;
        check(validation::validate_priority(priority))?;
        let memory = match memory {
            Some(m) => {
                Some(validation::validate_memory_bytes(m).map_err(|e| validation_err(py, &e))?)
            }
            None => None,
        };
        let spec = JobSpec {
            name,
            kind,
            argv,
            cwd,
            env,
            gpus: u32::try_from(gpus).unwrap_or(u32::MAX),
            memory,
            cpus: u32::try_from(cpus).unwrap_or(u32::MAX),
            priority: i32::try_from(priority).unwrap_or(i32::MAX),
            backend,
        };
        self.with(py, |s| s.submit(&spec))
    }

    /// The job with this id; raises `JobError` for an unknown id.
    fn get(&self, py: Python<'_>, id: i64) -> PyResult<JobInfo> {
        self.with(py, |s| s.get(id)).map(JobInfo::from)
    }

    /// Jobs, oldest first, optionally only those in `state` and/or of `backend`.
    #[pyo3(signature = (state=None, backend=None))]
    fn list(
        &self,
        py: Python<'_>,
        state: Option<&str>,
        backend: Option<&str>,
    ) -> PyResult<Vec<JobInfo>> {
        let state = state.map(parse_state).transpose()?;
        let backend = backend.map(|b| parse_backend(py, b)).transpose()?;
        let jobs = self.with(py, |s| s.list(state, backend))?;
        Ok(jobs.into_iter().map(JobInfo::from).collect())
    }

    /// Number of local jobs queued or running.
    fn local_active_count(&self, py: Python<'_>) -> PyResult<i64> {
        self.with(py, |s| s.local_active_count())
    }

    /// Marks the local jobs that fit the machine now as RUNNING (with GPU ids) and returns them;
    /// jobs larger than the whole machine are marked FAILED.
    fn claim_startable(
        &self,
        py: Python<'_>,
        gpus: u32,
        memory: u64,
        cpus: u32,
    ) -> PyResult<Vec<JobInfo>> {
        let capacity = Capacity { gpus, memory, cpus };
        let jobs = self.with(py, |s| s.claim_startable(&capacity))?;
        Ok(jobs.into_iter().map(JobInfo::from).collect())
    }

    /// Ids of running local jobs whose cancel was asked for.
    fn cancel_requested(&self, py: Python<'_>) -> PyResult<Vec<i64>> {
        self.with(py, |s| s.cancel_requested())
    }

    /// Records the spawned process (and process group) id of a claimed job.
    fn mark_started(&self, py: Python<'_>, id: i64, pid: i64) -> PyResult<()> {
        self.with(py, |s| s.mark_started(id, pid))
    }

    /// Puts a claimed job whose process never spawned back in the queue; returns whether it did.
    fn requeue(&self, py: Python<'_>, id: i64) -> PyResult<bool> {
        self.with(py, |s| s.requeue(id))
    }

    /// Moves a job forward to `state`; returns False when it was already final.
    #[pyo3(signature = (id, state, exit_code=None, error=None))]
    fn transition(
        &self,
        py: Python<'_>,
        id: i64,
        state: &str,
        exit_code: Option<i32>,
        error: Option<String>,
    ) -> PyResult<bool> {
        let state = parse_state(state)?;
        self.with(py, |s| s.transition(id, state, exit_code, error.as_deref()))
    }

    /// Cancels a job: returns `"cancelled"` (was queued), `"requested"` (running; its executor
    /// kills it) or `"finished"` (already final, unchanged).
    fn cancel(&self, py: Python<'_>, id: i64) -> PyResult<&'static str> {
        Ok(match self.with(py, |s| s.cancel(id))? {
            CancelOutcome::Cancelled => "cancelled",
            CancelOutcome::Requested => "requested",
            CancelOutcome::AlreadyFinished(_) => "finished",
        })
    }

    /// Records the Slurm job id of a job.
    fn set_backend_id(&self, py: Python<'_>, id: i64, backend_id: String) -> PyResult<()> {
        self.with(py, |s| s.set_backend_id(id, &backend_id))
    }
}

/// Adds the job classes and functions to `zenith._zenith`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<JobStore>()?;
    m.add_class::<JobInfo>()?;
    m.add_function(wrap_pyfunction!(parse_memory, m)?)?;
    m.add_function(wrap_pyfunction!(validate_name, m)?)?;
    m.add_function(wrap_pyfunction!(validate_path, m)?)?;
    m.add_function(wrap_pyfunction!(validate_command, m)?)?;
    Ok(())
}
