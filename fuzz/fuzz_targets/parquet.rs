//! Parquet files: footer and schema, statistics, and every row group decoded, through
//! `Dataset::open` over a file (positioned reads, the streaming default).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenith_core::{DecodeOptions, Format};

fuzz_target!(|data: &[u8]| {
    zenith_fuzz::read_file(data, "parquet", Format::Parquet, &DecodeOptions::default());
});
