"""Bounded memory, proven: a child process streams a dataset several times its memory budget
through the DataLoader (Parquet, CSV, Arrow IPC, a WebDataset tar, and Parquet from S3) with 1,
2 and 8 threads, and its peak resident set (``resource.getrusage``) grows by less than the
bound below, whatever the dataset's size:

    prefetch x batch bytes                       batches queued for the consumer
  + 3 x window bytes                             the window emitted and two decoding ahead
  + decoding x 2 x unit bytes                    the units decoding at once: their input and
                                                 rows, briefly also in output layout; one per
                                                 decode thread (8 per worker for object
                                                 storage, to keep requests in flight), and no
                                                 more than the windows in flight span
  + MARGIN_MB                                    what any loader process adds, whatever the
                                                 data: thread stacks, each thread's allocator
                                                 pages, the I/O runtime and its ranges in
                                                 flight, the arrays the consumer holds

Decoded data is not kept across epochs here (``reuse_budget=0``: that budget is its own). Mapped
files hand their pages back as windows are consumed, so a CSV, IPC or tar epoch no longer
counts the file's pages in the resident set; this is asserted too (file-backed pages at the
end of the epoch)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zenith
from pyarrow import feather
from s3_server import S3Server

ROWS = 2_000_000
FEATURES = 16
# An int64 id and 16 features: float32 in binary formats (137 MB per epoch), float64 as CSV
# infers them (259 MB).
BUDGET = 8_000_000  # memory_budget: windows of 4 MB
BATCH = 512
MARGIN_MB = 64
# A tar sample: a float32[4096] .npy (16 KiB) and its id; 8,000 of them are 131 MB.
TAR_SAMPLES, TAR_WIDTH = 8_000, 4096

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import zenith

    def status_mb(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024

    def peak_mb():
        # The kernel's peak of this process; VmHWM is the same peak, read from /proc (they
        # may differ by the kernel's per-CPU counter slack).
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert abs(peak - status_mb("VmHWM")) < 4, (peak, status_mb("VmHWM"))
        return peak

    def file_mb():
        return status_mb("RssFile")

    source, column, threads, budget, batch = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    options = json.loads(sys.argv[6])
    base, base_file = peak_mb(), file_mb()
    dl = zenith.DataLoader(source, batch_size=batch, num_workers=threads, memory_budget=budget,
                           reuse_budget=0, seed=3, **options)
    rows = total = 0
    biggest = 0
    for b in dl:
        ids = b[column]
        rows += len(ids)
        total += int(ids.sum())
        biggest = max(biggest, sum(v.nbytes for v in b.values() if hasattr(v, "nbytes")))
    print(json.dumps({"rows": rows, "sum": total, "growth_mb": peak_mb() - base,
                      "decode_threads": dl.stats()["threads"],
                      "file_growth_mb": file_mb() - base_file, "batch_bytes": biggest}))
    """
)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str, dict, int]]]:
    """Per source: (path or URL, id column, loader options, rows of its largest unit)."""
    root = tmp_path_factory.mktemp("memory")
    ids = np.arange(ROWS, dtype=np.int64)
    cols: dict[str, np.ndarray] = {"id": ids}
    for j in range(FEATURES):
        cols[f"f{j}"] = ((ids * (j + 3)) % 1009).astype(np.float32) / 4
    table = pa.table(cols)
    group = 20_000
    (root / "pq").mkdir()
    for k in range(4):
        pq.write_table(table.slice(k * ROWS // 4, ROWS // 4), root / "pq" / f"p{k}.parquet",
                       row_group_size=group)
    pacsv.write_csv(table, root / "d.csv")
    feather.write_feather(table, root / "d.arrow", compression="uncompressed", chunksize=group)
    x = np.zeros((TAR_SAMPLES, TAR_WIDTH), dtype=np.float32)
    x[:, 0] = np.arange(TAR_SAMPLES)
    samples = pa.table({
        "npy": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), TAR_WIDTH),
        "cls": pa.array(np.arange(TAR_SAMPLES, dtype=np.int64)),
    })
    tars = zenith.write_webdataset(samples, root / "tar" / "s-%03d.tar", maxcount=2_000)
    assert len(tars) == 4
    s3root = root / "s3root"
    shutil.copytree(root / "pq", s3root / "mem" / "pq")
    server = S3Server.start(s3root)

    def unit_rows(path: Path) -> int:
        info = zenith.info(str(path))
        return max(-(-f["rows"] // f["units"]) for f in info["files"])

    try:
        yield {
            "parquet": (str(root / "pq"), "id", {}, group),
            # CSV units are 4 MiB of text (about 40,000 of these rows).
            "csv": (str(root / "d.csv"), "id", {}, unit_rows(root / "d.csv")),
            "ipc": (str(root / "d.arrow"), "id", {}, group),
            # Tar units are 1 MiB of members (64 samples).
            "tar": (str(root / "tar"), "cls", {"columns": ["npy", "cls"]}, unit_rows(root / "tar")),
            "s3": ("s3://mem/pq", "id", {"storage_options": server.options()}, group),
        }
    finally:
        server.stop()


# ``ru_maxrss`` keeps the peak of the process that forked the child across ``exec``; started
# from the test runner (hundreds of MB), every child would start at its peak. A small launcher
# process forks the measured child instead.
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def run_child(source: str, column: str, threads: int, options: dict, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-c", CHILD, source, column,
         str(threads), str(BUDGET), str(batch), json.dumps(options)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", ["parquet", "csv", "ipc", "tar", "s3"])
def test_an_epoch_several_times_the_budget_stays_under_the_bound(
    sources: dict[str, tuple[str, str, dict, int]], name: str
) -> None:
    source, column, options, unit_rows = sources[name]
    n = TAR_SAMPLES if name == "tar" else ROWS
    batch = 64 if name == "tar" else BATCH  # 1 MB batches of tar samples
    # Three children at a time: each measures its own peak.
    with ThreadPoolExecutor(3) as pool:
        results = dict(zip((1, 2, 8), pool.map(lambda t: run_child(source, column, t, options, batch),
                                                 (1, 2, 8)), strict=True))
    for threads, r in results.items():
        assert r["rows"] == n and r["sum"] == n * (n - 1) // 2, (threads, r)
        row_bytes = r["batch_bytes"] / batch
        epoch_mb, unit_bytes = n * row_bytes / 2**20, unit_rows * row_bytes
        prefetch = 2 * threads  # the loader's default
        window_rows = BUDGET // 2 / row_bytes
        decoding = min(r["decode_threads"], -(-3 * window_rows // unit_rows) + 3)
        bound_mb = (prefetch * r["batch_bytes"] + 3 * BUDGET // 2
                    + decoding * 2 * unit_bytes) / 2**20 + MARGIN_MB
        # The proof is only worth something when the epoch would not fit under the bound.
        assert epoch_mb > bound_mb, (name, threads, epoch_mb, bound_mb)
        assert r["growth_mb"] < bound_mb, (
            f"{name} with {threads} threads grew by {r['growth_mb']:.0f} MB, bound "
            f"{bound_mb:.0f} MB (epoch {epoch_mb:.0f} MB)"
        )
        # Pages of mapped files are handed back as windows are consumed: what stays is at
        # most the windows in flight, not the file.
        assert r["file_growth_mb"] < 3 * BUDGET / 2 / 2**20 + 8, (name, threads, r)
