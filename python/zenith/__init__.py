"""Zenith: fast data loading for ML training.

Parquet, CSV and Arrow IPC files and WebDataset tar shards are decoded, shuffled and collated
into tensors on Rust threads and handed to Python without copies; training jobs run on this
machine or on Slurm.

>>> import zenith
>>> table = zenith.load("train.parquet")                          # doctest: +SKIP
>>> for batch in zenith.DataLoader("train/", batch_size=256):     # doctest: +SKIP
...     x, y = batch["x"], batch["y"]
>>> job_id = zenith.submit(["python", "train.py"])                # doctest: +SKIP
"""

from __future__ import annotations

import os

from zenith import _zenith, text, vision
from zenith._io import info, load
from zenith._loader import DataLoader
from zenith._mix import Mix, mix
from zenith._webdataset import write_webdataset
from zenith.exceptions import (
    FormatError,
    JobError,
    ResourceError,
    SchemaError,
    SourceError,
    StorageError,
    ValidationError,
    ZenithError,
)
from zenith.jobs import cancel, job, jobs, logs, result, status, submit, wait

__version__: str = _zenith.__version__

_zenith.init_logging(os.environ.get("ZENITH_LOG_LEVEL", "info"))

__all__ = [
    "DataLoader",
    "FormatError",
    "JobError",
    "Mix",
    "ResourceError",
    "SchemaError",
    "SourceError",
    "StorageError",
    "ValidationError",
    "ZenithError",
    "__version__",
    "cancel",
    "info",
    "job",
    "jobs",
    "load",
    "logs",
    "mix",
    "result",
    "status",
    "submit",
    "text",
    "vision",
    "wait",
    "write_webdataset",
]
