//! WebDataset tar shards (`.tar`, `.tar.gz`, `.tgz`).
//!
//! A shard is a tar archive whose members are grouped into samples by key: the member path up
//! to the first dot of its file name is the key, the rest (lowercased) is the field, so
//! `train/0001.seg.png` is field `seg.png` of sample `train/0001`. Consecutive members with the
//! same key form one sample, as in the `webdataset` library.
//!
//! Opening a shard indexes it once: the tar headers are walked with the `tar` crate (a seek from
//! header to header over the memory-mapped file; no member data is read except the header of
//! the first `.npy` member of each field, which gives that field's type). Samples are then cut
//! into work units of about [`DEFAULT_UNIT_BYTES`] (at most [`MAX_UNIT_SAMPLES`] samples), so the
//! planner can permute, split and resume shards like any other file. A gzip-compressed shard
//! cannot be read from the middle, so it is one unit, decompressed when that unit is read.
//!
//! Each field becomes one column, decoded in Rust by its last extension: `cls`-like integers to
//! int64, `txt`/`json` to utf8, `npy` to fixed-shape numbers (nested fixed-size lists), images
//! to `uint8 [H, W, 3]` when an image size is configured, and everything else to binary views
//! into the shard's bytes (no payload copy). The first column, `__key__`, holds the sample keys.
//!
//! Corrupt input is located by shard and byte offset. A structural defect (truncated member,
//! unreadable header, a sample missing a field or holding one twice) is found by the index and
//! reported when the unit holding that sample is read, so `on_error="skip"` skips that unit and
//! the rest of the shard stays readable; the same holds for a member that fails to decode.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::BinaryViewBuilder;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, RecordBatchOptions, StringArray, UInt8Array};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::source::image_decode::{decode_rgb_into, is_image_extension};
use crate::source::npy::{self, NpyType};
use crate::source::{DecodeOptions, FileReader, Format, UnitMeta};

/// Name of the column holding each sample's key.
pub const KEY_COLUMN: &str = "__key__";

/// Default target of member bytes per work unit.
pub const DEFAULT_UNIT_BYTES: usize = 1 << 20;

/// Most samples in one work unit (keeps units of tiny samples small enough to shuffle well).
pub const MAX_UNIT_SAMPLES: usize = 1024;

/// Bytes of the first member of an `.npy` field read at open to learn its dtype and shape.
const NPY_HEADER_PREFIX: u64 = 64 * 1024;

/// Extensions whose text is an integer (as in the `webdataset` library's default decoder).
fn is_int_extension(ext: &str) -> bool {
    matches!(
        ext,
        "cls" | "cls2" | "class" | "count" | "index" | "inx" | "id"
    )
}

/// Extensions whose bytes are UTF-8 text.
fn is_text_extension(ext: &str) -> bool {
    matches!(ext, "txt" | "text" | "transcript" | "json" | "jsn")
}

/// True when the path names a gzip-compressed shard (`.tar.gz`, `.tgz`).
pub fn is_gzip_path(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// Splits a member path into (key, field): the key runs up to the first dot of the file name.
/// Paths without a dot in the file name, or with an empty key or field, belong to no sample.
pub fn split_key(path: &str) -> Option<(&str, &str)> {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    let dot = name_start + path[name_start..].find('.')?;
    let (key, field) = (&path[..dot], &path[dot + 1..]);
    if dot == name_start || field.is_empty() {
        return None;
    }
    Some((key, field))
}

/// How a field's bytes become a column.
#[derive(Debug, Clone, PartialEq)]
enum FieldKind {
    Int,
    Text,
    Binary,
    Npy { dtype: NpyType, shape: Vec<usize> },
    Image { height: u32, width: u32 },
}

impl FieldKind {
    fn data_type(&self) -> DataType {
        match self {
            FieldKind::Int => DataType::Int64,
            FieldKind::Text => DataType::Utf8,
            FieldKind::Binary => DataType::BinaryView,
            FieldKind::Npy { dtype, shape } => npy::shaped_type(dtype.arrow(), shape),
            FieldKind::Image { height, width } => {
                npy::shaped_type(DataType::UInt8, &[*height as usize, *width as usize, 3])
            }
        }
    }
}

/// Where one member's data lies in the (decompressed) tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    /// Offset of the member's header block.
    header: u64,
    /// Offset of its first data byte.
    data: u64,
    /// Data bytes.
    size: u64,
}

/// A member as the header walk found it.
#[derive(Debug)]
struct RawMember {
    key: String,
    field: String,
    member: Member,
}

/// The result of walking a shard's headers.
#[derive(Debug, Default)]
struct Scan {
    members: Vec<RawMember>,
    /// First bytes of the first member of each `.npy` field.
    npy_prefixes: HashMap<String, Vec<u8>>,
    /// Where and why the walk stopped early.
    error: Option<(u64, String)>,
    /// One past the last byte the members use.
    end: u64,
}

/// Walks tar entries, recording regular-file members; stops at the first unreadable entry.
fn scan_entries<R: Read>(entries: tar::Entries<'_, R>, stream_len: Option<u64>) -> Scan {
    let mut scan = Scan::default();
    let mut position = 0u64;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                scan.error = Some((position, format!("unreadable tar header: {e}")));
                break;
            }
        };
        let member = Member {
            header: entry.raw_header_position(),
            data: entry.raw_file_position(),
            size: entry.size(),
        };
        position = member.data.saturating_add(member.size.div_ceil(512) * 512);
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some((key, field)) = split_key(&path) else {
            tracing::debug!(path, "tar member outside any sample (no extension)");
            continue;
        };
        let (key, field) = (key.to_string(), field.to_ascii_lowercase());
        let end = member.data.saturating_add(member.size);
        if stream_len.is_some_and(|len| end > len) {
            scan.members.push(RawMember { key, field, member });
            scan.error = Some((
                member.header,
                format!(
                    "truncated tar member {path:?}: {} data bytes announced, the shard ends first",
                    member.size
                ),
            ));
            break;
        }
        if last_extension(&field) == "npy" && !scan.npy_prefixes.contains_key(&field) {
            let mut prefix = Vec::new();
            if let Err(e) = (&mut entry)
                .take(NPY_HEADER_PREFIX)
                .read_to_end(&mut prefix)
            {
                scan.members.push(RawMember { key, field, member });
                scan.error = Some((
                    member.header,
                    format!("cannot read tar member {path:?}: {e}"),
                ));
                break;
            }
            scan.npy_prefixes.insert(field.clone(), prefix);
        }
        scan.end = scan.end.max(end);
        scan.members.push(RawMember { key, field, member });
    }
    scan
}

/// The last dot-separated part of a field (`seg.png` → `png`).
fn last_extension(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

/// Samples of a shard: keys and, per sample and field, the member holding it.
#[derive(Debug)]
struct SampleIndex {
    /// Field names, sorted (the column order after `__key__`).
    fields: Vec<String>,
    keys: Vec<String>,
    /// Header offset of each sample's first member.
    offsets: Vec<u64>,
    /// `keys.len() * fields.len()` entries, sample-major.
    members: Vec<Option<Member>>,
    /// Payload bytes of each sample.
    sizes: Vec<u64>,
    /// Structural defects: sample index → (byte offset, message).
    defects: BTreeMap<usize, (u64, String)>,
}

impl SampleIndex {
    /// Groups scanned members into samples; `keep` filters fields.
    fn build(scan: &Scan, keep: Option<&[String]>) -> SampleIndex {
        let kept = |f: &str| keep.is_none_or(|k| k.iter().any(|x| x == f));
        let mut fields: Vec<String> = scan
            .members
            .iter()
            .map(|m| m.field.clone())
            .filter(|f| kept(f))
            .collect();
        fields.sort();
        fields.dedup();
        let nf = fields.len();
        let mut index = SampleIndex {
            fields,
            keys: Vec::new(),
            offsets: Vec::new(),
            members: Vec::new(),
            sizes: Vec::new(),
            defects: BTreeMap::new(),
        };
        for raw in &scan.members {
            if index.keys.last() != Some(&raw.key) {
                index.keys.push(raw.key.clone());
                index.offsets.push(raw.member.header);
                index.sizes.push(0);
                index.members.extend(std::iter::repeat_n(None, nf));
            }
            let sample = index.keys.len() - 1;
            let Ok(f) = index.fields.binary_search(&raw.field) else {
                continue;
            };
            let slot = &mut index.members[sample * nf + f];
            if slot.is_some() {
                index.defects.entry(sample).or_insert_with(|| {
                    (
                        raw.member.header,
                        format!("sample {:?} holds field {:?} twice", raw.key, raw.field),
                    )
                });
            }
            *slot = Some(raw.member);
            index.sizes[sample] += raw.member.size;
        }
        if let Some((offset, message)) = &scan.error {
            if let Some(last) = index.keys.len().checked_sub(1) {
                index.defects.insert(last, (*offset, message.clone()));
            }
        }
        index
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn member(&self, sample: usize, field: usize) -> Option<Member> {
        self.members[sample * self.fields.len() + field]
    }

    /// Consecutive sample ranges of about `unit_bytes` payload and at most `max_samples`
    /// samples (at least one sample each).
    fn unit_bounds(&self, unit_bytes: usize, max_samples: usize) -> Vec<usize> {
        let mut bounds = vec![0];
        let (mut bytes, mut count) = (0u64, 0usize);
        for (i, &size) in self.sizes.iter().enumerate() {
            bytes += size;
            count += 1;
            if bytes >= unit_bytes as u64 || count >= max_samples {
                bounds.push(i + 1);
                (bytes, count) = (0, 0);
            }
        }
        if count > 0 {
            bounds.push(self.sizes.len());
        }
        bounds
    }
}

/// Where a shard's bytes come from.
enum ShardData {
    /// A plain tar, memory-mapped.
    Mapped(bytes::Bytes),
    /// A gzip-compressed tar (mapped or fetched), decompressed up to `decompressed_len` bytes
    /// when its unit is read.
    Gzip {
        compressed: bytes::Bytes,
        decompressed_len: u64,
    },
}

/// One opened WebDataset shard.
pub struct TarShard {
    path: PathBuf,
    data: ShardData,
    schema: SchemaRef,
    kinds: Vec<FieldKind>,
    index: SampleIndex,
    /// Sample index where each unit starts, plus the end.
    bounds: Vec<usize>,
    units: Vec<UnitMeta>,
    file_bytes: u64,
}

impl TarShard {
    /// Opens and indexes a shard (gzip-compressed when its name ends in `.tar.gz` or `.tgz`).
    pub fn open(path: &Path, options: &DecodeOptions) -> Result<TarShard> {
        Self::from_bytes(path, super::map_file(path)?, options)
    }

    /// Indexes a shard held in memory (a fetched object); `path` names it in errors and
    /// decides gzip by its suffix.
    pub fn from_bytes(
        path: &Path,
        bytes: bytes::Bytes,
        options: &DecodeOptions,
    ) -> Result<TarShard> {
        if let Some((h, w)) = options.image_size {
            if h == 0 || w == 0 {
                return Err(Error::invalid(
                    "image_size",
                    format!("({h}, {w}) must be positive"),
                ));
            }
        }
        let file_bytes = bytes.len() as u64;
        let (data, scan) = if is_gzip_path(path) {
            let decoder = flate2::read::MultiGzDecoder::new(&bytes[..]);
            let mut archive = tar::Archive::new(decoder);
            let entries = archive.entries().map_err(|e| Error::io(path, e))?;
            let scan = scan_entries(entries, None);
            let data = ShardData::Gzip {
                compressed: bytes.clone(),
                decompressed_len: scan.end,
            };
            (data, scan)
        } else {
            let mut archive = tar::Archive::new(Cursor::new(&bytes[..]));
            let entries = archive
                .entries_with_seek()
                .map_err(|e| Error::io(path, e))?;
            let scan = scan_entries(entries, Some(bytes.len() as u64));
            (ShardData::Mapped(bytes.clone()), scan)
        };
        let index = SampleIndex::build(&scan, options.fields.as_deref());
        if index.len() == 0 {
            let (offset, why) = scan.error.clone().unwrap_or((
                0,
                "the shard holds no sample (no member named KEY.FIELD)".into(),
            ));
            return Err(Error::format(path, format!("byte {offset}"), why));
        }
        if let Some(wanted) = &options.fields {
            if let Some(missing) = wanted.iter().find(|f| !index.fields.contains(f)) {
                return Err(Error::schema(
                    path,
                    format!(
                        "field {missing:?} (from fields=) is in no sample; fields here: {}",
                        index.fields.join(", ")
                    ),
                ));
            }
        }
        let mut kinds = Vec::with_capacity(index.fields.len());
        for field in &index.fields {
            let ext = last_extension(field);
            let kind = if is_int_extension(ext) {
                FieldKind::Int
            } else if is_text_extension(ext) {
                FieldKind::Text
            } else if ext == "npy" {
                let prefix = scan.npy_prefixes.get(field).map_or(&[][..], Vec::as_slice);
                let header = npy::parse_header(prefix).map_err(|e| {
                    let first = (0..index.len())
                        .find_map(|s| index.member(s, kinds.len()))
                        .map_or(0, |m| m.header);
                    Error::format(
                        path,
                        format!("byte {first}"),
                        format!("field {field:?}: {e}"),
                    )
                })?;
                FieldKind::Npy {
                    dtype: header.dtype,
                    shape: header.shape,
                }
            } else if let (true, Some((height, width))) =
                (is_image_extension(ext), options.image_size)
            {
                FieldKind::Image { height, width }
            } else {
                FieldKind::Binary
            };
            kinds.push(kind);
        }
        let mut columns = vec![Field::new(KEY_COLUMN, DataType::Utf8, false)];
        columns.extend(
            index
                .fields
                .iter()
                .zip(&kinds)
                .map(|(f, k)| Field::new(f, k.data_type(), false)),
        );
        let bounds = if matches!(data, ShardData::Gzip { .. }) {
            index.unit_bounds(usize::MAX, usize::MAX)
        } else {
            index.unit_bounds(
                options.tar_unit_bytes.unwrap_or(DEFAULT_UNIT_BYTES).max(1),
                MAX_UNIT_SAMPLES,
            )
        };
        let units = bounds
            .windows(2)
            .map(|w| UnitMeta {
                rows: w[1] - w[0],
                bytes: index.sizes[w[0]..w[1]].iter().sum(),
            })
            .collect();
        Ok(TarShard {
            path: path.to_path_buf(),
            data,
            schema: Arc::new(Schema::new(columns)),
            kinds,
            index,
            bounds,
            units,
            file_bytes,
        })
    }

    /// Samples in the shard.
    pub fn num_samples(&self) -> usize {
        self.index.len()
    }

    /// The field names (columns after `__key__`), sorted.
    pub fn fields(&self) -> &[String] {
        &self.index.fields
    }

    fn location(&self, offset: u64) -> String {
        match self.data {
            ShardData::Mapped(_) => format!("byte {offset}"),
            ShardData::Gzip { .. } => format!("byte {offset} of the decompressed tar"),
        }
    }

    /// The tar bytes: the mapping, or the decompressed stream of a gzip shard.
    fn tar_bytes(&self) -> Result<bytes::Bytes> {
        match &self.data {
            ShardData::Mapped(b) => Ok(b.clone()),
            ShardData::Gzip {
                compressed,
                decompressed_len,
            } => {
                let decoder = flate2::read::MultiGzDecoder::new(&compressed[..]);
                let mut out = Vec::with_capacity(usize::try_from(*decompressed_len).unwrap_or(0));
                decoder
                    .take(*decompressed_len)
                    .read_to_end(&mut out)
                    .map_err(|e| {
                        Error::format(
                            &self.path,
                            self.location(out.len() as u64),
                            format!("cannot decompress: {e}"),
                        )
                    })?;
                Ok(bytes::Bytes::from(out))
            }
        }
    }

    fn decode_column(
        &self,
        bytes: &bytes::Bytes,
        field: usize,
        samples: std::ops::Range<usize>,
    ) -> Result<ArrayRef> {
        let name = &self.index.fields[field];
        let n = samples.len();
        let mut members = Vec::with_capacity(n);
        for s in samples.clone() {
            let m = self.index.member(s, field).ok_or_else(|| {
                Error::format(
                    &self.path,
                    self.location(self.index.offsets[s]),
                    format!("sample {:?} has no field {name:?}", self.index.keys[s]),
                )
            })?;
            let data = usize::try_from(m.data)
                .ok()
                .zip(usize::try_from(m.data + m.size).ok());
            let value = data.and_then(|(a, b)| bytes.get(a..b)).ok_or_else(|| {
                Error::format(
                    &self.path,
                    self.location(m.header),
                    format!(
                        "member {}.{name} runs past the end of the shard",
                        self.index.keys[s]
                    ),
                )
            })?;
            members.push((s, m, value));
        }
        let bad = |s: usize, m: Member, why: String| {
            Error::format(
                &self.path,
                self.location(m.header),
                format!("sample {:?} field {name:?}: {why}", self.index.keys[s]),
            )
        };
        Ok(match &self.kinds[field] {
            FieldKind::Binary => binary_views(bytes, &members).map_err(|e| {
                Error::format(
                    &self.path,
                    self.location(self.index.offsets[samples.start]),
                    e,
                )
            })?,
            FieldKind::Text => {
                let mut texts = Vec::with_capacity(n);
                for &(s, m, v) in &members {
                    texts.push(
                        std::str::from_utf8(v)
                            .map_err(|e| bad(s, m, format!("not UTF-8 text: {e}")))?,
                    );
                }
                Arc::new(StringArray::from(texts))
            }
            FieldKind::Int => {
                let mut ints = Vec::with_capacity(n);
                for &(s, m, v) in &members {
                    let text = std::str::from_utf8(v)
                        .map_err(|_| bad(s, m, "not an integer (bytes are not text)".into()))?;
                    ints.push(
                        text.trim().parse::<i64>().map_err(|_| {
                            bad(s, m, format!("not an integer: {:?}", truncate(text)))
                        })?,
                    );
                }
                Arc::new(Int64Array::from(ints))
            }
            FieldKind::Npy { dtype, shape } => {
                let elements: usize = shape.iter().product();
                let mut raw = Vec::with_capacity(n * elements * dtype.size());
                for &(s, m, v) in &members {
                    let header = npy::parse_header(v).map_err(|e| bad(s, m, e))?;
                    if header.dtype != *dtype || header.shape != *shape {
                        return Err(bad(
                            s,
                            m,
                            format!(
                                "npy array is {:?} {:?}, but the field's first array is {dtype:?} {shape:?}; every sample needs one dtype and shape",
                                header.dtype, header.shape
                            ),
                        ));
                    }
                    let values = v
                        .get(header.data_offset..header.data_offset + elements * dtype.size())
                        .ok_or_else(|| {
                            bad(s, m, "npy data is shorter than its header says".into())
                        })?;
                    raw.extend_from_slice(values);
                }
                let flat = npy::values_array(*dtype, &raw);
                npy::wrap_shape(flat, shape).map_err(|e| {
                    Error::format(
                        &self.path,
                        self.location(self.index.offsets[samples.start]),
                        e,
                    )
                })?
            }
            FieldKind::Image { height, width } => {
                let per = *height as usize * *width as usize * 3;
                let mut pixels = vec![0u8; n * per];
                // Images decode in parallel on the calling pool (the loader's decode threads).
                pixels
                    .par_chunks_mut(per)
                    .zip(members.par_iter())
                    .try_for_each(|(out, &(s, m, v))| {
                        decode_rgb_into(v, *height, *width, out).map_err(|e| bad(s, m, e))
                    })?;
                let flat: ArrayRef = Arc::new(UInt8Array::from(pixels));
                npy::wrap_shape(flat, &[*height as usize, *width as usize, 3]).map_err(|e| {
                    Error::format(
                        &self.path,
                        self.location(self.index.offsets[samples.start]),
                        e,
                    )
                })?
            }
        })
    }
}

/// Binary values as views into the shard's bytes (the mapping or the decompressed stream):
/// no payload is copied, and a batch keeps only the blocks its rows point into.
fn binary_views(
    bytes: &bytes::Bytes,
    members: &[(usize, Member, &[u8])],
) -> std::result::Result<ArrayRef, arrow_schema::ArrowError> {
    // View offsets are u32, so blocks stay below 4 GiB; a unit's members usually share one.
    const MAX_BLOCK: u64 = u32::MAX as u64 - 1;
    let buffer = Buffer::from(bytes.clone());
    let mut builder = BinaryViewBuilder::with_capacity(members.len());
    let mut block: Option<(u32, u64)> = None;
    for &(_, m, _) in members {
        let (id, start) = match block {
            Some((id, start)) if m.data + m.size - start <= MAX_BLOCK => (id, start),
            _ => {
                let len = (bytes.len() as u64 - m.data).min(MAX_BLOCK);
                let id =
                    builder.append_block(buffer.slice_with_length(m.data as usize, len as usize));
                block = Some((id, m.data));
                (id, m.data)
            }
        };
        builder.try_append_view(id, (m.data - start) as u32, m.size as u32)?;
    }
    Ok(Arc::new(builder.finish()))
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

impl FileReader for TarShard {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> Format {
        Format::WebDataset
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn units(&self) -> &[UnitMeta] {
        &self.units
    }

    fn read_unit(&self, index: usize, projection: Option<&[usize]>) -> Result<RecordBatch> {
        let (Some(&start), Some(&end)) = (self.bounds.get(index), self.bounds.get(index + 1))
        else {
            return Err(Error::invalid(
                "unit",
                format!("{}: no unit {index}", self.path.display()),
            ));
        };
        if let Some((&s, (offset, message))) = self.index.defects.range(start..end).next() {
            return Err(Error::format(
                &self.path,
                self.location(*offset),
                format!("{message} (sample {:?}, unit {index})", self.index.keys[s]),
            ));
        }
        let all: Vec<usize>;
        let columns = match projection {
            Some(p) => p,
            None => {
                all = (0..self.schema.fields().len()).collect();
                &all
            }
        };
        let bytes = if columns.iter().any(|&c| c > 0) {
            self.tar_bytes()?
        } else {
            bytes::Bytes::new()
        };
        let mut arrays = Vec::with_capacity(columns.len());
        for &c in columns {
            if c == 0 {
                arrays.push(
                    Arc::new(StringArray::from_iter_values(&self.index.keys[start..end]))
                        as ArrayRef,
                );
            } else if c <= self.index.fields.len() {
                arrays.push(self.decode_column(&bytes, c - 1, start..end)?);
            } else {
                return Err(Error::invalid(
                    "projection",
                    format!("{}: no column {c}", self.path.display()),
                ));
            }
        }
        let schema = Arc::new(
            self.schema
                .project(columns)
                .map_err(|e| Error::invalid("projection", e))?,
        );
        let options = RecordBatchOptions::new().with_row_count(Some(end - start));
        RecordBatch::try_new_with_options(schema, arrays, &options)
            .map_err(|e| Error::format(&self.path, format!("unit {index}"), e))
    }

    fn file_bytes(&self) -> u64 {
        self.file_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, UInt8Type};
    use arrow_array::Array;

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn npy_f32(values: &[f32], shape: &str) -> Vec<u8> {
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        while (11 + header.len()) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    #[test]
    fn key_and_field_split_like_webdataset() {
        assert_eq!(split_key("a/b/000.jpg"), Some(("a/b/000", "jpg")));
        assert_eq!(split_key("x.seg.png"), Some(("x", "seg.png")));
        assert_eq!(split_key("dir.v2/s1.cls"), Some(("dir.v2/s1", "cls")));
        assert_eq!(split_key("README"), None);
        assert_eq!(split_key("dir/.hidden"), None);
        assert_eq!(split_key("s1."), None);
    }

    #[test]
    fn groups_members_into_samples_with_typed_columns() {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<(&str, &[u8])> = vec![
            ("d/s0.cls", b"3\n"),
            ("d/s0.TXT", "héllo".as_bytes()),
            ("d/s0.seg.bin", b"\x00\x01"),
            ("d/s1.cls", b"-7"),
            ("d/s1.txt", b"world"),
            ("d/s1.seg.bin", b""),
        ];
        let path = write(dir.path(), "a.tar", &tar_of(&members));
        let shard = TarShard::open(&path, &DecodeOptions::default()).unwrap();
        assert_eq!(shard.fields(), &["cls", "seg.bin", "txt"]);
        let names: Vec<_> = shard
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("__key__".into(), DataType::Utf8),
                ("cls".into(), DataType::Int64),
                ("seg.bin".into(), DataType::BinaryView),
                ("txt".into(), DataType::Utf8),
            ]
        );
        assert_eq!(
            shard.units(),
            &[UnitMeta {
                rows: 2,
                bytes: 2 + 6 + 2 + 2 + 5
            }]
        );
        let batch = shard.read_unit(0, None).unwrap();
        let keys: Vec<_> = batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(keys, vec!["d/s0", "d/s1"]);
        assert_eq!(
            batch
                .column(1)
                .as_primitive::<arrow_array::types::Int64Type>()
                .values(),
            &[3, -7]
        );
        assert_eq!(batch.column(2).as_binary_view().value(0), b"\x00\x01");
        assert_eq!(batch.column(2).as_binary_view().value(1), b"");
        assert_eq!(batch.column(3).as_string::<i32>().value(0), "héllo");
        let projected = shard.read_unit(0, Some(&[1])).unwrap();
        assert_eq!(projected.num_columns(), 1);
        assert_eq!(projected.schema().field(0).name(), "cls");
    }

    #[test]
    fn units_follow_the_byte_target() {
        let dir = tempfile::tempdir().unwrap();
        let payload = [7u8; 100];
        let names: Vec<String> = (0..10).map(|i| format!("{i:03}.bin")).collect();
        let members: Vec<(&str, &[u8])> =
            names.iter().map(|n| (n.as_str(), &payload[..])).collect();
        let path = write(dir.path(), "u.tar", &tar_of(&members));
        let options = DecodeOptions {
            tar_unit_bytes: Some(250),
            ..Default::default()
        };
        let shard = TarShard::open(&path, &options).unwrap();
        let rows: Vec<_> = shard.units().iter().map(|u| u.rows).collect();
        assert_eq!(rows, vec![3, 3, 3, 1]);
        let keys: Vec<String> = (0..4)
            .flat_map(|u| {
                let b = shard.read_unit(u, Some(&[0])).unwrap();
                b.column(0)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(keys, (0..10).map(|i| format!("{i:03}")).collect::<Vec<_>>());
    }

    #[test]
    fn npy_fields_become_shaped_lists() {
        let dir = tempfile::tempdir().unwrap();
        let a = npy_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "(2, 3)");
        let b = npy_f32(&[7.0, 8.0, 9.0, 10.0, 11.0, 12.0], "(2, 3)");
        let c = npy_f32(&[1.0, 2.0, 3.0], "(3,)");
        let path = write(
            dir.path(),
            "n.tar",
            &tar_of(&[("a.npy", &a), ("b.npy", &b)]),
        );
        let shard = TarShard::open(&path, &DecodeOptions::default()).unwrap();
        assert_eq!(
            shard.schema().field(1).data_type(),
            &npy::shaped_type(DataType::Float32, &[2, 3])
        );
        let batch = shard.read_unit(0, None).unwrap();
        let mut values = batch.column(1).clone();
        while let DataType::FixedSizeList(..) = values.data_type() {
            values = values.as_fixed_size_list().values().clone();
        }
        assert_eq!(
            values.as_primitive::<Float32Type>().values()[6..9],
            [7.0, 8.0, 9.0]
        );
        let path = write(
            dir.path(),
            "bad.tar",
            &tar_of(&[("a.npy", &a), ("c.npy", &c)]),
        );
        let err = TarShard::open(&path, &DecodeOptions::default())
            .unwrap()
            .read_unit(0, None)
            .unwrap_err();
        assert!(err.to_string().contains("sample \"c\""), "{err}");
    }

    #[test]
    fn missing_field_is_an_error_with_the_sample_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "m.tar",
            &tar_of(&[("a.cls", b"1"), ("a.txt", b"x"), ("b.cls", b"2")]),
        );
        let shard = TarShard::open(&path, &DecodeOptions::default()).unwrap();
        let err = shard.read_unit(0, None).unwrap_err();
        let Error::Format {
            location, message, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(location, "byte 2048");
        assert!(
            message.contains("sample \"b\" has no field \"txt\""),
            "{message}"
        );
        // Only the requested columns have to be present.
        assert_eq!(shard.read_unit(0, Some(&[0, 1])).unwrap().num_rows(), 2);
        // fields= drops the others entirely.
        let only_cls = TarShard::open(
            &path,
            &DecodeOptions {
                fields: Some(vec!["cls".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(only_cls.read_unit(0, None).unwrap().num_columns(), 2);
    }

    #[test]
    fn truncated_shard_fails_only_its_last_unit() {
        let dir = tempfile::tempdir().unwrap();
        let payload = [1u8; 600];
        let names: Vec<String> = (0..6).map(|i| format!("{i}.bin")).collect();
        let members: Vec<(&str, &[u8])> =
            names.iter().map(|n| (n.as_str(), &payload[..])).collect();
        let mut bytes = tar_of(&members);
        // Cut inside the data of the last member (header at 5 * 1536).
        bytes.truncate(5 * 1536 + 512 + 100);
        let path = write(dir.path(), "t.tar", &bytes);
        let shard = TarShard::open(
            &path,
            &DecodeOptions {
                tar_unit_bytes: Some(1200),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(shard.num_samples(), 6);
        let rows: Vec<_> = shard.units().iter().map(|u| u.rows).collect();
        assert_eq!(rows, vec![2, 2, 2]);
        assert_eq!(shard.read_unit(1, None).unwrap().num_rows(), 2);
        let err = shard.read_unit(2, None).unwrap_err();
        let Error::Format {
            location, message, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(location, "byte 7680");
        assert!(message.contains("truncated"), "{message}");
        // A shard cut inside its first header has no sample at all.
        let path = write(dir.path(), "t0.tar", &tar_of(&members)[..300]);
        assert!(matches!(
            TarShard::open(&path, &DecodeOptions::default()),
            Err(Error::Format { .. })
        ));
    }

    #[test]
    fn gzip_shards_read_like_plain_ones() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let plain = tar_of(&[
            ("a.cls", b"1"),
            ("a.bin", b"xyz"),
            ("b.cls", b"2"),
            ("b.bin", b""),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let path = write(dir.path(), "g.tar.gz", &gz.finish().unwrap());
        let shard = TarShard::open(
            &path,
            &DecodeOptions {
                tar_unit_bytes: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(shard.units().len(), 1);
        let a = shard.read_unit(0, None).unwrap();
        let plain_path = write(dir.path(), "g.tar", &plain);
        let b = TarShard::open(&plain_path, &DecodeOptions::default())
            .unwrap()
            .read_unit(0, None)
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn images_decode_to_fixed_size_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_fn(8, 6, |x, y| image::Rgb([x as u8, y as u8, 200]));
        let mut png = Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let png = png.into_inner();
        let path = write(
            dir.path(),
            "i.tar",
            &tar_of(&[("a.png", &png), ("b.png", b"not an image")]),
        );
        let options = DecodeOptions {
            image_size: Some((6, 8)),
            tar_unit_bytes: Some(1),
            ..Default::default()
        };
        let shard = TarShard::open(&path, &options).unwrap();
        assert_eq!(
            shard.schema().field(1).data_type(),
            &npy::shaped_type(DataType::UInt8, &[6, 8, 3])
        );
        let batch = shard.read_unit(0, None).unwrap();
        let mut values = batch.column(1).clone();
        while let DataType::FixedSizeList(..) = values.data_type() {
            values = values.as_fixed_size_list().values().clone();
        }
        assert_eq!(
            values.as_primitive::<UInt8Type>().values().to_vec(),
            img.into_raw()
        );
        let err = shard.read_unit(1, None).unwrap_err();
        assert!(
            matches!(&err, Error::Format { location, .. } if location == "byte 1024"),
            "{err}"
        );
        // Without an image size the bytes stay raw.
        let raw = TarShard::open(&path, &DecodeOptions::default()).unwrap();
        assert_eq!(raw.schema().field(1).data_type(), &DataType::BinaryView);
        assert_eq!(raw.read_unit(0, None).unwrap().column(1).len(), 2);
    }

    #[test]
    fn duplicate_fields_and_non_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_cksum();
        builder.append_data(&mut header, "d/", &[][..]).unwrap();
        for (name, data) in [("d/a.cls", &b"1"[..]), ("d/a.cls", b"2"), ("d/b.cls", b"3")] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_cksum();
            builder.append_data(&mut h, name, data).unwrap();
        }
        let path = write(dir.path(), "dup.tar", &builder.into_inner().unwrap());
        let shard = TarShard::open(&path, &DecodeOptions::default()).unwrap();
        assert_eq!(shard.num_samples(), 2);
        let err = shard.read_unit(0, None).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
