//! Zenith's C ABI: `libzenith_core.so` with the header `include/zenith.h`.
//!
//! Every exported function runs its body under `catch_unwind`, checks its pointers and strings
//! (NULL, UTF-8) and returns a [`ZenithStatus`]; a failure leaves a message for
//! `zenith_last_error()` on the calling thread. Data leaves through the Arrow C Data and C Stream
//! interfaces, so a C program needs no Arrow library to read it. The Python package uses the PyO3
//! module instead; this library is for C/C++ trainers, Julia, Go and R.

#![warn(missing_docs)]

pub mod library;
pub mod loader;
pub mod status;
pub mod validate;

mod config;

pub use status::ZenithStatus;
