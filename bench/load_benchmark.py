"""Whole-table load times: zenith.load against polars and pyarrow on the same files.

    python bench/load_benchmark.py [--scale medium] [--runs 3]

Cases (each run in a fresh process, page cache warm, median of --runs):
    parquet  the scale's 8-file Parquet directory (pyarrow's default layout, dictionary-encoded):
             zenith.load, polars.read_parquet, pyarrow read_table
    parquet-plain  the same rows with PLAIN floats (the generator's extra layout), the same readers
    csv      the scale's single CSV file:         zenith.load, polars.read_csv, pyarrow.csv.read_csv
    ipc      a ~1 GB Arrow IPC file of 16,384-row record batches (496 of them; written once, untimed,
             under <data>/big-ipc/): zenith.load and pyarrow's memory-mapped reader; RSS growth is
             measured before any column is touched
    ipc-1m   the same rows in 1,000,000-row record batches (8 of them, <data>/big-ipc-1m/): a mapped
             load costs per record batch (each column of each batch is one Arrow array handed to
             pyarrow), not per byte, so the two layouts show both ends
Every load is checked: row count and the sum of the label column against the manifest (for the IPC
file, against the sums written alongside it). Each row of the generator's formats names its layout
from the manifest. Writes bench/results/load-<scale>.json and .md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import benchlib
import numpy as np

BIG_IPC_ROWS = 8_000_000  # x 136 bytes per row: about 1.09 GB
BIG_IPC_CHUNK = 1_000_000
# Record batch rows of each IPC case.
IPC_BATCH_ROWS = {"ipc": 16_384, "ipc-1m": 1_000_000}


def _label_sum(table) -> int:
    """Sum of the label column of a pyarrow.Table or polars.DataFrame."""
    column = table[benchlib.LABEL]
    values = column.to_numpy()
    return int(np.asarray(values, dtype=np.int64).sum())


# Modules imported before the clock starts, so a load's time is the load's alone. zenith.load
# returns a pyarrow.Table, so pyarrow is imported first for it as for pyarrow's own readers.
IMPORTS = {
    "zenith": ("zenith", "pyarrow"),
    "polars": ("polars",),
    "pyarrow": ("pyarrow.parquet", "pyarrow.csv", "pyarrow.ipc"),
}


def load_table(system: str, fmt: str, path: Path):
    """Each system's own call for reading a whole dataset into memory."""
    if system == "zenith":
        import zenith

        return zenith.load(str(path))
    if system == "polars":
        import polars as pl

        if fmt in benchlib.PARQUET_FORMATS:
            return pl.read_parquet(path / "*.parquet")
        return pl.read_csv(path)
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet

    if fmt in benchlib.PARQUET_FORMATS:
        return pyarrow.parquet.read_table(path)
    if fmt == "csv":
        return pyarrow.csv.read_csv(path)
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


CASES = {
    "parquet": ("zenith", "polars", "pyarrow"),
    "parquet-plain": ("zenith", "polars", "pyarrow"),
    "csv": ("zenith", "polars", "pyarrow"),
    "ipc": ("zenith", "pyarrow"),
    "ipc-1m": ("zenith", "pyarrow"),
}


def big_ipc(data: Path, case: str = "ipc") -> tuple[Path, dict]:
    """The ~1 GB IPC file of `case` and its expected rows/label sum, written on first use
    (untimed)."""
    from generate_datasets import make_rows, to_table
    from pyarrow import ipc

    batch_rows = IPC_BATCH_ROWS[case]
    root = data / ("big-ipc" if case == "ipc" else f"big-{case}")
    path, meta_path = root / "data.arrow", root / "expected.json"
    if meta_path.exists() and path.exists():
        return path, json.loads(meta_path.read_text())
    root.mkdir(parents=True, exist_ok=True)
    label_sum = 0
    schema = to_table(*make_rows(1)).schema
    with ipc.new_file(path, schema) as writer:
        for chunk in range(BIG_IPC_ROWS // BIG_IPC_CHUNK):
            x, y = make_rows(BIG_IPC_CHUNK, seed=chunk)
            label_sum += int(y.sum())
            writer.write_table(to_table(x, y), max_chunksize=batch_rows)
    expected = {"rows": BIG_IPC_ROWS, "label_sum": label_sum, "bytes": path.stat().st_size}
    meta_path.write_text(json.dumps(expected) + "\n")
    return path, expected


def anon_rss() -> int:
    """Anonymous (private) resident bytes of this process: RSS without mapped file pages."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def load_once(system: str, fmt: str, path: Path) -> dict:
    """One timed load in this process: seconds, RSS growth before touching, rows, label sum."""
    for module in IMPORTS[system]:
        importlib.import_module(module)
    rss_before, anon_before = benchlib.tree_memory()[0], anon_rss()
    start = time.perf_counter()
    table = load_table(system, fmt, path)
    seconds = time.perf_counter() - start
    rss_after_load, anon_after_load = benchlib.tree_memory()[0], anon_rss()
    return {
        "seconds": seconds,
        "rss_growth_mb": (rss_after_load - rss_before) / 2**20,
        "anon_growth_mb": (anon_after_load - anon_before) / 2**20,
        "rows": len(table),
        "label_sum": _label_sum(table),
    }


def run_case(system: str, fmt: str, path: Path, timeout: float) -> dict:
    """load_once in a fresh process."""
    cmd = [sys.executable, __file__, "--one", system, "--format", fmt, "--path", str(path)]
    return benchlib.run_json(cmd, timeout)


def markdown(report: dict) -> str:
    """Results as a Markdown table with the machine and versions."""
    m = report["machine"]
    lines = [
        f"# Load benchmark, scale `{report['scale']}`",
        "",
        f"{report['date']} · {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM · "
        f"median of {report['runs']} fresh-process runs, page cache warm. Versions: "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
        + ".",
        "",
        "| data | system | status | seconds | × zenith | RSS growth MB | private (anon) MB |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        zenith = next(
            (
                z
                for z in report["results"]
                if z["format"] == r["format"] and z["system"] == "zenith" and z["status"] == "OK"
            ),
            None,
        )
        ratio = (
            "–"
            if zenith is None or r["status"] != "OK"
            else f"{r['seconds'] / zenith['seconds']:.2f}"
        )
        seconds = "–" if r["status"] != "OK" else f"{r['seconds']:.4f}"
        rss = (
            "–" if r["status"] != "OK" else f"{r['rss_growth_mb']:.0f} | {r['anon_growth_mb']:.0f}"
        )
        status = r["status"] if r["status"] != "ERROR" else f"ERROR: {r['error'][:60]}"
        lines.append(f"| {r['what']} | {r['system']} | {status} | {seconds} | {ratio} | {rss} |")
    lines += [
        "",
        (
            "× zenith: the system's time divided by zenith.load's (above 1: zenith is faster). Memory is "
            "measured right after the call, before any column is touched; RSS includes pages of a "
            "memory-mapped file that are resident in the page cache, private (anon) does not."
        ),
    ]
    if report["neighbours"]:
        lines.append(f"Note: {', '.join(report['neighbours'])} ran during the benchmark.")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=benchlib.DATA_DIR)
    parser.add_argument("--out", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--cases", default=",".join(CASES), help=f"subset of {','.join(CASES)}")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--one", choices=sorted(IMPORTS), help=argparse.SUPPRESS)
    parser.add_argument("--format", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(load_once(args.one, args.format, args.path)))
        return

    manifest = benchlib.load_manifest(args.scale, args.data)
    root = benchlib.scale_dir(args.scale, args.data)
    targets = {}
    for fmt in args.cases.split(","):
        if fmt in IPC_BATCH_ROWS:
            path, expected = big_ipc(args.data, fmt)
            import pyarrow as pa

            with pa.memory_map(str(path)) as source:
                batches = pa.ipc.open_file(source).num_record_batches
            what = f"IPC file, {expected['bytes'] / 1e9:.2f} GB, {batches} record batches"
            targets[fmt] = (path, expected, what, [path])
        else:
            entry = manifest["formats"][fmt]
            path = (
                root / fmt if fmt in benchlib.PARQUET_FORMATS else root / entry["files"][0]["path"]
            )
            expected = {"rows": entry["rows"], "label_sum": entry["checksum"]["label_sum"]}
            what = (
                f"{fmt}, {entry['rows']:,} rows, {len(entry['files'])} file(s) "
                f"({benchlib.layout_of(manifest, fmt)})"
            )
            targets[fmt] = (path, expected, what, [root / f["path"] for f in entry["files"]])
    for _, _, _, files in targets.values():
        benchlib.warm_page_cache(files)

    neighbours = set(benchlib.busy_neighbours())
    runs: dict[tuple[str, str], list[dict]] = {}
    for run in range(args.runs):
        for fmt, (path, _, _, _) in targets.items():
            for system in CASES[fmt]:
                result = run_case(system, fmt, path, args.timeout)
                runs.setdefault((fmt, system), []).append(result)
                neighbours.update(benchlib.busy_neighbours())
                shown = result.get("error") or f"{result['seconds']:.4f} s"
                print(f"run {run + 1}/{args.runs}  {fmt:8s} {system:8s} {shown}", flush=True)

    results = []
    for (fmt, system), done in runs.items():
        path, expected, what, _ = targets[fmt]
        good = [r for r in done if "error" not in r]
        row = {"format": fmt, "system": system, "what": what, "runs": done}
        if not good:
            row |= {"status": "ERROR", "error": done[0]["error"]}
        else:
            wrong = any(
                r["rows"] != expected["rows"] or r["label_sum"] != expected["label_sum"]
                for r in good
            )
            row |= {
                "status": "WRONG" if wrong else "OK",
                "seconds": benchlib.median([r["seconds"] for r in good]),
                "rss_growth_mb": benchlib.median([r["rss_growth_mb"] for r in good]),
                "anon_growth_mb": benchlib.median([r["anon_growth_mb"] for r in good]),
            }
        results.append(row)
    report = benchlib.report_context() | {
        "scale": args.scale,
        "runs": args.runs,
        "neighbours": sorted(neighbours),
        "results": results,
    }
    benchlib.write_report(args.out / f"load-{args.scale}", report, markdown(report))


if __name__ == "__main__":
    main()
