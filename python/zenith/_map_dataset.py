"""A map-style ``torch.utils.data.Dataset`` as a source: Zenith plans the order, Python threads
call ``__getitem__``.

The order comes from the engine's planner over an index table (``0 .. len(dataset)``), so
``shuffle``, ``seed``, the rank split and ``state_dict`` resume behave as for files. The samples
of each batch are fetched on a pool of ``num_workers`` Python threads (no processes, nothing
pickled), a few batches ahead of the consumer, and delivered in plan order after
``collate_fn`` (torch's ``default_collate`` by default).

Threads help when ``__getitem__`` waits or runs code that releases the GIL: file and network
reads, PIL decoding and resizing, NumPy and torch operations. Pure-Python per-sample work does
not run in parallel on a GIL build of CPython (it does on a free-threaded one); for that, keep
torch's DataLoader with worker processes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from zenith._loader import DataLoader as _CoreLoader
from zenith.exceptions import ValidationError


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
        collate_fn: Callable[[list[Any]], Any],
        on_error: str,
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
        self._threads = threads
        self._prefetch = prefetch
        self._collate = collate_fn
        self._skip = on_error == "skip"
        self._skipped = 0
        # The resume state as of the last batch handed to the consumer (the index loader runs
        # `prefetch` batches ahead of it).
        self._delivered: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[Any]:
        pending: deque[tuple[list[int], list[Future[Any]], dict[str, Any]]] = deque()
        with ThreadPoolExecutor(self._threads, thread_name_prefix="zenith-getitem") as pool:
            it = iter(self._index)
            try:
                for batch in it:
                    indices = batch["index"].tolist()
                    futures = [pool.submit(self.dataset.__getitem__, i) for i in indices]
                    pending.append((indices, futures, self._index.state_dict()))
                    if len(pending) > self._prefetch:
                        yield self._finish(*pending.popleft())
                while pending:
                    yield self._finish(*pending.popleft())
            finally:
                it.close()
                for _, futures, _ in pending:
                    for f in futures:
                        f.cancel()

    def _finish(
        self, indices: list[int], futures: list[Future[Any]], state: dict[str, Any]
    ) -> Any:
        samples = []
        for index, future in zip(indices, futures, strict=True):
            try:
                samples.append(future.result())
            except Exception as e:
                if not self._skip:
                    e.add_note(f"zenith: raised by dataset[{index}] ({type(self.dataset).__name__})")
                    raise
                self._skipped += 1
        self._delivered = state
        return self._collate(samples)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of the next pass."""
        self._index.set_epoch(epoch)
        self._delivered = None

    def state_dict(self) -> dict[str, Any]:
        """Resume state as of the last batch delivered."""
        return self._delivered if self._delivered is not None else self._index.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues from ``state`` on the next pass."""
        self._index.load_state_dict(state)
        self._delivered = None

    def stats(self) -> dict[str, Any]:
        """The index loader's counters plus ``skipped_samples`` (``on_error="skip"``)."""
        return self._index.stats() | {"skipped_samples": self._skipped}


class IterableDatasetLoader:
    """A ``torch.utils.data.IterableDataset`` passed through: its own order, batched and
    collated here. Zenith cannot plan or resume what the dataset itself iterates:
    ``shuffle``, ``seed`` and the rank split are the dataset's business, and ``state_dict``
    raises."""

    def __init__(
        self,
        dataset: Any,
        *,
        batch_size: int,
        drop_last: bool,
        collate_fn: Callable[[list[Any]], Any],
    ) -> None:
        self.dataset = dataset
        self._batch_size = batch_size
        self._drop_last = drop_last
        self._collate = collate_fn

    def __iter__(self) -> Iterator[Any]:
        samples: list[Any] = []
        for sample in self.dataset:
            samples.append(sample)
            if len(samples) == self._batch_size:
                yield self._collate(samples)
                samples = []
        if samples and not self._drop_last:
            yield self._collate(samples)

    def __len__(self) -> int:
        raise TypeError("an IterableDataset has no length")

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the dataset when it has ``set_epoch``."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Refused: the dataset's own iteration cannot be resumed from outside."""
        raise ValidationError(
            "an IterableDataset cannot be resumed by zenith: its iteration is its own; give a "
            "map-style Dataset (__len__ and __getitem__) or files for exact resume"
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Refused, as ``state_dict``."""
        del state
        self.state_dict()

    def stats(self) -> dict[str, Any]:
        """Nothing is counted for a passed-through dataset."""
        return {}
