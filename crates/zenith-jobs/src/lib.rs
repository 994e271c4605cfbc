//! Zenith's job subsystem, without Python: the Validator, the job spec, the SQLite job store and the
//! local executor's scheduling decisions. Process management lives with the runner; this crate decides
//! and records.

#![warn(missing_docs)]

pub mod scheduler;
pub mod spec;
pub mod store;
pub mod validation;

pub use scheduler::{plan, Allocation, Capacity, Decision, Planner, Request};
pub use spec::{Backend, JobKind, JobSpec, JobState};
pub use store::{now, CancelOutcome, JobRecord, JobStore, JobsError};
pub use validation::{parse_memory, ValidationError};
