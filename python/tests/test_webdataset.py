"""WebDataset tar shards: real shards written with Python's ``tarfile`` and with the
``webdataset`` library, read by ``zenith.load`` / ``zenith.DataLoader`` / ``zenith.torch``;
exact sample multisets, order determinism, rank split, resume, corrupt shards, gzip, brace
patterns, the writer, and image decoding compared with Pillow."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import webdataset as wds
import zenith
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

N_SHARDS = 4
PER_SHARD = 250
N = N_SHARDS * PER_SHARD


def payload(i: int, size: int = 16) -> bytes:
    """Bytes that identify sample ``i``."""
    return (i.to_bytes(4, "little") * (size // 4 + 1))[:size]


def sample(i: int, size: int = 16) -> dict[str, Any]:
    return {
        "__key__": f"s{i:06d}",
        "bin": payload(i, size),
        "cls": i,
        "json": {"id": i, "name": f"n{i}"},
        "txt": f"caption {i}",
    }


def member_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict):
        return json.dumps(value).encode()
    return str(value).encode()


def write_tar(path: Path, samples: Iterable[dict[str, Any]], mode: str = "w") -> Path:
    """A shard written member by member with ``tarfile`` (``mode`` ``"w:gz"`` compresses)."""
    with tarfile.open(path, mode) as tar:
        for s in samples:
            for field, value in s.items():
                if field == "__key__":
                    continue
                data = member_bytes(value)
                info = tarfile.TarInfo(f"{s['__key__']}.{field}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``N_SHARDS`` tarfile-made shards of ``PER_SHARD`` samples, ids in order."""
    root = tmp_path_factory.mktemp("wds")
    for k in range(N_SHARDS):
        ids = range(k * PER_SHARD, (k + 1) * PER_SHARD)
        write_tar(root / f"shard-{k:04d}.tar", (sample(i) for i in ids))
    return root


def ids_of(dl: Any, column: str = "cls") -> list[int]:
    return [int(i) for b in dl for i in np.asarray(b[column])]


def test_load_gives_typed_columns(shards: Path) -> None:
    table = zenith.load(shards)
    assert table.schema.names == ["__key__", "bin", "cls", "json", "txt"]
    assert table.schema.field("cls").type == pa.int64()
    assert table.schema.field("bin").type == pa.binary_view()
    assert table.schema.field("txt").type == pa.string()
    assert table.num_rows == N
    assert table["cls"].to_pylist() == list(range(N))
    assert table["__key__"].to_pylist() == [f"s{i:06d}" for i in range(N)]
    assert table["bin"].to_pylist() == [payload(i) for i in range(N)]
    assert [json.loads(t) for t in table["json"].to_pylist()[:2]] == [
        {"id": 0, "name": "n0"},
        {"id": 1, "name": "n1"},
    ]
    assert table["txt"][7].as_py() == "caption 7"
    assert zenith.load(shards, columns=["txt", "cls"]).schema.names == ["txt", "cls"]
    assert zenith.load(shards, fields=["cls"]).schema.names == ["__key__", "cls"]
    info = zenith.info(shards, verbose=False)
    assert info["format"] == "webdataset"
    assert info["rows"] == N and len(info["files"]) == N_SHARDS


def test_shards_from_the_webdataset_library(tmp_path: Path) -> None:
    pattern = str(tmp_path / "lib-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=300, verbose=0) as sink:
        for i in range(700):
            sink.write(
                {
                    "__key__": f"k{i:05d}",
                    "cls": i % 13,
                    "txt": f"t{i}",
                    "npy": np.full((2, 3), i, dtype=np.float32),
                }
            )
    paths = sorted(str(p) for p in tmp_path.glob("lib-*.tar"))
    assert len(paths) == 3
    table = zenith.load(paths)
    assert table["__key__"].to_pylist() == [f"k{i:05d}" for i in range(700)]
    assert table["cls"].to_pylist() == [i % 13 for i in range(700)]
    assert table["txt"].to_pylist() == [f"t{i}" for i in range(700)]
    batch = next(iter(zenith.DataLoader(paths, batch_size=700, shuffle=False)))
    assert batch["npy"].shape == (700, 2, 3) and batch["npy"].dtype == np.float32
    assert np.array_equal(batch["npy"][:, 1, 2], np.arange(700, dtype=np.float32))
    # And the other way round: the library reads what zenith reads, sample for sample.
    lib = [
        (s["__key__"], int(s["cls"])) for s in wds.WebDataset(paths, shardshuffle=False).decode()
    ]
    assert lib == list(zip(table["__key__"].to_pylist(), table["cls"].to_pylist(), strict=True))


def test_brace_patterns_lists_and_globs(shards: Path) -> None:
    braced = zenith.load(f"{shards}/shard-{{0000..0003}}.tar")
    assert braced["cls"].to_pylist() == list(range(N))
    two = zenith.load(f"{shards}/shard-{{0001,0003}}.tar")
    assert two["cls"].to_pylist() == list(range(250, 500)) + list(range(750, 1000))
    listed = zenith.load([shards / "shard-0002.tar", shards / "shard-0000.tar"])
    assert listed["cls"].to_pylist() == list(range(500, 750)) + list(range(250))
    assert zenith.load(f"{shards}/*.tar")["cls"].to_pylist() == list(range(N))
    with pytest.raises(zenith.SourceError, match=r"shard-0004\.tar"):
        zenith.load(f"{shards}/shard-{{0000..0004}}.tar")


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz"])
def test_gzip_shards(tmp_path: Path, shards: Path, suffix: str) -> None:
    for k in range(N_SHARDS):
        ids = range(k * PER_SHARD, (k + 1) * PER_SHARD)
        write_tar(tmp_path / f"g-{k}{suffix}", (sample(i) for i in ids), mode="w:gz")
    assert zenith.load(tmp_path).equals(zenith.load(shards))
    dl = zenith.DataLoader(tmp_path, batch_size=64, shuffle=True, seed=1)
    assert sorted(ids_of(dl)) == list(range(N))


def test_epochs_are_exact_multisets_and_reshuffled(shards: Path) -> None:
    dl = zenith.DataLoader(shards, batch_size=64, shuffle=True, seed=5, columns=["cls", "__key__"])
    first = ids_of(dl)
    second = ids_of(dl)
    assert sorted(first) == sorted(second) == list(range(N))
    assert first != second and first != list(range(N))
    batch = next(iter(dl))
    assert [int(k[1:]) for k in batch["__key__"].to_pylist()] == [int(c) for c in batch["cls"]]
    ordered = zenith.DataLoader(shards, batch_size=64, shuffle=False)
    assert ids_of(ordered) == list(range(N))


def test_same_order_for_any_thread_count(shards: Path) -> None:
    orders = [
        ids_of(zenith.DataLoader(shards, batch_size=32, seed=9, num_workers=w, columns=["cls"]))
        for w in (1, 2, 4)
    ]
    assert orders[0] == orders[1] == orders[2]


def test_rank_split_is_a_partition_with_equal_counts(shards: Path) -> None:
    world = 3
    parts = []
    for rank in range(world):
        dl = zenith.DataLoader(shards, batch_size=50, rank=rank, world_size=world, seed=2)
        parts.append(ids_of(dl))
        assert len(dl) == -(-(N // world) // 50)
    assert all(len(p) == N // world for p in parts)
    union = [i for p in parts for i in p]
    assert len(set(union)) == len(union) == N - N % world


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stop=st.integers(0, 12),  # below the 13 batches a rank gets at world size 2: mid-epoch
    workers_before=st.sampled_from([1, 2, 4]),
    workers_after=st.sampled_from([1, 2, 4]),
    world_before=st.sampled_from([1, 2]),
    world_after=st.sampled_from([1, 3]),
    shuffle=st.booleans(),
)
def test_resume_mid_epoch_loses_and_repeats_nothing(
    shards: Path,
    stop: int,
    workers_before: int,
    workers_after: int,
    world_before: int,
    world_after: int,
    shuffle: bool,
) -> None:
    common: dict[str, Any] = {
        "batch_size": 40,
        "shuffle": shuffle,
        "seed": 7,
        "shuffle_window": 300,
    }
    expected: list[int] = []
    for r in range(world_before):
        expected += ids_of(zenith.DataLoader(shards, rank=r, world_size=world_before, **common))
    seen: list[int] = []
    state = None
    for r in range(world_before):
        dl = zenith.DataLoader(
            shards, rank=r, world_size=world_before, num_workers=workers_before, **common
        )
        it = iter(dl)
        for _ in range(stop):
            batch = next(it, None)
            if batch is None:
                break
            seen += [int(i) for i in batch["cls"]]
        it.close()
        state = dl.state_dict()
    assert state is not None
    for r in range(world_after):
        dl = zenith.DataLoader(
            shards, rank=r, world_size=world_after, num_workers=workers_after, **common
        )
        dl.load_state_dict(state)
        seen += ids_of(dl)
    if stop == 0:
        # Nothing was consumed: the epoch starts afresh under the new world size.
        expected = []
        for r in range(world_after):
            expected += ids_of(zenith.DataLoader(shards, rank=r, world_size=world_after, **common))
    assert sorted(seen) == sorted(expected)


# --- corrupt shards -------------------------------------------------------------------------

BIG = 8192  # payload bytes per sample: 128 samples per 1 MiB unit


def corrupt_dir(tmp_path: Path) -> Path:
    """Two good shards of 300 samples with 8 KiB payloads (units of 128, 128, 44 samples)."""
    d = tmp_path / "shards"
    d.mkdir()
    for k in range(2):
        write_tar(
            d / f"c-{k}.tar",
            (
                {"__key__": f"s{i:06d}", "bin": payload(i, BIG), "cls": i}
                for i in range(k * 300, (k + 1) * 300)
            ),
        )
    return d


def skip_run(d: Path, **kwargs: Any) -> tuple[list[int], dict[str, Any]]:
    dl = zenith.DataLoader(d, batch_size=64, on_error="skip", columns=["cls"], **kwargs)
    return ids_of(dl), dl.stats()


def test_truncated_shard_raises_or_skips_its_last_unit(tmp_path: Path) -> None:
    d = corrupt_dir(tmp_path)
    shard = d / "c-1.tar"
    with tarfile.open(shard) as tar:
        last = next(m for m in tar.getmembers() if m.name == "s000599.bin")
    # Cut inside the data of the last sample's payload.
    shard.write_bytes(shard.read_bytes()[: last.offset_data + 4000])
    with pytest.raises(zenith.FormatError, match=r"c-1\.tar: byte \d+: truncated tar member"):
        zenith.load(d)
    with pytest.raises(zenith.FormatError, match=r"c-1\.tar"):
        list(zenith.DataLoader(d, batch_size=64))
    ids, stats = skip_run(d)
    assert stats["skipped_units"] == 1 and stats["skipped_rows"] == 44
    assert sorted(ids) == list(range(556))
    assert "c-1.tar" in stats["skipped"][0] and "truncated" in stats["skipped"][0]


def test_missing_field_raises_or_skips(tmp_path: Path) -> None:
    d = corrupt_dir(tmp_path)
    samples = [{"__key__": f"s{i:06d}", "bin": payload(i, BIG), "cls": i} for i in range(600, 900)]
    del samples[130]["bin"]  # the second unit of this shard
    write_tar(d / "c-2.tar", samples)
    with pytest.raises(
        zenith.FormatError, match=r"c-2\.tar: byte \d+: sample \"s000730\" has no field \"bin\""
    ):
        zenith.load(d)
    ids, stats = skip_run(d, fields=None)
    assert stats["skipped_units"] == 0  # only cls is read; every sample has it
    assert sorted(ids) == list(range(900))
    dl = zenith.DataLoader(d, batch_size=64, on_error="skip", columns=["cls", "bin"])
    got = ids_of(dl)
    stats = dl.stats()
    # That unit holds 129 samples: 1 MiB of payload needs one more with a small sample inside.
    assert stats["skipped_units"] == 1 and stats["skipped_rows"] == 129
    assert sorted(got) == list(range(728)) + list(range(857, 900))
    assert zenith.load(d, fields=["cls"]).num_rows == 900


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def smooth_image(i: int, h: int, w: int) -> Image.Image:
    """A smooth colour field, different for each ``i`` (JPEG-friendly)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 120 * np.sin(x / (5 + i % 7) + i)
    g = 127 + 120 * np.cos(y / (6 + i % 5) - i)
    b = (x + y + 10 * i) % 256
    return Image.fromarray(np.stack([r, g, b], axis=-1).astype(np.uint8), "RGB")


def test_bad_jpeg_raises_or_skips(tmp_path: Path) -> None:
    d = tmp_path / "img"
    d.mkdir()
    good = jpeg_bytes(smooth_image(0, 16, 16))
    samples = [{"__key__": f"s{i:04d}", "jpg": good, "cls": i} for i in range(20)]
    samples[5]["jpg"] = good[:40] + b"garbage" * 10
    write_tar(d / "i.tar", samples)
    with pytest.raises(
        zenith.FormatError, match=r"i\.tar: byte \d+: sample \"s0005\" field \"jpg\""
    ):
        list(zenith.DataLoader(d, batch_size=8, image_size=16))
    # Without image_size the bytes are not decoded, so nothing is wrong.
    assert len(zenith.load(d)["jpg"]) == 20
    dl = zenith.DataLoader(d, batch_size=8, image_size=16, on_error="skip", shuffle=False)
    batches = list(dl)
    assert dl.stats()["skipped_units"] == 1 and sum(len(b["cls"]) for b in batches) == 0


# --- images ---------------------------------------------------------------------------------

H, W = 24, 40


@pytest.fixture(scope="session")
def image_shards(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    """One shard of JPEG+PNG samples at H x W, with Pillow's decode of each."""
    root = tmp_path_factory.mktemp("images")
    samples, jpg_ref, png_ref = [], [], []
    for i in range(50):
        img = smooth_image(i, H, W)
        jpg, png = jpeg_bytes(img), png_bytes(img)
        jpg_ref.append(np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB")))
        png_ref.append(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
        samples.append({"__key__": f"im{i:03d}", "jpg": jpg, "png": png, "cls": i})
    write_tar(root / "images-0.tar", samples)
    return root, jpg_ref, png_ref


def test_images_decode_like_pillow(
    image_shards: tuple[Path, list[np.ndarray], list[np.ndarray]],
) -> None:
    root, jpg_ref, png_ref = image_shards
    dl = zenith.DataLoader(root, batch_size=16, shuffle=True, seed=3, image_size=(H, W))
    seen = 0
    for batch in dl:
        jpg, png, cls = batch["jpg"], batch["png"], batch["cls"]
        assert jpg.dtype == np.uint8 and jpg.shape == (len(cls), H, W, 3) and jpg.flags.c_contiguous
        assert png.shape == (len(cls), H, W, 3)
        for row, i in enumerate(cls):
            assert np.array_equal(png[row], png_ref[i])
            diff = np.abs(jpg[row].astype(np.int16) - jpg_ref[i].astype(np.int16))
            assert diff.mean() < 1.5 and diff.max() <= 24, (i, diff.mean(), diff.max())
            seen += 1
    assert seen == 50


def test_images_resize_and_center_crop(
    image_shards: tuple[Path, list[np.ndarray], list[np.ndarray]],
) -> None:
    root, _, png_ref = image_shards
    size = 12
    batch = next(
        iter(
            zenith.DataLoader(root, batch_size=50, shuffle=False, image_size=size, columns=["png"])
        )
    )
    assert batch["png"].shape == (50, size, size, 3)
    for i in (0, 17, 49):
        # The reference: center-crop to a square, then a bilinear resize, in Pillow.
        left = (W - H) // 2
        ref = (
            Image.fromarray(png_ref[i])
            .crop((left, 0, left + H, H))
            .resize((size, size), Image.BILINEAR)
        )
        diff = np.abs(batch["png"][i].astype(np.int16) - np.asarray(ref).astype(np.int16))
        assert diff.mean() < 4, (i, diff.mean())


def test_torch_loader_gives_uint8_bhwc(
    image_shards: tuple[Path, list[np.ndarray], list[np.ndarray]],
) -> None:
    torch = pytest.importorskip("torch")
    from zenith.torch import DataLoader

    root, _, png_ref = image_shards
    dl = DataLoader(root, batch_size=10, shuffle=False, image_size=(H, W), fields=["png", "cls"])
    batch = next(iter(dl))
    assert set(batch) == {"__key__", "png", "cls"}
    assert batch["png"].dtype == torch.uint8 and tuple(batch["png"].shape) == (10, H, W, 3)
    assert np.array_equal(batch["png"][3].numpy(), png_ref[3])
    assert batch["cls"].tolist() == list(range(10))


# --- writer ---------------------------------------------------------------------------------


def test_writer_round_trip_from_a_table(tmp_path: Path) -> None:
    n = 1000
    table = pa.table(
        {
            "__key__": [f"r{i:05d}" for i in range(n)],
            "bin": [payload(i, 1 + i % 50) for i in range(n)],
            "cls": pa.array(range(n), pa.int64()),
            "txt": [f"row {i} é" for i in range(n)],
            "npy": pa.FixedSizeListArray.from_arrays(
                pa.array(np.arange(4 * n, dtype=np.float32)), 4
            ),
        }
    )
    paths = zenith.write_webdataset(table, tmp_path / "out" / "part-%04d.tar", maxcount=300)
    assert [Path(p).name for p in paths] == [f"part-{k:04d}.tar" for k in range(4)]
    back = zenith.load(paths)
    assert back.schema.names == ["__key__", "bin", "cls", "npy", "txt"]
    assert back.select(table.schema.names).cast(table.schema).equals(table)
    # The library reads the shards too, with its own decoders.
    first = next(iter(wds.WebDataset(paths[0], shardshuffle=False).decode()))
    assert first["__key__"] == "r00000" and first["cls"] == 0 and first["txt"] == "row 0 é"
    assert np.array_equal(first["npy"], np.arange(4, dtype=np.float32))
    # Byte-identical on a rewrite (fixed member metadata).
    again = zenith.write_webdataset(table, tmp_path / "again" / "part-%04d.tar", maxcount=300)
    assert all(
        Path(a).read_bytes() == Path(b).read_bytes() for a, b in zip(paths, again, strict=True)
    )


def test_writer_from_dicts_with_maxsize_and_gzip(tmp_path: Path) -> None:
    rows = ({"cls": i, "bin": payload(i, 1000), "json": {"i": i}} for i in range(100))
    paths = zenith.write_webdataset(rows, str(tmp_path / "d-{:03d}.tar.gz"), maxsize=10_500)
    assert len(paths) == 10
    table = zenith.load(paths)
    assert table["__key__"].to_pylist() == [f"{i:09d}" for i in range(100)]
    assert table["cls"].to_pylist() == list(range(100))
    assert [json.loads(v)["i"] for v in table["json"].to_pylist()] == list(range(100))
    with pytest.raises(zenith.ValidationError, match="placeholder"):
        zenith.write_webdataset(({"cls": i} for i in range(5)), tmp_path / "one.tar", maxcount=2)
    with pytest.raises(zenith.ValidationError, match="dot"):
        zenith.write_webdataset([{"__key__": "a.b", "cls": 1}], tmp_path / "k.tar")


def test_bad_arguments(shards: Path) -> None:
    with pytest.raises(zenith.ValidationError, match="image_size"):
        zenith.DataLoader(shards, image_size=(0, 3))
    with pytest.raises(zenith.ValidationError, match="fields"):
        zenith.load(shards, fields=[1])
    with pytest.raises(zenith.SchemaError, match="nope"):
        zenith.load(shards, fields=["cls", "nope"])
