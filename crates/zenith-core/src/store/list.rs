//! Listing: expanding an object URL (a key, a directory-like prefix or a glob) into the
//! objects it names, skipping hidden keys and sorting by key so every reader sees the same
//! order.

use std::sync::{Arc, OnceLock};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::client::{store_for, Store};
use super::errors::storage_error;
use super::object::ObjectRef;
use super::options::StorageOptions;
use super::runtime::{block_on, on_runtime};
use super::stats::{record_cached_listing, record_metadata};
use super::url::{object_path, ObjectUrl};
use crate::error::{Error, Result};

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

/// One listed object as a cached listing records it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Listed {
    key: String,
    size: u64,
    etag: Option<String>,
    version: String,
}

/// Expands one object URL into the objects it names, sorted by key: a key that exists is
/// itself; a key ending in `/` (or any other key with objects below it) is every non-hidden
/// object below it; a key with `*`, `?` or `[` is a glob over the listing of its literal prefix.
///
/// With a disk cache, the listing is shared by the processes of the machine: one lists (the
/// others wait on its lock) and the rest read what it recorded, for `listing_ttl`.
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
    let Some(cache) = store.cache.clone() else {
        return list_uncached(spec, &url, &store);
    };
    // The same URL on another server is another listing.
    let endpoint = options
        .get("endpoint")
        .map(str::to_string)
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .or_else(|| std::env::var("HF_ENDPOINT").ok())
        .unwrap_or_default();
    let name = format!("{spec}\n{endpoint}");
    let cached = || -> Option<Vec<ObjectRef>> {
        let listed: Vec<Listed> = serde_json::from_slice(&cache.listing(&name)?).ok()?;
        let found = listed
            .into_iter()
            .map(|l| {
                Some(ObjectRef {
                    store: store.clone(),
                    url: url.with_key(&l.key),
                    path: object_path(&url, &l.key).ok()?,
                    size: l.size,
                    etag: Arc::new(l.etag.map(OnceLock::from).unwrap_or_default()),
                    version: l.version,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        record_cached_listing();
        Some(found)
    };
    if let Some(found) = cached() {
        return Ok(found);
    }
    let _lock = cache.lock_listing(&name);
    if let Some(found) = cached() {
        return Ok(found);
    }
    let found = list_uncached(spec, &url, &store)?;
    let listed: Vec<Listed> = found
        .iter()
        .map(|o| Listed {
            key: o.key().to_string(),
            size: o.size,
            etag: o.etag.get().cloned(),
            version: o.version.clone(),
        })
        .collect();
    if let Ok(bytes) = serde_json::to_vec(&listed) {
        cache.store_listing(&name, &bytes);
    }
    Ok(found)
}

/// [`list_objects`] from the store itself.
fn list_uncached(spec: &str, url: &ObjectUrl, store: &Arc<Store>) -> Result<Vec<ObjectRef>> {
    let is_hub = store.hub.is_some();
    let pins = store.pins_etags();
    let make = |meta: object_store::ObjectMeta| ObjectRef {
        store: store.clone(),
        url: url.with_key(meta.location.as_ref()),
        path: meta.location,
        size: meta.size,
        version: match meta.e_tag.as_ref().or(meta.version.as_ref()) {
            Some(v) => v.clone(),
            None => format!("{}@{}", meta.size, meta.last_modified.timestamp_millis()),
        },
        etag: Arc::new(
            meta.e_tag
                .filter(|_| pins)
                .map(OnceLock::from)
                .unwrap_or_default(),
        ),
    };
    if url.scheme.is_web()
        && (url.key.is_empty() || url.key.ends_with('/') || url.key.contains(['*', '?', '[']))
    {
        return Err(Error::invalid(
            "path",
            format!("{spec:?}: a web server cannot be listed; an http(s):// URL names one file (pass a list of URLs, or use hf:// for a Hugging Face dataset)"),
        ));
    }
    let glob_at = url.key.find(['*', '?', '[']);
    if let Some(at) = glob_at {
        let pattern = glob::Pattern::new(&url.key)
            .map_err(|e| Error::invalid("path", format!("bad glob {spec:?}: {e}")))?;
        let prefix = url.key[..at].rsplit_once('/').map_or("", |(dir, _)| dir);
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        let found = list_prefix(store, url, prefix)?
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
    let listed = list_prefix(store, url, key)?;
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
    if is_hub {
        // A file: it is in its folder's listing (the hub has no HEAD of its own for paths).
        let parent = key.rsplit_once('/').map_or("", |(dir, _)| dir);
        let found: Vec<ObjectRef> = list_prefix(store, url, parent)?
            .into_iter()
            .filter(|m| m.location.as_ref() == key)
            .map(make)
            .collect();
        return match found.is_empty() {
            true => Err(Error::NotFound {
                path: spec.to_string(),
            }),
            false => Ok(found),
        };
    }
    let path = object_path(url, key)?;
    record_metadata();
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
    if let Some(hub) = &store.hub {
        let hub = hub.clone();
        let (url, dir) = (url.clone(), prefix.to_string());
        return on_runtime(async move { hub.list(&url, &dir).await });
    }
    if url.scheme.is_web() {
        return Ok(Vec::new());
    }
    let prefix = match prefix.trim_end_matches('/') {
        "" => None,
        p => Some(object_path(url, p)?),
    };
    record_metadata();
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
    use object_store::path::Path as ObjectPath;
    use object_store::ObjectStoreExt;

    use super::*;
    use crate::store::memory_bucket;

    #[test]
    fn lists_memory_objects() {
        let bucket = memory_bucket("store-list-test");
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
            keys("memory://store-list-test/d"),
            vec!["d/a.bin", "d/b.bin", "d/sub/c.bin"]
        );
        assert_eq!(
            keys("memory://store-list-test/d/*.bin"),
            vec!["d/a.bin", "d/b.bin"]
        );
        assert_eq!(keys("memory://store-list-test/e.bin"), vec!["e.bin"]);
        assert!(matches!(
            list_objects("memory://store-list-test/nope", &options),
            Err(Error::NotFound { .. })
        ));
        assert!(is_hidden_key("d/.tmp/x") && is_hidden_key("_SUCCESS") && !is_hidden_key("d/x"));
    }
}
