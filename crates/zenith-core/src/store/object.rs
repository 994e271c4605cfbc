//! One object and its reads: ranged GETs with short-read checks, suffix reads for footers,
//! many ranges at once (coalesced, split and run concurrently on the I/O runtime), and a
//! bounded-memory sequential reader for streaming formats.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange};

use super::cache::lock_order;
use super::client::Store;
use super::errors::{range_text, storage_error};
use super::ranges::{
    coalesce_ranges, split_at_boundaries, split_range, COALESCE_GAP, MAX_REQUEST_BYTES,
};
use super::runtime::on_runtime;
use super::stats::record_get;
use crate::error::{Error, Result};

/// One object: where it is, how big it is, and the client that reads it.
#[derive(Debug, Clone)]
pub struct ObjectRef {
    /// The client of the object's bucket.
    pub(super) store: Arc<Store>,
    /// The key as the client spells it.
    pub(super) path: ObjectPath,
    /// The full URL, for messages.
    pub(super) url: String,
    /// Size in bytes, from the listing.
    pub(super) size: u64,
    /// The ETag from the listing or, where the listing gives none (some S3-compatible servers,
    /// web files), the one the first GET answered with; shared by the clones of this object.
    /// Later GETs send it as `If-Match` and check the ETag they are answered with, so an object
    /// replaced since fails instead of mixing two versions (a server that ignores `If-Match`
    /// included); not for stores that do not pin ([`Store::pins_etags`]).
    pub(super) etag: Arc<OnceLock<String>>,
    /// What identifies this version of the object in the disk cache: the ETag, or the size
    /// and modification time when the store gives no ETag.
    pub(super) version: String,
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

    /// Sends a bounded GET for `range`.
    async fn fetch(&self, range: Range<u64>) -> Result<Bytes> {
        self.fetch_as(GetRange::Bounded(range.clone()), range).await
    }

    /// Sends `request` for the bytes `range` (the same range, or a suffix that resolves to it).
    async fn fetch_as(&self, request: GetRange, range: Range<u64>) -> Result<Bytes> {
        let pinned = self.etag.get().cloned();
        let changed =
            |etag: &str, source: Option<Box<dyn std::error::Error + Send + Sync>>| Error::Storage {
                object: self.url.clone(),
                range: range_text(&range),
                message: format!(
                    "the object changed since it was listed (ETag {etag} no longer matches)"
                ),
                source,
            };
        let options = GetOptions {
            range: Some(request),
            if_match: pinned.clone(),
            ..Default::default()
        };
        let result = self
            .store
            .inner
            .get_opts(&self.path, options)
            .await
            .map_err(|e| match e {
                object_store::Error::Precondition { .. } => {
                    changed(pinned.as_deref().unwrap_or_default(), Some(Box::new(e)))
                }
                e => storage_error(&self.url, Some(&range), e),
            })?;
        if let Some(tag) = result
            .meta
            .e_tag
            .as_ref()
            .filter(|_| self.store.pins_etags())
        {
            let pinned = self.etag.get_or_init(|| tag.clone());
            if pinned != tag {
                return Err(changed(pinned, None));
            }
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|e| storage_error(&self.url, Some(&range), e))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(Error::Storage {
                object: self.url.clone(),
                range: range_text(&range),
                message: format!("short read: {} bytes returned", bytes.len()),
                source: None,
            });
        }
        record_get(bytes.len() as u64);
        Ok(bytes)
    }

    /// Fetches one byte range (blocking).
    pub fn get_range(&self, range: Range<u64>) -> Result<Bytes> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        if self.store.cache.is_some() {
            let mut parts = self.read_pieces(vec![range])?;
            return Ok(parts.pop().map(|(_, b)| b).unwrap_or_default());
        }
        self.get_uncached(range)
    }

    /// Fetches the last `n` bytes (or the whole object when smaller) with one suffix-range
    /// request (`Range: bytes=-n`).
    pub fn get_suffix(&self, n: u64) -> Result<Bytes> {
        let n = n.min(self.size);
        if n == 0 {
            return Ok(Bytes::new());
        }
        if self.store.cache.is_some() {
            return self.get_range(self.size - n..self.size);
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
        let mut parts = self.read_pieces(pieces)?.into_iter().peekable();
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
        self.read_pieces(pieces)
    }

    /// Reads `pieces` (blocking) from the disk cache where it holds them, fetching the rest:
    /// the missing pieces are locked (in one order for every process), looked up again, and
    /// those still missing fetched together and cached. Without a cache, fetches them all.
    fn read_pieces(&self, pieces: Vec<Range<u64>>) -> Result<Vec<(u64, Bytes)>> {
        let Some(cache) = &self.store.cache else {
            return self.fetch_pieces(pieces);
        };
        let Some(entry) = cache.entry(&self.url, &self.version) else {
            return self.fetch_pieces(pieces);
        };
        let mut found: Vec<Option<Bytes>> = pieces.iter().map(|r| entry.read(r)).collect();
        let missing: Vec<usize> = (0..pieces.len()).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            let order = lock_order(&pieces, &missing);
            let _locks: Vec<_> = order.iter().map(|&i| entry.lock(&pieces[i])).collect();
            let mut fetch = Vec::new();
            for &i in &order {
                match entry.read(&pieces[i]) {
                    Some(bytes) => found[i] = Some(bytes),
                    None => fetch.push(i),
                }
            }
            let fetched = self.fetch_pieces(fetch.iter().map(|&i| pieces[i].clone()).collect())?;
            for (&i, (_, bytes)) in fetch.iter().zip(fetched) {
                entry.write(&pieces[i], &bytes);
                found[i] = Some(bytes);
            }
            // A piece asked for twice was looked up once.
            for &i in &missing {
                if found[i].is_none() {
                    found[i] = entry.read(&pieces[i]);
                }
            }
        }
        pieces
            .iter()
            .zip(found)
            .map(|(r, bytes)| match bytes {
                Some(b) => Ok((r.start, b)),
                None => self.get_uncached(r.clone()).map(|b| (r.start, b)),
            })
            .collect()
    }

    /// Fetches one range without the cache (with no cache, or a piece the cache lost
    /// meanwhile).
    fn get_uncached(&self, range: Range<u64>) -> Result<Bytes> {
        let this = self.clone();
        on_runtime(async move { this.fetch(range).await })
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

#[cfg(test)]
mod tests {
    use object_store::path::Path as ObjectPath;
    use object_store::ObjectStoreExt;

    use super::*;
    use crate::store::runtime::block_on;
    use crate::store::{list_objects, memory_bucket, StorageOptions};

    #[test]
    fn reads_memory_objects() {
        let bucket = memory_bucket("store-object-test");
        let payload: Vec<u8> = (0..100u8).collect();
        block_on(bucket.put(&ObjectPath::from("e.bin"), payload.into()))
            .unwrap()
            .unwrap();
        let obj = list_objects(
            "memory://store-object-test/e.bin",
            &StorageOptions::default(),
        )
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
            err.contains("memory://store-object-test/e.bin bytes 90-120"),
            "{err}"
        );
    }

    #[test]
    fn an_object_replaced_after_listing_is_an_error() {
        let bucket = memory_bucket("store-object-etag");
        let key = ObjectPath::from("v.bin");
        block_on(bucket.put(&key, vec![1u8; 64].into()))
            .unwrap()
            .unwrap();
        let obj = list_objects(
            "memory://store-object-etag/v.bin",
            &StorageOptions::default(),
        )
        .unwrap()
        .remove(0);
        assert_eq!(obj.get_range(0..4).unwrap().as_ref(), &[1, 1, 1, 1]);
        block_on(bucket.put(&key, vec![2u8; 64].into()))
            .unwrap()
            .unwrap();
        let err = obj.get_range(0..4).unwrap_err().to_string();
        assert!(
            err.contains("memory://store-object-etag/v.bin bytes 0-4")
                && err.contains("changed since it was listed"),
            "{err}"
        );
    }
}
