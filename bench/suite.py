"""End-to-end loader comparison: every system, same files, same tensors, fresh process per run.

Run through ./bench/run_benchmarks.sh (which generates the data first), or directly:

    python bench/suite.py --scale medium --tar-scale tiny --runs 3 \
        --workloads parquet,tar --systems zenith,torch-batched --batch-sizes 256,64

Every table names its Parquet layout (from the manifest) and shows each configuration's speed against
torch-strongest, the careful user's DataLoader (webdataset for tar; torch-batched and torch-rowwise
stay as extra rows), and its share of the in-memory ceiling measured in the same run (`ceiling`: the
consumer over rows preloaded and permuted before the clock, not a loader).

Runs are interleaved (run 1 of every configuration, then run 2, ...) so a slow spell of a shared
machine does not land on one system. The first run of each configuration also verifies an epoch's
data against the manifest; a configuration that delivers wrong data is marked WRONG and not ranked.
Writes bench/results/suite-<scale>.json, .md and .png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import benchlib
from peers.run_one import FORMAT_OF, SYSTEMS, WORKLOADS

# Worker counts tried per system: torch and webdataset use processes, Zenith threads; pyarrow and
# polars have their own thread pools and no worker setting.
WORKER_OPTIONS = {
    "zenith": (1, 2),
    "zenith-torch": (1, 2),
    "torch-rowwise": (0, 2),
    "torch-batched": (0, 2),
    "torch-strongest": (0, 2),
    "ceiling": (0,),
    "webdataset": (0, 2),
    "pyarrow": (0,),
    "polars": (0,),
}
# The system Zenith is measured against in each workload (its best worker count).
BASELINE = {"parquet": "torch-strongest", "parquet-plain": "torch-strongest", "tar": "webdataset"}
CEILING = "ceiling"
RUN_ONE = Path(__file__).resolve().parent / "peers" / "run_one.py"


def run_config(config: dict, scale: str, data: Path, verify: bool, timeout: float) -> dict:
    """One fresh-process run of one configuration; an error is returned as a record, not raised."""
    cmd = [
        sys.executable,
        str(RUN_ONE),
        "--system",
        config["system"],
        "--workload",
        config["workload"],
        "--scale",
        scale,
        "--data",
        str(data),
        "--batch-size",
        str(config["batch_size"]),
        "--workers",
        str(config["workers"]),
    ]
    if verify:
        cmd.append("--verify")
    return benchlib.run_json(cmd, timeout)


def summarise(config: dict, runs: list[dict]) -> dict:
    """Medians over the successful runs; status OK, WRONG (data mismatch) or ERROR."""
    good = [r for r in runs if "error" not in r]
    out = dict(config)
    out["runs"] = runs
    if not good:
        out["status"] = "ERROR"
        out["error"] = runs[0]["error"]
        return out
    mismatches = [m for r in good for m in r["mismatches"]]
    out["status"] = "WRONG" if mismatches else "OK"
    out["mismatches"] = mismatches
    for key in (
        "samples_per_s",
        "mb_per_s",
        "epoch_s",
        "first_batch_s",
        "rss_growth_mb",
        "pss_growth_mb",
    ):
        out[key] = benchlib.median([r[key] for r in good])
    out["handover_us_per_batch"] = benchlib.median([r.get("handover_us_per_batch") for r in good])
    out["shuffle_quality"] = next(
        (r["shuffle_quality"] for r in good if r.get("shuffle_quality") is not None), None
    )
    return out


def add_ratios(results: list[dict]) -> None:
    """Speed and memory against the fastest OK baseline configuration of the same workload/batch,
    and speed as a share of the fastest OK ceiling configuration there."""
    for row in results:
        if row["status"] != "OK":
            continue
        same = [
            r
            for r in results
            if r["workload"] == row["workload"]
            and r["batch_size"] == row["batch_size"]
            and r["status"] == "OK"
        ]
        peers = [r for r in same if r["system"] == BASELINE[r["workload"]]]
        if peers:
            best = max(peers, key=lambda r: r["samples_per_s"])
            row["baseline"] = label(best)
            row["speedup"] = row["samples_per_s"] / best["samples_per_s"]
            row["memory_ratio"] = row["pss_growth_mb"] / max(best["pss_growth_mb"], 1e-9)
        ceilings = [r["samples_per_s"] for r in same if r["system"] == CEILING]
        if ceilings:
            row["share_of_ceiling"] = row["samples_per_s"] / max(ceilings)


def label(row: dict) -> str:
    """A configuration's display name, e.g. torch-batched w2."""
    if row["system"] == CEILING:
        return "in-memory ceiling"
    return (
        f"{row['system']} w{row['workers']}"
        if len(WORKER_OPTIONS[row["system"]]) > 1
        else row["system"]
    )


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    """The results as Markdown: machine and versions, then one table per workload and batch size."""
    m = report["machine"]
    lines = [
        f"# Loader benchmark, scale `{report['scale']}` (tar workload: `{report['tar_scale']}`)",
        "",
        (
            f"{report['date']} · {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM · "
            f"median of {report['runs']} runs, each in a fresh process, page cache warm."
        ),
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v) + ".",
        f"Command: `{report['command']}`",
        "",
        (
            "Epoch time includes reading and decoding the files (preloading counts) and the time to the "
            "first batch. Memory is the peak growth over the process tree after imports: PSS (shared "
            "pages split between processes) and RSS (worker processes count shared pages again). "
            "Shuffle: mean within-batch std of the sorted label / its global std (1.0 = uniform). "
            "× is samples/s against torch-strongest at its best worker count (webdataset for tar) in "
            "this run; share is samples/s as a fraction of the in-memory ceiling of this run (the "
            "same consumer over rows preloaded and permuted before the clock: not a loader). "
            "Hand-over: µs per batch inside next() beyond the wait for a batch (Zenith only)."
        ),
    ]
    if report["neighbours"]:
        lines += [
            "",
            (
                f"Note: {', '.join(report['neighbours'])} ran during the benchmark; "
                "figures are noisier than usual."
            ),
        ]
    for workload in report["workloads"]:
        for batch_size in report["batch_sizes"]:
            rows = [
                r
                for r in report["results"]
                if r["workload"] == workload and r["batch_size"] == batch_size
            ]
            if not rows:
                continue
            lines += [
                "",
                f"## {workload} (`{WORKLOADS[workload]}`), batch {batch_size}",
                "",
                f"Layout: {report['layouts'][workload]}.",
                "",
                (
                    "| system | status | samples/s | × | share | MB/s | epoch s | first batch ms | "
                    "shuffle | PSS growth MB | RSS growth MB | hand-over µs |"
                ),
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            rows.sort(key=lambda r: (r["status"] != "OK", -(r.get("samples_per_s") or 0)))
            for r in rows:
                first = None if r.get("first_batch_s") is None else r["first_batch_s"] * 1e3
                status = r["status"] if r["status"] != "ERROR" else f"ERROR: {r['error'][:60]}"
                lines.append(
                    f"| {label(r)} | {status} | {_fmt(r.get('samples_per_s'), ',.0f')} | "
                    f"{_fmt(r.get('speedup'), '.2f')} | {_fmt(r.get('share_of_ceiling'), '.3f')} | "
                    f"{_fmt(r.get('mb_per_s'), '.1f')} | "
                    f"{_fmt(r.get('epoch_s'), '.3f')} | {_fmt(first, '.1f')} | "
                    f"{_fmt(r.get('shuffle_quality'), '.3f')} | "
                    f"{_fmt(r.get('pss_growth_mb'), '.0f')} | {_fmt(r.get('rss_growth_mb'), '.0f')} | "
                    f"{_fmt(r.get('handover_us_per_batch'), '.2f')} |"
                )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    """Bar charts of samples/s and peak memory growth per configuration, one row per table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [
        (w, b)
        for w in report["workloads"]
        for b in report["batch_sizes"]
        if any(r["workload"] == w and r["batch_size"] == b for r in report["results"])
    ]
    fig, axes = plt.subplots(
        len(groups), 2, figsize=(12, 2.2 + 0.45 * len(report["results"])), squeeze=False
    )
    for (workload, batch_size), (ax_speed, ax_mem) in zip(groups, axes, strict=True):
        rows = [
            r
            for r in report["results"]
            if r["workload"] == workload and r["batch_size"] == batch_size and r["status"] == "OK"
        ]
        rows.sort(key=lambda r: -r["samples_per_s"])
        names = [label(r) for r in rows]
        colors = [
            "tab:orange"
            if r["system"].startswith("zenith")
            else "tab:gray"
            if r["system"] == CEILING
            else "tab:blue"
            for r in rows
        ]
        ax_speed.barh(names, [r["samples_per_s"] for r in rows], color=colors)
        ax_speed.set_xscale("log")
        if rows:
            ax_speed.set_xlim(left=min(r["samples_per_s"] for r in rows) / 3)
        ax_speed.set_title(f"{workload}, batch {batch_size}: samples/s (log)")
        ax_mem.barh(names, [r["pss_growth_mb"] for r in rows], color=colors)
        ax_mem.set_title("peak memory growth, PSS MiB")
        for ax in (ax_speed, ax_mem):
            ax.invert_yaxis()
    fig.suptitle(f"scale {report['scale']} · {report['machine']['nproc']} CPUs · {report['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", default="medium", help="dataset for the parquet workloads")
    parser.add_argument("--tar-scale", default="tiny", help="dataset for the tar workload")
    parser.add_argument("--data", type=Path, default=benchlib.DATA_DIR)
    parser.add_argument("--out", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--batch-sizes", default="256,64")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per run")
    parser.add_argument("--list", action="store_true", help="list workloads and systems, then exit")
    args = parser.parse_args()
    if args.list:
        print("workloads:")
        for name, about in WORKLOADS.items():
            print(f"  {name:16s} {about}")
        print("systems (worker counts tried):")
        for name, system in SYSTEMS.items():
            workers = "/".join(map(str, WORKER_OPTIONS[name]))
            print(f"  {name:16s} {system.about} [{', '.join(system.workloads)}; workers {workers}]")
        return
    systems = args.systems.split(",")
    workloads = args.workloads.split(",")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    for name, known in ((systems, SYSTEMS), (workloads, WORKLOADS)):
        if unknown := sorted(set(name) - set(known)):
            parser.error(f"unknown: {', '.join(unknown)} (known: {', '.join(known)})")

    scale_of = {"parquet": args.scale, "parquet-plain": args.scale, "tar": args.tar_scale}
    configs = [
        {"system": s, "workload": w, "batch_size": b, "workers": n}
        for w in workloads
        for b in batch_sizes
        for s in systems
        if w in SYSTEMS[s].workloads
        for n in WORKER_OPTIONS[s]
    ]
    layouts = {}
    for workload in workloads:
        manifest = benchlib.load_manifest(scale_of[workload], args.data)
        layouts[workload] = benchlib.layout_of(manifest, FORMAT_OF[workload])
        root = benchlib.scale_dir(scale_of[workload], args.data)
        files = [root / f["path"] for f in manifest["formats"][FORMAT_OF[workload]]["files"]]
        print(
            f"warming the page cache: {benchlib.warm_page_cache(files) / 2**20:.0f} MiB "
            f"of {workload} ({scale_of[workload]})",
            flush=True,
        )

    neighbours = set(benchlib.busy_neighbours())
    runs: list[list[dict]] = [[] for _ in configs]
    for run in range(args.runs):
        for config, done in zip(configs, runs, strict=True):
            result = run_config(
                config,
                scale_of[config["workload"]],
                args.data,
                verify=run == 0,
                timeout=args.timeout,
            )
            done.append(result)
            neighbours.update(benchlib.busy_neighbours())
            shown = result.get("error") or (
                f"{result['samples_per_s']:>12,.0f} samples/s  "
                f"first batch {result['first_batch_s'] * 1e3:7.1f} ms"
            )
            print(
                f"run {run + 1}/{args.runs}  {config['workload']:8s} B={config['batch_size']:<4d}"
                f" {label(config):18s} {shown}",
                flush=True,
            )

    results = [summarise(c, r) for c, r in zip(configs, runs, strict=True)]
    add_ratios(results)
    report = benchlib.report_context() | {
        "scale": args.scale,
        "tar_scale": args.tar_scale,
        "runs": args.runs,
        "workloads": workloads,
        "layouts": layouts,
        "batch_sizes": batch_sizes,
        "neighbours": sorted(neighbours),
        "results": results,
    }
    stem = args.out / f"suite-{args.scale}"
    benchlib.write_report(stem, report, markdown(report))
    plot(report, stem.with_suffix(".png"))
    print(f"wrote {stem}.png")


if __name__ == "__main__":
    main()
