"""Argument normalisation shared by the loaders: clear errors before anything reaches Rust."""

from __future__ import annotations

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


def _dtype_name(dtype: Any) -> str:
    """Accepts "float32", numpy dtypes and torch dtypes."""
    if isinstance(dtype, str):
        return dtype
    name = getattr(dtype, "name", None) or str(dtype)
    return str(name).replace("torch.", "")
