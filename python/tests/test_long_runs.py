"""Long runs stay flat: 200 epochs of a small dataset in one process, and 50 loaders created,
abandoned mid-epoch and dropped, end with the threads and open files they started with and an
RSS within a stated bound of where it settled. Measured in a fresh child process (its own RSS,
threads and descriptors from /proc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# RSS may move by allocator bookkeeping and the interpreter's own caches; a leak of one batch
# per epoch (32 KB here) over 180 epochs would exceed this.
RSS_BOUND_MB = 8
# Epochs of the long run: 200, more under `make soak`.
EPOCHS = int(os.environ.get("ZENITH_SOAK_EPOCHS", "200"))

CHILD = textwrap.dedent(
    """
    import gc, json, os, sys
    import zenith

    def now():
        rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        names = sorted(open(f"/proc/self/task/{t}/comm").read().strip()
                       for t in os.listdir("/proc/self/task"))
        return {"rss_mb": rss / 2**20, "threads": names, "fds": len(os.listdir("/proc/self/fd"))}

    path, mode, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out = {}
    if mode == "epochs":
        dl = zenith.DataLoader(path, batch_size=256, num_workers=2, seed=1)
        rows = 0
        for epoch in range(epochs):
            for batch in dl:
                rows += len(batch["x"])
            if epoch == 19:
                gc.collect()
                out["settled"] = now()
        gc.collect()
        out["end"], out["rows"], out["epoch"] = now(), rows, dl.epoch
    else:
        # The first loader starts what lives as long as the process: the shared read pool
        # (zenith-read-N) and pyarrow's allocator thread.
        first = zenith.DataLoader(path, batch_size=64, num_workers=2)
        next(iter(first))
        del first
        gc.collect()
        out["before"] = now()
        for i in range(50):
            dl = zenith.DataLoader(path, batch_size=64, num_workers=2, seed=i)
            it = iter(dl)
            for _ in range(3):
                next(it)
            if i % 2:
                it.close()
            del it, dl  # the other half is abandoned without close
            if i == 9:
                gc.collect()
                out["settled"] = now()
        gc.collect()
        out["end"] = now()
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("long") / "t.parquet"
    n = 8192
    table = pa.table({"x": np.arange(n, dtype=np.float32), "y": np.arange(n, dtype=np.int64)})
    pq.write_table(table, path, row_group_size=1024)
    return path


def run_child(path: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(EPOCHS)], check=True,
                         capture_output=True, text=True, timeout=300 + EPOCHS)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_hundred_epochs_keep_threads_files_and_memory_flat(small: Path) -> None:
    got = run_child(small, "epochs")
    assert (got["rows"], got["epoch"]) == (EPOCHS * 8192, EPOCHS)
    settled, end = got["settled"], got["end"]
    assert end["threads"] == settled["threads"], got
    assert end["fds"] == settled["fds"], got
    assert end["rss_mb"] - settled["rss_mb"] < RSS_BOUND_MB, got


def test_fifty_loaders_abandoned_mid_epoch_release_their_threads_and_files(small: Path) -> None:
    got = run_child(small, "loaders")
    before, settled, end = got["before"], got["settled"], got["end"]
    # Every decode, loader and pack thread of an abandoned iterator is joined when it is dropped.
    assert end["threads"] == before["threads"], got
    assert not any(t.startswith(("zenith-decode", "zenith-loader")) for t in end["threads"]), got
    assert end["fds"] == before["fds"], got
    assert end["rss_mb"] - settled["rss_mb"] < RSS_BOUND_MB, got
