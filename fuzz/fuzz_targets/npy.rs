//! `.npy` arrays as WebDataset members: the input is the member `sample.npy` of a one-sample
//! shard, so its header is parsed when the shard is indexed and its values when the unit is read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenith_core::{DecodeOptions, Format};

fuzz_target!(|data: &[u8]| {
    let shard = zenith_fuzz::one_member_shard("npy", data);
    zenith_fuzz::read_file(&shard, "tar", Format::WebDataset, &DecodeOptions::default());
});
