"""Medians of three fresh-process runs of `run_one.py` per configuration (one Parquet layout, medium
scale), as in the README table: zenith and zenith.torch with 1 and 2 threads (the default marked), the strongest torch
DataLoader (torch-strongest, 0 workers: the reference of the × column), the older torch-batched
baseline, polars, and the in-memory ceiling of the same run (not a loader: the consumer over ready
batches), at batch 256 and 64. Every row has its ratio to torch-strongest (`ratio_vs_torch`) and its
share of the ceiling (`share_of_ceiling`); Zenith rows add the hand-over cost per batch measured
from Python. The first run of each configuration also checks the data against the manifest and
measures the shuffle quality. The printed table names the layout from the manifest.

    python bench/peers/medians.py [--workload parquet|parquet-plain] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))
import benchlib

HERE = Path(__file__).resolve().parent

CONFIGS = [
    ("zenith", 1),
    ("zenith", 2),
    ("zenith-torch", 1),
    ("zenith-torch", 2),
    ("torch-strongest", 0),
    ("torch-batched", 0),
    ("polars", 0),
    ("ceiling", 0),
    ("ceiling-views", 0),
]
# The reference of ratio_vs_torch and the in-memory ceiling of share_of_ceiling.
TORCH = "torch-strongest"
CEILING = "ceiling"
# Medians of these keys are kept where every run reports them (Zenith systems only for hand-over).
PER_BATCH = ("next_us_per_batch", "handover_us_per_batch")


def run(args: argparse.Namespace, system: str, batch: int, workers: int, seed: int) -> dict:
    """One fresh-process run of run_one.py; the first (seed 0) also verifies the data."""
    cmd = [
        sys.executable,
        str(HERE / "run_one.py"),
        "--system",
        system,
        "--workload",
        args.workload,
        "--batch-size",
        str(batch),
        "--workers",
        str(workers),
        "--scale",
        args.scale,
        "--data",
        str(args.data),
        "--seed",
        str(seed),
        "--warm-epochs",
        str(args.warm_epochs),
    ] + (["--verify"] if seed == 0 else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def summarise(system: str, workers: int, batch: int, runs: list[dict]) -> dict:
    """Medians of a configuration's runs, with the first run's data check and shuffle quality."""

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    row = {
        "batch_size": batch,
        "system": system,
        "workers": workers,
        "role": runs[0]["role"],
        "samples_per_s": round(med("samples_per_s")),
        "first_batch_ms": round(med("first_batch_s") * 1000, 1),
        "pss_growth_mb": round(med("pss_growth_mb")),
        "quality": round(runs[0]["shuffle_quality"], 3),
        "mismatches": runs[0]["mismatches"],
    }
    for key in PER_BATCH:
        if all(key in r for r in runs):
            row[key] = round(med(key), 2)
    return row


def add_ratios(rows: list[dict]) -> None:
    """ratio_vs_torch (against torch-strongest) and share_of_ceiling, per batch size."""
    for batch in {r["batch_size"] for r in rows}:
        same = [r for r in rows if r["batch_size"] == batch]
        ref = {r["system"]: r["samples_per_s"] for r in same if r["system"] in (TORCH, CEILING)}
        for r in same:
            torch, ceiling = ref.get(TORCH), ref.get(CEILING)
            r["ratio_vs_torch"] = round(r["samples_per_s"] / torch, 2) if torch else None
            r["share_of_ceiling"] = round(r["samples_per_s"] / ceiling, 3) if ceiling else None


def label(row: dict) -> str:
    """A configuration's name in the table."""
    if row["system"] == CEILING:
        return "in-memory ceiling: preloaded array, one gather per batch (not a loader)"
    if row["system"] == "ceiling-views":
        return "consumer over pre-permuted slices (not a loader)"
    if row["system"].startswith("zenith"):
        threads = f"{row['workers']} thread{'s' if row['workers'] > 1 else ''}"
        # A DataLoader's default: one decode thread fewer than the usable CPUs (at least one).
        default = max(1, len(os.sched_getaffinity(0)) - 1)
        return f"{row['system']}, {threads}{' (default)' if row['workers'] == default else ''}"
    if row["system"].startswith("torch"):
        return f"{row['system']}, {row['workers']} workers"
    return row["system"]


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "–" if value is None else format(value, spec) + suffix


def markdown(
    rows: list[dict], workload: str, layout: str, scale: str, runs: int, warm: int = 0
) -> str:
    """The rows as the README's table, under a header naming the layout and the epoch."""
    epoch = f"epoch {warm} (after {warm} untimed)" if warm else "first epoch"
    # ZENITH_REUSE_BYTES=0 in the environment turns off keeping decoded data (streaming).
    reuse = os.environ.get("ZENITH_REUSE_BYTES")
    reuse = f", ZENITH_REUSE_BYTES={reuse}" if reuse is not None else ""
    lines = [
        f"Parquet workload `{workload}` ({layout}), scale `{scale}`, {epoch}{reuse}, median of "
        f"{runs} fresh-process runs; × = against {TORCH}, share = of the in-memory ceiling",
        "",
        "| B | system | samples/s | × | share | first batch | shuffle | PSS growth | "
        "hand-over µs/batch |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {label(r)} | {r['samples_per_s']:,} | "
            f"{_fmt(r['ratio_vs_torch'], '.2f')} | {_fmt(r['share_of_ceiling'], '.3f')} | "
            f"{r['first_batch_ms']:.1f} ms | {r['quality']:.3f} | {r['pss_growth_mb']} MB | "
            f"{_fmt(r.get('handover_us_per_batch'), '.2f')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--workload",
        choices=benchlib.PARQUET_FORMATS,
        default="parquet",
        help="the Parquet layout: parquet (pyarrow's defaults) or parquet-plain (default parquet)",
    )
    ap.add_argument("--scale", default="medium", help="dataset scale (default medium)")
    ap.add_argument("--data", type=Path, default=benchlib.DATA_DIR)
    ap.add_argument("--runs", type=int, default=3, help="fresh-process runs per configuration")
    ap.add_argument(
        "--warm-epochs",
        type=int,
        default=0,
        help="untimed epochs before the timed one (1: a later epoch; default 0, the first)",
    )
    ap.add_argument(
        "--out", type=Path, help="default bench/results/<workload>-<scale>[-epoch<N>]-medians.json"
    )
    args = ap.parse_args()
    epoch = f"-epoch{args.warm_epochs}" if args.warm_epochs else ""
    out = args.out or benchlib.RESULTS_DIR / f"{args.workload}-{args.scale}{epoch}-medians.json"
    layout = benchlib.layout_of(benchlib.load_manifest(args.scale, args.data), args.workload)
    rows = []
    for batch in (256, 64):
        for system, workers in CONFIGS:
            runs = [run(args, system, batch, workers, seed) for seed in range(args.runs)]
            rows.append(summarise(system, workers, batch, runs))
            print(rows[-1], flush=True)
    add_ratios(rows)
    for r in rows:
        r["workload"] = args.workload
        r["layout"] = layout
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(markdown(rows, args.workload, layout, args.scale, args.runs, args.warm_epochs))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
