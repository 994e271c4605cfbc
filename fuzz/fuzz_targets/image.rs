//! Image members (JPEG, PNG, WebP; the format from the magic bytes) through the engine's image
//! decode: the input after its first byte is the member `sample.jpg` of a one-sample shard, and
//! the first byte picks the target size (height 1 + low nibble, width 1 + high nibble), so both
//! the decode-in-place path (image already at the size) and crop-and-resize are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenith_core::{DecodeOptions, Format};

fuzz_target!(|data: &[u8]| {
    let Some((&size, image)) = data.split_first() else {
        return;
    };
    let height = u32::from(size & 0x0f) + 1;
    let width = u32::from(size >> 4) + 1;
    let options = DecodeOptions {
        image_size: Some((height, width)),
        ..Default::default()
    };
    let shard = zenith_fuzz::one_member_shard("jpg", image);
    zenith_fuzz::read_file(&shard, "tar", Format::WebDataset, &options);
});
