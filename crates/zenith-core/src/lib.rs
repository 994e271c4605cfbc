//! Zenith's data-loading engine.
pub mod error;
pub mod source;
pub use error::{Error, ErrorKind, Result};
