//! Small-dataset cache: a repeated `read` of unchanged files is served from memory. Entries are
//! keyed by the request and validated against each file's size and modification time, so a
//! changed file is always re-read. Least recently used entries leave first.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use arrow_array::RecordBatch;

/// Default budget: 100 MB, or `ZENITH_CACHE_BYTES`.
pub const DEFAULT_CACHE_BYTES: usize = 100_000_000;

/// Identity of a file's contents as far as the cache is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    path: PathBuf,
    size: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    /// Reads the stamp of a file (size, mtime).
    pub fn of(path: &std::path::Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        Ok(FileStamp {
            path: path.to_path_buf(),
            size: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

struct Entry {
    key: String,
    stamps: Vec<FileStamp>,
    batches: Vec<RecordBatch>,
    bytes: usize,
}

struct Cache {
    limit: usize,
    used: usize,
    entries: Vec<Entry>, // most recently used last
    hits: u64,
    misses: u64,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let limit = std::env::var("ZENITH_CACHE_BYTES")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_CACHE_BYTES);
        Mutex::new(Cache {
            limit,
            used: 0,
            entries: Vec::new(),
            hits: 0,
            misses: 0,
        })
    })
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    cache().lock().unwrap_or_else(|p| p.into_inner())
}

/// Returns the cached batches for `key` if every file still has the same stamp.
pub fn get(key: &str, stamps: &[FileStamp]) -> Option<Vec<RecordBatch>> {
    let mut c = lock();
    let pos = c.entries.iter().position(|e| e.key == key);
    match pos {
        Some(i) if c.entries[i].stamps == stamps => {
            let entry = c.entries.remove(i);
            let batches = entry.batches.clone();
            c.entries.push(entry);
            c.hits += 1;
            Some(batches)
        }
        Some(i) => {
            let stale = c.entries.remove(i);
            c.used -= stale.bytes;
            c.misses += 1;
            None
        }
        None => {
            c.misses += 1;
            None
        }
    }
}

/// Stores batches under `key` if they fit the budget, evicting the least recently used.
pub fn put(key: String, stamps: Vec<FileStamp>, batches: &[RecordBatch]) {
    let bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let mut c = lock();
    if bytes > c.limit {
        return;
    }
    if let Some(i) = c.entries.iter().position(|e| e.key == key) {
        let old = c.entries.remove(i);
        c.used -= old.bytes;
    }
    while c.used + bytes > c.limit && !c.entries.is_empty() {
        let old = c.entries.remove(0);
        c.used -= old.bytes;
    }
    c.used += bytes;
    c.entries.push(Entry {
        key,
        stamps,
        batches: batches.to_vec(),
        bytes,
    });
}

/// Sets the budget in bytes (0 disables the cache) and evicts down to it.
pub fn set_limit(limit: usize) {
    let mut c = lock();
    c.limit = limit;
    while c.used > c.limit && !c.entries.is_empty() {
        let old = c.entries.remove(0);
        c.used -= old.bytes;
    }
}

/// The cache's budget, use and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Budget in bytes.
    pub limit_bytes: usize,
    /// Bytes held by entries.
    pub used_bytes: usize,
    /// Entries held.
    pub entries: usize,
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads that missed it.
    pub misses: u64,
}

/// The cache's budget, use and counters now.
pub fn stats() -> CacheStats {
    let c = lock();
    CacheStats {
        limit_bytes: c.limit,
        used_bytes: c.used,
        entries: c.entries.len(),
        hits: c.hits,
        misses: c.misses,
    }
}

/// Drops every entry.
pub fn clear() {
    let mut c = lock();
    c.entries.clear();
    c.used = 0;
}
