//! Tokenization, a per-sample stage: a text column becomes a column of token ids, one list per
//! row, on the decode threads, with Hugging Face's `tokenizers` crate loaded from the user's
//! `tokenizer.json` (no download). Its ids are those of the Python `tokenizers` package for the
//! same file and text (the same library underneath).
//!
//! The stage sits before the packer: `zenith.text.pack(tokenizer=...)` reads the text column,
//! this stage turns it into the packer's token column (`list<int64>`), and the packer lays the
//! documents into sequences. A null text is no document (a null list, which the packer passes
//! over). The tokenizer file's own truncation and padding are switched off: documents are cut
//! and padded by the packer, never by the tokenizer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int64Array, ListArray, RecordBatch};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use tokenizers::Tokenizer;

use super::{SampleContext, SampleStage};
use crate::error::{Error, Result};

/// The settings of a [`TokenizeStage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizeConfig {
    /// The `tokenizer.json` file (as the `tokenizers` package saves it).
    pub tokenizer: PathBuf,
    /// The text column, one document per row.
    pub text_column: String,
    /// The token column the stage produces (it replaces the text column).
    pub output: String,
    /// Let the tokenizer's post-processor add its special tokens (e.g. Llama's BOS).
    pub add_special_tokens: bool,
}

/// The stage: a loaded tokenizer and where it reads and writes.
pub struct TokenizeStage {
    config: TokenizeConfig,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for TokenizeStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenizeStage")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The type of the column the stage produces.
pub fn token_list_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int64, false)))
}

impl TokenizeStage {
    /// Loads the tokenizer file; a missing or malformed file is an error naming it.
    pub fn open(config: TokenizeConfig) -> Result<TokenizeStage> {
        let path = &config.tokenizer;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| {
            Error::format(
                path,
                "tokenizer",
                format!("not a tokenizer.json the tokenizers library reads: {e}"),
            )
        })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::format(path, "tokenizer", e))?;
        Ok(TokenizeStage { config, tokenizer })
    }

    /// The settings.
    pub fn config(&self) -> &TokenizeConfig {
        &self.config
    }

    /// The id of `token` in the tokenizer's vocabulary (added tokens included).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The ids of one text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode_fast(text, self.config.add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::format(&self.config.tokenizer, "tokenizer", e))
    }

    fn path(&self) -> &Path {
        &self.config.tokenizer
    }
}

/// The strings of a text column, row by row (`None` for a null).
fn texts(column: &ArrayRef) -> Option<Box<dyn Iterator<Item = Option<&str>> + '_>> {
    Some(match column.data_type() {
        DataType::Utf8 => Box::new(column.as_string::<i32>().iter()),
        DataType::LargeUtf8 => Box::new(column.as_string::<i64>().iter()),
        DataType::Utf8View => Box::new(column.as_string_view().iter()),
        _ => return None,
    })
}

impl SampleStage for TokenizeStage {
    fn name(&self) -> &str {
        "tokenize"
    }

    fn required_columns(&self) -> Vec<String> {
        vec![self.config.text_column.clone()]
    }

    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let text = &self.config.text_column;
        let field = input.field_with_name(text).map_err(|_| {
            Error::invalid(
                "tokenizer",
                format!(
                    "the text column {text:?} is not in the data (columns: {}); set text_column=",
                    input
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        if !matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            return Err(Error::invalid(
                "tokenizer",
                format!(
                    "column {text:?} is {}; tokenizing needs a string column",
                    field.data_type()
                ),
            ));
        }
        let fields: Vec<Field> = input
            .fields()
            .iter()
            .filter(|f| f.name() != &self.config.output || f.name() == text)
            .map(|f| {
                if f.name() == text {
                    Field::new(&self.config.output, token_list_type(), true)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        Ok(Arc::new(Schema::new(fields)))
    }

    fn apply(
        &self,
        batch: RecordBatch,
        first_sample: u64,
        _context: &SampleContext,
    ) -> Result<RecordBatch> {
        let schema = self.output_schema(&batch.schema())?;
        let input = batch.schema();
        let text_index = input
            .index_of(&self.config.text_column)
            .map_err(|e| Error::invalid("tokenizer", e))?;
        let column = batch.column(text_index);
        let rows = texts(column).ok_or_else(|| {
            Error::invalid(
                "tokenizer",
                format!(
                    "column {:?} is not a string column",
                    self.config.text_column
                ),
            )
        })?;
        let mut offsets = Vec::with_capacity(column.len() + 1);
        offsets.push(0i32);
        let mut values: Vec<i64> = Vec::new();
        for (i, text) in rows.enumerate() {
            if let Some(text) = text {
                let encoding = self
                    .tokenizer
                    .encode_fast(text, self.config.add_special_tokens)
                    .map_err(|e| {
                        Error::format(
                            "",
                            format!("sample {}", first_sample + i as u64),
                            format!("tokenizer {}: {e}", self.path().display()),
                        )
                    })?;
                values.extend(encoding.get_ids().iter().map(|&id| i64::from(id)));
            }
            let end = i32::try_from(values.len()).map_err(|_| {
                Error::format(
                    "",
                    format!("sample {}", first_sample + i as u64),
                    "a unit's texts make more than 2^31 tokens; make the units smaller",
                )
            })?;
            offsets.push(end);
        }
        let nulls = column
            .nulls()
            .cloned()
            .map(|n| NullBuffer::new(n.inner().clone()));
        let item = Arc::new(Field::new("item", DataType::Int64, false));
        let tokens = ListArray::try_new(
            item,
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Arc::new(Int64Array::from(values)),
            nulls,
        )
        .map_err(|e| Error::invalid("tokenizer", e))?;
        let tokens: ArrayRef = Arc::new(tokens);
        let columns: Vec<ArrayRef> = input
            .fields()
            .iter()
            .zip(batch.columns())
            .enumerate()
            .filter(|(i, (f, _))| *i == text_index || f.name() != &self.config.output)
            .map(|(i, (_, c))| {
                if i == text_index {
                    tokens.clone()
                } else {
                    c.clone()
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).map_err(|e| Error::invalid("tokenizer", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    /// A word-level tokenizer over a few words, as `tokenizer.json` text.
    const WORDS: &str = r#"{
      "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
      "normalizer": null,
      "pre_tokenizer": {"type": "Whitespace"},
      "post_processor": null, "decoder": null,
      "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "the": 1, "cat": 2, "sat": 3},
                "unk_token": "[UNK]"}
    }"#;

    fn stage(dir: &tempfile::TempDir) -> TokenizeStage {
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, WORDS).unwrap();
        TokenizeStage::open(TokenizeConfig {
            tokenizer: path,
            text_column: "text".into(),
            output: "input_ids".into(),
            add_special_tokens: false,
        })
        .unwrap()
    }

    #[test]
    fn a_text_column_becomes_token_lists_and_nulls_stay_null() {
        let dir = tempfile::tempdir().unwrap();
        let stage = stage(&dir);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![7, 8, 9])),
                Arc::new(StringArray::from(vec![
                    Some("the cat sat"),
                    None,
                    Some("dog"),
                ])),
            ],
        )
        .unwrap();
        let ctx = SampleContext {
            seed: 0,
            epoch: 0,
            stage: 0,
        };
        let out = stage.apply(batch, 0, &ctx).unwrap();
        assert_eq!(out.schema().field(1).name(), "input_ids");
        let lists = out.column(1).as_list::<i32>();
        let row = |i: usize| -> Vec<i64> {
            lists
                .value(i)
                .as_primitive::<arrow_array::types::Int64Type>()
                .values()
                .to_vec()
        };
        assert_eq!(row(0), vec![1, 2, 3]);
        assert!(lists.is_null(1));
        assert_eq!(row(2), vec![0]);
        assert_eq!(stage.token_id("cat"), Some(2));
        assert_eq!(stage.encode("sat the").unwrap(), vec![3, 1]);
    }

    #[test]
    fn a_missing_column_or_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let stage = stage(&dir);
        let schema = Arc::new(Schema::new(vec![Field::new("body", DataType::Utf8, true)]));
        let e = stage.output_schema(&schema).unwrap_err().to_string();
        assert!(
            e.contains("the text column \"text\" is not in the data (columns: body)"),
            "{e}"
        );
        let ints = Arc::new(Schema::new(vec![Field::new("text", DataType::Int32, true)]));
        let e = stage.output_schema(&ints).unwrap_err().to_string();
        assert!(
            e.contains("column \"text\" is Int32; tokenizing needs a string column"),
            "{e}"
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"model\": 3}").unwrap();
        let e = TokenizeStage::open(TokenizeConfig {
            tokenizer: bad.clone(),
            text_column: "text".into(),
            output: "input_ids".into(),
            add_special_tokens: false,
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("bad.json") && e.contains("not a tokenizer.json"),
            "{e}"
        );
        let missing = TokenizeStage::open(TokenizeConfig {
            tokenizer: dir.path().join("none.json"),
            text_column: "text".into(),
            output: "input_ids".into(),
            add_special_tokens: false,
        })
        .unwrap_err();
        assert!(missing.to_string().contains("none.json"), "{missing}");
    }
}
