//! `zenith.text`'s packing, as the engine runs it: the spec a Python `Pack` carries.

use pyo3::prelude::*;
use zenith_core::stage::{PackConfig, PackMode, TokenizeConfig, TokenizeStage};
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
    tokenizer: Option<std::path::PathBuf>,
    text_column: String,
    add_special_tokens: bool,
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

    /// The tokenizing stage that makes the token column from text, when a tokenizer is given
    /// (it loads the tokenizer file).
    pub(crate) fn tokenize_stage(&self) -> zenith_core::Result<Option<TokenizeStage>> {
        self.tokenizer
            .as_ref()
            .map(|path| {
                TokenizeStage::open(TokenizeConfig {
                    tokenizer: path.clone(),
                    text_column: self.text_column.clone(),
                    output: self.column.clone(),
                    add_special_tokens: self.add_special_tokens,
                })
            })
            .transpose()
    }

    /// The token width of `.bin` files without an index, when given.
    pub(crate) fn file_dtype(&self) -> zenith_core::Result<Option<DType>> {
        self.dtype.as_deref().map(DType::parse).transpose()
    }
}

/// Checks a `zenith.text.Pack` (the same rules the loader applies when it opens, and that its
/// tokenizer file loads).
#[pyfunction]
pub(crate) fn text_check(py: Python<'_>, spec: PackSpec) -> BindingResult<()> {
    spec.config()?;
    py.detach(|| spec.tokenize_stage())?;
    Ok(())
}

/// The token ids of `texts` under the tokenizer file `tokenizer` (the stage's own encoding,
/// for tests and the benchmark's reference), on the calling thread.
#[pyfunction]
#[pyo3(signature = (tokenizer, texts, add_special_tokens=false))]
pub(crate) fn text_encode(
    py: Python<'_>,
    tokenizer: std::path::PathBuf,
    texts: Vec<String>,
    add_special_tokens: bool,
) -> BindingResult<Vec<Vec<u32>>> {
    Ok(py.detach(|| {
        let stage = TokenizeStage::open(TokenizeConfig {
            tokenizer,
            text_column: String::new(),
            output: String::new(),
            add_special_tokens,
        })?;
        texts
            .iter()
            .map(|t| stage.encode(t))
            .collect::<zenith_core::Result<Vec<_>>>()
    })?)
}

/// The ids of `tokens` in the tokenizer file's vocabulary (None for a token it lacks); the
/// file is loaded once for all of them.
#[pyfunction]
pub(crate) fn text_token_ids(
    py: Python<'_>,
    tokenizer: std::path::PathBuf,
    tokens: Vec<String>,
) -> BindingResult<Vec<Option<u32>>> {
    Ok(py.detach(|| {
        TokenizeStage::open(TokenizeConfig {
            tokenizer,
            text_column: String::new(),
            output: String::new(),
            add_special_tokens: false,
        })
        .map(|stage| tokens.iter().map(|t| stage.token_id(t)).collect())
    })?)
}
