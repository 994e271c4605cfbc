//! Status codes, the thread-local last-error message and the one guard every exported function
//! runs its body in, so that no Rust panic ever unwinds into the host.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Result of every fallible `zenith_*` function. `ZENITH_OK` is 0; after any other code except
/// `ZENITH_END`, `zenith_last_error()` describes what went wrong on the calling thread.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)] // C constant names, exactly as the header spells them
pub enum ZenithStatus {
    /// Success.
    ZENITH_OK = 0,
    /// `zenith_loader_next` only: the epoch is complete and nothing was exported.
    ZENITH_END = 1,
    /// A NULL pointer, invalid UTF-8, malformed JSON, an unknown setting or an out-of-range value.
    ZENITH_ERR_INVALID_ARG = 2,
    /// The source is missing, matches no data file, or cannot be read.
    ZENITH_ERR_IO = 3,
    /// A file's bytes are not valid for its format (corrupt or truncated file).
    ZENITH_ERR_FORMAT = 4,
    /// An unknown column, or files whose schemas disagree.
    ZENITH_ERR_SCHEMA = 5,
    /// Object storage failed after retries.
    ZENITH_ERR_STORAGE = 6,
    /// A job name, path or command broke a validation rule.
    ZENITH_ERR_VALIDATION = 7,
    /// `zenith_loader_state` only: the buffer is too small; the needed size was written back.
    ZENITH_ERR_BUFFER_TOO_SMALL = 8,
    /// The iteration was interrupted or the loader was shut down.
    ZENITH_ERR_INTERRUPTED = 9,
    /// An error of a class this version of the header does not name.
    ZENITH_ERR_INTERNAL = 10,
    /// A Rust panic was caught at the boundary; the library is still usable.
    ZENITH_FFI_PANIC = 11,
    /// The system refused a thread, runtime or memory the call needed (a resource limit).
    ZENITH_ERR_RESOURCE = 12,
}

pub use ZenithStatus::*;

/// A failure on its way to the C caller: the code to return and the message to keep.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) status: ZenithStatus,
    pub(crate) message: String,
}

impl FfiError {
    /// A failure with an explicit code.
    pub(crate) fn new(status: ZenithStatus, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
        }
    }

    /// An invalid-argument failure naming the argument.
    pub(crate) fn invalid(name: &str, message: impl std::fmt::Display) -> Self {
        FfiError::new(
            ZENITH_ERR_INVALID_ARG,
            format!("invalid argument `{name}`: {message}"),
        )
    }
}

impl From<zenith_core::Error> for FfiError {
    fn from(e: zenith_core::Error) -> Self {
        use zenith_core::ErrorKind;
        let status = match e.kind() {
            ErrorKind::Source => ZENITH_ERR_IO,
            ErrorKind::Format => ZENITH_ERR_FORMAT,
            ErrorKind::Schema => ZENITH_ERR_SCHEMA,
            ErrorKind::Storage => ZENITH_ERR_STORAGE,
            ErrorKind::InvalidArgument => ZENITH_ERR_INVALID_ARG,
            ErrorKind::Interrupted => ZENITH_ERR_INTERRUPTED,
            ErrorKind::Resource => ZENITH_ERR_RESOURCE,
            _ => ZENITH_ERR_INTERNAL,
        };
        FfiError::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `message` as this thread's last error (interior NULs are replaced).
pub(crate) fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // During thread teardown the slot may be gone; losing the message then is harmless.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = text;
        }
    });
}

/// The pointer `zenith_last_error` hands out: this thread's message, or "" when there is none.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| {
            slot.try_borrow()
                .map(|s| s.as_ptr())
                .unwrap_or(c"".as_ptr())
        })
        .unwrap_or(c"".as_ptr())
}

/// Runs an entry point's body: clears the last error, maps an `Err` to its code and message, and
/// turns a panic into `ZENITH_FFI_PANIC` instead of unwinding into the caller.
pub(crate) fn guard(body: impl FnOnce() -> Result<ZenithStatus, FfiError>) -> ZenithStatus {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(payload) => {
            let what = zenith_core::error::panic_message(payload.as_ref());
            set_last_error(&format!("internal panic: {what}"));
            // Dropping the payload runs foreign code; a panic there must not escape either.
            if let Err(nested) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(nested);
            }
            ZENITH_FFI_PANIC
        }
    }
}

/// Runs an infallible entry point that returns a value, with `fallback` on panic.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            if let Err(nested) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(nested);
            }
            fallback
        }
    }
}

/// Borrows a C string argument, rejecting NULL and invalid UTF-8.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::invalid(name, "is NULL"));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|e| {
        FfiError::invalid(
            name,
            format!("is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

/// Like [`str_arg`], but NULL means "not given".
///
/// # Safety
/// As for [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, FfiError> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { str_arg(ptr, name) }.map(Some)
    }
}

/// Rejects a NULL pointer argument.
pub(crate) fn non_null<T>(ptr: *mut T, name: &str) -> Result<*mut T, FfiError> {
    if ptr.is_null() {
        Err(FfiError::invalid(name, "is NULL"))
    } else {
        Ok(ptr)
    }
}
