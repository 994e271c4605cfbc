//! Zenith's Python extension module `zenith._zenith`: type conversion, GIL release and error mapping
//! over the Rust crates; no logic of its own.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;

mod jobs;

pyo3::create_exception!(
    zenith._zenith,
    ZenithError,
    PyException,
    "Base class of every Zenith error."
);
pyo3::create_exception!(
    zenith._zenith,
    SourceError,
    ZenithError,
    "A data source could not be listed or opened."
);
pyo3::create_exception!(
    zenith._zenith,
    FormatError,
    ZenithError,
    "A file is not in the expected format or is corrupt."
);
pyo3::create_exception!(
    zenith._zenith,
    StorageError,
    ZenithError,
    "Reading from storage failed."
);
pyo3::create_exception!(
    zenith._zenith,
    SchemaError,
    ZenithError,
    "Schemas or columns do not match what was asked."
);
pyo3::create_exception!(
    zenith._zenith,
    ValidationError,
    ZenithError,
    "An input broke a validation rule; nothing was stored."
);
pyo3::create_exception!(
    zenith._zenith,
    JobError,
    ZenithError,
    "A job operation failed (unknown id, store failure, job failure)."
);

/// The extension module.
#[pymodule]
fn _zenith(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ZenithError", py.get_type::<ZenithError>())?;
    m.add("SourceError", py.get_type::<SourceError>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("JobError", py.get_type::<JobError>())?;
    jobs::register(m)?;
    Ok(())
}
