"""Hugging Face ``datasets`` as sources, read from their Arrow data rather than row by row.

A ``datasets.Dataset`` keeps its rows in Arrow IPC stream files (``save_to_disk``, the cache
of ``load_dataset`` and ``map``) that ``datasets`` memory-maps. When the dataset is exactly its
files (no indices mapping, no column edits), Zenith reads those files itself, memory-mapped
and zero-copy, like any other ``.arrow`` file; otherwise it takes the dataset's Arrow table
(still memory-mapped), and a dataset with an indices mapping (after ``select``, ``filter``,
``shuffle``, ``train_test_split``) is gathered once through it with ``pyarrow`` ``take`` (one
copy: ``flatten_indices()`` saves it for later runs). The features decode as their storage:
``ClassLabel`` is ``int64``, ``Sequence``/``List`` a list column (``[B, k]`` when of fixed
length), ``Value`` its type; ``Image`` and ``Audio`` stay ``struct<bytes, path>`` columns.

A ``datasets.IterableDataset`` streaming local Parquet or Arrow files (``load_dataset(...,
streaming=True)``) or made by ``Dataset.to_iterable_dataset()`` is read from those files;
one with operations of its own (``map``, ``filter``, ``split_dataset_by_node``, ...) cannot be
planned by Zenith and is refused by ``zenith.DataLoader`` (``zenith.torch.DataLoader`` passes
it through).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zenith.exceptions import ValidationError


@dataclass
class HfSource:
    """Where a ``datasets`` object's rows are: files (with a format) or an Arrow table, and the
    columns its format selects (``with_format(columns=...)``), ``None`` for all."""

    paths: list[str]
    format: str | None
    table: Any
    columns: list[str] | None


def _is(obj: Any, module: str, name: str) -> bool:
    kind = type(obj)
    return kind.__name__ == name and kind.__module__ == module


def is_dataset(obj: Any) -> bool:
    """A map-style ``datasets.Dataset``."""
    return _is(obj, "datasets.arrow_dataset", "Dataset")


def is_iterable_dataset(obj: Any) -> bool:
    """A ``datasets.IterableDataset``."""
    return _is(obj, "datasets.iterable_dataset", "IterableDataset")


def _mapped_paths(table: Any) -> list[str] | None:
    """The files a ``datasets`` table is exactly, in order, or ``None`` when it is anything
    else (in memory, sliced, renamed, columns added or dropped)."""
    from datasets.table import ConcatenationTable, MemoryMappedTable

    if isinstance(table, MemoryMappedTable):
        if all(replay[0] == "replace_schema_metadata" for replay in table.replays):
            return [table.path]
        return None
    if isinstance(table, ConcatenationTable):
        paths: list[str] = []
        for row in table.blocks:
            if len(row) != 1:  # columns joined side by side
                return None
            part = _mapped_paths(row[0])
            if part is None:
                return None
            paths.extend(part)
        return paths
    return None


def dataset_source(ds: Any) -> HfSource:
    """The rows of a ``datasets.Dataset`` (see the module doc)."""
    if ds._format_type == "custom":
        raise ValidationError(
            "invalid argument `source`: this datasets.Dataset has a transform set "
            "(set_transform/with_transform), which zenith cannot run on the Arrow data it reads; "
            "pass the function as map= (per sample) or transform= (per batch) instead"
        )
    columns = list(ds._format_columns) if ds._format_columns is not None else None
    if ds._indices is None:
        paths = _mapped_paths(ds.data)
        if paths:
            return HfSource(paths, "arrows", None, columns)
        return HfSource([], None, ds.data.table, columns)
    indices = ds._indices.column(0)
    return HfSource([], None, ds.data.table.take(indices), columns)


def iterable_source(ds: Any) -> HfSource | None:
    """The files (or tables) of a ``datasets.IterableDataset`` that is exactly them, ``None``
    when it has operations of its own."""
    if ds._distributed is not None:
        return None
    ex = ds._ex_iterable
    if type(ex).__name__ != "ArrowExamplesIterable":
        return None
    kwargs = ex.kwargs
    if "shards" in kwargs and set(kwargs) <= {"shards", "batch_size"}:
        parts = [dataset_source(shard) for shard in kwargs["shards"]]
        if all(p.paths for p in parts):
            return HfSource([path for p in parts for path in p.paths], "arrows", None, None)
        import pyarrow as pa

        # A part read from files is exactly its dataset's (memory-mapped) table.
        tables = [
            p.table if p.table is not None else shard.data.table
            for p, shard in zip(parts, kwargs["shards"], strict=True)
        ]
        return HfSource([], None, pa.concat_tables(tables), None)
    if "files" not in kwargs or any(g is not None for g in kwargs.get("row_groups_list") or []):
        return None
    builder = type(getattr(ex.generate_tables_fn, "__self__", None)).__name__.lower()
    formats = {"parquet": "parquet", "arrow": None}
    if builder not in formats or set(kwargs) - {"files", "row_groups_list"}:
        return None
    files = [str(f) for f in kwargs["files"]]
    return HfSource(files, formats[builder], None, None) if files else None
