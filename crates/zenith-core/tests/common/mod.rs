//! Helpers shared by the test files that read inputs as the fuzz harness does.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use zenith_core::{Dataset, DecodeOptions, Error, Format};

/// Reads `path` as the loader and `zenith.info` do: open, each file's statistics, then every
/// unit, a failing unit not stopping the others (as with `on_error="skip"`). Every error, in
/// order; an error at open (or in the projection) ends the read.
pub fn read_errors(path: &Path, format: Format, options: &DecodeOptions) -> Vec<Error> {
    let spec = path.to_string_lossy().into_owned();
    let dataset = match Dataset::open(&[spec], Some(format), options) {
        Ok(d) => d,
        Err(e) => return vec![e],
    };
    for file in dataset.files() {
        let _ = file.column_statistics();
    }
    let projection = match dataset.projection(None) {
        Ok(p) => p,
        Err(e) => return vec![e],
    };
    dataset
        .units()
        .iter()
        .filter_map(|unit| dataset.read_unit(*unit, &projection).err())
        .collect()
}

/// A plain tar shard whose one sample `sample` has the one member `sample.<ext>`.
pub fn one_member_shard(ext: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.set_size(payload.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_data(&mut header, format!("sample.{ext}"), payload)
        .unwrap();
    builder.into_inner().unwrap()
}
