//! Flat token files: `.bin` arrays of token ids as nanoGPT and Megatron-LM write them.
//!
//! - With a Megatron index beside it (`name.idx`, header `MMIDIDX\0\0`: version, dtype code,
//!   sequence count, document count, then the sequences' lengths, their byte offsets in the
//!   `.bin` and the document indices), each indexed sequence is one row: one document.
//! - Without one, the file is one stream of `uint16` tokens (nanoGPT's `train.bin`; another
//!   width with `token_dtype`), cut into rows of `token_chunk` tokens (a packed loader's
//!   `seq_len` by default); the documents' EOS tokens are already in the stream.
//!
//! - A NumPy `.npy` array of integers is one stream too, of the width its header says.
//!
//! The one column, `input_ids`, is `list<uint16>` (or the index's or given width). Units are
//! runs of rows of about [`UNIT_TOKENS`] tokens.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, ListArray, RecordBatch};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;

use super::{FileReader, Format, UnitMeta};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Tokens per unit (about 2 MiB of `uint16`).
pub const UNIT_TOKENS: usize = 1 << 20;

/// Tokens per row of a file without an index, when neither the caller nor a packer says.
pub const DEFAULT_CHUNK: usize = 2048;

/// The name of the token column.
pub const TOKENS_COLUMN: &str = "input_ids";

const MEGATRON_MAGIC: &[u8] = b"MMIDIDX\x00\x00";

/// Where a token file's bytes are.
enum Data {
    /// In memory (an object fetched whole).
    Bytes(Bytes),
    /// A local file, read with positioned reads per unit (a map would count every page an
    /// epoch touched towards the process's resident memory).
    File(std::fs::File, u64),
}

/// A token file: its bytes, its element type, and each row's (byte offset, tokens).
pub struct TokenFile {
    path: PathBuf,
    data: Data,
    dtype: DType,
    rows: Vec<(u64, u32)>,
    units: Vec<UnitMeta>,
    /// First row of each unit, and one past the last unit.
    unit_rows: Vec<usize>,
    schema: SchemaRef,
}

/// The index file that belongs to `bin` (`x.bin` -> `x.idx`).
pub fn index_path(bin: &Path) -> PathBuf {
    bin.with_extension("idx")
}

/// True for a Megatron index file's name.
pub fn is_index(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("idx"))
}

fn megatron_dtype(code: u8) -> Option<DType> {
    Some(match code {
        1 => DType::U8,
        2 => DType::I8,
        3 => DType::I16,
        4 => DType::I32,
        5 => DType::I64,
        8 => DType::U16,
        _ => return None,
    })
}

fn arrow_type(dtype: DType) -> DataType {
    match dtype {
        DType::U8 => DataType::UInt8,
        DType::I8 => DataType::Int8,
        DType::I16 => DataType::Int16,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::U32 => DataType::UInt32,
        DType::U64 => DataType::UInt64,
        _ => DataType::UInt16,
    }
}

/// Reads a little-endian integer of `N` bytes at `at` of `index`, or says where it ends.
fn read_le<const N: usize>(index: &[u8], at: usize, idx: &Path) -> Result<[u8; N]> {
    index
        .get(at..at + N)
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| {
            Error::format(
                idx,
                format!("byte {at}"),
                format!("the index ends at byte {}: truncated", index.len()),
            )
        })
}

/// The rows of a Megatron index: (byte offset in the `.bin`, tokens) per sequence.
fn parse_index(index: &[u8], idx: &Path) -> Result<(DType, Vec<(u64, u32)>)> {
    if !index.starts_with(MEGATRON_MAGIC) {
        return Err(Error::format(
            idx,
            "byte 0",
            "not a Megatron-LM index (it starts without MMIDIDX)",
        ));
    }
    let mut at = MEGATRON_MAGIC.len();
    let version = u64::from_le_bytes(read_le(index, at, idx)?);
    at += 8;
    if version != 1 {
        return Err(Error::format(
            idx,
            "header",
            format!("index version {version}; this build reads version 1"),
        ));
    }
    let code = read_le::<1>(index, at, idx)?[0];
    at += 1;
    let dtype = megatron_dtype(code).ok_or_else(|| {
        Error::format(
            idx,
            "header",
            format!("dtype code {code} is not an integer token type (1-5 or 8)"),
        )
    })?;
    let sequences = u64::from_le_bytes(read_le(index, at, idx)?);
    at += 8;
    // The document count follows; the document indices are not needed to read sequences.
    at += 8;
    let n = usize::try_from(sequences)
        .ok()
        .filter(|&n| n.checked_mul(12).is_some_and(|b| at + b <= index.len()))
        .ok_or_else(|| {
            Error::format(
                idx,
                "header",
                format!(
                    "{sequences} sequences do not fit in an index of {} bytes",
                    index.len()
                ),
            )
        })?;
    let lengths = &index[at..at + 4 * n];
    let pointers = &index[at + 4 * n..at + 12 * n];
    let rows = lengths
        .chunks_exact(4)
        .zip(pointers.chunks_exact(8))
        .map(|(l, p)| {
            let len = i32::from_le_bytes(l.try_into().unwrap_or_default());
            let ptr = i64::from_le_bytes(p.try_into().unwrap_or_default());
            (ptr, len)
        })
        .enumerate()
        .map(
            |(i, (ptr, len))| match (u64::try_from(ptr), u32::try_from(len)) {
                (Ok(p), Ok(l)) => Ok((p, l)),
                _ => Err(Error::format(
                    idx,
                    format!("sequence {i}"),
                    format!("negative offset {ptr} or length {len}"),
                )),
            },
        )
        .collect::<Result<Vec<_>>>()?;
    Ok((dtype, rows))
}

/// The token type and the first value byte of a `.npy` token file (`None` for a file that is
/// not one): a C-order array of integers, read as one stream whatever its shape.
fn npy_header(path: &Path, data: &Data, data_len: u64) -> Result<Option<(DType, u64)>> {
    let mut head = [0u8; 4096];
    let n = match data {
        Data::Bytes(b) => {
            let n = b.len().min(head.len());
            head[..n].copy_from_slice(&b[..n]);
            n
        }
        Data::File(f, _) => {
            use std::os::unix::fs::FileExt;
            let want = (data_len as usize).min(head.len());
            f.read_exact_at(&mut head[..want], 0)
                .map_err(|e| Error::io(path, e))?;
            want
        }
    };
    if !head[..n].starts_with(b"\x93NUMPY") {
        return Ok(None);
    }
    let header =
        super::npy::parse_header(&head[..n]).map_err(|e| Error::format(path, "header", e))?;
    if !matches!(
        header.dtype,
        DType::U8 | DType::U16 | DType::U32 | DType::I16 | DType::I32 | DType::I64
    ) {
        return Err(Error::format(
            path,
            "header",
            format!(
                "an array of {}; token files hold integer ids (uint16, uint32, int32, int64)",
                header.dtype.name()
            ),
        ));
    }
    let values = header
        .shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
    let offset = header.data_offset as u64;
    let expected = values.and_then(|v| v.checked_mul(header.dtype.size() as u64));
    if expected != Some(data_len.saturating_sub(offset)) {
        return Err(Error::format(
            path,
            "header",
            format!(
                "shape {:?} of {} needs {} bytes after the header, the file has {}: truncated",
                header.shape,
                header.dtype.name(),
                expected.map_or("more than 2^64".to_string(), |e| e.to_string()),
                data_len.saturating_sub(offset)
            ),
        ));
    }
    Ok(Some((header.dtype, offset)))
}

impl TokenFile {
    /// Opens a token file from its bytes and, when there is one, its index's bytes.
    /// `dtype` and `chunk` apply to a file without an index.
    pub fn from_parts(
        path: &Path,
        data: Bytes,
        index: Option<(&Path, Bytes)>,
        dtype: Option<DType>,
        chunk: Option<usize>,
    ) -> Result<TokenFile> {
        let len = data.len() as u64;
        TokenFile::with_data(path, Data::Bytes(data), len, index, dtype, chunk)
    }

    fn with_data(
        path: &Path,
        data: Data,
        data_len: u64,
        index: Option<(&Path, Bytes)>,
        dtype: Option<DType>,
        chunk: Option<usize>,
    ) -> Result<TokenFile> {
        let (dtype, rows) = match index {
            Some((idx, bytes)) => {
                let (found, rows) = parse_index(&bytes, idx)?;
                if let Some(given) = dtype.filter(|d| *d != found) {
                    return Err(Error::invalid(
                        "token_dtype",
                        format!(
                            "{} holds {} tokens, not {}",
                            idx.display(),
                            found.name(),
                            given.name()
                        ),
                    ));
                }
                let size = found.size() as u64;
                for (i, &(ptr, len)) in rows.iter().enumerate() {
                    let end = ptr.checked_add(u64::from(len) * size);
                    if ptr % size != 0 || end.is_none_or(|e| e > data_len) {
                        return Err(Error::format(
                            idx,
                            format!("sequence {i}"),
                            format!(
                                "{len} tokens at byte {ptr} do not lie in {} ({} bytes)",
                                path.display(),
                                data_len
                            ),
                        ));
                    }
                }
                (found, rows)
            }
            None => {
                // A NumPy array (`.npy`, as nanoGPT-style shard writers save token shards):
                // its header says the width; the values after it are the stream.
                let (dtype, header) = match npy_header(path, &data, data_len)? {
                    Some((found, offset)) => {
                        if let Some(given) = dtype.filter(|d| *d != found) {
                            return Err(Error::invalid(
                                "token_dtype",
                                format!(
                                    "{} holds {} tokens, not {}",
                                    path.display(),
                                    found.name(),
                                    given.name()
                                ),
                            ));
                        }
                        (Some(found), offset)
                    }
                    None => (dtype, 0),
                };
                let dtype = dtype.unwrap_or(DType::U16);
                if !matches!(
                    dtype,
                    DType::U8 | DType::U16 | DType::U32 | DType::I16 | DType::I32 | DType::I64
                ) {
                    return Err(Error::invalid(
                        "token_dtype",
                        format!(
                            "{} is not a token type (uint16, uint32, int32, int64)",
                            dtype.name()
                        ),
                    ));
                }
                let size = dtype.size();
                let data_len = (data_len - header) as usize;
                if !data_len.is_multiple_of(size) {
                    return Err(Error::format(
                        path,
                        format!("byte {}", data_len - data_len % size),
                        format!(
                            "{data_len} bytes are not a whole number of {} tokens: truncated, or another token_dtype",
                            dtype.name()
                        ),
                    ));
                }
                let tokens = data_len / size;
                let chunk = chunk.unwrap_or(DEFAULT_CHUNK).max(1);
                let rows = (0..tokens)
                    .step_by(chunk)
                    .map(|t| (header + (t * size) as u64, (chunk.min(tokens - t)) as u32))
                    .collect();
                (dtype, rows)
            }
        };
        let mut units = Vec::new();
        let mut unit_rows = vec![0];
        let (mut tokens, mut start) = (0usize, 0usize);
        for (i, &(_, len)) in rows.iter().enumerate() {
            tokens += len as usize;
            if tokens >= UNIT_TOKENS || i + 1 == rows.len() {
                units.push(UnitMeta {
                    rows: i + 1 - start,
                    bytes: (tokens * dtype.size()) as u64,
                });
                unit_rows.push(i + 1);
                (tokens, start) = (0, i + 1);
            }
        }
        let item = Arc::new(Field::new("item", arrow_type(dtype), false));
        let schema = Arc::new(Schema::new(vec![Field::new(
            TOKENS_COLUMN,
            DataType::List(item),
            false,
        )]));
        Ok(TokenFile {
            path: path.to_path_buf(),
            data,
            dtype,
            rows,
            units,
            unit_rows,
            schema,
        })
    }

    /// Opens a local token file, with its index when `name.idx` exists beside it.
    pub fn open(path: &Path, dtype: Option<DType>, chunk: Option<usize>) -> Result<TokenFile> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let idx = index_path(path);
        let index = if idx.is_file() {
            Some(super::map_file(&idx)?)
        } else {
            None
        };
        let index = index.map(|b| (idx.as_path(), b));
        TokenFile::with_data(path, Data::File(file, len), len, index, dtype, chunk)
    }

    /// Bytes `range` of the file.
    fn bytes(&self, range: std::ops::Range<u64>) -> Result<Bytes> {
        match &self.data {
            Data::Bytes(b) => Ok(b.slice(range.start as usize..range.end as usize)),
            Data::File(f, _) => {
                use std::os::unix::fs::FileExt;
                let mut out = vec![0u8; (range.end - range.start) as usize];
                f.read_exact_at(&mut out, range.start)
                    .map_err(|e| Error::io(&self.path, e))?;
                Ok(Bytes::from(out))
            }
        }
    }
}

impl FileReader for TokenFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> Format {
        Format::Tokens
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn units(&self) -> &[UnitMeta] {
        &self.units
    }

    fn read_unit(&self, index: usize, projection: Option<&[usize]>) -> Result<RecordBatch> {
        let (first, end) = match (self.unit_rows.get(index), self.unit_rows.get(index + 1)) {
            (Some(&a), Some(&b)) => (a, b),
            _ => return Err(Error::invalid("unit", format!("no unit {index}"))),
        };
        let size = self.dtype.size();
        let rows = &self.rows[first..end];
        let total: usize = rows.iter().map(|&(_, l)| l as usize).sum();
        // One read of the span the unit's rows lie in (in order and adjacent, as writers lay
        // them out), then each row's bytes from it.
        let lo = rows.iter().map(|&(p, _)| p).min().unwrap_or(0);
        let hi = rows
            .iter()
            .map(|&(p, l)| p + u64::from(l) * size as u64)
            .max()
            .unwrap_or(0);
        let span = self.bytes(lo..hi)?;
        let mut bytes: Vec<u8> = Vec::with_capacity(total * size);
        let mut offsets: Vec<i32> = Vec::with_capacity(rows.len() + 1);
        offsets.push(0);
        for &(ptr, len) in rows {
            let from = (ptr - lo) as usize;
            bytes.extend_from_slice(&span[from..from + len as usize * size]);
            let next = i64::from(*offsets.last().unwrap_or(&0)) + i64::from(len);
            offsets.push(i32::try_from(next).map_err(|_| {
                Error::format(
                    &self.path,
                    format!("unit {index}"),
                    "more than 2^31 tokens in a unit",
                )
            })?);
        }
        // An aligned copy, read as little-endian integers of the file's width.
        let buffer = Buffer::from_slice_ref(&bytes);
        let values: ArrayRef = match self.dtype {
            DType::U8 => Arc::new(arrow_array::UInt8Array::new(
                ScalarBuffer::new(buffer, 0, total),
                None,
            )),
            DType::I8 => Arc::new(arrow_array::Int8Array::new(
                ScalarBuffer::new(buffer, 0, total),
                None,
            )),
            DType::I16 => Arc::new(arrow_array::Int16Array::new(
                ScalarBuffer::new(buffer, 0, total),
                None,
            )),
            DType::I32 => Arc::new(arrow_array::Int32Array::new(
                ScalarBuffer::new(buffer, 0, total),
                None,
            )),
            DType::I64 => Arc::new(arrow_array::Int64Array::new(
                ScalarBuffer::new(buffer, 0, total),
                None,
            )),
            DType::U32 => Arc::new(arrow_array::UInt32Array::new(
                ScalarBuffer::new(buffer, 0, total),
                None,
            )),
            _ => Arc::new(arrow_array::UInt16Array::new(
                ScalarBuffer::new(buffer, 0, total),
                None,
            )),
        };
        let DataType::List(item) = self.schema.field(0).data_type().clone() else {
            unreachable!("the token column is a list")
        };
        let list = ListArray::try_new(item, OffsetBuffer::new(offsets.into()), values, None)
            .map_err(|e| Error::format(&self.path, format!("unit {index}"), e.to_string()))?;
        let schema = match projection {
            Some([]) => Arc::new(Schema::empty()),
            _ => self.schema.clone(),
        };
        let columns: Vec<ArrayRef> = match projection {
            Some([]) => Vec::new(),
            _ => vec![Arc::new(list)],
        };
        RecordBatch::try_new_with_options(
            schema,
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(end - first)),
        )
        .map_err(|e| Error::format(&self.path, format!("unit {index}"), e.to_string()))
    }

    fn file_bytes(&self) -> u64 {
        match &self.data {
            Data::Bytes(b) => b.len() as u64,
            Data::File(_, len) => *len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::Array;

    fn index(dtype: u8, lengths: &[i32], pointers: &[i64]) -> Vec<u8> {
        let mut out = MEGATRON_MAGIC.to_vec();
        out.extend(1u64.to_le_bytes());
        out.push(dtype);
        out.extend((lengths.len() as u64).to_le_bytes());
        out.extend((lengths.len() as u64 + 1).to_le_bytes());
        lengths.iter().for_each(|l| out.extend(l.to_le_bytes()));
        pointers.iter().for_each(|p| out.extend(p.to_le_bytes()));
        (0..=lengths.len() as i64).for_each(|d| out.extend(d.to_le_bytes()));
        out
    }

    fn tokens(values: &[u16]) -> Bytes {
        Bytes::from(
            values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
    }

    fn rows(file: &TokenFile) -> Vec<Vec<u16>> {
        (0..file.units().len())
            .flat_map(|u| {
                let b = file.read_unit(u, None).unwrap();
                let l = b.column(0).as_list::<i32>().clone();
                (0..l.len())
                    .map(|i| {
                        l.value(i)
                            .as_primitive::<arrow_array::types::UInt16Type>()
                            .values()
                            .to_vec()
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn an_indexed_file_has_one_row_per_sequence() {
        let data = tokens(&[5, 6, 7, 8, 9, 10]);
        let idx = Bytes::from(index(8, &[2, 3, 1], &[0, 4, 10]));
        let f = TokenFile::from_parts(
            Path::new("t.bin"),
            data,
            Some((Path::new("t.idx"), idx)),
            None,
            None,
        )
        .unwrap();
        assert_eq!(rows(&f), vec![vec![5, 6], vec![7, 8, 9], vec![10]]);
    }

    #[test]
    fn a_file_without_index_is_cut_into_chunks() {
        let f = TokenFile::from_parts(
            Path::new("t.bin"),
            tokens(&[1, 2, 3, 4, 5]),
            None,
            None,
            Some(2),
        )
        .unwrap();
        assert_eq!(rows(&f), vec![vec![1, 2], vec![3, 4], vec![5]]);
    }

    #[test]
    fn broken_indexes_and_files_are_format_errors_naming_them() {
        let data = tokens(&[1, 2, 3]);
        let e = |idx: Vec<u8>| {
            TokenFile::from_parts(
                Path::new("t.bin"),
                data.clone(),
                Some((Path::new("t.idx"), Bytes::from(idx))),
                None,
                None,
            )
            .err()
            .unwrap()
            .to_string()
        };
        assert!(e(b"garbage".to_vec()).contains("t.idx: byte 0: not a Megatron-LM index"));
        assert!(e(index(8, &[2, 5], &[0, 4]))
            .contains("sequence 1: 5 tokens at byte 4 do not lie in t.bin"));
        assert!(e(index(6, &[1], &[0])).contains("dtype code 6 is not an integer token type"));
        let mut short = index(8, &[1, 1], &[0, 2]);
        short.truncate(30);
        assert!(e(short).contains("do not fit in an index"));
        let odd = Bytes::from_static(&[1, 0, 2]);
        let msg = TokenFile::from_parts(Path::new("t.bin"), odd, None, None, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("3 bytes are not a whole number of uint16 tokens"),
            "{msg}"
        );
    }
}
