"""zenith.load / zenith.info: values against pyarrow for every format, projections, the cache,
zero-copy hand-over, and a typed error naming the file for every kind of bad input."""

from __future__ import annotations

import datetime
import decimal
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zenith
from pyarrow import feather, ipc

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow", "arrows"])
def test_round_trip_values(datasets: dict[str, Path], table: pa.Table, fmt: str) -> None:
    loaded = zenith.load(datasets[fmt])
    assert loaded.num_rows == table.num_rows
    assert loaded.column_names == table.column_names
    # CSV carries no types: both readers infer float64 for the float32 features.
    expected = pacsv.read_csv(datasets[fmt]) if fmt == "csv" else table
    assert loaded.equals(expected)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow", "arrows"])
def test_projection_keeps_requested_order(datasets: dict[str, Path], table: pa.Table, fmt: str) -> None:
    loaded = zenith.load(datasets[fmt], columns=["label", "f1", "id"])
    assert loaded.column_names == ["label", "f1", "id"]
    assert loaded.column("id").equals(table.column("id"))
    assert loaded.column("label").equals(table.column("label"))
    assert np.allclose(loaded.column("f1").to_numpy(), table.column("f1").to_numpy(), rtol=1e-6)


def test_filter_expression(datasets: dict[str, Path], table: pa.Table) -> None:
    loaded = zenith.load(datasets["parquet"], filter=pc.field("id") < 10)
    assert loaded.column("id").to_pylist() == list(range(10))


def all_types_table() -> pa.Table:
    n = 7
    return pa.table(
        {
            "b": pa.array([True, False, None, True, False, True, None]),
            "i8": pa.array([1, -2, None, 4, 5, -128, 127], pa.int8()),
            "i16": pa.array([1, -2, None, 4, 5, -32768, 32767], pa.int16()),
            "i32": pa.array([1, -2, None, 4, 5, 6, 2**31 - 1], pa.int32()),
            "i64": pa.array([1, -2, None, 4, 5, 6, 2**63 - 1], pa.int64()),
            "u8": pa.array([1, 2, None, 4, 5, 6, 255], pa.uint8()),
            "u16": pa.array([1, 2, None, 4, 5, 6, 65535], pa.uint16()),
            "u32": pa.array([1, 2, None, 4, 5, 6, 2**32 - 1], pa.uint32()),
            "u64": pa.array([1, 2, None, 4, 5, 6, 2**63], pa.uint64()),
            "f32": pa.array([1.5, -2.0, None, float("inf"), 0.0, 1e-30, 3.25], pa.float32()),
            "f64": pa.array([1.5, -2.0, None, float("-inf"), 0.0, 1e300, 3.25], pa.float64()),
            "s": pa.array(["a", "", None, "héllo", "x" * 100, "y", "z"]),
            "bin": pa.array([b"\x00", b"", None, b"abc", b"\xff" * 10, b"q", b"r"], pa.binary()),
            "d32": pa.array([datetime.date(2020, 1, i + 1) if i != 2 else None for i in range(n)]),
            "ts": pa.array(
                [datetime.datetime(2021, 5, 1, 12, i) if i != 2 else None for i in range(n)],
                pa.timestamp("us"),
            ),
            "dec": pa.array(
                [decimal.Decimal(f"{i}.25") if i != 2 else None for i in range(n)],
                pa.decimal128(10, 2),
            ),
            "dict": pa.array(["a", "b", None, "a", "c", "b", "a"]).dictionary_encode(),
            "lst": pa.array([[1, 2], [], None, [3], [4, 5, 6], [7], [8]], pa.list_(pa.int32())),
            "nested": pa.array(
                [[[1], [2, 3]], [], None, [[4]], [[5, 6]], [[]], [[7]]], pa.list_(pa.list_(pa.int64()))
            ),
            "fsl": pa.array(
                [[1.0, 2.0], [3.0, 4.0], None, [5.0, 6.0], [7.0, 8.0], [9.0, 1.0], [2.0, 3.0]],
                pa.list_(pa.float32(), 2),
            ),
            "st": pa.array(
                [{"a": i, "b": str(i)} if i != 2 else None for i in range(n)],
                pa.struct([("a", pa.int64()), ("b", pa.string())]),
            ),
        }
    )


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "arrows"])
def test_every_type_with_nulls(tmp_path: Path, fmt: str) -> None:
    t = all_types_table()
    path = tmp_path / f"types.{fmt}"
    if fmt == "parquet":
        pq.write_table(t, path, row_group_size=3)
        expected = pq.read_table(path)
    elif fmt == "arrow":
        feather.write_feather(t, path, compression="uncompressed", chunksize=3)
        expected = feather.read_table(path)
    else:
        with ipc.new_stream(path, t.schema) as w:
            w.write_table(t, max_chunksize=3)
        expected = ipc.open_stream(path).read_all()
    loaded = zenith.load(path)
    assert loaded.schema.equals(expected.schema)
    assert loaded.to_pylist() == expected.to_pylist()
    assert loaded.column("i64").null_count == 1


def test_csv_types_and_nulls(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('i,f,s,b\n1,1.5,"a,b",true\n,2.5,,false\n3,,"q""uote",\n')
    loaded = zenith.load(path)
    assert loaded.column("i").to_pylist() == [1, None, 3]
    assert loaded.column("f").to_pylist() == [1.5, 2.5, None]
    # As pyarrow.csv.read_csv: an empty string field is an empty string, not null.
    assert loaded.column("s").to_pylist() == ["a,b", "", 'q"uote']
    assert loaded.column("b").to_pylist() == [True, False, None]
    assert loaded.schema.field("i").type == pa.int64()


def test_csv_explicit_schema_and_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('id,text\n1,"line one\nline two"\n2,plain\n')
    schema = pa.schema([("id", pa.int32()), ("text", pa.string())])
    loaded = zenith.load(path, schema=schema)
    assert loaded.schema == schema
    assert loaded.to_pylist() == [{"id": 1, "text": "line one\nline two"}, {"id": 2, "text": "plain"}]


def test_large_csv_splits_into_parallel_ranges(tmp_path: Path) -> None:
    n = 600_000
    t = pa.table({"a": np.arange(n), "b": np.arange(n) * 0.5, "c": [f"s{i % 13}" for i in range(n)]})
    path = tmp_path / "big.csv"
    pacsv.write_csv(t, path)
    summary = zenith.info(path, verbose=False)
    assert summary["files"][0]["units"] > 1
    assert zenith.load(path).equals(pacsv.read_csv(path))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow", "arrows"])
def test_zero_row_files(tmp_path: Path, fmt: str) -> None:
    t = pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.float32())})
    path = tmp_path / f"empty.{fmt}"
    if fmt == "parquet":
        pq.write_table(t, path)
    elif fmt == "csv":
        path.write_text("a,b\n")
    elif fmt == "arrow":
        feather.write_feather(t, path, compression="uncompressed")
    else:
        with ipc.new_stream(path, t.schema) as w:
            w.write_table(t)
    loaded = zenith.load(path)
    assert loaded.num_rows == 0
    assert loaded.column_names == ["a", "b"]
    assert zenith.info(path, verbose=False)["rows"] == 0


def test_directory_glob_and_list(tmp_path: Path, table: pa.Table) -> None:
    from conftest import write_parquet_dir

    d = write_parquet_dir(table, tmp_path / "ds")
    (d / "nested").mkdir()
    pq.write_table(table.slice(0, 10), d / "nested" / "zz.parquet")
    (d / ".hidden.parquet").write_bytes(b"junk")
    (d / "_SUCCESS").write_bytes(b"")
    by_dir = zenith.load(d)
    assert by_dir.num_rows == table.num_rows + 10
    by_glob = zenith.load(str(d / "part-*.parquet"))
    assert by_glob.equals(table)
    by_list = zenith.load([d / "part-001.parquet", d / "part-000.parquet"])
    assert by_list.column("id").to_pylist()[0] == table.num_rows // 4


def test_info_reads_metadata_only(datasets: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    summary = zenith.info(datasets["parquet"])
    assert summary["format"] == "parquet"
    assert summary["rows"] == 5000
    assert len(summary["files"]) == 4
    assert [f["rows"] for f in summary["files"]] == [1250] * 4
    assert [f["units"] for f in summary["files"]] == [5] * 4  # ceil(1250 / 300) row groups
    assert summary["bytes"] == sum(p.stat().st_size for p in datasets["parquet"].iterdir())
    assert summary["schema"].names == ["id", "f0", "f1", "f2", "f3", "label"]
    out = capsys.readouterr().out
    assert "5000 rows, 4 files, 20 units" in out


def test_info_reports_parquet_statistics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Min, max and null count per column over every row group of every file, from footers."""
    d = tmp_path / "stats"
    d.mkdir()
    pq.write_table(
        pa.table({"i": pa.array([5, None, -3], pa.int64()), "f": [0.5, 2.5, 1.0],
                  "s": ["m", "b", None], "t": pa.array([1, 2, 3], pa.timestamp("ms"))}),
        d / "a.parquet", row_group_size=2,
    )
    pq.write_table(
        pa.table({"i": pa.array([40, 7, None], pa.int64()), "f": [-1.5, 0.0, 9.0],
                  "s": ["z", "c", "d"], "t": pa.array([4, 5, 6], pa.timestamp("ms"))}),
        d / "b.parquet", row_group_size=1,
    )
    stats = zenith.info(d)["statistics"]
    assert stats["i"] == {"min": -3, "max": 40, "null_count": 2}
    assert stats["f"] == {"min": -1.5, "max": 9.0, "null_count": 0}
    assert stats["s"] == {"min": "b", "max": "z", "null_count": 1}
    # Timestamps have no plain order here: counted, not ranged.
    assert stats["t"] == {"min": None, "max": None, "null_count": 0}
    assert "i: min -3, max 40, nulls 2" in capsys.readouterr().out
    # Other formats keep no statistics.
    pacsv.write_csv(pa.table({"a": [1]}), tmp_path / "x.csv")
    assert zenith.info(tmp_path / "x.csv", verbose=False)["statistics"] is None


def test_info_without_path_prints_build(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENITH_LOG_LEVEL", "debug")
    build = zenith.info()
    out = capsys.readouterr().out
    assert build["version"] == zenith.__version__
    assert build["profile"] == "release"
    assert build["threads"] >= 1
    assert f"zenith {zenith.__version__} (release build)" in out
    assert "ZENITH_LOG_LEVEL=debug" in out
    assert "ZENITH_NUM_WORKERS=(unset)" in out


def test_num_workers_env_sets_threads(datasets: dict[str, Path]) -> None:
    code = "import zenith, json; print(json.dumps(zenith.info(verbose=False)['threads']))"
    env = dict(os.environ, ZENITH_NUM_WORKERS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def test_ipc_file_is_memory_mapped_zero_copy(datasets: dict[str, Path]) -> None:
    path = datasets["arrow"]
    loaded = zenith.load(path)
    address = loaded.column("f0").chunks[0].buffers()[1].address
    maps = Path("/proc/self/maps").read_text().splitlines()
    inside = [
        line for line in maps
        if line.endswith(str(path))
        and int(line.split()[0].split("-")[0], 16) <= address < int(line.split()[0].split("-")[1], 16)
    ]
    assert inside, "the column's data buffer is not inside the file's mapping"


def test_handover_does_not_copy_buffers(datasets: dict[str, Path]) -> None:
    # Two loads served from the cache hand over the very same Rust buffers: the C stream
    # interface passes pointers, nothing is copied on the way to pyarrow.
    zenith.load(datasets["parquet"], columns=["f1"])
    a = zenith.load(datasets["parquet"], columns=["f1"])
    b = zenith.load(datasets["parquet"], columns=["f1"])
    addr_a = [c.buffers()[1].address for c in a.column("f1").chunks]
    addr_b = [c.buffers()[1].address for c in b.column("f1").chunks]
    assert addr_a == addr_b


def test_cache_serves_unchanged_and_rereads_changed(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), path)
    before = zenith.info(verbose=False)["cache"]["hits"]
    assert zenith.load(path).column("a").to_pylist() == [1, 2, 3]
    assert zenith.load(path).column("a").to_pylist() == [1, 2, 3]
    assert zenith.info(verbose=False)["cache"]["hits"] == before + 1
    pq.write_table(pa.table({"a": [4, 5, 6, 7]}), path)
    assert zenith.load(path).column("a").to_pylist() == [4, 5, 6, 7]
    assert zenith.load(path, cache=False).column("a").to_pylist() == [4, 5, 6, 7]


# ---- bad input: each raises its subclass with the file in the message -------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(zenith.SourceError, match=r"no such file or directory: .*nope\.parquet"):
        zenith.load(tmp_path / "nope.parquet")


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(zenith.SourceError, match=f"no data files found under {tmp_path}"):
        zenith.load(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.parquet"
    pq.write_table(pa.table({"a": [1]}), path)
    path.chmod(0)
    code = (
        "import zenith, sys\n"
        "try:\n    zenith.load(sys.argv[1])\n"
        "except zenith.SourceError as e:\n    print('SourceError', e)\n"
    )
    # As root, drop the capabilities that bypass file permissions so the mode bits apply.
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    out = subprocess.run(
        [*prefix, sys.executable, "-c", code, str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.startswith("SourceError"), out.stderr
    assert str(path) in out.stdout
    assert "Permission denied" in out.stdout


def test_truncated_parquet_footer(tmp_path: Path) -> None:
    path = tmp_path / "trunc.parquet"
    pq.write_table(pa.table({"a": list(range(100))}), path)
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    with pytest.raises(zenith.FormatError, match=f"{path}: footer"):
        zenith.load(path)


def test_corrupt_page(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.parquet"
    pq.write_table(pa.table({"a": np.arange(10_000)}), path, row_group_size=5000, compression="snappy")
    data = bytearray(path.read_bytes())
    meta = pq.ParquetFile(path).metadata
    start = meta.row_group(1).column(0).data_page_offset
    data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(zenith.FormatError, match=f"{path}: row group 1"):
        zenith.load(path)


@pytest.mark.parametrize("page_version", ["1.0", "2.0"])
@pytest.mark.parametrize("compression", ["snappy", "zstd", "none"])
def test_plain_numeric_pages_match_pyarrow(tmp_path: Path, page_version: str, compression: str) -> None:
    """Flat PLAIN numeric columns take Zenith's direct page decoder; columns with nulls,
    dictionaries or other types take the general reader. Both, mixed in one projection, must
    give pyarrow's values, over single- and multi-page column chunks."""
    rng = np.random.default_rng(7)
    n = 20_000
    with_nulls = pa.array(rng.normal(size=n), mask=rng.random(n) < 0.1)
    table = pa.table(
        {
            "i32": pa.array(rng.integers(-(2**31), 2**31 - 1, n, dtype=np.int32)),
            "i64": pa.array(rng.integers(-(2**62), 2**62, n)),
            "f32": pa.array(rng.normal(size=n).astype(np.float32)),
            "f64": pa.array(rng.normal(size=n)),
            "nulls": with_nulls,
            "text": pa.array([f"row{i}" for i in range(n)]),
            "label": pa.array(np.arange(n) % 7),
        },
        schema=pa.schema(
            [
                pa.field("i32", pa.int32(), nullable=False),
                pa.field("i64", pa.int64()),
                pa.field("f32", pa.float32()),
                pa.field("f64", pa.float64(), nullable=False),
                pa.field("nulls", pa.float64()),
                pa.field("text", pa.string()),
                pa.field("label", pa.int64()),
            ]
        ),
    )
    path = tmp_path / "plain.parquet"
    pq.write_table(
        table,
        path,
        row_group_size=6_000,
        data_page_size=4096,  # several pages per column chunk
        data_page_version=page_version,
        compression=compression,
        use_dictionary=["label"],
    )
    assert set(pq.ParquetFile(path).metadata.row_group(0).column(2).encodings) == {"PLAIN", "RLE"}
    expected = pq.read_table(path)
    got = zenith.load(path, cache=False)
    assert got.schema == expected.schema
    assert got.equals(expected)
    cols = ["label", "f32", "nulls", "i32"]
    assert zenith.load(path, columns=cols, cache=False).equals(expected.select(cols))
    # Single-page chunks (the common layout) hand the decompressed page over as the column.
    single = tmp_path / "single.parquet"
    pq.write_table(table, single, row_group_size=6_000, compression=compression, use_dictionary=False)
    assert zenith.load(single, cache=False).equals(pq.read_table(single))
    # The streaming path reads the same pages with positioned reads.
    batches = list(zenith.DataLoader(str(path), batch_size=4096, shuffle=False, output="arrow"))
    streamed = pa.Table.from_batches(batches)
    assert streamed.column_names == expected.column_names
    for name in expected.column_names:
        assert streamed[name].combine_chunks().equals(expected[name].combine_chunks()), name


def test_loaded_parquet_survives_a_rewrite_of_its_file(tmp_path: Path) -> None:
    """zenith.load maps Parquet files, but a loaded table never points into the mapping: the
    file may be truncated and rewritten (what writers do) while the table lives."""
    path = tmp_path / "rewritten.parquet"
    n = 50_000
    table = pa.table(
        {"x": np.arange(n, dtype=np.float64), "i": np.arange(n, dtype=np.int64) * 3},
        schema=pa.schema([pa.field("x", pa.float64(), nullable=False),
                          pa.field("i", pa.int64(), nullable=False)]),
    )
    # Uncompressed, required, one page per chunk: the page bytes are the values, in the file.
    pq.write_table(table, path, compression="none", use_dictionary=False, data_page_size=1 << 22)
    loaded = zenith.load(path, cache=False)
    pq.write_table(pa.table({"x": [1.0]}), path)
    assert loaded.equals(table)


def test_loaded_string_views_survive_a_rewrite_of_their_file(tmp_path: Path) -> None:
    """String view columns may keep views of uncompressed pages, so such files are read rather
    than mapped by zenith.load."""
    path = tmp_path / "views.parquet"
    texts = [f"a string longer than twelve bytes, number {i:06d}" for i in range(20_000)]
    table = pa.table({"s": pa.array(texts, pa.string_view())})
    pq.write_table(table, path, compression="none", use_dictionary=False)
    loaded = zenith.load(path, cache=False)
    assert loaded.schema.field("s").type == pa.string_view()
    pq.write_table(pa.table({"x": [1.0]}), path)
    assert loaded["s"].to_pylist() == texts


def test_corrupt_plain_page(tmp_path: Path) -> None:
    path = tmp_path / "corrupt-plain.parquet"
    table = pa.table({"x": np.arange(10_000, dtype=np.float64)})
    pq.write_table(table, path, row_group_size=5000, compression="snappy", use_dictionary=False)
    data = bytearray(path.read_bytes())
    chunk = pq.ParquetFile(path).metadata.row_group(1).column(0)
    # Garbage in the compressed body (past the page header).
    body = chunk.data_page_offset + 40
    data[body : body + 256] = b"\xfe" * 256
    path.write_bytes(bytes(data))
    with pytest.raises(zenith.FormatError, match=f"{path}: row group 1"):
        zenith.load(path, cache=False)
    # The first row group is intact and readable on its own through the loader with skip.
    dl = zenith.DataLoader(str(path), batch_size=1000, shuffle=False, on_error="skip")
    got = np.concatenate([b["x"] for b in dl])
    np.testing.assert_array_equal(got, np.arange(5000, dtype=np.float64))


def _rows_and_sum(path: str, column: str, options: dict | None = None) -> tuple[int, float]:
    table = zenith.load(path, cache=False, storage_options=options)
    return table.num_rows, float(pc.sum(table[column]).as_py())


def test_load_in_forked_child_after_parent_used_the_pool(tmp_path: Path) -> None:
    """A child forked after the parent read (torch DataLoader workers fork) gets its own pool;
    the parent's threads do not exist there."""
    import multiprocessing

    path = tmp_path / "fork.parquet"
    pq.write_table(pa.table({"a": np.arange(10_000, dtype=np.int64)}), path, row_group_size=1000)
    expected = (10_000, float(np.arange(10_000).sum()))
    assert _rows_and_sum(str(path), "a") == expected
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_rows_and_sum, (str(path), "a")).get(timeout=60) == expected
    assert _rows_and_sum(str(path), "a") == expected


def test_csv_ragged_row(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3\n")
    # Found while inferring the schema...
    with pytest.raises(zenith.FormatError, match=f"{path}: schema inference: .*line 3"):
        zenith.load(path)
    # ...and while decoding with an explicit schema: the unit's first line and byte are named.
    schema = pa.schema([("a", pa.int64()), ("b", pa.int64())])
    with pytest.raises(zenith.FormatError, match=f"{path}: line 2 \\(byte 4\\): .*expected 2"):
        zenith.load(path, schema=schema)


def test_wrong_format_override(datasets: dict[str, Path]) -> None:
    with pytest.raises(zenith.FormatError, match=f"{datasets['csv']}: footer"):
        zenith.load(datasets["csv"], format="parquet")
    with pytest.raises(zenith.ValidationError, match="unknown format"):
        zenith.load(datasets["csv"], format="xml")


def test_mismatched_schemas(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1], "b": [1.0]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"a": [1.5], "b": [1.0]}), tmp_path / "2.parquet")
    differs = r"2\.parquet: schema differs from .*1\.parquet: column \"a\" is Float64 here but Int64 there"
    with pytest.raises(zenith.SchemaError, match=differs):
        zenith.load(tmp_path)
    pq.write_table(pa.table({"x": [1]}), tmp_path / "2.parquet")
    with pytest.raises(zenith.SchemaError, match="columns"):
        zenith.load(tmp_path)


def test_unknown_column(datasets: dict[str, Path]) -> None:
    with pytest.raises(zenith.SchemaError, match='unknown column "nope"; available columns: id, f0'):
        zenith.load(datasets["parquet"], columns=["id", "nope"])


def test_garbage_arguments(datasets: dict[str, Path]) -> None:
    with pytest.raises(zenith.ValidationError, match="columns"):
        zenith.load(datasets["parquet"], columns="id")
    with pytest.raises(zenith.ValidationError, match="source"):
        zenith.load(42)
    with pytest.raises(zenith.ValidationError, match="delimiter"):
        zenith.load(datasets["csv"], delimiter=";;")


def test_exception_tree() -> None:
    for cls in (zenith.SourceError, zenith.FormatError, zenith.StorageError, zenith.SchemaError,
                zenith.ValidationError, zenith.JobError, zenith.ResourceError):
        assert issubclass(cls, zenith.ZenithError)
    assert zenith.exceptions.ZenithError is zenith.ZenithError


def test_repo_has_stubs() -> None:
    assert (REPO / "python" / "zenith" / "py.typed").exists()
    assert (REPO / "python" / "zenith" / "_zenith.pyi").exists()


def test_cli_info(datasets: dict[str, Path], tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "zenith.cli", "info"]
    out = subprocess.run([*cli, str(datasets["parquet"])], capture_output=True, text=True, check=True)
    assert "parquet: 5000 rows, 4 files, 20 units" in out.stdout
    out = subprocess.run(cli, capture_output=True, text=True, check=True)
    assert f"zenith {zenith.__version__} (release build)" in out.stdout
    out = subprocess.run([*cli, str(tmp_path / "missing")], capture_output=True, text=True, check=False)
    assert out.returncode == 1
    assert "no such file or directory" in out.stderr
