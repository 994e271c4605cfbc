//! Object storage: one layer over the `object_store` crate for every format. It parses
//! `s3://`, `gs://`, `az://` and `memory://` URLs, builds clients from the environment plus a
//! `storage_options` map, lists prefixes (paginated), and fetches byte ranges with retries,
//! coalescing and several requests in flight.
//!
//! Async code stays in this module: every request runs on one small shared tokio runtime
//! (`runtime`), and the public functions block on it, so decode threads call plain blocking
//! functions and nothing else in the engine sees a future.
//!
//! One concern per file: `options` (the `storage_options` map), `url` (object URLs), `client`
//! (building and caching clients, `memory://` buckets), `object` (reading one object),
//! `ranges` (which ranges are fetched together), `list` (expanding URLs into objects), `stats`
//! (traffic counters), `cache` (the local disk cache of fetched ranges and listings, shared by
//! the processes of a machine) and `errors` (client failures as [`Error::Storage`](crate::Error::Storage)
//! with the client's error as the source).

mod cache;
mod client;
mod errors;
mod hub;
mod list;
mod object;
mod options;
mod ranges;
mod runtime;
mod stats;
mod url;

pub use cache::DiskCache;
pub use client::{memory_bucket, register_memory_bucket, store_for, Store};
pub use list::list_objects;
pub use object::{ObjectReader, ObjectRef};
pub use options::{
    parse_bytes, CacheSettings, StorageOptions, DEFAULT_CACHE_LIMIT, DEFAULT_CONCURRENCY,
    DEFAULT_LISTING_TTL,
};
pub use ranges::{
    coalesce_ranges, split_at_boundaries, split_range, COALESCE_GAP, MAX_REQUEST_BYTES,
};
pub use stats::{stats, StorageStats};
pub use url::{is_url, local_path, ObjectUrl, Scheme};
