//! Every reader against damaged copies of valid files: each seed of the fuzz corpus
//! (`fuzz/corpus/<target>/`: Parquet, Arrow IPC files and streams, CSV, WebDataset shards,
//! `.npy` members and JPEG/PNG/WebP members) truncated at many lengths, with single bits
//! flipped, and with length fields inflated (the format's own length and size fields, and
//! 4-byte words throughout), read through `Dataset::open` and every `read_unit` as the loader
//! reads it. Every answer must be values or a typed `Error`; a panic that unwinds out of the
//! engine fails the test with the seed and the damage.
//!
//! A panic inside a decoder dependency is caught at the engine's boundary (`source::guard`)
//! and returned as `Error::Format` ("the decoder failed on this input"): typed, so it passes,
//! and it is counted and printed so that such inputs can be reported (fuzz/README.md lists the
//! ones found).
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::one_member_shard;
use zenith_core::{DecodeOptions, Format};

const GUARD_MESSAGE: &str = "the decoder failed on this input";

/// Bytes to write at an offset.
type Patch = (usize, Vec<u8>);

/// One reader: the fuzz target's seeds, how an input becomes a file, and the options.
struct Reader {
    target: &'static str,
    ext: &'static str,
    format: Format,
    options: DecodeOptions,
    /// The bytes of the file for an input (a shard around a member, for npy and images).
    wrap: fn(&[u8]) -> Vec<u8>,
    /// Offsets and widths of the format's own length or size fields in a seed.
    length_fields: fn(&[u8]) -> Vec<Patch>,
}

fn readers() -> Vec<Reader> {
    let none = |_: &[u8]| Vec::new();
    vec![
        Reader {
            target: "parquet",
            ext: "parquet",
            format: Format::Parquet,
            options: DecodeOptions::default(),
            wrap: <[u8]>::to_vec,
            // The footer length before the closing magic.
            length_fields: |b| at_end(b, 8, &0x7fff_fff0u32.to_le_bytes()),
        },
        Reader {
            target: "ipc_file",
            ext: "arrow",
            format: Format::Ipc,
            options: DecodeOptions::default(),
            wrap: <[u8]>::to_vec,
            // The first message's length after the magic and continuation marker; the
            // footer length before the closing magic.
            length_fields: |b| {
                let mut out = vec![(12, 0x7fff_fff0u32.to_le_bytes().to_vec())];
                out.extend(at_end(b, 10, &0x7fff_fff0u32.to_le_bytes()));
                out
            },
        },
        Reader {
            target: "ipc_stream",
            ext: "arrows",
            format: Format::IpcStream,
            options: DecodeOptions::default(),
            wrap: <[u8]>::to_vec,
            // The schema message's length after the continuation marker.
            length_fields: |_| vec![(4, 0x7fff_fff0u32.to_le_bytes().to_vec())],
        },
        Reader {
            target: "csv",
            ext: "csv",
            format: Format::Csv,
            options: DecodeOptions {
                csv_unit_bytes: Some(64),
                ..Default::default()
            },
            wrap: <[u8]>::to_vec,
            length_fields: none,
        },
        Reader {
            target: "tar",
            ext: "tar",
            format: Format::WebDataset,
            options: DecodeOptions {
                image_size: Some((8, 8)),
                tar_unit_bytes: Some(512),
                ..Default::default()
            },
            wrap: <[u8]>::to_vec,
            // The first member's size field (12 octal digits at byte 124 of its header).
            length_fields: |_| vec![(124, b"77777777777\0".to_vec())],
        },
        Reader {
            target: "npy",
            ext: "tar",
            format: Format::WebDataset,
            options: DecodeOptions::default(),
            wrap: |b| one_member_shard("npy", b),
            // The header length after the magic and version (u16, or u32 from version 2).
            length_fields: |_| vec![(8, vec![0xff, 0xff]), (8, vec![0xff, 0xff, 0xff, 0x7f])],
        },
        Reader {
            target: "image",
            ext: "tar",
            format: Format::WebDataset,
            options: DecodeOptions {
                image_size: Some((8, 8)),
                ..Default::default()
            },
            // The seed's first byte is the fuzz target's size byte.
            wrap: |b| one_member_shard("jpg", b.get(1..).unwrap_or_default()),
            // A PNG's IHDR width and height (bytes 16-24 of the image, 17-25 of the seed).
            length_fields: |_| vec![(17, vec![0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff])],
        },
    ]
}

fn at_end(bytes: &[u8], from_end: usize, value: &[u8]) -> Vec<Patch> {
    bytes
        .len()
        .checked_sub(from_end)
        .map(|at| vec![(at, value.to_vec())])
        .unwrap_or_default()
}

/// The damaged copies of `seed`: (what was done, bytes).
fn damaged(seed: &[u8], length_fields: &[Patch]) -> Vec<(String, Vec<u8>)> {
    let len = seed.len();
    let mut out = Vec::new();
    // Truncated: the empty file, the first byte, then lengths spread over the file.
    let mut cuts: Vec<usize> = vec![0, 1, len / 4, len / 2, 3 * len / 4, len.saturating_sub(1)];
    cuts.extend((0..len).step_by((len / 24).max(1)));
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts.into_iter().filter(|&c| c < len) {
        out.push((format!("truncated to {cut} bytes"), seed[..cut].to_vec()));
    }
    // One bit flipped, at positions spread over the file (the bit varies with the position).
    for at in (0..len).step_by((len / 96).max(1)) {
        let mut bytes = seed.to_vec();
        bytes[at] ^= 1 << (at % 8);
        out.push((format!("bit {} of byte {at} flipped", at % 8), bytes));
    }
    // Lengths inflated: the format's own fields, then 4-byte words spread over the file read
    // as little- and big-endian lengths.
    let mut fields: Vec<Patch> = length_fields.to_vec();
    for at in (0..len.saturating_sub(4)).step_by((len / 48).max(1)) {
        fields.push((at, vec![0xf0, 0xff, 0xff, 0x7f]));
        fields.push((at, vec![0x7f, 0xff, 0xff, 0xf0]));
    }
    for (at, value) in fields {
        if at + value.len() <= len {
            let mut bytes = seed.to_vec();
            bytes[at..at + value.len()].copy_from_slice(&value);
            out.push((
                format!("{} bytes at {at} set to {value:02x?}", value.len()),
                bytes,
            ));
        }
    }
    out
}

/// How one damaged input ended.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Outcome {
    /// Opened and every unit decoded.
    Read,
    /// A typed error at open or in a unit (a loader with `on_error="skip"` skips the unit).
    Rejected,
    /// A typed error that the panic boundary made of a dependency's panic.
    CaughtPanic,
}

fn read(path: &Path, reader: &Reader) -> Result<(Outcome, Vec<String>), String> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        common::read_errors(path, reader.format, &reader.options)
    }));
    let errors = result.map_err(|panic| zenith_core::error::panic_message(panic.as_ref()))?;
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if let Some(missing) = texts.iter().find(|t| !t.contains(&*path.to_string_lossy())) {
        return Err(format!("an error that does not name the file: {missing}"));
    }
    let outcome = if texts.iter().any(|t| t.contains(GUARD_MESSAGE)) {
        Outcome::CaughtPanic
    } else if texts.is_empty() {
        Outcome::Read
    } else {
        Outcome::Rejected
    };
    Ok((outcome, texts))
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn damaged_files_give_values_or_typed_errors_in_every_reader() {
    // Panics caught by the boundary would print their message for each input: keep the log to
    // the summary below.
    std::panic::set_hook(Box::new(|_| {}));
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut summary = BTreeMap::new();
    let mut caught = Vec::new();
    for reader in readers() {
        let seeds = seeds(reader.target);
        assert!(!seeds.is_empty(), "no seeds for {}", reader.target);
        for (name, seed) in &seeds {
            // A gzip-compressed shard is read as one by its name.
            let ext = if seed.starts_with(&[0x1f, 0x8b]) && reader.ext == "tar" {
                "tar.gz"
            } else {
                reader.ext
            };
            let path = dir.path().join(format!("input.{ext}"));
            // The seed itself reads, or is rejected by design (shards whose samples do not
            // all have the same fields): never a caught panic.
            std::fs::write(&path, (reader.wrap)(seed)).unwrap();
            let clean = read(&path, &reader);
            if !matches!(clean, Ok((Outcome::Read | Outcome::Rejected, _))) {
                failures.push(format!(
                    "{}/{name} is not a clean seed: {clean:?}",
                    reader.target
                ));
                continue;
            }
            for (damage, bytes) in damaged(seed, &(reader.length_fields)(seed)) {
                std::fs::write(&path, (reader.wrap)(&bytes)).unwrap();
                match read(&path, &reader) {
                    Ok((outcome, _)) => {
                        *summary.entry((reader.target, outcome)).or_insert(0usize) += 1;
                        if outcome == Outcome::CaughtPanic {
                            caught.push(format!("{}/{name}: {damage}", reader.target));
                        }
                    }
                    Err(why) => failures.push(format!("{}/{name}, {damage}: {why}", reader.target)),
                }
            }
        }
    }
    let _ = std::panic::take_hook();
    for ((target, outcome), n) in &summary {
        eprintln!("{target:12} {outcome:?}: {n}");
    }
    for c in &caught {
        eprintln!("dependency panic caught at the boundary: {c}");
    }
    assert!(
        failures.is_empty(),
        "{} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every reader rejected some of its damaged inputs (the damage reached the decoders).
    for reader in readers() {
        let rejected = summary
            .get(&(reader.target, Outcome::Rejected))
            .copied()
            .unwrap_or(0);
        assert!(
            rejected > 0,
            "{}: no damaged input was rejected",
            reader.target
        );
    }
}
