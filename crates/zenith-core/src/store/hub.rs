//! Hugging Face Hub dataset repositories, `hf://datasets/<org>/<name>[@revision]/<path>`.
//!
//! Files are read through object_store's HTTP client from the hub's `resolve` path
//! (`<endpoint>/datasets/<org>/<name>/resolve/<revision>/<path>`, ranged GETs with its retries;
//! the hub redirects large files to its storage, and the client follows). Listing uses the
//! hub's tree API (`<endpoint>/api/datasets/<org>/<name>/tree/<revision>/<dir>?recursive=true`),
//! following its `Link: <...>; rel="next"` pages. The endpoint and token are read the way
//! `huggingface_hub` reads them: `HF_ENDPOINT` (default `https://huggingface.co`) and `HF_TOKEN`
//! (or `HUGGING_FACE_HUB_TOKEN`), overridden by `storage_options` `endpoint` and `hf_token`.
//!
//! Each file's version (for the disk cache) is its blob id from the tree (the LFS sha256 for
//! large files), so a file changed on the hub is fetched again.

use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::ObjectMeta;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::options::StorageOptions;
use super::url::ObjectUrl;
use crate::error::{Error, Result};

/// The hub everyone uses unless `HF_ENDPOINT` or `endpoint` names another.
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Characters kept as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes each `/`-separated segment of `path`.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|seg| utf8_percent_encode(seg, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// One repository at one revision, and how to reach it.
#[derive(Debug)]
pub struct Hub {
    endpoint: String,
    /// `datasets/<org>/<name>`.
    repo: String,
    revision: String,
    token: Option<String>,
    client: reqwest::Client,
    retries: usize,
    backoff: Duration,
}

/// One entry of the tree API's answer.
#[derive(serde::Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    oid: String,
    lfs: Option<Lfs>,
}

#[derive(serde::Deserialize)]
struct Lfs {
    oid: String,
}

impl Hub {
    /// The repository of `url` (an `hf://` URL) with the endpoint and token from `options`
    /// and the environment.
    pub fn new(url: &ObjectUrl, options: &StorageOptions) -> Result<Hub> {
        let (repo, revision) = url.bucket.split_once('@').unwrap_or((&url.bucket, "main"));
        let setting = |key: &str, vars: &[&str]| {
            options
                .get_or_env(key, vars)
                .filter(|v| !v.trim().is_empty())
        };
        let endpoint = setting("endpoint", &["HF_ENDPOINT"])
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string();
        let token = setting("hf_token", &["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]);
        let retry = options.retry_config()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                Error::resource("the Hugging Face Hub client", std::io::Error::other(e))
            })?;
        Ok(Hub {
            endpoint,
            repo: repo.to_string(),
            revision: revision.to_string(),
            token,
            client,
            retries: retry.max_retries,
            backoff: retry.backoff.init_backoff,
        })
    }

    /// The base URL files are resolved under.
    pub fn resolve_base(&self) -> String {
        format!(
            "{}/{}/resolve/{}",
            self.endpoint,
            self.repo,
            utf8_percent_encode(&self.revision, SEGMENT)
        )
    }

    /// True when the hub is reached without TLS (a local mirror).
    pub fn is_plain_http(&self) -> bool {
        self.endpoint.starts_with("http://")
    }

    /// The token to send, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Every file below `dir` (the whole repository when empty), following the tree API's
    /// pages; a `dir` that is not a folder gives none.
    pub async fn list(&self, url: &ObjectUrl, dir: &str) -> Result<Vec<ObjectMeta>> {
        let mut next = Some(format!(
            "{}/api/{}/tree/{}/{}?recursive=true",
            self.endpoint,
            self.repo,
            utf8_percent_encode(&self.revision, SEGMENT),
            encode_path(dir.trim_matches('/'))
        ));
        let mut found = Vec::new();
        while let Some(page) = next.take() {
            super::stats::record_metadata();
            let Some((body, link)) = self.get_page(url, &page).await? else {
                return Ok(Vec::new());
            };
            let entries: Vec<TreeEntry> = serde_json::from_slice(&body).map_err(|e| {
                hub_error(
                    url,
                    format!("the tree API answered something else than a listing: {e}"),
                )
            })?;
            for entry in entries.into_iter().filter(|e| e.kind == "file") {
                let location = ObjectPath::parse(&entry.path).map_err(|e| {
                    hub_error(
                        url,
                        format!("the hub lists a path {:?} it cannot read: {e}", entry.path),
                    )
                })?;
                found.push(ObjectMeta {
                    location,
                    last_modified: Default::default(),
                    size: entry.size,
                    e_tag: None,
                    version: Some(entry.lfs.map_or(entry.oid, |l| l.oid)),
                });
            }
            next = link.as_deref().and_then(next_link);
        }
        Ok(found)
    }

    /// GETs one listing page with retries: the body and the `Link` header, or `None` when
    /// the folder does not exist.
    async fn get_page(
        &self,
        url: &ObjectUrl,
        page: &str,
    ) -> Result<Option<(bytes::Bytes, Option<String>)>> {
        let mut attempt = 0;
        loop {
            let mut request = self.client.get(page);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let link = response
                            .headers()
                            .get(reqwest::header::LINK)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        match response.bytes().await {
                            Ok(body) => return Ok(Some((body, link))),
                            Err(e) => e.to_string(),
                        }
                    } else if status == reqwest::StatusCode::NOT_FOUND {
                        return Ok(None);
                    } else if status == reqwest::StatusCode::UNAUTHORIZED
                        || status == reqwest::StatusCode::FORBIDDEN
                    {
                        return Err(hub_error(
                            url,
                            format!(
                                "{status} listing {page}: the repository is private or gated; \
                                 set HF_TOKEN (or storage_options hf_token) to a token with access"
                            ),
                        ));
                    } else if status.is_client_error() && status.as_u16() != 429 {
                        return Err(hub_error(url, format!("{status} listing {page}")));
                    } else {
                        format!("{status} listing {page}")
                    }
                }
                Err(e) => format!("listing {page}: {e}"),
            };
            attempt += 1;
            if attempt > self.retries {
                return Err(hub_error(url, failure));
            }
            let wait = self.backoff.saturating_mul(1 << attempt.min(8));
            tokio::time::sleep(wait.min(Duration::from_secs(15))).await;
        }
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

fn hub_error(url: &ObjectUrl, message: String) -> Error {
    Error::Storage {
        object: url.bucket_url(),
        range: String::new(),
        message,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_paths() {
        assert_eq!(
            next_link("<https://h/api/x?cursor=abc>; rel=\"next\""),
            Some("https://h/api/x?cursor=abc".to_string())
        );
        assert_eq!(
            next_link("<https://h/a>; rel=\"prev\", <https://h/b>; rel=\"next\""),
            Some("https://h/b".to_string())
        );
        assert_eq!(next_link("<https://h/a>; rel=\"prev\""), None);
        assert_eq!(
            encode_path("data/a b/c#1.parquet"),
            "data/a%20b/c%231.parquet"
        );
        let url = ObjectUrl::parse("hf://datasets/o/n@refs/convert/parquet/x")
            .unwrap()
            .unwrap();
        let hub = Hub::new(
            &url,
            &StorageOptions::new([("endpoint", "http://127.0.0.1:9/"), ("hf_token", "t")]),
        )
        .unwrap();
        assert_eq!(
            hub.resolve_base(),
            "http://127.0.0.1:9/datasets/o/n/resolve/refs%2Fconvert%2Fparquet"
        );
        assert!(hub.is_plain_http() && hub.token() == Some("t"));
    }
}
