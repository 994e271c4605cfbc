"""Zenith alone: how fast zenith.DataLoader delivers shuffled batches, for a fixed duration.

    python bench/zenith/zenith_benchmark.py --duration 10 --batch-size 64 [--scale small]
        [--format parquet|parquet-plain|csv|ipc] [--workers N]

Iterates zenith.DataLoader(<dataset>, batch_size=B, shuffle=True, seed=0,
columns={"x": ["f00", ..., "f31"], "y": "label"}) epoch after epoch until the duration is up, and
reports samples/s, MB/s (of delivered x and y), time to the first batch (from constructing the
loader), p50/p95/p99 of the time each later batch took, peak RSS growth and the loader's own
stats() per stage. Every completed epoch must deliver the manifest's row count. The dataset is
generated first if it is missing. Writes bench/results/zenith-<scale>-<format>-b<B>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parents[1]))
import benchlib
import generate_datasets


def source_path(root: Path, manifest: dict, fmt: str) -> Path:
    """What the loader is given: the Parquet directory, or the single CSV / IPC file."""
    if fmt in benchlib.PARQUET_FORMATS:
        return root / fmt
    return root / manifest["formats"][fmt]["files"][0]["path"]


def run(source: Path, args: argparse.Namespace, expected_rows: int) -> dict:
    """Iterate for args.duration seconds; the measurements and the loader's stats()."""
    import zenith

    latencies = []
    rows = batches = epochs = 0
    with benchlib.MemorySampler() as memory:
        start = time.perf_counter()
        dl = zenith.DataLoader(
            str(source),
            batch_size=args.batch_size,
            shuffle=True,
            seed=0,
            columns={"x": benchlib.FEATURES, "y": benchlib.LABEL},
            num_workers=args.workers,
        )
        first_batch = None
        deadline = start + args.duration
        while time.perf_counter() < deadline:
            dl.set_epoch(epochs)
            epoch_rows = 0
            it = iter(dl)
            before = time.perf_counter()
            for batch in it:
                now = time.perf_counter()
                if first_batch is None:
                    first_batch = now - start
                else:
                    latencies.append(now - before)
                epoch_rows += len(batch["y"])
                batches += 1
                if now >= deadline:
                    break
                before = time.perf_counter()
            else:
                epochs += 1
                if epoch_rows != expected_rows:
                    raise SystemExit(
                        f"epoch {epochs} delivered {epoch_rows} rows, expected {expected_rows}"
                    )
            rows += epoch_rows
            del it
        elapsed = time.perf_counter() - start
        stats = dl.stats()
    lat_ms = np.array(latencies) * 1e3 if latencies else np.zeros(1)
    return {
        "seconds": elapsed,
        "rows": rows,
        "batches": batches,
        "epochs_completed": epochs,
        "samples_per_s": rows / elapsed,
        "mb_per_s": rows * (benchlib.NUM_FEATURES * 4 + 8) / elapsed / 1e6,
        "first_batch_ms": first_batch * 1e3,
        "batch_latency_ms": {f"p{q}": float(np.percentile(lat_ms, q)) for q in (50, 95, 99)},
        "memory": memory.report(),
        "stats": stats,
    }


def flatten(prefix: str, value) -> list[tuple[str, object]]:
    """Nested stats as (dotted key, value) rows for printing."""
    if isinstance(value, dict):
        return [row for k, v in value.items() for row in flatten(f"{prefix}{k}.", v)]
    return [(prefix.rstrip("."), value)]


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to iterate")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--scale", default="small", choices=sorted(generate_datasets.SCALES))
    parser.add_argument(
        "--format", default="parquet", choices=(*benchlib.PARQUET_FORMATS, "csv", "ipc")
    )
    parser.add_argument("--workers", type=int, help="decode threads (default: Zenith's own)")
    parser.add_argument("--data", type=Path, default=benchlib.DATA_DIR)
    parser.add_argument("--out", type=Path, default=benchlib.RESULTS_DIR)
    args = parser.parse_args()

    manifest = generate_datasets.generate(args.scale, args.data, formats=[args.format])
    root = benchlib.scale_dir(args.scale, args.data)
    benchlib.warm_page_cache([root / f["path"] for f in manifest["formats"][args.format]["files"]])
    result = run(
        source_path(root, manifest, args.format), args, manifest["formats"][args.format]["rows"]
    )
    result |= benchlib.report_context() | {
        "scale": args.scale,
        "format": args.format,
        "layout": benchlib.layout_of(manifest, args.format),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "neighbours": benchlib.busy_neighbours(),
    }
    lat = result["batch_latency_ms"]
    table = [
        ("layout", result["layout"]),
        ("samples/s", f"{result['samples_per_s']:,.0f}"),
        ("MB/s", f"{result['mb_per_s']:,.1f}"),
        ("time to first batch", f"{result['first_batch_ms']:.2f} ms"),
        (
            "batch latency p50/p95/p99",
            f"{lat['p50'] * 1e3:.1f} / {lat['p95'] * 1e3:.1f} / {lat['p99'] * 1e3:.1f} µs",
        ),
        ("peak RSS growth", f"{result['memory']['rss_growth_mb']:.1f} MiB"),
        (
            "rows / batches / full epochs",
            f"{result['rows']:,} / {result['batches']:,} / {result['epochs_completed']}",
        ),
    ] + [
        (f"stats {k}", f"{v:.4f}" if isinstance(v, float) else str(v))
        for k, v in flatten("", result["stats"])
    ]
    print(
        f"zenith.DataLoader · {args.format} · scale {args.scale} · batch {args.batch_size} · "
        f"{args.duration:g} s · {result['machine']['nproc']} CPUs"
    )
    for name, value in table:
        print(f"  {name:32s} {value:>24s}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"zenith-{args.scale}-{args.format}-b{args.batch_size}.json"
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
