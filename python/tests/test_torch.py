"""zenith.torch.DataLoader: tensors from the Rust buffers, torch DataLoader's arguments, and a
real two-process torchrun (gloo) run in which the ranks see every sample exactly once."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import N_ROWS

torch = pytest.importorskip("torch", reason="torch is not installed; `make test` installs it")

from zenith import ValidationError  # noqa: E402  (after the skip: zenith.torch imports torch)
from zenith.torch import DataLoader  # noqa: E402


def test_yields_tensors_with_exact_values(datasets: dict[str, Path], table) -> None:
    feats = ["f0", "f1", "f2", "f3"]
    dl = DataLoader(datasets["parquet"], batch_size=256, shuffle=True, seed=1,
                    columns={"x": feats, "y": "label", "id": "id"})
    ref = np.stack([table.column(f).to_numpy() for f in feats], axis=1)
    total = 0
    for batch in dl:
        assert batch["x"].dtype == torch.float32 and batch["y"].dtype == torch.int64
        assert batch["x"].shape == (len(batch["id"]), 4)
        np.testing.assert_array_equal(batch["x"].numpy(), ref[batch["id"].numpy()])
        total += len(batch["id"])
    assert total == N_ROWS
    assert len(dl) == (N_ROWS + 255) // 256


def test_every_dtype_becomes_the_same_tensor_through_dlpack(tmp_path: Path) -> None:
    # zenith.torch makes its tensors from DLPack capsules that own the batch buffers: each
    # dtype, 1-D and stacked [rows, k], equals the NumPy path's values, and the buffers stay
    # valid after the loader, the iteration and the batch dict are gone.
    import gc

    import pyarrow as pa
    import pyarrow.parquet as pq
    import zenith

    n = 1000
    rng = np.random.default_rng(3)
    cols = {
        "b": rng.random(n) < 0.5,
        "i8": rng.integers(-100, 100, n, dtype=np.int8),
        "i16": rng.integers(-3000, 3000, n, dtype=np.int16),
        "i32": rng.integers(-(2**30), 2**30, n, dtype=np.int32),
        "i64": np.arange(n, dtype=np.int64) * 2**33,
        "u8": rng.integers(0, 255, n, dtype=np.uint8),
        "f64": rng.random(n),
        "a": rng.random(n).astype(np.float32),
        "c": rng.random(n).astype(np.float32),
    }
    pq.write_table(pa.table(cols), tmp_path / "t.parquet")
    spec = {k: k for k in cols if k not in ("a", "c")} | {"ac": ["a", "c"]}
    kwargs = {"batch_size": 96, "shuffle": True, "seed": 5, "columns": spec}
    want = list(zenith.DataLoader(str(tmp_path), **kwargs))
    got = list(DataLoader(str(tmp_path), **kwargs))
    gc.collect()
    assert len(got) == len(want) == 11
    for g, w in zip(got, want, strict=True):
        assert list(g) == list(w)
        for name, value in g.items():
            assert isinstance(value, torch.Tensor) and value.is_contiguous()
            assert value.numpy().dtype == w[name].dtype, name
            np.testing.assert_array_equal(value.numpy(), w[name])
    assert got[0]["ac"].shape == (96, 2)


def test_a_capsule_nobody_consumes_is_freed_and_dlpack_needs_a_converter(
    datasets: dict[str, Path],
) -> None:
    import gc

    import zenith

    dl = zenith.DataLoader(datasets["parquet"], batch_size=64, columns={"x": ["f0", "f1"]})
    batch = next(iter(dl._inner.iter(lambda capsule: capsule, dlpack=True)))
    assert type(batch["x"]).__name__ == "PyCapsule"
    del batch
    gc.collect()
    first = next(iter(dl._inner.iter(torch.from_dlpack, dlpack=True)))["x"]
    assert first.shape == (64, 2)
    with pytest.raises(ValidationError, match="dlpack=True needs a `convert`"):
        dl._inner.iter(None, dlpack=True)


def test_torch_defaults_match_torch(datasets: dict[str, Path]) -> None:
    dl = DataLoader(datasets["parquet"], batch_size=1000)  # torch's default: shuffle=False
    ids = torch.cat([b["id"] for b in dl]).tolist()
    assert ids == list(range(N_ROWS))


def test_sampler_is_rejected_with_the_alternative(datasets: dict[str, Path]) -> None:
    sampler = torch.utils.data.SequentialSampler(range(10))
    with pytest.raises(ValidationError, match="use shuffle=True and seed="):
        DataLoader(datasets["parquet"], sampler=sampler)


def test_common_arguments_are_accepted(datasets: dict[str, Path]) -> None:
    seen = []

    def collate(batch: dict) -> tuple:
        seen.append(len(batch["id"]))
        return batch["id"], batch["label"]

    dl = DataLoader(datasets["parquet"], batch_size=500, shuffle=True, num_workers=2, drop_last=True,
                    collate_fn=collate, persistent_workers=True, prefetch_factor=4,
                    generator=torch.Generator().manual_seed(7))
    out = list(dl)
    assert len(out) == 10 and seen == [500] * 10
    assert all(isinstance(ids, torch.Tensor) for ids, _ in out)


def test_pin_memory_and_cuda_fall_back_with_one_warning(datasets: dict[str, Path]) -> None:
    if torch.cuda.is_available():
        dl = DataLoader(datasets["parquet"], batch_size=100, pin_memory=True, device="cuda")
        batch = next(iter(dl))
        assert batch["id"].device.type == "cuda"
        return
    import zenith.torch as zt

    zt._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dl = DataLoader(datasets["parquet"], batch_size=100, pin_memory=True, device="cuda")
        DataLoader(datasets["parquet"], batch_size=100, pin_memory=True, device="cuda")
    messages = [str(w.message) for w in caught]
    assert sum("CUDA is not available" in m for m in messages) == 2  # pin + device, once each
    batch = next(iter(dl))
    assert batch["id"].device.type == "cpu"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_ranks_see_every_sample_once(datasets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ranks.json"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
        "--master_addr=127.0.0.1", f"--master_port={free_port()}",
        str(Path(__file__).with_name("ddp_worker.py")), str(datasets["parquet"]), str(out),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world"] == 2 for r in ranks)
    assert len(ranks[0]["ids"]) == len(ranks[1]["ids"]) == N_ROWS // 2
    assert ranks[0]["len"] == ranks[1]["len"]
    union = ranks[0]["ids"] + ranks[1]["ids"]
    assert sorted(union) == list(range(N_ROWS))
