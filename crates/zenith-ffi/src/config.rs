//! The JSON documents the C ABI accepts: library settings, loader settings and column lists.
//! Unknown keys are rejected so that a typo never silently falls back to a default.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use zenith_core::{DType, FieldSource, Format, LoaderConfig, OutputField};

use crate::status::FfiError;

/// Settings of `zenith_init`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InitConfig {
    /// Budget of the small-dataset cache in bytes (0 disables it).
    pub(crate) cache_bytes: Option<usize>,
    /// A tracing filter (`ZENITH_LOG_LEVEL` syntax); logs go to stderr. First setting wins.
    pub(crate) log_level: Option<String>,
}

/// One output field of a loader: a column, or numeric columns stacked into `[rows, k]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FieldJson {
    Column(String),
    Stack(Vec<String>),
    Typed {
        #[serde(default)]
        column: Option<String>,
        #[serde(default)]
        stack: Option<Vec<String>>,
        dtype: Option<String>,
    },
}

/// `columns` of a loader: a list of names, or an object name -> field kept in document order.
#[derive(Debug)]
enum ColumnsJson {
    Names(Vec<String>),
    Fields(Vec<(String, FieldJson)>),
}

impl<'de> Deserialize<'de> for ColumnsJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ColumnsVisitor;
        impl<'de> Visitor<'de> for ColumnsVisitor {
            type Value = ColumnsJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of column names or an object mapping output names to columns")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ColumnsJson, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(ColumnsJson::Names(names))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ColumnsJson, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, FieldJson>()? {
                    fields.push(entry);
                }
                Ok(ColumnsJson::Fields(fields))
            }
        }
        deserializer.deserialize_any(ColumnsVisitor)
    }
}

/// Settings of `zenith_loader_new`; each maps to the [`LoaderConfig`] field of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoaderJson {
    batch_size: Option<usize>,
    shuffle: Option<bool>,
    seed: Option<u64>,
    columns: Option<ColumnsJson>,
    num_workers: Option<usize>,
    drop_last: Option<bool>,
    prefetch: Option<usize>,
    rank: Option<usize>,
    world_size: Option<usize>,
    on_error: Option<String>,
    output: Option<String>,
    shuffle_window: Option<usize>,
    memory_budget: Option<usize>,
    reuse_budget: Option<usize>,
    format: Option<String>,
}

fn parse_json<T: for<'de> Deserialize<'de>>(text: &str, name: &str) -> Result<T, FfiError> {
    serde_json::from_str(text).map_err(|e| FfiError::invalid(name, e))
}

/// Parses `zenith_init`'s JSON; NULL (`None`) means defaults.
pub(crate) fn init_config(text: Option<&str>) -> Result<InitConfig, FfiError> {
    text.map_or_else(
        || Ok(InitConfig::default()),
        |t| parse_json(t, "config_json"),
    )
}

/// Parses `zenith_load`'s column list; NULL (`None`) means every column.
pub(crate) fn column_list(text: Option<&str>) -> Result<Option<Vec<String>>, FfiError> {
    text.map(|t| parse_json::<Vec<String>>(t, "columns_json"))
        .transpose()
}

fn output_field(name: String, field: FieldJson) -> Result<OutputField, FfiError> {
    let (source, dtype) = match field {
        FieldJson::Column(c) => (FieldSource::Column(c), None),
        FieldJson::Stack(cs) => (FieldSource::Stack(cs), None),
        FieldJson::Typed {
            column: Some(c),
            stack: None,
            dtype,
        } => (FieldSource::Column(c), dtype),
        FieldJson::Typed {
            column: None,
            stack: Some(cs),
            dtype,
        } => (FieldSource::Stack(cs), dtype),
        FieldJson::Typed { .. } => {
            return Err(FfiError::invalid(
                "config_json",
                format!("field {name:?} needs exactly one of \"column\" and \"stack\""),
            ))
        }
    };
    let dtype = dtype.as_deref().map(DType::parse).transpose()?;
    Ok(OutputField {
        name,
        source,
        dtype,
    })
}

/// Parses `zenith_loader_new`'s JSON over the engine's defaults; NULL (`None`) means defaults.
pub(crate) fn loader_config(text: Option<&str>) -> Result<LoaderConfig, FfiError> {
    let json: LoaderJson = text.map_or_else(
        || Ok(LoaderJson::default()),
        |t| parse_json(t, "config_json"),
    )?;
    let mut config = LoaderConfig::default();
    macro_rules! take {
        ($($field:ident),*) => { $(if let Some(v) = json.$field { config.$field = v; })* };
    }
    take!(batch_size, shuffle, seed, drop_last, rank, world_size);
    config.num_workers = json.num_workers.or(config.num_workers);
    config.prefetch = json.prefetch.or(config.prefetch);
    config.shuffle_window = json.shuffle_window.or(config.shuffle_window);
    config.memory_budget = json.memory_budget.or(config.memory_budget);
    config.reuse_budget = json.reuse_budget.or(config.reuse_budget);
    if let Some(on_error) = json.on_error {
        config.on_error = on_error.parse()?;
    }
    if let Some(output) = json.output {
        config.output = output.parse()?;
    }
    if let Some(format) = json.format {
        config.format = Some(Format::parse(&format)?);
    }
    config.columns = match json.columns {
        None => None,
        Some(ColumnsJson::Names(names)) => Some(
            names
                .into_iter()
                .map(|n| OutputField {
                    name: n.clone(),
                    source: FieldSource::Column(n),
                    dtype: None,
                })
                .collect(),
        ),
        Some(ColumnsJson::Fields(fields)) => Some(
            fields
                .into_iter()
                .map(|(name, f)| output_field(name, f))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::*;
    use zenith_core::{OnError, OutputKind};

    #[test]
    fn loader_json_maps_every_field() {
        let c = loader_config(Some(
            r#"{"batch_size": 7, "shuffle": false, "seed": 3, "columns": ["b", "a"], "num_workers": 2,
                "drop_last": true, "rank": 1, "world_size": 2, "on_error": "skip", "output": "arrow",
                "prefetch": 4, "shuffle_window": 100, "memory_budget": 1000, "format": "csv"}"#,
        ))
        .unwrap();
        assert_eq!(
            (
                c.batch_size,
                c.shuffle,
                c.seed,
                c.drop_last,
                c.rank,
                c.world_size
            ),
            (7, false, 3, true, 1, 2)
        );
        assert_eq!(
            (c.num_workers, c.prefetch, c.shuffle_window, c.memory_budget),
            (Some(2), Some(4), Some(100), Some(1000))
        );
        assert_eq!(
            (c.on_error, c.output, c.format),
            (OnError::Skip, OutputKind::Arrow, Some(Format::Csv))
        );
        let names: Vec<_> = c
            .columns
            .unwrap()
            .into_iter()
            .map(|f| (f.name, f.source))
            .collect();
        assert_eq!(
            names,
            vec![
                ("b".into(), FieldSource::Column("b".into())),
                ("a".into(), FieldSource::Column("a".into()))
            ]
        );
    }

    #[test]
    fn field_objects_keep_document_order() {
        let c = loader_config(Some(r#"{"columns": {"z": ["f1", "f0"], "y": "label", "w": {"column": "f2", "dtype": "float64"}}}"#)).unwrap();
        let fields = c.columns.unwrap();
        assert_eq!(
            fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["z", "y", "w"]
        );
        assert_eq!(
            fields[0].source,
            FieldSource::Stack(vec!["f1".into(), "f0".into()])
        );
        assert_eq!(fields[2].dtype, Some(DType::F64));
    }

    #[test]
    fn null_means_defaults_and_bad_input_is_invalid_arg() {
        let d = loader_config(None).unwrap();
        assert_eq!(
            (d.batch_size, d.shuffle),
            (
                LoaderConfig::default().batch_size,
                LoaderConfig::default().shuffle
            )
        );
        for bad in [
            r#"{"batch_sise": 3}"#,
            "{",
            r#"{"on_error": "ignore"}"#,
            r#"{"columns": 3}"#,
            r#"{"format": "xls"}"#,
        ] {
            assert_eq!(
                loader_config(Some(bad)).unwrap_err().status,
                ZENITH_ERR_INVALID_ARG,
                "{bad}"
            );
        }
        assert_eq!(column_list(None).unwrap(), None);
        assert_eq!(
            column_list(Some(r#"["a"]"#)).unwrap(),
            Some(vec!["a".to_string()])
        );
        assert_eq!(
            init_config(Some(r#"{"threads": 2}"#)).unwrap_err().status,
            ZENITH_ERR_INVALID_ARG
        );
    }
}
