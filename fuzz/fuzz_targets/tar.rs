//! WebDataset shards: the tar index, samples and units, and each field's column. An input that
//! starts with the gzip magic is read as a `.tar.gz` shard. Images are decoded (to 8x8) so image
//! members inside shards reach their decoders too; 512-byte units make several units.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenith_core::{DecodeOptions, Format};

fuzz_target!(|data: &[u8]| {
    let ext = if data.starts_with(&[0x1f, 0x8b]) {
        "tar.gz"
    } else {
        "tar"
    };
    let options = DecodeOptions {
        image_size: Some((8, 8)),
        tar_unit_bytes: Some(512),
        ..Default::default()
    };
    zenith_fuzz::read_file(data, ext, Format::WebDataset, &options);
});
