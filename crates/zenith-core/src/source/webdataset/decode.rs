//! Decoding a field's members into one Arrow column, by the field's last extension:
//! `cls`-like integers to int64, `txt`/`json` to utf8, `npy` to fixed-shape numbers (nested
//! fixed-size lists), images to `uint8 [H, W, 3]` when an image size is configured, and
//! everything else to binary views into the shard's bytes. Nothing here knows the shard's path:
//! errors say which member or which column failed, and the shard locates them.

use std::sync::Arc;

use arrow_array::builder::BinaryViewBuilder;
use arrow_array::{ArrayRef, Int64Array, StringArray, UInt8Array};
use arrow_buffer::Buffer;
use arrow_schema::DataType;
use rayon::prelude::*;

use super::scan::Member;
use crate::source::image_decode::{decode_rgb_into, is_image_extension};
use crate::source::npy::{self, NpyType};

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

/// How a field's bytes become a column.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum FieldKind {
    /// Integer text, to int64.
    Int,
    /// UTF-8 text.
    Text,
    /// Raw bytes, as views into the shard.
    Binary,
    /// `.npy` arrays of one dtype and shape.
    Npy { dtype: NpyType, shape: Vec<usize> },
    /// Images decoded to RGB of this size.
    Image { height: u32, width: u32 },
}

impl FieldKind {
    /// The kind of a field by its last extension; `npy_prefix` is the start of the field's
    /// first `.npy` member (its header gives the dtype and shape).
    pub(super) fn of_extension(
        ext: &str,
        npy_prefix: &[u8],
        image_size: Option<(u32, u32)>,
    ) -> Result<FieldKind, String> {
        Ok(if is_int_extension(ext) {
            FieldKind::Int
        } else if is_text_extension(ext) {
            FieldKind::Text
        } else if ext == "npy" {
            let header = npy::parse_header(npy_prefix)?;
            FieldKind::Npy {
                dtype: header.dtype,
                shape: header.shape,
            }
        } else if let (true, Some((height, width))) = (is_image_extension(ext), image_size) {
            FieldKind::Image { height, width }
        } else {
            FieldKind::Binary
        })
    }

    /// The Arrow type of the field's column.
    pub(super) fn data_type(&self) -> DataType {
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

/// One sample's member of the field being decoded, with its bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct MemberBytes<'a> {
    /// The sample index in the shard.
    pub(super) sample: usize,
    /// Where the member lies.
    pub(super) member: Member,
    /// Its data.
    pub(super) value: &'a [u8],
}

/// Why a column could not be decoded.
#[derive(Debug)]
pub(super) enum DecodeError {
    /// One member's bytes are not a value of the field's kind.
    Member {
        /// The sample index in the shard.
        sample: usize,
        /// The member.
        member: Member,
        /// What is wrong with it.
        why: String,
    },
    /// The values could not be assembled into a column.
    Column(String),
}

impl DecodeError {
    fn member(m: &MemberBytes<'_>, why: impl ToString) -> DecodeError {
        DecodeError::Member {
            sample: m.sample,
            member: m.member,
            why: why.to_string(),
        }
    }
}

type Decoded = Result<ArrayRef, DecodeError>;

/// Decodes the members (one per sample, in order) of a field of `kind`; `bytes` is the whole
/// tar stream they lie in.
pub(super) fn decode_column(
    kind: &FieldKind,
    bytes: &bytes::Bytes,
    members: &[MemberBytes<'_>],
) -> Decoded {
    match kind {
        FieldKind::Binary => {
            binary_views(bytes, members).map_err(|e| DecodeError::Column(e.to_string()))
        }
        FieldKind::Text => text_column(members),
        FieldKind::Int => int_column(members),
        FieldKind::Npy { dtype, shape } => npy_column(*dtype, shape, members),
        FieldKind::Image { height, width } => image_column(*height, *width, members),
    }
}

fn text_column(members: &[MemberBytes<'_>]) -> Decoded {
    let mut texts = Vec::with_capacity(members.len());
    for m in members {
        texts.push(
            std::str::from_utf8(m.value)
                .map_err(|e| DecodeError::member(m, format!("not UTF-8 text: {e}")))?,
        );
    }
    Ok(Arc::new(StringArray::from(texts)))
}

fn int_column(members: &[MemberBytes<'_>]) -> Decoded {
    let mut ints = Vec::with_capacity(members.len());
    for m in members {
        let text = std::str::from_utf8(m.value)
            .map_err(|_| DecodeError::member(m, "not an integer (bytes are not text)"))?;
        ints.push(text.trim().parse::<i64>().map_err(|_| {
            DecodeError::member(m, format!("not an integer: {:?}", truncate(text)))
        })?);
    }
    Ok(Arc::new(Int64Array::from(ints)))
}

/// Every member must hold an array of the field's dtype and shape; their values are stacked.
fn npy_column(dtype: NpyType, shape: &[usize], members: &[MemberBytes<'_>]) -> Decoded {
    // Bytes per array; a shape whose size overflows is refused, and the buffer grows with the
    // members' actual bytes, never with what a header claims.
    let per = shape
        .iter()
        .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            DecodeError::Column(format!(
                "npy arrays of shape {shape:?} would hold more bytes than fit in memory"
            ))
        })?;
    let present: usize = members.iter().map(|m| m.value.len()).sum();
    let mut raw = Vec::with_capacity(per.saturating_mul(members.len()).min(present));
    for m in members {
        let header = npy::parse_header(m.value).map_err(|e| DecodeError::member(m, e))?;
        if header.dtype != dtype || header.shape != shape {
            return Err(DecodeError::member(
                m,
                format!(
                    "npy array is {:?} {:?}, but the field's first array is {dtype:?} {shape:?}; every sample needs one dtype and shape",
                    header.dtype, header.shape
                ),
            ));
        }
        let values = m
            .value
            .get(header.data_offset..header.data_offset.saturating_add(per))
            .ok_or_else(|| DecodeError::member(m, "npy data is shorter than its header says"))?;
        raw.extend_from_slice(values);
    }
    let flat = npy::values_array(dtype, &raw);
    npy::wrap_shape(flat, shape, members.len()).map_err(|e| DecodeError::Column(e.to_string()))
}

fn image_column(height: u32, width: u32, members: &[MemberBytes<'_>]) -> Decoded {
    let per = height as usize * width as usize * 3;
    let mut pixels = vec![0u8; members.len() * per];
    // Images decode in parallel on the calling pool (the loader's decode threads).
    pixels
        .par_chunks_mut(per)
        .zip(members.par_iter())
        .try_for_each(|(out, m)| {
            decode_rgb_into(m.value, height, width, out).map_err(|e| DecodeError::member(m, e))
        })?;
    let flat: ArrayRef = Arc::new(UInt8Array::from(pixels));
    npy::wrap_shape(flat, &[height as usize, width as usize, 3], members.len())
        .map_err(|e| DecodeError::Column(e.to_string()))
}

/// Binary values as views into the shard's bytes (the mapping or the decompressed stream):
/// no payload is copied, and a batch keeps only the blocks its rows point into.
fn binary_views(
    bytes: &bytes::Bytes,
    members: &[MemberBytes<'_>],
) -> Result<ArrayRef, arrow_schema::ArrowError> {
    // View offsets are u32, so blocks stay below 4 GiB; a unit's members usually share one.
    const MAX_BLOCK: u64 = u32::MAX as u64 - 1;
    let buffer = Buffer::from(bytes.clone());
    let mut builder = BinaryViewBuilder::with_capacity(members.len());
    let mut block: Option<(u32, u64)> = None;
    for &MemberBytes { member: m, .. } in members {
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

/// The first 40 characters of a text, for messages.
fn truncate(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
