//! The Validator's rules for job names, paths and commands, for hosts that check input before
//! they submit a job. The rules are those of `zenith_jobs::validation`, unchanged.

use std::ffi::c_char;

use zenith_jobs::validation::{self, ValidationError};

use crate::status::{guard, str_arg, FfiError, ZenithStatus, ZENITH_ERR_VALIDATION, ZENITH_OK};

fn verdict(result: Result<(), ValidationError>) -> Result<ZenithStatus, FfiError> {
    result
        .map(|()| ZENITH_OK)
        .map_err(|e| FfiError::new(ZENITH_ERR_VALIDATION, e.to_string()))
}

/// Checks a job name: 1–256 characters, each an ASCII letter, digit, `-` or `_`.
///
/// Returns `ZENITH_OK` for a valid name, `ZENITH_ERR_VALIDATION` with the broken rule in
/// `zenith_last_error()` for an invalid one, and `ZENITH_ERR_INVALID_ARG` for NULL or invalid UTF-8.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string valid for the call.
#[no_mangle]
pub unsafe extern "C" fn zenith_validate_job_name(name: *const c_char) -> ZenithStatus {
    // SAFETY: forwarded caller contract.
    guard(|| verdict(validation::validate_name(unsafe { str_arg(name, "name") }?)))
}

/// Checks a path: non-empty, at most 4096 bytes and no `..` component (a C string has no NUL).
///
/// Returns `ZENITH_OK`, `ZENITH_ERR_VALIDATION` or `ZENITH_ERR_INVALID_ARG` as
/// `zenith_validate_job_name` does.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string valid for the call.
#[no_mangle]
pub unsafe extern "C" fn zenith_validate_path(path: *const c_char) -> ZenithStatus {
    // SAFETY: forwarded caller contract.
    guard(|| verdict(validation::validate_path(unsafe { str_arg(path, "path") }?)))
}

/// Checks a command line: non-empty, at most 65536 bytes, and none of the shell metacharacter
/// sequences `$(`, backtick, `&&`, `||`, `;`, `|`, `>`, `<` nor `..` (commands run as argv,
/// never through a shell). For an argv, pass its arguments joined by single spaces.
///
/// Returns `ZENITH_OK`, `ZENITH_ERR_VALIDATION` or `ZENITH_ERR_INVALID_ARG` as
/// `zenith_validate_job_name` does.
///
/// # Safety
/// `command` must be NULL or a NUL-terminated string valid for the call.
#[no_mangle]
pub unsafe extern "C" fn zenith_validate_command(command: *const c_char) -> ZenithStatus {
    // SAFETY: forwarded caller contract.
    guard(|| {
        verdict(validation::validate_command(&[unsafe {
            str_arg(command, "command")
        }?]))
    })
}
