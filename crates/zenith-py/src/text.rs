//! `zenith.text`'s packing, as the engine runs it: the spec a Python `Pack` carries.

use pyo3::prelude::*;
use zenith_core::stage::{PackConfig, PackMode};
use zenith_core::DType;

use crate::errors::BindingResult;

/// The attributes of a `zenith.text.Pack`.
#[derive(FromPyObject)]
pub(crate) struct PackSpec {
    seq_len: usize,
    column: String,
    mode: String,
    eos_id: Option<i64>,
    bos_id: Option<i64>,
    pad_id: i64,
    buffer: usize,
    dtype: Option<String>,
    fields: Option<Vec<String>>,
}

impl PackSpec {
    /// The engine's packing settings (checked when the loader opens).
    pub(crate) fn config(&self) -> zenith_core::Result<PackConfig> {
        let mode: PackMode = self.mode.parse()?;
        let config = PackConfig {
            seq_len: self.seq_len,
            column: self.column.clone(),
            mode,
            eos_id: self.eos_id,
            bos_id: self.bos_id,
            pad_id: self.pad_id,
            buffer: self.buffer,
            fields: self.fields.clone().unwrap_or_default(),
        };
        config.validate()?;
        self.file_dtype()?;
        Ok(config)
    }

    /// The token width of `.bin` files without an index, when given.
    pub(crate) fn file_dtype(&self) -> zenith_core::Result<Option<DType>> {
        self.dtype.as_deref().map(DType::parse).transpose()
    }
}

/// Checks a `zenith.text.Pack` (the same rules the loader applies when it opens).
#[pyfunction]
pub(crate) fn text_check(spec: PackSpec) -> BindingResult<()> {
    spec.config()?;
    Ok(())
}
