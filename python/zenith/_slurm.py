"""The Slurm backend: ``sbatch`` to submit, ``squeue``/``scontrol``/``sacct`` for state, ``scancel``.

Each job gets a Python batch script in its job directory (``$ZENITH_HOME/jobs/<id>/batch.py``, so
``ZENITH_HOME`` must be on a file system the compute nodes share). The script runs the function through
``zenith._worker`` or the command as argv (never a shell) and writes ``status.json``, ``result.pkl``
and ``error.txt`` beside the ``stdout.log``/``stderr.log`` that Slurm writes (``--output``/``--error``).
Resources map one to one: ``--gres=gpu:N``, ``--mem=<MiB>M``, ``--cpus-per-task``, ``--job-name``.
Slurm lets only administrators raise priority, so a negative priority becomes ``--nice=-priority``
and a positive one is recorded but not passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from zenith import _layout
from zenith._zenith import JobError

if TYPE_CHECKING:
    from zenith._zenith import JobInfo, JobStore

MIB = 1 << 20
COMMAND_TIMEOUT_S = 60

#: Slurm job states (long names, as squeue/scontrol/sacct print them) mapped to Zenith's.
STATE_MAP = {
    "PENDING": "QUEUED",
    "CONFIGURING": "QUEUED",
    "REQUEUED": "QUEUED",
    "REQUEUE_HOLD": "QUEUED",
    "REQUEUE_FED": "QUEUED",
    "RESV_DEL_HOLD": "QUEUED",
    "RUNNING": "RUNNING",
    "COMPLETING": "RUNNING",
    "SUSPENDED": "RUNNING",
    "STOPPED": "RUNNING",
    "SIGNALING": "RUNNING",
    "STAGE_OUT": "RUNNING",
    "RESIZING": "RUNNING",
    "COMPLETED": "SUCCEEDED",
    "CANCELLED": "CANCELLED",
    "FAILED": "FAILED",
    "TIMEOUT": "FAILED",
    "NODE_FAIL": "FAILED",
    "OUT_OF_MEMORY": "FAILED",
    "BOOT_FAIL": "FAILED",
    "DEADLINE": "FAILED",
    "PREEMPTED": "FAILED",
    "SPECIAL_EXIT": "FAILED",
}


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, env=env, check=False
        )
    except FileNotFoundError as exc:
        raise JobError(f"Slurm backend: {argv[0]} not found; is this a Slurm client host?") from exc
    except subprocess.TimeoutExpired as exc:
        raise JobError(f"Slurm backend: {' '.join(argv)} did not answer in {COMMAND_TIMEOUT_S} s") from exc


def sbatch_args(info: JobInfo, jobdir: Path) -> list[str]:
    """The ``sbatch`` options of a job (without the script)."""
    args = [
        "--parsable",
        f"--job-name={info.name}",
        f"--output={_layout.log_path(jobdir, 'stdout')}",
        f"--error={_layout.log_path(jobdir, 'stderr')}",
        f"--cpus-per-task={info.cpus}",
        f"--chdir={info.cwd}",
        "--export=ALL",
    ]
    if info.gpus:
        args.append(f"--gres=gpu:{info.gpus}")
    if info.memory is not None:
        args.append(f"--mem={-(-info.memory // MIB)}M")
    if info.priority < 0:
        args.append(f"--nice={-info.priority}")
    return args


def batch_script(info: JobInfo, jobdir: Path) -> str:
    """A Python batch script that runs the job through :func:`zenith._worker.run_batch`."""
    # The interpreter that submitted (where zenith is installed) also runs the script.
    python = info.argv[0] if info.kind == "function" else sys.executable
    spec: dict[str, str | list[str]] = {"kind": info.kind, "jobdir": str(jobdir)}
    if info.kind == "function":
        spec["payload"] = info.argv[1]
    else:
        spec["argv"] = list(info.argv)
    return (
        f"#!{python}\n"
        "import json, sys\n"
        "from zenith._worker import run_batch\n"
        f"sys.exit(run_batch(json.loads({json.dumps(json.dumps(spec))})))\n"
    )


def submit(store: JobStore, info: JobInfo, jobdir: Path) -> str:
    """Submits a stored job with ``sbatch``; records and returns the Slurm job id.

    If ``sbatch`` refuses, the job is marked FAILED with Slurm's message and ``JobError`` is raised.
    """
    jobdir.mkdir(parents=True, exist_ok=True)
    script = _layout.batch_script(jobdir)
    script.write_text(batch_script(info, jobdir))
    script.chmod(0o700)
    env = dict(info.env)
    env["ZENITH_JOB_ID"] = str(info.id)
    env["ZENITH_JOB_DIR"] = str(jobdir)
    try:
        done = _run(["sbatch", *sbatch_args(info, jobdir), str(script)], env=env)
    except JobError as exc:
        store.transition(info.id, "FAILED", None, str(exc))
        raise
    if done.returncode != 0:
        message = f"sbatch failed (exit {done.returncode}): {done.stderr.strip()}"
        store.transition(info.id, "FAILED", None, message)
        raise JobError(f"job {info.id}: {message}")
    slurm_id = done.stdout.strip().split(";")[0]
    store.set_backend_id(info.id, slurm_id)
    return slurm_id


def _parse_exit(text: str) -> int | None:
    code = text.split(":")[0]
    return int(code) if code.lstrip("-").isdigit() else None


def query(slurm_id: str) -> tuple[str, int | None] | None:
    """(Slurm state, exit code) of a job from ``squeue``, then ``scontrol``, then ``sacct``; None if
    Slurm no longer knows it."""
    done = _run(["squeue", "-h", "-t", "all", "-j", slurm_id, "-o", "%T"])
    queued_state = done.stdout.strip().split("\n")[0] if done.returncode == 0 else ""
    if queued_state and STATE_MAP.get(queued_state) in ("QUEUED", "RUNNING"):
        return queued_state, None
    done = _run(["scontrol", "show", "job", "-o", slurm_id])
    if done.returncode == 0 and "JobState=" in done.stdout:
        fields = dict(
            part.split("=", 1) for part in done.stdout.split() if "=" in part
        )
        return fields.get("JobState", ""), _parse_exit(fields.get("ExitCode", ""))
    done = _run(["sacct", "-n", "-P", "-X", "-j", slurm_id, "-o", "State,ExitCode"])
    if done.returncode == 0:
        for line in done.stdout.splitlines():
            parts = line.split("|")
            if len(parts) == 2 and parts[0]:
                return parts[0].split()[0], _parse_exit(parts[1])
    return (queued_state, None) if queued_state else None


def refresh(store: JobStore, info: JobInfo, jobdir: Path) -> JobInfo:
    """Brings a non-final Slurm job's stored state up to date with Slurm; returns the new record."""
    if info.backend_id is None:
        return info
    found = query(info.backend_id)
    if found is None:
        code = _layout.read_status(jobdir)
        if code is None:
            store.transition(
                info.id, "FAILED", None, f"Slurm no longer knows job {info.backend_id} and it left no status"
            )
        else:
            _finish(store, info, jobdir, "SUCCEEDED" if code == 0 else "FAILED", code)
        return store.get(info.id)
    slurm_state, exit_code = found
    state = STATE_MAP.get(slurm_state)
    if state == "RUNNING":
        store.transition(info.id, "RUNNING", None, None)
    elif state in ("SUCCEEDED", "FAILED", "CANCELLED"):
        recorded = _layout.read_status(jobdir)
        _finish(store, info, jobdir, state, recorded if recorded is not None else exit_code, slurm_state)
    return store.get(info.id)


def _finish(
    store: JobStore,
    info: JobInfo,
    jobdir: Path,
    state: str,
    exit_code: int | None,
    slurm_state: str | None = None,
) -> None:
    store.transition(info.id, "RUNNING", None, None)  # records started_at if never seen running
    error = None
    if state == "CANCELLED":
        error = "cancelled (scancel)"
    elif state == "FAILED":
        what = f"Slurm state {slurm_state}" if slurm_state and slurm_state != "FAILED" else None
        what = what or f"exited with code {exit_code}"
        error = f"{what}\n{_layout.read_error(jobdir)}".rstrip()
    store.transition(info.id, state, exit_code, error)
    if info.kind == "function" and len(info.argv) == 2:
        Path(info.argv[1]).unlink(missing_ok=True)  # the pickled call is not needed any more


def cancel(store: JobStore, info: JobInfo, jobdir: Path, timeout: float) -> str:
    """``scancel`` a Slurm job and wait (up to ``timeout`` s) for Slurm to report it final."""
    if info.state in ("SUCCEEDED", "FAILED", "CANCELLED"):
        return info.state
    if info.backend_id is None:
        store.cancel(info.id)
        return store.get(info.id).state
    done = _run(["scancel", info.backend_id])
    if done.returncode != 0:
        raise JobError(f"scancel {info.backend_id} failed: {done.stderr.strip()}")
    deadline = time.monotonic() + timeout
    while True:
        current = refresh(store, store.get(info.id), jobdir)
        if current.state in ("SUCCEEDED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            return current.state
        time.sleep(0.2)
