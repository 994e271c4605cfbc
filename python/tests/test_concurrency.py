"""Concurrency: loaders iterated from several Python threads at once, ``zenith.load`` from 8
threads at once, and loaders used in a process forked after they ran (the way torch's
DataLoader workers and ``multiprocessing`` fork): a fresh iteration works in the child, and an
iteration the parent had started raises a clear error there instead of hanging."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import zenith

FORMATS = ["parquet", "csv", "arrow"]


def epoch_ids(dl: zenith.DataLoader) -> list[int]:
    return [int(i) for b in dl for i in b["id"]]


def test_loaders_iterated_from_threads_at_once(datasets: dict[str, Path]) -> None:
    specs = [(fmt, seed) for fmt in FORMATS for seed in (1, 2)]
    want = {
        spec: epoch_ids(zenith.DataLoader(datasets[spec[0]], batch_size=64, seed=spec[1]))
        for spec in specs
    }
    barrier = threading.Barrier(len(specs))

    def run(spec: tuple[str, int]) -> list[list[int]]:
        dl = zenith.DataLoader(datasets[spec[0]], batch_size=64, seed=spec[1], num_workers=2)
        barrier.wait()
        out = []
        for epoch in range(2):
            dl.set_epoch(epoch)
            out.append(epoch_ids(dl))
        return out

    with ThreadPoolExecutor(len(specs)) as pool:
        got = dict(zip(specs, pool.map(run, specs), strict=True))
    for spec in specs:
        first, second = got[spec]
        assert first == want[spec], spec
        assert sorted(second) == sorted(first) and second != first, spec


def test_one_loader_iterated_by_two_threads_in_turn(datasets: dict[str, Path]) -> None:
    """A loader handed from thread to thread mid-epoch continues where it was."""
    dl = zenith.DataLoader(datasets["parquet"], batch_size=100, seed=3, num_workers=2)
    want = epoch_ids(zenith.DataLoader(datasets["parquet"], batch_size=100, seed=3))
    it = iter(dl)
    seen: list[int] = []

    def take(n: int) -> None:
        for _ in range(n):
            seen.extend(int(i) for i in next(it)["id"])

    for _ in range(5):
        t = threading.Thread(target=take, args=(10,))
        t.start()
        t.join()
    assert seen == want


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_load_from_eight_threads_at_once(datasets: dict[str, Path], fmt: str) -> None:
    want = zenith.load(datasets[fmt], cache=False)
    barrier = threading.Barrier(8)

    def run(i: int) -> bool:
        barrier.wait()
        table = zenith.load(datasets[fmt], cache=i % 2 == 0)
        return table.equals(want)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(run, range(8)))


# The loaders the forked children use: module globals, as a training script's would be.
_LOADER: zenith.DataLoader | None = None
_ITER = None


def _child_epoch(epoch: int) -> list[int]:
    assert _LOADER is not None
    _LOADER.set_epoch(epoch)
    return epoch_ids(_LOADER)


def _child_next_of_parent_iterator() -> str:
    try:
        assert _ITER is not None
        next(_ITER)
    except zenith.ZenithError as e:
        return f"{type(e).__name__}: {e}"
    return "no error"


def test_loader_used_in_a_child_forked_after_it_ran(datasets: dict[str, Path]) -> None:
    global _LOADER, _ITER
    _LOADER = zenith.DataLoader(datasets["parquet"], batch_size=64, seed=5, num_workers=2)
    parent = [epoch_ids(_LOADER)]
    _LOADER.set_epoch(1)
    parent.append(epoch_ids(_LOADER))
    # An iteration is running (threads started, batches queued) when the child is forked.
    _ITER = iter(_LOADER)
    first = next(_ITER)
    ctx = multiprocessing.get_context("fork")
    try:
        with ctx.Pool(2) as pool:
            got = pool.map(_child_epoch, [0, 1], chunksize=1)
            stale = pool.apply(_child_next_of_parent_iterator)
        assert got == parent
        assert stale.startswith("ValidationError: "), stale
        assert "forked" in stale and "iter(loader)" in stale and "  " not in stale, stale
        # The parent's iteration is untouched by the children.
        rest = np.concatenate([first["id"], *[b["id"] for b in _ITER]])
        assert sorted(rest.tolist()) == sorted(parent[0])
    finally:
        _LOADER = _ITER = None


FORKED_EXIT = """
import os, sys, zenith
dl = zenith.DataLoader(sys.argv[1], batch_size=64, num_workers=2)
it = iter(dl)
next(it)
pid = os.fork()
if pid == 0:
    try:
        next(it)
    except zenith.ValidationError:
        pass
    fresh = sum(len(b["id"]) for b in dl)
    print("child", fresh, flush=True)
    sys.exit(0)  # an ordinary exit: the stale iteration is dropped at finalization
_, status = os.waitpid(pid, 0)
print("parent", sum(len(b["id"]) for b in it) + 64, os.waitstatus_to_exitcode(status), flush=True)
"""


def test_a_forked_child_exits_normally_holding_a_stale_iteration(datasets: dict[str, Path]) -> None:
    out = subprocess.run([sys.executable, "-c", FORKED_EXIT, str(datasets["parquet"])],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(out.stdout.split("\n")[:2]) == ["child 5000", "parent 5000 0"], out.stdout
