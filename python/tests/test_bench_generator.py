"""The benchmark generator writes the same rows in every format, and its manifest checksums are right.

Each format is read back with an independent reader (pyarrow, the csv module's typed reader, tarfile)
and checked against the manifest, so a benchmark that trusts the manifest trusts real values. The two
Parquet layouts are checked in the files' own metadata, and run_one.py's reference systems (the
strongest torch DataLoader, the in-memory ceiling) run one verified epoch over the tiny dataset.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyarrow import ipc

BENCH = Path(__file__).resolve().parents[2] / "bench"
ROWS = 23_456  # not a multiple of the file, row-group or shard sizes: the last of each is short


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


benchlib = _load("benchlib")
generator = _load("generate_datasets")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    manifest = generator.generate("tiny", out, rows=ROWS)
    return out / "tiny", manifest


def _columns_to_xy(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([table[name].to_numpy() for name in benchlib.FEATURES], axis=1)
    return x, table[benchlib.LABEL].to_numpy()


def _checksum_of(x: np.ndarray, y: np.ndarray, manifest: dict) -> benchlib.EpochChecksum:
    check = benchlib.EpochChecksum(manifest["label_std"])
    for start in range(0, len(y), 1000):
        check.add(x[start : start + 1000], y[start : start + 1000])
    return check


def _parquet_files(root: Path, fmt: str) -> list[Path]:
    files = sorted((root / fmt).glob("*.parquet"))
    assert len(files) == generator.PARQUET_FILES
    return files


def _read_parquet_layout(root: Path, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    files = _parquet_files(root, fmt)
    limit = generator.PARQUET_LAYOUTS[fmt].row_group_rows
    for f in files:
        meta = pq.ParquetFile(f).metadata
        assert all(meta.row_group(i).num_rows <= limit for i in range(meta.num_row_groups))
    return _columns_to_xy(pa.concat_tables(pq.read_table(f) for f in files))


def _read_parquet(root: Path) -> tuple[np.ndarray, np.ndarray]:
    return _read_parquet_layout(root, "parquet")


def _read_parquet_plain(root: Path) -> tuple[np.ndarray, np.ndarray]:
    return _read_parquet_layout(root, "parquet-plain")


def _read_csv(root: Path) -> tuple[np.ndarray, np.ndarray]:
    types = {name: pa.float32() for name in benchlib.FEATURES} | {benchlib.LABEL: pa.int64()}
    table = pacsv.read_csv(
        root / "csv" / "data.csv", convert_options=pacsv.ConvertOptions(column_types=types)
    )
    return _columns_to_xy(table)


def _read_ipc(root: Path) -> tuple[np.ndarray, np.ndarray]:
    with ipc.open_file(root / "ipc" / "data.arrow") as reader:
        return _columns_to_xy(reader.read_all())


def _read_wds(root: Path) -> tuple[np.ndarray, np.ndarray]:
    xs, ys, keys = [], [], []
    for shard in sorted((root / "wds").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                key, ext = member.name.split(".", 1)
                data = tar.extractfile(member).read()
                if ext == "bin":
                    keys.append(key)
                    xs.append(np.frombuffer(data, dtype="<f4"))
                else:
                    assert ext == "cls" and key == keys[-1]
                    ys.append(int(data.decode("ascii")))
    assert keys == [f"{i:09d}" for i in range(ROWS)]
    return np.stack(xs), np.array(ys, dtype=np.int64)


READERS = {
    "parquet": _read_parquet,
    "parquet-plain": _read_parquet_plain,
    "csv": _read_csv,
    "ipc": _read_ipc,
    "wds": _read_wds,
}


def test_every_format_has_a_reader_and_a_layout(dataset):
    _, manifest = dataset
    assert sorted(READERS) == sorted(generator.FORMATS) == sorted(manifest["formats"])
    assert {fmt: entry["layout"] for fmt, entry in manifest["formats"].items()} == {
        "parquet": "pyarrow defaults (dictionary, snappy), row groups of 65,536",
        "parquet-plain": "PLAIN floats (dictionary only for the label), snappy, row groups of 16,384",
        "csv": "one file with a header (pyarrow.csv defaults)",
        "ipc": "one uncompressed Arrow IPC file, record batches of 16,384",
        "wds": "tar shards of 10,000 samples: KEY.bin (raw float32), KEY.cls",
    }
    assert manifest["formats"]["parquet-plain"]["dir"] == "parquet-plain"
    assert manifest["formats"]["parquet"]["writer"] == f"pyarrow {pa.__version__}"
    assert benchlib.layout_of(manifest, "parquet") == manifest["formats"]["parquet"]["layout"]


def _chunk_encodings(files: list[Path]) -> dict[str, set[tuple[str, str]]]:
    """Per column: the (encodings, compression) pairs of its chunks over every file and row group."""
    seen: dict[str, set[tuple[str, str]]] = {}
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                chunk = meta.row_group(g).column(c)
                seen.setdefault(chunk.path_in_schema, set()).add(
                    (",".join(sorted(chunk.encodings)), chunk.compression)
                )
    return seen


def test_parquet_is_pyarrow_defaults_dictionary_encoded(dataset):
    root, _ = dataset
    seen = _chunk_encodings(_parquet_files(root, "parquet"))
    assert sorted(seen) == sorted([*benchlib.FEATURES, benchlib.LABEL])
    # PLAIN is the dictionary page's own encoding, RLE the levels'; the values are RLE_DICTIONARY.
    assert all(v == {("PLAIN,RLE,RLE_DICTIONARY", "SNAPPY")} for v in seen.values()), seen


def test_parquet_plain_keeps_plain_floats(dataset):
    root, _ = dataset
    seen = _chunk_encodings(_parquet_files(root, "parquet-plain"))
    assert seen.pop(benchlib.LABEL) == {("PLAIN,RLE,RLE_DICTIONARY", "SNAPPY")}
    assert sorted(seen) == benchlib.FEATURES
    assert all(v == {("PLAIN,RLE", "SNAPPY")} for v in seen.values()), seen
    meta = pq.ParquetFile(root / "parquet-plain" / "part-00000.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [2932]


def test_parquet_row_groups_are_65536_rows(tmp_path):
    # 8 files of 65,537 rows: each is a full row group of 65,536 and one of a single row. Two
    # columns keep it cheap; the writer's options do not depend on the schema.
    rows = generator.PARQUET_FILES * 65_537
    table = pa.table(
        {
            "f00": (np.arange(rows) % 5000).astype(np.float32) / 1000,
            "label": np.arange(rows) * 10 // rows,
        }
    )
    files = generator.write_parquet(table, tmp_path / "p", generator.PARQUET_LAYOUTS["parquet"])
    for f in files:
        meta = pq.ParquetFile(f).metadata
        assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [65_536, 1]
        assert "RLE_DICTIONARY" in meta.row_group(0).column(0).encodings


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_every_format_matches_its_manifest_checksum(dataset, fmt):
    root, manifest = dataset
    x, y = READERS[fmt](root)
    assert x.shape == (ROWS, benchlib.NUM_FEATURES) and x.dtype == np.float32
    assert manifest["formats"][fmt]["rows"] == ROWS
    check = _checksum_of(x, y, manifest)
    assert check.mismatches(manifest["formats"][fmt]["checksum"]) == []
    if fmt in benchlib.PARQUET_FORMATS:
        assert manifest["formats"][fmt]["checksum"] == manifest["formats"]["parquet"]["checksum"]
    # Files are in label order, so a batch taken in file order is (nearly) constant in its label.
    assert np.all(np.diff(y) >= 0) and set(y.tolist()) == set(range(benchlib.NUM_CLASSES))
    assert check.shuffle_quality() < 0.1


def test_manifest_values_are_the_real_sums(dataset):
    root, manifest = dataset
    x, y = _read_ipc(root)
    checksum = manifest["formats"]["parquet"]["checksum"]
    assert checksum["rows"] == ROWS
    assert checksum["label_sum"] == int(y.sum())
    assert checksum["label_counts"] == np.bincount(y, minlength=10).tolist()
    assert checksum["feature_sum"] == pytest.approx(float(x.astype(np.float64).sum()), rel=1e-12)
    milli = np.rint(x.astype(np.float64) * 1000).astype(np.int64)
    assert checksum["feature_milli_sum"] == int(milli.sum())
    assert checksum["pair_milli_sum"] == int((milli.sum(axis=1) * y).sum())
    assert manifest["label_std"] == pytest.approx(float(y.std()))


def test_checksum_catches_wrong_epochs(dataset):
    root, manifest = dataset
    x, y = _read_parquet(root)
    expected = manifest["formats"]["parquet"]["checksum"]
    rng = np.random.default_rng(0)
    perm = rng.permutation(ROWS)
    assert _checksum_of(x[perm], y[perm], manifest).mismatches(expected) == []
    assert _checksum_of(x[perm], y[perm], manifest).shuffle_quality() > 0.9
    duplicated = perm.copy()
    duplicated[0] = duplicated[1]
    broken = {
        "dropped row": (x[1:], y[1:]),
        "duplicated row": (x[duplicated], y[duplicated]),
        "x and y shuffled apart": (x[perm], y),
        "two columns swapped": (x[:, [1, 0, *range(2, 32)]], y),
        "float64 features": (x.astype(np.float64), y),
    }
    for what, (bx, by) in broken.items():
        assert _checksum_of(bx, by, manifest).mismatches(expected), what


def test_regeneration_is_skipped_and_deterministic(dataset, tmp_path):
    root, manifest = dataset
    before = (root / "parquet" / "part-00000.parquet").stat().st_mtime_ns
    assert generator.generate("tiny", root.parent, rows=ROWS) == manifest
    assert (root / "parquet" / "part-00000.parquet").stat().st_mtime_ns == before
    generator.generate("tiny", tmp_path, rows=ROWS, formats=["parquet"])
    first = (tmp_path / "tiny" / "parquet" / "part-00000.parquet").stat().st_mtime_ns
    again = generator.generate("tiny", tmp_path, rows=ROWS, formats=["parquet", "wds"])
    assert sorted(again["formats"]) == ["parquet", "wds"]
    assert (tmp_path / "tiny" / "parquet" / "part-00000.parquet").stat().st_mtime_ns == first
    for rel in ("parquet/part-00003.parquet", "wds/shard-000001.tar"):
        digests = {
            hashlib.sha256((r / rel).read_bytes()).hexdigest() for r in (root, tmp_path / "tiny")
        }
        assert len(digests) == 1, rel
    assert again["formats"]["wds"]["checksum"] == manifest["formats"]["wds"]["checksum"]


def _run_one(root: Path, *args: str) -> dict:
    cmd = [sys.executable, str(BENCH / "peers" / "run_one.py"), "--scale", "tiny"]
    return benchlib.run_json([*cmd, "--data", str(root.parent), "--verify", *args], timeout=120)


@pytest.mark.parametrize(
    ("system", "workload", "workers"),
    [
        ("torch-strongest", "parquet", "0"),
        ("torch-strongest", "parquet-plain", "2"),
        ("ceiling", "parquet", "0"),
        ("ceiling", "parquet-plain", "0"),
        ("ceiling-views", "parquet", "0"),
    ],
)
def test_reference_systems_deliver_the_verified_epoch(dataset, system, workload, workers):
    root, manifest = dataset
    args = ("--system", system, "--workload", workload, "--workers", workers)
    result = _run_one(root, *args, "--batch-size", "1000")
    assert "error" not in result, result
    assert (result["rows"], result["batches"], result["mismatches"]) == (ROWS, 24, [])
    assert result["label_sum"] == manifest["formats"][workload]["checksum"]["label_sum"]
    roles = {"ceiling": "in-memory ceiling", "ceiling-views": "reference"}
    assert result["role"] == roles.get(system, "loader")
    assert result["layout"] == manifest["formats"][workload]["layout"]
    assert result["shuffle_quality"] > 0.9
    assert "handover_us_per_batch" not in result


def test_zenith_reports_its_handover_cost(dataset):
    root, _ = dataset
    pytest.importorskip("zenith._zenith")
    result = _run_one(root, "--system", "zenith", "--batch-size", "1000", "--workers", "1")
    assert "error" not in result, result
    assert (result["rows"], result["batches"], result["mismatches"]) == (ROWS, 24, [])
    keys = ("next_us_per_batch", "wait_us_per_batch", "handover_us_per_batch")
    assert all(isinstance(result[k], float) for k in keys), json.dumps(result)
