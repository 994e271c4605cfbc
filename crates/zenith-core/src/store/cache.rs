//! The local disk cache of remote objects, shared by every process of the machine that names
//! the same folder (`cache_dir`).
//!
//! What is cached is what was fetched: each request's byte range of one version of one object
//! is a file `objects/<xx>/<url hash>/<version hash>/<start>-<end>`. A later read of a range
//! inside a cached one is served from the file (mapped, or read when small) without a request.
//! The version is the object's ETag from the listing (or its size and modification time), so an
//! object that changes is fetched again; older versions of it are removed when a new one is
//! first cached. A file `url` beside the versions holds the object's URL, so two URLs whose
//! hashes collide never share entries.
//!
//! Writes are atomic: bytes go to a `.tmp-*` file that is renamed into place when complete, so
//! a process killed mid-write leaves a temporary file (removed by a later scan), never an entry
//! read as valid; an entry whose length does not match its name is ignored and removed.
//! Concurrent readers of a missing range take an advisory lock on `<start>-<end>.lock` before
//! fetching and look again once they hold it: the first downloads, the others find the entry.
//!
//! The cache keeps to `cache_limit`: when the bytes written by this process push its estimate
//! of the total over the limit, one process at a time scans the cache and removes the least
//! recently used entries (by modification time, which a hit refreshes) down to nine tenths of
//! the limit. Listings are cached too, under `listings/`, for `listing_ttl`, so that the ranks
//! of one node list a prefix once.
//!
//! Failing cache I/O (a full disk, a read-only folder) never fails a read: the bytes are
//! fetched as without a cache, and one warning names the folder.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::options::CacheSettings;
use super::stats::record_cache_hit;

/// Entries below this size are read into memory; larger ones are mapped.
const READ_BELOW: u64 = 256 * 1024;

/// A hit refreshes an entry's modification time (its recency) at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(10);

/// Temporary files older than this are left by killed writers and removed by scans.
const STALE_TEMP: Duration = Duration::from_secs(600);

/// A stable 64-bit hash as 16 hex digits (file names must not change between runs).
fn hash_hex(text: &str) -> String {
    format!("{:016x}", twox_hash::XxHash64::oneshot(0, text.as_bytes()))
}

/// `start-end`, the name of a cached range.
fn range_name(range: &Range<u64>) -> String {
    format!("{}-{}", range.start, range.end)
}

/// The range a cache file name stands for (`None` for locks, temporaries and others).
fn parse_range_name(name: &str) -> Option<Range<u64>> {
    let (start, end) = name.split_once('-')?;
    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
    (start < end).then_some(start..end)
}

/// One cache folder as seen by this process.
#[derive(Debug)]
pub struct DiskCache {
    settings: CacheSettings,
    /// Bytes of entries: a scan's total plus what this process wrote since (`None`: not
    /// scanned yet).
    used: Mutex<Option<u64>>,
    /// Object folders already prepared (created, URL checked, older versions removed).
    prepared: Mutex<HashMap<PathBuf, bool>>,
    /// Numbers temporary files.
    counter: AtomicU64,
    /// Set once a cache failure was reported.
    warned: AtomicBool,
}

impl DiskCache {
    /// The cache for `settings`, one per folder and limit in this process.
    pub fn open(settings: &CacheSettings) -> Arc<DiskCache> {
        static CACHES: OnceLock<Mutex<HashMap<CacheSettings, Arc<DiskCache>>>> = OnceLock::new();
        let mut caches = CACHES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        caches
            .entry(settings.clone())
            .or_insert_with(|| {
                Arc::new(DiskCache {
                    settings: settings.clone(),
                    used: Mutex::new(None),
                    prepared: Mutex::new(HashMap::new()),
                    counter: AtomicU64::new(0),
                    warned: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// The cache's folder.
    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    /// Reports the first cache failure of this process (later ones are alike).
    fn warn(&self, what: &str, e: &std::io::Error) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                cache = %self.settings.dir.display(),
                "disk cache disabled for some reads: {what}: {e}"
            );
        }
    }

    /// The folder of one version of one object, created and checked; `None` when the cache
    /// cannot hold it (a hash collision with another URL, or the folder cannot be written).
    pub fn entry(&self, url: &str, version: &str) -> Option<Entry<'_>> {
        let object_hash = hash_hex(url);
        let object_dir = self
            .settings
            .dir
            .join("objects")
            .join(&object_hash[..2])
            .join(&object_hash);
        let dir = object_dir.join(hash_hex(version));
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        let usable = match prepared.get(&dir) {
            Some(&usable) => usable,
            None => {
                let usable = self.prepare(&object_dir, &dir, url);
                prepared.insert(dir.clone(), usable);
                usable
            }
        };
        usable.then_some(Entry { cache: self, dir })
    }

    /// Creates `dir`, records `url` beside it (or checks the one recorded) and removes the
    /// object's other versions.
    fn prepare(&self, object_dir: &Path, dir: &Path, url: &str) -> bool {
        if let Err(e) = fs::create_dir_all(dir) {
            self.warn("creating a cache folder", &e);
            return false;
        }
        let url_file = object_dir.join("url");
        match fs::read_to_string(&url_file) {
            Ok(recorded) => {
                if recorded != url {
                    return false;
                }
            }
            Err(_) => {
                if let Err(e) = self.write_atomic(object_dir, &url_file, url.as_bytes()) {
                    self.warn("recording an object's URL", &e);
                    return false;
                }
            }
        }
        if let Ok(versions) = fs::read_dir(object_dir) {
            for version in versions.flatten() {
                let path = version.path();
                if path.is_dir() && path != dir {
                    let _ = fs::remove_dir_all(&path);
                }
            }
        }
        true
    }

    /// Writes `bytes` to `path` through a temporary file in `dir` renamed into place.
    fn write_atomic(&self, dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        let result = (|| {
            let mut file = File::create(&temp)?;
            file.write_all(bytes)?;
            drop(file);
            fs::rename(&temp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Adds `bytes` written by this process to the estimate, evicting when over the limit.
    fn account(&self, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let total = match *used {
            Some(u) => u + bytes,
            None => self.scan().iter().map(|e| e.size).sum(),
        };
        *used = Some(total);
        if total > self.settings.limit {
            if let Some(after) = self.evict() {
                *used = Some(after);
            }
        }
    }

    /// Every entry of the cache, removing temporaries left by killed writers on the way.
    fn scan(&self) -> Vec<ScannedEntry> {
        let mut found = Vec::new();
        let now = SystemTime::now();
        let read = |dir: &Path| fs::read_dir(dir).into_iter().flatten().flatten();
        for fan in read(&self.settings.dir.join("objects")) {
            for object in read(&fan.path()) {
                for version in read(&object.path()) {
                    for file in read(&version.path()) {
                        let name = file.file_name();
                        let name = name.to_string_lossy();
                        let Ok(meta) = file.metadata() else { continue };
                        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                        if name.starts_with(".tmp-") {
                            if now.duration_since(modified).unwrap_or_default() > STALE_TEMP {
                                let _ = fs::remove_file(file.path());
                            }
                        } else if parse_range_name(&name).is_some() {
                            found.push(ScannedEntry {
                                path: file.path(),
                                size: meta.len(),
                                modified,
                            });
                        }
                    }
                }
            }
        }
        found
    }

    /// Removes the least recently used entries down to nine tenths of the limit and returns
    /// the bytes left; `None` when another process is evicting already.
    fn evict(&self) -> Option<u64> {
        let lock = File::create(self.settings.dir.join("evict.lock")).ok()?;
        lock.try_lock().ok()?;
        let mut entries = self.scan();
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        let target = self.settings.limit / 10 * 9;
        if total > target {
            entries.sort_by_key(|e| e.modified);
            for e in entries {
                if total <= target {
                    break;
                }
                if fs::remove_file(&e.path).is_ok() {
                    total -= e.size;
                    let _ = fs::remove_file(e.path.with_extension("lock"));
                }
            }
        }
        Some(total)
    }

    /// The cached listing `name`, when one younger than `listing_ttl` exists.
    pub fn listing(&self, name: &str) -> Option<Vec<u8>> {
        if self.settings.listing_ttl.is_zero() {
            return None;
        }
        let path = self.listing_path(name);
        let age = fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())?;
        (age <= self.settings.listing_ttl)
            .then(|| fs::read(&path).ok())
            .flatten()
    }

    /// Holds the lock of listing `name` (`None` when listings are not cached or the lock
    /// cannot be taken).
    pub fn lock_listing(&self, name: &str) -> Option<File> {
        if self.settings.listing_ttl.is_zero() {
            return None;
        }
        let dir = self.settings.dir.join("listings");
        fs::create_dir_all(&dir).ok()?;
        lock_file(&dir.join(format!("{}.lock", hash_hex(name))))
    }

    /// Records listing `name`.
    pub fn store_listing(&self, name: &str, bytes: &[u8]) {
        if self.settings.listing_ttl.is_zero() {
            return;
        }
        let dir = self.settings.dir.join("listings");
        let result = fs::create_dir_all(&dir)
            .and_then(|()| self.write_atomic(&dir, &self.listing_path(name), bytes));
        if let Err(e) = result {
            self.warn("recording a listing", &e);
        }
    }

    fn listing_path(&self, name: &str) -> PathBuf {
        self.settings
            .dir
            .join("listings")
            .join(format!("{}.json", hash_hex(name)))
    }
}

/// An entry found by a scan.
struct ScannedEntry {
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

/// The cached ranges of one version of one object.
pub struct Entry<'a> {
    cache: &'a DiskCache,
    dir: PathBuf,
}

impl Entry<'_> {
    /// The bytes of `range` from a cached range that holds it.
    pub fn read(&self, range: &Range<u64>) -> Option<Bytes> {
        let exact = self.dir.join(range_name(range));
        if let Some(bytes) = self.read_file(&exact, range.clone(), range) {
            return Some(bytes);
        }
        let covering = fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .filter_map(|f| Some((parse_range_name(f.file_name().to_str()?)?, f.path())))
            .find(|(r, _)| r.start <= range.start && range.end <= r.end)?;
        self.read_file(&covering.1, covering.0, range)
    }

    /// `wanted` out of the file `path` that holds `held`; a file of the wrong length is
    /// removed.
    fn read_file(&self, path: &Path, held: Range<u64>, wanted: &Range<u64>) -> Option<Bytes> {
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        if meta.len() != held.end - held.start {
            let _ = fs::remove_file(path);
            return None;
        }
        let now = SystemTime::now();
        if meta
            .modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > TOUCH_EVERY)
        {
            let _ = file.set_modified(now);
        }
        let at = (wanted.start - held.start) as usize..(wanted.end - held.start) as usize;
        let bytes = if meta.len() < READ_BELOW {
            let mut buf = Vec::with_capacity(meta.len() as usize);
            std::io::Read::read_to_end(&mut &file, &mut buf).ok()?;
            Bytes::from(buf)
        } else {
            // SAFETY: cache files are never written in place (only created by rename and
            // removed), so the mapping's bytes do not change while it lives.
            let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
            Bytes::from_owner(map)
        };
        (bytes.len() as u64 == held.end - held.start).then(|| {
            record_cache_hit(at.len() as u64);
            bytes.slice(at)
        })
    }

    /// Holds the fetch lock of `range` until dropped (`None` when it cannot be taken).
    pub fn lock(&self, range: &Range<u64>) -> Option<File> {
        lock_file(&self.dir.join(format!("{}.lock", range_name(range))))
    }

    /// Caches `bytes` as `range` (not when larger than the whole cache).
    pub fn write(&self, range: &Range<u64>, bytes: &[u8]) {
        let size = bytes.len() as u64;
        if size > self.cache.settings.limit {
            return;
        }
        match self
            .cache
            .write_atomic(&self.dir, &self.dir.join(range_name(range)), bytes)
        {
            Ok(()) => self.cache.account(size),
            Err(e) => {
                // A version folder removed by another process (a newer version, or eviction)
                // is prepared again on the next read.
                self.cache
                    .prepared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&self.dir);
                self.cache.warn("writing an entry", &e);
            }
        }
    }
}

/// Holds an exclusive advisory lock on the file `path` (created if missing) until the returned
/// file is dropped; `None` when it cannot be taken.
fn lock_file(path: &Path) -> Option<File> {
    let lock = File::create(path).ok()?;
    lock.lock().ok()?;
    Some(lock)
}

/// Ranges of `pieces` sorted and deduplicated, in the order locks are taken (one order for
/// every process, so two readers never wait on each other's locks in a cycle).
pub fn lock_order(pieces: &[Range<u64>], missing: &[usize]) -> Vec<usize> {
    let mut seen = HashSet::new();
    let mut order: Vec<usize> = missing
        .iter()
        .copied()
        .filter(|&i| seen.insert((pieces[i].start, pieces[i].end)))
        .collect();
    order.sort_by_key(|&i| (pieces[i].start, pieces[i].end));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, limit: u64) -> CacheSettings {
        CacheSettings {
            dir: dir.to_path_buf(),
            limit,
            listing_ttl: Duration::from_secs(60),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("zenith-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn serves_covered_ranges_and_replaces_versions() {
        let dir = temp_dir("ranges");
        let cache = DiskCache::open(&settings(&dir, 1 << 30));
        let entry = cache.entry("s3://b/k", "etag-1").unwrap();
        assert!(entry.read(&(0..10)).is_none());
        let payload: Vec<u8> = (0..100u8).collect();
        entry.write(&(0..100), &payload);
        assert_eq!(entry.read(&(0..100)).unwrap().as_ref(), &payload[..]);
        assert_eq!(entry.read(&(20..30)).unwrap().as_ref(), &payload[20..30]);
        assert!(entry.read(&(90..110)).is_none());
        // A damaged entry (wrong length) is not served and is removed.
        fs::write(entry.dir.join("200-300"), b"short").unwrap();
        assert!(entry.read(&(200..300)).is_none());
        assert!(!entry.dir.join("200-300").exists());
        // A new version replaces the old one.
        let old_dir = entry.dir.clone();
        let entry = cache.entry("s3://b/k", "etag-2").unwrap();
        assert!(!old_dir.exists() && entry.read(&(0..10)).is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn evicts_least_recently_used() {
        let dir = temp_dir("evict");
        let cache = DiskCache::open(&settings(&dir, 2500));
        let entry = cache.entry("s3://b/e", "v").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..3u64 {
            entry.write(&(i * 1000..(i + 1) * 1000), &[i as u8; 1000]);
            let file = File::options()
                .write(true)
                .open(entry.dir.join(range_name(&(i * 1000..(i + 1) * 1000))))
                .unwrap();
            file.set_modified(old + Duration::from_secs(i)).unwrap();
        }
        // The third write makes 3000 bytes > 2500: the oldest entry goes (2000 <= 2250 left).
        let present: Vec<bool> = (0..3u64)
            .map(|i| entry.read(&(i * 1000..(i + 1) * 1000)).is_some())
            .collect();
        assert_eq!(present, vec![false, true, true]);
        // Larger than the whole cache: not kept.
        entry.write(&(5000..8000), &[7; 3000]);
        assert!(entry.read(&(5000..8000)).is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn colliding_urls_are_not_shared_and_temporaries_are_not_entries() {
        let dir = temp_dir("collide");
        let cache = DiskCache::open(&settings(&dir, 1 << 20));
        let entry = cache.entry("s3://b/x", "v").unwrap();
        // Pretend another URL hashed to this folder.
        fs::write(entry.dir.parent().unwrap().join("url"), "s3://b/other").unwrap();
        let fresh = DiskCache {
            settings: settings(&dir, 1 << 20),
            used: Mutex::new(None),
            prepared: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        };
        assert!(fresh.entry("s3://b/x", "v").is_none());
        fs::write(entry.dir.join(".tmp-1-0"), b"partial").unwrap();
        assert!(fresh.scan().is_empty());
        assert_eq!(parse_range_name("10-20"), Some(10..20));
        assert_eq!(parse_range_name("10-20.lock"), None);
        assert_eq!(parse_range_name("20-10"), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
