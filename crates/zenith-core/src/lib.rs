//! Zenith's data-loading engine: format readers, a deterministic planner, a shuffle buffer,
//! collation into contiguous tensors and a bounded prefetching pipeline. No Python here.
//!
//! ```no_run
//! use zenith_core::{DataLoader, LoaderConfig};
//! let loader = DataLoader::new(&["data/train/".to_string()], LoaderConfig { batch_size: 64, ..Default::default() })?;
//! for batch in loader.record_batches()? {
//!     let batch = batch?;
//!     assert!(batch.num_rows() <= 64);
//! }
//! # Ok::<(), zenith_core::Error>(())
//! ```

pub mod cache;
pub mod collate;
pub mod dataset;
pub mod dtype;
pub mod error;
pub mod loader;
pub mod plan;
pub mod pool;
pub mod read;
pub mod source;
pub mod stage;
pub mod store;

pub use collate::{BatchColumn, FieldSource, OutputField, Tensor, TensorData};
pub use dataset::{Dataset, Projection, UnitRef};
pub use dtype::DType;
pub use error::{Error, ErrorKind, Result};
pub use loader::{
    merge_states, Batch, BatchIterator, DataLoader, LoaderConfig, LoaderState, OnError, OutputKind,
    Poll, StatsSnapshot,
};
pub use plan::{PlanState, Resume, Stop};
pub use read::{
    info, load_arrow_ipc, load_csv, load_parquet, read, read_many, ColumnStatistics, ColumnStorage,
    DatasetInfo, FileInfo, ReadOptions, ReadProgress, StatValue,
};
pub use source::{DecodeOptions, Format};
pub use stage::{SampleContext, SampleStage};
pub use store::StorageOptions;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
