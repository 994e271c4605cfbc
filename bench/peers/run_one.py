"""One benchmark run of one system in a fresh process; prints a single JSON line on stdout.

    python bench/peers/run_one.py --system torch-batched --workload parquet --batch-size 256 \
        --workers 2 --scale medium [--verify]

Every system delivers the same collated batches, x float32 [B, 32] and y int64 [B], in a shuffled
order, from the files the generator wrote, to the same consumer (it sums every batch). The timed
epoch starts before the system touches the files (so preloading and decoding count) and ends after
the last batch; time to first batch is measured from the same start. The exceptions are the two
references, which are not loaders and are built before the clock: `ceiling`, the in-memory ceiling
as the issue defines it (rows preloaded into one array, a precomputed permutation, one gather per
batch into the consumer: what handing over shuffled batches costs when nothing is read or decoded),
and `ceiling-views`, the consumer alone over batches already gathered in permuted order (slices of
a pre-permuted copy: a floor no loader that gathers can reach).

Workloads `parquet` (pyarrow's default layout: dictionary-encoded, row groups of 65,536) and
`parquet-plain` (PLAIN floats, row groups of 16,384) run the same systems on the two Parquet
directories; the output names the layout from the manifest.

Per-batch cost, from Python (batches after the first, whose next() also starts the pass):
next_us_per_batch is the time inside next(); loader_us_per_batch is (epoch - consumer time) /
batches; for Zenith systems handover_us_per_batch is next() time minus the loader's own wait for a
batch (stats()["wait_s"]): what handing a ready batch to Python costs; rust_handover_us_per_batch
is the same cost from the Rust side (stats()["handover_s"]: building the batch's arrays).

Peak memory is sampled for the whole process tree against the figure after imports. The timed
epoch's row count and label sum are checked against the manifest. With --verify a second epoch is
checked in full (row count, label histogram, exact feature sums, x/y pairing, row multiset hash) and
its shuffle quality is measured; a run whose data is wrong reports the mismatches and is marked
WRONG by the suite.
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
# The dataset directory (a format of the manifest) each workload reads.
FORMAT_OF = {"parquet": "parquet", "parquet-plain": "parquet-plain", "tar": "wds"}
PARQUET = benchlib.PARQUET_FORMATS


@dataclass
class Context:
    """What a system needs to build its loader."""

    root: Path
    workload: str
    batch_size: int
    workers: int
    seed: int

    @property
    def data_dir(self) -> Path:
        """The directory of the workload's format."""
        return self.root / FORMAT_OF[self.workload]

    def files(self, fmt: str) -> list[str]:
        """Sorted file paths of one format of the dataset."""
        return sorted(str(p) for p in (self.root / fmt).iterdir() if p.is_file())


def _permutation_indices(rows: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """A seeded random permutation of range(rows) cut into index arrays of batch_size."""
    perm = np.random.default_rng(seed).permutation(rows)
    for start in range(0, rows, batch_size):
        yield perm[start : start + batch_size]


def _permuted_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> Batches:
    """Batches of a seeded random permutation of in-memory rows (row-major x: one copy per row)."""
    for idx in _permutation_indices(len(y), batch_size, seed):
        yield x[idx], y[idx]


def _pyarrow_arrays(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Read the workload's Parquet directory with pyarrow and lay it out as row-major x and y."""
    import pyarrow.parquet as pq

    table = pq.read_table(ctx.data_dir, columns=[*benchlib.FEATURES, benchlib.LABEL])
    return benchlib.table_to_xy(table)


def build_pyarrow(ctx: Context) -> EpochFn:
    """pyarrow.parquet.read_table, to NumPy, batches of a random permutation."""
    x, y = _pyarrow_arrays(ctx)
    return lambda epoch: _permuted_batches(x, y, ctx.batch_size, ctx.seed + epoch)


def build_polars(ctx: Context) -> EpochFn:
    """polars.read_parquet, to a row-major NumPy array, batches of a random permutation."""
    import polars as pl

    df = pl.read_parquet(ctx.data_dir / "*.parquet")
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


def build_torch_strongest(ctx: Context) -> EpochFn:
    """The careful user's DataLoader: the table read once into one row-major array, a sampler of
    NumPy index arrays cut from a seeded permutation, one fancy-index gather per batch."""
    import torch

    x, y = _pyarrow_arrays(ctx)

    class PermutationBatches(torch.utils.data.Sampler):
        """Index arrays of a permutation seeded with seed + epoch (the order pyarrow/polars use)."""

        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0

        def __len__(self) -> int:
            return -(-len(y) // ctx.batch_size)

        def __iter__(self) -> Iterator[np.ndarray]:
            return _permutation_indices(len(y), ctx.batch_size, ctx.seed + self.epoch)

    class GatherDataset(torch.utils.data.Dataset):
        """One batch per index array: a NumPy gather, handed over with torch.from_numpy."""

        def __len__(self) -> int:
            return len(y)

        def __getitem__(self, idx: np.ndarray):
            return torch.from_numpy(x[idx]), torch.from_numpy(y[idx])

    sampler = PermutationBatches()
    loader = torch.utils.data.DataLoader(
        GatherDataset(), batch_size=None, sampler=sampler, num_workers=ctx.workers
    )

    def epoch(e: int) -> Batches:
        sampler.epoch = e
        return iter(loader)

    return epoch


def build_ceiling(ctx: Context) -> EpochFn:
    """The in-memory ceiling, not a loader: run before the clock, it reads the rows into one array
    and draws the permutation (the one pyarrow/polars/torch-strongest use); the timed epoch gathers
    each batch with one fancy index and hands it over."""
    x, y = _pyarrow_arrays(ctx)
    perms = {0: np.random.default_rng(ctx.seed).permutation(len(y))}

    def epoch(e: int) -> Batches:
        perm = perms.pop(e) if e in perms else np.random.default_rng(ctx.seed + e).permutation(len(y))
        for start in range(0, len(y), ctx.batch_size):
            idx = perm[start : start + ctx.batch_size]
            yield x[idx], y[idx]

    return epoch


def build_ceiling_views(ctx: Context) -> EpochFn:
    """A floor below the ceiling, not a loader: run before the clock, it reads the rows and puts
    them in epoch 0's permuted order, so the timed epoch hands over ready, contiguous batches:
    nothing but the consumer's own work."""
    x, y = _pyarrow_arrays(ctx)

    def permuted(e: int) -> tuple[np.ndarray, np.ndarray]:
        # The permutation _permutation_indices cuts into batches.
        perm = np.random.default_rng(ctx.seed + e).permutation(len(y))
        return x[perm], y[perm]

    ready = {0: permuted(0)}

    def epoch(e: int) -> Batches:
        # Later epochs (the --verify one) are permuted when asked: they are not timed.
        px, py = ready.pop(e) if e in ready else permuted(e)
        for start in range(0, len(py), ctx.batch_size):
            yield px[start : start + ctx.batch_size], py[start : start + ctx.batch_size]

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


class LoaderEpochs:
    """A Zenith loader's epochs, with the seconds its consumer waited for batches (stats wait_s)."""

    def __init__(self, dl, batches: Callable[[object], Batches]) -> None:
        self._dl = dl
        self._batches = batches

    def __call__(self, epoch: int) -> Batches:
        self._dl.set_epoch(epoch)
        return self._batches(self._dl)

    def wait_s(self) -> float:
        """Seconds spent waiting for a batch, summed over the passes so far."""
        return float(self._dl.stats()["wait_s"])

    def handover_s(self) -> float:
        """Seconds the bindings spent building batches' arrays (Rust-side counter)."""
        return float(self._dl.stats().get("handover_s", 0.0))


def _zenith_loader(ctx: Context, loader_cls, workers: int | None) -> LoaderEpochs:
    """A Zenith loader over the workload's Parquet directory, x stacked from the 32 features in Rust."""
    dl = loader_cls(
        str(ctx.data_dir),
        batch_size=ctx.batch_size,
        shuffle=True,
        seed=ctx.seed,
        columns={"x": benchlib.FEATURES, "y": benchlib.LABEL},
        num_workers=workers,
    )
    return LoaderEpochs(dl, lambda loader: ((b["x"], b["y"]) for b in loader))


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

    if ctx.workload in PARQUET:
        return _zenith_loader(ctx, zenith.DataLoader, ctx.workers or None)
    dl = zenith.DataLoader(
        str(ctx.data_dir),
        batch_size=ctx.batch_size,
        shuffle=True,
        seed=ctx.seed,
        columns=["bin", "cls"],
        num_workers=ctx.workers or None,
        output="arrow",
    )
    return LoaderEpochs(dl, _zenith_tar_batches)


def build_zenith_torch(ctx: Context) -> EpochFn:
    """zenith.torch.DataLoader: the same batches as torch tensors."""
    from zenith.torch import DataLoader

    # zenith.torch takes torch's num_workers=0 for its default thread count, None is an error.
    return _zenith_loader(ctx, DataLoader, ctx.workers)


@dataclass(frozen=True)
class System:
    """A peer: its builder, the modules it imports before the baseline, the workloads it runs.

    A system built before the clock (`before_clock`) is a reference, not a loader: the ceiling.
    """

    build: Callable[[Context], EpochFn]
    imports: tuple[str, ...]
    workloads: tuple[str, ...]
    about: str
    before_clock: bool = False


SYSTEMS = {
    "zenith": System(
        build_zenith,
        ("zenith", "pyarrow"),
        (*PARQUET, "tar"),
        "zenith.DataLoader, columns stacked in Rust, NumPy batches",
    ),
    "zenith-torch": System(
        build_zenith_torch,
        ("zenith.torch",),
        PARQUET,
        "zenith.torch.DataLoader, torch tensors",
    ),
    "torch-rowwise": System(
        build_torch_rowwise,
        ("torch", "pyarrow.parquet"),
        PARQUET,
        "torch DataLoader, per-row Dataset over preloaded tensors, shuffle=True",
    ),
    "torch-batched": System(
        build_torch_batched,
        ("torch", "pyarrow.parquet"),
        PARQUET,
        "torch DataLoader, BatchSampler(RandomSampler), index-list Dataset",
    ),
    "torch-strongest": System(
        build_torch_strongest,
        ("torch", "pyarrow.parquet"),
        PARQUET,
        "torch DataLoader(batch_size=None), sampler of NumPy index arrays, one gather per batch",
    ),
    "ceiling": System(
        build_ceiling,
        ("pyarrow.parquet",),
        PARQUET,
        "in-memory ceiling (not a loader): rows preloaded, one gather per batch",
        before_clock=True,
    ),
    "ceiling-views": System(
        build_ceiling_views,
        ("pyarrow.parquet",),
        PARQUET,
        "consumer over pre-permuted slices (not a loader): below any gathering loader",
        before_clock=True,
    ),
    "pyarrow": System(
        build_pyarrow,
        ("pyarrow.parquet",),
        PARQUET,
        "pyarrow.parquet.read_table + NumPy permutation batching",
    ),
    "polars": System(
        build_polars, ("polars",), PARQUET, "polars.read_parquet + NumPy permutation batching"
    ),
    "webdataset": System(
        build_webdataset,
        ("webdataset", "torch"),
        ("tar",),
        "webdataset WebDataset + WebLoader, shuffle(1000)",
    ),
}
WORKLOADS = {
    "parquet": "one shuffled epoch over the 8-file Parquet directory (pyarrow's defaults)",
    "parquet-plain": "one shuffled epoch over the 8-file Parquet directory with PLAIN floats",
    "tar": "one shuffled epoch over the WebDataset tar shards",
}


def _as_numpy(a: object) -> np.ndarray:
    """A batch column as NumPy without a copy: torch tensors through ``.numpy()`` (a view; the
    ``__array__`` protocol that ``np.asarray`` uses on them costs a few µs more per call)."""
    if type(a) is np.ndarray:
        return a
    to_numpy = getattr(a, "numpy", None)
    return to_numpy() if to_numpy is not None else np.asarray(a)


class Consumer:
    """The one consumer every system feeds: it sums each batch, so every value handed over is read."""

    def __init__(self) -> None:
        self.rows = 0
        self.batches = 0
        self.feature_sum = 0.0
        self.label_sum = 0

    def __call__(self, x: object, y: object) -> None:
        labels = _as_numpy(y)
        self.feature_sum += float(_as_numpy(x).sum())
        self.label_sum += int(labels.sum())
        self.rows += len(labels)
        self.batches += 1


def timed_epoch(
    epoch_fn_builder: Callable[[], EpochFn], warm_epochs: int = 0
) -> tuple[dict, EpochFn]:
    """Build the system and run epoch `warm_epochs` into the consumer (after that many untimed
    epochs, whose memory still counts): time to first batch, epoch seconds, rows, batches,
    memory, and the per-batch time inside next() and in the consumer. With no warm epochs,
    building the system (reading the files, for the systems that read them up front) is timed."""
    clock = time.perf_counter
    consume = Consumer()
    with benchlib.MemorySampler() as memory:
        warm = epoch_fn_builder() if warm_epochs else None
        for e in range(warm_epochs):
            assert warm is not None
            for _ in warm(e):
                pass
        start = clock()
        epoch_fn = warm if warm is not None else epoch_fn_builder()
        batches = epoch_fn(warm_epochs)
        x, y = next(batches)
        first = clock() - start
        t0 = clock()
        consume(x, y)
        consume_s = clock() - t0
        loader = epoch_fn if isinstance(epoch_fn, LoaderEpochs) else None
        wait_first = loader.wait_s() if loader else 0.0
        handover_first = loader.handover_s() if loader else 0.0
        next_s = 0.0
        while True:
            t0 = clock()
            try:
                x, y = next(batches)
            except StopIteration:
                # The last next() ends the pass (its wait counts in wait_s too).
                next_s += clock() - t0
                break
            t1 = clock()
            consume(x, y)
            t2 = clock()
            next_s += t1 - t0
            consume_s += t2 - t1
        seconds = clock() - start
        del batches, x, y
    later = max(consume.batches - 1, 1)
    stats = {
        "first_batch_s": first,
        "epoch_s": seconds,
        "rows": consume.rows,
        "batches": consume.batches,
        "label_sum": consume.label_sum,
        "consumer_s": consume_s,
        "next_us_per_batch": next_s / later * 1e6,
        "loader_us_per_batch": (seconds - consume_s) / max(consume.batches, 1) * 1e6,
    }
    if loader:
        wait = loader.wait_s() - wait_first
        stats["wait_us_per_batch"] = wait / later * 1e6
        stats["handover_us_per_batch"] = (next_s - wait) / later * 1e6
        rust = loader.handover_s() - handover_first
        stats["rust_handover_us_per_batch"] = rust / max(consume.batches, 1) * 1e6
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
    parser.add_argument(
        "--warm-epochs",
        type=int,
        default=0,
        help="untimed epochs before the timed one (later epochs: Zenith reuses decoded data)",
    )
    args = parser.parse_args()
    system = SYSTEMS[args.system]
    if args.workload not in system.workloads:
        parser.error(f"{args.system} does not run the {args.workload} workload")
    for module in system.imports:
        importlib.import_module(module)
    manifest = benchlib.load_manifest(args.scale, args.data)
    fmt = FORMAT_OF[args.workload]
    ctx = Context(
        benchlib.scale_dir(args.scale, args.data),
        args.workload,
        args.batch_size,
        args.workers,
        args.seed,
    )
    if system.before_clock:
        built = system.build(ctx)
        result, epoch_fn = timed_epoch(lambda: built, args.warm_epochs)
    else:
        result, epoch_fn = timed_epoch(lambda: system.build(ctx), args.warm_epochs)
    result["timed_epoch"] = args.warm_epochs
    expected_rows = manifest["formats"][fmt]["rows"]
    expected_labels = manifest["formats"][fmt]["checksum"]["label_sum"]
    mismatches = []
    if result["rows"] != expected_rows:
        mismatches.append(f"timed epoch delivered {result['rows']} rows, expected {expected_rows}")
    if result["label_sum"] != expected_labels:
        mismatches.append(
            f"timed epoch's label sum {result['label_sum']} != {expected_labels} (manifest)"
        )
    result |= {
        "system": args.system,
        "workload": args.workload,
        "scale": args.scale,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "role": ("in-memory ceiling" if args.system == "ceiling" else "reference")
        if system.before_clock
        else "loader",
        "layout": benchlib.layout_of(manifest, fmt),
        "samples_per_s": result["rows"] / result["epoch_s"],
        "mb_per_s": result["rows"] * manifest["bytes_per_row"] / result["epoch_s"] / 1e6,
        "mismatches": mismatches,
    }
    if args.verify:
        verified = verify_epoch(epoch_fn, manifest, fmt)
        result["mismatches"] += verified["mismatches"]
        result["shuffle_quality"] = verified["shuffle_quality"]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
