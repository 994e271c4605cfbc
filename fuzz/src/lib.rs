//! The harness shared by the fuzz targets: it hands each input to zenith-core's normal,
//! path-based API (`Dataset::open`, then every unit through `Dataset::read_unit`), and turns the
//! one kind of failure that is a bug, a panic, into a crash libFuzzer records. A typed `Err` is
//! the correct answer to bad input and passes.
//!
//! Under libFuzzer every panic already aborts where it happens (libfuzzer-sys installs an
//! aborting panic hook, so even a panic inside the engine's `source::guard` stops the run with
//! the panicking frame on the stack). [`check`] is the second line: the guard turns a caught
//! panic into an `Error::Format` whose message holds [`GUARD_MESSAGE`], and that error is a
//! crash too, not an accepted rejection (see fuzz/README.md).

use std::path::{Path, PathBuf};

use zenith_core::{Dataset, DecodeOptions, Error, Format, Result};

/// The text `source::guard` puts in the `Error::Format` it returns for a caught decoder panic.
pub const GUARD_MESSAGE: &str = "the decoder failed on this input";

/// Panics when `error` is the panic boundary's report of a caught panic, so that it counts as a
/// crash; any other error is a typed rejection of the input and passes.
pub fn check(error: &Error) {
    let text = error.to_string();
    if text.contains(GUARD_MESSAGE) {
        panic!("source::guard caught a decoder panic: {text}");
    }
}

/// This process's scratch file `zenith-fuzz-<pid>.<ext>`, on tmpfs where there is one: the
/// extension is what the engine reads a name for (a `.tar.gz` shard is decompressed).
pub fn scratch_path(ext: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("zenith-fuzz-{}.{ext}", std::process::id()))
}

/// Writes `bytes` to the scratch file named by `ext`, opens it as `format` and reads its
/// statistics and every unit, checking each error with [`check`].
pub fn read_file(bytes: &[u8], ext: &str, format: Format, options: &DecodeOptions) {
    let path = scratch_path(ext);
    // The harness's own I/O failing is no finding; stopping loudly beats fuzzing nothing.
    if let Err(e) = std::fs::write(&path, bytes) {
        panic!("harness: cannot write {}: {e}", path.display());
    }
    if let Err(e) = read_path(&path, format, options) {
        check(&e);
    }
}

/// One file through the engine as a loader reads it: open (metadata, schema, units), the
/// per-file statistics `zenith.info` reports, then each unit; a failing unit does not stop the
/// others, as with `on_error="skip"`.
fn read_path(path: &Path, format: Format, options: &DecodeOptions) -> Result<()> {
    let spec = path.to_string_lossy().into_owned();
    let dataset = Dataset::open(&[spec], Some(format), options)?;
    for file in dataset.files() {
        let _ = file.column_statistics();
    }
    let projection = dataset.projection(None)?;
    for unit in dataset.units() {
        if let Err(e) = dataset.read_unit(*unit, &projection) {
            check(&e);
        }
    }
    Ok(())
}

/// A plain tar shard holding one sample, key `sample`, whose only member `sample.<ext>` is
/// `payload`: how the `.npy` and image decoders see a member.
pub fn one_member_shard(ext: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.set_size(payload.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    let mut builder = tar::Builder::new(Vec::new());
    let name = format!("sample.{ext}");
    // Writing into a Vec cannot fail for I/O; a name this short always fits a ustar header.
    if let Err(e) = builder.append_data(&mut header, &name, payload) {
        panic!("harness: cannot build the tar shard: {e}");
    }
    match builder.into_inner() {
        Ok(bytes) => bytes,
        Err(e) => panic!("harness: cannot finish the tar shard: {e}"),
    }
}
