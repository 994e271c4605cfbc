"""``zenith.load(filter=...)``: row groups ruled out by their statistics are neither read nor
fetched, the rest are filtered exactly; rows equal ``pyarrow.parquet.read_table(filters=...)``
for local files and a real S3-compatible server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import zenith
from s3_server import S3Server
from zenith import _zenith
from zenith.exceptions import ValidationError

N = 200_000
FILTERS = [
    [("ts", ">=", 123_000), ("ts", "<", 131_000)],
    [[("ts", "<", 5000)], [("ts", ">", 195_000), ("cat", "==", "c3")]],
    [("cat", "in", ["c1", "c2"])],
    [("v", ">", 0.999)],
    [("ts", "not in", [0, 1, 2])],
    [("ts", "==", np.int64(77))],
    [("ts", ">", 10**9)],
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("filter")
    d = root / "bucket" / "pq"
    d.mkdir(parents=True)
    t = pa.table({
        "ts": np.arange(N, dtype=np.int64),
        "v": np.random.default_rng(0).random(N),
        "cat": [f"c{i % 7}" for i in range(N)],
    })
    for i in range(4):
        pq.write_table(t.slice(i * N // 4, N // 4), d / f"p{i}.parquet", row_group_size=5000)
    return d


@pytest.fixture(scope="module")
def s3(data: Path) -> Iterator[S3Server]:
    server = S3Server.start(data.parent.parent)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("f", FILTERS, ids=range(len(FILTERS)))
def test_rows_equal_pyarrow(data: Path, f: list) -> None:
    want = pq.read_table(data, filters=f)
    assert zenith.load(data, filter=f).equals(want)
    assert zenith.load(data, filter=f, columns=["v"]).equals(want.select(["v"]))


def test_a_selective_filter_fetches_only_its_row_groups(s3: S3Server, data: Path) -> None:
    opts = s3.options()

    def fetched(f: list | None) -> tuple[pa.Table, int]:
        before = _zenith.storage_stats()["bytes"]
        t = zenith.load("s3://bucket/pq", filter=f, columns=["v"], storage_options=opts,
                        cache=False)
        return t, _zenith.storage_stats()["bytes"] - before

    everything, all_bytes = fetched(None)
    # No row group can match: only the footers are fetched.
    none, footer_bytes = fetched([("ts", "<", 0)])
    assert none.num_rows == 0 and none.schema == everything.schema
    f = [("ts", ">=", 123_000), ("ts", "<", 131_000)]
    some, some_bytes = fetched(f)
    assert some.equals(pq.read_table(data, filters=f, columns=["v"]))
    # 2 of 40 row groups (with the filter's column) instead of all 40.
    assert some_bytes - footer_bytes < (all_bytes - footer_bytes) / 5, (
        some_bytes, all_bytes, footer_bytes)


def test_expressions_and_bad_filters(data: Path) -> None:
    expr = pc.field("ts") < 10
    assert zenith.load(data, filter=expr)["ts"].to_pylist() == list(range(10))
    with pytest.raises(ValidationError, match="unknown operator"):
        zenith.load(data, filter=[("ts", "~", 1)])
    with pytest.raises(ValidationError, match="needs a list"):
        zenith.load(data, filter=[("ts", "in", 1)])
    with pytest.raises(ValidationError, match=r"not a \(column, op, value\) tuple"):
        zenith.load(data, filter=[("ts", ">")])
    with pytest.raises(ValidationError, match="empty list"):
        zenith.load(data, filter=[])


def loader_ids(dl: zenith.DataLoader) -> list[int]:
    return [int(i) for b in dl for i in b["ts"]]


@pytest.mark.parametrize("f", FILTERS, ids=range(len(FILTERS)))
def test_dataloader_rows_equal_pyarrow(data: Path, f: list) -> None:
    want = pq.read_table(data, filters=f)
    dl = zenith.DataLoader(data, batch_size=1000, seed=3, columns=["ts"], filter=f)
    got = loader_ids(dl)
    assert sorted(got) == want["ts"].to_pylist()
    # Batches are full (filled from the rows kept) except the last.
    sizes = [len(b["ts"]) for b in dl]
    assert all(s == 1000 for s in sizes[:-1]) and sum(sizes) == want.num_rows
    # The filter's columns are read, and left out unless asked for.
    assert set(next(iter(zenith.DataLoader(data, batch_size=8, columns=["v"], filter=f)),
                    {"v": None})) <= {"v"}


def test_dataloader_filter_order_is_seeded_and_resumes_exactly(data: Path) -> None:
    f = [[("ts", "<", 60_000), ("cat", "in", ["c1", "c4"])], [("v", ">", 0.99)]]
    common = {"batch_size": 500, "seed": 9, "columns": ["ts", "cat"], "filter": f,
              "shuffle_window": 20_000}
    whole = loader_ids(zenith.DataLoader(data, **common))
    assert whole == loader_ids(zenith.DataLoader(data, num_workers=1, **common))
    assert sorted(whole) == pq.read_table(data, filters=f)["ts"].to_pylist()
    for stop in (1, 7, 23):
        dl = zenith.DataLoader(data, num_workers=2, **common)
        it = iter(dl)
        seen = [int(i) for _ in range(stop) for i in next(it)["ts"]]
        it.close()
        state = dl.state_dict()
        again = zenith.DataLoader(data, num_workers=3, **common)
        again.load_state_dict(state)
        assert seen + loader_ids(again) == whole, stop


def test_dataloader_filter_ranks_partition_the_rows_kept(data: Path) -> None:
    f = [("cat", "==", "c3")]
    got = []
    for rank in range(3):
        dl = zenith.DataLoader(data, batch_size=256, seed=1, columns=["ts"], filter=f,
                               rank=rank, world_size=3, drop_last=False)
        got += loader_ids(dl)
    want = pq.read_table(data, filters=f)["ts"].to_pylist()
    # Ranks share the rows read equally; the last N % 3 rows of an epoch are left out.
    assert len(got) == len(set(got)) and set(got) <= set(want)
    assert len(want) - len(got) <= 2 * 7


def test_dataloader_filter_from_s3_fetches_only_its_row_groups(s3: S3Server, data: Path) -> None:
    opts = s3.options()

    def fetched(f: list | None) -> tuple[list[int], int]:
        before = _zenith.storage_stats()["bytes"]
        dl = zenith.DataLoader("s3://bucket/pq", batch_size=1000, columns=["ts", "v"],
                               filter=f, storage_options=opts)
        return loader_ids(dl), _zenith.storage_stats()["bytes"] - before

    everything, all_bytes = fetched(None)
    none, footer_bytes = fetched([("ts", "<", 0)])  # only the footers
    some, some_bytes = fetched([("ts", ">=", 123_000), ("ts", "<", 131_000)])
    assert sorted(everything) == list(range(N)) and none == []
    assert sorted(some) == list(range(123_000, 131_000))
    # 2 of 40 row groups instead of all 40.
    assert some_bytes - footer_bytes < (all_bytes - footer_bytes) / 10, (
        some_bytes, all_bytes, footer_bytes)


def test_torch_dataloader_filter_and_bad_filters(data: Path) -> None:
    import zenith.torch

    f = [("ts", "<", 3000)]
    dl = zenith.torch.DataLoader(str(data), batch_size=512, columns=["ts"], filter=f, seed=0)
    assert sorted(int(i) for b in dl for i in b["ts"]) == list(range(3000))
    with pytest.raises(ValidationError, match="filters form"):
        zenith.DataLoader(data, filter=pc.field("ts") < 10)
    with pytest.raises(ValidationError, match="unknown operator"):
        zenith.DataLoader(data, filter=[("ts", "~", 1)])
    with pytest.raises(zenith.ZenithError, match="nope"):
        zenith.DataLoader(data, filter=[("nope", "==", 1)])
    with pytest.raises(ValidationError, match="cannot compare"):
        list(zenith.DataLoader(data, filter=[("ts", "==", "abc")]))


def test_dataloader_nulls_are_kept_as_pyarrow_keeps_them(tmp_path: Path) -> None:
    t = pa.table({"x": pa.array([1, None, 5, 9, None], pa.int64()),
                  "s": pa.array(["a", None, "b", "c", "d"])})
    pq.write_table(t, tmp_path / "n.parquet")
    for f in ([("x", "not in", [1])], [("x", "!=", 5)], [("x", "in", [1, 5])],
              [("s", "not in", ["a"])], [("x", "<", 6)], [[("s", "==", "d")], [("x", ">", 4)]]):
        want = pq.read_table(tmp_path / "n.parquet", filters=f)["x"].to_pylist()
        dl = zenith.DataLoader(tmp_path / "n.parquet", batch_size=10, shuffle=False,
                               columns=["x"], filter=f, output="arrow")
        assert [v for b in dl for v in b["x"].to_pylist()] == want, f
    dl = zenith.DataLoader(tmp_path / "n.parquet", batch_size=10, columns=["x"],
                           filter=[("x", "!=", 5)])
    assert sum(len(b["x"]) for b in dl) == 2
    assert dl.stats()["filtered_rows"] == 3  # the null and the 5 (none pruned: one row group)
