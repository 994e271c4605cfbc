"""``zenith.write_webdataset``: samples (a pyarrow Table or dicts) to WebDataset tar shards."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from zenith._args import check_int
from zenith._progress import rows_bar
from zenith.exceptions import ValidationError

KEY = "__key__"


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


def _encode(field: str, value: Any) -> bytes:
    """One field value as member bytes: raw bytes, text for ints/strings/floats, ``.npy`` for
    arrays, JSON for dicts and lists of non-numbers."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bool, np.bool_)):
        return b"1" if value else b"0"
    if isinstance(value, (int, np.integer)):
        return str(int(value)).encode()
    if isinstance(value, (float, np.floating)):
        return repr(float(value)).encode()
    if isinstance(value, np.ndarray):
        return _npy(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value).encode("utf-8")
    if value is None:
        raise ValidationError(
            f"invalid argument `data`: field {field!r} is None; every field needs a value"
        )
    raise ValidationError(
        f"invalid argument `data`: cannot write field {field!r} of type {type(value).__name__} "
        "(use bytes, str, int, float, numpy arrays, dicts or lists)"
    )


def _column_values(column: Any, name: str) -> list[Any]:
    """A pyarrow column as per-row Python values: numbers and strings as themselves, binary as
    bytes, fixed-size lists (possibly nested) as numpy arrays of their shape."""
    import pyarrow as pa

    dtype = column.type
    if pa.types.is_fixed_size_list(dtype):
        shape = []
        inner = dtype
        while pa.types.is_fixed_size_list(inner):
            shape.append(inner.list_size)
            inner = inner.value_type
        if column.null_count:
            raise ValidationError(f"invalid argument `data`: column {name!r} has nulls")
        flat = column.flatten()
        while pa.types.is_fixed_size_list(flat.type):
            flat = flat.flatten()
        values = flat.to_numpy(zero_copy_only=False).reshape((len(column), *shape))
        return list(values)
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return [None if v is None else np.asarray(v) for v in column.to_pylist()]
    return list(column.to_pylist())


def _rows(data: Any) -> Iterator[Mapping[str, Any]]:
    """Rows of a pyarrow Table/RecordBatch (batch by batch) or of an iterable of dicts."""
    to_batches = getattr(data, "to_batches", None)
    if to_batches is not None:
        for batch in to_batches():
            names = batch.schema.names
            columns = [_column_values(batch.column(i), n) for i, n in enumerate(names)]
            for values in zip(*columns, strict=True):
                yield dict(zip(names, values, strict=True))
        return
    if hasattr(data, "schema") and hasattr(data, "num_rows") and hasattr(data, "column"):
        yield from _rows(_as_table(data))
        return
    if isinstance(data, Mapping) or not isinstance(data, Iterable):
        raise ValidationError(
            "invalid argument `data`: expected a pyarrow Table/RecordBatch or an iterable of dicts"
        )
    for row in data:
        if not isinstance(row, Mapping):
            raise ValidationError(
                f"invalid argument `data`: expected dicts, got {type(row).__name__}"
            )
        yield row


def _as_table(batch: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def _shard_path(pattern: str, index: int) -> str:
    if "%" in pattern:
        return pattern % index
    if "{" in pattern:
        return pattern.format(index)
    return pattern


def write_webdataset(
    data: Any,
    pattern: str | os.PathLike[str],
    maxcount: int = 100_000,
    maxsize: int | None = None,
    progress: bool = False,
) -> list[str]:
    """Writes samples as WebDataset tar shards and returns the shard paths.

    Args:
        data: a ``pyarrow.Table`` / ``RecordBatch`` (e.g. ``pyarrow.parquet.read_table(...)``)
            or an iterable of dicts. Each column (or key) becomes the field of that name, so
            name them by the extension readers expect (``jpg``, ``cls``, ``txt``, ``npy``...):
            binary values are written as they are, integers and floats as decimal text,
            strings as UTF-8, fixed-size lists and numpy arrays as ``.npy``, dicts and lists as
            JSON. A ``__key__`` column gives the sample keys; otherwise they are ``%09d`` of
            the sample number.
        pattern: shard path with a placeholder for the shard number: ``"out/shard-%06d.tar"``
            or ``"out/shard-{:06d}.tar"``; ``.tar.gz``/``.tgz`` names are gzip-compressed.
        maxcount: samples per shard at most.
        maxsize: member bytes per shard at most (a shard always holds at least one sample).
        progress: show a progress bar of the samples written (tqdm, on standard error).

    Members are written in sample order with fixed metadata (mtime 0, mode 0444), so the
    same data gives byte-identical plain shards.
    """
    pattern = os.fspath(pattern)
    check_int("maxcount", maxcount, 1)
    check_int("maxsize", maxsize, 1, optional=True)
    single = _shard_path(pattern, 0) == _shard_path(pattern, 1)
    compressed = pattern.endswith((".gz", ".tgz"))
    paths: list[str] = []
    samples = _encoded(data)
    if progress:
        samples = _counted(samples, getattr(data, "num_rows", None))
    pending = next(samples, None)
    while pending is not None:
        if paths and single:
            raise ValidationError(
                f"invalid argument `pattern`: {pattern!r} has no shard number placeholder "
                "(%06d or {:06d}) but the samples need more than one shard"
            )
        path = _shard_path(pattern, len(paths))
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        paths.append(path)
        count = size = 0
        with tarfile.open(path, "w:gz" if compressed else "w", format=tarfile.PAX_FORMAT) as tar:
            while pending is not None and count < maxcount:
                key, members, sample_bytes = pending
                if maxsize is not None and count > 0 and size + sample_bytes > maxsize:
                    break
                for field, payload in members:
                    info = tarfile.TarInfo(f"{key}.{field}")
                    info.size = len(payload)
                    info.mtime = 0
                    info.mode = 0o444
                    tar.addfile(info, io.BytesIO(payload))
                count += 1
                size += sample_bytes
                pending = next(samples, None)
    return paths


def _counted(samples: Iterator[Any], total: int | None) -> Iterator[Any]:
    """``samples``, advancing a progress bar by each."""
    bar = rows_bar("write_webdataset", total)
    try:
        for sample in samples:
            yield sample
            bar.update(1)
    finally:
        bar.close()


def _encoded(data: Any) -> Iterator[tuple[str, list[tuple[str, bytes]], int]]:
    """Samples as (key, [(field, member bytes)], payload bytes)."""
    for number, row in enumerate(_rows(data)):
        key = row.get(KEY)
        key = f"{number:09d}" if key is None else str(key)
        if not key or "." in key.rsplit("/", 1)[-1]:
            raise ValidationError(
                f"invalid argument `data`: sample key {key!r} is empty or has a dot in its name"
            )
        members = [(f, _encode(f, v)) for f, v in row.items() if f != KEY]
        if not members:
            raise ValidationError(f"invalid argument `data`: sample {key!r} has no fields")
        yield key, members, sum(len(b) for _, b in members)
