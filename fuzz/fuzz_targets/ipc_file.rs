//! Arrow IPC files ("Feather v2"): footer, dictionaries and record batches decoded zero-copy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenith_core::{DecodeOptions, Format};

fuzz_target!(|data: &[u8]| {
    zenith_fuzz::read_file(data, "arrow", Format::Ipc, &DecodeOptions::default());
});
