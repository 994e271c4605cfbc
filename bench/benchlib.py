"""Shared pieces of the benchmark suite: dataset layout, epoch checksums, memory sampling, machine facts.

Every benchmark script imports this module, so a loader's output is checked the same way everywhere and
the generator's manifest is computed by the very code that later verifies an epoch against it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Self

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
RESULTS_DIR = BENCH_DIR / "results"

NUM_FEATURES = 32
FEATURES = [f"f{i:02d}" for i in range(NUM_FEATURES)]
LABEL = "label"
NUM_CLASSES = 10
# Features are stored as float32 nearest to a multiple of 1/FEATURE_SCALE: the CSV text then round-trips
# exactly and checksums can be exact integer sums of round(x * FEATURE_SCALE), independent of order.
FEATURE_SCALE = 1000

# The Parquet layouts the generator writes (see generate_datasets.PARQUET_LAYOUTS), each in its own
# directory under the scale: pyarrow's defaults, and the older PLAIN-float layout.
PARQUET_FORMATS = ("parquet", "parquet-plain")

# Odd 64-bit weights for the per-row hash (fixed: the manifest's row_hash depends on them).
_HASH_WEIGHTS = np.random.default_rng(20240601).integers(
    1, 2**63, size=NUM_FEATURES + 1, dtype=np.uint64
) | np.uint64(1)
_MASK64 = (1 << 64) - 1


def scale_dir(scale: str, data_dir: Path = DATA_DIR) -> Path:
    """Directory holding every format of one generated scale."""
    return data_dir / scale


def load_manifest(scale: str, data_dir: Path = DATA_DIR) -> dict:
    """The generator's manifest for a scale; raises FileNotFoundError with the command to run."""
    path = scale_dir(scale, data_dir) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `python bench/generate_datasets.py --scale {scale}` first"
        )
    return json.loads(path.read_text())


def layout_of(manifest: dict, fmt: str) -> str:
    """The manifest's one-line description of a format's layout (older manifests have none)."""
    entry = manifest["formats"].get(fmt, {})
    return str(entry.get("layout", f"{fmt}: layout not recorded (regenerate the dataset)"))


def _row_hashes(milli: np.ndarray, labels: np.ndarray) -> int:
    """Sum (mod 2**64) of a mixing hash of each row: equal only for equal multisets of rows."""
    h = (milli.astype(np.uint64) * _HASH_WEIGHTS[:NUM_FEATURES]).sum(axis=1, dtype=np.uint64)
    h ^= labels.astype(np.uint64) * _HASH_WEIGHTS[NUM_FEATURES]
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return int(h.sum(dtype=np.uint64))


class EpochChecksum:
    """Order-independent checksum of the (x, y) rows an epoch delivered, plus shuffle quality.

    Exact parts (integers): row count, label sum, label histogram, sum of round(x * FEATURE_SCALE),
    the same weighted by label (catches x/y rows paired wrongly), weighted by column position (catches
    swapped columns), and a row-multiset hash (catches a duplicated row that replaced another).
    The float64 feature sum is kept as well and compared with a tolerance.
    """

    def __init__(self, label_std: float | None = None) -> None:
        self.rows = 0
        self.label_sum = 0
        self.label_counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        self.feature_sum = 0.0
        self.feature_milli_sum = 0
        self.pair_milli_sum = 0
        self.column_milli_sum = 0
        self.row_hash = 0
        self.bad_batches: list[str] = []
        self._label_std = label_std
        self._batch_stds: list[float] = []
        self._column_weights = np.arange(1, NUM_FEATURES + 1, dtype=np.int64)

    def add(self, x, y) -> None:
        """Account one collated batch: x float32 [B, 32], y int64 [B] (numpy arrays or CPU tensors)."""
        x = np.asarray(x)
        y = np.asarray(y)
        if (
            x.dtype != np.float32
            or y.dtype != np.int64
            or x.ndim != 2
            or x.shape[1] != NUM_FEATURES
        ):
            self.bad_batches.append(f"x {x.dtype}{list(x.shape)}, y {y.dtype}{list(y.shape)}")
            return
        if y.shape != (x.shape[0],):
            self.bad_batches.append(f"x rows {x.shape[0]} != y rows {y.shape}")
            return
        milli = np.rint(x.astype(np.float64) * FEATURE_SCALE).astype(np.int64)
        row_milli = milli.sum(axis=1)
        self.rows += len(y)
        self.label_sum += int(y.sum())
        if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
            self.bad_batches.append(f"label out of range [{y.min()}, {y.max()}]")
            return
        self.label_counts += np.bincount(y, minlength=NUM_CLASSES)
        self.feature_sum += float(x.sum(dtype=np.float64))
        self.feature_milli_sum += int(row_milli.sum())
        self.pair_milli_sum += int((row_milli * y).sum())
        self.column_milli_sum += int(milli.sum(axis=0) @ self._column_weights)
        self.row_hash = (self.row_hash + _row_hashes(milli, y)) & _MASK64
        if self._label_std and len(y) >= 2:
            self._batch_stds.append(float(y.std()) / self._label_std)

    def shuffle_quality(self) -> float | None:
        """Mean over batches of std(y in batch) / std(y over the dataset); ~1.0 for a uniform shuffle."""
        return float(np.mean(self._batch_stds)) if self._batch_stds else None

    def summary(self) -> dict:
        """The checksum as JSON-ready values (the manifest stores exactly this shape)."""
        return {
            "rows": self.rows,
            "label_sum": self.label_sum,
            "label_counts": self.label_counts.tolist(),
            "feature_sum": self.feature_sum,
            "feature_milli_sum": self.feature_milli_sum,
            "pair_milli_sum": self.pair_milli_sum,
            "column_milli_sum": self.column_milli_sum,
            "row_hash": self.row_hash,
        }

    def mismatches(self, expected: dict) -> list[str]:
        """Differences from the manifest's checksum; empty when the epoch delivered exactly the data."""
        problems = list(self.bad_batches)
        got = self.summary()
        for key, want in expected.items():
            if key == "feature_sum":
                tolerance = 1e-9 * max(1.0, expected["feature_abs_sum"])
                if abs(got[key] - want) > tolerance:
                    problems.append(
                        f"feature_sum {got[key]!r} != {want!r} (tolerance {tolerance:g})"
                    )
            elif key in got and got[key] != want:
                problems.append(f"{key} {got[key]!r} != {want!r}")
        return problems


def dataset_checksum(x: np.ndarray, y: np.ndarray, chunk: int = 65536) -> dict:
    """Checksum of a whole dataset held in memory, in the manifest's shape (plus label stats)."""
    check = EpochChecksum()
    abs_sum = 0.0
    for start in range(0, len(y), chunk):
        check.add(x[start : start + chunk], y[start : start + chunk])
        abs_sum += float(np.abs(x[start : start + chunk]).sum(dtype=np.float64))
    out = check.summary()
    out["feature_abs_sum"] = abs_sum
    return out


def peak_self_rss_bytes() -> int:
    """ru_maxrss of this process in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _proc_tree_pids() -> list[int]:
    """This process and its descendants (workers of torch/webdataset loaders)."""
    pids = [os.getpid()]
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    i = 0
    while i < len(pids):
        pids.extend(children.get(pids[i], []))
        i += 1
    return pids


def _rss_and_pss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes from smaps_rollup; (0, 0) if it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def tree_memory() -> tuple[int, int]:
    """(sum of RSS, sum of PSS) over this process and its descendants, in bytes."""
    rss = pss = 0
    for pid in _proc_tree_pids():
        r, p = _rss_and_pss(pid)
        rss += r
        pss += p
    return rss, pss


def shm_used() -> int:
    """Bytes in use on /dev/shm: where torch's worker processes put the batches they hand to
    the main process (counted in no process's PSS until it is mapped); 0 where there is none."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return 0
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _rss(pid: int) -> int:
    """RSS of one process in bytes from statm (cheap: no page-table walk); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


class MemorySampler:
    """Samples the process tree's RSS and PSS in a thread; peaks are reported relative to the start.

    RSS counts pages shared by forked workers once per process; PSS splits them fairly, so both are
    kept. The main process's ru_maxrss catches a peak that falls between two samples. PSS needs a
    walk of every page table (smaps_rollup), which costs a large process milliseconds of kernel time,
    so it is read every `pss_every`-th sample; RSS comes from statm every `interval` seconds.
    """

    def __init__(self, interval: float = 0.05, pss_every: int = 5) -> None:
        self.interval = interval
        self.pss_every = pss_every
        self.base_rss, self.base_pss = tree_memory()
        self.peak_rss, self.peak_pss = self.base_rss, self.base_pss
        self.base_shm = shm_used()
        self.peak_pss_shm = self.base_pss + self.base_shm
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(self.interval):
            tick += 1
            if tick % self.pss_every == 0:
                self._sample()
            else:
                self.peak_rss = max(self.peak_rss, sum(_rss(pid) for pid in _proc_tree_pids()))

    def _sample(self) -> None:
        rss, pss = tree_memory()
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_pss_shm = max(self.peak_pss_shm, pss + shm_used())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def report(self) -> dict:
        """Peak growth in MiB: tree RSS (at least the main process's ru_maxrss), tree PSS, and
    tree PSS plus /dev/shm (sampled together)."""
        peak_rss = max(self.peak_rss, peak_self_rss_bytes())
        return {
            "rss_base_mb": self.base_rss / 2**20,
            "rss_growth_mb": (peak_rss - self.base_rss) / 2**20,
            "pss_growth_mb": (self.peak_pss - self.base_pss) / 2**20,
            "pss_shm_growth_mb": (self.peak_pss_shm - self.base_pss - self.base_shm) / 2**20,
        }


@dataclass
class Timer:
    """perf_counter stopwatch: `with Timer() as t: ...; t.seconds`."""

    seconds: float = 0.0

    def __enter__(self) -> Self:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start


def warm_page_cache(paths: list[Path]) -> int:
    """Read every file once so all systems start from the same (warm) page cache; returns bytes."""
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(8 << 20):
                total += len(chunk)
    return total


def machine_info() -> dict:
    """nproc, CPU model, RAM, OS and Python of the machine the figures come from."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(ram / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    """Installed versions of every library the suite compares (None where one is missing)."""
    out = {"python": platform.python_version()}
    for dist in ("zenith-data", "torch", "pyarrow", "polars", "numpy", "webdataset"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def busy_neighbours() -> list[str]:
    """Names of compiler processes running now: figures taken beside them are noise on a small box."""
    names = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                comm = Path(f"/proc/{entry.name}/comm").read_text().strip()
            except OSError:
                continue
            if comm in ("rustc", "cargo", "cc1", "cc1plus", "ld"):
                names.append(comm)
    return sorted(set(names))


def median(values: list[float]) -> float | None:
    """Median of the values that are present, None when there are none."""
    present = sorted(v for v in values if v is not None)
    return float(np.median(present)) if present else None


def table_to_xy(table) -> tuple[np.ndarray, np.ndarray]:
    """Row-major x float32 [N, 32] and y int64 [N] from a pyarrow.Table of the benchmark schema.

    Filled one record batch at a time: writing a whole column into a row-major array strides over
    all of it 32 times, a batch's slice stays in cache.
    """
    x = np.empty((table.num_rows, NUM_FEATURES), dtype=np.float32)
    start = 0
    for batch in table.select(FEATURES).to_batches():
        rows = x[start : start + batch.num_rows]
        for i, column in enumerate(batch.columns):
            rows[:, i] = column.to_numpy()
        start += batch.num_rows
    return x, table.column(LABEL).to_numpy()


def run_json(cmd: list[str], timeout: float) -> dict:
    """Run a benchmark child in a fresh process: its last stdout line as JSON, or {"error": why}."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(lines[-1])


def report_context() -> dict:
    """What every results file starts with: when, the command, the machine, the versions."""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(sys.argv),
        "machine": machine_info(),
        "versions": versions(),
    }


def write_report(stem: Path, report: dict, markdown: str) -> None:
    """Write <stem>.json and <stem>.md and show the Markdown."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"wrote {stem}.json, {stem}.md")
