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
//!
//! The pieces: `scan` walks the tar headers, `samples` groups the members into samples and
//! units, `decode` turns one field's members into a column; this module opens shards and
//! reads units.

mod decode;
mod samples;
mod scan;

use std::io::{Cursor, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::source::{DecodeOptions, FileReader, Format, UnitMeta};
use decode::{DecodeError, FieldKind, MemberBytes};
use samples::SampleIndex;
pub use scan::{is_gzip_path, split_key};
use scan::{last_extension, scan_entries, Scan};

/// Name of the column holding each sample's key.
pub const KEY_COLUMN: &str = "__key__";

/// Default target of member bytes per work unit.
pub const DEFAULT_UNIT_BYTES: usize = 1 << 20;

/// Most samples in one work unit (keeps units of tiny samples small enough to shuffle well).
pub const MAX_UNIT_SAMPLES: usize = 1024;

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
        check_image_size(options.image_size)?;
        let file_bytes = bytes.len() as u64;
        let (data, scan) = scan_shard(path, bytes)?;
        let index = SampleIndex::build(&scan, options.fields.as_deref());
        check_fields(path, &scan, &index, options.fields.as_deref())?;
        let kinds = field_kinds(path, &scan, &index, options.image_size)?;
        // The scan read every header; units fault in the members they read.
        if let ShardData::Mapped(bytes) = &data {
            super::release_pages(bytes);
        }
        let bounds = if matches!(data, ShardData::Gzip { .. }) {
            // A gzip stream cannot be read from the middle: the shard is one unit.
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
            schema: shard_schema(&index.fields, &kinds),
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

    /// The samples of unit `index`, once its samples are known to be whole.
    fn unit_samples(&self, index: usize) -> Result<Range<usize>> {
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
        Ok(start..end)
    }

    /// Column `c` of the schema over `samples`: the keys, or field `c - 1`.
    fn read_column(
        &self,
        bytes: &bytes::Bytes,
        c: usize,
        samples: Range<usize>,
    ) -> Result<ArrayRef> {
        if c == 0 {
            Ok(Arc::new(StringArray::from_iter_values(&self.index.keys[samples])) as ArrayRef)
        } else if c <= self.index.fields.len() {
            self.decode_column(bytes, c - 1, samples)
        } else {
            Err(Error::invalid(
                "projection",
                format!("{}: no column {c}", self.path.display()),
            ))
        }
    }

    /// Decodes `field` of `samples` from the tar bytes, locating any failure in the shard.
    fn decode_column(
        &self,
        bytes: &bytes::Bytes,
        field: usize,
        samples: Range<usize>,
    ) -> Result<ArrayRef> {
        let members = self.member_bytes(bytes, field, samples.clone())?;
        decode::decode_column(&self.kinds[field], bytes, &members).map_err(|e| match e {
            DecodeError::Member {
                sample,
                member,
                why,
            } => Error::format(
                &self.path,
                self.location(member.header),
                format!(
                    "sample {:?} field {:?}: {why}",
                    self.index.keys[sample], self.index.fields[field]
                ),
            ),
            DecodeError::Column(why) => Error::format(
                &self.path,
                self.location(self.index.offsets[samples.start]),
                why,
            ),
        })
    }

    /// The member of `field` in each of `samples`, with its bytes; an error for a sample
    /// without the field or a member past the end of the bytes.
    fn member_bytes<'a>(
        &self,
        bytes: &'a bytes::Bytes,
        field: usize,
        samples: Range<usize>,
    ) -> Result<Vec<MemberBytes<'a>>> {
        let name = &self.index.fields[field];
        let mut members = Vec::with_capacity(samples.len());
        for s in samples {
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
            members.push(MemberBytes {
                sample: s,
                member: m,
                value,
            });
        }
        Ok(members)
    }
}

/// An image size must be positive in both dimensions.
fn check_image_size(image_size: Option<(u32, u32)>) -> Result<()> {
    match image_size {
        Some((h, w)) if h == 0 || w == 0 => Err(Error::invalid(
            "image_size",
            format!("({h}, {w}) must be positive"),
        )),
        _ => Ok(()),
    }
}

/// Walks the shard's headers: seeking over a plain tar, or streaming a gzip one (whose
/// decompressed length is then known for reads).
fn scan_shard(path: &Path, bytes: bytes::Bytes) -> Result<(ShardData, Scan)> {
    if is_gzip_path(path) {
        let decoder = flate2::read::MultiGzDecoder::new(&bytes[..]);
        let mut archive = tar::Archive::new(decoder);
        let entries = archive.entries().map_err(|e| Error::io(path, e))?;
        let scan = scan_entries(entries, None, &[]);
        let data = ShardData::Gzip {
            compressed: bytes.clone(),
            decompressed_len: scan.end,
        };
        Ok((data, scan))
    } else {
        let mut archive = tar::Archive::new(Cursor::new(&bytes[..]));
        let entries = archive
            .entries_with_seek()
            .map_err(|e| Error::io(path, e))?;
        let scan = scan_entries(entries, Some(bytes.len() as u64), &bytes);
        Ok((ShardData::Mapped(bytes.clone()), scan))
    }
}

/// The shard must hold a sample, and every field asked for (`wanted`) must be in one.
fn check_fields(
    path: &Path,
    scan: &Scan,
    index: &SampleIndex,
    wanted: Option<&[String]>,
) -> Result<()> {
    if index.len() == 0 {
        let (offset, why) = scan.error.clone().unwrap_or((
            0,
            "the shard holds no sample (no member named KEY.FIELD)".into(),
        ));
        return Err(Error::format(path, format!("byte {offset}"), why));
    }
    if let Some(missing) = wanted.and_then(|w| w.iter().find(|f| !index.fields.contains(f))) {
        return Err(Error::schema(
            path,
            format!(
                "field {missing:?} (from fields=) is in no sample; fields here: {}",
                index.fields.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The kind of each field; a `.npy` field whose first header does not parse is an error at
/// the field's first member.
fn field_kinds(
    path: &Path,
    scan: &Scan,
    index: &SampleIndex,
    image_size: Option<(u32, u32)>,
) -> Result<Vec<FieldKind>> {
    let mut kinds = Vec::with_capacity(index.fields.len());
    for (f, field) in index.fields.iter().enumerate() {
        let prefix = scan.npy_prefixes.get(field).map_or(&[][..], Vec::as_slice);
        let kind =
            FieldKind::of_extension(last_extension(field), prefix, image_size).map_err(|e| {
                let first = (0..index.len())
                    .find_map(|s| index.member(s, f))
                    .map_or(0, |m| m.header);
                Error::format(
                    path,
                    format!("byte {first}"),
                    format!("field {field:?}: {e}"),
                )
            })?;
        kinds.push(kind);
    }
    Ok(kinds)
}

/// `__key__` then one column per field, in field order.
fn shard_schema(fields: &[String], kinds: &[FieldKind]) -> SchemaRef {
    let mut columns = vec![Field::new(KEY_COLUMN, DataType::Utf8, false)];
    columns.extend(
        fields
            .iter()
            .zip(kinds)
            .map(|(f, k)| Field::new(f, k.data_type(), false)),
    );
    Arc::new(Schema::new(columns))
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
        let samples = self.unit_samples(index)?;
        let all: Vec<usize>;
        let columns = match projection {
            Some(p) => p,
            None => {
                all = (0..self.schema.fields().len()).collect();
                &all
            }
        };
        // Only the keys need no member data (and no decompression).
        let bytes = if columns.iter().any(|&c| c > 0) {
            self.tar_bytes()?
        } else {
            bytes::Bytes::new()
        };
        let arrays = columns
            .iter()
            .map(|&c| self.read_column(&bytes, c, samples.clone()))
            .collect::<Result<Vec<_>>>()?;
        let schema = Arc::new(
            self.schema
                .project(columns)
                .map_err(|e| Error::invalid("projection", e))?,
        );
        let options = RecordBatchOptions::new().with_row_count(Some(samples.len()));
        RecordBatch::try_new_with_options(schema, arrays, &options)
            .map_err(|e| Error::format(&self.path, format!("unit {index}"), e))
    }

    fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    fn release_unit(&self, index: usize) {
        let ShardData::Mapped(bytes) = &self.data else {
            return;
        };
        let (Some(&start), Some(&end)) = (self.bounds.get(index), self.bounds.get(index + 1))
        else {
            return;
        };
        // From the unit's first header to the next unit's (or the end of the file).
        let offset = |sample: usize| {
            self.index
                .offsets
                .get(sample)
                .map_or(bytes.len(), |&o| usize::try_from(o).unwrap_or(bytes.len()))
                .min(bytes.len())
        };
        let (from, to) = (offset(start), offset(end));
        if from < to {
            super::release_pages(&bytes[from..to]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::npy;
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
