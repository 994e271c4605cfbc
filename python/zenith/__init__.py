"""Zenith: fast data loading for ML training.

Parquet, CSV and Arrow IPC files are decoded, shuffled and collated into tensors on Rust
threads and handed to Python without copies.

>>> import zenith
>>> table = zenith.load("train.parquet")                          # doctest: +SKIP
>>> for batch in zenith.DataLoader("train/", batch_size=256):     # doctest: +SKIP
...     x, y = batch["x"], batch["y"]
"""

from __future__ import annotations

import os

from zenith import _zenith
from zenith._io import info, load
from zenith._loader import DataLoader
from zenith.exceptions import (
    FormatError,
    JobError,
    SchemaError,
    SourceError,
    StorageError,
    ValidationError,
    ZenithError,
)

__version__: str = _zenith.__version__

_zenith.init_logging(os.environ.get("ZENITH_LOG_LEVEL", "info"))

__all__ = [
    "__version__",
    "load",
    "info",
    "DataLoader",
    "ZenithError",
    "SourceError",
    "FormatError",
    "StorageError",
    "SchemaError",
    "ValidationError",
    "JobError",
]
