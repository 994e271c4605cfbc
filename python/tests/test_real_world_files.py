"""Files as other writers leave them: zenith.load and zenith.info against pyarrow, value for value,
for compressed Arrow IPC files and streams, pre-0.15 stream framing, schema-only streams,
dictionary deltas, content-based detection whatever the file name, big-endian files, and
pyarrow.csv.read_csv's defaults (empty strings, null spellings, integers past int64)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import zenith
from pyarrow import feather, ipc

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "zenith-core" / "tests" / "data" / "ipc"


def real_world_table() -> pa.Table:
    n = 50
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "x": pa.array([None if i % 7 == 0 else i * 0.25 for i in range(n)], pa.float64()),
            "s": pa.array([None if i % 9 == 0 else f"s{i % 5}" for i in range(n)], pa.string()),
            "i32": pa.array([i * -3 for i in range(n)], pa.int32()),
        }
    )


def write_stream(path: Path, batches: list[pa.RecordBatch], **options: object) -> None:
    with ipc.new_stream(path, batches[0].schema, options=ipc.IpcWriteOptions(**options)) as w:
        for b in batches:
            w.write_batch(b)


def assert_same(path: Path, expected: pa.Table, fmt: str) -> None:
    loaded = zenith.load(path)
    assert loaded.schema.equals(expected.schema)
    assert loaded.to_pylist() == expected.to_pylist()
    summary = zenith.info(path, verbose=False)
    assert summary["format"] == fmt
    assert summary["rows"] == expected.num_rows


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_compressed_ipc_file(tmp_path: Path, compression: str) -> None:
    t = real_world_table()
    path = tmp_path / f"{compression}.feather"
    feather.write_feather(t, path, compression=compression, chunksize=16)
    assert_same(path, feather.read_table(path), "arrow")
    assert zenith.info(path, verbose=False)["files"][0]["units"] == 4


def test_feather_default_is_lz4_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "default.feather"
    feather.write_feather(real_world_table(), path)
    assert_same(path, feather.read_table(path), "arrow")


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_compressed_ipc_file_and_stream_with_options(tmp_path: Path, compression: str) -> None:
    t = real_world_table()
    batches = t.to_batches(max_chunksize=20)
    file = tmp_path / "t.arrow"
    with ipc.new_file(file, t.schema, options=ipc.IpcWriteOptions(compression=compression)) as w:
        for b in batches:
            w.write_batch(b)
    assert_same(file, ipc.open_file(file).read_all(), "arrow")
    stream = tmp_path / "t.arrows"
    write_stream(stream, batches, compression=compression)
    assert_same(stream, ipc.open_stream(stream).read_all(), "arrows")


@pytest.mark.parametrize("name", ["t.stream", "t.arrows", "t", "t.bin", "t.arrow", "t.csv"])
def test_streams_detected_from_content(tmp_path: Path, name: str) -> None:
    t = real_world_table()
    for legacy in [False, True]:
        path = tmp_path / name
        write_stream(path, t.to_batches(max_chunksize=16), use_legacy_format=legacy)
        assert_same(path, ipc.open_stream(path).read_all(), "arrows")
        path.unlink()


@pytest.mark.parametrize("name", ["t.ipc", "t", "t.data", "t.arrows", "t.csv"])
def test_ipc_file_detected_from_magic(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    feather.write_feather(real_world_table(), path)
    assert_same(path, feather.read_table(path), "arrow")


def test_legacy_stream_format(tmp_path: Path) -> None:
    path = tmp_path / "legacy.arrows"
    t = real_world_table()
    write_stream(path, t.to_batches(max_chunksize=16), use_legacy_format=True)
    assert path.read_bytes()[:4] != b"\xff\xff\xff\xff"
    assert_same(path, ipc.open_stream(path).read_all(), "arrows")
    assert zenith.info(path, verbose=False)["files"][0]["units"] == 4


@pytest.mark.parametrize("legacy", [False, True])
def test_schema_only_stream(tmp_path: Path, legacy: bool) -> None:
    t = real_world_table()
    path = tmp_path / "empty.arrows"
    with ipc.new_stream(path, t.schema, options=ipc.IpcWriteOptions(use_legacy_format=legacy)):
        pass
    expected = ipc.open_stream(path).read_all()
    assert expected.num_rows == 0
    loaded = zenith.load(path)
    assert loaded.num_rows == 0
    assert loaded.schema.equals(expected.schema)
    assert zenith.info(path, verbose=False)["rows"] == 0


@pytest.mark.parametrize("deltas", [False, True])
def test_stream_dictionaries_grow(tmp_path: Path, deltas: bool) -> None:
    schema = pa.schema([("k", pa.dictionary(pa.int32(), pa.string())), ("v", pa.int32())])
    words = ["a", "b", "c", "d", "e"]
    batches = []
    for size, keys in [(2, [0, 1, 1]), (3, [2, 0]), (5, [4, 3, 1, 2])]:
        k = pa.DictionaryArray.from_arrays(pa.array(keys, pa.int32()), pa.array(words[:size]))
        batches.append(pa.record_batch([k, pa.array(range(len(keys)), pa.int32())], schema=schema))
    path = tmp_path / "dict.arrows"
    write_stream(path, batches, emit_dictionary_deltas=deltas)
    expected = ipc.open_stream(path).read_all()
    loaded = zenith.load(path)
    assert loaded.schema.equals(expected.schema)
    assert loaded.to_pylist() == expected.to_pylist()
    assert loaded.column("k").to_pylist() == ["a", "b", "b", "c", "a", "e", "d", "b", "c"]


def test_big_endian_file_swapped_like_pyarrow(tmp_path: Path) -> None:
    # Built by the Rust test big_endian_file_is_swapped_to_native (pyarrow cannot write one).
    path = tmp_path / "be.arrow"
    shutil.copy(FIXTURES / "big-endian.arrow", path)
    expected = ipc.open_file(path).read_all()
    assert expected.column("i").to_pylist() == [1, None, -2, 0x01020304, -(2**31)]
    assert_same(path, expected, "arrow")


def test_every_checked_in_ipc_fixture_matches_pyarrow(tmp_path: Path) -> None:
    for path in sorted(FIXTURES.iterdir()):
        if path.suffix in (".arrow", ".feather"):
            expected = ipc.open_file(path).read_all()
        else:
            expected = ipc.open_stream(path).read_all()
        loaded = zenith.load(path)
        assert loaded.schema.equals(expected.schema), path
        assert loaded.to_pylist() == expected.to_pylist(), path


def csv_same(tmp_path: Path, text: str) -> pa.Table:
    path = tmp_path / "t.csv"
    path.write_text(text)
    expected = pacsv.read_csv(path)
    loaded = zenith.load(path)
    assert loaded.schema.equals(expected.schema), (loaded.schema, expected.schema)
    assert loaded.to_pylist() == expected.to_pylist()
    return expected


def test_csv_empty_string_field_is_empty_not_null(tmp_path: Path) -> None:
    t = csv_same(tmp_path, 's,n,q\na,1,"x"\n,2,""\nc,,z\n')
    assert t.column("s").to_pylist() == ["a", "", "c"]
    assert t.column("q").to_pylist() == ["x", "", "z"]
    assert t.column("n").to_pylist() == [1, 2, None]


def test_csv_integers_at_the_int64_limits(tmp_path: Path) -> None:
    t = csv_same(tmp_path, "big\n9223372036854775807\n-9223372036854775808\n")
    assert t.schema.field("big").type == pa.int64()


@pytest.mark.parametrize("values", [["1", "9223372036854775808"], ["-9223372036854775809", "2"]])
def test_csv_integers_past_int64(tmp_path: Path, values: list[str]) -> None:
    t = csv_same(tmp_path, "big\n" + "\n".join(values) + "\n")
    assert t.schema.field("big").type == pa.float64()


def test_csv_empty_field_is_null_in_typed_columns_only(tmp_path: Path) -> None:
    t = csv_same(tmp_path, "f,i,b,s\n1.5,1,true,a\n,,,\n")
    assert t.to_pylist()[1] == {"f": None, "i": None, "b": None, "s": ""}


@pytest.mark.parametrize("spelling", pacsv.ConvertOptions().null_values)
def test_csv_every_default_null_spelling(tmp_path: Path, spelling: str) -> None:
    t = csv_same(tmp_path, f"f,i,b,s\n1.5,1,true,a\n{spelling},{spelling},{spelling},{spelling}\n")
    assert t.column("i").to_pylist() == [1, None]
    # Quoted strings take the other decode path: same values.
    csv_same(tmp_path, f'f,i,b,s\n1.5,1,true,"a"\n{spelling},{spelling},{spelling},{spelling}\n')


@pytest.mark.parametrize("spelling", ["NaN", "nan", "null", "NULL", "N/A", "NA", "n/a", "#N/A", "-nan"])
def test_csv_null_spellings(tmp_path: Path, spelling: str) -> None:
    t = csv_same(tmp_path, f"f,i,b,s\n1.5,1,true,a\n{spelling},{spelling},{spelling},{spelling}\n")
    assert t.column("f").to_pylist()[1] is None
    assert t.column("s").to_pylist()[1] == spelling


def test_csv_booleans(tmp_path: Path) -> None:
    t = csv_same(tmp_path, "b,c\ntrue,1\nTrue,0\nTRUE,1\nfalse,0\nFalse,1\nFALSE,0\n")
    assert t.column("b").type == pa.bool_()


def test_csv_timestamps(tmp_path: Path) -> None:
    t = csv_same(tmp_path, "t,d\n2021-01-01 00:00:00,2021-01-01\n2021-01-02T03:04:05,2021-12-31\n")
    assert t.schema.field("t").type == pa.timestamp("s")
    assert t.schema.field("d").type == pa.date32()


@pytest.mark.parametrize(
    "text",
    [
        "b\ntRuE\nfalse\n",
        "t\n12:34:56\n00:01\n",
        "t\n2021-01-01 00:00:00.5\n2021-01-01T00:00:01\n",
        "t\n2021-01-01 00:00:00Z\n2021-01-01T00:00:00+01:00\n",
        "t\n2021-01-01 00:00:00.5Z\n2021-01-01 00:00:00-05:30\n",
        "t\n2021-01-01 00:00:00Z\n2021-01-01 00:00:00\n",
        "f\n1.5\n-1.#IND\n-NaN\n",
        "a,b\nNA,1\nnull,2\n",
        "n\n+5\n 7 \n",
    ],
)
def test_csv_inferred_types_match_pyarrow(tmp_path: Path, text: str) -> None:
    csv_same(tmp_path, text)


@pytest.mark.parametrize(
    ("values", "pyarrow_type"),
    [
        (["1", "0", "true"], pa.bool_()),
        (["0x10"], pa.int64()),
        (["2021-01-01 00:00"], pa.timestamp("s")),
    ],
)
def test_csv_documented_differences(tmp_path: Path, values: list[str], pyarrow_type: pa.DataType) -> None:
    # Listed in crates/zenith-core/src/source/csv/mod.rs: Zenith keeps these as strings.
    path = tmp_path / "t.csv"
    path.write_text("a\n" + "\n".join(values) + "\n")
    assert pacsv.read_csv(path).schema.field("a").type == pyarrow_type
    loaded = zenith.load(path)
    assert loaded.schema.field("a").type == pa.string()
    assert loaded.column("a").to_pylist() == values


def test_csv_text_that_is_not_utf8_is_a_format_error_naming_the_byte(tmp_path: Path) -> None:
    # A two-byte character split by a line end: pyarrow reads the column as binary.
    path = tmp_path / "split.csv"
    path.write_bytes(b"a,b\n1,x\xd5\n2,\x96y\n")
    assert pacsv.read_csv(path).schema.field("b").type == pa.binary()
    with pytest.raises(zenith.exceptions.FormatError, match=r"split\.csv: byte 7: invalid UTF-8"):
        zenith.load(path)


def test_arrow_batches_keep_field_metadata_extension_types_and_nullability(tmp_path: Path) -> None:
    import uuid

    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            pa.field("u", pa.uuid(), metadata={"origin": "sensor"}),
            pa.field("n", pa.int64(), nullable=False, metadata={"unit": "count"}),
            pa.field("s", pa.string()),
        ]
    )
    ids = [uuid.UUID(int=i).bytes for i in range(6)]
    table = pa.table({"u": ids, "n": list(range(6)), "s": list("abcdef")}).cast(schema)
    pq.write_table(table, tmp_path / "u.parquet")
    dl = zenith.DataLoader(
        str(tmp_path / "u.parquet"),
        batch_size=6,
        shuffle=False,
        output="arrow",
        columns={"id": "u", "n": "n", "s": "s"},
    )
    batch = next(iter(dl))
    assert batch.schema.field("id").type == pa.uuid()
    assert batch.schema.field("id").metadata == {b"origin": b"sensor"}
    assert batch.schema.field("n").metadata == {b"unit": b"count"}
    assert not batch.schema.field("n").nullable and batch.schema.field("s").nullable
    assert batch.column("id").to_pylist() == [uuid.UUID(int=i) for i in range(6)]
