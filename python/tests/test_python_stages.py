"""The user's Python code in a pass: ``map=`` per sample and ``transform=`` per batch on threads,
in the planned order, with seeded generators, resume, and errors that name the sample."""

from __future__ import annotations

import threading
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed; `make test` installs it")

import zenith  # noqa: E402  (after the skip: zenith.torch imports torch)
import zenith.torch as zt  # noqa: E402
from zenith import ValidationError  # noqa: E402

ROWS = 3_000
B = 64


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``id`` 0..ROWS and ``x = id / 4`` in one Parquet file of row groups of 500."""
    path = tmp_path_factory.mktemp("stages") / "t.parquet"
    ids = np.arange(ROWS, dtype=np.int64)
    pq.write_table(pa.table({"id": ids, "x": ids.astype(np.float32) / 4}), path, row_group_size=500)
    return path


def ids_of(batches) -> list[int]:
    return [int(i) for b in batches for i in b["id"]]


def plain_order(source: Path, **kwargs) -> list[int]:
    return ids_of(zenith.DataLoader(str(source), batch_size=B, seed=5, **kwargs))


def test_map_and_transform_keep_the_planned_order_for_every_thread_count(source: Path) -> None:
    want = plain_order(source)
    threads: set[str] = set()

    def double(sample: dict) -> dict:
        threads.add(threading.current_thread().name)
        assert isinstance(sample["id"], np.integer) and isinstance(sample["x"], np.floating)
        return {"id": sample["id"], "y": sample["x"] * 2}

    def count(batch: dict) -> dict:
        return batch | {"n": np.full(len(batch["id"]), len(batch["id"]))}

    for workers in (1, 2, 8):
        threads.clear()
        dl = zenith.DataLoader(
            str(source), batch_size=B, seed=5, num_workers=workers, map=double, transform=count
        )
        batches = list(dl)
        assert ids_of(batches) == want, workers
        for b in batches:
            assert b["y"].dtype == np.float32 and b["id"].dtype == np.int64
            np.testing.assert_array_equal(b["y"], b["id"].astype(np.float32) / 2)
            assert set(b["n"].tolist()) == {len(b["id"])}
        assert [len(b["id"]) for b in batches] == [B] * (ROWS // B) + [ROWS % B]
        assert threads and all(t.startswith("zenith-map") for t in threads)
        assert len(threads) <= workers


def test_transform_alone_sees_the_collated_batch_and_output_arrow(source: Path) -> None:
    seen = []
    dl = zenith.DataLoader(
        str(source), batch_size=B, shuffle=False, output="arrow", transform=seen.append
    )
    assert list(dl) == [None] * len(dl)
    assert all(isinstance(b, pa.RecordBatch) for b in seen)
    assert [v for b in seen for v in b.column("id").to_pylist()] == list(range(ROWS))
    with pytest.raises(ValidationError, match="`map`: samples are split from NumPy batches"):
        zenith.DataLoader(str(source), output="arrow", map=lambda s: s)
    with pytest.raises(ValidationError, match="`transform`: expected a callable, got int"):
        zenith.DataLoader(str(source), transform=3)


def draws(source: Path, workers: int, **kwargs) -> dict[tuple[int, int], float]:
    """(epoch, id) -> the number map's rng drew for that sample, over two epochs."""

    def noisy(sample: dict, rng: np.random.Generator) -> dict:
        return {"id": sample["id"], "r": rng.random()}

    dl = zenith.DataLoader(
        str(source), batch_size=B, seed=5, num_workers=workers, map=noisy, **kwargs
    )
    out = {}
    for epoch in range(2):
        for b in dl:
            out.update({(epoch, int(i)): float(r) for i, r in zip(b["id"], b["r"], strict=True)})
    return out


def test_rng_is_seeded_by_seed_epoch_and_position_whatever_the_threads(source: Path) -> None:
    one, eight = draws(source, 1), draws(source, 8)
    assert one == eight and len(one) == 2 * ROWS
    per_epoch = [[one[(e, i)] for i in range(ROWS)] for e in (0, 1)]
    assert per_epoch[0] != per_epoch[1]
    assert len(set(per_epoch[0])) == ROWS  # a distinct stream per sample
    want = np.random.default_rng([5, 0, 0, plain_order(source).index(7), 0]).random()
    assert one[(0, 7)] == want


def test_resume_mid_epoch_continues_with_the_same_samples_and_draws(source: Path) -> None:
    def noisy(sample: dict, rng: np.random.Generator) -> dict:
        return {"id": sample["id"], "r": rng.random()}

    def batch_draw(batch: dict, rng: np.random.Generator) -> dict:
        return batch | {"b": np.full(len(batch["id"]), rng.integers(1 << 30))}

    def loader(workers: int) -> zenith.DataLoader:
        return zenith.DataLoader(
            str(source),
            batch_size=B,
            seed=5,
            num_workers=workers,
            prefetch=4,
            map=noisy,
            transform=batch_draw,
        )

    def rows(batch: dict) -> list[tuple[int, float, int]]:
        values = zip(batch["id"], batch["r"], batch["b"], strict=True)
        return [(int(i), float(r), int(x)) for i, r, x in values]

    full = [row for b in loader(2) for row in rows(b)]
    dl = loader(2)
    it = iter(dl)
    head = [row for _ in range(11) for row in rows(next(it))]
    state = dl.state_dict()  # as of the 11th batch, though the pool ran ahead of it
    assert state["plan"]["rows"] == 11 * B
    it.close()
    again = loader(8)
    again.load_state_dict(state)
    rest = [row for b in again for row in rows(b)]
    assert head + rest == full


def test_work_in_flight_is_bounded(source: Path) -> None:
    calls = []
    dl = zenith.DataLoader(
        str(source), batch_size=10, num_workers=2, prefetch=3, transform=calls.append
    )
    it = iter(dl)
    next(it)
    it.close()
    # The first batch waits for at most `prefetch` more to be submitted (300 in the epoch).
    assert 1 <= len(calls) <= 1 + 3


def test_an_error_in_map_keeps_its_traceback_and_names_the_sample(source: Path) -> None:
    order = plain_order(source)

    def bad_map(sample: dict) -> dict:
        if sample["id"] == 1234:
            raise ValueError("no good")
        return sample

    with pytest.raises(ValueError, match="no good") as info:
        list(zenith.DataLoader(str(source), batch_size=B, seed=5, num_workers=2, map=bad_map))
    position = order.index(1234)
    assert info.value.__notes__ == [f"zenith: raised by the sample at position {position}, epoch 0"]
    assert "bad_map" in [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]

    dl = zenith.DataLoader(
        str(source), batch_size=B, seed=5, num_workers=2, map=bad_map, on_error="skip"
    )
    assert ids_of(dl) == [i for i in order if i != 1234]
    stats = dl.stats()
    assert stats["skipped_samples"] == 1 and stats["skipped_batches"] == 0
    assert stats["skipped_user_errors"] == [
        f"the sample at position {position}: ValueError: no good"
    ]


def test_an_error_in_transform_names_the_batch_and_skips_it(source: Path) -> None:
    def bad_transform(batch: dict) -> dict:
        if 100 in batch["id"]:
            raise RuntimeError("bad batch")
        return batch

    order = plain_order(source)
    position = order.index(100) // B * B
    with pytest.raises(RuntimeError, match="bad batch") as info:
        list(zenith.DataLoader(str(source), batch_size=B, seed=5, transform=bad_transform))
    assert info.value.__notes__ == [
        f"zenith: raised by transform of the batch at position {position}, epoch 0"
    ]
    dl = zenith.DataLoader(
        str(source), batch_size=B, seed=5, transform=bad_transform, on_error="skip"
    )
    assert ids_of(dl) == order[:position] + order[position + B :]
    assert dl.stats()["skipped_batches"] == 1


def test_torch_loader_maps_tensor_samples_and_collates_them(source: Path) -> None:
    def add(sample: dict) -> dict:
        assert isinstance(sample["id"], torch.Tensor) and sample["id"].shape == ()
        return {"id": sample["id"], "z": sample["x"] + 1}

    seen_types = []

    def check(batch: dict) -> dict:
        seen_types.append(type(batch["z"]))
        return batch

    dl = zt.DataLoader(
        str(source), batch_size=B, shuffle=True, seed=5, num_workers=2, map=add, transform=check
    )
    batches = list(dl)
    assert ids_of(batches) == plain_order(source)
    assert set(seen_types) == {torch.Tensor}
    torch.testing.assert_close(batches[0]["z"], batches[0]["id"].float() / 4 + 1)
    # collate_fn without map acts on the batch dict, then transform sees its result.
    sizes = list(
        zt.DataLoader(
            str(source), batch_size=B, collate_fn=lambda b: len(b["id"]), transform=lambda n: -n
        )
    )
    assert sizes == [-B] * (ROWS // B) + [-(ROWS % B)]


class Numbers(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 500

    def __getitem__(self, i: int) -> dict:
        return {"i": i}


def test_torch_dataset_map_rng_is_keyed_by_the_dataset_index() -> None:
    def noisy(sample: dict, rng: np.random.Generator) -> dict:
        return sample | {"r": rng.random()}

    def run(workers: int) -> dict[int, float]:
        dl = zt.DataLoader(
            Numbers(), batch_size=16, shuffle=True, seed=9, num_workers=workers, map=noisy
        )
        return {int(i): float(r) for b in dl for i, r in zip(b["i"], b["r"], strict=True)}

    one = run(1)
    assert one == run(8) and sorted(one) == list(range(500))
    assert one[42] == np.random.default_rng([9, 0, 42, 0]).random()


def test_iterable_dataset_map_and_transform_run_in_order_on_threads() -> None:
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(100))

    dl = zt.DataLoader(
        Stream(), batch_size=8, num_workers=4, map=lambda v: v * 10, transform=lambda b: b + 1
    )
    assert [int(v) for b in dl for v in b] == [v * 10 + 1 for v in range(100)]
    with pytest.raises(ZeroDivisionError) as info:
        list(zt.DataLoader(Stream(), batch_size=8, map=lambda v: 1 // (v - 50)))
    assert info.value.__notes__ == ["zenith: raised by the sample at position 50, epoch 0"]
