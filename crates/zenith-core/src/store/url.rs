//! Object URLs: which specs name object storage (`s3://`, `gs://`, `az://`, `memory://`,
//! `hf://`, `http://`, `https://`) and which are local paths, and how a URL splits into scheme,
//! bucket and key. For `hf://datasets/<org>/<name>[@revision]/<path>` the "bucket" is the
//! repository at its revision (`datasets/org/name@main`); for `http(s)://host/path` the host.

use object_store::path::Path as ObjectPath;

use crate::error::{Error, Result};

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
    /// A Hugging Face Hub repository (`hf://datasets/<org>/<name>[@revision]/<path>`).
    HuggingFace,
    /// A file on a web server (`https://`).
    Https,
    /// A file on a web server without TLS (`http://`).
    Http,
}

impl Scheme {
    /// Every store, in the order `zenith.info()` lists them.
    pub const ALL: [Scheme; 7] = [
        Scheme::S3,
        Scheme::Gcs,
        Scheme::Azure,
        Scheme::Memory,
        Scheme::HuggingFace,
        Scheme::Https,
        Scheme::Http,
    ];

    /// The canonical URL scheme, used when printing URLs.
    pub fn prefix(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azure => "az",
            Scheme::Memory => "memory",
            Scheme::HuggingFace => "hf",
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }

    /// True for the schemes without listing (one URL is one file).
    pub fn is_web(self) -> bool {
        matches!(self, Scheme::Http | Scheme::Https)
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
            "hf" => return Some(parse_hub(spec, rest)),
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            "file" => return None,
            other => {
                return Some(Err(Error::invalid(
                    "path",
                    format!("unsupported URL scheme {other:?} in {spec:?}; expected s3://, gs://, az://, hf://, https:// or memory://"),
                )))
            }
        };
        if scheme.is_web() && rest.contains(['?', '#']) {
            return Some(Err(Error::invalid(
                "path",
                format!("{spec:?}: URLs with a query or fragment are not supported"),
            )));
        }
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

/// Parses the part after `hf://`: `datasets/<org>/<name>[@revision]/<path>`. A revision under
/// `refs/` takes three segments (`@refs/convert/parquet`, `@refs/pr/1`); a revision may also
/// be written percent-encoded (`@refs%2Fconvert%2Fparquet`).
fn parse_hub(spec: &str, rest: &str) -> Result<ObjectUrl> {
    let bad = |why: &str| {
        Error::invalid(
            "path",
            format!("{spec:?}: {why}; expected hf://datasets/<org>/<name>[@revision]/<path>"),
        )
    };
    let mut parts = rest.splitn(3, '/');
    let kind = parts.next().unwrap_or_default();
    if kind != "datasets" {
        return Err(bad("only dataset repositories are read"));
    }
    let (org, after) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (name_rev, mut key) = after.split_once('/').unwrap_or((after, ""));
    let (name, revision) = match name_rev.split_once('@') {
        None => (name_rev, "main".to_string()),
        Some((name, "refs")) => {
            // @refs/<kind>/<name>: the revision goes on for two more segments.
            let mut more = key.splitn(3, '/');
            let (a, b) = (
                more.next().unwrap_or_default(),
                more.next().unwrap_or_default(),
            );
            if a.is_empty() || b.is_empty() {
                return Err(bad("a refs/ revision needs two more segments"));
            }
            key = more.next().unwrap_or_default();
            (name, format!("refs/{a}/{b}"))
        }
        Some((name, rev)) => (name, rev.replace("%2F", "/").replace("%2f", "/")),
    };
    if org.is_empty() || name.is_empty() || revision.is_empty() {
        return Err(bad("the repository is incomplete"));
    }
    Ok(ObjectUrl {
        scheme: Scheme::HuggingFace,
        bucket: format!("{kind}/{org}/{name}@{revision}"),
        key: key.trim_start_matches('/').to_string(),
    })
}

/// True when `spec` is an object-store URL rather than a local path (`file://` counts as local).
pub fn is_url(spec: &str) -> bool {
    ObjectUrl::parse(spec).is_some()
}

/// Strips `file://` from a local spec.
pub fn local_path(spec: &str) -> &str {
    spec.strip_prefix("file://").unwrap_or(spec)
}

/// The client's path for `key` in `url`'s bucket; a key object_store rejects is an argument
/// error naming the full URL.
pub(super) fn object_path(url: &ObjectUrl, key: &str) -> Result<ObjectPath> {
    ObjectPath::parse(key)
        .map_err(|e| Error::invalid("path", format!("{}: {e}", url.with_key(key))))
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
        let u = ObjectUrl::parse("hf://datasets/org/name/data/*.parquet")
            .unwrap()
            .unwrap();
        assert_eq!(
            (u.scheme, u.bucket.as_str(), u.key.as_str()),
            (
                Scheme::HuggingFace,
                "datasets/org/name@main",
                "data/*.parquet"
            )
        );
        assert_eq!(u.with_key("a"), "hf://datasets/org/name@main/a");
        let u = ObjectUrl::parse("hf://datasets/o/n@refs/convert/parquet/default/train")
            .unwrap()
            .unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.key.as_str()),
            ("datasets/o/n@refs/convert/parquet", "default/train")
        );
        let u = ObjectUrl::parse("hf://datasets/o/n@refs%2Fpr%2F3")
            .unwrap()
            .unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.key.as_str()),
            ("datasets/o/n@refs/pr/3", "")
        );
        assert!(ObjectUrl::parse("hf://models/o/n/x").unwrap().is_err());
        assert!(ObjectUrl::parse("hf://datasets/o").unwrap().is_err());
        let u = ObjectUrl::parse("https://example.com:8443/d/f.parquet")
            .unwrap()
            .unwrap();
        assert_eq!(
            (u.scheme, u.bucket.as_str(), u.with_key(&u.key)),
            (
                Scheme::Https,
                "example.com:8443",
                "https://example.com:8443/d/f.parquet".to_string()
            )
        );
        assert!(ObjectUrl::parse("https://h/f?sig=1").unwrap().is_err());
        assert!(ObjectUrl::parse("s3:///key").unwrap().is_err());
        assert!(is_url("az://c/k") && !is_url("/tmp/s3:/x"));
    }
}
