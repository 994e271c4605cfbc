"""``zenith.DataLoader``: the streaming loader over Parquet, CSV, Arrow IPC and WebDataset."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from functools import partial
from typing import Any

from zenith import _hf, _zenith
from zenith._args import (
    check_int,
    columns_spec,
    fields_of,
    filter_json,
    image_size_of,
    paths_of,
    refuse_given,
    storage_options_of,
    table_of,
)
from zenith._stages import (
    Counts,
    Done,
    Pass,
    default_threads,
    given,
    numpy_collate,
    ordered,
    rows_of,
    user_fns,
)
from zenith.exceptions import ValidationError
from zenith.text import Pack, pack_spec
from zenith.vision import ImageTransform, image_spec


class DataLoader:
    """Streams shuffled, exact-size batches from files, decoded on Rust threads.

    Args:
        source: a file, directory, glob, or a list of them; or data already in memory: anything
            with ``__arrow_c_stream__`` (pyarrow Table or RecordBatchReader, polars DataFrame,
            DuckDB relation, ...), a pandas DataFrame, or a dict of NumPy arrays (a 2-D array
            becomes one ``[B, k]`` field), read without a copy where the layout allows and
            shuffled, split and resumed as files are (units of 65,536 rows); or a Hugging Face
            ``datasets.Dataset`` (its memory-mapped Arrow files read directly) or a
            ``datasets.IterableDataset`` over local Parquet/Arrow files.
        batch_size: rows per batch; the last batch of an epoch is shorter unless ``drop_last``.
        shuffle: permute row groups and rows each epoch (``False`` gives file order).
        seed: base seed; the order depends only on (files, seed, epoch, rank, world_size).
        columns: ``None`` (all), a list of names, or a dict mapping an output name to one column,
            to a list of numeric columns stacked in Rust into one ``[B, k]`` array, or to
            ``{"columns": [...], "dtype": "float32"}``.
        num_workers: decode threads (default ``ZENITH_NUM_WORKERS``, else one fewer than the
            CPUs this process may use, at least 1: a core stays with the consumer).
        drop_last: drop the last short batch.
        prefetch: batches prepared ahead of the consumer (default 8).
        rank, world_size: this process's share; every rank gets the same number of rows
            (the last ``rows % world_size`` rows of an epoch's order are left out).
        on_error: ``"raise"`` or ``"skip"`` (corrupt units are skipped, counted in ``stats()``
            and logged with their file and row group).
        output: ``"numpy"`` (dict of arrays) or ``"arrow"`` (``pyarrow.RecordBatch``).
        shuffle_window: rows permuted together; by default the whole dataset when it fits
            ``memory_budget``, else a window sized from it.
        memory_budget: bytes the shuffle may hold (default 200 MB: windows of 100 MB of rows).
        reuse_budget: bytes of decoded data (in output layout) kept after the first epoch so that
            later epochs only permute and gather, used only when the whole dataset fits (a
            packed loader, ``tokens=``, keeps none unless this is given); default
            a quarter of the memory available (``ZENITH_REUSE_BYTES`` overrides) shared by the
            ranks on this machine (``LOCAL_WORLD_SIZE``, else ``world_size``), 0 never keeps.
            Order, rank split, shuffle and ``state_dict`` are the same either way.
        format: format override (``parquet``, ``csv``, ``arrow``, ``arrows``, ``webdataset``,
            ``imagefolder``, ``json`` (JSON Lines), ``text`` (a ``text`` row per line of
            ``.txt`` files), ``tokens``: flat ``.bin`` token files, detected by their name when
            their first bytes are no other format's, and ``.npy`` token shards; see
            ``zenith.text``). A single local
            directory of class directories of images (``root/<class>/<image>``) is read as an
            ImageFolder without it: columns ``image`` (the file's bytes) and ``label``
            (``int64``, classes sorted by name, as torchvision's ``ImageFolder``), each image
            one unit.
        storage_options: object-storage settings for ``s3://``/``gs://``/``az://`` sources
            (see ``zenith.load``); they override the environment.
        cache_dir: a folder that keeps fetched objects and listings for later epochs and for
            every process of the machine naming it (see ``zenith.load``).
        cache_limit: the cache folder's size limit, bytes or ``"200GB"`` (see ``zenith.load``).
        image_size: WebDataset: decode image fields to ``uint8 [B, H, W, 3]`` batches of this
            ``(height, width)`` (center-crop, then resize); raw bytes when ``None``.
        fields: WebDataset: the fields (extensions) to keep, e.g. ``["jpg", "cls"]``.
        map: a function applied to each sample (a dict of one row's values) before the batch
            is collated (mapped samples are stacked per key into NumPy arrays); needs
            ``output="numpy"``.
        transform: a function applied to each collated batch.
        image: an image transform run in Rust on the decode threads,
            ``zenith.vision.train(...)`` or ``zenith.vision.eval(...)``: the image column
            (an ImageFolder's ``image``, a WebDataset ``jpg``/``png``/``webp`` field, or a
            Parquet/Arrow binary or ``struct<bytes, path>`` column) becomes one
            ``float32 [B, 3, H, W]`` (or ``uint8``, or NHWC) array per batch.
        tokens: sequence packing, ``zenith.text.pack(seq_len, column, mode, ...)``: each row of
            the token column is a document, and each batch is ``batch_size`` sequences of
            ``seq_len`` tokens (``input_ids``, ``labels``, ``position_ids``, ``document_ids``,
            ``attention_mask``, all ``int64 [B, seq_len]``; see ``zenith.text``). ``columns``
            and ``map`` do not apply; ``len()`` raises ``TypeError``.
        filter: rows to keep, as ``pyarrow.parquet.read_table``'s ``filters`` (a list of
            ``(column, op, value)`` tuples that must all hold, ``op`` one of ``=``, ``==``,
            ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``; or a list of such lists of
            which one must hold; nulls match only ``not in``). Parquet row groups whose
            statistics rule it out are never read (nor fetched from object storage); the rows
            of the others are filtered in the engine as they are decoded. The epoch's order,
            rank split and ``state_dict`` count the rows read before the filter, so resuming is
            exact; ``len()`` is then an upper bound, and ranks may get different numbers of
            batches.

    ``map`` and ``transform`` run on a pool of Python threads (``num_workers`` of them, the
    decode default when not given), a bounded number of batches ahead (``prefetch``), and the
    batches arrive in the planned order whatever the thread count. A function with an ``rng``
    parameter gets a ``numpy.random.Generator`` seeded from (seed, epoch, rank, position in
    the epoch), so reruns and resumed runs draw the same numbers for the same samples. An
    exception in them keeps its type and traceback with a note naming the sample (or batch)
    and epoch; with ``on_error="skip"`` the sample (or batch) is dropped and counted in
    ``stats()`` (``skipped_samples``, ``skipped_batches``). Threads run Python in parallel
    where the code releases the GIL (NumPy, torch, PIL, I/O) or on a free-threaded CPython.

    WebDataset shards (a directory, glob, brace pattern or list of ``.tar``/``.tar.gz``) are
    read like any other file: each shard is cut into units of about 1 MiB of samples (a
    ``.tar.gz`` shard is one unit), so unit permutation, shuffle windows, rank split and
    resume work per sample. With ``on_error="skip"`` a corrupt member (truncated tar, bad
    image, missing field) skips the unit that holds it, counted in ``stats()``.

    Each completed pass advances the epoch; ``set_epoch`` sets it explicitly. ``state_dict()``
    taken mid-epoch and given to ``load_state_dict`` makes the next pass continue with no row
    lost or repeated, also with another ``num_workers`` or ``world_size`` (for a packed loader,
    from the list of every rank's state).
    """

    def __init__(
        self,
        source: Any,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        columns: Any = None,
        num_workers: int | None = None,
        drop_last: bool = False,
        prefetch: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        on_error: str = "raise",
        output: str = "numpy",
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
        self._map, self._transform = user_fns(map, transform)
        if self._map is not None and tokens is not None:
            raise ValidationError(
                "invalid argument `map`: a packed loader's rows are sequences made from "
                "several documents; use transform= on the whole batch"
            )
        if self._map is not None and output != "numpy":
            raise ValidationError(
                f"invalid argument `map`: samples are split from NumPy batches; with "
                f"output={output!r} use transform= on the whole batch"
            )
        hf = _hf_source(source)
        if hf is not None:
            paths, table = hf.paths, hf.table
            format = format if format is not None or table is not None else hf.format
            columns = columns if columns is not None else hf.columns
        else:
            table = table_of(source)
            paths = paths_of(source) if table is None else []
        if table is not None:
            refuse_given(
                {
                    "format": format,
                    "storage_options": storage_options,
                    "cache_dir": cache_dir,
                    "cache_limit": cache_limit,
                    "image_size": image_size,
                    "fields": fields,
                },
                "it applies to files, and `source` is data in memory",
            )
        check_int("batch_size", batch_size, 1)
        check_int("seed", seed, 0)
        check_int("num_workers", num_workers, 1, optional=True)
        check_int("prefetch", prefetch, 1, optional=True)
        check_int("world_size", world_size, 1)
        check_int("rank", rank, 0)
        check_int("shuffle_window", shuffle_window, 1, optional=True)
        check_int("memory_budget", memory_budget, 1, optional=True)
        check_int("reuse_budget", reuse_budget, 0, optional=True)
        # Option strings (on_error, output, format) and the rank are checked by the engine, the
        # one place that parses them for Python and C alike.
        self.batch_size = batch_size
        self.output = output
        self._seed = seed
        self._rank = rank
        self._skip = on_error == "skip"
        self._counts = Counts()
        self._threads = num_workers or default_threads()
        self._ahead = prefetch or 2 * self._threads
        # The resume state as of the last batch handed to the consumer while a pass with
        # map/transform runs ahead of it.
        self._delivered: dict[str, Any] | None = None
        self._inner = _zenith.Loader(
            paths,
            batch_size,
            bool(shuffle),
            seed,
            columns_spec(columns),
            num_workers,
            bool(drop_last),
            prefetch,
            rank,
            world_size,
            on_error,
            output,
            shuffle_window=shuffle_window,
            memory_budget=memory_budget,
            reuse_budget=reuse_budget,
            format=format,
            storage_options=storage_options_of(storage_options, cache_dir, cache_limit),
            image_size=image_size_of(image_size),
            fields=fields_of(fields),
            table=table,
            image=image_spec(image),
            tokens=pack_spec(tokens),
            filter=filter_json(filter),
        )

    def __iter__(self) -> _zenith.LoaderIter | Generator[Any, None, None]:
        """Starts a pass over the current epoch; breaking out (or ``close()``) stops its
        threads."""
        self._delivered = None
        if self._map is None and self._transform is None:
            return self._inner.iter()
        return self._staged()

    def _staged(
        self,
        convert: Callable[[Any], Any] | None = None,
        collate: Callable[[list[Any]], Any] = numpy_collate,
        whole: Callable[[Any], Any] | None = None,
    ) -> Generator[Any, None, None]:
        """A pass whose batches go through ``map``/``transform`` on the Python threads.

        ``convert`` turns each engine batch into the consumer's kind (torch tensors) first;
        ``collate`` stacks mapped samples; ``whole`` is applied to a batch that was not mapped
        (torch's ``collate_fn`` on the batch dict)."""
        it = self._inner.iter()
        run = Pass(
            seed=self._seed,
            epoch=self._inner.epoch,
            map=self._map,
            transform=self._transform,
            collate=collate,
            skip=self._skip,
            counts=self._counts,
        )
        task = partial(self._task, run, convert, whole)

        def tasks() -> Iterator[Callable[[], Done]]:
            position = json.loads(self._inner.state_json())["plan"]["rows"]
            for batch in it:
                state = json.loads(self._inner.state_json())
                yield partial(task, batch, position, state)
                position = state["plan"]["rows"]

        try:
            for done in ordered(tasks(), self._threads, self._ahead, self._counts, "zenith-map"):
                self._delivered = done.state
                yield done.value
            self._delivered = None
        finally:
            it.close()

    def _task(
        self,
        run: Pass,
        convert: Callable[[Any], Any] | None,
        whole: Callable[[Any], Any] | None,
        batch: Any,
        position: int,
        state: dict[str, Any],
    ) -> Done:
        """One batch's work on a pool thread: map each sample, collate, transform."""
        rank = self._rank
        skipped = 0
        if convert is not None:
            batch = convert(batch)
        if run.map is None:
            if whole is not None:
                batch = whole(batch)
        else:
            rows = rows_of(batch)
            samples, skipped = run.samples(
                (
                    ((rank, position + i), given(row), f"the sample at position {position + i}")
                    for i, row in enumerate(rows)
                )
            )
            if not samples:
                return Done(None, state, skipped, empty=True)
            batch = run.collate(samples)
        what = f"the batch at position {position}"
        return run.batch(batch, (rank, position), what, state, skipped)

    def __len__(self) -> int:
        """Batches this rank receives per epoch (a packed loader has no length: ``TypeError``)."""
        return len(self._inner)

    @property
    def epoch(self) -> int:
        """The epoch the next pass runs."""
        return self._inner.epoch

    @property
    def rows_per_epoch(self) -> int:
        """Rows this rank receives per epoch."""
        return self._inner.rows_per_epoch

    @property
    def classes(self) -> list[str] | None:
        """An ImageFolder source's class names in label order (torchvision's
        ``ImageFolder.classes``); ``None`` for other sources."""
        return self._inner.classes

    @property
    def class_to_idx(self) -> dict[str, int] | None:
        """An ImageFolder source's class name to label mapping; ``None`` for other sources."""
        classes = self._inner.classes
        return None if classes is None else {c: i for i, c in enumerate(classes)}

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of the next pass (its order changes with the epoch)."""
        check_int("epoch", epoch, 0)
        self._inner.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """A small, JSON-serialisable resume state (epoch, seed, rows consumed, ...), as of
        the last batch handed to the consumer."""
        if self._delivered is not None:
            return self._delivered
        state: dict[str, Any] = json.loads(self._inner.state_json())
        return state

    def load_state_dict(self, state: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
        """Continues from ``state`` on the next pass.

        ``state`` is this rank's ``state_dict()``, or the list of the ``state_dict()`` of every
        rank of the run that saved them (gathered, e.g., with
        ``torch.distributed.all_gather_object``). Ranks of a packed loader (``tokens=``) stop
        at their own documents, so continuing its epoch under another ``world_size`` needs that
        list; batches of rows keep the ranks in step, and one rank's state is enough.
        """
        if isinstance(state, dict):
            text = json.dumps(state)
        elif isinstance(state, (list, tuple)) and state and all(isinstance(s, dict) for s in state):
            text = json.dumps(list(state))
        else:
            raise ValidationError(
                "invalid argument `state`: expected the dict from state_dict(), or a non-empty "
                "list of the dicts of every rank"
            )
        self._inner.load_state_json(text)
        self._delivered = None

    def stats(self) -> dict[str, Any]:
        """Rows, batches, bytes, seconds per stage (read, decode, shuffle, collate, wait),
        skipped units with their locations and the rows ``filter`` dropped
        (``filtered_rows``), summed over passes; ``iterate_s`` (wall seconds of
        the passes) and ``bottleneck``: the stage that held batches back most (``"reading"``,
        ``"decoding"``, ``"collate"``, ``"packing"``, ``"handover"``, or ``"consumer"`` when
        batches were ready and the code between them set the pace), with
        ``bottleneck_hint``, the knob that would move it (``None`` before the first batch)."""
        stats: dict[str, Any] = json.loads(self._inner.stats_json())
        if self._map is not None or self._transform is not None:
            stats |= self._counts.as_stats()
        return stats


def _hf_source(source: Any) -> _hf.HfSource | None:
    """The rows of a Hugging Face ``datasets`` object, ``None`` for any other source."""
    if _hf.is_dataset(source):
        return _hf.dataset_source(source)
    if _hf.is_iterable_dataset(source):
        found = _hf.iterable_source(source)
        if found is None:
            raise ValidationError(
                "invalid argument `source`: this datasets.IterableDataset has operations of its "
                "own (map, filter, shuffle buffer, split_dataset_by_node, remote files) that "
                "zenith cannot plan; give the files it streams, the Dataset it came from, or use "
                "zenith.torch.DataLoader, which passes it through"
            )
        return found
    return None
