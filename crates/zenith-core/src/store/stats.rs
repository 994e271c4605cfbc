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
    /// Reads served from the local disk cache instead of a request.
    pub cache_hits: u64,
    /// Bytes served from the local disk cache.
    pub cache_bytes: u64,
    /// Listings served from the local disk cache.
    pub cached_listings: u64,
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static METADATA_REQUESTS: AtomicU64 = AtomicU64::new(0);
static CACHE_HITS: AtomicU64 = AtomicU64::new(0);
static CACHE_BYTES: AtomicU64 = AtomicU64::new(0);
static CACHED_LISTINGS: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the process-wide storage counters.
pub fn stats() -> StorageStats {
    StorageStats {
        requests: REQUESTS.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
        metadata_requests: METADATA_REQUESTS.load(Ordering::Relaxed),
        cache_hits: CACHE_HITS.load(Ordering::Relaxed),
        cache_bytes: CACHE_BYTES.load(Ordering::Relaxed),
        cached_listings: CACHED_LISTINGS.load(Ordering::Relaxed),
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

/// Counts one read of `bytes` served from the disk cache.
pub(super) fn record_cache_hit(bytes: u64) {
    CACHE_HITS.fetch_add(1, Ordering::Relaxed);
    CACHE_BYTES.fetch_add(bytes, Ordering::Relaxed);
}

/// Counts one listing served from the disk cache.
pub(super) fn record_cached_listing() {
    CACHED_LISTINGS.fetch_add(1, Ordering::Relaxed);
}
