"""Shared fixtures: small real datasets written with pyarrow in every format Zenith reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyarrow import feather, ipc

N_ROWS = 5_000
N_FEATURES = 4


def make_table(n: int = N_ROWS, seed: int = 0) -> pa.Table:
    """An ``id`` column (0..n), float32 features ``f0..f3`` derived from the id, and a sorted
    int64 ``label`` so that a missing shuffle is visible."""
    ids = np.arange(n, dtype=np.int64)
    cols: dict[str, np.ndarray] = {"id": ids}
    for j in range(N_FEATURES):
        cols[f"f{j}"] = (ids * (j + 1) % 997).astype(np.float32) / 7.0
    cols["label"] = (ids * 10 // max(n, 1)).astype(np.int64)
    return pa.table(cols)


def write_parquet_dir(table: pa.Table, path: Path, files: int = 4, row_group_size: int = 300) -> Path:
    """Splits ``table`` into ``files`` Parquet files with small row groups."""
    path.mkdir(parents=True, exist_ok=True)
    n = table.num_rows
    for i in range(files):
        part = table.slice(i * n // files, (i + 1) * n // files - i * n // files)
        pq.write_table(part, path / f"part-{i:03d}.parquet", row_group_size=row_group_size)
    return path


@pytest.fixture(scope="session")
def table() -> pa.Table:
    return make_table()


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory, table: pa.Table) -> dict[str, Path]:
    """The same rows as a Parquet directory, one CSV, an IPC file and an IPC stream."""
    root = tmp_path_factory.mktemp("data")
    out = {"parquet": write_parquet_dir(table, root / "parquet")}
    pacsv.write_csv(table, root / "data.csv")
    out["csv"] = root / "data.csv"
    feather.write_feather(table, root / "data.arrow", compression="uncompressed", chunksize=700)
    out["arrow"] = root / "data.arrow"
    with ipc.new_stream(root / "data.arrows", table.schema) as writer:
        for batch in table.to_batches(max_chunksize=650):
            writer.write_batch(batch)
    out["arrows"] = root / "data.arrows"
    return out


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZENITH_NUM_WORKERS", raising=False)


def thread_count() -> int:
    """Threads of this process right now."""
    return len(os.listdir("/proc/self/task"))


def interrupt_python(code: str, argv: list[str] | None = None, ready: Callable[[], None] | None = None,
                     settle: float = 0.5) -> str:
    """Runs ``code`` in a fresh interpreter, waits for it to print ``started`` (and for ``ready``
    to return, if given), checks it is still blocked after ``settle`` seconds, sends SIGINT and
    returns its stderr. Fails the test if the process does not exit with an error within 20 s."""
    # A test run started in the background of a non-interactive shell inherits SIGINT ignored,
    # and Python then installs no KeyboardInterrupt handler: the child restores it first.
    prelude = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", prelude + code, *(argv or [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        if ready is not None:
            ready()
        time.sleep(settle)
        assert proc.poll() is None, "the call returned before the signal"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode != 0, err
    return err
