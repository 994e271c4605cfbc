//! The Arrow IPC readers (file and stream format) through the public API: several record
//! batches, dictionary columns and nulls come back exactly, one unit per batch; projections
//! keep the requested order; `info` counts batches and bytes; truncated or damaged files give
//! a typed error naming the file instead of a panic.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Once};

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow_ipc::writer::{FileWriter, StreamWriter};
use arrow_schema::{DataType, Field, Schema};
use zenith_core::{DecodeOptions, Error, Format, ReadOptions};

/// `id` first.., `x` = id*1.5 (null every 4th), `label` dictionary of 3 words, `text`.
fn batch(first: i64, n: usize) -> RecordBatch {
    let ids = first..first + n as i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
        Field::new(
            "label",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        ),
        Field::new("text", DataType::Utf8, false),
    ]));
    // One dictionary for every batch: the file format allows no replacement.
    let words: ArrayRef = Arc::new(StringArray::from(vec!["cat", "dog", "emu"]));
    let keys = Int32Array::from_iter_values(ids.clone().map(|i| (i % 3) as i32));
    let label = DictionaryArray::<Int32Type>::try_new(keys, words).unwrap();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.clone())),
        Arc::new(Float64Array::from_iter(
            ids.clone().map(|i| (i % 4 != 0).then_some(i as f64 * 1.5)),
        )),
        Arc::new(label),
        Arc::new(StringArray::from_iter_values(
            ids.map(|i| format!("row {i}")),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Batch sizes written: uneven, one of them empty.
const SIZES: [usize; 5] = [100, 7, 0, 250, 43];

fn batches() -> Vec<RecordBatch> {
    let mut first = 0;
    SIZES
        .iter()
        .map(|&n| {
            let b = batch(first, n);
            first += n as i64;
            b
        })
        .collect()
}

fn write_file(path: &Path, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = FileWriter::try_new(file, &batches[0].schema()).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
}

fn write_stream(path: &Path, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = StreamWriter::try_new(file, &batches[0].schema()).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
}

fn s(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

fn read(path: &Path, columns: Option<&[&str]>) -> zenith_core::Result<Vec<RecordBatch>> {
    let opts = ReadOptions {
        columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    zenith_core::read(&s(path), &opts)
}

#[test]
fn file_and_stream_read_back_every_batch_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let want = batches();
    let file = dir.path().join("t.arrow");
    let stream = dir.path().join("t.arrows");
    // No extension: the stream is told apart by its first bytes.
    let stream_bare = dir.path().join("stream");
    write_file(&file, &want);
    write_stream(&stream, &want);
    write_stream(&stream_bare, &want);
    for (path, format) in [
        (&file, Format::Ipc),
        (&stream, Format::IpcStream),
        (&stream_bare, Format::IpcStream),
    ] {
        let got = read(path, None).unwrap();
        assert_eq!(got, want, "{}", path.display());
        let info = zenith_core::info(&[s(path)], None, &DecodeOptions::default()).unwrap();
        assert_eq!(info.format, format);
        assert_eq!(info.rows, 400);
        assert_eq!(info.files.len(), 1);
        assert_eq!(info.files[0].units, 5);
        assert_eq!(info.files[0].bytes, std::fs::metadata(path).unwrap().len());
        assert_eq!(info.bytes, info.files[0].bytes);
        assert!(info.statistics.is_none());
        let ds = zenith_core::Dataset::open(&[s(path)], None, &DecodeOptions::default()).unwrap();
        let rows: Vec<usize> = ds.units().iter().map(|u| u.rows).collect();
        assert_eq!(rows, SIZES);
    }
    let fixed = zenith_core::load_arrow_ipc(&s(&file)).unwrap();
    assert_eq!(fixed, want);
}

#[test]
fn projection_keeps_the_requested_order() {
    let dir = tempfile::tempdir().unwrap();
    let want = batches();
    let file = dir.path().join("t.arrow");
    let stream = dir.path().join("t.arrows");
    write_file(&file, &want);
    write_stream(&stream, &want);
    for path in [&file, &stream] {
        for cols in [
            vec!["text", "id"],
            vec!["label"],
            vec!["x", "label", "id", "text"],
        ] {
            let got = read(path, Some(&cols)).unwrap();
            let indices: Vec<usize> = cols
                .iter()
                .map(|c| want[0].schema().index_of(c).unwrap())
                .collect();
            let expect: Vec<RecordBatch> =
                want.iter().map(|b| b.project(&indices).unwrap()).collect();
            assert_eq!(got, expect, "{} {cols:?}", path.display());
        }
        let err = read(path, Some(&["id", "nope"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: unknown column \"nope\"; available columns: id, x, label, text",
                path.display()
            )
        );
    }
}

#[test]
fn several_files_concatenate_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let all = batches();
    write_file(&dir.path().join("2.arrow"), &all[3..]);
    write_file(&dir.path().join("1.arrow"), &all[..3]);
    let got = read(dir.path(), None).unwrap();
    assert_eq!(got, all);
}

/// Runs `f`, failing the test with `what` if it panics.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: the reader panicked: {msg}");
        }
    }
}

#[test]
fn a_truncated_file_or_stream_is_a_format_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.arrow");
    let good_stream = dir.path().join("good.arrows");
    write_file(&good, &batches());
    write_stream(&good_stream, &batches());
    for (source, ext) in [(&good, "arrow"), (&good_stream, "arrows")] {
        let bytes = std::fs::read(source).unwrap();
        let path = dir.path().join(format!("cut.{ext}"));
        for keep in [
            0,
            6,
            15,
            200,
            bytes.len() / 2,
            bytes.len() - 10,
            bytes.len() - 1,
        ] {
            std::fs::write(&path, &bytes[..keep]).unwrap();
            let what = format!("{ext} cut to {keep} of {} bytes", bytes.len());
            let err = no_panic(&what, || read(&path, None)).unwrap_err();
            match &err {
                Error::Format { path: p, .. } => assert_eq!(p, &path, "{what}"),
                other => panic!("{what}: {other}"),
            }
        }
    }
    // The stream's end-of-stream marker is optional: cutting exactly it off loses nothing.
    let bytes = std::fs::read(&good_stream).unwrap();
    let path = dir.path().join("no-eos.arrows");
    std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
    assert_eq!(read(&path, None).unwrap(), batches());
}

#[test]
fn a_file_without_magic_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.arrow");
    std::fs::write(&path, b"not an arrow file at all").unwrap();
    let err = read(&path, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: byte 0: not an Arrow IPC file (missing ARROW1 magic)",
            path.display()
        )
    );
}

thread_local! {
    /// Where the last panic of this thread that began in a dependency happened (file:line and
    /// message); such panics are recorded here instead of printed. A single file is opened on
    /// the calling thread, so its panics land here.
    static DEPENDENCY_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that records panics raised inside dependencies and passes
/// every other panic to the default hook.
fn record_dependency_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if at.contains("/.cargo/registry/") {
                let msg = info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                DEPENDENCY_PANIC.with(|p| *p.borrow_mut() = Some((at, msg)));
            } else {
                default(info);
            }
        }));
    });
}

/// A panic while reading a damaged file: which byte was flipped, where it panicked, why.
struct Panicked {
    byte: usize,
    at: String,
    message: String,
}

/// Flips every byte of small IPC files and streams in turn and reads them; returns the
/// panics. Every read that returns must give valid arrays or a typed error naming the file.
fn flip_every_byte() -> Vec<Panicked> {
    record_dependency_panics();
    let dir = tempfile::tempdir().unwrap();
    let small: Vec<RecordBatch> = vec![batch(0, 5), batch(5, 3)];
    let mut panics = Vec::new();
    for ext in ["arrow", "arrows"] {
        let good = dir.path().join(format!("good.{ext}"));
        if ext == "arrow" {
            write_file(&good, &small);
        } else {
            write_stream(&good, &small);
        }
        let bytes = std::fs::read(&good).unwrap();
        let path = dir.path().join(format!("flipped.{ext}"));
        let mut errors = 0;
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0xff;
            std::fs::write(&path, &damaged).unwrap();
            let what = format!("{ext}: byte {at} of {} flipped", bytes.len());
            // Validating touches every offset, so a bad one shows here and not later.
            let result = catch_unwind(AssertUnwindSafe(|| {
                read(&path, None).map(|b| {
                    b.iter()
                        .map(|b| {
                            b.columns()
                                .iter()
                                .try_for_each(|c| c.to_data().validate_full())
                        })
                        .collect::<Vec<_>>()
                })
            }));
            match result {
                Ok(Ok(checks)) => {
                    for check in checks {
                        assert!(
                            check.is_ok(),
                            "{what}: an invalid array was served: {check:?}"
                        );
                    }
                }
                Ok(Err(e)) => {
                    errors += 1;
                    assert!(
                        e.to_string().contains(&s(&path)),
                        "{what}: the error does not name the file: {e}"
                    );
                }
                Err(payload) => {
                    let (at_line, message) = DEPENDENCY_PANIC
                        .with(|p| p.borrow_mut().take())
                        .unwrap_or_else(|| {
                            let msg = payload
                                .downcast_ref::<String>()
                                .cloned()
                                .unwrap_or_default();
                            ("zenith".to_string(), msg)
                        });
                    panics.push(Panicked {
                        byte: at,
                        at: format!("{ext}: {at_line}"),
                        message,
                    });
                }
            }
        }
        assert!(errors > 0, "{ext}");
    }
    panics
}

fn describe(panics: &[Panicked]) -> String {
    let lines: Vec<String> = panics
        .iter()
        .map(|p| format!("byte {} flipped: {}: {}", p.byte, p.at, p.message))
        .collect();
    format!("{} reads panicked:\n{}", lines.len(), lines.join("\n"))
}

#[test]
fn a_flipped_byte_never_panics_in_zenith_code() {
    let ours: Vec<Panicked> = flip_every_byte()
        .into_iter()
        .filter(|p| !p.at.contains("/.cargo/registry/"))
        .collect();
    assert!(ours.is_empty(), "{}", describe(&ours));
}

/// arrow-ipc 59.3.2 panics on some damaged files instead of returning an error (e.g. a flipped
/// null count of a dictionary batch: `buffer not large enough` in arrow-buffer's
/// `BooleanBuffer::new` via `FileDecoder::read_dictionary`); the engine's decode boundary turns
/// each such panic into a `FormatError` naming the file.
#[test]
fn a_flipped_byte_never_panics() {
    let panics = flip_every_byte();
    assert!(panics.is_empty(), "{}", describe(&panics));
}

/// A compressed buffer whose declared uncompressed length is inflated (2^45 bytes) is refused
/// before the reader allocates it: such an allocation fails and aborts the process, which no
/// panic boundary catches.
#[test]
fn an_inflated_uncompressed_length_is_a_format_error_not_an_abort() {
    use arrow_ipc::writer::IpcWriteOptions;
    use arrow_ipc::CompressionType;
    let dir = tempfile::tempdir().unwrap();
    for (stream, ext, format) in [
        (true, "arrows", Format::IpcStream),
        (false, "arrow", Format::Ipc),
    ] {
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::ZSTD))
            .unwrap();
        let b = batch(0, 500);
        let mut bytes = Vec::new();
        if stream {
            let mut w =
                StreamWriter::try_new_with_options(&mut bytes, &b.schema(), options).unwrap();
            w.write(&b).unwrap();
            w.finish().unwrap();
        } else {
            let mut w = FileWriter::try_new_with_options(&mut bytes, &b.schema(), options).unwrap();
            w.write(&b).unwrap();
            w.finish().unwrap();
        }
        // The record batch message: past the schema and the dictionary messages.
        let meta_len =
            |at: usize| u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let mut at = if stream {
            0
        } else {
            // The file's first block, from its footer.
            let trailer: [u8; 10] = bytes[bytes.len() - 10..].try_into().unwrap();
            let footer_len = arrow_ipc::reader::read_footer_length(trailer).unwrap();
            let footer_at = bytes.len() - 10 - footer_len;
            let footer = arrow_ipc::root_as_footer(&bytes[footer_at..bytes.len() - 10]).unwrap();
            let first = footer.dictionaries().unwrap().get(0);
            first.offset() as usize
        };
        let (body, first) = loop {
            let meta = meta_len(at);
            let message = arrow_ipc::root_as_message(&bytes[at + 8..at + 8 + meta]).unwrap();
            if let Some(batch) = message.header_as_record_batch() {
                let buffers = batch.buffers().unwrap();
                let first = buffers.iter().find(|b| b.length() >= 8).unwrap().offset();
                break (at + 8 + meta, first as usize);
            }
            at += 8 + meta + message.bodyLength() as usize;
        };
        bytes[body + first..body + first + 8].copy_from_slice(&(1i64 << 45).to_le_bytes());
        let path = dir.path().join(format!("inflated.{ext}"));
        std::fs::write(&path, &bytes).unwrap();
        let options = ReadOptions {
            format: Some(format),
            ..Default::default()
        };
        let e = zenith_core::read(path.to_str().unwrap(), &options).unwrap_err();
        assert!(matches!(e, Error::Format { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("inflated."), "{text}");
        assert!(
            text.contains("declares 35184372088832 bytes uncompressed"),
            "{text}"
        );
    }
}
