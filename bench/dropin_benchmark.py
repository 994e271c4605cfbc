"""What users already have, through zenith.torch.DataLoader and through torch's DataLoader.

    python bench/dropin_benchmark.py [--images 2000] [--rows 1000000] [--repeats 3]

Two workloads, each system in a fresh process per run, one epoch, shuffle on, page cache warm:

- ``imagefolder``: a ``torchvision.datasets.ImageFolder`` of photo-like JPEGs (smooth noise at
  several scales with edges and texture, sides drawn between 300 and 600 px, quality 90, 10
  classes) whose transform is ``transforms.v2`` RandomResizedCrop(224) + RandomHorizontalFlip +
  ToImage + ToDtype(float32, scale) + Normalize, batches of 64. The same Dataset object goes to
  ``torch.utils.data.DataLoader`` with ``num_workers`` processes and to
  ``zenith.torch.DataLoader`` with ``num_workers`` threads (``__getitem__`` is PIL decode and
  torch ops, which release the GIL).
- ``hf``: a Hugging Face ``datasets.Dataset`` of the tabular workload (32 float32 features and an
  int64 label; ``Dataset.from_parquet`` then ``save_to_disk``, untimed), batches of 256 as
  ``x [B, 32]`` and ``y [B]``. Peers: torch's DataLoader over ``ds.with_format("torch")`` in the
  strongest way a careful user writes it, a ``BatchSampler`` as the sampler so each fetch is one
  ``ds[indices]`` (one Arrow ``take`` per batch, not one call per row), features stacked per
  batch; and the plain form (``batch_size=256``, which fetches through ``__getitems__`` and
  collates a list of row dicts). Zenith reads the dataset's Arrow files directly.

Each run reports samples/s over the epoch (from before the loader is built to the last batch),
time to first batch, and peak memory growth over the process tree (workers included): PSS, and
PSS plus what is in use on /dev/shm, sampled together, since torch's workers hand their batches
over in shared memory that no process's PSS counts until the main process maps it; the ratio is
taken on the latter. Results go to
``bench/results/dropin.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parent))
import benchlib

ROOT = benchlib.DATA_DIR / "dropin"
IMAGE_BATCH = 64
HF_BATCH = 256
CLASSES = 10


def photo(rng: np.random.Generator) -> np.ndarray:
    """An RGB image with natural-image statistics: noise summed over octaves with amplitude
    falling as the scale shrinks (a 1/f-like spectrum), a few hard-edged shapes, fine texture."""
    from PIL import Image, ImageDraw

    h, w = (int(v) for v in rng.integers(300, 601, size=2))
    img = np.zeros((h, w, 3), dtype=np.float32)
    for octave in range(1, 8):
        cells = 2**octave
        noise = rng.integers(0, 256, size=(cells, cells, 3), dtype=np.uint8)
        smooth = Image.fromarray(noise).resize((w, h), Image.Resampling.BICUBIC)
        img += np.asarray(smooth, dtype=np.float32) / octave
    shapes = Image.new("L", (w, h))
    draw = ImageDraw.Draw(shapes)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(20, max(21, min(h, w) // 3)))
        draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=int(rng.integers(60, 256)))
    img += np.asarray(shapes, dtype=np.float32)[:, :, None] * rng.uniform(-1, 1, size=3)
    img += rng.normal(0, 10, size=(h, w, 3)).astype(np.float32)
    img = (img - img.min()) * (255 / (img.max() - img.min() + 1e-6))
    return img.astype(np.uint8)


def make_images(n: int) -> Path:
    """``n`` JPEGs under ``ROOT/imagefolder-<n>/<class>/``; kept between runs."""
    from PIL import Image

    out = ROOT / f"imagefolder-{n}"
    done = out / "done"
    if done.exists():
        return out
    rng = np.random.default_rng(20261203)
    for i in range(n):
        folder = out / f"class{i % CLASSES:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(rng)).save(folder / f"{i:06d}.jpg", quality=90)
    done.write_text(str(n))
    return out


def make_hf(rows: int) -> Path:
    """The tabular workload as a saved ``datasets.Dataset``; kept between runs."""
    import datasets
    import generate_datasets
    import pyarrow.parquet as pq

    out = ROOT / f"hf-{rows}"
    if (out / "state.json").exists():
        return out
    ROOT.mkdir(parents=True, exist_ok=True)
    x, y = generate_datasets.make_rows(rows)
    source = ROOT / f"hf-{rows}.parquet"
    pq.write_table(generate_datasets.to_table(x, y), source)
    ds = datasets.Dataset.from_parquet(str(source), cache_dir=str(ROOT / "hf-cache"))
    ds.save_to_disk(str(out))
    source.unlink()
    return out


def image_dataset(root: Path):
    import torch
    import torchvision
    from torchvision.transforms import v2

    transform = v2.Compose(
        [
            v2.RandomResizedCrop(224, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    return torchvision.datasets.ImageFolder(str(root), transform=transform)


def epoch_images(system: str, workers: int, root: Path):
    """(loader, unpack) for the image workload."""
    import torch

    ds = image_dataset(root)
    if system == "torch":
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=IMAGE_BATCH,
            shuffle=True,
            num_workers=workers,
            persistent_workers=False,
            prefetch_factor=2 if workers else None,
        )
    else:
        from zenith.torch import DataLoader

        loader = DataLoader(ds, batch_size=IMAGE_BATCH, shuffle=True, num_workers=workers)
    return loader, lambda batch: (batch[0], batch[1])


def epoch_hf(system: str, workers: int, root: Path):
    """(loader, unpack) for the Hugging Face workload."""
    import datasets
    import torch

    ds = datasets.load_from_disk(str(root))
    if system == "zenith":
        from zenith.torch import DataLoader

        loader = DataLoader(
            ds,
            batch_size=HF_BATCH,
            shuffle=True,
            num_workers=workers,
            columns={"x": benchlib.FEATURES, "y": benchlib.LABEL},
        )
        return loader, lambda b: (b["x"], b["y"])
    ds = ds.with_format("torch")
    extra = {"num_workers": workers, "prefetch_factor": 4 if workers else None}
    if system == "torch-batched":
        sampler = torch.utils.data.BatchSampler(
            torch.utils.data.RandomSampler(ds), HF_BATCH, drop_last=False
        )
        loader = torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None, **extra)
    else:
        loader = torch.utils.data.DataLoader(ds, batch_size=HF_BATCH, shuffle=True, **extra)

    def unpack(batch):
        return torch.stack([batch[f] for f in benchlib.FEATURES], 1), batch[benchlib.LABEL]

    return loader, unpack


def one(workload: str, system: str, workers: int, size: int) -> dict:
    """One epoch of one system, measured in this process."""
    # Everything either system imports, before the memory baseline.
    import datasets  # noqa: F401
    import torch
    import torchvision  # noqa: F401
    import zenith.torch  # noqa: F401

    torch.set_num_threads(1)
    root = make_images(size) if workload == "imagefolder" else make_hf(size)
    with benchlib.MemorySampler(interval=0.02, pss_every=2) as memory:
        start = time.perf_counter()
        build = epoch_images if workload == "imagefolder" else epoch_hf
        loader, unpack = build(system, workers, root)
        first = None
        samples = 0
        label_sum = 0
        for batch in loader:
            x, y = unpack(batch)
            if first is None:
                first = time.perf_counter() - start
            samples += int(y.shape[0])
            label_sum += int(y.sum())
            float(x[:, 0].sum())  # touch the data
        seconds = time.perf_counter() - start
    return {
        "workload": workload,
        "system": system,
        "workers": workers,
        "samples": samples,
        "label_sum": label_sum,
        "seconds": seconds,
        "samples_per_s": samples / seconds,
        "first_batch_s": first,
        **memory.report(),
    }


CONFIGS = {
    "imagefolder": [
        ("torch", 0),
        ("torch", 1),
        ("torch", 2),
        ("zenith", 1),
        ("zenith", 2),
        ("zenith", 3),
    ],
    "hf": [
        ("torch-batched", 0),
        ("torch-batched", 1),
        ("torch-batched", 2),
        ("torch-plain", 2),
        ("zenith", 0),
    ],
}


MEASURES = ("samples_per_s", "first_batch_s", "pss_growth_mb", "pss_shm_growth_mb", "rss_growth_mb")


def markdown(report: dict) -> str:
    lines = [
        "# Drop-in sources: zenith.torch.DataLoader vs torch's DataLoader",
        "",
        f"{report['date']}, `{report['command']}`, {report['machine']['nproc']} CPUs.",
        "Median of the repeats per configuration; ratios against the best torch configuration.",
        "",
    ]
    for workload, rows in report["medians"].items():
        best = max(
            (r for r in rows if not r["system"].startswith("zenith")),
            key=lambda r: r["samples_per_s"],
        )
        lines += [
            f"## {workload} ({report['sizes'][workload]:,} samples)",
            "",
            "| system | workers | samples/s | x best torch | first batch (s) | PSS growth (MB) "
            "| PSS + /dev/shm growth (MB) | x best torch's | RSS growth (MB) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['system']} | {r['workers']} | {r['samples_per_s']:,.0f} | "
                f"{r['samples_per_s'] / best['samples_per_s']:.2f} | {r['first_batch_s']:.3f} | "
                f"{r['pss_growth_mb']:.0f} | {r['pss_shm_growth_mb']:.0f} | "
                f"{r['pss_shm_growth_mb'] / best['pss_shm_growth_mb']:.2f} | {r['rss_growth_mb']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", default="imagefolder,hf")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = {"imagefolder": args.images, "hf": args.rows}
    if args.one:
        workload, system, workers = args.one.split(":")
        print(json.dumps(one(workload, system, int(workers), sizes[workload])))
        return
    workloads = args.workloads.split(",")
    if "imagefolder" in workloads:
        make_images(args.images)
    if "hf" in workloads:
        make_hf(args.rows)
    runs: dict[str, list[dict]] = {w: [] for w in workloads}
    for repeat in range(args.repeats):
        for workload in workloads:
            for system, workers in CONFIGS[workload]:
                cmd = [sys.executable, __file__, "--one", f"{workload}:{system}:{workers}",
                       "--images", str(args.images), "--rows", str(args.rows)]
                result = benchlib.run_json(cmd, timeout=900)
                result.update(workload=workload, system=system, workers=workers, repeat=repeat)
                print(json.dumps(result), flush=True)
                runs[workload].append(result)
    medians: dict[str, list[dict]] = {}
    for workload, results in runs.items():
        # Every system delivers the same samples: the count and the label sum agree.
        delivered = {(r["samples"], r["label_sum"]) for r in results if "error" not in r}
        assert len(delivered) == 1, f"{workload}: systems disagree on the epoch: {delivered}"
        medians[workload] = []
        for system, workers in CONFIGS[workload]:
            mine = [r for r in results if r["system"] == system and r["workers"] == workers and "error" not in r]
            if not mine:
                continue
            medians[workload].append(
                {
                    "system": system,
                    "workers": workers,
                    "samples": mine[0]["samples"],
                    **{k: benchlib.median([r[k] for r in mine]) for k in MEASURES},
                }
            )
    report = {**benchlib.report_context(), "sizes": sizes, "medians": medians, "runs": runs}
    benchlib.write_report(benchlib.RESULTS_DIR / "dropin", report, markdown(report))


if __name__ == "__main__":
    main()
