"""Image transforms in Rust (``zenith.vision``): the crop, resize, flip and normalization
compared with torchvision's functional transforms on the same decoded pixels; ImageFolder
labels compared with ``torchvision.datasets.ImageFolder``; seeded reproducibility for any thread
count, resume mid-epoch, the image formats real datasets hold, corrupt images, and image columns
of Parquet files and WebDataset shards."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torchvision
import torchvision.transforms.v2.functional as F
import zenith
import zenith.torch
from PIL import Image

MEAN = list(zenith.vision.IMAGENET_MEAN)
STD = list(zenith.vision.IMAGENET_STD)
# One level of 255, in normalized units per channel.
LEVEL = torch.tensor(STD).view(3, 1, 1) * 255


def photo(seed: int, height: int, width: int) -> np.ndarray:
    """An RGB image with natural-image statistics: 1/f noise in correlated channels, with
    a few straight edges."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
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


def encode(img: Image.Image, fmt: str = "JPEG", **kw: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def jpeg(seed: int, height: int, width: int, **kw: Any) -> bytes:
    return encode(Image.fromarray(photo(seed, height, width)), quality=90, **kw)


def reference(data: bytes, top: int, left: int, h: int, w: int, size: int = 224) -> torch.Tensor:
    """torchvision on Pillow's decode of the same bytes: crop, antialiased bilinear resize,
    float in [0, 1], normalize."""
    x = F.pil_to_tensor(Image.open(io.BytesIO(data)).convert("RGB"))
    x = F.resized_crop(x, top, left, h, w, [size, size], antialias=True)
    return F.normalize(x.float() / 255, MEAN, STD)


def mae_levels(ours: np.ndarray, ref: torch.Tensor) -> np.ndarray:
    """Mean absolute error per channel, in levels of 255."""
    d = (torch.from_numpy(ours) - ref).abs() * LEVEL
    return d.mean(dim=(1, 2)).numpy()


@pytest.mark.parametrize(
    ("height", "width", "box"),
    [
        (375, 500, (10, 20, 200, 180)),
        (375, 500, (0, 0, 375, 500)),
        (512, 341, (100, 3, 90, 300)),
        (300, 300, (150, 150, 150, 150)),
    ],
)
def test_resized_crop_matches_torchvision(
    height: int, width: int, box: tuple[int, int, int, int]
) -> None:
    data = jpeg(height + width, height, width)
    t = zenith.vision.train(224, dct_scaling=False)
    ours = zenith.vision.resized_crop(data, t, *box)
    assert ours.shape == (3, 224, 224) and ours.dtype == np.float32
    ref = reference(data, *box)
    assert (mae_levels(ours, ref) < 0.5).all(), mae_levels(ours, ref)
    # Flipped: torchvision's horizontal flip of the same crop.
    flipped = zenith.vision.resized_crop(data, t, *box, flip=True)
    assert (mae_levels(flipped, F.horizontal_flip(ref)) < 0.5).all()
    # uint8 NHWC: the resized pixels themselves, within one level everywhere but a few.
    u8 = zenith.vision.train(224, dtype="uint8", layout="NHWC", dct_scaling=False)
    pixels = zenith.vision.resized_crop(data, u8, *box)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    x = F.pil_to_tensor(Image.open(io.BytesIO(data)).convert("RGB"))
    want = F.resized_crop(x, *box, [224, 224], antialias=True).permute(1, 2, 0).numpy()
    diff = np.abs(pixels.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.3


def test_eval_matches_resize_then_center_crop() -> None:
    for height, width in [(375, 500), (600, 333), (256, 256)]:
        data = jpeg(7 * height, height, width)
        t = zenith.vision.eval(224, dct_scaling=False)
        assert t.resize == 256
        ours = zenith.vision.resized_crop(data, t, 0, 0, height, width)
        x = F.pil_to_tensor(Image.open(io.BytesIO(data)).convert("RGB"))
        x = F.center_crop(F.resize(x, [256], antialias=True), [224, 224])
        ref = F.normalize(x.float() / 255, MEAN, STD)
        # The loader's eval crop is drawn by the engine: compare the loader too.
        assert ours.shape == (3, 224, 224)
        loader_out = _eval_through_loader(data, t)
        assert (mae_levels(loader_out, ref) < 0.5).all(), mae_levels(loader_out, ref)


def _eval_through_loader(data: bytes, t: zenith.vision.ImageTransform) -> np.ndarray:
    table = pa.table({"image": pa.array([data], pa.binary()), "label": [0]})
    batch = next(iter(zenith.DataLoader(table, batch_size=1, shuffle=False, image=t)))
    out: np.ndarray = batch["image"][0]
    return out


def test_reduced_scale_decode_stays_close_to_full_decode() -> None:
    """A crop twice the output's size at 1/2 scale is decoded at 1/2 in the DCT domain; the
    result stays within the documented 3 levels of the full decode (a box-like reduction
    against an antialiased bilinear one) and within 0.5 with dct_scaling=False."""
    data = jpeg(3, 1200, 1100)
    fast = zenith.vision.train(224)
    exact = zenith.vision.train(224, dct_scaling=False)
    for box in [(0, 0, 1000, 1000), (100, 50, 1100, 950)]:
        ref = reference(data, *box)
        scaled = zenith.vision.resized_crop(data, fast, *box)
        full = zenith.vision.resized_crop(data, exact, *box)
        assert (mae_levels(full, ref) < 0.5).all()
        err = mae_levels(scaled, ref)
        assert (err < 3.0).all(), err
        assert not np.array_equal(scaled, full)  # the scaled path was taken


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder of 3 classes (one with a nested directory), JPEG, PNG and WebP files,
    and a file torchvision skips."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    n = 0
    for cls, count in [("zebra", 7), ("ant", 5), ("Bee", 6)]:
        for i in range(count):
            h, w = (int(v) for v in rng.integers(80, 200, 2))
            img = Image.fromarray(photo(n, h, w))
            sub = root / cls / ("deep" if i == 3 else "")
            sub.mkdir(parents=True, exist_ok=True)
            if i % 3 == 1:
                img.save(sub / f"im{i:02d}.png")
            elif i % 3 == 2:
                img.save(sub / f"im{i:02d}.webp", quality=90)
            else:
                img.save(sub / f"im{i:02d}.JPG", quality=90)
            n += 1
        (root / cls / "README.txt").write_text("not an image")
    return root


def test_imagefolder_labels_and_order_match_torchvision(folder: Path) -> None:
    tv = torchvision.datasets.ImageFolder(str(folder))
    dl = zenith.DataLoader(
        folder, batch_size=4, shuffle=False, image=zenith.vision.eval(32, resize=40)
    )
    assert dl.classes == tv.classes == ["Bee", "ant", "zebra"]
    assert dl.class_to_idx == tv.class_to_idx
    labels = [int(v) for b in dl for v in b["label"]]
    assert labels == [t for _, t in tv.samples]
    # The raw bytes, without a transform, are the files' own, in torchvision's order.
    table = zenith.load(folder)
    assert table.column("image").to_pylist() == [Path(p).read_bytes() for p, _ in tv.samples]
    tl = zenith.torch.DataLoader(str(folder), batch_size=18, image=zenith.vision.train(32))
    assert tl.classes == tv.classes and tl.class_to_idx == tv.class_to_idx
    batch = next(iter(tl))
    assert batch["image"].shape == (18, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert sorted(batch["label"].tolist()) == sorted(t for _, t in tv.samples)


def epoch(dl: Any) -> list[tuple[int, bytes]]:
    return [
        (int(label), img.tobytes()) for b in dl for label, img in zip(b["label"], b["image"], strict=True)
    ]


def test_crops_are_reproducible_for_any_thread_count_and_resume(folder: Path) -> None:
    def loader(workers: int) -> zenith.DataLoader:
        return zenith.DataLoader(
            folder, batch_size=4, seed=3, num_workers=workers, image=zenith.vision.train(24)
        )

    one, two = loader(1), loader(2)
    # Each image is a unit, so the unit permutation shuffles exactly: windows of two batches.
    assert one._inner.window_rows == 8
    first = epoch(one)
    assert first == epoch(two)
    assert len(first) == 18
    # The next epoch draws other crops (and another order).
    assert epoch(one) != first
    # Stop after two batches, resume in a new loader with another thread count.
    dl = loader(2)
    it = iter(dl)
    head = [next(it), next(it)]
    state = dl.state_dict()
    it.close()
    resumed = loader(1)
    resumed.load_state_dict(state)
    assert epoch(head) + epoch(resumed) == first


def test_image_kinds_real_datasets_hold(tmp_path: Path) -> None:
    """Grayscale, CMYK, progressive and EXIF-rotated JPEGs, PNG with alpha, 16-bit and
    palette PNG, BMP: each decoded as torchvision's loader (Pillow, ``convert("RGB")``) decodes
    it, but for 16-bit PNG, whose values Pillow clips to 255 where zenith keeps the high byte
    (compared with the 8-bit image it was made from)."""
    rgb = Image.fromarray(photo(5, 120, 160))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: torchvision's loader does not apply the orientation
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    sixteen = Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257).astype(np.uint16))
    kinds = {
        "gray.jpg": encode(rgb.convert("L"), quality=92),
        "cmyk.jpg": encode(rgb.convert("CMYK"), quality=92),
        "progressive.jpg": encode(rgb, quality=92, progressive=True),
        "exif.jpg": encode(rgb, quality=92, exif=exif.tobytes()),
        "alpha.png": encode(rgba, "PNG"),
        "sixteen.png": encode(sixteen, "PNG"),
        "palette.png": encode(rgb.convert("P"), "PNG"),
        "rgb.bmp": encode(rgb, "BMP"),
    }
    t = zenith.vision.train(64, dct_scaling=False)
    for name, data in kinds.items():
        like = encode(rgb.convert("L"), "PNG") if name == "sixteen.png" else data
        ref = reference(like, 10, 20, 100, 120, size=64)
        ours = zenith.vision.resized_crop(data, t, 10, 20, 100, 120)
        err = mae_levels(ours, ref)
        assert (err < 1.0).all(), (name, err)


def test_corrupt_images_raise_naming_the_file_or_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    good = jpeg(1, 64, 64)
    for i in range(6):
        (root / "c").mkdir(parents=True, exist_ok=True)
        (root / "c" / f"{i}.jpg").write_bytes(good)
    (root / "c" / "3.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (root / "c" / "4.jpg").write_bytes(b"\xff\xd8" + b"not a jpeg" * 20)
    t = zenith.vision.train(32)
    with pytest.raises(zenith.FormatError, match=r"c/3\.jpg: image stage, sample 3: .*truncated"):
        list(zenith.DataLoader(root, batch_size=2, shuffle=False, image=t))
    dl = zenith.DataLoader(root, batch_size=2, shuffle=False, image=t, on_error="skip")
    assert sum(len(b["label"]) for b in dl) == 4
    stats = dl.stats()
    assert stats["skipped_units"] == 2 and stats["skipped_rows"] == 2
    assert any("4.jpg" in s for s in stats["skipped"])
    with pytest.raises(zenith.FormatError, match="cannot decode JPEG"):
        zenith.vision.resized_crop(b"\xff\xd8\xff\x00garbage", t, 0, 0, 1, 1)


def test_parquet_image_columns_binary_and_datasets_struct(tmp_path: Path) -> None:
    images = [jpeg(i, 90 + i, 120) for i in range(10)]
    binary = tmp_path / "bin.parquet"
    pq.write_table(pa.table({"img": pa.array(images, pa.binary()), "y": range(10)}), binary)
    struct = tmp_path / "hf.parquet"
    hf = pa.array(
        [{"bytes": b, "path": f"{i}.jpg"} for i, b in enumerate(images)],
        pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    pq.write_table(pa.table({"image": hf, "y": range(10)}), struct)
    t = zenith.vision.eval(48, resize=56)
    memory = pa.table({"image": pa.array(images, pa.binary())})
    want = np.concatenate(
        [b["image"] for b in zenith.DataLoader(memory, batch_size=5, shuffle=False, image=t)]
    )
    for path in (binary, struct):
        name = "img" if path == binary else "image"
        batches = list(zenith.DataLoader(path, batch_size=5, shuffle=False, image=t))
        got = np.concatenate([b[name] for b in batches])
        assert got.shape == (10, 3, 48, 48)
        np.testing.assert_array_equal(got, want)
        assert [int(v) for b in batches for v in b["y"]] == list(range(10))


def test_webdataset_shards_with_a_transform(tmp_path: Path) -> None:
    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w") as tar:
        for i in range(12):
            for ext, data in [("jpg", jpeg(i, 100, 140)), ("cls", str(i % 3).encode())]:
                info = tarfile.TarInfo(f"k{i:03d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    dl = zenith.torch.DataLoader(str(tmp_path), batch_size=6, image=zenith.vision.train(40))
    batches = list(dl)
    assert [b["jpg"].shape for b in batches] == [(6, 3, 40, 40)] * 2
    assert sorted(int(v) for b in batches for v in b["cls"]) == sorted(i % 3 for i in range(12))


def test_bad_transforms_are_refused_by_name(folder: Path) -> None:
    with pytest.raises(zenith.ValidationError, match="scale must be"):
        zenith.vision.train(224, scale=(0.9, 0.1))
    with pytest.raises(zenith.ValidationError, match="dtype must be"):
        zenith.vision.train(224, dtype="float64")
    with pytest.raises(zenith.ValidationError, match="layout must be"):
        zenith.vision.eval(224, layout="CHW")
    with pytest.raises(zenith.ValidationError, match="resize \\(100\\) must be at least"):
        zenith.vision.eval(224, resize=100)
    with pytest.raises(zenith.ValidationError, match="`size`"):
        zenith.vision.train(0)
    with pytest.raises(zenith.ValidationError, match="`image`"):
        zenith.DataLoader(folder, image="train")  # type: ignore[arg-type]
    with pytest.raises(zenith.ValidationError, match="no column \"pixels\""):
        zenith.DataLoader(folder, image=zenith.vision.train(32, column="pixels"))
    with pytest.raises(zenith.ValidationError, match="not binary image bytes"):
        zenith.DataLoader(folder, image=zenith.vision.train(32, column="label"))
