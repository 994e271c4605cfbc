"""Data already in memory as a DataLoader source: pyarrow Tables and RecordBatchReaders, polars
and pandas DataFrames, dicts of NumPy arrays. Each gives the epoch the same data written to
Parquet gives (same units, so the same order), with the same rank split and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zenith
from zenith import ValidationError

ROWS = 150_000  # three units of 65,536 rows and a short one


def table() -> pa.Table:
    ids = np.arange(ROWS, dtype=np.int64)
    return pa.table({"id": ids, "x": (ids % 1000).astype(np.float32) / 4, "y": ids % 7})


def epoch_ids(dl) -> list[int]:
    return [int(i) for b in dl for i in b["id"]]


@pytest.fixture(scope="module")
def parquet_copy(tmp_path_factory) -> Path:
    """The table in Parquet with row groups of the in-memory unit size."""
    path = tmp_path_factory.mktemp("memory") / "t.parquet"
    pq.write_table(table(), path, row_group_size=65_536)
    return path


def test_a_table_gives_the_files_epoch_order_rank_split_and_all_rows(parquet_copy: Path) -> None:
    t = table()
    for rank, world in [(0, 1), (0, 2), (1, 2)]:
        kwargs = {"batch_size": 512, "seed": 11, "rank": rank, "world_size": world}
        got = zenith.DataLoader(t, **kwargs)
        want = zenith.DataLoader(str(parquet_copy), **kwargs)
        for epoch in range(2):
            ids = epoch_ids(got)
            assert ids == epoch_ids(want), (rank, world, epoch)
            assert len(ids) == ROWS // world
        assert len(got) == len(want)
    whole = epoch_ids(zenith.DataLoader(t, batch_size=512, seed=11))
    assert sorted(whole) == list(range(ROWS))
    assert whole != list(range(ROWS))


def test_dataframes_dicts_and_readers_give_the_tables_epoch() -> None:
    polars = pytest.importorskip("polars")
    t = table()
    want = epoch_ids(zenith.DataLoader(t, batch_size=1000, seed=2))
    sources = {
        "polars": polars.from_arrow(t),
        "pandas": t.to_pandas(),
        "dict": {name: t.column(name).to_numpy() for name in t.column_names},
        "reader": pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=65_536)),
    }
    for name, source in sources.items():
        dl = zenith.DataLoader(source, batch_size=1000, seed=2)
        batches = list(dl)
        assert [int(i) for b in batches for i in b["id"]] == want, name
        first = batches[0]
        np.testing.assert_array_equal(first["x"], (first["id"] % 1000).astype(np.float32) / 4)
        np.testing.assert_array_equal(first["y"], first["id"] % 7)


def test_a_two_dimensional_array_is_one_field_of_rows() -> None:
    feats = np.arange(ROWS * 3, dtype=np.float32).reshape(ROWS, 3)
    source = {"id": np.arange(ROWS), "feats": feats}
    dl = zenith.DataLoader(source, batch_size=256, seed=5)
    n = 0
    for b in dl:
        assert b["feats"].shape == (len(b["id"]), 3) and b["feats"].dtype == np.float32
        np.testing.assert_array_equal(b["feats"], feats[b["id"]])
        n += len(b["id"])
    assert n == ROWS


def test_small_chunks_are_units_of_their_own_and_cover_every_row() -> None:
    t = pa.Table.from_batches(table().to_batches(max_chunksize=1000))
    dl = zenith.DataLoader(t, batch_size=300, seed=1)
    assert sorted(epoch_ids(dl)) == list(range(ROWS))


def test_resume_mid_epoch_continues_with_exactly_the_rest() -> None:
    t = table()
    full = epoch_ids(zenith.DataLoader(t, batch_size=500, seed=4))
    first = zenith.DataLoader(t, batch_size=500, seed=4, num_workers=2)
    it = iter(first)
    head = [int(i) for _ in range(37) for i in next(it)["id"]]
    state = first.state_dict()
    it.close()
    resumed = zenith.DataLoader(t, batch_size=500, seed=4, num_workers=1)
    resumed.load_state_dict(state)
    assert head + epoch_ids(resumed) == full


def test_zenith_torch_takes_a_table() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed; `make test` installs it")
    from zenith.torch import DataLoader

    columns = {"xy": {"columns": ["x", "y"], "dtype": "float32"}, "id": "id"}
    dl = DataLoader(table(), batch_size=64, shuffle=True, columns=columns)
    batch = next(iter(dl))
    assert isinstance(batch["xy"], torch.Tensor) and batch["xy"].shape == (64, 2)
    ids = batch["id"].numpy()
    np.testing.assert_array_equal(batch["xy"][:, 0].numpy(), (ids % 1000).astype(np.float32) / 4)
    np.testing.assert_array_equal(batch["xy"][:, 1].numpy(), (ids % 7).astype(np.float32))


def test_file_options_and_bad_dicts_are_refused_by_name() -> None:
    t = table()
    for option, value in [("format", "parquet"), ("fields", ["jpg"]), ("image_size", 32)]:
        with pytest.raises(ValidationError, match=f"`{option}`: it applies to files"):
            zenith.DataLoader(t, **{option: value})
    with pytest.raises(ValidationError, match="different lengths"):
        zenith.DataLoader({"a": np.arange(3), "b": np.arange(4)})
    with pytest.raises(ValidationError, match="the dict of arrays is empty"):
        zenith.DataLoader({})
    with pytest.raises(ValidationError, match="column names must be strings"):
        zenith.DataLoader({1: np.arange(3)})
