//! The Python exception tree and the one conversion from engine errors into it, so that `?`
//! on an engine result raises the exception of its kind everywhere in the bindings.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;
use zenith_core::{Error, ErrorKind};

create_exception!(
    zenith._zenith,
    ZenithError,
    PyException,
    "Base class of every Zenith error."
);
create_exception!(
    zenith._zenith,
    SourceError,
    ZenithError,
    "A path is missing, empty or unreadable."
);
create_exception!(
    zenith._zenith,
    FormatError,
    ZenithError,
    "A file's bytes are not valid for its format."
);
create_exception!(
    zenith._zenith,
    StorageError,
    ZenithError,
    "Object storage failed after retries."
);
create_exception!(
    zenith._zenith,
    SchemaError,
    ZenithError,
    "Schemas differ, or a column is unknown."
);
create_exception!(
    zenith._zenith,
    ValidationError,
    ZenithError,
    "An argument, job spec or state is invalid; `field` names it and `rule` says what is wrong."
);
create_exception!(
    zenith._zenith,
    JobError,
    ZenithError,
    "A job failed, or a job id is unknown."
);
create_exception!(
    zenith._zenith,
    ResourceError,
    ZenithError,
    "The system refused a thread, runtime or memory the call needed (a resource limit)."
);

/// A `ValidationError` whose `field` and `rule` attributes say which argument broke which rule.
pub(crate) fn validation_error(py: Python<'_>, field: &str, rule: &str, message: String) -> PyErr {
    let exc = ValidationError::new_err(message);
    let value = exc.value(py);
    // Setting attributes on a fresh exception instance cannot fail in practice; if it did, the
    // message still names the field and the rule.
    let _ = value.setattr("field", field);
    let _ = value.setattr("rule", rule);
    exc
}

/// An error on its way to Python: from the engine, or already a Python exception.
#[derive(Debug)]
pub(crate) enum BindingError {
    /// An engine error, raised as the exception of its kind.
    Engine(Error),
    /// A Python exception (from a conversion or a callback), raised as it is.
    Python(PyErr),
}

/// The result type of binding functions: `?` works on engine and Python results alike.
pub(crate) type BindingResult<T> = Result<T, BindingError>;

impl From<Error> for BindingError {
    fn from(e: Error) -> Self {
        BindingError::Engine(e)
    }
}

impl From<PyErr> for BindingError {
    fn from(e: PyErr) -> Self {
        BindingError::Python(e)
    }
}

impl From<BindingError> for PyErr {
    fn from(e: BindingError) -> PyErr {
        match e {
            BindingError::Python(e) => e,
            BindingError::Engine(e) => engine_error(e),
        }
    }
}

/// The exception of an engine error's kind, with its message.
fn engine_error(e: Error) -> PyErr {
    let msg = e.to_string();
    match (&e, e.kind()) {
        (Error::InvalidArgument { name, message }, _) => {
            Python::attach(|py| validation_error(py, name, message, msg))
        }
        (_, ErrorKind::Source) => SourceError::new_err(msg),
        (_, ErrorKind::Format) => FormatError::new_err(msg),
        (_, ErrorKind::Schema) => SchemaError::new_err(msg),
        (_, ErrorKind::Storage) => StorageError::new_err(msg),
        (_, ErrorKind::InvalidArgument) => ValidationError::new_err(msg),
        (_, ErrorKind::Resource) => ResourceError::new_err(msg),
        (_, ErrorKind::Interrupted) => PyKeyboardInterrupt::new_err(msg),
        _ => ZenithError::new_err(msg),
    }
}

/// Adds the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ZenithError", py.get_type::<ZenithError>())?;
    m.add("SourceError", py.get_type::<SourceError>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    let validation = py.get_type::<ValidationError>();
    // Class-level defaults: an instance raised without them still has both attributes.
    validation.setattr("field", py.None())?;
    validation.setattr("rule", py.None())?;
    m.add("ValidationError", validation)?;
    m.add("JobError", py.get_type::<JobError>())?;
    m.add("ResourceError", py.get_type::<ResourceError>())?;
    Ok(())
}
