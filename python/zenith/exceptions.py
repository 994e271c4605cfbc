"""Zenith's exception tree; one class per kind of engine error.

``ZenithError`` is the base of all of them. Every message names the place that failed: the
file, row group or byte offset, the object key and range, or the argument.
"""

from zenith._zenith import (
    FormatError,
    JobError,
    SchemaError,
    SourceError,
    StorageError,
    ValidationError,
    ZenithError,
)

__all__ = [
    "ZenithError",
    "SourceError",
    "FormatError",
    "StorageError",
    "SchemaError",
    "ValidationError",
    "JobError",
]
