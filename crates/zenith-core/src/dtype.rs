//! Tensor element types (`float32`, `int64`, `bool`, ...): parsed from numpy/torch names,
//! sized, and mapped to and from Arrow types. A neutral module, so the format readers (`.npy`
//! headers) and collation both use it without the readers depending on a later stage.

use arrow_schema::DataType;

use crate::error::{Error, Result};

/// Element types of output tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// bool
    Bool,
    /// int8
    I8,
    /// int16
    I16,
    /// int32
    I32,
    /// int64
    I64,
    /// uint8
    U8,
    /// uint16
    U16,
    /// uint32
    U32,
    /// uint64
    U64,
    /// float32
    F32,
    /// float64
    F64,
}

impl DType {
    /// Parses numpy/torch style names: `float32`, `f4`, `int64`, `uint8`, `bool`, ...
    pub fn parse(name: &str) -> Result<DType> {
        Ok(
            match name
                .trim()
                .trim_start_matches("torch.")
                .to_ascii_lowercase()
                .as_str()
            {
                "bool" => DType::Bool,
                "int8" | "i1" => DType::I8,
                "int16" | "i2" => DType::I16,
                "int32" | "i4" | "int" => DType::I32,
                "int64" | "i8" | "long" => DType::I64,
                "uint8" | "u1" => DType::U8,
                "uint16" | "u2" => DType::U16,
                "uint32" | "u4" => DType::U32,
                "uint64" | "u8" => DType::U64,
                "float32" | "f4" | "float" => DType::F32,
                "float64" | "f8" | "double" => DType::F64,
                other => {
                    return Err(Error::invalid(
                        "dtype",
                        format!("unsupported dtype {other:?}"),
                    ))
                }
            },
        )
    }

    /// The numpy name.
    pub fn name(&self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Bytes per element.
    pub fn size(&self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// The Arrow type of this element type.
    pub fn arrow(&self) -> DataType {
        match self {
            DType::Bool => DataType::Boolean,
            DType::I8 => DataType::Int8,
            DType::I16 => DataType::Int16,
            DType::I32 => DataType::Int32,
            DType::I64 => DataType::Int64,
            DType::U8 => DataType::UInt8,
            DType::U16 => DataType::UInt16,
            DType::U32 => DataType::UInt32,
            DType::U64 => DataType::UInt64,
            DType::F32 => DataType::Float32,
            DType::F64 => DataType::Float64,
        }
    }

    /// The tensor element type of an Arrow type, if it is a plain number or bool.
    pub fn of_arrow(dt: &DataType) -> Option<DType> {
        Some(match dt {
            DataType::Boolean => DType::Bool,
            DataType::Int8 => DType::I8,
            DataType::Int16 => DType::I16,
            DataType::Int32 => DType::I32,
            DataType::Int64 => DType::I64,
            DataType::UInt8 => DType::U8,
            DataType::UInt16 => DType::U16,
            DataType::UInt32 => DType::U32,
            DataType::UInt64 => DType::U64,
            DataType::Float16 | DataType::Float32 => DType::F32,
            DataType::Float64 => DType::F64,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [DType; 11] = [
        DType::Bool,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::F32,
        DType::F64,
    ];

    #[test]
    fn parses_numpy_and_torch_names() {
        assert_eq!(DType::parse("torch.float32").unwrap(), DType::F32);
        assert_eq!(DType::parse(" Int64 ").unwrap(), DType::I64);
        assert_eq!(DType::parse("f8").unwrap(), DType::F64);
        assert_eq!(DType::parse("long").unwrap(), DType::I64);
        for d in ALL {
            assert_eq!(DType::parse(d.name()).unwrap(), d);
        }
        let Err(Error::InvalidArgument { name, message }) = DType::parse("complex64") else {
            panic!("complex64 parsed");
        };
        assert_eq!(name, "dtype");
        assert_eq!(message, "unsupported dtype \"complex64\"");
    }

    #[test]
    fn sizes_and_arrow_types_round_trip() {
        let sizes: Vec<usize> = ALL.iter().map(DType::size).collect();
        assert_eq!(sizes, vec![1, 1, 2, 4, 8, 1, 2, 4, 8, 4, 8]);
        for d in ALL {
            assert_eq!(DType::of_arrow(&d.arrow()), Some(d));
        }
        assert_eq!(DType::of_arrow(&DataType::Float16), Some(DType::F32));
        assert_eq!(DType::of_arrow(&DataType::Utf8), None);
    }
}
