//! The engine over object storage with injected faults: a `FaultyStore` serves `memory://`
//! buckets (through `store::register_memory_bucket`) and fails, truncates or refuses requests
//! on demand, and the tests check through the public API (`read`, `read_many`, `info`,
//! `DataLoader`) that clean reads are exact and that every failure is a typed error naming
//! the object and byte range, with the client's error kept as its source.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use parquet::file::reader::{FileReader, SerializedFileReader};
use zenith_core::store;
use zenith_core::{
    DataLoader, DecodeOptions, Error, ErrorKind, LoaderConfig, OnError, ReadOptions,
};

/// What an armed rule does to a GET it matches.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The request fails with an object_store error.
    Fail,
    /// The request succeeds but its body is one byte short.
    Truncate,
}

/// One armed fault: which GETs it matches and how many more times it fires.
#[derive(Debug)]
struct Rule {
    key: String,
    /// Only requests whose byte range lies inside this one (any request when `None`).
    within: Option<Range<u64>>,
    /// Fires this many more times (always when `None`).
    remaining: Option<usize>,
    fault: Fault,
}

/// An in-memory object store that injects faults into data GETs (HEAD requests and puts pass
/// through) and, when asked, into listings.
#[derive(Debug, Default)]
struct FaultyStore {
    inner: InMemory,
    rules: Mutex<Vec<Rule>>,
    fail_list: AtomicBool,
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore")
    }
}

impl FaultyStore {
    /// A new store serving `memory://name`.
    fn register(name: &str) -> Arc<FaultyStore> {
        let store = Arc::new(FaultyStore::default());
        store::register_memory_bucket(name, store.clone());
        store
    }

    fn put_bytes(&self, key: &str, bytes: &[u8]) {
        let payload = PutPayload::from(bytes.to_vec());
        futures::executor::block_on(self.inner.put(&Path::from(key), payload)).unwrap();
    }

    fn remove(&self, key: &str) {
        futures::executor::block_on(self.inner.delete(&Path::from(key))).unwrap();
    }

    fn arm(&self, key: &str, within: Option<Range<u64>>, remaining: Option<usize>, fault: Fault) {
        self.rules.lock().unwrap().push(Rule {
            key: key.to_string(),
            within,
            remaining,
            fault,
        });
    }

    /// Every GET of `key` inside `range` fails.
    fn fail_within(&self, key: &str, range: Range<u64>) {
        self.arm(key, Some(range), None, Fault::Fail);
    }

    /// The next `n` GETs of `key` fail.
    fn fail_first(&self, key: &str, n: usize) {
        self.arm(key, None, Some(n), Fault::Fail);
    }

    /// Every GET of `key` returns one byte less than asked.
    fn truncate(&self, key: &str) {
        self.arm(key, None, None, Fault::Truncate);
    }

    /// The fault for a GET of `key` for `range`, counting it against its rule.
    fn fault_for(&self, key: &str, range: &Range<u64>) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let rule = rules.iter_mut().find(|r| {
            r.key == key
                && r.remaining != Some(0)
                && r.within
                    .as_ref()
                    .is_none_or(|w| w.start <= range.start && range.end <= w.end)
        })?;
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        Some(rule.fault)
    }
}

fn injected(what: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultyStore",
        source: what.into(),
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            return self.inner.get_opts(location, options).await;
        }
        let size = self.inner.head(location).await?.size;
        let range = match &options.range {
            Some(r) => match r.as_range(size) {
                Ok(r) => r,
                Err(_) => return self.inner.get_opts(location, options).await,
            },
            None => 0..size,
        };
        match self.fault_for(location.as_ref(), &range) {
            None => self.inner.get_opts(location, options).await,
            Some(Fault::Fail) => Err(injected(format!(
                "injected fault on {location} bytes {}-{}",
                range.start, range.end
            ))),
            Some(Fault::Truncate) => {
                let GetResult {
                    payload,
                    meta,
                    range,
                    attributes,
                    extensions,
                } = self.inner.get_opts(location, options).await?;
                let body = GetResult {
                    payload,
                    meta: meta.clone(),
                    range: range.clone(),
                    attributes: attributes.clone(),
                    extensions: extensions.clone(),
                }
                .bytes()
                .await?;
                let short = body.slice(..body.len().saturating_sub(1));
                Ok(GetResult {
                    payload: GetResultPayload::Stream(
                        futures::stream::once(async move { Ok(short) }).boxed(),
                    ),
                    meta,
                    range,
                    attributes,
                    extensions,
                })
            }
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if self.fail_list.load(Ordering::Relaxed) {
            let what = format!("injected listing fault under {prefix:?}");
            return futures::stream::once(async move { Err(injected(what)) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Rows `start..start + n`: `id` and `x = id / 2`.
fn batch(start: i64, n: i64) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(start..start + n));
    let xs: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (start..start + n).map(|i| i as f64 * 0.5),
    ));
    RecordBatch::try_from_iter([("id", ids), ("x", xs)]).unwrap()
}

fn parquet_bytes(b: &RecordBatch, row_group: usize) -> Vec<u8> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, b.schema(), Some(props)).unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
    out
}

fn csv_bytes(b: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    arrow_csv::Writer::new(&mut out).write(b).unwrap();
    out
}

/// The bytes of row group `index`'s column chunks: the one request that reads it.
fn row_group_range(parquet: &[u8], index: usize) -> Range<u64> {
    let reader = SerializedFileReader::new(Bytes::from(parquet.to_vec())).unwrap();
    let rg = reader.metadata().row_group(index);
    let ranges: Vec<(u64, u64)> = rg.columns().iter().map(|c| c.byte_range()).collect();
    let start = ranges.iter().map(|(s, _)| *s).min().unwrap();
    let end = ranges.iter().map(|(s, l)| s + l).max().unwrap();
    start..end
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

fn xs(batches: &[RecordBatch]) -> Vec<f64> {
    batches
        .iter()
        .flat_map(|b| b.column(1).as_primitive::<Float64Type>().values().to_vec())
        .collect()
}

fn loader(spec: &str, on_error: OnError, shuffle: bool) -> DataLoader {
    let config = LoaderConfig {
        batch_size: 64,
        shuffle,
        seed: 7,
        num_workers: Some(2),
        on_error,
        ..Default::default()
    };
    DataLoader::new(&[spec.to_string()], config).unwrap()
}

fn read_err(spec: &str) -> Error {
    zenith_core::read(spec, &ReadOptions::default()).unwrap_err()
}

#[test]
fn clean_reads_are_exact() {
    let bucket = FaultyStore::register("faults-clean");
    bucket.put_bytes("data/a.parquet", &parquet_bytes(&batch(0, 1000), 100));
    bucket.put_bytes("data/b.parquet", &parquet_bytes(&batch(1000, 500), 100));
    bucket.put_bytes("csv/c.csv", &csv_bytes(&batch(0, 300)));

    let got = zenith_core::read(
        "memory://faults-clean/data/a.parquet",
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(ids(&got), (0..1000).collect::<Vec<_>>());
    assert_eq!(
        xs(&got),
        (0..1000).map(|i| i as f64 * 0.5).collect::<Vec<_>>()
    );

    let (schema, got) = zenith_core::read_many(
        &["memory://faults-clean/data/".to_string()],
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(schema.fields().len(), 2);
    assert_eq!(ids(&got), (0..1500).collect::<Vec<_>>());

    let got =
        zenith_core::read("memory://faults-clean/csv/c.csv", &ReadOptions::default()).unwrap();
    assert_eq!(ids(&got), (0..300).collect::<Vec<_>>());
    assert_eq!(
        xs(&got),
        (0..300).map(|i| i as f64 * 0.5).collect::<Vec<_>>()
    );

    let info = zenith_core::info(
        &["memory://faults-clean/data/".to_string()],
        None,
        &DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!(info.rows, 1500);
    let files: Vec<(String, usize, usize)> = info
        .files
        .iter()
        .map(|f| (f.path.to_string_lossy().to_string(), f.rows, f.units))
        .collect();
    assert_eq!(
        files,
        vec![
            ("memory://faults-clean/data/a.parquet".to_string(), 1000, 10),
            ("memory://faults-clean/data/b.parquet".to_string(), 500, 5),
        ]
    );

    let shuffled = loader("memory://faults-clean/data/", OnError::Raise, true);
    let batches: Vec<RecordBatch> = shuffled
        .record_batches()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut got = ids(&batches);
    got.sort_unstable();
    assert_eq!(got, (0..1500).collect::<Vec<_>>());
    assert_eq!(shuffled.stats().skipped_units, 0);
}

#[test]
fn failing_range_read_names_object_and_range() {
    let bucket = FaultyStore::register("faults-range");
    let bytes = parquet_bytes(&batch(0, 1000), 100);
    let range = row_group_range(&bytes, 3);
    bucket.put_bytes("a.parquet", &bytes);
    bucket.fail_within("a.parquet", range.clone());

    let err = read_err("memory://faults-range/a.parquet");
    assert_eq!(err.kind(), ErrorKind::Storage);
    let wanted = format!(
        "storage error on memory://faults-range/a.parquet bytes {}-{}: ",
        range.start, range.end
    );
    assert!(err.to_string().starts_with(&wanted), "{err}");
    assert!(err.to_string().contains("injected fault"), "{err}");
    match &err {
        Error::Storage {
            object, range: r, ..
        } => {
            assert_eq!(object, "memory://faults-range/a.parquet");
            assert_eq!(r, &format!(" bytes {}-{}", range.start, range.end));
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
    let source = std::error::Error::source(&err).expect("the client's error is kept");
    let client = source
        .downcast_ref::<object_store::Error>()
        .expect("an object_store error");
    assert!(matches!(
        client,
        object_store::Error::Generic {
            store: "FaultyStore",
            ..
        }
    ));

    // A request that fails once fails that read only; the next read is exact.
    bucket.put_bytes("b.parquet", &parquet_bytes(&batch(0, 200), 100));
    bucket.fail_first("b.parquet", 1);
    let size = bytes_len(&bucket, "b.parquet");
    let err = read_err("memory://faults-range/b.parquet");
    assert!(
        err.to_string().starts_with(&format!(
            "storage error on memory://faults-range/b.parquet bytes 0-{size}: "
        )),
        "{err}"
    );
    let got =
        zenith_core::read("memory://faults-range/b.parquet", &ReadOptions::default()).unwrap();
    assert_eq!(ids(&got), (0..200).collect::<Vec<_>>());
}

fn bytes_len(bucket: &FaultyStore, key: &str) -> u64 {
    futures::executor::block_on(bucket.inner.head(&Path::from(key)))
        .unwrap()
        .size
}

#[test]
fn truncated_body_is_a_short_read() {
    let bucket = FaultyStore::register("faults-short");
    let csv = csv_bytes(&batch(0, 300));
    bucket.put_bytes("c.csv", &csv);
    bucket.truncate("c.csv");
    let err = read_err("memory://faults-short/c.csv");
    assert_eq!(
        err.to_string(),
        format!(
            "storage error on memory://faults-short/c.csv bytes 0-{}: short read: {} bytes returned",
            csv.len(),
            csv.len() - 1
        )
    );
}

#[test]
fn missing_object_names_the_key() {
    let bucket = FaultyStore::register("faults-missing");
    let err = read_err("memory://faults-missing/nope.parquet");
    match &err {
        Error::NotFound { path } => assert_eq!(path, "memory://faults-missing/nope.parquet"),
        other => panic!("expected not found, got {other:?}"),
    }

    // An object deleted after it was opened: the unit read names it and says not found.
    bucket.put_bytes("gone.parquet", &parquet_bytes(&batch(0, 300), 100));
    let opened = loader(
        "memory://faults-missing/gone.parquet",
        OnError::Raise,
        false,
    );
    bucket.remove("gone.parquet");
    let err = opened
        .record_batches()
        .unwrap()
        .find_map(Result::err)
        .expect("a read error");
    assert_eq!(err.kind(), ErrorKind::Storage);
    let text = err.to_string();
    assert!(
        text.starts_with("storage error on memory://faults-missing/gone.parquet bytes "),
        "{text}"
    );
    assert!(text.contains("not found"), "{text}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn skip_policy_skips_the_failing_unit_only() {
    let bucket = FaultyStore::register("faults-skip");
    let a = parquet_bytes(&batch(0, 1000), 100);
    let bad = row_group_range(&a, 3);
    bucket.put_bytes("a.parquet", &a);
    bucket.put_bytes("b.parquet", &parquet_bytes(&batch(1000, 500), 100));
    bucket.fail_within("a.parquet", bad.clone());

    let skipping = loader("memory://faults-skip/", OnError::Skip, false);
    let batches: Vec<RecordBatch> = skipping
        .record_batches()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut got = ids(&batches);
    got.sort_unstable();
    assert_eq!(got, (0..300).chain(400..1500).collect::<Vec<_>>());
    let stats = skipping.stats();
    assert_eq!((stats.skipped_units, stats.skipped_rows), (1, 100));
    assert_eq!(stats.rows, 1400);
    assert_eq!(stats.skipped.len(), 1);
    assert!(
        stats.skipped[0].starts_with(&format!(
            "storage error on memory://faults-skip/a.parquet bytes {}-{}: ",
            bad.start, bad.end
        )),
        "{:?}",
        stats.skipped
    );

    // The default policy stops with that error instead.
    let raising = loader("memory://faults-skip/", OnError::Raise, false);
    let err = raising
        .record_batches()
        .unwrap()
        .find_map(Result::err)
        .expect("a read error");
    assert_eq!(err.kind(), ErrorKind::Storage);
}

#[test]
fn listing_sees_exactly_the_objects_put() {
    let bucket = FaultyStore::register("faults-list");
    let objects = [
        ("p/a.parquet", 10),
        ("p/b.csv", 20),
        ("p/sub/c.bin", 30),
        ("p/_SUCCESS", 0),
        ("p/.tmp", 5),
        ("pp.bin", 40),
        ("q/d.bin", 50),
    ];
    for (key, len) in objects {
        bucket.put_bytes(key, &vec![7u8; len]);
    }
    let options = zenith_core::StorageOptions::default();
    let listed = |spec: &str| -> Vec<(String, u64)> {
        store::list_objects(spec, &options)
            .unwrap()
            .iter()
            .map(|o| (o.key().to_string(), o.size()))
            .collect()
    };
    let below_p = vec![
        ("p/a.parquet".to_string(), 10),
        ("p/b.csv".to_string(), 20),
        ("p/sub/c.bin".to_string(), 30),
    ];
    assert_eq!(listed("memory://faults-list/p/"), below_p);
    assert_eq!(listed("memory://faults-list/p"), below_p);
    assert_eq!(
        listed("memory://faults-list/p/*.csv"),
        vec![("p/b.csv".to_string(), 20)]
    );
    assert_eq!(
        listed("memory://faults-list/")
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        vec!["p/a.parquet", "p/b.csv", "p/sub/c.bin", "pp.bin", "q/d.bin"]
    );
    assert_eq!(
        listed("memory://faults-list/q/d.bin"),
        vec![("q/d.bin".to_string(), 50)]
    );

    bucket.fail_list.store(true, Ordering::Relaxed);
    let err = store::list_objects("memory://faults-list/p/", &options).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("storage error on memory://faults-list/p: "),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}
