"""``zenith.torch.DataLoader``: a drop-in for ``torch.utils.data.DataLoader``'s common use.

Batches are dicts of ``torch.Tensor`` made from the Rust buffers without a copy
(``torch.from_numpy``). Under ``torch.distributed`` the rank and world size come from the
process group, so every rank reads its own share and all ranks get the same number of batches.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from zenith import _hf
from zenith._args import refuse_given
from zenith._loader import DataLoader as _CoreLoader
from zenith._map_dataset import IterableDatasetLoader, MapDatasetLoader
from zenith._stages import default_threads, user_fns
from zenith.exceptions import ValidationError
from zenith.text import Pack
from zenith.vision import ImageTransform

_warned: set[str] = set()
_DEFAULT_COLLATE = torch.utils.data.default_collate

# Tensors from DLPack capsules: torch's C entry point when it has one (the public
# `torch.from_dlpack` adds a Python-level type check per call on top of it).
_FROM_DLPACK: Callable[[Any], torch.Tensor] = getattr(
    torch._C, "_from_dlpack", torch.utils.dlpack.from_dlpack
)


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _dist_rank_world() -> tuple[int, int] | None:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


class DataLoader:
    """Streams batches of ``torch.Tensor`` from Parquet, CSV or Arrow IPC files, from tables in
    memory (see ``zenith.DataLoader``), or from a ``torch.utils.data.Dataset``.

    A map-style Dataset (``__len__``/``__getitem__``): Zenith plans the order (``shuffle``,
    ``seed``, rank split and ``state_dict`` resume as for files) and ``num_workers`` Python
    *threads* call ``__getitem__`` a few batches ahead, in order; ``collate_fn`` (default
    ``torch.utils.data.default_collate``) gets each batch's list of samples. An exception in
    ``__getitem__`` keeps its type and traceback with a note naming the index
    (``on_error="skip"`` drops and counts the sample). Threads pay off when ``__getitem__``
    reads files, decodes with PIL or runs NumPy/torch code (all release the GIL); pure-Python
    per-sample work is better served by torch's worker processes. An ``IterableDataset`` is
    passed through: its own order, batched and collated here, and it cannot be resumed.
    A Hugging Face ``datasets.Dataset`` is read from its Arrow files (see ``zenith.DataLoader``);
    a ``datasets.IterableDataset`` too when it streams local files, else it is passed through.

    ``map`` (per sample, before ``collate_fn``) and ``transform`` (per batch, after it) run on
    ``num_workers`` Python threads, in order, for every kind of source; see
    ``zenith.DataLoader`` for their seeded ``rng``, errors and skips. Samples given to ``map``
    are what a torch Dataset returns: a dict of one row's tensors (0-d for scalars) for files
    and tables, ``dataset[i]`` for a Dataset. For a torch Dataset the ``rng`` of ``map`` is
    seeded from (seed, epoch, index). torchvision's random transforms draw from torch's global
    generator, which threads share: draw from ``rng`` where a run must reproduce.

    Accepts ``torch.utils.data.DataLoader``'s common arguments:

    - ``batch_size``, ``shuffle``, ``drop_last``: as in torch (defaults 1, False, False).
    - ``num_workers``: decode *threads* in Rust (no worker processes, nothing pickled);
      ``0`` (torch's default) means Zenith's default (``ZENITH_NUM_WORKERS``, else one fewer
      than the usable CPUs: a core stays with the training loop).
    - ``pin_memory``: batches are copied into pinned host memory when CUDA is present;
      without CUDA it is ignored with a one-time warning.
    - ``collate_fn``: applied to each batch dict after conversion (the default keeps the dict).
    - ``prefetch_factor``: for files and tables, the prefetch queue depth (``prefetch_factor``
      times the thread count batches); for a torch Dataset, the batches fetched ahead of the one
      the training loop holds (default 1: each costs its size in memory).
    - ``persistent_workers``: accepted and ignored: decode threads are cheap and start per epoch.
    - ``sampler`` / ``batch_sampler``: rejected; Zenith plans the order itself (``shuffle``,
      ``seed``, rank/world size).

    Plus ``seed``, ``columns`` (see ``zenith.DataLoader``), ``device`` (``"cuda"`` moves each
    batch with non-blocking copies from pinned memory; falls back to CPU with a warning when
    CUDA is absent), ``rank``/``world_size`` (default: from ``torch.distributed``), ``on_error``,
    ``storage_options``, ``cache_dir`` and ``cache_limit`` (for ``s3://``/``gs://``/``az://``
    sources, see ``zenith.load``),
    for WebDataset shards ``image_size`` (images become ``uint8 [B, H, W, 3]`` tensors) and
    ``fields``, and ``image=zenith.vision.train(...)``/``eval(...)``: decode, crop, flip and
    normalize in Rust into one ``float32 [B, 3, H, W]`` tensor per batch (an ImageFolder
    directory, WebDataset shards, or a Parquet/Arrow image column; see ``zenith.vision``), and
    ``tokens=zenith.text.pack(...)``: documents of token ids packed into ``int64 [B, seq_len]``
    ``input_ids``, ``labels``, ``position_ids``, ``document_ids`` and ``attention_mask``
    tensors (see ``zenith.text``).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Any = None,
        batch_sampler: Any = None,
        num_workers: int = 0,
        collate_fn: Callable[[Any], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Any = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        seed: int | None = None,
        columns: Any = None,
        device: str | torch.device | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        on_error: str = "raise",
        shuffle_window: int | None = None,
        memory_budget: int | None = None,
        reuse_budget: int | None = None,
        format: str | None = None,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_limit: str | int | None = None,
        image_size: int | tuple[int, int] | None = None,
        fields: list[str] | None = None,
        map: Callable[..., Any] | None = None,
        transform: Callable[..., Any] | None = None,
        image: ImageTransform | None = None,
        tokens: Pack | None = None,
        filter: Any = None,
    ) -> None:
        if sampler is not None or batch_sampler is not None:
            raise ValidationError(
                "invalid argument `sampler`: zenith.torch.DataLoader plans the sample order "
                "itself; use shuffle=True and seed= for the order, and torch.distributed (or "
                "rank=/world_size=) to split it between processes"
            )
        if worker_init_fn is not None:
            raise ValidationError(
                "invalid argument `worker_init_fn`: there are no worker processes (decoding "
                "runs on Rust threads); transform batches in collate_fn instead"
            )
        if batch_size is None:
            raise ValidationError("invalid argument `batch_size`: must be a positive int")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValidationError(f"invalid argument `num_workers`: {num_workers!r}")
        del timeout, multiprocessing_context, persistent_workers
        if seed is None:
            seed = int(generator.initial_seed()) if generator is not None else 0
        dist = _dist_rank_world()
        if rank is None:
            rank = dist[0] if dist else 0
        if world_size is None:
            world_size = dist[1] if dist else 1
        threads = num_workers if num_workers > 0 else None
        prefetch = None
        if prefetch_factor is not None:
            prefetch = max(1, int(prefetch_factor) * (num_workers or 1))
        passed_through = _hf.is_iterable_dataset(dataset) and _hf.iterable_source(dataset) is None
        iterable = passed_through or isinstance(dataset, torch.utils.data.IterableDataset)
        self._collated = passed_through or isinstance(dataset, torch.utils.data.Dataset)
        self._staged = map is not None or transform is not None
        self._loader: _CoreLoader | MapDatasetLoader | IterableDatasetLoader
        if self._collated:
            refuse_given(
                {
                    "columns": columns,
                    "format": format,
                    "storage_options": storage_options,
                    "cache_dir": cache_dir,
                    "cache_limit": cache_limit,
                    "image_size": image_size,
                    "fields": fields,
                    "image": image,
                    "tokens": tokens,
                },
                f"it applies to files and tables, and `dataset` is a {type(dataset).__name__}",
            )
        collate_samples = collate_fn or torch.utils.data.default_collate
        self._collate_samples = collate_samples
        stage_threads = num_workers or default_threads()
        if iterable:
            sample_fn, batch_fn = user_fns(map, transform)
            self._loader = IterableDatasetLoader(
                dataset,
                batch_size=batch_size,
                drop_last=drop_last,
                collate_fn=collate_samples,
                map=sample_fn,
                transform=batch_fn,
                threads=stage_threads,
                seed=seed,
                on_error=on_error,
            )
        elif self._collated:
            sample_fn, batch_fn = user_fns(map, transform)
            self._loader = MapDatasetLoader(
                dataset,
                batch_size=batch_size,
                shuffle=bool(shuffle),
                seed=seed,
                drop_last=drop_last,
                rank=rank,
                world_size=world_size,
                threads=max(1, num_workers),
                prefetch=max(1, int(prefetch_factor or 1)),
                # None: torch's default collation, assembled in place as samples arrive.
                collate_fn=None if collate_samples is _DEFAULT_COLLATE else collate_samples,
                on_error=on_error,
                map=sample_fn,
                transform=batch_fn,
            )
        else:
            self._loader = _CoreLoader(
                dataset,
                batch_size=batch_size,
                shuffle=bool(shuffle),
                seed=seed,
                columns=columns,
                num_workers=threads,
                drop_last=drop_last,
                prefetch=prefetch,
                rank=rank,
                world_size=world_size,
                on_error=on_error,
                output="numpy",
                shuffle_window=shuffle_window,
                memory_budget=memory_budget,
                reuse_budget=reuse_budget,
                format=format,
                storage_options=storage_options,
                cache_dir=cache_dir,
                cache_limit=cache_limit,
                image_size=image_size,
                fields=fields,
                map=map,
                transform=transform,
                image=image,
                tokens=tokens,
                filter=filter,
            )
        self.batch_size = batch_size
        self.collate_fn = collate_fn
        self.rank = rank
        self.world_size = world_size
        cuda = torch.cuda.is_available()
        self.device: torch.device | None = None
        if device is not None:
            dev = torch.device(device)
            if dev.type == "cuda" and not cuda:
                _warn_once(
                    "device",
                    f"device={device!r} requested but CUDA is not available; "
                    "batches stay on the CPU",
                )
            else:
                self.device = dev
        self.pin_memory = bool(pin_memory) and cuda
        if pin_memory and not cuda:
            _warn_once("pin", "pin_memory=True ignored: CUDA is not available")
        if self.device is not None and self.device.type == "cuda":
            self.pin_memory = True

    @staticmethod
    def _tensors(batch: dict[str, Any]) -> dict[str, Any]:
        from_numpy = torch.from_numpy
        return {k: from_numpy(v) if type(v) is np.ndarray else v for k, v in batch.items()}

    def _convert(self, batch: dict[str, Any]) -> Any:
        out = self._tensors(batch)
        if self.pin_memory or self.device is not None:
            for name, value in out.items():
                if isinstance(value, torch.Tensor):
                    if self.pin_memory:
                        value = value.pin_memory()
                    if self.device is not None:
                        value = value.to(self.device, non_blocking=True)
                    out[name] = value
        return self.collate_fn(out) if self.collate_fn is not None else out

    def _moved(self, batch: Any) -> Any:
        """A collated batch of a torch Dataset, pinned and moved like the file path's."""
        if not (self.pin_memory or self.device is not None):
            return batch

        def move(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                if self.pin_memory:
                    value = value.pin_memory()
                if self.device is not None:
                    value = value.to(self.device, non_blocking=True)
                return value
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(move(v) for v in value)
            return value

        return move(batch)

    def __iter__(self) -> Iterator[Any]:
        """One pass over the current epoch."""
        if self._collated:
            return (self._moved(b) for b in self._loader)
        loader = self._loader
        if self._staged:
            assert isinstance(loader, _CoreLoader)
            batches = loader._staged(self._tensors, self._collate_samples, self.collate_fn)
            return (self._moved(b) for b in batches)
        if (
            isinstance(loader, _CoreLoader)
            and self.collate_fn is None
            and not self.pin_memory
            and self.device is None
        ):
            # The common case: tensors made as each batch is built, no Python step per batch,
            # each straight from a DLPack capsule that owns the column's buffer.
            return loader._inner.iter(_FROM_DLPACK, dlpack=True)
        return self._converted()

    def _converted(self) -> Iterator[Any]:
        """A pass that pins, moves or collates each batch in Python."""
        assert isinstance(self._loader, _CoreLoader)  # torch Datasets are collated in __iter__
        it = iter(self._loader)
        try:
            for batch in it:
                yield self._convert(batch)
        finally:
            it.close()

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return len(self._loader)

    @property
    def epoch(self) -> int:
        """The epoch the next pass runs (each completed pass advances it)."""
        return self._loader.epoch

    @property
    def classes(self) -> list[str] | None:
        """An ImageFolder source's class names in label order (or the ``classes`` of a torch
        dataset that has them, torchvision's ``ImageFolder``); ``None`` otherwise."""
        if isinstance(self._loader, _CoreLoader):
            return self._loader.classes
        classes = getattr(self._loader.dataset, "classes", None)
        return list(classes) if classes is not None else None

    @property
    def class_to_idx(self) -> dict[str, int] | None:
        """The class name to label mapping that goes with :attr:`classes`."""
        classes = self.classes
        return None if classes is None else {c: i for i, c in enumerate(classes)}

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of the next pass (as ``DistributedSampler.set_epoch``)."""
        self._loader.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Resume state (see ``zenith.DataLoader.state_dict``)."""
        return self._loader.state_dict()

    def load_state_dict(self, state: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
        """Continues from ``state`` (one rank's, or the list of every rank's) on the next pass
        (see ``zenith.DataLoader.load_state_dict``)."""
        self._loader.load_state_dict(state)

    def stats(self) -> dict[str, Any]:
        """Counters per stage (see ``zenith.DataLoader.stats``)."""
        return self._loader.stats()
