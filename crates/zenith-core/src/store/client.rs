//! Clients: building an object_store client for a bucket from the environment plus
//! `storage_options`, caching it so connections are reused across reads, and the process-wide
//! in-memory buckets behind `memory://`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::{ClientOptions, ObjectStore};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use super::cache::DiskCache;
use super::hub::Hub;
use super::options::StorageOptions;
use super::url::{ObjectUrl, Scheme};
use crate::error::{Error, Result};

/// A client for one bucket with its read settings.
pub struct Store {
    /// The object_store client.
    pub(super) inner: Arc<dyn ObjectStore>,
    /// The bucket's URL (empty key).
    pub(super) url: ObjectUrl,
    /// Requests in flight per read.
    pub(super) concurrency: usize,
    /// The local disk cache, when `cache_dir` (or `ZENITH_CACHE_DIR`) names one.
    pub(super) cache: Option<Arc<DiskCache>>,
    /// The Hugging Face Hub repository of an `hf://` bucket (its listing API).
    pub(super) hub: Option<Arc<Hub>>,
}

impl Store {
    /// Whether reads pin an object's ETag (sent as `If-Match`, checked on every answer). A
    /// hub's files are not pinned: they are versioned by their blob ids, and their resolve path
    /// redirects to storage with ETags of its own.
    pub(super) fn pins_etags(&self) -> bool {
        self.hub.is_none()
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.url.bucket_url())
    }
}

/// The in-memory buckets by name; not per process, as they own no threads.
fn memory_buckets() -> &'static Mutex<HashMap<String, Arc<dyn ObjectStore>>> {
    static BUCKETS: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    BUCKETS.get_or_init(Default::default)
}

/// The in-memory bucket `memory://name`, shared by the whole process (created on first use).
pub fn memory_bucket(name: &str) -> Arc<dyn ObjectStore> {
    let mut buckets = memory_buckets().lock().unwrap_or_else(|p| p.into_inner());
    buckets
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(object_store::memory::InMemory::new()))
        .clone()
}

/// Serves `memory://name` from `store` from now on; for tests (a store that injects faults)
/// and embedding (a store the host application owns). Objects listed before keep the store
/// they were listed from.
pub fn register_memory_bucket(name: &str, store: Arc<dyn ObjectStore>) {
    // Under the client cache's lock, so no read builds a client from the old bucket meanwhile.
    let cache = clients();
    let mut clients = cache.lock().unwrap_or_else(|p| p.into_inner());
    memory_buckets()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_string(), store);
    clients.retain(|(scheme, bucket, _, _), _| !(*scheme == Scheme::Memory && bucket == name));
}

/// Environment variables that configure the clients (part of a client's cache key).
fn env_fingerprint() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("AWS_")
                || k.starts_with("GOOGLE_")
                || k.starts_with("AZURE_")
                || k.starts_with("HF_")
                || k == "HUGGING_FACE_HUB_TOKEN"
                || k.starts_with("ZENITH_CACHE_")
                || k == "ZENITH_LISTING_TTL"
        })
        .collect();
    vars.sort();
    vars
}

/// An argument error naming the bucket whose client could not be configured.
fn config_error(url: &ObjectUrl, e: impl fmt::Display) -> Error {
    Error::invalid("storage_options", format!("{}: {e}", url.bucket_url()))
}

/// A bucket's client, and its hub repository for `hf://`.
type Client = (Arc<dyn ObjectStore>, Option<Arc<Hub>>);

/// Builds the client for `url`'s bucket: the scheme's builder from the environment, then the
/// client keys of `options` on top. Web files and hub repositories are read by the HTTP client
/// (a hub's files under its `resolve` path, with its token).
fn build_client(url: &ObjectUrl, options: &StorageOptions) -> Result<Client> {
    let retry = options.retry_config()?;
    let mut bucket_url = url.bucket_url();
    let hub = match url.scheme {
        Scheme::HuggingFace => Some(Arc::new(Hub::new(url, options)?)),
        _ => None,
    };
    let mut http_options = ClientOptions::new().with_allow_http(url.scheme == Scheme::Http);
    if let Some(hub) = &hub {
        bucket_url = hub.resolve_base();
        http_options = http_options.with_allow_http(hub.is_plain_http());
        if let Some(token) = hub.token() {
            let mut headers = HeaderMap::new();
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| config_error(url, "the token is not a valid header value"))?;
            headers.insert(AUTHORIZATION, value);
            http_options = http_options.with_default_headers(headers);
        }
    }
    // The hub's endpoint and token are the hub's settings, not the HTTP client's.
    let hub_key = |k: &str| hub.is_some() && matches!(k, "endpoint" | "hf_token");
    macro_rules! build {
        ($builder:expr, $key:ty) => {{
            let mut builder = $builder.with_url(bucket_url.clone()).with_retry(retry);
            for (k, v) in options.client_entries().filter(|(k, _)| !hub_key(k)) {
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
    Ok((
        match url.scheme {
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
            Scheme::HuggingFace | Scheme::Http | Scheme::Https => build!(
                object_store::http::HttpBuilder::new().with_client_options(http_options),
                object_store::ClientConfigKey
            ),
        },
        hub,
    ))
}

/// A client cache key: the bucket, the options and the environment that built the client.
type ClientKey = (Scheme, String, StorageOptions, Vec<(String, String)>);

/// The client cache of this process. Per process: a forked child must not reuse its parent's
/// pooled connections, whose tasks ran on the parent's runtime.
fn clients() -> Arc<Mutex<HashMap<ClientKey, Arc<Store>>>> {
    static CLIENTS: crate::pool::PerProcess<Mutex<HashMap<ClientKey, Arc<Store>>>> =
        crate::pool::PerProcess::new();
    CLIENTS.get_or_init(Default::default)
}

/// The client for a URL's bucket; clients are cached per (bucket, options, environment) so
/// that connections are reused across reads.
pub fn store_for(url: &ObjectUrl, options: &StorageOptions) -> Result<Arc<Store>> {
    let key: ClientKey = (
        url.scheme,
        url.bucket.clone(),
        options.clone(),
        env_fingerprint(),
    );
    let clients = clients();
    let mut clients = clients.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(store) = clients.get(&key) {
        return Ok(store.clone());
    }
    let (inner, hub) = build_client(url, options)?;
    let store = Arc::new(Store {
        inner,
        hub,
        url: ObjectUrl {
            key: String::new(),
            ..url.clone()
        },
        concurrency: options.concurrency()?,
        cache: options.cache_settings()?.map(|s| DiskCache::open(&s)),
    });
    clients.insert(key, store.clone());
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_client_option_is_named() {
        let url = ObjectUrl::parse("s3://b").unwrap().unwrap();
        let err = store_for(&url, &StorageOptions::new([("no_such_option", "1")])).unwrap_err();
        assert!(err.to_string().contains("no_such_option"), "{err}");
    }

    #[test]
    fn registered_bucket_replaces_the_cached_client() {
        let url = ObjectUrl::parse("memory://client-test").unwrap().unwrap();
        let options = StorageOptions::default();
        let first = store_for(&url, &options).unwrap();
        assert!(Arc::ptr_eq(&first, &store_for(&url, &options).unwrap()));
        let replacement: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        register_memory_bucket("client-test", replacement.clone());
        let second = store_for(&url, &options).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(Arc::ptr_eq(&second.inner, &replacement));
        assert!(Arc::ptr_eq(&memory_bucket("client-test"), &replacement));
    }
}
