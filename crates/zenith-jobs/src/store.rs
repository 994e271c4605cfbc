//! The job store: one SQLite file (`$ZENITH_HOME/jobs.db`) shared by submitters, the runner and the CLI.
//!
//! Every state change is a single guarded `UPDATE` (or one `IMMEDIATE` transaction for scheduling),
//! so concurrent processes never move a job backwards or start it twice. WAL mode lets readers run
//! beside the runner's writes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::scheduler::{Allocation, Capacity, Decision, Planner, Request};
use crate::spec::{Backend, JobSpec, JobState};
use crate::validation::ValidationError;

/// Everything that can go wrong in the job subsystem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobsError {
    /// The spec broke a Validator rule; nothing was stored.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No job has this id.
    #[error("no job with id {id} in {db}")]
    NotFound {
        /// The id asked for.
        id: i64,
        /// The store searched.
        db: PathBuf,
    },
    /// SQLite failed.
    #[error("job store {db}: {source}")]
    Sqlite {
        /// The store.
        db: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database was written by an incompatible (newer) version of Zenith.
    #[error("job store {db}: schema version {found} is not supported (this Zenith reads version {SCHEMA_VERSION})")]
    Schema {
        /// The store.
        db: PathBuf,
        /// The version found in the file.
        found: i64,
    },
    /// A row could not be decoded (written by another version, or edited by hand).
    #[error("job store {db}: job {id}: {what}")]
    Corrupt {
        /// The store.
        db: PathBuf,
        /// The job.
        id: i64,
        /// What was wrong.
        what: String,
    },
}

/// A job as stored: its spec plus what happened to it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Job id, increasing with submission order.
    pub id: i64,
    /// The submitted spec.
    pub spec: JobSpec,
    /// Current state.
    pub state: JobState,
    /// Exit code, once finished (negative: killed by that signal).
    pub exit_code: Option<i32>,
    /// Why it failed (traceback for functions), or why it was cancelled.
    pub error: Option<String>,
    /// Seconds since the Unix epoch.
    pub submitted_at: f64,
    /// When it started running.
    pub started_at: Option<f64>,
    /// When it reached a final state.
    pub finished_at: Option<f64>,
    /// Local backend: the process id (also its process group id).
    pub pid: Option<i64>,
    /// Local backend: the GPU ids assigned.
    pub gpu_ids: Vec<u32>,
    /// Slurm backend: the Slurm job id.
    pub backend_id: Option<String>,
    /// A cancel was asked for while it ran; the runner kills it.
    pub cancel_requested: bool,
}

/// What [`JobStore::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued and is now cancelled.
    Cancelled,
    /// It is running; the flag is set and its executor kills it.
    Requested,
    /// It had already finished in this state; nothing changed.
    AlreadyFinished(JobState),
}

/// Layout version of the database (`PRAGMA user_version`); bumped with every incompatible change.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    argv             TEXT NOT NULL,
    cwd              TEXT NOT NULL,
    env              TEXT NOT NULL,
    gpus             INTEGER NOT NULL,
    memory           INTEGER,
    cpus             INTEGER NOT NULL,
    priority         INTEGER NOT NULL,
    backend          TEXT NOT NULL,
    state            TEXT NOT NULL,
    exit_code        INTEGER,
    error            TEXT,
    submitted_at     REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    pid              INTEGER,
    gpu_ids          TEXT NOT NULL DEFAULT '[]',
    backend_id       TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, backend, priority DESC, id);
";

const COLUMNS: &str = "id, name, kind, argv, cwd, env, gpus, memory, cpus, priority, backend, state, \
    exit_code, error, submitted_at, started_at, finished_at, pid, gpu_ids, backend_id, cancel_requested";

/// Seconds since the Unix epoch, as stored in `*_at` columns.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// How long [`JobStore::open`] keeps trying while another process holds the new store's lock.
const OPEN_BUSY_WAIT: Duration = Duration::from_secs(30);

/// Whether SQLite reported a lock held by another connection.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// An open job store.
pub struct JobStore {
    conn: Connection,
    path: PathBuf,
}

impl JobStore {
    /// Opens (creating if needed) the store at `path`.
    ///
    /// Several processes may open a new store at once (submitters starting together): switching
    /// a fresh database to WAL and creating its tables need a lock that SQLite reports as busy
    /// without waiting, so a busy open is tried again for up to [`OPEN_BUSY_WAIT`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JobsError> {
        let path = path.as_ref().to_path_buf();
        let started = std::time::Instant::now();
        loop {
            match Self::open_once(&path) {
                Err(source) if is_busy(&source) && started.elapsed() < OPEN_BUSY_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(source) => return Err(JobsError::Sqlite { db: path, source }),
                Ok(Ok(conn)) => return Ok(Self { conn, path }),
                Ok(Err(found)) => return Err(JobsError::Schema { db: path, found }),
            }
        }
    }

    /// One attempt of [`JobStore::open`]: the connection, or the newer schema version found.
    fn open_once(path: &Path) -> Result<Result<Connection, i64>, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        // WAL: readers never block the runner; NORMAL sync is durable across process crashes.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0 => conn.pragma_update(None, "user_version", SCHEMA_VERSION)?,
            SCHEMA_VERSION => {}
            newer => return Ok(Err(newer)),
        }
        Ok(Ok(conn))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, source: rusqlite::Error) -> JobsError {
        JobsError::Sqlite {
            db: self.path.clone(),
            source,
        }
    }

    /// Validates `spec` and stores it as `QUEUED`; returns the new job id. Invalid specs store nothing.
    pub fn submit(&self, spec: &JobSpec) -> Result<i64, JobsError> {
        spec.validate()?;
        let argv = serde_json::to_string(&spec.argv).unwrap_or_default();
        let env = serde_json::to_string(&spec.env).unwrap_or_default();
        let memory = spec.memory.map(|m| m as i64);
        self.conn
            .execute(
                "INSERT INTO jobs (name, kind, argv, cwd, env, gpus, memory, cpus, priority, backend, \
                 state, submitted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'QUEUED', ?11)",
                params![
                    spec.name,
                    spec.kind.as_str(),
                    argv,
                    spec.cwd,
                    env,
                    spec.gpus,
                    memory,
                    spec.cpus,
                    spec.priority,
                    spec.backend.as_str(),
                    now()
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The job with this id.
    pub fn get(&self, id: i64) -> Result<JobRecord, JobsError> {
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                RawRow::read,
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        match raw {
            Some(raw) => raw.decode(&self.path),
            None => Err(JobsError::NotFound {
                id,
                db: self.path.clone(),
            }),
        }
    }

    /// All jobs in `state` (all jobs when `None`), optionally of one backend, oldest first.
    pub fn list(
        &self,
        state: Option<JobState>,
        backend: Option<Backend>,
    ) -> Result<Vec<JobRecord>, JobsError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE (?1 IS NULL OR state = ?1) \
                 AND (?2 IS NULL OR backend = ?2) ORDER BY id"
            ))
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(
                params![state.map(JobState::as_str), backend.map(Backend::as_str)],
                RawRow::read,
            )
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for raw in rows {
            out.push(raw.map_err(|e| self.sql(e))?.decode(&self.path)?);
        }
        Ok(out)
    }

    /// Number of local jobs that are queued or running (the runner idles out when this is 0).
    pub fn local_active_count(&self) -> Result<i64, JobsError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM jobs WHERE backend = 'local' AND state IN ('QUEUED', 'RUNNING')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// Runs [`scheduler::plan`] over the local queue in one transaction: jobs that can start are
    /// marked `RUNNING` with their GPU ids and returned; jobs that can never start are marked `FAILED`.
    pub fn claim_startable(&mut self, capacity: &Capacity) -> Result<Vec<JobRecord>, JobsError> {
        let path = self.path.clone();
        let sql = |source| JobsError::Sqlite {
            db: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let request = |row: &Row<'_>| -> rusqlite::Result<Request> {
            Ok(Request {
                id: row.get(0)?,
                priority: row.get::<_, i64>(1)?.clamp(-1000, 1000) as i32,
                gpus: row.get::<_, i64>(2)?.clamp(0, 1024) as u32,
                memory: row.get::<_, Option<i64>>(3)?.unwrap_or(0).max(0) as u64,
                cpus: row.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
            })
        };
        let mut decisions = Vec::new();
        {
            let mut running = Vec::new();
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, gpu_ids, memory, cpus FROM jobs \
                     WHERE state = 'RUNNING' AND backend = 'local'",
                )
                .map_err(sql)?;
            let mut rows = stmt.query([]).map_err(sql)?;
            while let Some(row) = rows.next().map_err(sql)? {
                let id: i64 = row.get(0).map_err(sql)?;
                let ids: String = row.get(1).map_err(sql)?;
                let gpu_ids = serde_json::from_str(&ids).map_err(|e| JobsError::Corrupt {
                    db: path.clone(),
                    id,
                    what: format!("gpu_ids {ids:?}: {e}"),
                })?;
                running.push(Allocation {
                    gpu_ids,
                    memory: row
                        .get::<_, Option<i64>>(2)
                        .map_err(sql)?
                        .unwrap_or(0)
                        .max(0) as u64,
                    cpus: row
                        .get::<_, i64>(3)
                        .map_err(sql)?
                        .clamp(0, i64::from(u32::MAX)) as u32,
                });
            }
            let mut planner = Planner::new(capacity, &running);
            // Jobs larger than the whole machine, wherever they are in the queue.
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, priority, gpus, memory, cpus FROM jobs \
                     WHERE state = 'QUEUED' AND backend = 'local' \
                     AND (gpus > ?1 OR COALESCE(memory, 0) > ?2 OR cpus > ?3)",
                )
                .map_err(sql)?;
            let memory = i64::try_from(capacity.memory).unwrap_or(i64::MAX);
            for req in stmt
                .query_map(params![capacity.gpus, memory, capacity.cpus], request)
                .map_err(sql)?
            {
                decisions.extend(planner.consider(&req.map_err(sql)?));
            }
            // The queue in priority order, read only as far as something could still start.
            if !planner.is_full() {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, priority, gpus, memory, cpus FROM jobs \
                         WHERE state = 'QUEUED' AND backend = 'local' \
                         AND gpus <= ?1 AND COALESCE(memory, 0) <= ?2 AND cpus <= ?3 \
                         ORDER BY priority DESC, id",
                    )
                    .map_err(sql)?;
                let mut rows = stmt
                    .query_map(params![capacity.gpus, memory, capacity.cpus], request)
                    .map_err(sql)?;
                while !planner.is_full() {
                    let Some(req) = rows.next() else { break };
                    decisions.extend(planner.consider(&req.map_err(sql)?));
                }
            }
        }
        let mut started_ids = Vec::new();
        for decision in decisions {
            match decision {
                Decision::Start { id, gpu_ids } => {
                    let ids = serde_json::to_string(&gpu_ids).unwrap_or_default();
                    tx.execute(
                        "UPDATE jobs SET state = 'RUNNING', gpu_ids = ?2 WHERE id = ?1 AND state = 'QUEUED'",
                        params![id, ids],
                    )
                    .map_err(sql)?;
                    started_ids.push(id);
                }
                Decision::Unsatisfiable { id, reason } => {
                    tx.execute(
                        "UPDATE jobs SET state = 'FAILED', error = ?2, finished_at = ?3 \
                         WHERE id = ?1 AND state = 'QUEUED'",
                        params![id, format!("cannot run on this machine: {reason}"), now()],
                    )
                    .map_err(sql)?;
                }
            }
        }
        tx.commit().map_err(sql)?;
        started_ids.into_iter().map(|id| self.get(id)).collect()
    }

    /// Ids of the running local jobs whose cancel was asked for (the runner kills them).
    pub fn cancel_requested(&self) -> Result<Vec<i64>, JobsError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id FROM jobs WHERE state = 'RUNNING' AND backend = 'local' AND cancel_requested = 1",
            )
            .map_err(|e| self.sql(e))?;
        let ids = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<i64>, _>>()
            .map_err(|e| self.sql(e))?;
        Ok(ids)
    }

    /// Records that a claimed job's process was spawned as `pid` (its own process group).
    pub fn mark_started(&self, id: i64, pid: i64) -> Result<(), JobsError> {
        self.conn
            .execute(
                "UPDATE jobs SET pid = ?2, started_at = ?3 WHERE id = ?1 AND state = 'RUNNING'",
                params![id, pid, now()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// After a runner crash, moves a claimed job whose command never started (no process was
    /// spawned, or it stopped at the runner's start gate) back to `QUEUED`, clearing its pid and
    /// start time; one whose cancellation was requested meanwhile is `CANCELLED` instead, so a
    /// cancel is never lost. Returns false when the job was not `RUNNING`.
    pub fn requeue(&self, id: i64) -> Result<bool, JobsError> {
        let n = self
            .conn
            .execute(
                "UPDATE jobs SET \
                   state = CASE WHEN cancel_requested THEN 'CANCELLED' ELSE 'QUEUED' END, \
                   finished_at = CASE WHEN cancel_requested THEN ?2 ELSE NULL END, \
                   error = CASE WHEN cancel_requested THEN 'cancelled before it started' \
                           ELSE error END, \
                   gpu_ids = '[]', pid = NULL, started_at = NULL, cancel_requested = 0 \
                 WHERE id = ?1 AND state = 'RUNNING'",
                params![id, now()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(n == 1)
    }

    /// Moves a job forward to `state` (never out of a final state; never back to `QUEUED`).
    ///
    /// `RUNNING` sets `started_at` if unset; final states set `finished_at`, `exit_code` and `error`.
    /// Returns false when the job was already final (nothing changed).
    pub fn transition(
        &self,
        id: i64,
        state: JobState,
        exit_code: Option<i32>,
        error: Option<&str>,
    ) -> Result<bool, JobsError> {
        let n = match state {
            JobState::Queued => 0,
            JobState::Running => self
                .conn
                .execute(
                    "UPDATE jobs SET state = 'RUNNING', started_at = COALESCE(started_at, ?2) \
                     WHERE id = ?1 AND state IN ('QUEUED', 'RUNNING')",
                    params![id, now()],
                )
                .map_err(|e| self.sql(e))?,
            final_state => self
                .conn
                .execute(
                    "UPDATE jobs SET state = ?2, exit_code = ?3, error = ?4, finished_at = ?5 \
                     WHERE id = ?1 AND state IN ('QUEUED', 'RUNNING')",
                    params![id, final_state.as_str(), exit_code, error, now()],
                )
                .map_err(|e| self.sql(e))?,
        };
        if n == 0 {
            // Distinguish "unknown id" from "already final".
            self.get(id)?;
        }
        Ok(n == 1)
    }

    /// Cancels a job: a queued one at once, a running one by flagging it for its executor.
    pub fn cancel(&self, id: i64) -> Result<CancelOutcome, JobsError> {
        let cancelled = self
            .conn
            .execute(
                "UPDATE jobs SET state = 'CANCELLED', error = 'cancelled while queued', finished_at = ?2 \
                 WHERE id = ?1 AND state = 'QUEUED'",
                params![id, now()],
            )
            .map_err(|e| self.sql(e))?;
        if cancelled == 1 {
            return Ok(CancelOutcome::Cancelled);
        }
        let flagged = self
            .conn
            .execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state = 'RUNNING'",
                [id],
            )
            .map_err(|e| self.sql(e))?;
        if flagged == 1 {
            return Ok(CancelOutcome::Requested);
        }
        Ok(CancelOutcome::AlreadyFinished(self.get(id)?.state))
    }

    /// Records the Slurm job id of a submitted job.
    pub fn set_backend_id(&self, id: i64, backend_id: &str) -> Result<(), JobsError> {
        let n = self
            .conn
            .execute(
                "UPDATE jobs SET backend_id = ?2 WHERE id = ?1",
                params![id, backend_id],
            )
            .map_err(|e| self.sql(e))?;
        if n == 0 {
            self.get(id)?;
        }
        Ok(())
    }
}

/// A row as read, before decoding (keeps SQLite errors and decoding errors apart).
struct RawRow {
    id: i64,
    name: String,
    kind: String,
    argv: String,
    cwd: String,
    env: String,
    gpus: i64,
    memory: Option<i64>,
    cpus: i64,
    priority: i64,
    backend: String,
    state: String,
    exit_code: Option<i64>,
    error: Option<String>,
    submitted_at: f64,
    started_at: Option<f64>,
    finished_at: Option<f64>,
    pid: Option<i64>,
    gpu_ids: String,
    backend_id: Option<String>,
    cancel_requested: bool,
}

impl RawRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            kind: r.get(2)?,
            argv: r.get(3)?,
            cwd: r.get(4)?,
            env: r.get(5)?,
            gpus: r.get(6)?,
            memory: r.get(7)?,
            cpus: r.get(8)?,
            priority: r.get(9)?,
            backend: r.get(10)?,
            state: r.get(11)?,
            exit_code: r.get(12)?,
            error: r.get(13)?,
            submitted_at: r.get(14)?,
            started_at: r.get(15)?,
            finished_at: r.get(16)?,
            pid: r.get(17)?,
            gpu_ids: r.get(18)?,
            backend_id: r.get(19)?,
            cancel_requested: r.get(20)?,
        })
    }

    fn decode(self, db: &Path) -> Result<JobRecord, JobsError> {
        let id = self.id;
        let corrupt = |what: String| JobsError::Corrupt {
            db: db.to_path_buf(),
            id,
            what,
        };
        let int = |what: &str, v: i64| {
            u32::try_from(v).map_err(|_| corrupt(format!("{what} {v} out of range")))
        };
        Ok(JobRecord {
            id,
            spec: JobSpec {
                name: self.name,
                kind: self.kind.parse().map_err(corrupt)?,
                argv: serde_json::from_str(&self.argv)
                    .map_err(|e| corrupt(format!("argv: {e}")))?,
                cwd: self.cwd,
                env: serde_json::from_str(&self.env).map_err(|e| corrupt(format!("env: {e}")))?,
                gpus: int("gpus", self.gpus)?,
                memory: self.memory.map(|m| m.max(0) as u64),
                cpus: int("cpus", self.cpus)?,
                priority: i32::try_from(self.priority)
                    .map_err(|_| corrupt(format!("priority {} out of range", self.priority)))?,
                backend: self.backend.parse().map_err(corrupt)?,
            },
            state: self.state.parse().map_err(corrupt)?,
            exit_code: self.exit_code.and_then(|c| i32::try_from(c).ok()),
            error: self.error,
            submitted_at: self.submitted_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            pid: self.pid,
            gpu_ids: serde_json::from_str(&self.gpu_ids)
                .map_err(|e| corrupt(format!("gpu_ids: {e}")))?,
            backend_id: self.backend_id,
            cancel_requested: self.cancel_requested,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::JobKind;

    fn spec(name: &str, gpus: u32, priority: i32) -> JobSpec {
        JobSpec {
            name: name.into(),
            kind: JobKind::Command,
            argv: vec!["true".into()],
            cwd: "/tmp".into(),
            env: vec![("A".into(), "1".into())],
            gpus,
            memory: None,
            cpus: 1,
            priority,
            backend: Backend::Local,
        }
    }

    fn store() -> (tempfile::TempDir, JobStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = JobStore::open(dir.path().join("jobs.db")).expect("open");
        (dir, store)
    }

    #[test]
    fn open_waits_while_another_connection_holds_a_new_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("jobs.db");
        // Another connection creates the file and holds it exclusively for a moment, as a
        // submitter that started first does while it sets the store up.
        let holder = Connection::open(&db).expect("holder");
        holder
            .execute_batch("BEGIN EXCLUSIVE; CREATE TABLE t (x);")
            .expect("lock");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            holder.execute_batch("COMMIT").expect("commit");
        });
        let store = JobStore::open(&db).expect("open after the lock is released");
        assert_eq!(store.submit(&spec("a", 0, 0)).expect("submit"), 1);
        release.join().expect("holder thread");
    }

    const CAP: Capacity = Capacity {
        gpus: 4,
        memory: 1 << 40,
        cpus: 64,
    };

    #[test]
    fn submit_and_get_roundtrip() {
        let (_d, s) = store();
        let mut sp = spec("a", 2, 7);
        sp.memory = Some(1_610_612_736);
        let id = s.submit(&sp).unwrap();
        let job = s.get(id).unwrap();
        assert_eq!(job.spec, sp);
        assert_eq!(job.state, JobState::Queued);
        assert_eq!((job.exit_code, job.pid, job.started_at), (None, None, None));
        assert!(job.gpu_ids.is_empty());
    }

    #[test]
    fn invalid_spec_stores_nothing() {
        let (_d, s) = store();
        let err = s.submit(&spec("bad name", 0, 0)).unwrap_err();
        assert!(
            matches!(err, JobsError::Validation(ref v) if v.field == "name"),
            "{err}"
        );
        assert!(s.list(None, None).unwrap().is_empty());
    }

    #[test]
    fn unknown_id_is_not_found() {
        let (_d, s) = store();
        let err = s.get(42).unwrap_err();
        assert!(matches!(err, JobsError::NotFound { id: 42, .. }));
        assert!(err.to_string().starts_with("no job with id 42 in "));
        assert!(matches!(s.cancel(42), Err(JobsError::NotFound { .. })));
        assert!(matches!(
            s.transition(42, JobState::Failed, None, None),
            Err(JobsError::NotFound { .. })
        ));
    }

    #[test]
    fn claims_follow_priority_and_never_twice() {
        let (_d, mut s) = store();
        let low = s.submit(&spec("low", 2, -5)).unwrap();
        let high = s.submit(&spec("high", 2, 5)).unwrap();
        let mid = s.submit(&spec("mid", 2, 0)).unwrap();
        let first = s.claim_startable(&CAP).unwrap();
        let got: Vec<(i64, Vec<u32>)> = first.iter().map(|j| (j.id, j.gpu_ids.clone())).collect();
        assert_eq!(got, vec![(high, vec![0, 1]), (mid, vec![2, 3])]);
        assert!(s.claim_startable(&CAP).unwrap().is_empty());
        s.mark_started(high, 1234).unwrap();
        assert!(s
            .transition(high, JobState::Succeeded, Some(0), None)
            .unwrap());
        let next = s.claim_startable(&CAP).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].id, next[0].gpu_ids.clone()), (low, vec![0, 1]));
        let done = s.get(high).unwrap();
        assert_eq!(
            (done.state, done.exit_code, done.pid),
            (JobState::Succeeded, Some(0), Some(1234))
        );
        assert!(done.started_at.is_some() && done.finished_at.is_some());
    }

    #[test]
    fn unsatisfiable_jobs_fail_with_reason() {
        let (_d, mut s) = store();
        let id = s.submit(&spec("big", 8, 0)).unwrap();
        assert!(s.claim_startable(&CAP).unwrap().is_empty());
        let job = s.get(id).unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(
            job.error.as_deref(),
            Some("cannot run on this machine: requests 8 GPUs but this machine has 4")
        );
    }

    #[test]
    fn cancel_queued_running_and_finished() {
        let (_d, mut s) = store();
        let a = s.submit(&spec("a", 4, 1)).unwrap();
        let b = s.submit(&spec("b", 0, 0)).unwrap();
        let c = s.submit(&spec("c", 4, 0)).unwrap();
        assert_eq!(s.claim_startable(&CAP).unwrap().len(), 2); // a and b
        assert_eq!(s.cancel(c).unwrap(), CancelOutcome::Cancelled);
        assert_eq!(s.get(c).unwrap().state, JobState::Cancelled);
        assert_eq!(s.cancel(a).unwrap(), CancelOutcome::Requested);
        assert!(s.get(a).unwrap().cancel_requested);
        assert!(s
            .transition(a, JobState::Cancelled, Some(-15), Some("cancelled"))
            .unwrap());
        assert_eq!(
            s.cancel(a).unwrap(),
            CancelOutcome::AlreadyFinished(JobState::Cancelled)
        );
        // A final state is never left.
        assert!(!s.transition(a, JobState::Succeeded, Some(0), None).unwrap());
        assert!(!s.transition(b, JobState::Queued, None, None).unwrap());
        assert_eq!(s.get(a).unwrap().state, JobState::Cancelled);
    }

    #[test]
    fn requeue_returns_claims_to_the_queue_and_keeps_cancels() {
        let (_d, mut s) = store();
        let a = s.submit(&spec("a", 1, 0)).unwrap();
        let b = s.submit(&spec("b", 1, 0)).unwrap();
        let c = s.submit(&spec("c", 1, 0)).unwrap();
        let queued = s.submit(&spec("q", 9, 0)).unwrap();
        s.claim_startable(&CAP).unwrap();
        s.mark_started(a, 99).unwrap();
        assert!(!s.requeue(queued).unwrap());
        assert!(s.requeue(a).unwrap() && s.requeue(b).unwrap());
        for id in [a, b] {
            let j = s.get(id).unwrap();
            assert_eq!(
                (j.state, j.gpu_ids.len(), j.pid),
                (JobState::Queued, 0, None)
            );
            assert_eq!(j.started_at, None);
        }
        s.cancel(c).unwrap();
        assert!(s.requeue(c).unwrap());
        let jc = s.get(c).unwrap();
        assert_eq!(jc.state, JobState::Cancelled);
        assert_eq!(jc.error.as_deref(), Some("cancelled before it started"));
        assert!(jc.finished_at.is_some());
    }

    #[test]
    fn state_survives_reopen_and_lists_filter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        let (a, b);
        {
            let s = JobStore::open(&path).unwrap();
            a = s.submit(&spec("a", 0, 0)).unwrap();
            b = s.submit(&spec("b", 0, 0)).unwrap();
            s.set_backend_id(b, "17").unwrap();
            s.transition(b, JobState::Running, None, None).unwrap();
        }
        let s = JobStore::open(&path).unwrap();
        let ids = |v: Vec<JobRecord>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(ids(s.list(None, None).unwrap()), vec![a, b]);
        assert_eq!(ids(s.list(Some(JobState::Running), None).unwrap()), vec![b]);
        assert_eq!(
            ids(s.list(None, Some(Backend::Slurm)).unwrap()),
            Vec::<i64>::new()
        );
        assert_eq!(s.get(b).unwrap().backend_id.as_deref(), Some("17"));
        assert_eq!(s.local_active_count().unwrap(), 2);
    }

    #[test]
    fn long_queue_is_read_only_as_far_as_needed_and_big_jobs_fail_anywhere() {
        let (_d, mut s) = store();
        let cap = Capacity {
            gpus: 4,
            memory: 1 << 40,
            cpus: 2,
        };
        let ids: Vec<i64> = (0..50)
            .map(|i| s.submit(&spec(&format!("j{i}"), 0, 0)).unwrap())
            .collect();
        let big = s.submit(&spec("big", 5, -1000)).unwrap();
        let urgent = s.submit(&spec("urgent", 0, 9)).unwrap();
        let started: Vec<i64> = s
            .claim_startable(&cap)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(started, vec![urgent, ids[0]]);
        assert_eq!(s.get(big).unwrap().state, JobState::Failed);
        assert!(s.claim_startable(&cap).unwrap().is_empty());
        s.cancel(ids[0]).unwrap();
        assert_eq!(s.cancel_requested().unwrap(), vec![ids[0]]);
        assert!(s
            .transition(ids[0], JobState::Cancelled, Some(-15), None)
            .unwrap());
        assert!(s.cancel_requested().unwrap().is_empty());
        let next: Vec<i64> = s
            .claim_startable(&cap)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(next, vec![ids[1]]);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        drop(JobStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = JobStore::open(&path).err().expect("must refuse");
        assert!(matches!(err, JobsError::Schema { found: 99, .. }), "{err}");
    }

    #[test]
    fn two_connections_never_claim_the_same_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        let mut s1 = JobStore::open(&path).unwrap();
        let mut s2 = JobStore::open(&path).unwrap();
        for i in 0..6 {
            s1.submit(&spec(&format!("j{i}"), 1, 0)).unwrap();
        }
        let mut all: Vec<u32> = Vec::new();
        for j in s1
            .claim_startable(&CAP)
            .unwrap()
            .into_iter()
            .chain(s2.claim_startable(&CAP).unwrap())
        {
            all.extend(j.gpu_ids);
        }
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
    }
}
