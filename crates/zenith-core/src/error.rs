//! One error type for the whole engine. Every variant names the place that failed
//! (file, row group, byte offset, column) so a user can find the bad input.

use std::path::PathBuf;

/// Result alias used across zenith-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while listing, reading, planning or loading data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path, directory or glob matched nothing on disk.
    #[error("no such file or directory: {path}")]
    NotFound { path: String },

    /// A directory or glob matched no data files.
    #[error("no data files found under {path} (hidden files are ignored)")]
    EmptySource { path: String },

    /// An operating-system error while touching a file.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The bytes of a file are not valid for its format.
    #[error("{path}: {location}: {message}")]
    Format {
        path: PathBuf,
        /// Where in the file: "footer", "row group 3", "byte 1024", "record batch 2".
        location: String,
        message: String,
    },

    /// Files disagree on their schema, or a schema cannot serve the request.
    #[error("{path}: {message}")]
    Schema { path: PathBuf, message: String },

    /// A requested column does not exist.
    #[error("{path}: unknown column {column:?}; available columns: {available}")]
    UnknownColumn {
        path: PathBuf,
        column: String,
        available: String,
    },

    /// Object storage failed (after retries) for an object and byte range.
    #[error("storage error on {object}{range}: {message}")]
    Storage {
        object: String,
        /// " bytes A-B" or empty.
        range: String,
        message: String,
        /// The client's own error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The environment refused a resource the engine needs (a thread, a runtime, memory).
    #[error("cannot start {what}: {source}")]
    Resource {
        /// What could not be started: "the loader thread", "4 decode threads", ...
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// An argument was out of range or malformed.
    #[error("invalid argument `{name}`: {message}")]
    InvalidArgument { name: String, message: String },

    /// The iteration was interrupted (Ctrl-C) or the loader was shut down.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Builds [`Error::Format`] for a path and a location inside it.
    pub fn format(
        path: impl Into<PathBuf>,
        location: impl Into<String>,
        message: impl ToString,
    ) -> Self {
        Error::Format {
            path: path.into(),
            location: location.into(),
            message: message.to_string(),
        }
    }

    /// Builds [`Error::Io`] for a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds [`Error::InvalidArgument`].
    pub fn invalid(name: impl Into<String>, message: impl ToString) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            message: message.to_string(),
        }
    }

    /// Builds [`Error::Resource`] for something the environment would not start.
    pub fn resource(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Resource {
            what: what.into(),
            source,
        }
    }

    /// Builds [`Error::Schema`].
    pub fn schema(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        Error::Schema {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// The coarse class of the error, used to pick the Python exception and the C error code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } | Error::EmptySource { .. } | Error::Io { .. } => {
                ErrorKind::Source
            }
            Error::Format { .. } => ErrorKind::Format,
            Error::Schema { .. } | Error::UnknownColumn { .. } => ErrorKind::Schema,
            Error::Storage { .. } => ErrorKind::Storage,
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::Resource { .. } => ErrorKind::Resource,
            Error::Interrupted => ErrorKind::Interrupted,
        }
    }
}

/// Coarse error classes; one Python exception class and one C error code each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Missing, empty or unreadable source.
    Source,
    /// Corrupt or mis-typed bytes.
    Format,
    /// Schema mismatch or unknown column.
    Schema,
    /// Object storage failure.
    Storage,
    /// Bad argument.
    InvalidArgument,
    /// A thread, runtime or memory limit of the environment.
    Resource,
    /// Interrupted by the user.
    Interrupted,
}

/// The text of a caught panic's payload (a `&str` or `String` message, else a placeholder), for
/// the boundaries that turn a panic into an error.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
