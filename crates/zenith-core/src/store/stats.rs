//! Process-wide counters of object-store traffic, so callers can see how many requests and
//! bytes a read cost. The fetch and listing code bump them; [`stats`] reads them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of all object-store traffic of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StorageStats {
    /// GET requests that returned data (a retried request counts once).
    pub requests: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// List pages and HEAD requests.
    pub metadata_requests: u64,
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static METADATA_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the process-wide storage counters.
pub fn stats() -> StorageStats {
    StorageStats {
        requests: REQUESTS.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
        metadata_requests: METADATA_REQUESTS.load(Ordering::Relaxed),
    }
}

/// Counts one GET that returned `bytes` payload bytes.
pub(super) fn record_get(bytes: u64) {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(bytes, Ordering::Relaxed);
}

/// Counts one list page or HEAD request.
pub(super) fn record_metadata() {
    METADATA_REQUESTS.fetch_add(1, Ordering::Relaxed);
}
