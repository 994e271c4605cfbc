"""Generate the benchmark datasets: the same rows as Parquet (two layouts), CSV, Arrow IPC and WebDataset
tar shards.

    python bench/generate_datasets.py --scale tiny|small|medium [--out bench/data] [--rows N]

Rows hold 32 float32 features f00..f31 and an int64 `label` (10 classes). Labels are sorted ascending
over the whole dataset, so a loader that does not shuffle shows it at once (shuffle quality near 0).
Features are class centre + noise, so a small model can learn them, quantised to 1/1000 so the CSV
round-trips exactly. Everything is seeded: the same arguments give byte-identical files.

Layout under <out>/<scale>/:
    parquet/part-00000.parquet .. part-00007.parquet   pyarrow's defaults (every column dictionary-
                                                       encoded, snappy, default data pages) with row
                                                       groups of 65536 rows: what users' files hold
    parquet-plain/part-00000.parquet ..                the older extra layout: row groups of 16384,
                                                       snappy, dictionary only for the label (PLAIN
                                                       floats)
    csv/data.csv                                       one file with a header
    ipc/data.arrow                                     one Arrow IPC file, record batches of 16384 rows
    wds/shard-000000.tar ..                            10000 samples each: KEY.bin (128 bytes, the
                                                       features as little-endian float32), KEY.cls
    manifest.json                                      parameters, files, row counts, checksums

The "parquet" layout deviates from pyarrow's defaults in one setting only, the row group size (the
default is up to 1Mi rows, one group per file here); 65536 is what the loader comparison measures.
The manifest records per format a one-line description of its layout (`layout`) and the writer's
version, so every table can say which layout it used.

The manifest's checksum (see benchlib.EpochChecksum) is what every benchmark run checks an epoch
against. Formats already written with the same parameters are kept; only missing ones are written.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import ipc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

SCALES = {"tiny": 50_000, "small": 500_000, "medium": 4_000_000}
FORMATS = ("parquet", "parquet-plain", "csv", "ipc", "wds")
PARQUET_FILES = 8
IPC_BATCH_ROWS = 16384
SHARD_SAMPLES = 10_000
SEED = 20240601
# Bump when the content or layout changes, so old datasets are regenerated rather than trusted.
LAYOUT_VERSION = 3


@dataclass(frozen=True)
class ParquetLayout:
    """How one Parquet format is written: pyarrow.parquet.write_table options and their summary."""

    row_group_rows: int
    options: dict
    about: str


PARQUET_LAYOUTS = {
    # pyarrow's defaults (use_dictionary=True, snappy, 1 MiB data pages) but for the row group size.
    "parquet": ParquetLayout(
        65536, {}, "pyarrow defaults (dictionary, snappy), row groups of 65,536"
    ),
    "parquet-plain": ParquetLayout(
        16384,
        {"compression": "snappy", "use_dictionary": [benchlib.LABEL]},
        "PLAIN floats (dictionary only for the label), snappy, row groups of 16,384",
    ),
}
LAYOUTS = {
    **{name: layout.about for name, layout in PARQUET_LAYOUTS.items()},
    "csv": "one file with a header (pyarrow.csv defaults)",
    "ipc": f"one uncompressed Arrow IPC file, record batches of {IPC_BATCH_ROWS:,}",
    "wds": f"tar shards of {SHARD_SAMPLES:,} samples: KEY.bin (raw float32), KEY.cls",
}


def make_rows(rows: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Features float32 [rows, 32] and sorted labels int64 [rows], deterministic for (rows, seed)."""
    rng = np.random.default_rng(seed)
    # Centres close enough that classes overlap: a small model needs more than one epoch.
    centres = 0.2 * rng.standard_normal(
        (benchlib.NUM_CLASSES, benchlib.NUM_FEATURES), dtype=np.float32
    )
    labels = (np.arange(rows, dtype=np.int64) * benchlib.NUM_CLASSES) // rows
    x = rng.standard_normal((rows, benchlib.NUM_FEATURES), dtype=np.float32)
    x += centres[labels]
    # Nearest float32 to k/1000: a correctly rounded float32 division of the integer k.
    x *= benchlib.FEATURE_SCALE
    np.rint(x, out=x)
    x /= np.float32(benchlib.FEATURE_SCALE)
    return x, labels


def to_table(x: np.ndarray, y: np.ndarray) -> pa.Table:
    """Arrow table with one column per feature plus the label."""
    columns = {name: x[:, i] for i, name in enumerate(benchlib.FEATURES)}
    columns[benchlib.LABEL] = y
    return pa.table(columns)


def write_parquet(table: pa.Table, out: Path, layout: ParquetLayout) -> list[Path]:
    """PARQUET_FILES contiguous parts written with one layout's options."""
    out.mkdir(parents=True)
    per_file = -(-table.num_rows // PARQUET_FILES)
    paths = []
    for i in range(PARQUET_FILES):
        path = out / f"part-{i:05d}.parquet"
        pq.write_table(
            table.slice(i * per_file, per_file),
            path,
            row_group_size=layout.row_group_rows,
            **layout.options,
        )
        paths.append(path)
    return paths


def write_csv(table: pa.Table, out: Path) -> list[Path]:
    """One CSV file with a header row."""
    out.mkdir(parents=True)
    path = out / "data.csv"
    pacsv.write_csv(table, path)
    return [path]


def write_ipc(table: pa.Table, out: Path) -> list[Path]:
    """One uncompressed Arrow IPC file (mmap-able), record batches of IPC_BATCH_ROWS rows."""
    out.mkdir(parents=True)
    path = out / "data.arrow"
    with ipc.new_file(path, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=IPC_BATCH_ROWS):
            writer.write_batch(batch)
    return [path]


def _tar_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    """A regular-file member with fixed metadata, so shards are byte-identical across runs."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    return info, io.BytesIO(data)


def write_shard(path: Path, first_key: int, x: np.ndarray, y: np.ndarray) -> None:
    """One WebDataset shard: per sample KEY.bin (raw little-endian float32) and KEY.cls (ASCII)."""
    x = x.astype("<f4", copy=False)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(len(y)):
            key = f"{first_key + i:09d}"
            tar.addfile(*_tar_member(f"{key}.bin", x[i].tobytes()))
            tar.addfile(*_tar_member(f"{key}.cls", str(int(y[i])).encode()))


def write_wds(x: np.ndarray, y: np.ndarray, out: Path) -> list[Path]:
    """SHARD_SAMPLES rows per shard, shards written in parallel (tarfile is per-sample Python)."""
    out.mkdir(parents=True)
    starts = range(0, len(y), SHARD_SAMPLES)
    paths = [out / f"shard-{i:06d}.tar" for i in range(len(starts))]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        jobs = [
            pool.submit(write_shard, path, s, x[s : s + SHARD_SAMPLES], y[s : s + SHARD_SAMPLES])
            for path, s in zip(paths, starts, strict=True)
        ]
        for job in jobs:
            job.result()
    return paths


def parameters(scale: str, rows: int) -> dict:
    """Everything the files depend on; a manifest with equal parameters holds the same rows."""
    return {
        "scale": scale,
        "rows": rows,
        "seed": SEED,
        "features": benchlib.FEATURES,
        "label": benchlib.LABEL,
        "classes": benchlib.NUM_CLASSES,
        "feature_scale": benchlib.FEATURE_SCALE,
        "parquet_files": PARQUET_FILES,
        "row_group_rows": {name: layout.row_group_rows for name, layout in PARQUET_LAYOUTS.items()},
        "ipc_batch_rows": IPC_BATCH_ROWS,
        "shard_samples": SHARD_SAMPLES,
        "layout_version": LAYOUT_VERSION,
    }


def current_formats(root: Path, params: dict) -> dict:
    """Formats already on disk under root with these parameters and all their files intact."""
    path = root / "manifest.json"
    if not path.exists():
        return {}
    manifest = json.loads(path.read_text())
    if manifest.get("parameters") != params:
        return {}
    return {
        name: fmt
        for name, fmt in manifest["formats"].items()
        if all(
            (root / f["path"]).is_file() and (root / f["path"]).stat().st_size == f["bytes"]
            for f in fmt["files"]
        )
    }


def generate(scale: str, out: Path, rows: int | None = None, formats: list[str] = FORMATS) -> dict:
    """Write the formats of `scale` under out/scale that are not current; return the manifest."""
    rows = rows or SCALES[scale]
    root = out / scale
    params = parameters(scale, rows)
    have = current_formats(root, params)
    missing = [fmt for fmt in formats if fmt not in have]
    if not missing:
        print(f"{root}: up to date ({rows:,} rows)")
        return json.loads((root / "manifest.json").read_text())
    if not have and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    x, y = make_rows(rows)
    checksum = benchlib.dataset_checksum(x, y)
    table = to_table(x, y)
    writers = {
        **{
            name: lambda name=name: write_parquet(table, root / name, PARQUET_LAYOUTS[name])
            for name in PARQUET_LAYOUTS
        },
        "csv": lambda: write_csv(table, root / "csv"),
        "ipc": lambda: write_ipc(table, root / "ipc"),
        "wds": lambda: write_wds(x, y, root / "wds"),
    }
    manifest = {
        "parameters": params,
        "label_std": float(y.std()),
        "bytes_per_row": benchlib.NUM_FEATURES * 4 + 8,
        "formats": dict(have),
    }
    for fmt in missing:
        t0 = time.perf_counter()
        shutil.rmtree(root / fmt, ignore_errors=True)
        paths = writers[fmt]()
        files = [{"path": str(p.relative_to(root)), "bytes": p.stat().st_size} for p in paths]
        manifest["formats"][fmt] = {
            "dir": fmt,
            "rows": rows,
            "files": files,
            "bytes": sum(f["bytes"] for f in files),
            "checksum": checksum,
            "layout": LAYOUTS[fmt],
            "writer": "Python tarfile" if fmt == "wds" else f"pyarrow {pa.__version__}",
        }
        size = manifest["formats"][fmt]["bytes"] / 2**20
        print(
            f"  {fmt:13s} {len(files):4d} files {size:9.1f} MiB  {time.perf_counter() - t0:6.1f} s"
        )
    manifest["formats"] = dict(sorted(manifest["formats"].items()))
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{root}: {rows:,} rows in {time.perf_counter() - started:.1f} s")
    return manifest


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale",
        choices=sorted(SCALES),
        default="tiny",
        help="tiny=50k, small=500k, medium=4M rows (default tiny)",
    )
    parser.add_argument(
        "--out", type=Path, default=benchlib.DATA_DIR, help="output root (default bench/data)"
    )
    parser.add_argument("--rows", type=int, help="override the scale's row count (tests)")
    parser.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help=f"comma-separated subset of {','.join(FORMATS)} (default all: both Parquet layouts)",
    )
    args = parser.parse_args()
    formats = list(dict.fromkeys(f for f in args.formats.split(",") if f))
    unknown = set(formats) - set(FORMATS)
    if unknown:
        parser.error(f"unknown format(s): {', '.join(sorted(unknown))}")
    generate(args.scale, args.out, args.rows, formats)


if __name__ == "__main__":
    main()
