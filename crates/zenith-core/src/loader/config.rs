//! The loader's settings and the one parser of each option string they take, shared by the
//! Python bindings and the C ABI so that both accept the same spellings with the same errors.

use std::str::FromStr;
use std::sync::Arc;

use crate::collate::OutputField;
use crate::error::{Error, Result};
use crate::source::{DecodeOptions, Format};
use crate::stage::{PackConfig, SampleStage};

/// What to do with a unit that fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop the iteration with the error (default).
    #[default]
    Raise,
    /// Skip the unit, count it in the loader's stats and log its location.
    Skip,
}

impl FromStr for OnError {
    type Err = Error;

    /// `"raise"` or `"skip"`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "raise" => Ok(OnError::Raise),
            "skip" => Ok(OnError::Skip),
            other => Err(Error::invalid(
                "on_error",
                format!("{other:?}; expected \"raise\" or \"skip\""),
            )),
        }
    }
}

/// Output form of batch columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputKind {
    /// Numbers and fixed-size lists become contiguous tensors; other columns stay Arrow.
    #[default]
    Tensors,
    /// Every column stays an Arrow array.
    Arrow,
}

impl FromStr for OutputKind {
    type Err = Error;

    /// `"tensors"` (also spelled `"numpy"` or `"torch"`: the tensors are the same, the
    /// front end decides the array type) or `"arrow"`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tensors" | "numpy" | "torch" => Ok(OutputKind::Tensors),
            "arrow" => Ok(OutputKind::Arrow),
            other => Err(Error::invalid(
                "output",
                format!("{other:?}; expected \"numpy\", \"torch\", \"tensors\" or \"arrow\""),
            )),
        }
    }
}

/// Parses a CSV delimiter given as text: exactly one ASCII character.
pub fn parse_delimiter(text: &str) -> Result<u8> {
    match text.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(Error::invalid(
            "delimiter",
            format!("{text:?} is not one ASCII character"),
        )),
    }
}

/// Settings of a [`DataLoader`](super::DataLoader).
#[derive(Clone)]
pub struct LoaderConfig {
    /// Rows per batch; the last batch of an epoch may be shorter unless `drop_last`.
    pub batch_size: usize,
    /// Permute units and rows each epoch.
    pub shuffle: bool,
    /// Base seed of every permutation.
    pub seed: u64,
    /// Output fields; every column as itself when `None`.
    pub columns: Option<Vec<OutputField>>,
    /// Decode threads; `ZENITH_NUM_WORKERS` or one fewer than the usable CPUs (at least one)
    /// when `None`.
    pub num_workers: Option<usize>,
    /// Drop the last short batch.
    pub drop_last: bool,
    /// Batches prepared ahead of the consumer (default 8).
    pub prefetch: Option<usize>,
    /// This process's rank.
    pub rank: usize,
    /// Number of ranks.
    pub world_size: usize,
    /// Error policy.
    pub on_error: OnError,
    /// Output form.
    pub output: OutputKind,
    /// Rows per shuffle window; derived from `memory_budget` when `None`.
    pub shuffle_window: Option<usize>,
    /// Bytes the shuffle may hold; a dataset that fits is permuted exactly (one window).
    /// Default: [`super::DEFAULT_MEMORY_BUDGET`] (200 MB).
    pub memory_budget: Option<usize>,
    /// Format override.
    pub format: Option<Format>,
    /// Decoder settings.
    pub decode: DecodeOptions,
    /// Per-sample stages applied, in order, to every decoded unit before collation (see
    /// [`crate::stage`]).
    pub sample_stages: Vec<Arc<dyn SampleStage>>,
    /// Bytes of decoded data (in output layout) the loader may keep after the first epoch so
    /// that later epochs only permute and gather; the dataset is kept only when all of it
    /// fits. `None`: [`default_reuse_budget_for`](super::default_reuse_budget_for) (a quarter
    /// of the memory available, or `ZENITH_REUSE_BYTES`, shared by the ranks on this machine);
    /// `Some(0)`: never keep.
    pub reuse_budget: Option<usize>,
    /// Sequence packing of a token column (see [`crate::stage::pack`]): batches become
    /// `batch_size` sequences of `seq_len` tokens.
    pub pack: Option<PackConfig>,
    /// Rows to keep: units whose statistics rule the filter out are never read, and the rows
    /// of the others are filtered exactly as they are decoded. The plan (shuffle, rank split,
    /// resume positions) counts the rows of the units read, before the filter, so an epoch's
    /// order and its resume are exact; batches are filled from the rows kept, and `len()` is
    /// an upper bound.
    pub filter: Option<Arc<crate::source::predicate::Predicate>>,
}

impl std::fmt::Debug for LoaderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stages: Vec<&str> = self.sample_stages.iter().map(|s| s.name()).collect();
        f.debug_struct("LoaderConfig")
            .field("batch_size", &self.batch_size)
            .field("shuffle", &self.shuffle)
            .field("seed", &self.seed)
            .field("columns", &self.columns)
            .field("num_workers", &self.num_workers)
            .field("drop_last", &self.drop_last)
            .field("prefetch", &self.prefetch)
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("on_error", &self.on_error)
            .field("output", &self.output)
            .field("shuffle_window", &self.shuffle_window)
            .field("memory_budget", &self.memory_budget)
            .field("format", &self.format)
            .field("decode", &self.decode)
            .field("sample_stages", &stages)
            .field("reuse_budget", &self.reuse_budget)
            .field("pack", &self.pack)
            .field("filter", &self.filter)
            .finish()
    }
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 32,
            shuffle: true,
            seed: 0,
            columns: None,
            num_workers: None,
            drop_last: false,
            prefetch: None,
            rank: 0,
            world_size: 1,
            on_error: OnError::Raise,
            output: OutputKind::Tensors,
            shuffle_window: None,
            memory_budget: None,
            format: None,
            decode: DecodeOptions::default(),
            sample_stages: Vec::new(),
            reuse_budget: None,
            pack: None,
            filter: None,
        }
    }
}

impl LoaderConfig {
    /// Checks the settings that need no data: sizes, rank and counts.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be at least 1"));
        }
        if self.world_size == 0 || self.rank >= self.world_size {
            return Err(Error::invalid(
                "rank",
                format!(
                    "rank {} must be below world_size {}",
                    self.rank, self.world_size
                ),
            ));
        }
        if self.num_workers == Some(0) {
            return Err(Error::invalid(
                "num_workers",
                "must be at least 1 (decoding always runs on Rust threads)",
            ));
        }
        if self.prefetch == Some(0) {
            return Err(Error::invalid("prefetch", "must be at least 1"));
        }
        if self.shuffle_window == Some(0) {
            return Err(Error::invalid("shuffle_window", "must be at least 1 row"));
        }
        if let Some(pack) = &self.pack {
            pack.validate()?;
            if self.columns.is_some() {
                return Err(Error::invalid(
                    "columns",
                    "a packed loader reads its token column (tokens=pack(column=...)) and returns the packed fields; leave columns unset",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_strings_parse_once_for_every_front_end() {
        assert_eq!("skip".parse::<OnError>().unwrap(), OnError::Skip);
        assert_eq!("raise".parse::<OnError>().unwrap(), OnError::Raise);
        for s in ["numpy", "torch", "tensors"] {
            assert_eq!(s.parse::<OutputKind>().unwrap(), OutputKind::Tensors);
        }
        assert_eq!("arrow".parse::<OutputKind>().unwrap(), OutputKind::Arrow);
        assert_eq!(
            "ignore".parse::<OnError>().unwrap_err().to_string(),
            "invalid argument `on_error`: \"ignore\"; expected \"raise\" or \"skip\""
        );
        assert!("pandas"
            .parse::<OutputKind>()
            .unwrap_err()
            .to_string()
            .starts_with("invalid argument `output`: \"pandas\""));
        assert_eq!(parse_delimiter("\t").unwrap(), b'\t');
        for bad in ["", ";;", "é"] {
            assert_eq!(
                parse_delimiter(bad).unwrap_err().kind(),
                crate::ErrorKind::InvalidArgument
            );
        }
    }

    #[test]
    fn validate_names_the_bad_setting() {
        let cases = [
            (
                LoaderConfig {
                    batch_size: 0,
                    ..Default::default()
                },
                "batch_size",
            ),
            (
                LoaderConfig {
                    rank: 2,
                    world_size: 2,
                    ..Default::default()
                },
                "rank",
            ),
            (
                LoaderConfig {
                    num_workers: Some(0),
                    ..Default::default()
                },
                "num_workers",
            ),
            (
                LoaderConfig {
                    prefetch: Some(0),
                    ..Default::default()
                },
                "prefetch",
            ),
            (
                LoaderConfig {
                    shuffle_window: Some(0),
                    ..Default::default()
                },
                "shuffle_window",
            ),
        ];
        for (config, name) in cases {
            match config.validate() {
                Err(Error::InvalidArgument { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(LoaderConfig::default().validate().is_ok());
    }
}
