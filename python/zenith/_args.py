"""Argument normalisation shared by the loaders: clear errors before anything reaches Rust."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from zenith.exceptions import ValidationError

ColumnSpec = tuple[str, list[str], bool, str | None]


def paths_of(source: Any) -> list[str]:
    """Turns a path, ``os.PathLike`` or a list of them into a list of strings."""
    if isinstance(source, (str, os.PathLike)):
        return [os.fspath(source)]
    if isinstance(source, Iterable) and not isinstance(source, (bytes, Mapping)):
        out = []
        for item in source:
            if not isinstance(item, (str, os.PathLike)):
                raise ValidationError(
                    f"invalid argument `source`: expected paths, got {type(item).__name__}"
                )
            out.append(os.fspath(item))
        if not out:
            raise ValidationError("invalid argument `source`: the list of paths is empty")
        return out
    raise ValidationError(
        f"invalid argument `source`: expected a path or a list of paths, got {type(source).__name__}"
    )


def refuse_given(options: Mapping[str, Any], why: str) -> None:
    """Raises for the first option that is not ``None``: it does not apply here (``why``)."""
    for name, value in options.items():
        if value is not None:
            raise ValidationError(f"invalid argument `{name}`: {why}")


def table_of(source: Any) -> Any | None:
    """The Arrow data of an in-memory ``source``, ``None`` when it names files.

    Anything with ``__arrow_c_stream__`` (a pyarrow Table or RecordBatchReader, a polars
    DataFrame, a DuckDB relation, ...) is passed as it is and imported without a copy; a pandas
    DataFrame goes through ``pyarrow.Table.from_pandas`` (its index is dropped); a dict of
    NumPy arrays or sequences becomes a table, a 2-D ``[rows, k]`` array (or deeper) one
    fixed-size-list column, which the loader hands back as a ``[B, k]`` tensor.
    """
    if isinstance(source, (str, os.PathLike, bytes)):
        return None
    if hasattr(source, "__arrow_c_stream__"):
        return source
    kind = type(source)
    if kind.__name__ == "DataFrame" and kind.__module__.split(".")[0] == "pandas":
        import pyarrow as pa

        return pa.Table.from_pandas(source, preserve_index=False)
    if isinstance(source, Mapping):
        return _table_of_arrays(source)
    return None


def _table_of_arrays(columns: Mapping[Any, Any]) -> Any:
    """A pyarrow Table from a dict of column name to array (NumPy arrays without a copy)."""
    import numpy as np
    import pyarrow as pa

    if not columns:
        raise ValidationError("invalid argument `source`: the dict of arrays is empty")
    arrays = {}
    for name, values in columns.items():
        if not isinstance(name, str):
            raise ValidationError(
                f"invalid argument `source`: column names must be strings, got {name!r}"
            )
        if isinstance(values, np.ndarray) and values.ndim > 1:
            flat = np.ascontiguousarray(values)
            array: Any = pa.array(flat.reshape(-1))
            for width in reversed(flat.shape[1:]):
                array = pa.FixedSizeListArray.from_arrays(array, width)
            arrays[name] = array
        else:
            arrays[name] = pa.array(values)
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValidationError(
            f"invalid argument `source`: the arrays have different lengths {lengths}"
        )
    return pa.table(arrays)


def storage_options_of(
    options: Any, cache_dir: Any = None, cache_limit: Any = None
) -> dict[str, str] | None:
    """Checks ``storage_options`` (a mapping of option name to value) and turns the values into
    strings the way the client expects them (``True`` -> ``"true"``, ``5`` -> ``"5"``);
    ``cache_dir`` and ``cache_limit``, when given, become the options of the same names."""
    if (cache_dir is not None or cache_limit is not None) and (
        options is None or isinstance(options, Mapping)
    ):
        options = dict(options or {})
        if cache_dir is not None:
            if not isinstance(cache_dir, (str, os.PathLike)):
                raise ValidationError(
                    f"invalid argument `cache_dir`: expected a path, got {type(cache_dir).__name__}"
                )
            options["cache_dir"] = os.fspath(cache_dir)
        if cache_limit is not None:
            options["cache_limit"] = cache_limit
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise ValidationError(
            f"invalid argument `storage_options`: expected a dict, got {type(options).__name__}"
        )
    out: dict[str, str] = {}
    for key, value in options.items():
        if not isinstance(key, str):
            raise ValidationError(f"invalid argument `storage_options`: key {key!r} is not a string")
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[key] = str(value)
        else:
            raise ValidationError(
                f"invalid argument `storage_options`: {key!r} must be a string or number, "
                f"got {type(value).__name__}"
            )
    return out


def check_int(name: str, value: Any, minimum: int = 0, optional: bool = False) -> int | None:
    """Checks that ``value`` is an int >= ``minimum`` (``None`` allowed when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"invalid argument `{name}`: expected an int, got {value!r}")
    if value < minimum:
        raise ValidationError(f"invalid argument `{name}`: must be >= {minimum}, got {value}")
    return value


def columns_spec(columns: Any) -> list[ColumnSpec] | None:
    """Normalises ``columns``: ``None``, a list of names, or a dict of output name to a column,
    a list of numeric columns to stack, or ``{"columns": ..., "dtype": ...}``."""
    if columns is None:
        return None
    if isinstance(columns, str):
        return [(columns, [columns], False, None)]
    if isinstance(columns, Mapping):
        out: list[ColumnSpec] = []
        for name, value in columns.items():
            if not isinstance(name, str):
                raise ValidationError(f"invalid argument `columns`: key {name!r} is not a string")
            dtype = None
            if isinstance(value, Mapping):
                dtype = value.get("dtype")
                if dtype is not None:
                    dtype = _dtype_name(dtype)
                value = value.get("columns")
            if isinstance(value, str):
                out.append((name, [value], False, dtype))
            elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                if not value:
                    raise ValidationError(f"invalid argument `columns`: {name!r} lists no columns")
                out.append((name, list(value), True, dtype))
            else:
                raise ValidationError(
                    f"invalid argument `columns`: {name!r} must map to a column name or a list "
                    f"of column names, got {value!r}"
                )
        return out
    if isinstance(columns, (list, tuple)):
        if not all(isinstance(c, str) for c in columns):
            raise ValidationError("invalid argument `columns`: expected column names (strings)")
        return [(c, [c], False, None) for c in columns]
    raise ValidationError(
        f"invalid argument `columns`: expected a list or dict, got {type(columns).__name__}"
    )


def image_size_of(image_size: Any) -> tuple[int, int] | None:
    """Normalises ``image_size``: ``None``, an int (square) or ``(height, width)``."""
    if image_size is None:
        return None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_size)
    ):
        return (int(image_size[0]), int(image_size[1]))
    raise ValidationError(
        f"invalid argument `image_size`: expected a positive int or (height, width), got {image_size!r}"
    )


def fields_of(fields: Any) -> list[str] | None:
    """Normalises ``fields`` (WebDataset extensions to keep): ``None`` or a list of names."""
    if fields is None:
        return None
    if isinstance(fields, str):
        fields = [fields]
    if isinstance(fields, (list, tuple)) and all(isinstance(f, str) for f in fields):
        return [f.lower().lstrip(".") for f in fields]
    raise ValidationError(f"invalid argument `fields`: expected a list of field names, got {fields!r}")


def _dtype_name(dtype: Any) -> str:
    """Accepts "float32", numpy dtypes and torch dtypes."""
    if isinstance(dtype, str):
        return dtype
    name = getattr(dtype, "name", None) or str(dtype)
    return str(name).replace("torch.", "")


def dnf_of(filter: Any) -> list[list[tuple[str, str, Any]]] | None:
    """The disjunctive normal form of a ``filter=`` given as ``pyarrow.parquet``'s ``filters``
    (a list of ``(column, op, value)`` tuples, ANDed, or a list of such lists, ORed); ``None``
    for a ``pyarrow.compute.Expression`` (applied as given, without pruning)."""
    if filter is None or not isinstance(filter, (list, tuple)):
        return None
    if not filter:
        raise ValidationError("invalid argument `filter`: an empty list")

    def term(t: Any) -> tuple[str, str, Any]:
        if not isinstance(t, (list, tuple)) or len(t) != 3 or not isinstance(t[0], str):
            raise ValidationError(
                f"invalid argument `filter`: {t!r} is not a (column, op, value) tuple"
            )
        column, op, value = t
        if isinstance(value, (list, tuple, set, frozenset)):
            value = [v.item() if hasattr(v, "item") else v for v in value]
        elif hasattr(value, "item"):
            value = value.item()
        return column, str(op), value

    first = filter[0]
    groups = [filter] if isinstance(first, tuple) or (
        isinstance(first, list) and len(first) == 3 and isinstance(first[0], str)
    ) else filter
    return [[term(t) for t in group] for group in groups]


def filter_json(filter: Any) -> str | None:
    """The engine's form of a loader's ``filter=``: the JSON of :func:`dnf_of`. A
    ``pyarrow.compute.Expression`` cannot run in the engine's decode threads."""
    if filter is None:
        return None
    dnf = dnf_of(filter)
    if dnf is None:
        raise ValidationError(
            "invalid argument `filter`: a DataLoader takes pyarrow.parquet's filters form, "
            f"[(column, op, value), ...], not {type(filter).__name__}"
        )
    return json.dumps(dnf)
