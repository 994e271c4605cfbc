//! The streaming loader behind an opaque handle: batches leave one at a time as Arrow C Data
//! struct arrays; the resume state travels as JSON text.

use std::ffi::c_char;

use arrow_array::ffi::{to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{Array, StructArray};
use zenith_core::{BatchIterator, DataLoader, LoaderState};

use crate::config;
use crate::status::{
    guard, non_null, opt_str_arg, str_arg, FfiError, ZenithStatus, ZENITH_END,
    ZENITH_ERR_BUFFER_TOO_SMALL, ZENITH_ERR_INTERNAL, ZENITH_ERR_INVALID_ARG, ZENITH_OK,
};

/// An open loader: the dataset, its plan and the running iteration of the current epoch.
///
/// Opaque to C. A handle may move between threads but must not be used by two at once.
pub struct ZenithLoader {
    loader: DataLoader,
    /// The epoch being delivered; started by the first `zenith_loader_next` of each epoch.
    running: Option<BatchIterator>,
}

/// Borrows the loader behind a handle.
///
/// # Safety
/// `handle` must be NULL or a live handle from `zenith_loader_new`, not used concurrently.
unsafe fn loader_arg<'a>(handle: *mut ZenithLoader) -> Result<&'a mut ZenithLoader, FfiError> {
    // SAFETY: non-NULL handles come from Box::into_raw in zenith_loader_new per the contract.
    unsafe { non_null(handle, "handle")?.as_mut() }
        .ok_or_else(|| FfiError::invalid("handle", "is NULL"))
}

/// Opens a loader over `source` (a file, a directory or a glob) and stores its handle in `*out`.
///
/// `config_json` is NULL for the defaults or a JSON object whose keys are the loader settings:
/// `batch_size` (32), `shuffle` (true), `seed` (0), `columns` (all: a list of names, or an object
/// mapping output names to a column, a list of numeric columns stacked into `[rows, k]`, or
/// `{"column"|"stack": ..., "dtype": "float32"}`), `num_workers` (`ZENITH_NUM_WORKERS` or the
/// usable CPUs less one), `drop_last` (false), `prefetch` (8), `rank` (0), `world_size` (1),
/// `on_error` (`"raise"` or `"skip"`), `output` (`"tensors"` or `"arrow"`), `shuffle_window`,
/// `memory_budget`, `reuse_budget` and `format`. Unknown keys are rejected. On failure `*out` is set to NULL.
///
/// # Safety
/// `source` and `config_json` must be NULL or NUL-terminated strings valid for the call; `out`
/// must be NULL or point to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn zenith_loader_new(
    source: *const c_char,
    config_json: *const c_char,
    out: *mut *mut ZenithLoader,
) -> ZenithStatus {
    guard(|| {
        let out = non_null(out, "out")?;
        // SAFETY: `out` is non-NULL and writable per the caller's contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded caller contract.
        let source = unsafe { str_arg(source, "source") }?;
        // SAFETY: forwarded caller contract.
        let config = config::loader_config(unsafe { opt_str_arg(config_json, "config_json") }?)?;
        let loader = DataLoader::new(&[source.to_string()], config)?;
        let handle = Box::into_raw(Box::new(ZenithLoader {
            loader,
            running: None,
        }));
        // SAFETY: as above.
        unsafe { out.write(handle) };
        Ok(ZENITH_OK)
    })
}

/// Exports the next batch of the current epoch as an Arrow struct array with its schema.
///
/// Returns `ZENITH_OK` with `*out` (and `*out_schema` unless it is NULL) owned by the caller, who
/// releases each with its `release` callback. Returns `ZENITH_END` when the epoch is complete:
/// nothing is exported and `out->release` (and `out_schema->release`) is NULL; the next call
/// starts the next epoch. On an error the iteration stops and the next call starts the current
/// epoch again from its beginning (or from a state given to `zenith_loader_restore`).
///
/// # Safety
/// `handle` must be a live handle from `zenith_loader_new`; `out` must point to writable memory
/// for one `struct ArrowArray` and `out_schema` must be NULL or point to writable memory for one
/// `struct ArrowSchema` (old contents are overwritten, not released).
#[no_mangle]
pub unsafe extern "C" fn zenith_loader_next(
    handle: *mut ZenithLoader,
    out: *mut FFI_ArrowArray,
    out_schema: *mut FFI_ArrowSchema,
) -> ZenithStatus {
    guard(|| {
        let out = non_null(out, "out")?;
        // SAFETY: `out` and a non-NULL `out_schema` are writable per the caller's contract; an
        // empty struct is the released state and owns nothing.
        unsafe {
            out.write(FFI_ArrowArray::empty());
            if !out_schema.is_null() {
                out_schema.write(FFI_ArrowSchema::empty());
            }
        }
        // SAFETY: forwarded caller contract.
        let this = unsafe { loader_arg(handle) }?;
        if this.running.is_none() {
            this.running = Some(this.loader.iter()?);
        }
        let next = this.running.as_mut().and_then(Iterator::next);
        let batch = match next {
            Some(Ok(batch)) => batch,
            Some(Err(e)) => {
                this.running = None;
                return Err(e.into());
            }
            None => {
                this.running = None;
                return Ok(ZENITH_END);
            }
        };
        let data = StructArray::from(batch.to_record_batch()?).into_data();
        let (array, schema) = to_ffi(&data)
            .map_err(|e| FfiError::new(ZENITH_ERR_INTERNAL, format!("cannot export batch: {e}")))?;
        // SAFETY: as above; both targets hold released (empty) structs.
        unsafe {
            out.write(array);
            if !out_schema.is_null() {
                out_schema.write(schema);
            }
        }
        Ok(ZENITH_OK)
    })
}

/// Writes the loader's resume state (JSON text, NUL-terminated) into `buf`.
///
/// `*len` is the capacity of `buf` in bytes on entry and, on return, the size the state needs
/// including its NUL. Ask for the size with `buf == NULL` (returns `ZENITH_OK` and sets `*len`),
/// then call again with a buffer that large. A non-NULL `buf` smaller than needed returns
/// `ZENITH_ERR_BUFFER_TOO_SMALL` with `*len` set and `buf` untouched. The state counts the
/// batches the caller has received, not those prefetched.
///
/// # Safety
/// `handle` must be a live handle; `len` must point to a readable and writable `size_t`; `buf`
/// must be NULL or point to at least `*len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn zenith_loader_state(
    handle: *mut ZenithLoader,
    buf: *mut c_char,
    len: *mut usize,
) -> ZenithStatus {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let this = unsafe { loader_arg(handle) }?;
        let len = non_null(len, "len")?;
        let json = serde_json::to_string(&this.loader.state())
            .map_err(|e| FfiError::new(ZENITH_ERR_INTERNAL, e.to_string()))?;
        let needed = json.len() + 1;
        // SAFETY: `len` is non-NULL, readable and writable per the caller's contract.
        let capacity = unsafe { len.replace(needed) };
        if buf.is_null() {
            return Ok(ZENITH_OK);
        }
        if capacity < needed {
            return Err(FfiError::new(
                ZENITH_ERR_BUFFER_TOO_SMALL,
                format!("state needs {needed} bytes, the buffer has {capacity}"),
            ));
        }
        // SAFETY: `buf` has at least `capacity >= needed` writable bytes; the JSON holds no NUL.
        unsafe {
            std::ptr::copy_nonoverlapping(json.as_ptr(), buf.cast::<u8>(), json.len());
            buf.add(json.len()).write(0);
        }
        Ok(ZENITH_OK)
    })
}

/// Restores a state from `zenith_loader_state`: the next `zenith_loader_next` continues right
/// after the last batch delivered when it was saved, with no row repeated or lost (also under
/// another `num_workers` or `world_size`). A running epoch is stopped first.
///
/// Errors: `ZENITH_ERR_INVALID_ARG` for malformed JSON or a state of another dataset or shuffle
/// setting; the loader is then unchanged except that a running epoch was stopped.
///
/// # Safety
/// `handle` must be a live handle; `state_json` a NUL-terminated string valid for the call.
#[no_mangle]
pub unsafe extern "C" fn zenith_loader_restore(
    handle: *mut ZenithLoader,
    state_json: *const c_char,
) -> ZenithStatus {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let this = unsafe { loader_arg(handle) }?;
        // SAFETY: forwarded caller contract.
        let text = unsafe { str_arg(state_json, "state_json") }?;
        let state: LoaderState = serde_json::from_str(text).map_err(|e| {
            FfiError::new(
                ZENITH_ERR_INVALID_ARG,
                format!("invalid argument `state_json`: {e}"),
            )
        })?;
        this.running = None;
        this.loader.load_state(&state)?;
        Ok(ZENITH_OK)
    })
}

/// Stops the loader's threads and frees the handle; NULL is a no-op. Batches already exported
/// stay valid until released.
///
/// # Safety
/// `handle` must be NULL or a live handle from `zenith_loader_new`, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn zenith_loader_free(handle: *mut ZenithLoader) -> ZenithStatus {
    guard(|| {
        if !handle.is_null() {
            // SAFETY: a live handle is a Box leaked by zenith_loader_new, freed once per contract.
            drop(unsafe { Box::from_raw(handle) });
        }
        Ok(ZENITH_OK)
    })
}
