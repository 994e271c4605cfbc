"""Weighted mixtures of several loaders: ``zenith.mix``.

::

    web = zenith.torch.DataLoader("web/", batch_size=8, tokens=zenith.text.pack(2048, eos_id=2))
    code = zenith.torch.DataLoader("code/", batch_size=8, tokens=zenith.text.pack(2048, eos_id=2))
    mixed = zenith.mix({"web": web, "code": code}, weights={"web": 0.7, "code": 0.3},
                       batch_size=8)
    for step, batch in zip(range(steps), mixed):   # each batch: 8 samples, ~70% of them web
        ...
    torch.save(mixed.state_dict(), "mix.pt")       # every source's place, and the mix's

Sources are any Zenith loaders (rows, images, packed tokens alike) whose batches are dicts of
arrays or tensors with the same fields. Each output batch holds ``batch_size`` samples; which
source each sample comes from follows a deterministic schedule that keeps every source's share
of the samples drawn so far within one sample of its weight (the source furthest below its
share goes next), so any 1,000 consecutive samples hold each source within 0.2% of its weight.
Within a source the order is the source's own (shuffled, split by rank, resumable).

A source that reaches the end of its epoch starts its next epoch (a new shuffle) on its own,
``exhausted="restart"`` (the default; the mixture then never ends: stop after your number of
steps), or ends the mixture, ``exhausted="stop"``. ``per="batch"`` takes whole batches from the
sources instead (for sources whose fields differ), the schedule counting batches.

``state_dict()`` holds each source's state as of the batch being drawn from and how many of its
samples were taken, and the counts of the schedule; ``load_state_dict`` on a mixture of the
same sources continues with no sample lost or repeated, with any ``num_workers``, under the
world size it was saved with (a source part way through a batch cannot be split again; another
world size is refused). Weights may differ when resuming: the schedule then starts over with the
new weights from that point.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from zenith.exceptions import ValidationError

__all__ = ["Mix", "mix"]

STATE_VERSION = 1


def _rows(batch: Mapping[str, Any]) -> int:
    for value in batch.values():
        return len(value)
    return 0


def _concat(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Joins batch slices field by field (torch tensors with ``torch.cat``, arrays with NumPy)."""
    if len(parts) == 1:
        return dict(parts[0])
    out: dict[str, Any] = {}
    for key in parts[0]:
        values = [p[key] for p in parts]
        if type(values[0]).__module__.startswith("torch"):
            import torch

            out[key] = torch.cat(values)
        else:
            import numpy as np

            out[key] = np.concatenate([np.asarray(v) for v in values])
    return out


class _Source:
    """One source's place: its iterator, the batch being drawn from and how much of it."""

    def __init__(self, name: str, loader: Any) -> None:
        self.name = name
        self.loader = loader
        self.it: Iterator[Any] | None = None
        self.batch: Mapping[str, Any] | None = None
        self.taken = 0
        # The loader's state before `batch` (resume re-reads it and drops `taken` samples).
        self.state: dict[str, Any] | None = None
        self.skip = 0

    def _next_batch(self, restart: bool) -> bool:
        """Moves to the source's next batch; False when its epoch ended and it does not
        restart."""
        while True:
            if self.it is None:
                self.it = iter(self.loader)
            state = self.loader.state_dict()
            try:
                batch = next(self.it)
            except StopIteration:
                self.it = None
                if not restart:
                    return False
                continue
            if not isinstance(batch, Mapping):
                raise ValidationError(
                    f"invalid argument `sources`: source {self.name!r} gives "
                    f"{type(batch).__name__} batches; zenith.mix needs dicts of arrays"
                )
            self.state, self.batch, self.taken = state, batch, 0
            if self.skip:
                self.taken, self.skip = min(self.skip, _rows(batch)), 0
            if self.taken < _rows(batch):
                return True

    def take(self, n: int, restart: bool) -> Mapping[str, Any] | None:
        """Up to `n` next samples (a whole batch when `n` is None), or None when done."""
        exhausted = self.batch is None or self.taken >= _rows(self.batch)
        if exhausted and not self._next_batch(restart):
            return None
        assert self.batch is not None
        end = min(self.taken + n, _rows(self.batch))
        part = {k: v[self.taken : end] for k, v in self.batch.items()}
        self.taken = end
        return part

    def close(self) -> None:
        close = getattr(self.it, "close", None)
        if close is not None:
            close()
        self.it = None


class Mix:
    """Samples (or batches) drawn from several loaders in set proportions (see :func:`zenith.mix`)."""

    def __init__(
        self,
        sources: Mapping[str, Any],
        weights: Mapping[str, float] | None = None,
        batch_size: int | None = None,
        exhausted: str = "restart",
        per: str = "sample",
    ) -> None:
        if not isinstance(sources, Mapping) or not sources:
            raise ValidationError("invalid argument `sources`: expected a dict of name -> loader")
        names = list(sources)
        for name, loader in sources.items():
            if not all(hasattr(loader, a) for a in ("state_dict", "load_state_dict", "__iter__")):
                raise ValidationError(
                    f"invalid argument `sources`: {name!r} is a {type(loader).__name__}, not a "
                    "loader with state_dict() (zenith.DataLoader or zenith.torch.DataLoader)"
                )
        weights = dict(weights) if weights is not None else dict.fromkeys(names, 1.0)
        if set(weights) != set(names):
            raise ValidationError(
                f"invalid argument `weights`: names {sorted(weights)} differ from the sources' "
                f"{sorted(names)}"
            )
        bad = {k: v for k, v in weights.items() if not isinstance(v, (int, float)) or v < 0}
        total = sum(float(v) for v in weights.values()) if not bad else 0.0
        if bad or total <= 0:
            raise ValidationError(
                f"invalid argument `weights`: expected numbers >= 0 with a positive sum, got {weights}"
            )
        if exhausted not in ("restart", "stop"):
            raise ValidationError(
                f'invalid argument `exhausted`: {exhausted!r}; expected "restart" or "stop"'
            )
        if per not in ("sample", "batch"):
            raise ValidationError(f'invalid argument `per`: {per!r}; expected "sample" or "batch"')
        if per == "sample" and (
            not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
        ):
            raise ValidationError(
                f"invalid argument `batch_size`: per='sample' needs a positive int, got {batch_size!r}"
            )
        self._names = names
        self._weights = {k: float(v) / total for k, v in weights.items()}
        self.batch_size = batch_size
        self.exhausted = exhausted
        self.per = per
        self._sources = {n: _Source(n, sources[n]) for n in names}
        self._counts = dict.fromkeys(names, 0)

    @property
    def weights(self) -> dict[str, float]:
        """The weights in use, normalised to sum to 1."""
        return dict(self._weights)

    def _pick(self) -> str:
        """The source furthest below its share of what was drawn so far (ties: the first)."""
        drawn = sum(self._counts.values()) + 1
        return max(self._names, key=lambda n: self._weights[n] * drawn - self._counts[n])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        restart = self.exhausted == "restart"
        try:
            while True:
                if self.per == "batch":
                    name = self._pick()
                    part = self._sources[name].take(1 << 62, restart)
                    if part is None:
                        return
                    self._counts[name] += 1
                    yield dict(part)
                    continue
                assert self.batch_size is not None
                # The batch's schedule, then one slice per run of one source.
                names = []
                for _ in range(self.batch_size):
                    name = self._pick()
                    self._counts[name] += 1
                    names.append(name)
                runs: list[list[Any]] = []
                for name in names:
                    if runs and runs[-1][0] == name:
                        runs[-1][1] += 1
                    else:
                        runs.append([name, 1])
                parts: list[Mapping[str, Any]] = []
                done = False
                for name, n in runs:
                    while n > 0 and not done:
                        part = self._sources[name].take(n, restart)
                        if part is None:
                            done = True
                        else:
                            n -= _rows(part)
                            parts.append(part)
                if parts:
                    self._check_fields(parts)
                    yield _concat(parts)
                if done:
                    return
        finally:
            for s in self._sources.values():
                s.close()

    def _check_fields(self, parts: list[Mapping[str, Any]]) -> None:
        keys = set(parts[0])
        for p in parts[1:]:
            if set(p) != keys:
                raise ValidationError(
                    f"invalid argument `sources`: batches with fields {sorted(keys)} and "
                    f"{sorted(p)} cannot share a batch; give sources with the same fields or "
                    "per='batch'"
                )

    def state_dict(self) -> dict[str, Any]:
        """A small JSON-serialisable state: each source's loader state as of the batch being
        drawn from, the samples taken from it, and the schedule's counts."""
        sources = {}
        for name, s in self._sources.items():
            if s.batch is None:
                sources[name] = {"state": s.loader.state_dict(), "taken": s.skip}
            else:
                sources[name] = {"state": copy.deepcopy(s.state), "taken": s.taken}
        return {
            "version": STATE_VERSION,
            "per": self.per,
            "weights": dict(self._weights),
            "counts": dict(self._counts),
            "sources": sources,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continues from ``state`` (of a mixture of the same sources) on the next pass."""
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            raise ValidationError("invalid argument `state`: expected the dict from Mix.state_dict()")
        if set(state.get("sources", {})) != set(self._names) or state.get("per") != self.per:
            raise ValidationError(
                f"invalid argument `state`: it is of a mixture of {sorted(state.get('sources', {}))} "
                f"per {state.get('per')!r}; this one mixes {sorted(self._names)} per {self.per!r}"
            )
        for name, s in self._sources.items():
            saved = state["sources"][name]
            if int(saved["taken"]) > 0:
                # Part of a source batch was taken: the rest is that batch's, which only the
                # same rank split reads again.
                then = saved["state"].get("plan", {}).get("world_size")
                now = s.loader.state_dict().get("plan", {}).get("world_size")
                if then != now:
                    raise ValidationError(
                        f"invalid argument `state`: source {name!r} was saved part way through "
                        f"a batch under world_size {then}; this mixture's source has world_size "
                        f"{now}: a mixture continues under the world size it was saved with"
                    )
        for name, s in self._sources.items():
            saved = state["sources"][name]
            s.close()
            s.loader.load_state_dict(saved["state"])
            s.batch, s.state, s.taken, s.skip = None, None, 0, int(saved["taken"])
        same = {k: round(v, 12) for k, v in state["weights"].items()} == {
            k: round(v, 12) for k, v in self._weights.items()
        }
        # New weights start the schedule over from here.
        self._counts = {n: int(state["counts"][n]) if same else 0 for n in self._names}


def mix(
    sources: Mapping[str, Any],
    weights: Mapping[str, float] | None = None,
    batch_size: int | None = None,
    exhausted: str = "restart",
    per: str = "sample",
) -> Mix:
    """Mixes ``sources`` (name -> Zenith loader) in the proportions ``weights`` (name ->
    weight, equal when ``None``).

    Args:
        sources: Zenith loaders (``zenith.DataLoader``, ``zenith.torch.DataLoader``; rows,
            images or packed tokens) whose batches are dicts with the same fields.
        weights: each source's share of the samples; normalised to sum to 1.
        batch_size: samples per output batch (``per="sample"``).
        exhausted: a source at the end of its epoch starts its next one (``"restart"``, the
            mixture never ends) or ends the mixture (``"stop"``).
        per: ``"sample"`` (batches mix samples of several sources) or ``"batch"`` (each
            output batch is one source's batch; the schedule counts batches).

    The source of each sample follows a deterministic schedule: the source furthest below its
    share of what was drawn so far goes next, so every source stays within one sample of its
    weight at every point (within 0.2% over any 1,000 consecutive samples). ``state_dict()``
    holds each source's state as of the batch being drawn from and the samples taken from it;
    ``load_state_dict`` continues with no sample lost or repeated, with any ``num_workers``,
    and with other weights (the schedule starts over from there)."""
    return Mix(sources, weights, batch_size, exhausted, per)
