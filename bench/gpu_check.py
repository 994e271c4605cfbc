"""GPU path check: pinned host buffers, non-blocking copies to CUDA, and the data-stall share
of a small training loop, Zenith against torch's DataLoader on the same Parquet files.

    python bench/gpu_check.py --rows 2000000 --batch-size 1024 --epochs 2

Prints one JSON object. Needs CUDA; exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

FEATURES = [f"f{i:02d}" for i in range(32)]


def make_dataset(path: str, rows: int) -> None:
    if os.path.exists(os.path.join(path, "_done")):
        return
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(0)
    label = np.sort(rng.integers(0, 10, rows)).astype(np.int64)
    cols = {f: (rng.random(rows, dtype=np.float32) + label * 0.1).astype(np.float32) for f in FEATURES}
    cols["label"] = label
    table = pa.table(cols)
    for i in range(8):
        part = table.slice(i * rows // 8, rows // 8)
        pq.write_table(part, f"{path}/part-{i:03d}.parquet", row_group_size=16384)
    open(os.path.join(path, "_done"), "w").close()


class Rows(torch.utils.data.Dataset):
    """Preloaded tensors; indexing with a list of indices returns a whole batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx):
        return self.x[idx], self.y[idx]


def model_and_opt(device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 10),
    ).to(device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def train(batches, device: torch.device, epochs: int, to_device) -> dict:
    model, opt = model_and_opt(device)
    loss_fn = torch.nn.CrossEntropyLoss()
    wait = 0.0
    samples = 0
    torch.cuda.synchronize()
    start = time.perf_counter()
    first = None
    for epoch in range(epochs):
        it = iter(batches(epoch))
        while True:
            t0 = time.perf_counter()
            batch = next(it, None)
            if batch is None:
                break
            x, y = to_device(batch)
            wait += time.perf_counter() - t0
            if first is None:
                first = time.perf_counter() - start
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            samples += len(y)
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    return {
        "samples_per_s": samples / total,
        "data_stall_share": wait / total,
        "time_to_first_batch_s": first,
        "final_loss": float(loss.item()),
        "seconds": total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--data", default="/tmp/zenith-gpu-check")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("CUDA is not available: nothing to check")
    import zenith
    from zenith.torch import DataLoader as ZenithLoader

    make_dataset(args.data, args.rows)
    device = torch.device("cuda")
    out: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                 "zenith": zenith.__version__, "rows": args.rows, "batch_size": args.batch_size,
                 "cpus": os.cpu_count()}

    # 1. Correctness of the pinned, non-blocking path: values on the GPU equal the CPU batch.
    cpu = ZenithLoader(args.data, batch_size=args.batch_size, shuffle=True, seed=3,
                       columns={"x": FEATURES, "y": "label"})
    gpu = ZenithLoader(args.data, batch_size=args.batch_size, shuffle=True, seed=3,
                       columns={"x": FEATURES, "y": "label"}, pin_memory=True, device="cuda")
    b_cpu, b_gpu = next(iter(cpu)), next(iter(gpu))
    out["gpu_batch_device"] = str(b_gpu["x"].device)
    out["gpu_values_equal_cpu"] = bool(torch.equal(b_gpu["x"].cpu(), b_cpu["x"]))
    pinned = ZenithLoader(args.data, batch_size=args.batch_size, columns={"x": FEATURES}, pin_memory=True)
    out["pin_memory_pinned"] = bool(next(iter(pinned))["x"].is_pinned())

    # 2. Training loop: Zenith straight to CUDA.
    z = ZenithLoader(args.data, batch_size=args.batch_size, shuffle=True, seed=0,
                     columns={"x": FEATURES, "y": "label"}, pin_memory=True, device="cuda")

    def z_batches(epoch: int):
        z.set_epoch(epoch)
        return z

    out["zenith"] = train(z_batches, device, args.epochs, lambda b: (b["x"], b["y"]))

    # 3. torch DataLoader, best usual setup: preloaded tensors, BatchSampler, pinned memory.
    for workers in (0, 4):
        t0 = time.perf_counter()
        table = pq.read_table(args.data, columns=[*FEATURES, "label"])
        x_all = torch.from_numpy(np.stack([table.column(f).to_numpy() for f in FEATURES], axis=1))
        y_all = torch.from_numpy(table.column("label").to_numpy())
        load_s = time.perf_counter() - t0

        sampler = torch.utils.data.BatchSampler(
            torch.utils.data.RandomSampler(range(len(y_all))), args.batch_size, drop_last=False)
        tl = torch.utils.data.DataLoader(Rows(x_all, y_all), sampler=sampler, batch_size=None, num_workers=workers,
                                         pin_memory=True)
        res = train(lambda e, tl=tl: tl, device, args.epochs,
                    lambda b: (b[0].to(device, non_blocking=True), b[1].to(device, non_blocking=True)))
        res["preload_s"] = load_s
        out[f"torch_batched_w{workers}"] = res
    best = max(v["samples_per_s"] for k, v in out.items() if k.startswith("torch_"))
    out["zenith_speedup_vs_best_torch"] = out["zenith"]["samples_per_s"] / best
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
