"""Object storage benchmark: a shuffled epoch of a Parquet set from a real S3-compatible server
on loopback, read three ways in the same run against the same server:

1. Zenith: ``zenith.DataLoader("s3://bench/parquet", shuffle=True, ...)`` collating the 32
   features into a ``[B, 32]`` float32 tensor and the label into ``[B]``.
   The same loader with ``cache_dir=`` (the local disk cache): one epoch fills it, the timed
   epochs are served from it; and the same loader over the same files on local disk. The
   cached epoch's rate is reported as a share of the local-file rate.
2. Mosaic Streaming: ``streaming.StreamingDataset`` over the same rows converted to MDS
   (conversion untimed), shards fetched from the same server into a fresh local cache, through
   ``torch.utils.data.DataLoader`` (best of the worker counts tried).
3. The server's raw throughput: parallel ranged GETs (curl, SigV4) of exactly the byte
   ranges Zenith needs (the column chunks of every row group), at several numbers in flight
   (``--parallel``, default 8,16,32); the best is the server's raw throughput.

Reported: rows/s and MB/s of each, Zenith's bytes fetched per epoch against the bytes of the
columns read, and the ratios. The data is seeded; the server is s3s-fs (``make s3-server``).

    python bench/s3_benchmark.py --rows 1000000 [--batch-size 64] [--runs 3] [--mosaic-runs 1]

With ``--pin`` only the one-core-each comparison runs: the server pinned to CPU 1, the loader
(one decode thread) and curl to CPU 0; a shuffled epoch from S3 against the same loader over
the same files on local disk, and CPU-seconds per GB of Zenith, curl and the server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python" / "tests"))
import zenith  # noqa: E402  (s3_server lives in python/tests, put on sys.path above)
from s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server  # noqa: E402
from zenith import _zenith  # noqa: E402

FEATURES = [f"f{i:02d}" for i in range(32)]
FILES = 8
ROW_GROUP_ROWS = 16384
BUCKET = "bench"


def generate(root: Path, rows: int) -> Path:
    """The Parquet set: 32 float32 features, a sorted int64 label, 8 files, row groups of
    16384 rows, snappy. Kept between runs (same rows, same bytes)."""
    out = root / BUCKET / "parquet"
    stamp = out / f".rows-{rows}"
    if stamp.exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rng = np.random.default_rng(7)
    per_file = rows // FILES
    for i in range(FILES):
        n = per_file if i < FILES - 1 else rows - per_file * (FILES - 1)
        label = np.sort(rng.integers(0, 10, n)).astype(np.int64)
        centre = label.astype(np.float32)
        cols = {name: rng.standard_normal(n, dtype=np.float32) + centre for name in FEATURES}
        cols["label"] = label
        pq.write_table(pa.table(cols), out / f"part-{i:05d}.parquet",
                       row_group_size=ROW_GROUP_ROWS, compression="snappy")
    stamp.write_text("")
    return out


def upload(server: S3Server, data: Path) -> None:
    """Puts the Parquet and MDS files into a fresh server through the S3 API (untimed), so
    that the server stores each object's ETag as S3 does instead of hashing the whole file on
    every ranged GET."""
    import boto3

    client = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    for f in sorted((data / BUCKET).rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            client.put_object(Bucket=BUCKET, Key=str(f.relative_to(data / BUCKET)),
                              Body=f.read_bytes())


def column_ranges(parquet_dir: Path) -> tuple[list[tuple[str, int, int]], int]:
    """(key, start, end) of every row group's column chunks (contiguous here), and the bytes
    of the columns read."""
    ranges, column_bytes = [], 0
    for f in sorted(parquet_dir.glob("*.parquet")):
        meta = pq.ParquetFile(f).metadata
        for rg in range(meta.num_row_groups):
            cols = [meta.row_group(rg).column(c) for c in range(meta.num_columns)]
            starts = [c.dictionary_page_offset or c.data_page_offset for c in cols]
            ends = [s + c.total_compressed_size for s, c in zip(starts, cols, strict=True)]
            column_bytes += sum(c.total_compressed_size for c in cols)
            ranges.append((f"parquet/{f.name}", min(starts), max(ends)))
    return ranges, column_bytes


def to_mds(parquet_dir: Path, out: Path, rows: int) -> None:
    """Converts the rows to MDS shards (untimed), kept between runs."""
    from streaming import MDSWriter

    stamp = out.parent / f".mds-rows-{rows}"
    if stamp.exists():
        return
    shutil.rmtree(out, ignore_errors=True)
    columns = {"x": "ndarray:float32:32", "y": "int64"}
    with MDSWriter(out=str(out), columns=columns, size_limit=1 << 26) as writer:
        for f in sorted(parquet_dir.glob("*.parquet")):
            t = pq.read_table(f)
            x = np.stack([t.column(c).to_numpy() for c in FEATURES], axis=1)
            y = t.column("label").to_numpy()
            for i in range(t.num_rows):
                writer.write({"x": x[i], "y": int(y[i])})
    for old in out.parent.glob(".mds-rows-*"):
        old.unlink()
    stamp.write_text("")


def run_zenith(opts: dict[str, str] | None, batch_size: int, seed: int,
               source: str = f"s3://{BUCKET}/parquet",
               cache_dir: Path | None = None, memory_budget: int | None = None) -> dict[str, float]:
    # Timed from the constructor (listing, footers) to the last batch, like Mosaic below.
    before = _zenith.storage_stats()
    start = time.perf_counter()
    loader = zenith.DataLoader(
        source, batch_size=batch_size, shuffle=True, seed=seed,
        columns={"x": FEATURES, "y": "label"}, storage_options=opts, cache_dir=cache_dir,
        memory_budget=memory_budget,
    )
    rows, first = 0, None
    for batch in loader:
        if first is None:
            first = time.perf_counter() - start
        rows += len(batch["y"])
    seconds = time.perf_counter() - start
    after = _zenith.storage_stats()
    return {"rows": rows, "seconds": seconds, "first_batch_s": first or 0.0,
            "fetched_bytes": after["bytes"] - before["bytes"],
            "requests": after["requests"] - before["requests"]}


def run_mosaic(endpoint: str, batch_size: int, workers: int, seed: int) -> dict[str, float]:
    import torch
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    cache = tempfile.mkdtemp(prefix="mds-cache-")
    try:
        start = time.perf_counter()
        ds = StreamingDataset(remote=f"s3://{BUCKET}/mds", local=cache, shuffle=True,
                              shuffle_seed=seed, batch_size=batch_size)
        dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers)
        rows, first = 0, None
        for batch in dl:
            if first is None:
                first = time.perf_counter() - start
            rows += len(batch["y"])
        seconds = time.perf_counter() - start
        del dl, ds
        return {"rows": rows, "seconds": seconds, "first_batch_s": first or 0.0}
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run_mosaic_retrying(endpoint: str, batch_size: int, workers: int, seed: int) -> dict[str, float]:
    """run_mosaic, tried a second time when its worker processes fail (seen intermittently with
    2 workers on a loaded 2-core machine: an IndexError inside Streaming's shard reader)."""
    try:
        return run_mosaic(endpoint, batch_size, workers, seed)
    except (RuntimeError, IndexError, OSError) as e:
        print(f"mosaic (workers={workers}) failed, retrying once: {type(e).__name__}: "
              f"{str(e)[-400:]}", file=sys.stderr)
        return run_mosaic(endpoint, batch_size, workers, seed) | {"retried": 1.0}


def run_raw(endpoint: str, ranges: list[tuple[str, int, int]], parallel: int) -> dict[str, float]:
    """The same bytes with curl: parallel ranged GETs, signed with SigV4."""
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as cfg:
        for key, start, end in ranges:
            cfg.write(f'url = "{endpoint}/{BUCKET}/{key}"\nrange = {start}-{end - 1}\n'
                      'output = "/dev/null"\n')
    try:
        cmd = ["curl", "--no-progress-meter", "--fail", "--parallel", "--parallel-max",
               str(parallel), "--aws-sigv4", f"aws:amz:{REGION}:s3", "--user",
               f"{ACCESS_KEY}:{SECRET_KEY}", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
               "-K", cfg.name]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - start
    finally:
        os.unlink(cfg.name)
    return {"bytes": sum(e - s for _, s, e in ranges), "seconds": seconds}


def pin_threads(pid: int, cpu: int) -> None:
    """Pins every thread of process ``pid`` (``sched_setaffinity`` sets one thread) to ``cpu``;
    threads started later inherit it."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {cpu})


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_pinned(server: S3Server, opts: dict[str, str], parquet_dir: Path,
               ranges: list[tuple[str, int, int]], batch_size: int, runs: int,
               memory_budget: int | None = None) -> dict:
    """The server on CPU 1, this process (Zenith, one decode thread) and curl on CPU 0: a
    shuffled epoch from S3 against the same loader's epoch over the same files on local disk,
    and CPU-seconds per GB fetched of Zenith, of curl's raw ranged GETs of the same bytes, and
    of the server serving each."""
    pin_threads(server.process.pid, 1)
    pin_threads(os.getpid(), 0)
    gb = sum(e - s for _, s, e in ranges) / 1e9

    def timed(fn: object, *a: object, **k: object) -> tuple[dict, float, float, float]:
        server_cpu, me, kids = cpu_seconds(server.process.pid), os.times(), os.times()
        out = fn(*a, **k)  # type: ignore[operator]
        after = os.times()
        return (out, after.user + after.system - me.user - me.system,
                after.children_user + after.children_system - kids.children_user
                - kids.children_system, cpu_seconds(server.process.pid) - server_cpu)

    raw = [timed(run_raw, server.endpoint, ranges, 8) for _ in range(runs)]
    remote, local = [], []
    for seed in range(runs):  # interleaved, so both see the same machine
        remote.append(timed(run_zenith_one_thread, opts, batch_size, seed,
                            memory_budget=memory_budget))
        local.append(timed(run_zenith_one_thread, None, batch_size, seed, str(parquet_dir),
                           memory_budget=memory_budget))
    med = statistics.median
    s3_s, local_s = med(r[0]["seconds"] for r in remote), med(r[0]["seconds"] for r in local)
    fetched_gb = med(r[0]["fetched_bytes"] for r in remote) / 1e9
    return {
        "zenith_s3_s": s3_s, "zenith_local_s": local_s, "s3_vs_local": local_s / s3_s,
        "zenith_first_batch_s": med(r[0]["first_batch_s"] for r in remote),
        "raw_s": med(r[0]["seconds"] for r in raw),
        "cpu_s_per_gb": {
            "zenith_s3_epoch": med(r[1] for r in remote) / fetched_gb,
            "zenith_local_epoch": med(r[1] for r in local) / fetched_gb,
            "server_for_zenith": med(r[3] for r in remote) / fetched_gb,
            "curl_raw_gets": med(r[2] for r in raw) / gb,
            "server_for_raw_gets": med(r[3] for r in raw) / gb,
        },
        "fetched_gb": fetched_gb,
        "memory_budget": memory_budget,
    }


def run_zenith_one_thread(opts: dict[str, str] | None, batch_size: int, seed: int,
                          source: str = f"s3://{BUCKET}/parquet",
                          memory_budget: int | None = None) -> dict[str, float]:
    """:func:`run_zenith` with one decode thread (the loader's share of one core)."""
    os.environ["ZENITH_NUM_WORKERS"] = "1"
    try:
        return run_zenith(opts, batch_size, seed, source=source, memory_budget=memory_budget)
    finally:
        del os.environ["ZENITH_NUM_WORKERS"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3, help="timed epochs per system (median)")
    ap.add_argument("--mosaic-workers", default="0,2", help="worker counts tried for Mosaic")
    ap.add_argument("--mosaic-runs", type=int, help="timed Mosaic epochs (default: --runs)")
    ap.add_argument("--parallel", default="8,16,32",
                    help="raw GETs in flight, comma-separated; the fastest counts")
    ap.add_argument("--data", type=Path, default=REPO / "bench" / "data" / "s3root")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--pin", action="store_true",
                    help="only the one-core-each run: the server on CPU 1, the loader on CPU 0")
    ap.add_argument("--memory-budget", type=int,
                    help="the loaders' memory_budget in the --pin run (default: the loader's)")
    args = ap.parse_args()

    parquet_dir = generate(args.data, args.rows)
    to_mds(parquet_dir, args.data / BUCKET / "mds", args.rows)
    ranges, column_bytes = column_ranges(parquet_dir)
    server_root = Path(tempfile.mkdtemp(prefix="s3-bench-"))
    server = S3Server.start(server_root)
    try:
        upload(server, args.data)
        opts = server.options()
        os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                           "AWS_REGION": REGION, "S3_ENDPOINT_URL": server.endpoint})
        results: dict[str, object] = {"rows": args.rows, "batch_size": args.batch_size,
                                      "column_bytes": column_bytes, "cpus": os.cpu_count()}
        if args.pin:
            results["pinned"] = run_pinned(server, opts, parquet_dir, ranges, args.batch_size,
                                           args.runs, args.memory_budget)
            print(json.dumps(results, indent=2))
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
            return
        raw_by: dict[int, list[dict[str, float]]] = {
            p: [run_raw(server.endpoint, ranges, p) for _ in range(args.runs)]
            for p in [int(x) for x in args.parallel.split(",")]
        }
        zen = [run_zenith(opts, args.batch_size, seed) for seed in range(args.runs)]
        assert all(z["rows"] == args.rows for z in zen), zen
        cache_dir = Path(tempfile.mkdtemp(prefix="zenith-cache-bench-"))
        run_zenith(opts, args.batch_size, 99, cache_dir=cache_dir)  # fills the cache
        cached, local = [], []
        for seed in range(args.runs):  # interleaved, so both see the same machine
            cached.append(run_zenith(opts, args.batch_size, seed, cache_dir=cache_dir))
            local.append(run_zenith(None, args.batch_size, seed, source=str(parquet_dir)))
        shutil.rmtree(cache_dir, ignore_errors=True)
        assert all(z["rows"] == args.rows and z["requests"] == 0 for z in cached), cached
        mosaic: dict[int, list[dict[str, float]]] = {}
        failures: dict[int, str] = {}
        for w in [int(x) for x in args.mosaic_workers.split(",") if x.strip()]:
            runs = args.mosaic_runs or args.runs
            try:
                mosaic[w] = [run_mosaic_retrying(server.endpoint, args.batch_size, w, s)
                             for s in range(runs)]
            except (RuntimeError, IndexError, OSError) as e:  # reported, not fatal
                failures[w] = f"{type(e).__name__}: {str(e)[-600:]}"
                continue
            assert all(m["rows"] == args.rows for m in mosaic[w]), mosaic[w]
    finally:
        server.stop()
        shutil.rmtree(server_root, ignore_errors=True)

    def med(xs: list[dict[str, float]], key: str) -> float:
        return statistics.median(x[key] for x in xs)

    best_p = min(raw_by, key=lambda p: med(raw_by[p], "seconds"))
    raw = raw_by[best_p]
    raw_mbs = column_bytes / med(raw, "seconds") / 1e6
    zen_s = med(zen, "seconds")
    fetched = med(zen, "fetched_bytes")
    best_w = min(mosaic, key=lambda w: med(mosaic[w], "seconds")) if mosaic else -1
    mos_s = med(mosaic[best_w], "seconds") if mosaic else float("nan")
    results.update({
        "raw": {"seconds": med(raw, "seconds"), "MB_per_s": raw_mbs, "parallel": best_p,
                "MB_per_s_by_parallel": {p: column_bytes / med(v, "seconds") / 1e6
                                         for p, v in raw_by.items()}},
        "zenith": {"seconds": zen_s, "rows_per_s": args.rows / zen_s,
                   "MB_per_s": fetched / zen_s / 1e6, "first_batch_s": med(zen, "first_batch_s"),
                   "fetched_bytes": fetched, "requests": med(zen, "requests")},
        "mosaic": {"seconds": mos_s, "rows_per_s": args.rows / mos_s, "workers": best_w,
                   "first_batch_s": med(mosaic[best_w], "first_batch_s") if mosaic else None,
                   "all": {w: med(v, "seconds") for w, v in mosaic.items()},
                   "failed": failures},
    })
    cached_s, local_s = med(cached, "seconds"), med(local, "seconds")
    results["zenith_cached"] = {"seconds": cached_s, "rows_per_s": args.rows / cached_s,
                                "requests": med(cached, "requests")}
    results["zenith_local"] = {"seconds": local_s, "rows_per_s": args.rows / local_s}
    results["cached_vs_local"] = local_s / cached_s
    results["zenith_vs_mosaic"] = mos_s / zen_s
    results["zenith_vs_raw"] = (fetched / zen_s / 1e6) / raw_mbs
    results["fetched_vs_column_bytes"] = fetched / column_bytes
    print(json.dumps(results, indent=2))
    print(
        f"\n{args.rows} rows, {column_bytes / 1e6:.1f} MB of columns, batch {args.batch_size}, "
        f"{os.cpu_count()} CPUs, median of {args.runs}\n"
        f"  raw ranged GETs (best: {best_p} in flight): {raw_mbs:8.1f} MB/s  ("
        + ", ".join(f"{p}: {column_bytes / med(v, 'seconds') / 1e6:.0f}" for p, v in raw_by.items())
        + ")\n"
        f"  zenith:  {zen_s:6.2f} s  {args.rows / zen_s:10.0f} rows/s  "
        f"{fetched / zen_s / 1e6:8.1f} MB/s  ({results['zenith_vs_raw']:.0%} of raw)\n"
        f"  zenith, epoch from cache_dir: {cached_s:6.2f} s  {args.rows / cached_s:10.0f} rows/s"
        f"  vs local files {local_s:6.2f} s: {results['cached_vs_local']:.0%} of the local rate\n"
        f"  mosaic:  {mos_s:6.2f} s  {args.rows / mos_s:10.0f} rows/s  (workers={best_w})  "
        f"-> zenith {results['zenith_vs_mosaic']:.2f}x\n"
        f"  bytes fetched / column bytes: {results['fetched_vs_column_bytes']:.3f}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
