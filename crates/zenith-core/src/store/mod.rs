//! Object storage: one layer over the `object_store` crate for every format. It parses
//! `s3://`, `gs://`, `az://` and `memory://` URLs, builds clients from the environment plus a
//! `storage_options` map, lists prefixes (paginated), and fetches byte ranges with retries,
//! coalescing and several requests in flight. Decode threads block on a small shared tokio
//! runtime; nothing else in the engine sees async code.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::error::{Error, Result};

/// Gap below which two wanted ranges are fetched as one request (the bytes between are cheap
/// next to a request's latency, and few enough to keep fetched bytes close to wanted bytes).
pub const COALESCE_GAP: u64 = 64 << 10;
/// Largest single request; bigger ranges are split so that several requests run in parallel.
pub const MAX_REQUEST_BYTES: u64 = 8 << 20;
/// Requests in flight per read unless `storage_options["concurrency"]` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Keys of `storage_options` that Zenith handles itself; everything else goes to the client.
const ZENITH_KEYS: &[&str] = &[
    "max_retries",
    "retry_timeout",
    "retry_init_backoff",
    "retry_max_backoff",
    "concurrency",
];

/// Settings for object storage, like polars' and delta-rs' `storage_options`: client keys
/// (`aws_access_key_id`, `endpoint`, `region`, `allow_http`, `timeout`, ...) override the
/// environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`); `max_retries`, `retry_timeout`,
/// `retry_init_backoff`, `retry_max_backoff` and `concurrency` tune retries and parallelism.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct StorageOptions {
    entries: BTreeMap<String, String>,
}

impl StorageOptions {
    /// Builds options from key/value pairs (keys are case-insensitive).
    pub fn new<K: AsRef<str>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        StorageOptions {
            entries: pairs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into()))
                .collect(),
        }
    }

    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of a key, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    fn client_entries(&self) -> impl Iterator<Item = (&String, &String)> {
        self.entries
            .iter()
            .filter(|(k, _)| !ZENITH_KEYS.contains(&k.as_str()))
    }

    /// Retry policy: object_store's exponential backoff with our defaults (10 retries, 100 ms
    /// doubling up to 15 s, 3 minutes in total), each overridable.
    pub fn retry_config(&self) -> Result<RetryConfig> {
        let mut retry = RetryConfig::default();
        if let Some(v) = self.get("max_retries") {
            retry.max_retries = v.trim().parse().map_err(|_| {
                Error::invalid(
                    "storage_options",
                    format!("max_retries: {v:?} is not a count"),
                )
            })?;
        }
        if let Some(v) = self.get("retry_timeout") {
            retry.retry_timeout = parse_duration("retry_timeout", v)?;
        }
        let mut backoff = BackoffConfig::default();
        if let Some(v) = self.get("retry_init_backoff") {
            backoff.init_backoff = parse_duration("retry_init_backoff", v)?;
        }
        if let Some(v) = self.get("retry_max_backoff") {
            backoff.max_backoff = parse_duration("retry_max_backoff", v)?;
        }
        retry.backoff = backoff;
        Ok(retry)
    }

    /// Requests in flight per read.
    pub fn concurrency(&self) -> Result<usize> {
        match self.get("concurrency") {
            None => Ok(DEFAULT_CONCURRENCY),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    Error::invalid(
                        "storage_options",
                        format!("concurrency: {v:?} is not a positive count"),
                    )
                }),
        }
    }
}

impl fmt::Debug for StorageOptions {
    /// Prints keys only: values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

/// Parses "250ms", "2s", "1m" or a plain number of seconds ("1.5").
fn parse_duration(name: &str, value: &str) -> Result<Duration> {
    let v = value.trim();
    let (number, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else {
        (v, 1.0)
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| Duration::from_secs_f64(x * scale))
        .ok_or_else(|| {
            Error::invalid(
                "storage_options",
                format!("{name}: {value:?} is not a duration like \"2s\" or \"250ms\""),
            )
        })
}

/// The object stores Zenith speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Amazon S3 and S3-compatible servers (`s3://`, `s3a://`).
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage (`az://`, `azure://`, `abfs://`, `abfss://`).
    Azure,
    /// A process-wide in-memory store (`memory://`), for tests and embedding.
    Memory,
}

impl Scheme {
    fn prefix(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azure => "az",
            Scheme::Memory => "memory",
        }
    }
}

/// A parsed object URL: scheme, bucket (or container) and key (possibly a prefix or glob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    /// Which store.
    pub scheme: Scheme,
    /// Bucket or container name.
    pub bucket: String,
    /// Key inside the bucket, without a leading `/`; empty for the whole bucket.
    pub key: String,
}

impl ObjectUrl {
    /// Parses `scheme://bucket/key`; `None` when `spec` is not an object URL (a local path).
    pub fn parse(spec: &str) -> Option<Result<ObjectUrl>> {
        let (scheme, rest) = spec.split_once("://")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "s3" | "s3a" => Scheme::S3,
            "gs" | "gcs" => Scheme::Gcs,
            "az" | "azure" | "abfs" | "abfss" | "adl" => Scheme::Azure,
            "memory" => Scheme::Memory,
            "file" => return None,
            other => {
                return Some(Err(Error::invalid(
                    "path",
                    format!("unsupported URL scheme {other:?} in {spec:?}; expected s3://, gs://, az:// or memory://"),
                )))
            }
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        // Azure's abfs form names the account after '@'; the container is before it.
        let bucket = bucket.split('@').next().unwrap_or_default();
        if bucket.is_empty() {
            return Some(Err(Error::invalid(
                "path",
                format!("{spec:?} names no bucket"),
            )));
        }
        Some(Ok(ObjectUrl {
            scheme,
            bucket: bucket.to_string(),
            key: key.trim_start_matches('/').to_string(),
        }))
    }

    /// The URL of the bucket, `s3://bucket`.
    pub fn bucket_url(&self) -> String {
        format!("{}://{}", self.scheme.prefix(), self.bucket)
    }

    /// The URL of a key in the same bucket.
    pub fn with_key(&self, key: &str) -> String {
        format!("{}/{}", self.bucket_url(), key)
    }
}

/// True when `spec` is an object-store URL rather than a local path (`file://` counts as local).
pub fn is_url(spec: &str) -> bool {
    ObjectUrl::parse(spec).is_some()
}

/// Strips `file://` from a local spec.
pub fn local_path(spec: &str) -> &str {
    spec.strip_prefix("file://").unwrap_or(spec)
}

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

/// The shared runtime that drives every request; two I/O threads are plenty because the
/// work is waiting on sockets, and decode threads block on it. A child process after `fork`
/// builds its own.
fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    static RUNTIME: crate::pool::PerProcess<tokio::runtime::Runtime> =
        crate::pool::PerProcess::new();
    RUNTIME.get_or_try_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zenith-io")
            .enable_all()
            .build()
            .map_err(|e| Error::resource("the object-storage I/O runtime", e))
    })
}

fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(future))
}

/// Runs `future` as a task on the I/O runtime and waits for it. Response bodies then arrive in
/// the same threads that read the sockets, instead of every received chunk waking the
/// (blocked) calling thread.
fn on_runtime<T: Send + 'static>(
    future: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let task = runtime()?.spawn(future);
    block_on(task)?.unwrap_or_else(|e| {
        Err(Error::Storage {
            object: String::new(),
            range: String::new(),
            message: "I/O task failed".to_string(),
            source: Some(Box::new(e)),
        })
    })
}

/// A client for one bucket with its read settings.
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    url: ObjectUrl,
    concurrency: usize,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.url.bucket_url())
    }
}

/// The in-memory bucket `memory://name`, shared by the whole process (created on first use).
pub fn memory_bucket(name: &str) -> Arc<dyn ObjectStore> {
    static BUCKETS: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut buckets = BUCKETS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    buckets
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(object_store::memory::InMemory::new()))
        .clone()
}

/// Environment variables that configure the clients (part of a client's cache key).
fn env_fingerprint() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_")
        })
        .collect();
    vars.sort();
    vars
}

fn config_error(url: &ObjectUrl, e: impl fmt::Display) -> Error {
    Error::invalid("storage_options", format!("{}: {e}", url.bucket_url()))
}

fn build_client(url: &ObjectUrl, options: &StorageOptions) -> Result<Arc<dyn ObjectStore>> {
    let retry = options.retry_config()?;
    let bucket_url = url.bucket_url();
    macro_rules! build {
        ($builder:expr, $key:ty) => {{
            let mut builder = $builder.with_url(bucket_url.clone()).with_retry(retry);
            for (k, v) in options.client_entries() {
                let key: $key = k
                    .parse()
                    .map_err(|_| config_error(url, format!("unknown storage option {k:?}")))?;
                builder = builder.with_config(key, v.clone());
            }
            let store: Arc<dyn ObjectStore> =
                Arc::new(builder.build().map_err(|e| config_error(url, e))?);
            store
        }};
    }
    Ok(match url.scheme {
        Scheme::S3 => build!(
            object_store::aws::AmazonS3Builder::from_env(),
            object_store::aws::AmazonS3ConfigKey
        ),
        Scheme::Gcs => build!(
            object_store::gcp::GoogleCloudStorageBuilder::from_env(),
            object_store::gcp::GoogleConfigKey
        ),
        Scheme::Azure => build!(
            object_store::azure::MicrosoftAzureBuilder::from_env(),
            object_store::azure::AzureConfigKey
        ),
        Scheme::Memory => memory_bucket(&url.bucket),
    })
}

/// The client for a URL's bucket; clients are cached per (bucket, options, environment) so
/// that connections are reused across reads.
pub fn store_for(url: &ObjectUrl, options: &StorageOptions) -> Result<Arc<Store>> {
    type Key = (Scheme, String, StorageOptions, Vec<(String, String)>);
    // Per process: a forked child must not reuse its parent's pooled connections, whose
    // tasks ran on the parent's runtime.
    static CLIENTS: crate::pool::PerProcess<Mutex<HashMap<Key, Arc<Store>>>> =
        crate::pool::PerProcess::new();
    let key: Key = (
        url.scheme,
        url.bucket.clone(),
        options.clone(),
        env_fingerprint(),
    );
    let clients = CLIENTS.get_or_init(Default::default);
    if let Some(store) = clients.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(store.clone());
    }
    let store = Arc::new(Store {
        inner: build_client(url, options)?,
        url: ObjectUrl {
            key: String::new(),
            ..url.clone()
        },
        concurrency: options.concurrency()?,
    });
    clients
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, store.clone());
    Ok(store)
}

/// Maps an object_store error to [`Error::Storage`] naming the object and byte range.
fn storage_error(object: &str, range: Option<&Range<u64>>, e: object_store::Error) -> Error {
    let message = match &e {
        object_store::Error::NotFound { .. } => format!("not found ({e})"),
        _ => e.to_string(),
    };
    Error::Storage {
        object: object.to_string(),
        range: range
            .map(|r| format!(" bytes {}-{}", r.start, r.end))
            .unwrap_or_default(),
        message,
        source: Some(Box::new(e)),
    }
}

fn object_path(url: &ObjectUrl, key: &str) -> Result<ObjectPath> {
    ObjectPath::parse(key)
        .map_err(|e| Error::invalid("path", format!("{}: {e}", url.with_key(key))))
}

/// One object: where it is, how big it is, and the client that reads it.
#[derive(Debug, Clone)]
pub struct ObjectRef {
    store: Arc<Store>,
    path: ObjectPath,
    url: String,
    size: u64,
}

impl ObjectRef {
    /// The object's full URL (`s3://bucket/key`), used in messages and as its path.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Size in bytes, from the listing.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The key inside the bucket.
    pub fn key(&self) -> &str {
        self.path.as_ref()
    }

    async fn fetch(&self, range: Range<u64>) -> Result<Bytes> {
        self.fetch_as(GetRange::Bounded(range.clone()), range).await
    }

    /// Sends `request` for the bytes `range` (the same range, or a suffix that resolves to it).
    async fn fetch_as(&self, request: GetRange, range: Range<u64>) -> Result<Bytes> {
        let options = GetOptions {
            range: Some(request),
            ..Default::default()
        };
        let result = self
            .store
            .inner
            .get_opts(&self.path, options)
            .await
            .map_err(|e| storage_error(&self.url, Some(&range), e))?;
        let bytes = result
            .bytes()
            .await
            .map_err(|e| storage_error(&self.url, Some(&range), e))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(Error::Storage {
                object: self.url.clone(),
                range: format!(" bytes {}-{}", range.start, range.end),
                message: format!("short read: {} bytes returned", bytes.len()),
                source: None,
            });
        }
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Fetches one byte range (blocking).
    pub fn get_range(&self, range: Range<u64>) -> Result<Bytes> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let this = self.clone();
        on_runtime(async move { this.fetch(range).await })
    }

    /// Fetches the last `n` bytes (or the whole object when smaller) with one suffix-range
    /// request (`Range: bytes=-n`).
    pub fn get_suffix(&self, n: u64) -> Result<Bytes> {
        let n = n.min(self.size);
        if n == 0 {
            return Ok(Bytes::new());
        }
        let this = self.clone();
        on_runtime(async move {
            this.fetch_as(GetRange::Suffix(n), this.size - n..this.size)
                .await
        })
    }

    /// Fetches several ranges (blocking): nearby ranges are merged into one request, large ones
    /// split, and up to the store's concurrency requests run at once. Returns one buffer per
    /// merged range with its start offset, sorted by offset.
    pub fn get_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<(u64, Bytes)>> {
        let merged = coalesce_ranges(ranges, COALESCE_GAP);
        let pieces = merged
            .iter()
            .flat_map(|r| split_range(r, MAX_REQUEST_BYTES))
            .collect();
        let mut parts = self.fetch_pieces(pieces)?.into_iter().peekable();
        let mut out: Vec<(u64, Bytes)> = Vec::with_capacity(merged.len());
        for r in &merged {
            // Pieces come in order, so those starting before this range's end are its own.
            let mut chunk: Vec<Bytes> = Vec::new();
            while let Some((_, b)) = parts.next_if(|(start, _)| *start < r.end) {
                chunk.push(b);
            }
            let bytes = match chunk.len() {
                1 => chunk.pop().unwrap_or_default(),
                _ => {
                    let mut buf = BytesMut::with_capacity((r.end - r.start) as usize);
                    for b in chunk {
                        buf.extend_from_slice(&b);
                    }
                    buf.freeze()
                }
            };
            out.push((r.start, bytes));
        }
        Ok(out)
    }

    /// Fetches `pieces` (blocking), up to the store's concurrency at once, as tasks on the I/O
    /// runtime; returns (offset, bytes) per piece in the given order.
    fn fetch_pieces(&self, pieces: Vec<Range<u64>>) -> Result<Vec<(u64, Bytes)>> {
        let this = self.clone();
        let concurrency = self.store.concurrency;
        on_runtime(async move {
            let this = &this;
            futures::stream::iter(pieces)
                .map(|r| async move { this.fetch(r.clone()).await.map(|b| (r.start, b)) })
                .buffered(concurrency)
                .try_collect()
                .await
        })
    }

    /// Like [`ObjectRef::get_ranges`] for disjoint wanted ranges (such as Parquet column
    /// chunks), without joining pieces: a large merged request is cut only where a wanted range
    /// starts, so every wanted range lies inside one returned buffer and no received byte is
    /// copied again. Returns (offset, bytes) per request, sorted by offset.
    pub fn get_ranges_unjoined(&self, ranges: &[Range<u64>]) -> Result<Vec<(u64, Bytes)>> {
        let pieces: Vec<Range<u64>> = coalesce_ranges(ranges, COALESCE_GAP)
            .iter()
            .flat_map(|merged| split_at_boundaries(merged, ranges, MAX_REQUEST_BYTES))
            .collect();
        self.fetch_pieces(pieces)
    }

    /// Fetches the whole object with parallel ranged requests.
    pub fn get_all(&self) -> Result<Bytes> {
        if self.size == 0 {
            return Ok(Bytes::new());
        }
        let mut parts = self.get_ranges(std::slice::from_ref(&(0..self.size)))?;
        Ok(parts.pop().map(|(_, b)| b).unwrap_or_default())
    }

    /// A [`std::io::Read`] over the object that holds at most one `chunk_bytes` buffer at a
    /// time (for streaming formats such as tar shards).
    pub fn reader(&self, chunk_bytes: u64) -> ObjectReader {
        ObjectReader {
            object: self.clone(),
            pos: 0,
            chunk_bytes: chunk_bytes.max(1),
            buffer: Bytes::new(),
        }
    }
}

/// Sequential reader over an object with bounded memory; see [`ObjectRef::reader`].
pub struct ObjectReader {
    object: ObjectRef,
    pos: u64,
    chunk_bytes: u64,
    buffer: Bytes,
}

impl std::io::Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.buffer.is_empty() {
            if self.pos >= self.object.size {
                return Ok(0);
            }
            let end = (self.pos + self.chunk_bytes).min(self.object.size);
            self.buffer = self
                .object
                .get_range(self.pos..end)
                .map_err(std::io::Error::other)?;
            self.pos = end;
        }
        let n = buf.len().min(self.buffer.len());
        buf[..n].copy_from_slice(&self.buffer[..n]);
        bytes::Buf::advance(&mut self.buffer, n);
        Ok(n)
    }
}

/// Merges ranges (in any order) that overlap, or that lie within `max_gap` bytes of each other
/// when the gap adds at most a tenth to the wanted bytes of the merged request, so that the
/// bytes fetched stay within 1.1x of the bytes wanted. Empty ranges are dropped; the result is
/// sorted and disjoint.
pub fn coalesce_ranges(ranges: &[Range<u64>], max_gap: u64) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    // (merged range, wanted bytes inside it)
    let mut out: Vec<(Range<u64>, u64)> = Vec::with_capacity(sorted.len());
    for r in sorted {
        if let Some((last, wanted)) = out.last_mut() {
            if r.start <= last.end {
                *wanted += r.end.saturating_sub(last.end);
                last.end = last.end.max(r.end);
                continue;
            }
            let gap = r.start - last.end;
            let new_wanted = *wanted + (r.end - r.start);
            if gap <= max_gap && gap.saturating_mul(10) <= new_wanted {
                *wanted = new_wanted;
                last.end = r.end;
                continue;
            }
        }
        let len = r.end - r.start;
        out.push((r, len));
    }
    out.into_iter().map(|(r, _)| r).collect()
}

/// Splits a range into consecutive pieces of near-equal size: at most `max_len` bytes each,
/// (requests of a few MiB cost the server least per byte; parallelism comes from several units
/// being read at once).
pub fn split_range(range: &Range<u64>, max_len: u64) -> Vec<Range<u64>> {
    let len = range.end.saturating_sub(range.start);
    if len == 0 {
        return Vec::new();
    }
    let pieces = len.div_ceil(max_len.max(1));
    let at = |i: u64| range.start + (u128::from(len) * u128::from(i) / u128::from(pieces)) as u64;
    (0..pieces).map(|i| at(i)..at(i + 1)).collect()
}

/// Splits `merged` like [`split_range`], but moves each cut to the nearest point where one of
/// `wanted` starts and none of them crosses, so no wanted range is split; a range with no such
/// point inside stays whole.
pub fn split_at_boundaries(
    merged: &Range<u64>,
    wanted: &[Range<u64>],
    max_len: u64,
) -> Vec<Range<u64>> {
    let mut sorted: Vec<&Range<u64>> = wanted
        .iter()
        .filter(|r| r.start < r.end && r.start < merged.end && r.end > merged.start)
        .collect();
    sorted.sort_by_key(|r| r.start);
    let mut safe = Vec::new();
    let mut reach = merged.start;
    for r in sorted {
        if r.start >= reach && r.start > merged.start && r.start < merged.end {
            safe.push(r.start);
        }
        reach = reach.max(r.end);
    }
    let mut cuts: Vec<u64> = split_range(merged, max_len)
        .iter()
        .skip(1)
        .filter_map(|p| {
            let i = safe.partition_point(|&c| c < p.start);
            let below = i.checked_sub(1).map(|j| safe[j]);
            let above = safe.get(i).copied();
            match (below, above) {
                (Some(b), Some(a)) => Some(if p.start - b <= a - p.start { b } else { a }),
                (b, a) => b.or(a),
            }
        })
        .collect();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = merged.start;
    for cut in cuts {
        if cut > start {
            out.push(start..cut);
            start = cut;
        }
    }
    if merged.end > start {
        out.push(start..merged.end);
    }
    out
}

/// True for a listed name that Zenith skips like a hidden file (`.x`, `_SUCCESS`).
fn is_hidden_key(relative: &str) -> bool {
    relative
        .split('/')
        .any(|part| part.starts_with('.') || part.starts_with('_'))
}

/// Listed objects sorted by key; none is an [`Error::EmptySource`] naming `spec`.
fn sorted_non_empty(mut found: Vec<ObjectRef>, spec: &str) -> Result<Vec<ObjectRef>> {
    if found.is_empty() {
        return Err(Error::EmptySource {
            path: spec.to_string(),
        });
    }
    found.sort_by(|a, b| a.key().cmp(b.key()));
    Ok(found)
}

/// Expands one object URL into the objects it names, sorted by key: a key that exists is
/// itself; a key ending in `/` (or any other key with objects below it) is every non-hidden
/// object below it; a key with `*`, `?` or `[` is a glob over the listing of its literal prefix.
pub fn list_objects(spec: &str, options: &StorageOptions) -> Result<Vec<ObjectRef>> {
    let url = match ObjectUrl::parse(spec) {
        Some(parsed) => parsed?,
        None => {
            return Err(Error::invalid(
                "path",
                format!("{spec:?} is not an object URL"),
            ))
        }
    };
    let store = store_for(&url, options)?;
    let make = |meta: object_store::ObjectMeta| ObjectRef {
        store: store.clone(),
        url: url.with_key(meta.location.as_ref()),
        path: meta.location,
        size: meta.size,
    };
    let glob_at = url.key.find(['*', '?', '[']);
    if let Some(at) = glob_at {
        let pattern = glob::Pattern::new(&url.key)
            .map_err(|e| Error::invalid("path", format!("bad glob {spec:?}: {e}")))?;
        let prefix = url.key[..at].rsplit_once('/').map_or("", |(dir, _)| dir);
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        let found = list_prefix(&store, &url, prefix)?
            .into_iter()
            .filter(|m| pattern.matches_with(m.location.as_ref(), options))
            .filter(|m| !is_hidden_key(m.location.as_ref().get(prefix.len()..).unwrap_or_default()))
            .map(make)
            .collect();
        return sorted_non_empty(found, spec);
    }
    // A prefix with objects below it is a directory; otherwise the key must be an object.
    // Listing first matters: some servers answer a HEAD of a "directory" with a 5xx.
    let key = url.key.trim_end_matches('/');
    let listed = list_prefix(&store, &url, key)?;
    if !listed.is_empty() {
        let found = listed
            .into_iter()
            .filter(|m| !is_hidden_key(m.location.as_ref().get(key.len()..).unwrap_or_default()))
            .map(make)
            .collect();
        return sorted_non_empty(found, spec);
    }
    if key.is_empty() || url.key.ends_with('/') {
        return Err(Error::NotFound {
            path: spec.to_string(),
        });
    }
    let path = object_path(&url, key)?;
    METADATA_REQUESTS.fetch_add(1, Ordering::Relaxed);
    match block_on(store.inner.head(&path))? {
        Ok(meta) => Ok(vec![make(meta)]),
        Err(object_store::Error::NotFound { .. }) => Err(Error::NotFound {
            path: spec.to_string(),
        }),
        Err(e) => Err(storage_error(spec, None, e)),
    }
}

/// Every object under `prefix` (a directory-like prefix; the empty prefix is the bucket);
/// object_store follows continuation tokens, so more than 1000 keys arrive in several pages.
fn list_prefix(
    store: &Store,
    url: &ObjectUrl,
    prefix: &str,
) -> Result<Vec<object_store::ObjectMeta>> {
    let prefix = match prefix.trim_end_matches('/') {
        "" => None,
        p => Some(object_path(url, p)?),
    };
    METADATA_REQUESTS.fetch_add(1, Ordering::Relaxed);
    block_on(store.inner.list(prefix.as_ref()).try_collect::<Vec<_>>())?.map_err(|e| {
        let what = url.with_key(prefix.as_ref().map_or("", |p| p.as_ref()));
        match e {
            object_store::Error::NotFound { .. } => Error::Storage {
                object: what,
                range: String::new(),
                message: format!("bucket {:?} not found: {e}", url.bucket),
                source: Some(Box::new(e)),
            },
            e => storage_error(&what, None, e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = ObjectUrl::parse("s3://bucket/a/b.parquet")
            .unwrap()
            .unwrap();
        assert_eq!(
            (u.scheme, u.bucket.as_str(), u.key.as_str()),
            (Scheme::S3, "bucket", "a/b.parquet")
        );
        let u = ObjectUrl::parse("S3A://bucket").unwrap().unwrap();
        assert_eq!((u.scheme, u.key.as_str()), (Scheme::S3, ""));
        let u = ObjectUrl::parse("gs://b/dir/").unwrap().unwrap();
        assert_eq!(
            (u.scheme, u.key.as_str(), u.with_key("k")),
            (Scheme::Gcs, "dir/", "gs://b/k".to_string())
        );
        let u = ObjectUrl::parse("abfss://container@account.dfs.core.windows.net/x")
            .unwrap()
            .unwrap();
        assert_eq!(
            (u.scheme, u.bucket.as_str(), u.key.as_str()),
            (Scheme::Azure, "container", "x")
        );
        let u = ObjectUrl::parse("memory://t//k").unwrap().unwrap();
        assert_eq!((u.scheme, u.key.as_str()), (Scheme::Memory, "k"));
        assert!(ObjectUrl::parse("data/train.parquet").is_none());
        assert!(ObjectUrl::parse("file:///tmp/x").is_none());
        assert_eq!(local_path("file:///tmp/x"), "/tmp/x");
        assert!(ObjectUrl::parse("ftp://h/x").unwrap().is_err());
        assert!(ObjectUrl::parse("s3:///key").unwrap().is_err());
        assert!(is_url("az://c/k") && !is_url("/tmp/s3:/x"));
    }

    #[test]
    fn coalesces_and_splits_ranges() {
        let merged = coalesce_ranges(&[210..300, 0..50, 1000..1100, 100..200, 40..60, 7..7], 20);
        assert_eq!(merged, vec![0..60, 100..300, 1000..1100]);
        // A gap that would add more than a tenth to the wanted bytes is not fetched.
        assert_eq!(coalesce_ranges(&[0..10, 15..25], 100), vec![0..10, 15..25]);
        assert_eq!(coalesce_ranges(&[0..100, 110..200], 100), vec![0..200]);
        assert_eq!(coalesce_ranges(&[0..10, 2..4], 0), vec![0..10]);
        assert_eq!(
            coalesce_ranges(&[0..10, 10..12, 13..14], 0),
            vec![0..12, 13..14]
        );
        assert!(coalesce_ranges(&[], 5).is_empty());
        assert_eq!(split_range(&(0..10), 4), vec![0..3, 3..6, 6..10]);
        // Cuts move to where a wanted range starts; none splits a wanted range.
        let mib = 1u64 << 20;
        let chunks: Vec<Range<u64>> = (0..8).map(|i| i * mib / 2..(i + 1) * mib / 2).collect();
        let pieces = split_at_boundaries(&(0..4 * mib), &chunks, mib);
        assert_eq!(
            pieces,
            vec![0..mib, mib..2 * mib, 2 * mib..3 * mib, 3 * mib..4 * mib]
        );
        assert_eq!(
            split_at_boundaries(&(0..4 * mib), &chunks, 8 * mib),
            vec![0..4 * mib]
        );
        let odd = [0..mib + 100, mib + 100..3 * mib, 3 * mib..4 * mib];
        let pieces = split_at_boundaries(&(0..4 * mib), &odd, mib);
        assert_eq!(
            pieces,
            vec![0..mib + 100, mib + 100..3 * mib, 3 * mib..4 * mib]
        );
        // One wanted range: no cut inside it.
        assert_eq!(
            split_at_boundaries(&(0..4 * mib), std::slice::from_ref(&(0..4 * mib)), mib),
            vec![0..4 * mib]
        );
        // Overlapping wanted ranges are never cut apart.
        let overlap = [0..3 * mib, 2 * mib..4 * mib];
        assert_eq!(
            split_at_boundaries(&(0..4 * mib), &overlap, mib),
            vec![0..4 * mib]
        );
        assert_eq!(split_range(&(0..9), 4), vec![0..3, 3..6, 6..9]);
        assert_eq!(split_range(&(0..3 * mib), 8 * mib), vec![0..3 * mib]);
        assert_eq!(
            split_range(&(0..3 * mib), mib),
            vec![0..mib, mib..2 * mib, 2 * mib..3 * mib]
        );
        assert_eq!(split_range(&(0..64 * mib), 8 * mib).len(), 8);
        assert_eq!(split_range(&(5..9), 100), vec![5..9]);
        assert!(split_range(&(3..3), 4).is_empty());
        let pieces = split_range(&(7..1_000_003), 1 << 16);
        assert_eq!(pieces.first().map(|r| r.start), Some(7));
        assert_eq!(pieces.last().map(|r| r.end), Some(1_000_003));
        assert!(pieces.windows(2).all(|w| w[0].end == w[1].start));
        assert!(pieces.iter().all(|r| r.end - r.start <= 1 << 16));
    }

    #[test]
    fn options_parse_and_hide_values() {
        let o = StorageOptions::new([
            ("MAX_RETRIES", "3"),
            ("retry_init_backoff", "10ms"),
            ("aws_secret_access_key", "hunter2"),
        ]);
        let retry = o.retry_config().unwrap();
        assert_eq!(retry.max_retries, 3);
        assert_eq!(retry.backoff.init_backoff, Duration::from_millis(10));
        assert!(!format!("{o:?}").contains("hunter2"));
        assert_eq!(
            parse_duration("t", "1.5").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("t", "soon").is_err());
        assert!(StorageOptions::new([("concurrency", "0")])
            .concurrency()
            .is_err());
        let url = ObjectUrl::parse("s3://b").unwrap().unwrap();
        let err = store_for(&url, &StorageOptions::new([("no_such_option", "1")])).unwrap_err();
        assert!(err.to_string().contains("no_such_option"), "{err}");
    }

    #[test]
    fn lists_and_reads_memory_objects() {
        let bucket = memory_bucket("store-test");
        for key in ["d/a.bin", "d/b.bin", "d/_SUCCESS", "d/sub/c.bin", "e.bin"] {
            let payload: Vec<u8> = (0..100u8).collect();
            block_on(bucket.put(&ObjectPath::from(key), payload.into()))
                .unwrap()
                .unwrap();
        }
        let options = StorageOptions::default();
        let keys = |spec: &str| -> Vec<String> {
            list_objects(spec, &options)
                .unwrap()
                .iter()
                .map(|o| o.key().to_string())
                .collect()
        };
        assert_eq!(
            keys("memory://store-test/d"),
            vec!["d/a.bin", "d/b.bin", "d/sub/c.bin"]
        );
        assert_eq!(
            keys("memory://store-test/d/*.bin"),
            vec!["d/a.bin", "d/b.bin"]
        );
        assert_eq!(keys("memory://store-test/e.bin"), vec!["e.bin"]);
        assert!(matches!(
            list_objects("memory://store-test/nope", &options),
            Err(Error::NotFound { .. })
        ));
        let obj = list_objects("memory://store-test/e.bin", &options)
            .unwrap()
            .remove(0);
        assert_eq!(obj.size(), 100);
        assert_eq!(
            obj.get_suffix(8).unwrap().as_ref(),
            &[92, 93, 94, 95, 96, 97, 98, 99]
        );
        let parts = obj.get_ranges(&[50..52, 10..12, 11..13]).unwrap();
        assert_eq!(
            parts,
            vec![
                (10, Bytes::from_static(&[10, 11, 12])),
                (50, Bytes::from_static(&[50, 51]))
            ]
        );
        let parts = obj.get_ranges(&[0..40, 42..80]).unwrap();
        assert_eq!(parts, vec![(0, Bytes::from((0..80u8).collect::<Vec<_>>()))]);
        assert_eq!(obj.get_all().unwrap().len(), 100);
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut obj.reader(7), &mut text).unwrap();
        assert_eq!(text, (0..100u8).collect::<Vec<_>>());
        let err = obj.get_range(90..120).unwrap_err().to_string();
        assert!(
            err.contains("memory://store-test/e.bin bytes 90-120"),
            "{err}"
        );
    }
}
