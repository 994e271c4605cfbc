//! CSV files: header, schema inference, the split into record ranges and each range's decode.
//! Units of 64 bytes make even a small input several units, so the splitter is exercised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenith_core::{DecodeOptions, Format};

fuzz_target!(|data: &[u8]| {
    let options = DecodeOptions {
        csv_unit_bytes: Some(64),
        ..Default::default()
    };
    zenith_fuzz::read_file(data, "csv", Format::Csv, &options);
});
