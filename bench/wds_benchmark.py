"""WebDataset shards: Zenith against the ``webdataset`` library and torchvision decoding.

Two workloads on the same tar shards, generated once under ``--root``:

1. ``binary``: 4 KB binary samples with an int label (``.bin`` + ``.cls``), labels sorted
   across shards, batch 256, shuffle on. Zenith's ``DataLoader`` against the ``webdataset``
   library (``shardshuffle`` + ``.shuffle(1000)`` + ``.batched(256)`` in a ``WebLoader``) at
   ``num_workers`` 0 and 2. Both deliver an int64 label array and the raw payloads per batch
   (Zenith: an Arrow binary-view array over the mapped shard, no payload copy; webdataset: a
   list of ``bytes``).
   Shuffle quality = mean within-batch std of the label / global std (1.0 for a uniform shuffle).
2. ``jpeg``: 64x64 JPEGs (``.jpg`` + ``.cls``) decoded to ``uint8 [B, 64, 64, 3]`` tensors:
   ``zenith.torch.DataLoader(image_size=64)`` against a ``torch.utils.data.DataLoader`` over a
   map-style dataset that reads each member by its tar offset and decodes it with
   ``torchvision.io.decode_jpeg``, at the same worker count.

Each figure is the median of ``--repeats`` full epochs (time to the first batch included).

    python bench/wds_benchmark.py                      # defaults sized for < 1 minute
    python bench/wds_benchmark.py --samples 200000 --images 40000 --repeats 5
"""

from __future__ import annotations

import argparse
import io
import itertools
import mmap
import os
import platform
import statistics
import tarfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np


def write_shards(
    root: Path, prefix: str, samples: Iterable[dict[str, bytes]], per_shard: int
) -> list[str]:
    """Writes samples (key -> member bytes; ``__key__`` names them) into tar shards."""
    root.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    rows = iter(samples)
    while chunk := list(itertools.islice(rows, per_shard)):
        paths.append(str(root / f"{prefix}-{len(paths):05d}.tar"))
        with tarfile.open(paths[-1], "w") as tar:
            for s in chunk:
                for field, data in s.items():
                    if field == "__key__":
                        continue
                    info = tarfile.TarInfo(f"{s['__key__']}.{field}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return paths


def binary_dataset(root: Path, n: int, per_shard: int) -> list[str]:
    done = root / f"binary-{n}-{per_shard}.done"
    if done.exists():
        return sorted(str(p) for p in root.glob("bin-*.tar"))
    for p in root.glob("bin-*.tar"):
        p.unlink()
    rng = np.random.default_rng(0)
    blob = rng.integers(0, 256, size=4096 + n, dtype=np.uint8).tobytes()
    samples = (
        {"__key__": f"{i:08d}", "bin": blob[i : i + 4096], "cls": str(i).encode()} for i in range(n)
    )
    paths = write_shards(root, "bin", samples, per_shard)
    done.touch()
    return paths


def jpeg_dataset(root: Path, n: int, per_shard: int) -> list[str]:
    from PIL import Image

    done = root / f"jpeg-{n}-{per_shard}.done"
    if done.exists():
        return sorted(str(p) for p in root.glob("jpg-*.tar"))
    for p in root.glob("jpg-*.tar"):
        p.unlink()
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)

    def image(i: int) -> bytes:
        a, b, c = rng.uniform(3, 12, size=3)
        rgb = np.stack(
            [127 + 120 * np.sin(x / a + i), 127 + 120 * np.cos(y / b - i), (x * c + y) % 256], -1
        )
        noise = rng.normal(0, 8, size=rgb.shape)
        out = io.BytesIO()
        Image.fromarray(np.clip(rgb + noise, 0, 255).astype(np.uint8), "RGB").save(
            out, "JPEG", quality=90
        )
        return out.getvalue()

    samples = (
        {"__key__": f"{i:08d}", "jpg": image(i), "cls": str(i % 1000).encode()} for i in range(n)
    )
    paths = write_shards(root, "jpg", samples, per_shard)
    done.touch()
    return paths


def run_epoch(
    batches: Iterable[Any], labels_of: Callable[[Any], np.ndarray]
) -> tuple[float, float, int, list[np.ndarray]]:
    """Consumes one epoch: (seconds, seconds to the first batch, samples, label arrays)."""
    start = time.perf_counter()
    first = None
    count = 0
    labels = []
    for batch in batches:
        if first is None:
            first = time.perf_counter() - start
        lab = labels_of(batch)
        labels.append(lab)
        count += len(lab)
    return time.perf_counter() - start, first or 0.0, count, labels


def shuffle_quality(labels: list[np.ndarray]) -> float:
    full = [b for b in labels if len(b) == len(labels[0])]
    everything = np.concatenate(labels).astype(np.float64)
    return float(np.mean([np.std(b.astype(np.float64)) for b in full]) / np.std(everything))


def measure(
    name: str,
    make: Callable[[], Iterable[Any]],
    labels_of: Callable[[Any], np.ndarray],
    repeats: int,
    expected: int,
) -> dict[str, Any]:
    import psutil

    rates, firsts, quality = [], [], []
    for _ in range(repeats):
        seconds, first, count, labels = run_epoch(make(), labels_of)
        if count != expected:
            raise SystemExit(f"{name}: delivered {count} samples, expected {expected}")
        rates.append(count / seconds)
        firsts.append(first)
        quality.append(shuffle_quality(labels))
    rss = psutil.Process().memory_info().rss
    result = {
        "name": name,
        "samples_per_s": statistics.median(rates),
        "first_batch_s": statistics.median(firsts),
        "quality": statistics.median(quality),
        "rss_mb": rss / 2**20,
    }
    print(
        f"  {name:<44} {result['samples_per_s']:>11,.0f} samples/s   first batch "
        f"{result['first_batch_s']:.3f}s   shuffle quality {result['quality']:.3f}",
        flush=True,
    )
    return result


def bench_binary(
    paths: list[str], n: int, batch: int, repeats: int, workers: list[int]
) -> dict[str, dict]:
    import webdataset as wds
    import zenith

    print(
        f"binary: {n} samples of 4 KB + int label in {len(paths)} shards, batch {batch}, shuffle on"
    )
    out = {}
    epoch = iter(range(1_000_000))

    def zenith_epochs() -> Iterable[Any]:
        dl = zenith.DataLoader(
            paths, batch_size=batch, shuffle=True, seed=0, columns=["bin", "cls"]
        )
        dl.set_epoch(next(epoch))
        return dl

    out["zenith"] = measure("zenith.DataLoader", zenith_epochs, lambda b: b["cls"], repeats, n)
    for nw in workers:

        def wds_epoch(nw: int = nw) -> Iterable[Any]:
            ds = (
                wds.WebDataset(paths, shardshuffle=len(paths), seed=next(epoch), empty_check=False)
                .shuffle(1000)
                .decode()
                .to_tuple("bin", "cls")
                .batched(batch, partial=True)
            )
            return wds.WebLoader(ds, batch_size=None, num_workers=nw)

        out[f"webdataset_nw{nw}"] = measure(
            f"webdataset .shuffle(1000), num_workers={nw}",
            wds_epoch,
            lambda b: np.asarray(b[1]),
            repeats,
            n,
        )
    return out


class TarJpegDataset:
    """Map-style dataset over tar shards: members located once, read by offset, decoded with
    torchvision (what a tuned torch pipeline over the same files does)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.items: list[tuple[int, int, int, int]] = []  # shard, jpg offset, jpg size, label
        for s, path in enumerate(paths):
            with tarfile.open(path) as tar:
                members = {m.name: m for m in tar.getmembers()}
                for name, m in members.items():
                    if name.endswith(".jpg"):
                        label = int(tar.extractfile(members[name[:-4] + ".cls"]).read())  # type: ignore[union-attr]
                        self.items.append((s, m.offset_data, m.size, label))
        self.maps: dict[int, mmap.mmap] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch
        from torchvision.io import decode_jpeg

        s, off, size, label = self.items[i]
        if s not in self.maps:
            with open(self.paths[s], "rb") as f:
                self.maps[s] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        data = torch.frombuffer(bytearray(self.maps[s][off : off + size]), dtype=torch.uint8)
        return decode_jpeg(data).permute(1, 2, 0), label


def bench_jpeg(paths: list[str], n: int, batch: int, repeats: int, workers: int) -> dict[str, dict]:
    import torch
    import zenith.torch as zt

    print(
        f"jpeg: {n} 64x64 JPEGs in {len(paths)} shards -> uint8 [B, 64, 64, 3], batch {batch}, "
        f"{workers} workers each"
    )
    out = {}
    epoch = iter(range(1_000_000))

    def zenith_epoch() -> Iterable[Any]:
        dl = zt.DataLoader(
            paths,
            batch_size=batch,
            shuffle=True,
            num_workers=workers,
            image_size=64,
            columns=["jpg", "cls"],
        )
        dl.set_epoch(next(epoch))
        return dl

    def check_zenith(b: Any) -> np.ndarray:
        assert b["jpg"].dtype == torch.uint8 and tuple(b["jpg"].shape[1:]) == (64, 64, 3)
        return b["cls"].numpy()

    out["zenith"] = measure(
        "zenith.torch.DataLoader(image_size=64)", zenith_epoch, check_zenith, repeats, n
    )
    dataset = TarJpegDataset(paths)
    torch_workers = sorted({0, workers})
    for nw in torch_workers:

        def torch_epoch(nw: int = nw) -> Iterable[Any]:
            return torch.utils.data.DataLoader(
                dataset, batch_size=batch, shuffle=True, num_workers=nw, persistent_workers=False
            )

        def check_torch(b: Any) -> np.ndarray:
            assert b[0].dtype == torch.uint8 and tuple(b[0].shape[1:]) == (64, 64, 3)
            return b[1].numpy()

        out[f"torch_nw{nw}"] = measure(
            f"torch DataLoader + torchvision, num_workers={nw}",
            torch_epoch,
            check_torch,
            repeats,
            n,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "zenith-wds-bench"
    )
    parser.add_argument("--samples", type=int, default=50_000, help="binary samples")
    parser.add_argument("--images", type=int, default=10_000, help="64x64 JPEG samples")
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=2, help="worker count of the JPEG comparison"
    )
    parser.add_argument("--only", choices=["binary", "jpeg"], default=None)
    args = parser.parse_args()

    import zenith

    build = zenith.info(verbose=False)
    print(
        f"zenith {build['version']} ({build['profile']}), {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}"
    )
    results: dict[str, Any] = {}
    if args.only in (None, "binary"):
        paths = binary_dataset(args.root, args.samples, args.per_shard)
        results["binary"] = bench_binary(paths, args.samples, args.batch_size, args.repeats, [0, 2])
        best = max(
            (v for k, v in results["binary"].items() if k != "zenith"),
            key=lambda r: r["samples_per_s"],
        )
        z = results["binary"]["zenith"]
        print(
            f"  -> zenith / best webdataset ({best['name']}): {z['samples_per_s'] / best['samples_per_s']:.1f}x, "
            f"shuffle quality {z['quality']:.2f} vs {best['quality']:.2f}"
        )
    if args.only in (None, "jpeg"):
        paths = jpeg_dataset(args.root, args.images, args.per_shard)
        results["jpeg"] = bench_jpeg(
            paths, args.images, args.batch_size, args.repeats, args.workers
        )
        z = results["jpeg"]["zenith"]
        same = results["jpeg"][f"torch_nw{args.workers}"]
        print(
            f"  -> zenith / torch+torchvision at {args.workers} workers: "
            f"{z['samples_per_s'] / same['samples_per_s']:.1f}x"
        )


if __name__ == "__main__":
    main()
