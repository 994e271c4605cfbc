//! NumPy `.npy` members of WebDataset samples: the header (dtype, shape) and the values, turned
//! into Arrow arrays whose type carries the shape (nested fixed-size lists), so a batch of them
//! collates into one `[B, *shape]` tensor.

use std::sync::Arc;

use arrow_array::types::*;
use arrow_array::{ArrayRef, BooleanArray, FixedSizeListArray, PrimitiveArray};
use arrow_schema::{DataType, Field};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Element types of `.npy` arrays: the engine's tensor element types.
pub(crate) use crate::dtype::DType as NpyType;

/// Parses a `.npy` `descr` (e.g. `<f4`) into an element type; little-endian only.
fn parse_dtype(descr: &str) -> Result<NpyType, String> {
    // The byte order is one ASCII character; a descr starting with any other character has
    // no order and then no known code, so it is rejected below instead of split mid-character.
    let (order, code) = descr.split_at_checked(1).unwrap_or(("", descr));
    let ty = match code {
        "b1" => NpyType::Bool,
        "i1" => NpyType::I8,
        "i2" => NpyType::I16,
        "i4" => NpyType::I32,
        "i8" => NpyType::I64,
        "u1" => NpyType::U8,
        "u2" => NpyType::U16,
        "u4" => NpyType::U32,
        "u8" => NpyType::U64,
        "f4" => NpyType::F32,
        "f8" => NpyType::F64,
        _ => {
            return Err(format!(
                "unsupported npy dtype {descr:?} (numbers and bools only)"
            ))
        }
    };
    // Data is read as little-endian; '=' is native, which is little-endian on every target we build.
    let little = matches!(order, "<" | "|" | "=") || (order == ">" && ty.size() == 1);
    if !little {
        return Err(format!(
            "unsupported npy byte order in {descr:?} (little-endian only)"
        ));
    }
    Ok(ty)
}

/// What a `.npy` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NpyHeader {
    pub dtype: NpyType,
    pub shape: Vec<usize>,
    /// Offset of the first value byte.
    pub data_offset: usize,
}

/// Parses the header of a `.npy` file (versions 1 to 3; C order only).
pub(crate) fn parse_header(bytes: &[u8]) -> Result<NpyHeader, String> {
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return Err("not an .npy array (no \\x93NUMPY magic)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let text = bytes
        .get(start..start + len)
        .ok_or_else(|| format!("truncated .npy header ({len} bytes announced)"))?;
    let text = std::str::from_utf8(text).map_err(|_| "the .npy header is not text".to_string())?;
    let descr = dict_value(text, "descr")?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(text, "fortran_order")?;
    if fortran.trim() != "False" {
        return Err("Fortran-ordered .npy arrays are not supported; save with C order".into());
    }
    let shape_text = dict_value(text, "shape")?;
    let shape_text = shape_text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')');
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad .npy shape ({shape_text})"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NpyHeader {
        dtype: parse_dtype(descr)?,
        shape,
        data_offset: start + len,
    })
}

/// The text of `key`'s value in the header's dict literal (up to the next top-level comma).
fn dict_value<'a>(text: &'a str, key: &str) -> Result<&'a str, String> {
    let pos = text
        .find(&format!("'{key}'"))
        .or_else(|| text.find(&format!("\"{key}\"")))
        .ok_or_else(|| format!(".npy header has no {key:?}"))?;
    let rest = &text[pos + key.len() + 2..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')
        .ok_or_else(|| format!("bad .npy header near {key:?}"))?;
    let mut depth = 0usize;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' | '}' if depth == 0 => return Ok(&rest[..i]),
            _ => {}
        }
    }
    Ok(rest)
}

/// The Arrow type of arrays of `inner` elements with this shape: nested fixed-size lists,
/// outermost dimension first; a scalar shape is the element type itself.
pub fn shaped_type(inner: DataType, shape: &[usize]) -> DataType {
    shape.iter().rev().fold(inner, |dt, &dim| {
        DataType::FixedSizeList(Arc::new(Field::new_list_field(dt, false)), dim as i32)
    })
}

/// Wraps flat values into nested fixed-size lists of `shape`, `rows` lists (one per row). The
/// count is explicit because an array with a zero dimension (`shape` `(0,)`, say) has no
/// values to count rows by.
pub fn wrap_shape(
    values: ArrayRef,
    shape: &[usize],
    rows: usize,
) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let mut array = values;
    for (level, &dim) in shape.iter().enumerate().rev() {
        // Lists at this level: one per row times the dimensions outside it.
        let len = shape[..level]
            .iter()
            .try_fold(rows, |n, &d| n.checked_mul(d))
            .ok_or_else(|| {
                arrow_schema::ArrowError::InvalidArgumentError(format!(
                    "{rows} arrays of shape {shape:?} hold more elements than fit in memory"
                ))
            })?;
        let field = Arc::new(Field::new_list_field(array.data_type().clone(), false));
        let size = i32::try_from(dim).map_err(|_| {
            arrow_schema::ArrowError::InvalidArgumentError(format!(
                "array dimension {dim} is larger than a fixed-size list holds"
            ))
        })?;
        array = Arc::new(FixedSizeListArray::try_new_with_length(
            field, size, array, None, len,
        )?);
    }
    Ok(array)
}

fn le<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(chunk);
    out
}

/// Builds the flat Arrow array of little-endian `raw` values of type `ty`.
pub(crate) fn values_array(ty: NpyType, raw: &[u8]) -> ArrayRef {
    macro_rules! prim {
        ($t:ty, $native:ty, $n:literal) => {
            Arc::new(PrimitiveArray::<$t>::from_iter_values(
                raw.chunks_exact($n)
                    .map(|c| <$native>::from_le_bytes(le::<$n>(c))),
            ))
        };
    }
    match ty {
        NpyType::Bool => Arc::new(BooleanArray::from_iter(raw.iter().map(|&b| Some(b != 0)))),
        NpyType::I8 => prim!(Int8Type, i8, 1),
        NpyType::I16 => prim!(Int16Type, i16, 2),
        NpyType::I32 => prim!(Int32Type, i32, 4),
        NpyType::I64 => prim!(Int64Type, i64, 8),
        NpyType::U8 => Arc::new(PrimitiveArray::<UInt8Type>::from(raw.to_vec())),
        NpyType::U16 => prim!(UInt16Type, u16, 2),
        NpyType::U32 => prim!(UInt32Type, u32, 4),
        NpyType::U64 => prim!(UInt64Type, u64, 8),
        NpyType::F32 => prim!(Float32Type, f32, 4),
        NpyType::F64 => prim!(Float64Type, f64, 8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        npy_order(descr, "False", shape, data)
    }

    fn npy_order(descr: &str, fortran: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn parses_headers_like_numpy_writes_them() {
        let data: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0, 7.0, 8.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = npy("<f4", "(2, 3)", &data);
        let h = parse_header(&bytes).unwrap();
        assert_eq!(h.dtype, NpyType::F32);
        assert_eq!(h.shape, vec![2, 3]);
        assert_eq!(h.data_offset % 64, 0);
        let values = values_array(h.dtype, &bytes[h.data_offset..]);
        let arr = wrap_shape(values, &h.shape, 1).unwrap();
        assert_eq!(arr.data_type(), &shaped_type(DataType::Float32, &[2, 3]));
        assert_eq!(arr.len(), 1);
        let one_d = parse_header(&npy("|u1", "(5,)", &[0; 5])).unwrap();
        assert_eq!((one_d.dtype, one_d.shape), (NpyType::U8, vec![5]));
        let scalar = parse_header(&npy("<i8", "()", &[0; 8])).unwrap();
        assert!(scalar.shape.is_empty());
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse_header(b"hello world").is_err());
        assert!(parse_header(&npy("<c8", "(2,)", &[]))
            .unwrap_err()
            .contains("unsupported"));
        assert!(parse_header(&npy(">f4", "(2,)", &[]))
            .unwrap_err()
            .contains("byte order"));
        assert!(parse_header(&npy_order("<f4", "True", "(2, 2)", &[]))
            .unwrap_err()
            .contains("Fortran"));
        let mut truncated = npy("<f4", "(2,)", &[]);
        truncated.truncate(20);
        assert!(parse_header(&truncated).unwrap_err().contains("truncated"));
    }
}
