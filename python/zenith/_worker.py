"""Runs one job inside its own process: ``python -m zenith._worker PAYLOAD JOBDIR``.

A function job unpickles ``(fn, args, kwargs)`` from PAYLOAD, calls it and writes into JOBDIR:
``result.pkl`` (the return value, cloudpickle) on success, ``error.txt`` (the traceback) on failure,
and ``status.json`` (``{"exit_code": N}``) last, so the outcome survives a runner that died meanwhile.
Slurm batch scripts call :func:`run_batch`, which does the same for commands too.
"""

from __future__ import annotations

import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from zenith import _layout


def run_function(payload: Path, jobdir: Path) -> int:
    """Calls the pickled function; returns the process exit code (0 on success)."""
    import cloudpickle

    code = 1
    try:
        with payload.open("rb") as f:
            outer = cloudpickle.load(f)
        for entry in reversed(outer["sys_path"]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        fn, args, kwargs = cloudpickle.loads(outer["call"])
        value = fn(*args, **kwargs)
        _layout.write_atomic(_layout.result_path(jobdir), cloudpickle.dumps(value))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code != 0:
            _layout.write_atomic(_layout.error_path(jobdir), f"SystemExit({exc.code!r})\n".encode())
        else:
            _layout.write_atomic(_layout.result_path(jobdir), cloudpickle.dumps(None))
    except BaseException:  # noqa: BLE001  (every failure of user code is reported, then exits 1)
        text = traceback.format_exc()
        sys.stderr.write(text)
        _layout.write_atomic(_layout.error_path(jobdir), text.encode())
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    _layout.write_status(jobdir, code)
    return code


def run_batch(spec: dict[str, Any]) -> int:
    """Entry point of a Slurm batch script: runs the job's function or command, records the status."""
    jobdir = Path(spec["jobdir"])
    if spec["kind"] == "function":
        return run_function(Path(spec["payload"]), jobdir)
    try:
        code = subprocess.call(spec["argv"])  # argv, never a shell
    except OSError as exc:
        text = f"cannot start {spec['argv'][0]!r}: {exc}\n"
        sys.stderr.write(text)
        _layout.write_atomic(_layout.error_path(jobdir), text.encode())
        code = 127
    _layout.write_status(jobdir, code)
    return code


def main(argv: list[str]) -> int:
    """``python -m zenith._worker PAYLOAD JOBDIR``."""
    if len(argv) != 2:
        sys.stderr.write("usage: python -m zenith._worker PAYLOAD JOBDIR\n")
        return 2
    return run_function(Path(argv[0]), Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
