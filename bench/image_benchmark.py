"""Image training pipelines side by side: decode, RandomResizedCrop(224), flip, normalize.

Two sets of generated photo-like JPEGs (1/f noise in correlated channels with edges, quality
85-95) laid out as ImageFolders: ImageNet-like (sides 300-600 px) and high-resolution (sides
1000-2000 px). Each loader runs one shuffled epoch at B=128 in a fresh process (so its peak
RSS is its own), with the training and the eval transforms:

- torch: ``torch.utils.data.DataLoader`` over ``torchvision.datasets.ImageFolder`` with PIL
  and ``transforms.v2`` (``RandomResizedCrop(antialias=True)``, ``RandomHorizontalFlip``,
  ``ToImage``, ``ToDtype(float32, scale=True)``, ``Normalize``), at its best ``num_workers``;
- torch-decode_jpeg: the same with ``torchvision.io.decode_jpeg`` on the file's bytes in the
  workers;
- dali-cpu: NVIDIA DALI's CPU pipeline (``fn.decoders.image_random_crop`` + ``fn.resize`` +
  ``fn.crop_mirror_normalize``, ``device="cpu"``, no GPU needed) when ``nvidia-dali-cuda120``
  is installed (it is not a project dependency: ``pip install nvidia-dali-cuda120``);
- zenith: ``zenith.torch.DataLoader(root, image=zenith.vision.train(224))``.

Run: ``python bench/image_benchmark.py --images 2000 --hires 300`` (writes
``bench/results/images.md``). Figures are images/s (median of ``--repeats``), the first
batch's latency, and the growth of the resident memory of the process and its workers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "images"
CLASSES = 10
BATCH = 128


def photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """1/f noise in three correlated channels, with a few edges: natural-image statistics."""
    fy = np.fft.fftfreq(height)[:, None].astype(np.float32)
    fx = np.fft.rfftfreq(width)[None, :].astype(np.float32)
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    planes = [
        np.fft.irfft2(np.exp(1j * rng.uniform(0, 2 * np.pi, f.shape)) / f, s=(height, width))
        for _ in range(3)
    ]
    img = np.stack(planes, -1) @ np.array([[1, 0.6, 0.4], [0.6, 1, 0.6], [0.4, 0.6, 1]])
    img = (img - img.mean()) / img.std() * 45 + 120
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(3):
        a, b, c = rng.normal(size=3)
        img[(a * xx + b * yy + c * width * 0.5) > 0] += rng.normal(0, 25, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_set(name: str, count: int, lo: int, hi: int) -> Path:
    """An ImageFolder of ``count`` JPEGs with sides in ``[lo, hi]``, made once."""
    from PIL import Image

    root = DATA / f"{name}-{count}"
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(count + lo)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(lo, hi + 1, 2))
        d = root / f"class{i % CLASSES:02d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(rng, h, w)).save(
            d / f"{i:06d}.jpg", quality=int(rng.integers(85, 96))
        )
    done.write_text("")
    return root


def torch_loader(root: Path, recipe: str, workers: int, decode_jpeg: bool) -> Any:
    import torch
    import torchvision
    from torchvision.transforms import v2

    norm = [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ]
    if recipe == "train":
        geo = [v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip()]
    else:
        geo = [v2.Resize(256, antialias=True), v2.CenterCrop(224)]
    if decode_jpeg:
        from torchvision.io import ImageReadMode
        from torchvision.io import decode_jpeg as decode

        tf = v2.Compose(geo + norm[1:])

        def load(path: str) -> Any:
            data = torchvision.io.read_file(path)
            return decode(data, mode=ImageReadMode.RGB)

        ds = torchvision.datasets.ImageFolder(str(root), transform=tf, loader=load)
    else:
        ds = torchvision.datasets.ImageFolder(str(root), transform=v2.Compose(geo + norm))
    return torch.utils.data.DataLoader(
        ds,
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )


def dali_loader(root: Path, recipe: str, workers: int) -> Any:
    """NVIDIA DALI's CPU pipeline (``device="cpu"`` operators, no GPU): its batches as torch
    tensors, as a training loop takes them."""
    import torch
    from nvidia.dali import fn, pipeline_def, types

    mean = [0.485 * 255, 0.456 * 255, 0.406 * 255]
    std = [0.229 * 255, 0.224 * 255, 0.225 * 255]

    @pipeline_def(batch_size=BATCH, num_threads=workers, device_id=None, seed=0)  # type: ignore[misc]
    def pipe() -> Any:
        jpegs, labels = fn.readers.file(file_root=str(root), random_shuffle=True, name="r")
        if recipe == "train":
            images = fn.decoders.image_random_crop(jpegs, device="cpu", output_type=types.RGB)
            images = fn.resize(images, resize_x=224, resize_y=224)
            mirror = fn.random.coin_flip()
            crop = None
        else:
            images = fn.decoders.image(jpegs, device="cpu", output_type=types.RGB)
            images = fn.resize(images, resize_shorter=256)
            mirror = 0
            crop = (224, 224)
        images = fn.crop_mirror_normalize(
            images, dtype=types.FLOAT, output_layout="CHW", crop=crop, mean=mean, std=std,
            mirror=mirror,
        )
        return images, labels

    p = pipe()
    p.build()
    total = p.epoch_size("r")

    def batches() -> Any:
        n = 0
        while n < total:
            images, labels = p.run()
            take = min(BATCH, total - n)
            yield (
                torch.from_numpy(images.as_array()[:take]),
                torch.from_numpy(labels.as_array()[:take].reshape(-1)),
            )
            n += take

    return batches()


def zenith_loader(root: Path, recipe: str, workers: int) -> Any:
    import zenith
    import zenith.torch

    image = zenith.vision.train(224) if recipe == "train" else zenith.vision.eval(224)
    return zenith.torch.DataLoader(
        str(root), batch_size=BATCH, shuffle=True, num_workers=workers, image=image
    )


class TreeMemory:
    """Samples the resident memory of this process and its children (the workers) every
    20 ms; ``peak`` is the largest sum seen, ``base`` the sum when sampling started."""

    def __init__(self) -> None:
        import threading

        import psutil

        self._me = psutil.Process()
        self.base = self._now()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _now(self) -> int:
        import psutil

        total = 0
        for p in [self._me, *self._me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._now())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One epoch of one loader in this process (imports done before the clock starts)."""
    import torch  # noqa: F401
    import torchvision  # noqa: F401
    import zenith.torch  # noqa: F401

    root = Path(spec["root"])
    memory = TreeMemory()
    start = time.perf_counter()
    if spec["loader"] == "zenith":
        dl = zenith_loader(root, spec["recipe"], spec["workers"])
    elif spec["loader"] == "dali-cpu":
        dl = dali_loader(root, spec["recipe"], spec["workers"])
    else:
        dl = torch_loader(
            root, spec["recipe"], spec["workers"], spec["loader"] == "torch-decode_jpeg"
        )
    n = 0
    first = None
    checksum = 0.0
    for batch in dl:
        images = batch["image"] if isinstance(batch, dict) else batch[0]
        if first is None:
            first = time.perf_counter() - start
        n += images.shape[0]
        checksum += float(images[:, 0, 0, 0].sum())
    elapsed = time.perf_counter() - start
    memory.stop()
    return {
        "images": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "first_batch_s": first,
        "rss_growth_mb": (memory.peak - memory.base) / 2**20,
        "checksum": checksum,
    }


def decoder_ceiling(root: Path, recipe: str, threads: int) -> tuple[float, float]:
    """Images/s of the decoder alone and of the whole transform over the set's files."""
    import zenith

    files = sorted(root.glob("*/*.jpg"))
    images = [f.read_bytes() for f in files]
    image = zenith.vision.train(224) if recipe == "train" else zenith.vision.eval(224)
    decode_s, transform_s = zenith._zenith.vision_decode_bench(images, image, 0, threads)
    return len(images) / decode_s, len(images) / transform_s


def spawn(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2000, help="ImageNet-like images")
    p.add_argument("--hires", type=int, default=300, help="high-resolution images")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--workers", default="1,2", help="num_workers tried for the torch peers")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return
    sets = {
        "imagenet-like (300-600 px)": make_set("imagenet", args.images, 300, 600),
        "high-res (1000-2000 px)": make_set("hires", args.hires, 1000, 2000),
    }
    cores = len(os.sched_getaffinity(0))
    lines = [
        "# Image pipelines: decode + RandomResizedCrop(224) + flip + normalize",
        "",
        f"`python bench/image_benchmark.py --images {args.images} --hires {args.hires} "
        f"--repeats {args.repeats}`; {cores} cores; B={BATCH}, shuffle on, one epoch per run in "
        "a fresh process, median of the repeats; the clock starts after the imports, when the "
        "loader is made. RSS growth: the peak of the process and its workers together (sampled "
        "every 20 ms) less what the process held before making the loader.",
        "",
        "| set | recipe | loader | best num_workers | images/s | images/s per core | "
        "first batch (s) | RSS growth (MB) | vs best peer |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    workers = [int(w) for w in args.workers.split(",")]
    ceilings: dict[tuple[str, str], tuple[float, float, float]] = {}
    loaders = ["torch", "torch-decode_jpeg", "zenith"]
    try:
        import nvidia.dali  # noqa: F401

        loaders.insert(2, "dali-cpu")
    except ImportError:
        print("nvidia-dali is not installed: DALI's CPU pipeline is left out", flush=True)
    for set_name, root in sets.items():
        for recipe in ("train", "eval"):
            rows = []
            for loader in loaders:
                best: dict[str, Any] | None = None
                for w in workers:
                    runs = [
                        spawn({"root": str(root), "recipe": recipe, "loader": loader,
                               "workers": w})
                        for _ in range(args.repeats)
                    ]
                    rate = statistics.median(r["rate"] for r in runs)
                    r = runs[0] | {"rate": rate, "workers": w}
                    print(set_name, recipe, loader, w, round(rate, 1), flush=True)
                    if best is None or rate > best["rate"]:
                        best = r
                assert best is not None
                rows.append((loader, best))
            torch_best = max(r["rate"] for name, r in rows if name != "zenith")  # best peer
            ceilings[(set_name, recipe)] = (
                *decoder_ceiling(root, recipe, cores),
                dict(rows)["zenith"]["rate"],
            )
            for loader, r in rows:
                rss = r["rss_growth_mb"]
                lines.append(
                    f"| {set_name} | {recipe} | {loader} | {r['workers']} | {r['rate']:.0f} | "
                    f"{r['rate'] / cores:.0f} | {r['first_batch_s']:.2f} | {rss:.0f} | "
                    f"{r['rate'] / torch_best:.2f}x |"
                )
    lines += [
        "",
        "The limit: the decoder alone on the same images (the same crops at the same DCT scales, "
        f"stopped at the same rows) on {cores} threads, in this process, against the whole "
        "transform on the same threads and the loader's epoch rate above.",
        "",
        "| set | recipe | decoder alone (images/s) | transform alone (images/s) | "
        "loader (images/s) | loader / decoder |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (set_name, recipe), (decode_rate, transform_rate, loader_rate) in ceilings.items():
        lines.append(
            f"| {set_name} | {recipe} | {decode_rate:.0f} | {transform_rate:.0f} | "
            f"{loader_rate:.0f} | {loader_rate / decode_rate:.0%} |"
        )
    out = HERE / "results" / "images.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
