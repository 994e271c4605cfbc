"""One benchmark run of one system in a fresh process; prints a single JSON line on stdout.

    python bench/peers/run_one.py --system torch-batched --workload parquet --batch-size 256 \
        --workers 2 --scale medium [--verify]

Every system delivers the same collated batches, x float32 [B, 32] and y int64 [B], in a shuffled
order, from the files the generator wrote. The timed epoch starts before the system touches the files
(so preloading and decoding count) and ends after the last batch; time to first batch is measured
from the same start. Peak memory is sampled for the whole process tree against the figure after
imports. With --verify a second epoch is checked against the manifest (row count, label histogram,
exact feature sums, x/y pairing, row multiset hash) and its shuffle quality is measured; a run whose
data is wrong reports the mismatches and is marked WRONG by the suite.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parents[1]))
import benchlib

Batches = Iterator[tuple[object, object]]
EpochFn = Callable[[int], Batches]


@dataclass
class Context:
    """What a system needs to build its loader."""

    root: Path
    workload: str
    batch_size: int
    workers: int
    seed: int

    def files(self, fmt: str) -> list[str]:
        """Sorted file paths of one format of the dataset."""
        return sorted(str(p) for p in (self.root / fmt).iterdir() if p.is_file())


def _permuted_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> Batches:
    """Batches of a seeded random permutation of in-memory rows (row-major x: one copy per row)."""
    perm = np.random.default_rng(seed).permutation(len(y))
    for start in range(0, len(y), batch_size):
        idx = perm[start : start + batch_size]
        yield x[idx], y[idx]


def _pyarrow_arrays(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Read the Parquet directory with pyarrow and lay it out as row-major x and y."""
    import pyarrow.parquet as pq

    table = pq.read_table(ctx.root / "parquet", columns=[*benchlib.FEATURES, benchlib.LABEL])
    return benchlib.table_to_xy(table)


def build_pyarrow(ctx: Context) -> EpochFn:
    """pyarrow.parquet.read_table, to NumPy, batches of a random permutation."""
    x, y = _pyarrow_arrays(ctx)
    return lambda epoch: _permuted_batches(x, y, ctx.batch_size, ctx.seed + epoch)


def build_polars(ctx: Context) -> EpochFn:
    """polars.read_parquet, to a row-major NumPy array, batches of a random permutation."""
    import polars as pl

    df = pl.read_parquet(ctx.root / "parquet" / "*.parquet")
    x = np.ascontiguousarray(df.select(benchlib.FEATURES).to_numpy())
    y = df[benchlib.LABEL].to_numpy()
    return lambda epoch: _permuted_batches(x, y, ctx.batch_size, ctx.seed + epoch)


def _torch_loader(ctx: Context, dataset, **kwargs) -> EpochFn:
    """A torch DataLoader over `dataset` whose shuffle is reseeded per epoch."""
    import torch

    generator = torch.Generator()
    loader = torch.utils.data.DataLoader(
        dataset, num_workers=ctx.workers, generator=generator, **kwargs
    )

    def epoch(e: int) -> Batches:
        generator.manual_seed(ctx.seed + e)
        return iter(loader)

    return epoch


def build_torch_rowwise(ctx: Context) -> EpochFn:
    """Map-style Dataset over preloaded tensors, one __getitem__ per row, default collate."""
    import torch

    x, y = (torch.from_numpy(a) for a in _pyarrow_arrays(ctx))

    class RowDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(y)

        def __getitem__(self, i: int):
            return x[i], y[i]

    return _torch_loader(ctx, RowDataset(), batch_size=ctx.batch_size, shuffle=True)


def build_torch_batched(ctx: Context) -> EpochFn:
    """BatchSampler(RandomSampler) handing index lists to a Dataset over preloaded tensors."""
    import torch
    from torch.utils.data import BatchSampler, RandomSampler

    x, y = (torch.from_numpy(a) for a in _pyarrow_arrays(ctx))

    class IndexListDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(y)

        def __getitem__(self, indices: list[int]):
            # index_select: x[idx] runs a threaded gather whose start-up dwarfs 256 rows.
            idx = torch.as_tensor(indices)
            return x.index_select(0, idx), y.index_select(0, idx)

    dataset = IndexListDataset()
    generator = torch.Generator()
    sampler = BatchSampler(RandomSampler(dataset, generator=generator), ctx.batch_size, False)
    loader = torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=ctx.workers
    )

    def epoch(e: int) -> Batches:
        generator.manual_seed(ctx.seed + e)
        return iter(loader)

    return epoch


def _decode_sample(sample: dict) -> tuple[np.ndarray, int]:
    """A WebDataset sample's raw fields as (features, label)."""
    return np.frombuffer(sample["bin"], dtype="<f4"), int(sample["cls"])


def _collate(samples: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Stack decoded samples into x float32 [B, 32] and y int64 [B]."""
    xs, ys = zip(*samples, strict=True)
    return np.stack(xs), np.array(ys, dtype=np.int64)


def build_webdataset(ctx: Context) -> EpochFn:
    """webdataset: shard shuffle, a 1000-sample shuffle buffer, batched in its workers."""
    import webdataset as wds

    urls = ctx.files("wds")

    def epoch(e: int) -> Batches:
        dataset = (
            wds.WebDataset(urls, shardshuffle=len(urls), seed=ctx.seed + e, empty_check=False)
            .shuffle(1000)
            .map(_decode_sample)
            .batched(ctx.batch_size, collation_fn=_collate)
        )
        return iter(wds.WebLoader(dataset, batch_size=None, num_workers=ctx.workers))

    return epoch


def _zenith_loader(ctx: Context, loader_cls) -> EpochFn:
    """A Zenith loader over the Parquet directory, x stacked from the 32 features in Rust."""
    dl = loader_cls(
        str(ctx.root / "parquet"),
        batch_size=ctx.batch_size,
        shuffle=True,
        seed=ctx.seed,
        columns={"x": benchlib.FEATURES, "y": benchlib.LABEL},
        num_workers=ctx.workers or None,
    )

    def epoch(e: int) -> Batches:
        dl.set_epoch(e)
        return ((b["x"], b["y"]) for b in dl)

    return epoch


def _zenith_tar_batches(dl) -> Batches:
    """Zenith's tar samples arrive as Arrow binary (view) columns: `bin` becomes x, `cls` y."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for batch in dl:
        raw = batch.column("bin")
        if pa.types.is_binary_view(raw.type):
            # Zenith hands `bin` over as views into the mapped shard: one copy into a plain layout.
            raw = raw.cast(pa.binary())
        width = np.int64 if pa.types.is_large_binary(raw.type) else np.int32
        offsets = np.frombuffer(raw.buffers()[1], dtype=width)[
            raw.offset : raw.offset + len(raw) + 1
        ]
        data = np.frombuffer(raw.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        y = pc.cast(pc.cast(batch.column("cls"), pa.string()), pa.int64())
        yield data.view("<f4").reshape(-1, benchlib.NUM_FEATURES), y.to_numpy()


def build_zenith(ctx: Context) -> EpochFn:
    """zenith.DataLoader: NumPy batches (Parquet), or Arrow batches of tar samples (tar)."""
    import zenith

    if ctx.workload == "parquet":
        return _zenith_loader(ctx, zenith.DataLoader)
    dl = zenith.DataLoader(
        str(ctx.root / "wds"),
        batch_size=ctx.batch_size,
        shuffle=True,
        seed=ctx.seed,
        columns=["bin", "cls"],
        num_workers=ctx.workers or None,
        output="arrow",
    )

    def epoch(e: int) -> Batches:
        dl.set_epoch(e)
        return _zenith_tar_batches(dl)

    return epoch


def build_zenith_torch(ctx: Context) -> EpochFn:
    """zenith.torch.DataLoader: the same batches as torch tensors."""
    from zenith.torch import DataLoader

    return _zenith_loader(ctx, DataLoader)


@dataclass(frozen=True)
class System:
    """A peer: its builder, the modules it imports before the baseline, the workloads it runs."""

    build: Callable[[Context], EpochFn]
    imports: tuple[str, ...]
    workloads: tuple[str, ...]
    about: str


SYSTEMS = {
    "zenith": System(
        build_zenith,
        ("zenith", "pyarrow"),
        ("parquet", "tar"),
        "zenith.DataLoader, columns stacked in Rust, NumPy batches",
    ),
    "zenith-torch": System(
        build_zenith_torch,
        ("zenith.torch",),
        ("parquet",),
        "zenith.torch.DataLoader, torch tensors",
    ),
    "torch-rowwise": System(
        build_torch_rowwise,
        ("torch", "pyarrow.parquet"),
        ("parquet",),
        "torch DataLoader, per-row Dataset over preloaded tensors, shuffle=True",
    ),
    "torch-batched": System(
        build_torch_batched,
        ("torch", "pyarrow.parquet"),
        ("parquet",),
        "torch DataLoader, BatchSampler(RandomSampler), index-list Dataset",
    ),
    "pyarrow": System(
        build_pyarrow,
        ("pyarrow.parquet",),
        ("parquet",),
        "pyarrow.parquet.read_table + NumPy permutation batching",
    ),
    "polars": System(
        build_polars, ("polars",), ("parquet",), "polars.read_parquet + NumPy permutation batching"
    ),
    "webdataset": System(
        build_webdataset,
        ("webdataset", "torch"),
        ("tar",),
        "webdataset WebDataset + WebLoader, shuffle(1000)",
    ),
}
WORKLOADS = {
    "parquet": "one shuffled epoch over the 8-file Parquet directory",
    "tar": "one shuffled epoch over the WebDataset tar shards",
}


def timed_epoch(epoch_fn_builder: Callable[[], EpochFn]) -> tuple[dict, EpochFn]:
    """Build the system and run epoch 0: time to first batch, epoch seconds, rows, batches, memory."""
    with benchlib.MemorySampler() as memory:
        start = time.perf_counter()
        epoch_fn = epoch_fn_builder()
        batches = epoch_fn(0)
        _, y = next(batches)
        first = time.perf_counter() - start
        rows, count = len(y), 1
        for _, y in batches:
            rows += len(y)
            count += 1
        seconds = time.perf_counter() - start
        del batches
    stats = {"first_batch_s": first, "epoch_s": seconds, "rows": rows, "batches": count}
    return stats | memory.report(), epoch_fn


def verify_epoch(epoch_fn: EpochFn, manifest: dict, fmt: str) -> dict:
    """Epoch 1 checked against the manifest, and its shuffle quality."""
    check = benchlib.EpochChecksum(manifest["label_std"])
    for x, y in epoch_fn(1):
        check.add(x, y)
    return {
        "mismatches": check.mismatches(manifest["formats"][fmt]["checksum"]),
        "shuffle_quality": check.shuffle_quality(),
    }


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--system", required=True, choices=sorted(SYSTEMS))
    parser.add_argument("--workload", default="parquet", choices=sorted(WORKLOADS))
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--data", type=Path, default=benchlib.DATA_DIR)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="loader worker processes/threads (0: in-process; Zenith: its default)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verify", action="store_true", help="check a second epoch's data")
    args = parser.parse_args()
    system = SYSTEMS[args.system]
    if args.workload not in system.workloads:
        parser.error(f"{args.system} does not run the {args.workload} workload")
    for module in system.imports:
        importlib.import_module(module)
    manifest = benchlib.load_manifest(args.scale, args.data)
    fmt = "parquet" if args.workload == "parquet" else "wds"
    ctx = Context(
        benchlib.scale_dir(args.scale, args.data),
        args.workload,
        args.batch_size,
        args.workers,
        args.seed,
    )
    result, epoch_fn = timed_epoch(lambda: system.build(ctx))
    expected_rows = manifest["formats"][fmt]["rows"]
    result |= {
        "system": args.system,
        "workload": args.workload,
        "scale": args.scale,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "samples_per_s": result["rows"] / result["epoch_s"],
        "mb_per_s": result["rows"] * manifest["bytes_per_row"] / result["epoch_s"] / 1e6,
        "mismatches": []
        if result["rows"] == expected_rows
        else [f"timed epoch delivered {result['rows']} rows, expected {expected_rows}"],
    }
    if args.verify:
        verified = verify_epoch(epoch_fn, manifest, fmt)
        result["mismatches"] += verified["mismatches"]
        result["shuffle_quality"] = verified["shuffle_quality"]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
