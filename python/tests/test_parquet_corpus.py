"""Parquet files written by other tools (scripts/make_corpus.py: pyarrow with every type,
encoding, codec and page version, nested and legacy lists, INT96; polars; DuckDB; fastparquet)
load through Zenith with pyarrow's schema and values: zenith.load, zenith.info and one
DataLoader epoch, file by file against pyarrow.parquet.read_table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zenith

REPO = Path(__file__).resolve().parents[2]

# The class prefixes of the corpus's file names, and how many files each has (a writer or
# option that silently stopped producing files would otherwise pass unnoticed).
CLASSES = {
    "pa-types": 19,
    "pa-flat": 12,
    "pa-enc": 14,
    "pa-nested": 8,
    "pa-int96": 7,
    "polars": 12,
    "duckdb": 8,
    "fastparquet": 9,
}


def _make_corpus(out: Path) -> list[str]:
    spec = importlib.util.spec_from_file_location("make_corpus", REPO / "scripts" / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(out)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """File name (without .parquet) -> path, for every file the script wrote."""
    out = tmp_path_factory.mktemp("corpus")
    skipped = _make_corpus(out)
    assert skipped == [], skipped
    return {p.stem: p for p in sorted(out.glob("*.parquet"))}


def mismatch(path: Path) -> str | None:
    """What differs between Zenith and pyarrow for `path`, or None when nothing does."""
    expected = pq.read_table(path)
    try:
        loaded = zenith.load(path, cache=False)
    except Exception as e:  # noqa: BLE001 - every failure of a file is reported with the others
        return f"load: {type(e).__name__}: {e}"
    if not loaded.schema.equals(expected.schema):
        diff = [
            f"{a} != {b}" for a, b in zip(loaded.schema, expected.schema, strict=False) if not a.equals(b)
        ]
        return f"schema: {diff or (loaded.schema, expected.schema)}"
    for column in expected.column_names:
        if loaded.column(column).to_pylist() != expected.column(column).to_pylist():
            return f"values of {column}"
    summary = zenith.info(path, verbose=False)
    if summary["rows"] != expected.num_rows or summary["schema"].names != expected.column_names:
        return f"info: {summary['rows']} rows, {summary['schema'].names}"
    # The loader's batches keep each column's field: name, type (extension types such as DuckDB's
    # arrow.uuid included) and nullability are pyarrow's.
    batches = list(zenith.DataLoader(path, batch_size=256, shuffle=False, output="arrow"))
    want = [(f.name, f.type, f.nullable) for f in expected.schema]
    for batch in batches:
        if [(f.name, f.type, f.nullable) for f in batch.schema] != want:
            return f"DataLoader schema: {batch.schema}"
    if [row for b in batches for row in b.to_pylist()] != expected.to_pylist():
        return "DataLoader epoch differs"
    return None


@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_corpus_class_matches_pyarrow(corpus: dict[str, Path], cls: str) -> None:
    files = {name: path for name, path in corpus.items() if name.startswith(cls + "-")}
    assert len(files) == CLASSES[cls], sorted(files)
    failures = {name: why for name, path in files.items() if (why := mismatch(path)) is not None}
    assert failures == {}


def test_every_file_belongs_to_a_class(corpus: dict[str, Path]) -> None:
    assert [n for n in corpus if not any(n.startswith(c + "-") for c in CLASSES)] == []
