//! How client failures become [`Error::Storage`]: the object's URL, the byte range and the
//! client's message, with the client's error kept as the source.

use std::ops::Range;

use crate::error::Error;

/// The ` bytes A-B` suffix that [`Error::Storage`] prints after the object.
pub(super) fn range_text(range: &Range<u64>) -> String {
    format!(" bytes {}-{}", range.start, range.end)
}

/// Maps an object_store error to [`Error::Storage`] naming the object and byte range.
pub(super) fn storage_error(
    object: &str,
    range: Option<&Range<u64>>,
    e: object_store::Error,
) -> Error {
    let message = match &e {
        object_store::Error::NotFound { .. } => format!("not found ({e})"),
        _ => e.to_string(),
    };
    Error::Storage {
        object: object.to_string(),
        range: range.map(range_text).unwrap_or_default(),
        message,
        source: Some(Box::new(e)),
    }
}
