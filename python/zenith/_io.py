"""``zenith.load`` and ``zenith.info``."""

from __future__ import annotations

import json
import os
from typing import Any

from zenith import _zenith
from zenith._args import dnf_of, fields_of, image_size_of, paths_of, storage_options_of
from zenith._core_lib import find_core_lib
from zenith._progress import rows_bar
from zenith.exceptions import ValidationError

_ENV_SETTINGS = (
    "ZENITH_NUM_WORKERS",
    "ZENITH_LOG_LEVEL",
    "ZENITH_CACHE_BYTES",
    "ZENITH_CACHE_DIR",
    "ZENITH_CACHE_LIMIT",
    "ZENITH_LISTING_TTL",
    "ZENITH_CORE_LIB",
    "ZENITH_HOME",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ALLOW_HTTP",
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
    storage_options: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_limit: str | int | None = None,
    image_size: int | tuple[int, int] | None = None,
    fields: list[str] | None = None,
    progress: bool = False,
) -> Any:
    """Reads a dataset into a ``pyarrow.Table``.

    Args:
        path: a file, directory (recursive, sorted, hidden files ignored), glob, brace pattern
            (``shards/train-{0000..0127}.tar``), or a list; local, or an object-store URL
            (``s3://``, ``gs://``, ``az://``), a Hugging Face dataset
            (``hf://datasets/<org>/<name>[@revision]/<path or glob>``) or one web file
            (``https://``).
        columns: columns to keep, in this order (all when ``None``).
        format: ``parquet``, ``csv``, ``arrow`` (IPC file/Feather), ``arrows`` (IPC stream),
            ``webdataset`` (tar shards, also ``.tar.gz``/``.tgz``), ``json`` (JSON Lines:
            ``.jsonl``, ``.ndjson``, ``.json``), ``text`` (``.txt``, a ``text`` row per line) or
            ``tokens`` (``.bin``/``.npy`` token files); detected from magic bytes, then the
            extension, when ``None``.
        filter: rows to keep, as ``pyarrow.parquet.read_table``'s ``filters``: a list of
            ``(column, op, value)`` tuples that must all hold (``op`` one of ``=``, ``==``,
            ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``), or a list of such lists of
            which one must hold. Parquet row groups whose statistics rule the filter out are not
            read (nor fetched, from object storage); the rest are filtered exactly. A
            ``pyarrow.compute.Expression`` is also accepted and applied to the loaded rows
            (without skipping row groups).
        schema: explicit ``pyarrow.Schema`` for CSV and JSON Lines (overrides inference).
        delimiter: CSV delimiter (default ``,``).
        cache: serve a repeated read of unchanged small files from memory.
        storage_options: object-storage settings for ``s3://``, ``gs://`` and ``az://`` paths
            (``aws_access_key_id``, ``aws_secret_access_key``, ``region``, ``endpoint``,
            ``allow_http``, ``timeout``, ``max_retries``, ...); they override the ``AWS_*``
            (``GOOGLE_*``, ``AZURE_*``) environment variables. For ``hf://``: ``endpoint`` and
            ``hf_token`` (else ``HF_ENDPOINT`` and ``HF_TOKEN``).
        cache_dir: a folder where fetched objects (their byte ranges) and listings are kept and
            reused by later reads and by every process on the machine that names it (default
            ``ZENITH_CACHE_DIR``; none when unset). See the README, "A local cache shared by
            the machine".
        cache_limit: the most the cache folder holds, as bytes or a size such as ``"200GB"``
            (default ``ZENITH_CACHE_LIMIT``, else 100 GB); the least recently used entries go.
        image_size: WebDataset: decode ``jpg``/``jpeg``/``png``/``webp`` fields to RGB
            ``uint8 [H, W, 3]`` of this ``(height, width)`` (or an int for a square),
            center-cropping to the aspect ratio and resizing; raw bytes when ``None``.
        fields: WebDataset: the fields (extensions such as ``"jpg"``, ``"cls"``) to keep.
        progress: show a progress bar of the rows read (tqdm, on standard error), for the long
            reads of remote or large data.

    A WebDataset shard gives a ``__key__`` column and one column per field: ``cls``-like
    fields as int64, ``txt``/``json`` as strings, ``npy`` as fixed-shape lists, images as
    binary views (or ``[H][W][3]`` uint8 lists with ``image_size``), anything else as binary
    views over the shard bytes (no copy).

    Decoding runs on Rust threads with the GIL released; the table's buffers are handed over
    through the Arrow C stream interface without a copy (Arrow IPC files stay memory-mapped).
    """
    if columns is not None and (
        isinstance(columns, str) or not all(isinstance(c, str) for c in columns)
    ):
        raise ValidationError("invalid argument `columns`: expected a list of column names")
    dnf = dnf_of(filter)
    wanted = list(columns) if columns is not None else None
    if dnf is not None and wanted is not None:
        # The exact filter needs its columns; they are dropped again after it.
        for column in (c for group in dnf for c, _, _ in group):
            if column not in wanted:
                wanted.append(column)
    bar = rows_bar("zenith.load") if progress else None

    def advance(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        table = _zenith.load(
            paths_of(path),
            columns=wanted,
            format=format,
            schema=schema,
            delimiter=delimiter,
            cache=cache,
            storage_options=storage_options_of(storage_options, cache_dir, cache_limit),
            image_size=image_size_of(image_size),
            fields=fields_of(fields),
            progress=advance if bar is not None else None,
            prune=json.dumps(dnf) if dnf is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    if dnf is not None:
        import pyarrow.parquet as pq

        table = table.filter(pq.filters_to_expression(dnf))
        if columns is not None:
            table = table.select(list(columns))
    elif filter is not None:
        table = table.filter(filter)
    return table


def info(
    path: Any = None,
    *,
    format: str | None = None,
    verbose: bool = True,
    storage_options: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Without a path: version, build profile, threads, formats, cache and environment
    settings. With a path: format, schema, rows, files, units (row groups) and bytes, read
    from footers and headers only, and for Parquet ``statistics``: per column the ``min``,
    ``max`` and ``null_count`` over all row groups (``None`` where a footer does not record
    them, or for types without a plain order such as timestamps and decimals). Prints a summary
    unless ``verbose=False``; returns a dict. ``storage_options`` and ``cache_dir`` are as for
    ``zenith.load``: with a cache, the listing and footers come from it when present.
    """
    if path is None:
        build = dict(_zenith.build_info())
        build["env"] = {k: os.environ.get(k) for k in _ENV_SETTINGS}
        build["core_lib"] = find_core_lib()
        if verbose:
            print(f"zenith {build['version']} ({build['profile']} build)")
            print(f"  threads: {build['threads']}")
            print(f"  formats: {', '.join(build['formats'])}")
            print(f"  storage: {', '.join(build['storage'])}")
            cache = build["cache"]
            print(
                f"  cache:   {cache['used_bytes']}/{cache['limit_bytes']} bytes, "
                f"{cache['entries']} entries"
            )
            print(f"  core lib: {build['core_lib'] or '(not found; set ZENITH_CORE_LIB)'}")
            for key, value in build["env"].items():
                print(f"  {key}={value if value is not None else '(unset)'}")
        return build
    summary: dict[str, Any] = dict(
        _zenith.dataset_info(
            paths_of(path),
            format=format,
            storage_options=storage_options_of(storage_options, cache_dir),
        )
    )
    if verbose:
        print(
            f"{summary['format']}: {summary['rows']} rows, {len(summary['files'])} files, "
            f"{sum(f['units'] for f in summary['files'])} units, {summary['bytes']} bytes"
        )
        print(summary["schema"])
        for f in summary["files"]:
            print(f"  {f['path']}: {f['rows']} rows, {f['units']} units, {f['bytes']} bytes")
        if summary.get("statistics"):
            print("statistics (all row groups):")
            for column, s in summary["statistics"].items():
                nulls = "?" if s["null_count"] is None else s["null_count"]
                print(f"  {column}: min {s['min']!r}, max {s['max']!r}, nulls {nulls}")
    return summary
