"""Zenith: fast data loading for ML training."""

from zenith._zenith import (
    FormatError,
    JobError,
    SchemaError,
    SourceError,
    StorageError,
    ValidationError,
    ZenithError,
)
from zenith.jobs import cancel, job, jobs, logs, result, status, submit, wait

__all__ = [
    "FormatError",
    "JobError",
    "SchemaError",
    "SourceError",
    "StorageError",
    "ValidationError",
    "ZenithError",
    "cancel",
    "job",
    "jobs",
    "logs",
    "result",
    "status",
    "submit",
    "wait",
]
