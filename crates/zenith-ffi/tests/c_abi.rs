//! The C ABI as a C program sees it: `include/zenith.h` is current, and `tests/c/test_zenith.c`
//! compiled with `cc` against `libzenith_core.so` passes on real Parquet files, under valgrind
//! when it is installed.
// Test code: a failed assumption is a failed test (the crate lints forbid these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Rows of the test file; its row groups have 128 rows so the loader has several units.
const ROWS: i64 = 1000;

fn generate_header() -> String {
    let crate_dir = Path::new(MANIFEST_DIR);
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("reading cbindgen.toml");
    // cbindgen follows the `mod` declarations from lib.rs.
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"));
    let mut out = Vec::new();
    builder.generate().expect("cbindgen failed").write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

#[test]
fn header_is_current() {
    let path = Path::new(MANIFEST_DIR).join("include/zenith.h");
    let generated = generate_header();
    if std::env::var_os("ZENITH_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("writing include/zenith.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let fresh = std::env::temp_dir().join(format!("zenith-{}.h", std::process::id()));
        std::fs::write(&fresh, &generated).expect("writing the generated header");
        panic!(
            "crates/zenith-ffi/include/zenith.h is stale (fresh copy: {}). Regenerate it with\n  \
             ZENITH_UPDATE_HEADER=1 cargo test --release -p zenith-ffi --test c_abi header_is_current\n\
             and commit the result.",
            fresh.display()
        );
    }
}

/// Writes the file the C program checks: `id` = 0..ROWS, `x` = id / 2, `name` = "row-<id>".
fn write_data(path: &Path) {
    let ids: Vec<i64> = (0..ROWS).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(ids.clone()))),
        (
            "x",
            Arc::new(Float64Array::from_iter_values(
                ids.iter().map(|&i| i as f64 / 2.0),
            )),
        ),
        (
            "name",
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("row-{i}")),
            )),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).expect("building the batch");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(128))
        .build();
    let mut writer = ArrowWriter::try_new(
        File::create(path).expect("creating the file"),
        batch.schema(),
        Some(props),
    )
    .expect("opening the Parquet writer");
    writer.write(&batch).expect("writing rows");
    writer.close().expect("closing the Parquet file");
}

/// The directory holding `libzenith_core.so`: cargo builds the cdylib for this test run in
/// `deps/` next to the test binary (a plain `cargo build` copies it one level up).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("locating the test binary");
    let deps = exe.parent().expect("test binary has a directory");
    let found = [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .find(|d| d.join("libzenith_core.so").is_file());
    found
        .unwrap_or_else(|| panic!("libzenith_core.so not found next to {}", exe.display()))
        .to_path_buf()
}

fn valgrind() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("valgrind"))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("valgrind is not installed: running the C test without it (install it with `apt-get install -y valgrind`)");
    }
    found
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{text}",
        output.status
    );
    text
}

#[test]
fn c_program_passes() {
    let crate_dir = Path::new(MANIFEST_DIR);
    let tmp = tempfile::tempdir().expect("creating a temporary directory");
    let data = tmp.path().join("data.parquet");
    write_data(&data);
    let corrupt = tmp.path().join("corrupt.parquet");
    std::fs::write(
        &corrupt,
        b"PAR1 this is not a parquet file, its footer is garbage PAR1",
    )
    .expect("writing the corrupt file");
    let missing = tmp.path().join("missing.parquet");

    let lib_dir = library_dir();
    let exe = tmp.path().join("test_zenith");
    run(
        Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args([
                "-std=c11",
                "-g",
                "-O1",
                "-Wall",
                "-Wextra",
                "-pedantic",
                "-Werror",
            ])
            .arg("-I")
            .arg(crate_dir.join("include"))
            .arg(crate_dir.join("tests/c/test_zenith.c"))
            .arg("-o")
            .arg(&exe)
            .arg("-L")
            .arg(&lib_dir)
            .arg("-lzenith_core")
            .arg(format!("-Wl,-rpath,{}", lib_dir.display())),
        "cc",
    );

    let mut command = match valgrind() {
        Some(valgrind) => {
            let mut c = Command::new(valgrind);
            // "Possibly lost" is not an error: the process-wide decode pool keeps its threads, and
            // their thread-local blocks, alive until exit, which valgrind cannot tell from a leak.
            // Every block the program owns and forgets to release is "definitely lost".
            c.args([
                "--error-exitcode=1",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect",
                "--quiet",
            ])
            .arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    command
        .args([&data, &corrupt, &missing])
        .arg(env!("CARGO_PKG_VERSION"))
        .env("ZENITH_NUM_WORKERS", "2")
        .env("RUST_BACKTRACE", "0");
    let output = run(&mut command, "the C test program");
    assert!(
        output.contains(" passed, 0 failed"),
        "unexpected output:\n{output}"
    );
}

/// The header also compiles as C++ (its `extern "C"` blocks and enum are C++-clean).
#[test]
fn header_compiles_as_cpp() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let tmp = tempfile::tempdir().expect("creating a temporary directory");
    let source = tmp.path().join("use_header.cpp");
    std::fs::write(
        &source,
        "#include \"zenith.h\"\nint main() { ArrowArrayStream s; s.release = nullptr; return zenith_version() == nullptr && s.release; }\n",
    )
    .expect("writing the C++ file");
    match Command::new(&cxx).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!("no C++ compiler ({cxx}): skipping the C++ header check");
            return;
        }
    }
    run(
        Command::new(&cxx)
            .args([
                "-std=c++17",
                "-Wall",
                "-Wextra",
                "-pedantic",
                "-Werror",
                "-fsyntax-only",
            ])
            .arg("-I")
            .arg(Path::new(MANIFEST_DIR).join("include"))
            .arg(&source),
        "c++",
    );
}
