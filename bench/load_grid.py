"""Whole-table loads over a grid of layouts: zenith.load against polars and pyarrow.

    python bench/load_grid.py [--runs 3] [--tables numeric,wide,mixed] [--quick]

Parquet cells: every combination of a table, a row-group size and a file count, written once
(untimed) by pyarrow with its defaults under <data>/grid/ and reused by later runs:
    tables      numeric  1,000,000 rows x 32 float32 + int64 label (the training table's shape)
                wide     50,000 rows x 500 float32 + int64 label
                mixed    500,000 rows: int64 label, float64 with 10% nulls, strings with 10% nulls,
                         a dictionary-encoded category, a list<int32> of 0-5 items
    row groups  1,024 · 16,384 · 65,536 · 1,048,576 rows
    files       1 · 8 · 64
Other cells, from the numeric table: CSV as one file and as 64 files; Arrow IPC files,
uncompressed and with LZ4 and ZSTD bodies (pyarrow's writer options).

Every load runs in a fresh process (imports before the clock, page cache warm), median of
--runs, and is checked: row count and the sum of the label column. The table gives, per cell,
zenith's seconds and the ratio polars/zenith and pyarrow/zenith (above 1: zenith is faster).
Writes bench/results/load-grid.json and .md.
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

TABLE_ROWS = {"numeric": 1_000_000, "wide": 50_000, "mixed": 500_000}
ROW_GROUPS = (1_024, 16_384, 65_536, 1_048_576)
FILE_COUNTS = (1, 8, 64)
SYSTEMS = ("zenith", "polars", "pyarrow")
# Bumped when the generated tables change, so stale grids are rewritten.
GRID_VERSION = 1


def make_table(kind: str, rows: int | None = None):
    """The grid's tables, deterministic for a kind."""
    import pyarrow as pa

    rows = TABLE_ROWS[kind] if rows is None else rows
    rng = np.random.default_rng({"numeric": 1, "wide": 2, "mixed": 3}[kind])
    label = rng.integers(0, 1000, rows, dtype=np.int64)
    if kind in ("numeric", "wide"):
        width = 32 if kind == "numeric" else 500
        # Few distinct values per column, as measured data often has: pyarrow's default writer
        # then dictionary-encodes them, like the training table of the loader benchmark.
        x = (rng.integers(0, 4096, (rows, width)) / 64.0).astype(np.float32)
        cols = {f"f{i:03d}": x[:, i] for i in range(width)}
        return pa.table(cols | {"label": label})
    words = np.array([f"word{i}" for i in range(5000)])
    f = rng.normal(size=rows)
    s = words[rng.integers(0, len(words), rows)]
    lengths = rng.integers(0, 6, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    items = rng.integers(-1000, 1000, int(offsets[-1]), dtype=np.int32)
    return pa.table(
        {
            "label": label,
            "f": pa.array(f, mask=rng.random(rows) < 0.1),
            "s": pa.array(s, mask=rng.random(rows) < 0.1),
            "cat": pa.array(words[rng.integers(0, 20, rows)]).dictionary_encode(),
            "tags": pa.ListArray.from_arrays(pa.array(offsets), pa.array(items)),
        }
    )


def parquet_cell(root: Path, kind: str, row_group: int, files: int) -> Path:
    """The directory of one Parquet cell, written on first use."""
    import pyarrow.parquet as pq

    out = root / f"v{GRID_VERSION}" / f"{kind}-rg{row_group}-f{files}"
    if (out / "_done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    table = make_table(kind)
    per_file = -(-len(table) // files)
    for i in range(files):
        part = table.slice(i * per_file, per_file)
        pq.write_table(part, out / f"part-{i:03d}.parquet", row_group_size=row_group)
    (out / "_done").write_text("")
    return out


def other_cell(root: Path, name: str) -> Path:
    """CSV and IPC cells of the numeric table, written on first use."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    out = root / f"v{GRID_VERSION}" / name
    done = out / "_done"
    if done.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    table = make_table("numeric")
    if name == "csv-1":
        pacsv.write_csv(table, out / "data.csv")
    elif name == "csv-64":
        per = -(-len(table) // 64)
        for i in range(64):
            pacsv.write_csv(table.slice(i * per, per), out / f"part-{i:03d}.csv")
    else:
        codec = {"ipc": None, "ipc-lz4": "lz4", "ipc-zstd": "zstd"}[name]
        options = pa.ipc.IpcWriteOptions(compression=codec)
        with pa.ipc.new_file(out / "data.arrow", table.schema, options=options) as writer:
            writer.write_table(table, max_chunksize=65_536)
    done.write_text("")
    return out


OTHER_CELLS = ("csv-1", "csv-64", "ipc", "ipc-lz4", "ipc-zstd")

IMPORTS = {
    "zenith": ("zenith", "pyarrow"),
    "polars": ("polars",),
    "pyarrow": ("pyarrow.parquet", "pyarrow.csv", "pyarrow.dataset", "pyarrow.ipc"),
}


def load(system: str, kind: str, path: Path):
    """Each system's own whole-dataset read of a cell (`kind`: parquet, csv or ipc)."""
    files = sorted(p for p in path.iterdir() if not p.name.startswith("_"))
    target = files[0] if len(files) == 1 else path
    if system == "zenith":
        import zenith

        return zenith.load(str(target))
    if system == "polars":
        import polars as pl

        glob = str(target) if target is not path else str(path / f"*{files[0].suffix}")
        if kind == "parquet":
            return pl.read_parquet(glob)
        if kind == "csv":
            return pl.read_csv(glob)
        return pl.read_ipc(glob)
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    if kind == "parquet":
        return pq.read_table(target)
    if kind == "csv":
        if target is not path:
            return pacsv.read_csv(target)
        return ds.dataset(path, format="csv").to_table()
    return pa.ipc.open_file(pa.memory_map(str(target))).read_all()


def load_once(system: str, kind: str, path: Path) -> dict:
    """One timed load in this process."""
    for module in IMPORTS[system]:
        importlib.import_module(module)
    start = time.perf_counter()
    table = load(system, kind, path)
    seconds = time.perf_counter() - start
    label = np.asarray(table["label"].to_numpy(), dtype=np.int64)
    return {"seconds": seconds, "rows": len(table), "label_sum": int(label.sum())}


def markdown(report: dict) -> str:
    """The grid as Markdown: zenith's seconds and both ratios per cell."""
    m = report["machine"]
    lines = [
        "# Load grid",
        "",
        f"{report['date']} · {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM · median of "
        f"{report['runs']} fresh-process runs, page cache warm. Versions: "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
        + ".",
        "",
        "| cell | rows | zenith s | polars / zenith | pyarrow / zenith | status |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for cell in report["cells"]:
        def ratio(system: str, cell: dict = cell) -> str:
            value = cell["ratios"].get(system)
            return "–" if value is None else f"{value:.2f}"

        seconds = cell["seconds"].get("zenith")
        lines.append(
            f"| {cell['cell']} | {cell['rows']:,} | "
            f"{'–' if seconds is None else f'{seconds:.4f}'} | {ratio('polars')} | "
            f"{ratio('pyarrow')} | {cell['status']} |"
        )
    lines += [
        "",
        "Ratios are the peer's median seconds over zenith's (above 1: zenith is faster). A cell's "
        "status lists any system whose load failed or returned other rows or label sums.",
    ]
    if report["neighbours"]:
        lines.append(f"Note: {', '.join(report['neighbours'])} ran during the benchmark.")
    return "\n".join(lines) + "\n"


def cells(args: argparse.Namespace) -> list[tuple[str, str, Path]]:
    """(name, kind, path) of every cell this run measures, writing missing ones."""
    root = args.data / "grid"
    out = []
    row_groups = (16_384, 1_048_576) if args.quick else ROW_GROUPS
    for table in args.tables.split(","):
        for rg in row_groups:
            for files in FILE_COUNTS:
                path = parquet_cell(root, table, rg, files)
                out.append((f"parquet {table}, row groups {rg:,}, {files} file(s)", "parquet", path))
    if not args.quick:
        for name in OTHER_CELLS:
            kind = "csv" if name.startswith("csv") else "ipc"
            out.append((name, kind, other_cell(root, name)))
    return out


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tables", default=",".join(TABLE_ROWS))
    parser.add_argument("--quick", action="store_true", help="two row-group sizes, no CSV/IPC")
    parser.add_argument("--data", type=Path, default=benchlib.DATA_DIR)
    parser.add_argument("--out", type=Path, default=benchlib.RESULTS_DIR / "load-grid")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--one", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(load_once(args.one, args.kind, args.path)))
        return

    todo = cells(args)
    benchlib.warm_page_cache([f for _, _, p in todo for f in p.iterdir()])
    neighbours = set(benchlib.busy_neighbours())
    report_cells = []
    for name, kind, path in todo:
        runs: dict[str, list[dict]] = {}
        for _ in range(args.runs):
            for system in SYSTEMS:
                cmd = [sys.executable, __file__, "--one", system, "--kind", kind, "--path", str(path)]
                runs.setdefault(system, []).append(benchlib.run_json(cmd, args.timeout))
        neighbours.update(benchlib.busy_neighbours())
        good = {s: [r for r in rs if "error" not in r] for s, rs in runs.items()}
        seconds = {s: benchlib.median([r["seconds"] for r in rs]) for s, rs in good.items() if rs}
        reference = good["pyarrow"][0] if good["pyarrow"] else None
        problems = []
        for system, rs in runs.items():
            if len(good[system]) < len(rs):
                problems.append(f"{system} ERROR: {rs[0].get('error', '')[:60]}")
            elif reference and any(
                (r["rows"], r["label_sum"]) != (reference["rows"], reference["label_sum"])
                for r in rs
            ):
                problems.append(f"{system} WRONG")
        zenith = seconds.get("zenith")
        ratios = {
            s: seconds[s] / zenith for s in ("polars", "pyarrow") if zenith and s in seconds
        }
        cell = {
            "cell": name,
            "kind": kind,
            "rows": reference["rows"] if reference else 0,
            "seconds": seconds,
            "ratios": ratios,
            "status": "; ".join(problems) or "OK",
            "runs": runs,
        }
        report_cells.append(cell)
        print(
            f"{name:55s} zenith {zenith if zenith is None else round(zenith, 4)}  "
            + "  ".join(f"{s}/zenith {v:.2f}" for s, v in ratios.items())
            + f"  {cell['status']}",
            flush=True,
        )
    report = benchlib.report_context() | {
        "runs": args.runs,
        "neighbours": sorted(neighbours),
        "cells": report_cells,
    }
    benchlib.write_report(args.out, report, markdown(report))


if __name__ == "__main__":
    main()
