//! `storage_options`: the key/value settings a caller passes for object storage. This module
//! owns their parsing (retry policy, concurrency, durations) and which keys Zenith keeps for
//! itself, so that the client builder only ever sees the client's own keys.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use object_store::{BackoffConfig, RetryConfig};

use crate::error::{Error, Result};

/// Requests in flight per read unless `storage_options["concurrency"]` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Keys of `storage_options` that Zenith handles itself; everything else goes to the client.
const ZENITH_KEYS: &[&str] = &[
    "max_retries",
    "retry_timeout",
    "retry_init_backoff",
    "retry_max_backoff",
    "concurrency",
    "cache_dir",
    "cache_limit",
    "listing_ttl",
    "hf_token",
];

/// Bytes the disk cache may hold when neither `cache_limit` nor `ZENITH_CACHE_LIMIT` says.
pub const DEFAULT_CACHE_LIMIT: u64 = 100_000_000_000;

/// How long a cached listing serves later readers unless `listing_ttl` says otherwise.
pub const DEFAULT_LISTING_TTL: Duration = Duration::from_secs(60);

/// Where and how much the local disk cache of remote objects keeps; see [`crate::store`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheSettings {
    /// The cache's folder, shared by every process that names it.
    pub dir: std::path::PathBuf,
    /// Bytes of cached data above which the least recently used entries are evicted.
    pub limit: u64,
    /// How long a listing written by one process serves the others (zero: never cached).
    pub listing_ttl: Duration,
}

/// Settings for object storage, like polars' and delta-rs' `storage_options`: client keys
/// (`aws_access_key_id`, `endpoint`, `region`, `allow_http`, `timeout`, ...) override the
/// environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`); `max_retries`, `retry_timeout`,
/// `retry_init_backoff`, `retry_max_backoff` and `concurrency` tune retries and parallelism;
/// `cache_dir`, `cache_limit` and `listing_ttl` set up the local disk cache (defaults from
/// `ZENITH_CACHE_DIR`, `ZENITH_CACHE_LIMIT` and `ZENITH_LISTING_TTL`).
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

    /// The value of `key`, else of the first of the environment variables `vars` that is set.
    pub fn get_or_env(&self, key: &str, vars: &[&str]) -> Option<String> {
        self.get(key)
            .map(str::to_string)
            .or_else(|| vars.iter().find_map(|v| std::env::var(v).ok()))
    }

    /// The entries meant for the object_store client builder.
    pub(super) fn client_entries(&self) -> impl Iterator<Item = (&String, &String)> {
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

impl StorageOptions {
    /// The disk cache's settings: `cache_dir` (or `ZENITH_CACHE_DIR`; an empty value turns
    /// the cache off), `cache_limit` (or `ZENITH_CACHE_LIMIT`, default 100 GB) and
    /// `listing_ttl` (or `ZENITH_LISTING_TTL`, default 60 s). `None` when no folder is named.
    pub fn cache_settings(&self) -> Result<Option<CacheSettings>> {
        let setting = |key: &str, var: &str| self.get_or_env(key, &[var]);
        let dir = match setting("cache_dir", "ZENITH_CACHE_DIR") {
            Some(d) if !d.trim().is_empty() => std::path::PathBuf::from(d.trim()),
            _ => return Ok(None),
        };
        let limit = match setting("cache_limit", "ZENITH_CACHE_LIMIT") {
            Some(v) => parse_bytes("cache_limit", &v)?,
            None => DEFAULT_CACHE_LIMIT,
        };
        let listing_ttl = match setting("listing_ttl", "ZENITH_LISTING_TTL") {
            Some(v) => parse_duration("listing_ttl", &v)?,
            None => DEFAULT_LISTING_TTL,
        };
        Ok(Some(CacheSettings {
            dir,
            limit,
            listing_ttl,
        }))
    }
}

/// Parses a size: "200GB", "1.5GiB", "500MB", "64kb" or a plain number of bytes.
pub fn parse_bytes(name: &str, value: &str) -> Result<u64> {
    let v = value.trim();
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => f64::NAN,
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .map(|x| x * scale)
        .filter(|x| x.is_finite() && *x >= 0.0 && *x < 1.8e19)
        .map(|x| x.round() as u64)
        .ok_or_else(|| {
            Error::invalid(
                "storage_options",
                format!("{name}: {value:?} is not a size like \"200GB\" or \"512MiB\""),
            )
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse_bytes("l", "200GB").unwrap(), 200_000_000_000);
        assert_eq!(parse_bytes("l", "1.5 KiB").unwrap(), 1536);
        assert_eq!(parse_bytes("l", "4096").unwrap(), 4096);
        assert!(parse_bytes("l", "lots").is_err() && parse_bytes("l", "5 XB").is_err());
        let cache = StorageOptions::new([("cache_dir", "/tmp/c"), ("cache_limit", "1MB")])
            .cache_settings()
            .unwrap()
            .unwrap();
        assert_eq!(
            (cache.limit, cache.listing_ttl),
            (1_000_000, DEFAULT_LISTING_TTL)
        );
        assert_eq!(
            StorageOptions::new([("cache_dir", "")])
                .cache_settings()
                .unwrap(),
            None
        );
    }
}
