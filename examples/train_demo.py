"""Train a small MLP through zenith.torch.DataLoader, then through torch's DataLoader, and compare.

    python examples/train_demo.py [--epochs 2] [--batch-size 256] [--scale tiny]

What `make run` runs. Generates the benchmark's tiny dataset (50,000 rows of 32 float32 features and
a 10-class label, sorted by label in 8 Parquet files) if it is missing, then trains the same model
from the same initial weights with each loader:

    zenith   zenith.torch.DataLoader(parquet_dir, batch_size=256, shuffle=True, columns=...)
    torch    torch.utils.data.DataLoader over tensors preloaded with pyarrow, a BatchSampler over a
             RandomSampler and an index-list Dataset (one call per batch, not per row), num_workers=0:
             the fastest torch configuration on a small machine in bench/run_benchmarks.sh

For each it prints the loss per epoch, samples/s of the whole training loop (including reading the
files), and the data-stall share: the fraction of loop time spent waiting for the next batch.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.append(str(BENCH))
import benchlib  # noqa: E402  (bench/ is put on sys.path above)
import generate_datasets  # noqa: E402

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def zenith_epochs(parquet_dir: Path, batch_size: int) -> Callable[[int], Batches]:
    """zenith.torch.DataLoader: x stacked from the 32 feature columns in Rust, y the label."""
    from zenith.torch import DataLoader

    loader = DataLoader(
        str(parquet_dir),
        batch_size=batch_size,
        shuffle=True,
        seed=0,
        columns={"x": benchlib.FEATURES, "y": benchlib.LABEL},
    )

    def epoch(e: int) -> Batches:
        loader.set_epoch(e)
        return ((b["x"], b["y"]) for b in loader)

    return epoch


def torch_epochs(parquet_dir: Path, batch_size: int) -> Callable[[int], Batches]:
    """torch's DataLoader over preloaded tensors, whole batches per Dataset call."""
    import pyarrow.parquet as pq
    from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

    table = pq.read_table(parquet_dir, columns=[*benchlib.FEATURES, benchlib.LABEL])
    x, y = (torch.from_numpy(a) for a in benchlib.table_to_xy(table))

    class Rows(Dataset):
        def __len__(self) -> int:
            return len(y)

        def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
            # index_select: x[idx] runs a threaded gather whose start-up dwarfs 256 rows.
            idx = torch.as_tensor(indices)
            return x.index_select(0, idx), y.index_select(0, idx)

    generator = torch.Generator()
    rows = Rows()
    sampler = BatchSampler(RandomSampler(rows, generator=generator), batch_size, drop_last=False)
    loader = DataLoader(rows, sampler=sampler, batch_size=None, num_workers=0)

    def epoch(e: int) -> Batches:
        generator.manual_seed(e)
        return loader

    return epoch


def make_model() -> nn.Module:
    """32 -> 64 -> 10 MLP with fixed initial weights, so both runs start from the same point."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(benchlib.NUM_FEATURES, 64), nn.ReLU(), nn.Linear(64, benchlib.NUM_CLASSES)
    )


def train(name: str, build: Callable[[], Callable[[int], Batches]], epochs: int) -> dict:
    """Train for `epochs`; building the loader (reading the files) counts as waiting for data."""
    model = make_model()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    epoch_batches = build()
    waited = time.perf_counter() - start
    samples = 0
    for epoch in range(epochs):
        total_loss, count = 0.0, 0
        it = iter(epoch_batches(epoch))
        while True:
            t0 = time.perf_counter()
            batch = next(it, None)
            waited += time.perf_counter() - t0
            if batch is None:
                break
            x, y = batch
            optimiser.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimiser.step()
            total_loss += loss.item() * len(y)
            count += len(y)
        samples += count
        print(f"  {name:7s} epoch {epoch + 1}: loss {total_loss / count:.4f} ({count:,} samples)")
    seconds = time.perf_counter() - start
    return {"samples_per_s": samples / seconds, "stall": waited / seconds, "seconds": seconds}


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--scale", default="tiny", choices=sorted(generate_datasets.SCALES))
    args = parser.parse_args()

    generate_datasets.generate(args.scale, benchlib.DATA_DIR, formats=["parquet"])
    parquet_dir = benchlib.scale_dir(args.scale) / "parquet"
    benchlib.warm_page_cache(sorted(parquet_dir.iterdir()))
    print(
        f"training a 32-64-10 MLP for {args.epochs} epochs on {parquet_dir}, "
        f"batch {args.batch_size}, {torch.get_num_threads()} torch threads"
    )
    results = {
        "zenith": train("zenith", lambda: zenith_epochs(parquet_dir, args.batch_size), args.epochs),
        "torch": train("torch", lambda: torch_epochs(parquet_dir, args.batch_size), args.epochs),
    }
    print()
    print(f"  {'loader':8s} {'samples/s':>12s} {'loop s':>8s} {'data stall':>11s}")
    for name, r in results.items():
        print(f"  {name:8s} {r['samples_per_s']:12,.0f} {r['seconds']:8.2f} {r['stall']:10.1%}")
    speedup = results["zenith"]["samples_per_s"] / results["torch"]["samples_per_s"]
    print(
        f"\n  zenith.torch.DataLoader trains {speedup:.2f}x as many samples/s as torch's DataLoader"
    )


if __name__ == "__main__":
    main()
