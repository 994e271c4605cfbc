//! What a job is: its kind, command, resources, priority and backend, and the states it moves through.

use std::fmt;
use std::str::FromStr;

use crate::validation::{
    validate_command, validate_cpus, validate_gpus, validate_memory_bytes, validate_name,
    validate_path, validate_priority, ValidationError,
};

/// What runs: a command line (argv) or a pickled Python callable run by Zenith's worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// `argv` is executed directly, never through a shell.
    Command,
    /// `argv[0]` is the Python interpreter that runs the pickled callable in the job's directory.
    Function,
}

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded local executor (the default).
    Local,
    /// A Slurm cluster, through `sbatch`/`squeue`/`scancel`.
    Slurm,
}

/// The life cycle of a job: `Queued → Running → Succeeded | Failed | Cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Stored, waiting for resources.
    Queued,
    /// Started (local: process spawned; Slurm: running on a node).
    Running,
    /// Finished with exit code 0.
    Succeeded,
    /// Finished with a non-zero exit code, a signal, or could not be started.
    Failed,
    /// Cancelled by the user before or while it ran.
    Cancelled,
}

impl JobState {
    /// True for the states a job never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

macro_rules! string_enum {
    ($ty:ty, $what:literal, $($name:literal => $variant:expr),+ $(,)?) => {
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($variant),)+
                    other => Err(format!("unknown {} {other:?}", $what)),
                }
            }
        }
    };
}

string_enum!(JobState, "job state",
    "QUEUED" => JobState::Queued, "RUNNING" => JobState::Running, "SUCCEEDED" => JobState::Succeeded,
    "FAILED" => JobState::Failed, "CANCELLED" => JobState::Cancelled);
string_enum!(JobKind, "job kind", "command" => JobKind::Command, "function" => JobKind::Function);
string_enum!(Backend, "backend", "local" => Backend::Local, "slurm" => Backend::Slurm);

impl JobKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Function => "function",
        }
    }
}

impl Backend {
    /// The name stored in the database and accepted from users.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Slurm => "slurm",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as submitted: everything needed to run it, checked by [`JobSpec::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Job name (see [`validate_name`]).
    pub name: String,
    /// Command or function.
    pub kind: JobKind,
    /// Command: the argv to execute. Function: `[python_interpreter, payload_path]`.
    pub argv: Vec<String>,
    /// Working directory of the job.
    pub cwd: String,
    /// Environment of the job (the submitter's, like `sbatch --export=ALL`).
    pub env: Vec<(String, String)>,
    /// GPUs, 0–1024.
    pub gpus: u32,
    /// Memory in bytes; `None` leaves memory unaccounted.
    pub memory: Option<u64>,
    /// CPUs, 1–4096.
    pub cpus: u32,
    /// −1000..=1000; higher starts first.
    pub priority: i32,
    /// Where it runs.
    pub backend: Backend,
}

impl JobSpec {
    /// Applies every Validator rule to this spec; the first broken rule is returned.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name(&self.name)?;
        match self.kind {
            JobKind::Command => validate_command(&self.argv)?,
            JobKind::Function => match self.argv.as_slice() {
                [python, payload] => {
                    validate_path(python)?;
                    validate_path(payload)?;
                }
                _ => {
                    return Err(ValidationError {
                        field: "command",
                        rule: "a function job's command is [python interpreter, pickled payload]"
                            .into(),
                    })
                }
            },
        }
        validate_path(&self.cwd)?;
        validate_gpus(i64::from(self.gpus))?;
        validate_cpus(i64::from(self.cpus))?;
        validate_priority(i64::from(self.priority))?;
        if let Some(bytes) = self.memory {
            validate_memory_bytes(i64::try_from(bytes).unwrap_or(-1))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            name: "train".into(),
            kind: JobKind::Command,
            argv: vec!["echo".into(), "hi".into()],
            cwd: "/tmp".into(),
            env: vec![],
            gpus: 2,
            memory: Some(1 << 30),
            cpus: 1,
            priority: 0,
            backend: Backend::Local,
        }
    }

    #[test]
    fn valid_spec_passes() {
        assert_eq!(spec().validate(), Ok(()));
    }

    #[test]
    fn each_field_is_checked() {
        type Mutation = fn(&mut JobSpec);
        let cases: Vec<(Mutation, &str)> = vec![
            (|s| s.name = "bad name".into(), "name"),
            (|s| s.argv = vec!["rm".into(), "../x".into()], "command"),
            (|s| s.cwd = "/a/../b".into(), "path"),
            (|s| s.gpus = 1025, "gpus"),
            (|s| s.cpus = 0, "cpus"),
            (|s| s.priority = 1001, "priority"),
            (|s| s.memory = Some(0), "memory"),
            (|s| s.memory = Some(u64::MAX), "memory"),
            (
                |s| {
                    s.kind = JobKind::Function;
                    s.argv = vec!["/usr/bin/../python".into(), "/p".into()]
                },
                "path",
            ),
            (
                |s| {
                    s.kind = JobKind::Function;
                    s.argv = vec!["/usr/bin/python".into(), "/a/../p".into()]
                },
                "path",
            ),
            (
                |s| {
                    s.kind = JobKind::Function;
                    s.argv = vec!["/usr/bin/python".into()]
                },
                "command",
            ),
        ];
        for (mutate, field) in cases {
            let mut s = spec();
            mutate(&mut s);
            assert_eq!(s.validate().unwrap_err().field, field, "{s:?}");
        }
    }

    #[test]
    fn names_roundtrip() {
        for st in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            assert_eq!(st.as_str().parse::<JobState>(), Ok(st));
        }
        assert!("running".parse::<JobState>().is_err());
        assert_eq!("slurm".parse::<Backend>(), Ok(Backend::Slurm));
        assert_eq!("function".parse::<JobKind>(), Ok(JobKind::Function));
    }
}
