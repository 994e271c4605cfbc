"""Zenith's exception tree; one class per kind of engine error.

``ZenithError`` is the base of all of them. Every message names the place that failed: the
file, row group or byte offset, the object key and range, or the argument.

- ``SourceError``: a path is missing, empty or unreadable.
- ``FormatError``: a file's bytes are not valid for its format.
- ``StorageError``: object storage failed after retries.
- ``SchemaError``: schemas differ, or a column is unknown.
- ``ValidationError``: an argument, job spec or state is invalid. ``field`` names the argument or
  job field that was rejected and ``rule`` says what it broke (both strings; ``None`` when the
  error was raised without them).
- ``JobError``: a job failed, or a job id is unknown.
- ``ResourceError``: the system refused a thread, runtime or memory the call needed.
"""

from zenith._zenith import (
    FormatError,
    JobError,
    ResourceError,
    SchemaError,
    SourceError,
    StorageError,
    ValidationError,
    ZenithError,
)

__all__ = [
    "FormatError",
    "JobError",
    "ResourceError",
    "SchemaError",
    "SourceError",
    "StorageError",
    "ValidationError",
    "ZenithError",
]
