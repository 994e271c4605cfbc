"""A batch of a torch Dataset assembled in place while its samples are fetched.

torch's ``default_collate`` needs the whole list of samples, then stacks each tensor into a new
batch tensor: a batch exists twice at its peak, and the samples fetched ahead wait in memory
until their batch is complete. Here each sample's tensors are copied into the batch's tensors by
the thread that fetched it (preallocated when the first sample arrives) and dropped at once, so
a batch in flight costs its own size. The rest of the sample (its container, numbers, strings)
is kept with each tensor replaced by a marker, and collated at the end by torch's own
``collate`` with the markers mapped to the assembled tensors: the result has exactly
``default_collate``'s structure and types. A sample whose structure, shape or dtype differs
from the first one's turns the batch back into a plain list of samples given to
``default_collate``, which then behaves (and fails) as it always does.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch.utils import _pytree
from torch.utils.data._utils.collate import collate, default_collate, default_collate_fn_map


class _Slot:
    """Stands for the tensor at leaf ``leaf`` of a sample, in the batch's assembled tensors."""

    __slots__ = ("leaf",)

    def __init__(self, leaf: int) -> None:
        self.leaf = leaf


class Assembly:
    """The samples of one batch, ``n`` of them, as they arrive in any order."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._lock = threading.Lock()
        self._spec: Any = None
        self._stacks: dict[int, torch.Tensor] | None = None
        self._skeletons: list[Any] = [None] * n
        self._kept = [False] * n
        # Samples as they are, once the batch stopped being assembled in place.
        self._plain: list[Any] | None = None

    def put(self, j: int, sample: Any) -> None:
        """Places sample ``j`` (called from the fetching thread; the copy is made under the
        batch's lock, so a batch that stops being assembled never sees half a sample)."""
        leaves, spec = _pytree.tree_flatten(sample)
        tensors = {i: leaf for i, leaf in enumerate(leaves) if type(leaf) is torch.Tensor}
        with self._lock:
            self._kept[j] = True
            if self._plain is None and self._stacks is None:
                self._spec = spec
                self._stacks = {
                    i: torch.empty((self.n, *t.shape), dtype=t.dtype)
                    for i, t in tensors.items()
                    if t.layout == torch.strided and t.device.type == "cpu"
                }
            if self._plain is None and not self._fits(spec, tensors):
                self._unassemble()
            if self._plain is not None:
                self._plain[j] = sample
                return
            stacks = self._stacks
            assert stacks is not None
            for i, t in tensors.items():
                stacks[i][j].copy_(t)
                leaves[i] = _Slot(i)
            self._skeletons[j] = _pytree.tree_unflatten(leaves, spec)

    def _fits(self, spec: Any, tensors: dict[int, torch.Tensor]) -> bool:
        stacks = self._stacks or {}
        return (
            spec == self._spec
            and len(tensors) == len(stacks)
            and all(
                i in stacks and t.shape == stacks[i].shape[1:] and t.dtype == stacks[i].dtype
                for i, t in tensors.items()
            )
        )

    def _unassemble(self) -> None:
        """Back to a list of samples (under the lock): those placed so far are rebuilt with
        views of the assembled tensors."""
        plain: list[Any] = [None] * self.n
        stacks = self._stacks or {}
        for j, skeleton in enumerate(self._skeletons):
            if skeleton is not None:
                leaves, spec = _pytree.tree_flatten(skeleton)
                leaves = [stacks[x.leaf][j] if isinstance(x, _Slot) else x for x in leaves]
                plain[j] = _pytree.tree_unflatten(leaves, spec)
        self._plain = plain
        self._skeletons = []

    def collate(self) -> Any:
        """The batch, as ``default_collate`` of the samples placed (in order) would give it;
        ``None`` when none was."""
        kept = [j for j in range(self.n) if self._kept[j]]
        if not kept:
            return None
        if self._plain is not None:
            return default_collate([self._plain[j] for j in kept])
        stacks = self._stacks or {}
        if len(kept) < self.n:  # skipped samples leave holes: close them
            index = torch.tensor(kept)
            stacks = {i: s.index_select(0, index) for i, s in stacks.items()}

        def assembled(batch: list[_Slot], *, collate_fn_map: Any = None) -> torch.Tensor:
            del collate_fn_map
            return stacks[batch[0].leaf]

        fn_map = {_Slot: assembled, **default_collate_fn_map}
        return collate([self._skeletons[j] for j in kept], collate_fn_map=fn_map)
