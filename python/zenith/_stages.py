"""The user's Python code in a pass: ``map=`` (per sample, before collate) and ``transform=``
(per batch, after collate) on a pool of threads, a bounded number of batches ahead, in order.

Each batch is one task on the pool: split into samples, ``map`` each, collate, ``transform``.
Results are handed to the consumer in the order the batches were planned, whatever the thread
count, so an epoch is the same with 1 or 8 threads. A callable that takes an ``rng`` keyword is
given a ``numpy.random.Generator`` seeded from ``(seed, epoch, key)``, where the key is the
sample's index (or position) and, for ``transform``, the batch's first position: a run, a rerun
and a resumed run draw the same numbers for the same samples.

Exceptions raised by user code keep their type and traceback and gain a note naming the sample
(or batch) and the epoch; with ``on_error="skip"`` the sample (or batch) is dropped and
counted instead.
"""

from __future__ import annotations

import inspect
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from zenith.exceptions import ValidationError

# Domain tags that keep the sample and batch generators of one position apart.
_SAMPLE, _BATCH = 0, 1


def _takes_rng(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins and C callables without a signature
        return False
    rng = params.get("rng")
    return rng is not None and rng.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


class UserFn:
    """A user callable, called with ``rng=`` when its signature has an ``rng`` parameter."""

    def __init__(self, fn: Callable[..., Any], name: str, tag: int) -> None:
        if not callable(fn):
            raise ValidationError(
                f"invalid argument `{name}`: expected a callable, got {type(fn).__name__}"
            )
        self.fn = fn
        self.name = name
        self.tag = tag
        self.takes_rng = _takes_rng(fn)

    def __call__(self, value: Any, seed: int, epoch: int, key: Sequence[int]) -> Any:
        if self.takes_rng:
            rng = np.random.default_rng([seed, epoch, *key, self.tag])
            return self.fn(value, rng=rng)
        return self.fn(value)


def user_fns(
    map: Callable[..., Any] | None, transform: Callable[..., Any] | None
) -> tuple[UserFn | None, UserFn | None]:
    """Checks ``map=`` and ``transform=`` and wraps them."""
    return (
        UserFn(map, "map", _SAMPLE) if map is not None else None,
        UserFn(transform, "transform", _BATCH) if transform is not None else None,
    )


def default_threads() -> int:
    """Python threads for the stages when not given: one fewer than the usable CPUs, at least 1
    (the same default as the decode threads: a core stays with the training loop)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


@dataclass
class Done:
    """A finished batch: the value for the consumer, the loader state as of this batch, how
    many of its samples were skipped, whether its transform was skipped, and whether nothing
    of it is left (every sample skipped)."""

    value: Any
    state: Any
    skipped_samples: int = 0
    skipped_batch: bool = False
    empty: bool = False


@dataclass
class Counts:
    """What ``on_error="skip"`` dropped in user code, summed over passes."""

    samples: int = 0
    batches: int = 0
    where: list[str] = field(default_factory=list)

    def as_stats(self) -> dict[str, Any]:
        """The ``stats()`` entries."""
        return {
            "skipped_samples": self.samples,
            "skipped_batches": self.batches,
            "skipped_user_errors": list(self.where),
        }


# Where a skip is recorded at most this many times (the counts are exact).
_WHERE_KEPT = 100


def annotate(error: BaseException, what: str) -> None:
    """Adds the note that names where user code raised."""
    error.add_note(f"zenith: raised by {what}")


def ordered(
    tasks: Iterator[Callable[[], Done]], threads: int, ahead: int, counts: Counts, name: str
) -> Iterator[Done]:
    """Runs each task on ``threads`` threads, at most ``ahead`` in flight, and yields the
    results in task order (skipped batches are counted, not yielded)."""
    pending: deque[Future[Done]] = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix=name) as pool:
        try:
            for task in tasks:
                pending.append(pool.submit(task))
                while len(pending) > ahead:
                    done = _counted(pending.popleft().result(), counts)
                    if done is not None:
                        yield done
            while pending:
                done = _counted(pending.popleft().result(), counts)
                if done is not None:
                    yield done
        finally:
            for future in pending:
                future.cancel()


def _counted(done: Done, counts: Counts) -> Done | None:
    counts.samples += done.skipped_samples
    if done.skipped_batch:
        counts.batches += 1
    return None if done.skipped_batch or done.empty else done


def record_skip(counts: Counts, what: str, error: BaseException) -> None:
    """Keeps a line for a skipped sample or batch (the first ``_WHERE_KEPT``)."""
    if len(counts.where) < _WHERE_KEPT:
        counts.where.append(f"{what}: {type(error).__name__}: {error}")


def _identity(value: Any) -> Any:
    return value


def given(value: Any) -> Callable[[], Any]:
    """A sample already at hand, as the ``get`` of ``Pass.samples``."""
    return partial(_identity, value)


def numpy_collate(samples: list[Any]) -> Any:
    """Stacks a list of mapped samples into a batch: dicts and tuples per key or position,
    arrays and numbers into NumPy arrays (one more leading axis), anything else into a list."""
    first = samples[0]
    if isinstance(first, Mapping):
        return {key: numpy_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, tuple):
        return tuple(numpy_collate(list(column)) for column in zip(*samples, strict=True))
    if isinstance(first, (np.ndarray, np.generic, int, float, bool)):
        return np.stack([np.asarray(s) for s in samples])
    return list(samples)


def rows_of(batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Splits a dict batch into its samples: array rows (views) and Python values for Arrow
    columns (lists, strings, structs)."""
    columns: dict[str, Any] = {}
    n = 0
    for key, value in batch.items():
        if hasattr(value, "to_pylist") and not hasattr(value, "shape"):
            value = value.to_pylist()
        columns[key] = value
        n = len(value)
    return [{key: value[i] for key, value in columns.items()} for i in range(n)]


class Pass:
    """The stages of one pass: what is known when it starts (seed, epoch, the user's callables,
    the collate step and what to do with an error)."""

    def __init__(
        self,
        *,
        seed: int,
        epoch: int,
        map: UserFn | None,
        transform: UserFn | None,
        collate: Callable[[list[Any]], Any],
        skip: bool,
        counts: Counts,
    ) -> None:
        self.seed = seed
        self.epoch = epoch
        self.map = map
        self.transform = transform
        self.collate = collate
        self.skip = skip
        self.counts = counts

    def one(self, key: Sequence[int], get: Callable[[], Any], what: str) -> tuple[bool, Any]:
        """Fetches one sample and maps it: ``(True, sample)``, or ``(False, None)`` when it
        raised under ``on_error="skip"`` (recorded); otherwise the error is noted and raised."""
        try:
            value = get()
            if self.map is not None:
                value = self.map(value, self.seed, self.epoch, key)
        except Exception as e:
            if not self.skip:
                annotate(e, f"{what}, epoch {self.epoch}")
                raise
            record_skip(self.counts, what, e)
            return False, None
        return True, value

    def samples(
        self, items: Iterator[tuple[Sequence[int], Callable[[], Any], str]]
    ) -> tuple[list[Any], int]:
        """Fetches each ``(key, get, what)`` sample and maps it; returns the samples kept and
        how many were skipped (``what`` names the sample in errors)."""
        out = []
        skipped = 0
        for key, get, what in items:
            kept, value = self.one(key, get, what)
            if kept:
                out.append(value)
            else:
                skipped += 1
        return out, skipped

    def batch(
        self, value: Any, key: Sequence[int], what: str, state: Any, skipped: int = 0
    ) -> Done:
        """Transforms a collated batch (the ``Done`` is marked skipped when ``transform``
        raised under ``on_error="skip"``)."""
        if self.transform is not None:
            try:
                value = self.transform(value, self.seed, self.epoch, key)
            except Exception as e:
                if not self.skip:
                    annotate(e, f"transform of {what}, epoch {self.epoch}")
                    raise
                record_skip(self.counts, f"transform of {what}", e)
                return Done(None, state, skipped, skipped_batch=True)
        return Done(value, state, skipped)
