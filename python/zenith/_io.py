"""``zenith.load`` and ``zenith.info``."""

from __future__ import annotations

import os
from typing import Any

from zenith import _zenith
from zenith._args import paths_of
from zenith.exceptions import ValidationError

_ENV_SETTINGS = (
    "ZENITH_NUM_WORKERS",
    "ZENITH_LOG_LEVEL",
    "ZENITH_CACHE_BYTES",
    "ZENITH_CORE_LIB",
    "ZENITH_HOME",
)


def load(
    path: Any,
    columns: list[str] | None = None,
    format: str | None = None,
    filter: Any = None,
    *,
    schema: Any = None,
    delimiter: str | None = None,
    cache: bool = True,
) -> Any:
    """Reads a dataset into a ``pyarrow.Table``.

    Args:
        path: a file, directory (recursive, sorted, hidden files ignored), glob, or a list.
        columns: columns to keep, in this order (all when ``None``).
        format: ``parquet``, ``csv``, ``arrow`` (IPC file/Feather) or ``arrows`` (IPC stream);
            detected from magic bytes, then the extension, when ``None``.
        filter: an optional ``pyarrow.compute.Expression`` applied to the loaded table.
        schema: explicit ``pyarrow.Schema`` for CSV (overrides inference).
        delimiter: CSV delimiter (default ``,``).
        cache: serve a repeated read of unchanged small files from memory.

    Decoding runs on Rust threads with the GIL released; the table's buffers are handed over
    through the Arrow C stream interface without a copy (Arrow IPC files stay memory-mapped).
    """
    if columns is not None and (
        isinstance(columns, str) or not all(isinstance(c, str) for c in columns)
    ):
        raise ValidationError("invalid argument `columns`: expected a list of column names")
    table = _zenith.load(
        paths_of(path),
        columns=list(columns) if columns is not None else None,
        format=format,
        schema=schema,
        delimiter=delimiter,
        cache=cache,
    )
    if filter is not None:
        table = table.filter(filter)
    return table


def info(path: Any = None, *, format: str | None = None, verbose: bool = True) -> dict[str, Any]:
    """Without a path: version, build profile, threads, formats, cache and environment
    settings. With a path: format, schema, rows, files, units (row groups) and bytes, read
    from footers and headers only. Prints a summary unless ``verbose=False``; returns a dict.
    """
    if path is None:
        build = dict(_zenith.build_info())
        build["env"] = {k: os.environ.get(k) for k in _ENV_SETTINGS}
        if verbose:
            print(f"zenith {build['version']} ({build['profile']} build)")
            print(f"  threads: {build['threads']}")
            print(f"  formats: {', '.join(build['formats'])}")
            cache = build["cache"]
            print(
                f"  cache:   {cache['used_bytes']}/{cache['limit_bytes']} bytes, "
                f"{cache['entries']} entries"
            )
            for key, value in build["env"].items():
                print(f"  {key}={value if value is not None else '(unset)'}")
        return build
    summary: dict[str, Any] = dict(_zenith.dataset_info(paths_of(path), format=format))
    if verbose:
        print(
            f"{summary['format']}: {summary['rows']} rows, {len(summary['files'])} files, "
            f"{sum(f['units'] for f in summary['files'])} units, {summary['bytes']} bytes"
        )
        print(summary["schema"])
        for f in summary["files"]:
            print(f"  {f['path']}: {f['rows']} rows, {f['units']} units, {f['bytes']} bytes")
    return summary
