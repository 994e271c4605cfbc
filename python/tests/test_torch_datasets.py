"""torch Datasets as zenith.torch sources: the planned order, threads, resume, user errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed; `make test` installs it")

import zenith  # noqa: E402  (after the skip: zenith.torch imports torch)
from zenith import ValidationError  # noqa: E402
from zenith.torch import DataLoader  # noqa: E402

N = 1000


class Squares(torch.utils.data.Dataset):
    """Sample i is {"i": i, "x": [i, i*i] float32}; records the threads that served it."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.fail_on = fail_on
        self.threads: set[str] = set()

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> dict:
        self.threads.add(threading.current_thread().name)
        if i == self.fail_on:
            raise KeyError(f"no sample {i}")
        return {"i": i, "x": torch.tensor([i, i * i], dtype=torch.float32)}


def order(dl) -> list[int]:
    return [int(i) for b in dl for i in b["i"]]


def test_the_order_is_the_index_tables_for_every_thread_count() -> None:
    want = [
        int(i)
        for b in zenith.DataLoader({"index": np.arange(N)}, batch_size=32, seed=7)
        for i in b["index"]
    ]
    for workers in (1, 2, 8):
        ds = Squares()
        dl = DataLoader(ds, batch_size=32, shuffle=True, seed=7, num_workers=workers)
        batches = list(dl)
        assert [int(i) for b in batches for i in b["i"]] == want, workers
        assert len(batches) == len(dl) == (N + 31) // 32
        first = batches[0]
        assert first["x"].shape == (32, 2) and first["x"].dtype == torch.float32
        torch.testing.assert_close(first["x"][:, 1], first["i"].float() ** 2)
        assert all(name.startswith("zenith-getitem") for name in ds.threads)
        assert len(ds.threads) <= workers
    assert sorted(want) == list(range(N)) and want != list(range(N))


def test_no_shuffle_rank_split_and_collate_fn() -> None:
    assert order(DataLoader(Squares(), batch_size=100)) == list(range(N))
    halves = [
        order(DataLoader(Squares(), batch_size=10, shuffle=True, rank=r, world_size=2))
        for r in (0, 1)
    ]
    assert len(halves[0]) == len(halves[1]) == N // 2
    assert sorted(halves[0] + halves[1]) == list(range(N))
    sizes = [b for b in DataLoader(Squares(), batch_size=64, collate_fn=len, drop_last=True)]
    assert sizes == [64] * (N // 64)


def test_resume_mid_epoch_continues_with_exactly_the_rest() -> None:
    full = order(DataLoader(Squares(), batch_size=25, shuffle=True, seed=3, num_workers=4))
    dl = DataLoader(Squares(), batch_size=25, shuffle=True, seed=3, num_workers=4)
    it = iter(dl)
    head = [int(i) for _ in range(9) for i in next(it)["i"]]
    state = dl.state_dict()
    del it
    again = DataLoader(Squares(), batch_size=25, shuffle=True, seed=3, num_workers=2)
    again.load_state_dict(state)
    assert head + order(again) == full


def test_an_error_in_getitem_keeps_its_type_and_names_the_index() -> None:
    with pytest.raises(KeyError, match="no sample 123") as info:
        list(DataLoader(Squares(fail_on=123), batch_size=50, num_workers=2))
    assert "zenith: raised by dataset[123] (Squares), epoch 0" in info.value.__notes__
    dl = DataLoader(Squares(fail_on=123), batch_size=50, num_workers=2, on_error="skip")
    got = order(dl)
    assert got == [i for i in range(N) if i != 123]
    assert dl.stats()["skipped_samples"] == 1


def test_iterable_datasets_pass_through_and_refuse_resume() -> None:
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(10))

    dl = DataLoader(Stream(), batch_size=4)
    assert [b.tolist() for b in dl] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValidationError, match="an IterableDataset cannot be resumed"):
        dl.state_dict()


def test_file_options_are_refused_for_a_dataset() -> None:
    with pytest.raises(ValidationError, match="`columns`: it applies to files and tables"):
        DataLoader(Squares(), columns=["x"])


Pair = __import__("collections").namedtuple("Pair", ["image", "label"])


def assembled(samples: list, order: list[int] | None = None):
    from zenith._assemble import Assembly

    batch = Assembly(len(samples))
    for j in order or range(len(samples)):
        batch.put(j, samples[j])
    return batch.collate()


def same(a, b) -> None:
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.is_contiguous()
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    else:
        assert a == b


_G = torch.Generator().manual_seed(0)


def _img() -> torch.Tensor:
    return torch.rand(3, 4, 5, generator=_G)


KINDS = {
    "tensor": lambda i: _img(),
    "tuple": lambda i: (_img(), i),
    "list": lambda i: [_img(), _img().half()],
    "namedtuple": lambda i: Pair(_img(), i),
    "dict": lambda i: {"x": _img(), "label": i, "name": f"s{i}", "w": i / 2, "ok": i % 2 == 0},
    "nested": lambda i: {"pair": (_img(), torch.tensor(i)), "arr": np.arange(3) + i},
    "numbers": lambda i: {"i": i, "f": float(i)},
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_in_place_assembly_gives_default_collates_batch_for_every_structure(kind: str) -> None:
    samples = [KINDS[kind](i) for i in range(6)]
    same(assembled(samples, [3, 0, 5, 1, 4, 2]), torch.utils.data.default_collate(samples))


def test_in_place_assembly_drops_each_sample_and_falls_back_on_a_mismatch() -> None:
    import weakref

    from zenith._assemble import Assembly

    batch = Assembly(2)
    first = torch.ones(1000)
    ref = weakref.ref(first)
    batch.put(0, {"x": first})
    del first
    assert ref() is None  # copied into the batch's tensor, not kept
    batch.put(1, {"x": torch.zeros(1000)})
    torch.testing.assert_close(batch.collate()["x"].sum(), torch.tensor(1000.0))
    # Another shape, dtype or structure: the list goes to default_collate, which decides.
    ragged = [torch.ones(3), torch.ones(4)]
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        assembled(ragged)
    mixed = [torch.ones(3), torch.ones(3, dtype=torch.float64)]
    same(assembled(mixed), torch.utils.data.default_collate(mixed))
    keys = [{"a": torch.ones(2)}, {"b": torch.ones(2)}]
    with pytest.raises(KeyError):
        torch.utils.data.default_collate(keys)
    with pytest.raises(KeyError):
        assembled(keys)
    # Skipped samples (never put) leave no hole.
    holes = Assembly(4)
    holes.put(2, (torch.full((2,), 2.0), 2))
    holes.put(0, (torch.full((2,), 0.0), 0))
    got = holes.collate()
    assert got[1].tolist() == [0, 2] and got[0][:, 0].tolist() == [0.0, 2.0]
    assert Assembly(3).collate() is None
