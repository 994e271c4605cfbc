"""The local disk cache of remote objects (``cache_dir=``), against a real S3-compatible server
on 127.0.0.1: later reads and other processes are served from it with no request, the ranks of
a node list a prefix and read its footers once, concurrent readers fetch each range once, a
reader killed mid-write leaves no entry read as valid, the size limit holds, and a changed
object is fetched again."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zenith
from s3_fault_proxy import FaultProxy
from s3_server import S3Server
from zenith import _zenith
from zenith.exceptions import ValidationError

BUCKET = "cached"
ROWS = 60_000


def table() -> pa.Table:
    rng = np.random.default_rng(3)
    return pa.table(
        {
            "id": np.arange(ROWS, dtype=np.int64),
            "x": rng.random(ROWS),
            "name": [f"row-{i % 977}" for i in range(ROWS)],
        }
    )


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """Bucket ``cached``: a Parquet directory of 4 files (row groups of 5,000 rows) and a CSV."""
    root = tmp_path_factory.mktemp("s3cache")
    bucket = root / BUCKET
    (bucket / "pq").mkdir(parents=True)
    t = table()
    for i in range(4):
        part = t.slice(i * ROWS // 4, ROWS // 4)
        pq.write_table(part, bucket / "pq" / f"part-{i}.parquet", row_group_size=5000)
    pacsv.write_csv(t, bucket / "data.csv")
    server = S3Server.start(root)
    try:
        yield server
    finally:
        server.stop()


def traffic(before: dict[str, int]) -> dict[str, int]:
    after = _zenith.storage_stats()
    return {k: after[k] - before[k] for k in after}


def children_at_once(code: str, argvs: list[list[str]]) -> list[dict]:
    """Starts ``code`` once per argument list, all at the same time, and returns the JSON each
    printed last."""
    procs = [
        subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for argv in argvs
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    return [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]


def child(code: str, *args: str) -> dict:
    """Runs ``code`` in a fresh interpreter and returns the JSON it prints last."""
    return children_at_once(code, [list(args)])[0]


def entries(cache: Path) -> list[Path]:
    """The cached ranges (files named ``start-end``) below ``cache``."""
    return [
        p for p in (cache / "objects").rglob("*")
        if p.is_file() and "-" in p.name and p.name.replace("-", "").isdigit()
    ]


def check_entries(cache: Path, bucket_root: Path) -> int:
    """Every cached range equals the object's bytes at that range; returns how many."""
    found = entries(cache)
    for entry in found:
        url = (entry.parent.parent / "url").read_text()
        key = url.removeprefix(f"s3://{BUCKET}/")
        start, end = (int(x) for x in entry.name.split("-"))
        with open(bucket_root / key, "rb") as f:
            f.seek(start)
            assert entry.read_bytes() == f.read(end - start), entry
    return len(found)


LOAD = """
import json, sys, zenith
from zenith import _zenith
opts, cache = json.loads(sys.argv[1]), sys.argv[2]
t = zenith.load(sys.argv[3], storage_options=opts, cache_dir=cache, cache=False)
print(json.dumps({"rows": t.num_rows, "ids": int(t["id"].to_numpy().sum()), **_zenith.storage_stats()}))
"""


@pytest.mark.parametrize("key", ["pq", "data.csv"])
def test_later_reads_and_other_processes_come_from_the_cache(
    s3: S3Server, tmp_path: Path, key: str
) -> None:
    cache = tmp_path / "cache"
    opts = s3.options()
    expected = table()
    before = _zenith.storage_stats()
    first = zenith.load(f"s3://{BUCKET}/{key}", storage_options=opts, cache_dir=cache, cache=False)
    fetched = traffic(before)
    assert first.select(["id", "x"]).equals(expected.select(["id", "x"]))
    assert fetched["requests"] > 0 and fetched["metadata_requests"] >= 1
    assert fetched["cache_hits"] == 0
    before = _zenith.storage_stats()
    again = zenith.load(f"s3://{BUCKET}/{key}", storage_options=opts, cache_dir=cache, cache=False)
    second = traffic(before)
    assert again.equals(first)
    assert (second["requests"], second["metadata_requests"], second["cached_listings"]) == (0, 0, 1)
    assert second["cache_bytes"] == fetched["bytes"]
    # Another process naming the same folder sends no request either.
    other = child(LOAD, json.dumps(opts), str(cache), f"s3://{BUCKET}/{key}")
    assert (other["rows"], other["ids"]) == (ROWS, ROWS * (ROWS - 1) // 2)
    assert (other["requests"], other["metadata_requests"]) == (0, 0)
    assert check_entries(cache, s3.root / BUCKET) > 0


def test_a_loader_epoch_from_the_cache_equals_the_fetched_one(s3: S3Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    opts = s3.options()

    def epoch() -> list[int]:
        dl = zenith.DataLoader(
            f"s3://{BUCKET}/pq", batch_size=1000, seed=5, storage_options=opts,
            cache_dir=cache, cache_limit="1GB", reuse_budget=0,
        )
        return [int(i) for b in dl for i in b["id"]]

    before = _zenith.storage_stats()
    fetched = epoch()
    assert traffic(before)["requests"] > 0
    before = _zenith.storage_stats()
    assert epoch() == fetched and sorted(fetched) == list(range(ROWS))
    assert traffic(before)["requests"] == 0


MANY = 10_000

FIRST_BATCH = """
import json, sys, time, zenith
from zenith import _zenith
opts, cache, rank = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
dl = zenith.DataLoader("s3://many/parts", batch_size=64, rank=rank, world_size=2,
                       storage_options=opts, cache_dir=cache)
batch = next(iter(dl))
print(json.dumps({"ids": len(batch["x"]), **_zenith.storage_stats()}))
"""

INFO = """
import json, sys, zenith
from zenith import _zenith
info = zenith.info("s3://many/parts", storage_options=json.loads(sys.argv[1]),
                   cache_dir=sys.argv[2], verbose=False)
print(json.dumps({"rows": info["rows"], "files": len(info["files"]), **_zenith.storage_stats()}))
"""


def test_ranks_of_a_node_list_and_read_footers_once(tmp_path: Path) -> None:
    """Two ranks started together on 10,000 objects: one listing and one footer request per
    object between them; a later ``zenith.info`` on the node sends none."""
    root = tmp_path / "s3"
    parts = root / "many" / "parts"
    parts.mkdir(parents=True)
    for i in range(MANY):
        buf = io.BytesIO()
        pq.write_table(pa.table({"x": np.arange(i * 10, i * 10 + 10)}), buf)
        (parts / f"part-{i:05d}.parquet").write_bytes(buf.getvalue())
    server = S3Server.start(root)
    try:
        cache = str(tmp_path / "cache")
        opts = json.dumps(server.options())
        stats = children_at_once(FIRST_BATCH, [[opts, cache, str(r)] for r in range(2)])
        assert [s["ids"] for s in stats] == [64, 64]
        # Each object's footer (the whole small object) is fetched by one rank only.
        assert sum(s["requests"] for s in stats) == MANY
        assert sum(s["metadata_requests"] for s in stats) == 1
        assert sum(s["cached_listings"] for s in stats) == 1
        later = child(INFO, opts, cache)
        assert (later["rows"], later["files"]) == (10 * MANY, MANY)
        assert (later["requests"], later["metadata_requests"]) == (0, 0)
    finally:
        server.stop()


READERS = """
import json, sys, zenith
opts, cache, seed = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
dl = zenith.DataLoader("s3://cached/pq", batch_size=500, seed=seed, storage_options=opts,
                       cache_dir=cache, reuse_budget=0)
print(json.dumps({"ids": sorted(int(i) for b in dl for i in b["id"]) == list(range(60000))}))
"""


def test_concurrent_readers_fetch_each_range_once(s3: S3Server, tmp_path: Path) -> None:
    proxy = FaultProxy.start(s3.port)
    try:
        cache = str(tmp_path / "cache")
        opts = json.dumps(s3.options(proxy.endpoint))
        results = children_at_once(READERS, [[opts, cache, str(seed)] for seed in range(4)])
        assert all(r["ids"] for r in results)
        gets = Counter((r.path, r.range) for r in proxy.requests(lambda r: r.method == "GET"))
        lists = [key for key in gets if "list-type" in key[0] or key[1] is None]
        assert len(lists) == 1 and gets[lists[0]] == 1, gets
        assert max(gets.values()) == 1, [k for k, n in gets.items() if n > 1]
        assert len(gets) > 4
    finally:
        proxy.close()


KILLED = """
import json, sys, zenith
opts, cache = json.loads(sys.argv[1]), sys.argv[2]
print("started", flush=True)
while True:
    for key in ("pq", "data.csv"):
        zenith.load(f"s3://cached/{key}", storage_options=opts, cache_dir=cache,
                    cache_limit=sys.argv[3], cache=False)
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_reader_killed_mid_write_leaves_no_bad_entry(
    s3: S3Server, tmp_path: Path, seed: int
) -> None:
    """A reader that keeps fetching, caching and evicting (the limit holds a third of the data)
    is killed with SIGKILL at a random moment; every entry left equals the object's bytes, and
    a new reader gets the right rows from what is left."""
    cache = tmp_path / "cache"
    opts = s3.options()
    limit = str((s3.root / BUCKET / "data.csv").stat().st_size // 2)
    proc = subprocess.Popen([sys.executable, "-c", KILLED, json.dumps(opts), str(cache), limit],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        time.sleep(random.Random(seed).uniform(0.5, 2.5))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    check_entries(cache, s3.root / BUCKET)
    for key in ("pq", "data.csv"):
        t = zenith.load(f"s3://{BUCKET}/{key}", storage_options=opts, cache_dir=cache, cache=False)
        assert t["id"].to_pylist() == list(range(ROWS))
    check_entries(cache, s3.root / BUCKET)


def test_the_cache_keeps_to_its_limit(s3: S3Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    opts = s3.options()
    csv_size = (s3.root / BUCKET / "data.csv").stat().st_size
    limit = csv_size * 3 // 2
    for _ in range(2):
        for key in ("pq", "data.csv"):
            t = zenith.load(f"s3://{BUCKET}/{key}", storage_options=opts, cache_dir=cache,
                            cache_limit=limit, cache=False)
            assert t.num_rows == ROWS
            held = sum(p.stat().st_size for p in entries(cache))
            assert held <= limit, (held, limit)
    assert check_entries(cache, s3.root / BUCKET) > 0


def test_a_changed_object_is_fetched_again(tmp_path: Path) -> None:
    root = tmp_path / "s3"
    (root / "chg").mkdir(parents=True)
    path = root / "chg" / "t.parquet"
    pq.write_table(pa.table({"id": np.arange(1000)}), path)
    server = S3Server.start(root)
    try:
        cache = tmp_path / "cache"
        # listing_ttl=0: every read lists again, so the new ETag is seen at once.
        opts = server.options(listing_ttl="0")
        assert zenith.load("s3://chg/t.parquet", storage_options=opts, cache_dir=cache)[
            "id"].to_pylist() == list(range(1000))
        pq.write_table(pa.table({"id": np.arange(5, 2005)}), path)
        before = _zenith.storage_stats()
        got = zenith.load("s3://chg/t.parquet", storage_options=opts, cache_dir=cache, cache=False)
        assert got["id"].to_pylist() == list(range(5, 2005))
        assert traffic(before)["requests"] > 0
        # Only the new version is kept.
        versions = [p for p in (cache / "objects").glob("*/*/*") if p.is_dir()]
        assert len(versions) == 1
        for entry in entries(cache):
            start, end = (int(x) for x in entry.name.split("-"))
            assert entry.read_bytes() == path.read_bytes()[start:end]
    finally:
        server.stop()


def test_cache_arguments_are_checked(s3: S3Server, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cache_limit"):
        zenith.load(f"s3://{BUCKET}/pq", storage_options=s3.options(), cache_dir=tmp_path,
                    cache_limit="lots")
    with pytest.raises(ValidationError, match="cache_dir"):
        zenith.load(f"s3://{BUCKET}/pq", storage_options=s3.options(), cache_dir=5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="listing_ttl"):
        zenith.load(f"s3://{BUCKET}/pq", storage_options=s3.options(listing_ttl="soon"),
                    cache_dir=tmp_path)
    # The environment names the folder when the argument does not.
    cache = tmp_path / "from-env"
    env_opts = {**s3.options()}
    os.environ["ZENITH_CACHE_DIR"] = str(cache)
    try:
        zenith.load(f"s3://{BUCKET}/data.csv", storage_options=env_opts, cache=False)
    finally:
        del os.environ["ZENITH_CACHE_DIR"]
    assert entries(cache)
    shutil.rmtree(cache)
