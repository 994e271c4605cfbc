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
