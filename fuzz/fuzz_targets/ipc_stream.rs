//! Arrow IPC streams: schema, dictionary and record-batch messages decoded in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenith_core::{DecodeOptions, Format};

fuzz_target!(|data: &[u8]| {
    zenith_fuzz::read_file(data, "arrows", Format::IpcStream, &DecodeOptions::default());
});
