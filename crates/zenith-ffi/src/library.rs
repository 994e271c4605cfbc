//! Library-wide entry points: settings, version, last error, and whole-dataset reads exported as
//! an Arrow C stream.

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatchIterator, RecordBatchReader};
use zenith_core::ReadOptions;

use crate::config;
use crate::status::{
    self, guard, guard_value, non_null, opt_str_arg, str_arg, FfiError, ZenithStatus,
    ZENITH_FFI_PANIC, ZENITH_OK,
};

/// Applies library settings; optional, and may be called again to change them.
///
/// `config_json` is NULL (no change) or a JSON object with the optional keys `"cache_bytes"`
/// (budget of the small-dataset cache, 0 disables it) and `"log_level"` (a tracing filter such as
/// `"info"` or `"zenith_core=debug"`; logs go to stderr; the first filter set in a process stays).
/// Unknown keys are rejected with `ZENITH_ERR_INVALID_ARG`.
///
/// # Safety
/// `config_json` must be NULL or a NUL-terminated string valid for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn zenith_init(config_json: *const c_char) -> ZenithStatus {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let text = unsafe { opt_str_arg(config_json, "config_json") }?;
        let init = config::init_config(text)?;
        if let Some(bytes) = init.cache_bytes {
            zenith_core::cache::set_limit(bytes);
        }
        if let Some(filter) = init.log_level {
            let filter = tracing_subscriber::EnvFilter::try_new(&filter)
                .map_err(|e| FfiError::invalid("log_level", e))?;
            // A host that installed its own subscriber keeps it.
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
        }
        Ok(ZENITH_OK)
    })
}

/// The library version, e.g. `"0.1.0"`: a static NUL-terminated string the caller must not free.
#[no_mangle]
pub extern "C" fn zenith_version() -> *const c_char {
    static VERSION: OnceLock<CString> = OnceLock::new();
    guard_value(c"".as_ptr(), || {
        VERSION
            .get_or_init(|| CString::new(zenith_core::VERSION).unwrap_or_default())
            .as_ptr()
    })
}

/// The message of the last failed call on this thread, or `""` when the last call succeeded.
///
/// Never NULL. The string belongs to the library and stays valid until the next `zenith_*` call on
/// the same thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn zenith_last_error() -> *const c_char {
    guard_value(c"".as_ptr(), status::last_error_ptr)
}

/// Reads a whole dataset (a file, a directory or a glob; Parquet, CSV or Arrow IPC, detected) and
/// exports it as an Arrow C stream of struct arrays, one per record batch, in file order.
///
/// `columns_json` is NULL for every column, or a JSON array of column names, e.g. `["x", "y"]`,
/// which also fixes their order. On success `*out` owns the stream: the caller releases it with
/// `out->release(out)`. On failure `*out` is written as a released stream (`out->release == NULL`).
///
/// Errors: `ZENITH_ERR_IO` (missing or unreadable source), `ZENITH_ERR_FORMAT` (corrupt file),
/// `ZENITH_ERR_SCHEMA` (unknown column, schemas differ), `ZENITH_ERR_INVALID_ARG` (NULL `path` or
/// `out`, invalid UTF-8, malformed `columns_json`).
///
/// # Safety
/// `path` and `columns_json` must be NULL or NUL-terminated strings valid for the call; `out` must
/// be NULL or point to writable memory for one `struct ArrowArrayStream` (its old contents are
/// overwritten, not released).
#[no_mangle]
pub unsafe extern "C" fn zenith_load(
    path: *const c_char,
    columns_json: *const c_char,
    out: *mut FFI_ArrowArrayStream,
) -> ZenithStatus {
    guard(|| {
        let out = non_null(out, "out")?;
        // SAFETY: `out` is non-NULL and writable per the caller's contract; write() ignores the
        // previous (possibly uninitialised) contents.
        unsafe { out.write(FFI_ArrowArrayStream::empty()) };
        // SAFETY: forwarded caller contract.
        let path = unsafe { str_arg(path, "path") }?;
        // SAFETY: forwarded caller contract.
        let columns = config::column_list(unsafe { opt_str_arg(columns_json, "columns_json") }?)?;
        let options = ReadOptions {
            columns,
            ..Default::default()
        };
        let (schema, batches) = zenith_core::read_many(&[path.to_string()], &options)?;
        let reader: Box<dyn RecordBatchReader + Send> = Box::new(RecordBatchIterator::new(
            batches.into_iter().map(Ok),
            schema,
        ));
        // SAFETY: as above; the empty stream written before owns nothing.
        unsafe { out.write(FFI_ArrowArrayStream::new(reader)) };
        Ok(ZENITH_OK)
    })
}

/// Panics inside the library on purpose and reports it: always returns `ZENITH_FFI_PANIC`.
///
/// For tests of a host's error handling; it proves that a Rust panic comes back as a status code
/// and a `zenith_last_error()` message, never as an unwind into the caller.
#[no_mangle]
#[allow(clippy::panic)] // the one deliberate panic: it proves the boundary catches them
pub extern "C" fn zenith_test_panic() -> ZenithStatus {
    let status = guard(|| panic!("zenith_test_panic was called"));
    debug_assert_eq!(status, ZENITH_FFI_PANIC);
    status
}
