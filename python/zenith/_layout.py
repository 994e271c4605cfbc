"""The on-disk layout of a job home (``$ZENITH_HOME``) and of each job's directory in it.

A job home holds the store (``jobs.db``), the local runner's ``runner.lock``/``runner.pid``/
``runner.sock``/``runner.log``, the pickled calls waiting to run (``payloads/<hex>.pkl``) and one
directory per job (``jobs/<id>``). A job directory holds the job's ``stdout.log``/``stderr.log``, the
Slurm ``batch.py``, and what the worker leaves: ``result.pkl``, ``error.txt`` and ``status.json``
(``{"exit_code": N}``), written last. Every module names these files through here so the layout is
spelled once; the names never change, so that homes written by earlier versions still read.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

#: The output streams a job directory keeps, one ``<stream>.log`` each.
STREAMS = ("stdout", "stderr")

# ---------------------------------------------------------------------------------- job home


def store_db(root: Path) -> Path:
    """The SQLite job store of a job home."""
    return root / "jobs.db"


def runner_lock(root: Path) -> Path:
    """The file the runner holds an exclusive ``flock`` on: one runner per home."""
    return root / "runner.lock"


def runner_pid(root: Path) -> Path:
    """The file holding the pid of the home's runner."""
    return root / "runner.pid"


def runner_socket(root: Path) -> Path:
    """The runner's wake-up socket (datagrams; content ignored)."""
    return root / "runner.sock"


def runner_log(root: Path) -> Path:
    """Where a daemonized runner writes its stdout and stderr."""
    return root / "runner.log"


def new_payload(root: Path) -> Path:
    """A fresh path for a pickled call in ``payloads/`` (created if missing)."""
    payloads = root / "payloads"
    payloads.mkdir(exist_ok=True)
    return payloads / f"{uuid.uuid4().hex}.pkl"


def job_dir(root: Path, job_id: int) -> Path:
    """Directory holding one job's logs, result and status: ``<root>/jobs/<id>``."""
    return root / "jobs" / str(job_id)


# ---------------------------------------------------------------------------------- job directory


def log_path(jobdir: Path, stream: str) -> Path:
    """The captured output of one of :data:`STREAMS`."""
    return jobdir / f"{stream}.log"


def batch_script(jobdir: Path) -> Path:
    """The Slurm batch script of the job."""
    return jobdir / "batch.py"


def result_path(jobdir: Path) -> Path:
    """The function's return value, pickled with cloudpickle."""
    return jobdir / "result.pkl"


def error_path(jobdir: Path) -> Path:
    """The traceback (or start failure) of a job that failed."""
    return jobdir / "error.txt"


def started_path(jobdir: Path) -> Path:
    """Created by a job's process just before it runs the job's command: a job whose process
    is gone without it never ran (the runner died before letting it start)."""
    return jobdir / "started"


def status_path(jobdir: Path) -> Path:
    """The job's exit code as the worker recorded it."""
    return jobdir / "status.json"


def write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` beside ``path`` and renames it over, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_status(jobdir: Path, exit_code: int) -> None:
    """Records the job's exit code in ``status.json``."""
    write_atomic(status_path(jobdir), json.dumps({"exit_code": exit_code}).encode())


def read_status(jobdir: Path) -> int | None:
    """The exit code recorded in ``status.json``, or None if there is none (or it is unreadable)."""
    try:
        return int(json.loads(status_path(jobdir).read_text())["exit_code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_error(jobdir: Path) -> str:
    """The text of ``error.txt``, or ``""`` if the job left none."""
    try:
        return error_path(jobdir).read_text(errors="replace")
    except OSError:
        return ""
