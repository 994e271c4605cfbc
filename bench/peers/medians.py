"""Medians of three fresh-process runs of `run_one.py` per configuration (Parquet, medium scale),
as in the README table: zenith with 1 and 2 threads, zenith.torch, the best torch DataLoader
configuration (torch-batched, 0 workers) and polars, at batch 256 and 64. The first run of each
configuration also checks the data against the manifest and measures the shuffle quality.

    python bench/peers/medians.py [--out bench/results/parquet-medium-medians.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = [("zenith", 1), ("zenith", 2), ("zenith-torch", 2), ("torch-batched", 0), ("polars", 0)]


def run(system: str, batch: int, workers: int, seed: int, verify: bool) -> dict:
    cmd = [
        sys.executable,
        str(HERE / "run_one.py"),
        "--system",
        system,
        "--workload",
        "parquet",
        "--batch-size",
        str(batch),
        "--workers",
        str(workers),
        "--scale",
        "medium",
        "--seed",
        str(seed),
    ] + (["--verify"] if verify else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", type=Path, default=HERE.parent / "results" / "parquet-medium-medians.json"
    )
    args = ap.parse_args()
    rows = []
    for batch in (256, 64):
        for system, workers in CONFIGS:
            runs = [run(system, batch, workers, seed, verify=seed == 0) for seed in range(3)]

            def med(key: str, runs: list[dict] = runs) -> float:
                return statistics.median(r[key] for r in runs)

            rows.append(
                {
                    "batch_size": batch,
                    "system": system,
                    "workers": workers,
                    "samples_per_s": round(med("samples_per_s")),
                    "first_batch_ms": round(med("first_batch_s") * 1000, 1),
                    "pss_growth_mb": round(med("pss_growth_mb")),
                    "quality": round(runs[0]["shuffle_quality"], 3),
                    "mismatches": runs[0]["mismatches"],
                }
            )
            print(rows[-1], flush=True)
        best = max(
            r["samples_per_s"]
            for r in rows
            if r["batch_size"] == batch and r["system"] == "torch-batched"
        )
        for r in rows:
            if r["batch_size"] == batch:
                r["ratio"] = round(r["samples_per_s"] / best, 2)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
