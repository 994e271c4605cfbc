"""A map-style ``torch.utils.data.Dataset`` as a source: Zenith plans the order, Python threads
call ``__getitem__``.

The order comes from the engine's planner over an index table (``0 .. len(dataset)``), so
``shuffle``, ``seed``, the rank split and ``state_dict`` resume behave as for files. The samples
of each batch are fetched on a pool of ``num_workers`` Python threads (no processes, nothing
pickled), and delivered in plan order after ``collate_fn`` (torch's ``default_collate`` by
default). Each sample is one task on the pool, ``dataset[i]`` then the user's ``map``, and the
threads work on the batch being finished and on ``prefetch`` batches after the one the
consumer holds (at least two samples per thread). With the default collation each sample's tensors are copied into its
batch's tensors as soon as it is fetched (``_assemble``), so a batch in flight costs its own
size once; ``collate_fn`` and ``transform`` run on a thread of their own beside the pool.

Threads help when ``__getitem__`` waits or runs code that releases the GIL: file and network
reads, PIL decoding and resizing, NumPy and torch operations. Pure-Python per-sample work does
not run in parallel on a GIL build of CPython (it does on a free-threaded one); for that, keep
torch's DataLoader with worker processes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from torch.utils.data import default_collate

from zenith._assemble import Assembly
from zenith._loader import DataLoader as _CoreLoader
from zenith._stages import Counts, Done, Pass, UserFn, given, ordered
from zenith.exceptions import ValidationError


class _Listed:
    """The samples of one batch kept as they are, for a ``collate_fn`` of the user's."""

    def __init__(self, n: int, collate_fn: Callable[[list[Any]], Any]) -> None:
        self._samples: list[Any] = [None] * n
        self._kept = [False] * n
        self._collate_fn = collate_fn

    def put(self, j: int, sample: Any) -> None:
        self._samples[j] = sample
        self._kept[j] = True

    def collate(self) -> Any:
        kept = [s for s, k in zip(self._samples, self._kept, strict=True) if k]
        return self._collate_fn(kept) if kept else None


@dataclass
class _Planned:
    """A batch in flight: its sample futures, where they go, and its place in the epoch."""

    futures: list[Future[bool]]
    samples: Assembly | _Listed
    position: int
    state: dict[str, Any]


class MapDatasetLoader:
    """Batches of a map-style dataset in Zenith's planned order (see the module doc)."""

    def __init__(
        self,
        dataset: Any,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int,
        drop_last: bool,
        rank: int,
        world_size: int,
        threads: int,
        prefetch: int,
        collate_fn: Callable[[list[Any]], Any] | None,
        on_error: str,
        map: UserFn | None = None,
        transform: UserFn | None = None,
    ) -> None:
        self.dataset = dataset
        self._index = _CoreLoader(
            {"index": np.arange(len(dataset), dtype=np.int64)},
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            rank=rank,
            world_size=world_size,
            num_workers=1,
            # Checked by the engine, the one place that parses it; it acts on samples here.
            on_error=on_error,
        )
        self._seed = seed
        self._rank = rank
        self._threads = threads
        # Batches fetched ahead of the one handed to the consumer: enough to keep every thread
        # busy.
        self._ahead = max(prefetch, -(-2 * threads // batch_size))
        self._collate_fn = collate_fn
        self._map = map
        self._transform = transform
        self._skip = on_error == "skip"
        self._counts = Counts()
        # The resume state as of the last batch handed to the consumer (the index loader runs
        # ahead of it).
        self._delivered: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[Any]:
        self._delivered = None
        run = Pass(
            seed=self._seed,
            epoch=self._index.epoch,
            map=self._map,
            transform=self._transform,
            collate=self._collate_fn or default_collate,
            skip=self._skip,
            counts=self._counts,
        )
        it = iter(self._index)

        def planned() -> Iterator[tuple[list[int], int, dict[str, Any]]]:
            position = self._index.state_dict()["plan"]["rows"]
            for batch in it:
                state = self._index.state_dict()
                yield batch["index"].tolist(), position, state
                position = state["plan"]["rows"]

        batches = planned()
        pool = ThreadPoolExecutor(self._threads, thread_name_prefix="zenith-getitem")
        # collate_fn and transform run here, beside the fetching threads, never queued behind
        # their samples.
        finisher = ThreadPoolExecutor(1, thread_name_prefix="zenith-collate")
        flight: deque[_Planned] = deque()

        def top_up(n: int) -> None:
            while len(flight) < n and (nxt := next(batches, None)) is not None:
                flight.append(self._start(pool, run, *nxt))

        try:
            top_up(1)
            while flight:
                batch = flight.popleft()
                # What the threads fetch while this batch finishes and while the consumer
                # works on it: `ahead` batches, no more (each in flight costs its size).
                top_up(self._ahead)
                done = self._finish(finisher, run, batch)
                self._counts.samples += done.skipped_samples
                if done.skipped_batch:
                    self._counts.batches += 1
                if done.skipped_batch or done.empty:
                    continue
                self._delivered = done.state
                yield done.value
            self._delivered = None
        finally:
            for batch in flight:
                for future in batch.futures:
                    future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            finisher.shutdown(wait=True)
            it.close()

    def _start(
        self, pool: ThreadPoolExecutor, run: Pass, indices: list[int], position: int, state: Any
    ) -> _Planned:
        """Submits the samples of one batch, each placed into the batch by its thread."""
        n = len(indices)
        samples: Assembly | _Listed = (
            Assembly(n) if self._collate_fn is None else _Listed(n, self._collate_fn)
        )
        name = type(self.dataset).__name__
        get = self.dataset.__getitem__

        def fetch(j: int, i: int) -> bool:
            kept, value = run.one((i,), partial(get, i), f"dataset[{i}] ({name})")
            if kept:
                samples.put(j, value)
            return kept

        futures = [pool.submit(fetch, j, i) for j, i in enumerate(indices)]
        return _Planned(futures, samples, position, state)

    def _finish(self, finisher: ThreadPoolExecutor, run: Pass, batch: _Planned) -> Done:
        """Waits for a batch's samples in order (the first error is raised), then collates
        and transforms it."""
        skipped = sum(not future.result() for future in batch.futures)
        what = f"the batch at position {batch.position}"
        key = (self._rank, batch.position)

        def finish() -> Done:
            value = batch.samples.collate()
            if value is None:
                return Done(None, batch.state, skipped, empty=True)
            return run.batch(value, key, what, batch.state, skipped)

        if self._collate_fn is None and self._transform is None:
            return finish()  # assembled in place: collating is cheap
        return finisher.submit(finish).result()

    @property
    def epoch(self) -> int:
        """The epoch the next pass runs."""
        return self._index.epoch

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of the next pass."""
        self._index.set_epoch(epoch)
        self._delivered = None

    def state_dict(self) -> dict[str, Any]:
        """Resume state as of the last batch delivered."""
        return self._delivered if self._delivered is not None else self._index.state_dict()

    def load_state_dict(self, state: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
        """Continues from ``state`` (one rank's, or the list of every rank's) on the next pass."""
        self._index.load_state_dict(state)
        self._delivered = None

    def stats(self) -> dict[str, Any]:
        """The index loader's counters plus what ``on_error="skip"`` dropped in the dataset,
        ``map`` and ``transform`` (``skipped_samples``, ``skipped_batches``)."""
        return self._index.stats() | self._counts.as_stats()


class IterableDatasetLoader:
    """A ``torch.utils.data.IterableDataset`` (or a ``datasets.IterableDataset`` with
    operations of its own) passed through: its own order, batched here, and collated (with
    ``map`` and ``transform``) on the Python threads. Zenith cannot plan or resume what the
    dataset itself iterates: ``shuffle``, ``seed`` and the rank split are the dataset's
    business, and ``state_dict`` raises. The ``rng`` keys are the sample's position in the
    pass and the epoch counts the passes (or follows ``set_epoch``)."""

    def __init__(
        self,
        dataset: Any,
        *,
        batch_size: int,
        drop_last: bool,
        collate_fn: Callable[[list[Any]], Any],
        threads: int,
        seed: int,
        on_error: str,
        map: UserFn | None = None,
        transform: UserFn | None = None,
    ) -> None:
        self.dataset = dataset
        self._batch_size = batch_size
        self._drop_last = drop_last
        self._collate = collate_fn
        self._threads = threads
        self._seed = seed
        self._map = map
        self._transform = transform
        self._skip = on_error == "skip"
        self._counts = Counts()
        self._epoch = 0

    def __iter__(self) -> Iterator[Any]:
        run = Pass(
            seed=self._seed,
            epoch=self._epoch,
            map=self._map,
            transform=self._transform,
            collate=self._collate,
            skip=self._skip,
            counts=self._counts,
        )

        def tasks() -> Iterator[Callable[[], Done]]:
            samples: list[Any] = []
            position = 0
            for sample in self.dataset:
                samples.append(sample)
                if len(samples) == self._batch_size:
                    yield partial(self._task, run, samples, position)
                    position += len(samples)
                    samples = []
            if samples and not self._drop_last:
                yield partial(self._task, run, samples, position)

        for done in ordered(tasks(), self._threads, 2 * self._threads, self._counts, "zenith-map"):
            yield done.value
        self._epoch += 1

    def _task(self, run: Pass, batch: list[Any], position: int) -> Done:
        samples, skipped = run.samples(
            ((position + i,), given(s), f"the sample at position {position + i}")
            for i, s in enumerate(batch)
        )
        if not samples:
            return Done(None, None, skipped, empty=True)
        what = f"the batch at position {position}"
        return run.batch(run.collate(samples), (0, position), what, None, skipped)

    def __len__(self) -> int:
        raise TypeError("an IterableDataset has no length")

    @property
    def epoch(self) -> int:
        """The passes so far (or the last ``set_epoch``)."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of the next pass; forwarded to the dataset when it has ``set_epoch``."""
        self._epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Refused: the dataset's own iteration cannot be resumed from outside."""
        raise ValidationError(
            "an IterableDataset cannot be resumed by zenith: its iteration is its own; give a "
            "map-style Dataset (__len__ and __getitem__) or files for exact resume"
        )

    def load_state_dict(self, state: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
        """Refused, as ``state_dict``."""
        del state
        self.state_dict()

    def stats(self) -> dict[str, Any]:
        """What ``on_error="skip"`` dropped in ``map`` and ``transform``."""
        return self._counts.as_stats()
