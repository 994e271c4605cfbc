//! Inputs the fuzz targets (fuzz/) crashed on, minimised (tests/fuzz_crashes/), read through
//! the normal API (`Dataset::open`, `column_statistics`, `Dataset::read_unit`): each must come
//! back as a typed error, never as a panic or an abort.
//!
//! The Arrow buffer ones panic inside arrow-ipc today and reach the user as the `Error::Format`
//! of the engine's panic boundary (`source::guard`), so those tests pin that message; when arrow
//! learns to reject the input itself the message changes, and the test should then pin arrow's
//! error. Schemas arrow-ipc would panic on are now refused (IPC) or set aside (the `ARROW:schema`
//! of a Parquet footer) by the engine's own check before arrow sees them.
//! The upstream write-ups are in fuzz/README.md. The `.npy` and image inputs were engine bugs
//! (a string split inside a character, an allocation sized by an image header) and now get the
//! engine's own error.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::one_member_shard;
use zenith_core::{Dataset, DecodeOptions, Error, Format};

/// The prefix `source::guard` gives the message of a caught decoder panic.
const GUARD: &str = "the decoder failed on this input: ";

/// Writes `bytes` as `input.<ext>` and reads it like the fuzz harness: the first error wins,
/// from opening or from the first failing unit.
fn first_error(bytes: &[u8], ext: &str, format: Format, options: &DecodeOptions) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("input.{ext}"));
    std::fs::write(&path, bytes).unwrap();
    common::read_errors(&path, format, options)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("input.{ext} was read without an error"))
}

/// The location and message of the first error reading `bytes` with default options, which
/// must be an `Error::Format`.
fn default_format_error(bytes: &[u8], ext: &str, format: Format) -> (String, String) {
    format_error(first_error(bytes, ext, format, &DecodeOptions::default()))
}

/// The location and message of an `Error::Format`.
fn format_error(error: Error) -> (String, String) {
    match error {
        Error::Format {
            location, message, ..
        } => (location, message),
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

/// A Parquet file whose `ARROW:schema` metadata holds a floating-point type of precision 66:
/// arrow-ipc's schema conversion panicked on it while the file was opened. The engine now
/// checks the embedded schema first and reads such a file by its Parquet schema; this
/// minimised input's row group is damaged too, and that is the error it gets.
#[test]
fn parquet_with_an_unknown_float_precision_in_its_arrow_schema() {
    let bytes = include_bytes!("fuzz_crashes/parquet_arrow_schema_float_precision.parquet");
    let (location, message) = default_format_error(bytes, "parquet", Format::Parquet);
    assert_eq!(location, "row group 0");
    assert_eq!(
        message,
        "Parquet error: Required field num_values is missing"
    );
}

/// An IPC file whose record batch announces a buffer past the end of its body: arrow-ipc's
/// reader slices the body without checking and panicked; the engine now checks every buffer of
/// a message against its body first.
#[test]
fn ipc_file_with_a_buffer_past_its_body() {
    let bytes = include_bytes!("fuzz_crashes/ipc_file_buffer_past_body.arrow");
    let (location, message) = default_format_error(bytes, "arrow", Format::Ipc);
    assert_eq!(location, "record batch 1 at byte 960");
    assert_eq!(
        message,
        "buffer 7 (offset 176, length 196610) lies outside the message body of 256 bytes"
    );
}

/// An IPC file whose boolean column announces 51539607552 values over an empty buffer:
/// arrow-buffer's `BooleanBuffer::new` asserted and panicked. This input's values buffer also
/// lies past the body, which the engine's buffer check now reports first. (Validity buffers
/// shorter than their column, inside the body, still reach that assertion and come back
/// through the panic boundary: fuzz/README.md, C.)
#[test]
fn ipc_file_with_a_boolean_column_past_its_buffer() {
    let bytes = include_bytes!("fuzz_crashes/ipc_file_boolean_past_buffer.arrow");
    let (location, message) = default_format_error(bytes, "arrow", Format::Ipc);
    assert_eq!(location, "record batch 0 at byte 328");
    assert_eq!(
        message,
        "buffer 4 (offset 160, length 68719476736) lies outside the message body of 280 bytes"
    );
}

/// An IPC stream whose schema holds an integer type of an impossible bit width (a dictionary
/// index of 0 bits): arrow-ipc's schema conversion panicked on it; the engine's schema check
/// now refuses it first.
#[test]
fn ipc_stream_with_an_impossible_integer_width() {
    let bytes = include_bytes!("fuzz_crashes/ipc_stream_int_bitwidth.arrows");
    let (location, message) = default_format_error(bytes, "arrows", Format::IpcStream);
    assert_eq!(location, "message at byte 0");
    assert_eq!(
        message,
        "column 0 (\"label\"): a dictionary index of 0 bits"
    );
}

/// A `.npy` member whose `descr` starts with a two-byte character: the byte-order split used
/// to cut inside it and panic; it is now an unsupported dtype.
#[test]
fn npy_descr_starting_with_a_multibyte_character() {
    let npy = include_bytes!("fuzz_crashes/npy_multibyte_descr.npy");
    let shard = one_member_shard("npy", npy);
    let (_, message) = default_format_error(&shard, "tar", Format::WebDataset);
    assert!(!message.contains(GUARD), "{message}");
    assert!(message.contains("unsupported npy dtype"), "{message}");
}

/// A 43-byte PNG whose header claims 524296 x 23304 pixels: decoding it used to allocate
/// 36 GB (an abort, not an error); the size is now refused before anything is allocated.
#[test]
fn png_claiming_tens_of_gigabytes() {
    let png = include_bytes!("fuzz_crashes/image_png_huge_dimensions.png");
    let shard = one_member_shard("jpg", png);
    let options = DecodeOptions {
        image_size: Some((8, 8)),
        ..Default::default()
    };
    let (_, message) = format_error(first_error(&shard, "tar", Format::WebDataset, &options));
    assert!(!message.contains(GUARD), "{message}");
    assert!(
        message.contains(
            "image of 524296x23304 pixels would decode to 36654581952 bytes, more than the \
             536870912 allowed"
        ),
        "{message}"
    );
}

/// Parquet files from the second fuzzing sweep whose `ARROW:schema` made arrow-ipc's schema
/// conversion panic at five more places (a schema without a field list, an integer width, a
/// duration unit, a decimal precision past `u8`, an unknown type tag). Each is now opened by its
/// Parquet schema: every unit reads or fails with a typed error, never the panic boundary's.
#[test]
fn parquet_footers_whose_arrow_schema_arrow_ipc_cannot_convert() {
    let inputs: [(&str, &[u8]); 5] = [
        (
            "no field list",
            include_bytes!("fuzz_crashes/parquet_arrow_schema_no_fields.parquet"),
        ),
        (
            "integer width",
            include_bytes!("fuzz_crashes/parquet_arrow_schema_int_width.parquet"),
        ),
        (
            "duration unit",
            include_bytes!("fuzz_crashes/parquet_arrow_schema_duration_unit.parquet"),
        ),
        (
            "decimal precision",
            include_bytes!("fuzz_crashes/parquet_arrow_schema_decimal_precision.parquet"),
        ),
        (
            "unknown type",
            include_bytes!("fuzz_crashes/parquet_arrow_schema_unknown_type.parquet"),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, bytes) in inputs {
        let path = dir.path().join("input.parquet");
        std::fs::write(&path, bytes).unwrap();
        let spec = path.to_string_lossy().into_owned();
        let dataset = Dataset::open(&[spec], Some(Format::Parquet), &DecodeOptions::default())
            .unwrap_or_else(|e| panic!("{what}: the footer must open by its Parquet schema: {e}"));
        let projection = dataset.projection(None).unwrap();
        for unit in dataset.units() {
            if let Err(e) = dataset.read_unit(*unit, &projection) {
                let (_, message) = format_error(e);
                assert!(!message.starts_with(GUARD), "{what}: {message}");
            }
        }
    }
}

/// A CSV file with a two-byte character split by a line end (`d5 0a 96`): arrow-csv checks the
/// UTF-8 of the fields joined together, which passes, then cuts a field ending in the lone
/// lead byte without a check (a `str` that is not UTF-8; with debug assertions, a panic). The
/// engine now refuses text that is not UTF-8 before arrow-csv sees it.
#[test]
fn csv_with_a_character_split_by_a_line_end() {
    let bytes = include_bytes!("fuzz_crashes/csv_character_split_by_line_end.csv");
    let options = DecodeOptions {
        csv_unit_bytes: Some(64),
        ..Default::default()
    };
    let (location, message) = format_error(first_error(bytes, "csv", Format::Csv, &options));
    assert_eq!(location, "byte 31");
    assert!(message.starts_with("invalid UTF-8"), "{message}");
}

/// `.npy` members whose header shape makes the stacked column's size overflow (a panic with
/// overflow checks, a wrapped size without) or ask for more memory than exists (an abort on the
/// failed allocation): the column's buffer was sized by the header. Now the size is checked and
/// the buffer grows with the members' actual bytes.
#[test]
fn npy_shapes_past_memory() {
    for (what, npy) in [
        (
            "overflowing shape",
            &include_bytes!("fuzz_crashes/npy_shape_overflows.npy")[..],
        ),
        (
            "shape past memory",
            &include_bytes!("fuzz_crashes/npy_shape_past_memory.npy")[..],
        ),
    ] {
        let shard = one_member_shard("npy", npy);
        let (_, message) = default_format_error(&shard, "tar", Format::WebDataset);
        assert!(!message.contains(GUARD), "{what}: {message}");
        assert!(
            message.contains("more bytes than fit in memory")
                || message.contains("npy data is shorter than its header says"),
            "{what}: {message}"
        );
    }
}

/// An IPC stream whose dictionary batch message has no record batch: arrow-ipc unwraps it and
/// panicked; the engine's body check now refuses the message.
#[test]
fn ipc_stream_with_a_dictionary_batch_without_data() {
    let bytes = include_bytes!("fuzz_crashes/ipc_stream_dictionary_without_data.arrows");
    let (_, message) = default_format_error(bytes, "arrows", Format::IpcStream);
    assert_eq!(message, "a dictionary batch without its record batch");
}

/// An IPC file whose validity buffer, inside the body, is shorter than its column: arrow-ipc
/// builds the bitmap before validating and arrow-buffer asserts (C in fuzz/README.md). Not
/// checked by the engine; it reaches the user as the panic boundary's `Error::Format`.
#[test]
fn ipc_file_with_a_validity_buffer_shorter_than_its_column() {
    let bytes = include_bytes!("fuzz_crashes/ipc_file_validity_shorter_than_column.arrow");
    let (_, message) = default_format_error(bytes, "arrow", Format::Ipc);
    assert!(
        message.starts_with(&format!("{GUARD}buffer not large enough")),
        "{message}"
    );
}
