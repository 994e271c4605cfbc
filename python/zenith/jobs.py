"""Jobs: run Python functions or commands on this machine (the default) or on a Slurm cluster.

    @zenith.job(gpus=2, memory="8GB")
    def train(lr): ...

    job_id = zenith.submit(train, 0.1)          # or zenith.submit(["python", "train.py"])
    zenith.wait(job_id); zenith.result(job_id)

Jobs are validated by the Rust Validator and stored in SQLite under ``$ZENITH_HOME`` (default
``~/.zenith``). Local jobs are started by a runner process (``python -m zenith._runner``) that the first
submit starts, or ``zenith jobs serve``; Slurm jobs go through ``sbatch`` (see ``zenith._slurm``).

Environment: ``ZENITH_HOME`` job store and logs; ``ZENITH_BACKEND`` default backend
(``local``/``slurm``). Read by the runner when it starts (so from the environment of the submit that
started it): ``ZENITH_GPUS`` GPU count (else ``nvidia-smi -L``); ``ZENITH_CPUS``, ``ZENITH_MEMORY`` (e.g.
``"64GB"``) the runner's CPU and memory budget (else the machine's); ``ZENITH_RUNNER_IDLE_TIMEOUT``
seconds before an idle runner exits (300; negative: never); ``ZENITH_KILL_GRACE`` seconds between
SIGTERM and SIGKILL on cancel (3). Jobs run with the submitter's environment and working directory.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from zenith import _layout, _slurm
from zenith._zenith import JobError, JobInfo, JobStore, ValidationError, parse_memory, validate_name

__all__ = [
    "JobFunction",
    "cancel",
    "home",
    "job",
    "jobs",
    "logs",
    "result",
    "status",
    "submit",
    "wait",
]

FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
BACKENDS = ("local", "slurm")


def home() -> Path:
    """The job home: ``$ZENITH_HOME`` or ``~/.zenith`` (created, private to the user)."""
    path = Path(os.environ.get("ZENITH_HOME") or Path.home() / ".zenith").absolute()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def job_dir(job_id: int, root: Path | None = None) -> Path:
    """Directory holding one job's logs, result and status: ``$ZENITH_HOME/jobs/<id>``."""
    return _layout.job_dir(root or home(), job_id)


_stores: dict[tuple[int, Path], JobStore] = {}


def store(root: Path | None = None) -> JobStore:
    """The job store of ``root`` (default: :func:`home`), one connection per process."""
    root = root or home()
    key = (os.getpid(), root)  # a SQLite connection must not cross fork()
    found = _stores.get(key)
    if found is None:
        found = _stores[key] = JobStore(_layout.store_db(root))
    return found


@dataclass(frozen=True)
class JobOptions:
    """Resources and placement of a job, as given to :func:`job` or :func:`submit`."""

    gpus: int = 0
    memory: int | None = None
    cpus: int | None = None
    name: str | None = None
    priority: int = 0
    backend: str | None = None


def _invalid(field: str, rule: str) -> ValidationError:
    """A ``ValidationError`` like the Rust Validator's: message ``invalid FIELD: RULE``, attributes."""
    err = ValidationError(f"invalid {field}: {rule}")
    err.field = field
    err.rule = rule
    return err


def _memory_bytes(memory: str | int | None) -> int | None:
    if memory is None:
        return None
    if isinstance(memory, bool) or not isinstance(memory, (str, int)):
        raise _invalid("memory", f"expected a string like \"8GB\" or a byte count, got {memory!r}")
    if isinstance(memory, str):
        return parse_memory(memory)
    return memory


def _int_field(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, f"must be an integer, got {value!r}")
    return value


def make_options(
    gpus: Any = 0,
    memory: Any = None,
    cpus: Any = None,
    name: Any = None,
    priority: Any = 0,
    backend: Any = None,
) -> JobOptions:
    """Checks the option types and the rules that do not need the job (names, memory strings)."""
    if name is not None:
        if not isinstance(name, str):
            raise _invalid("name", f"must be a string, got {name!r}")
        validate_name(name)
    if backend is not None and backend not in BACKENDS:
        raise _invalid("backend", f"{backend!r} is not \"local\" or \"slurm\"")
    return JobOptions(
        gpus=_int_field("gpus", gpus),
        memory=_memory_bytes(memory),
        cpus=None if cpus is None else _int_field("cpus", cpus),
        name=name,
        priority=_int_field("priority", priority),
        backend=backend,
    )


class JobFunction:
    """A function decorated with :func:`job`: calling it runs it here; :func:`submit` runs it as a job."""

    def __init__(self, fn: Callable[..., Any], options: JobOptions) -> None:
        self.fn = fn
        self.options = options
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def submit(self, *args: Any, **kwargs: Any) -> int:
        """Submits a call of this function as a job; returns the job id."""
        return submit(self, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<zenith job {getattr(self.fn, '__qualname__', self.fn)!r} {self.options}>"


def job(
    fn: Callable[..., Any] | None = None,
    *,
    gpus: int = 0,
    memory: str | int | None = None,
    cpus: int | None = None,
    name: str | None = None,
    priority: int = 0,
    backend: str | None = None,
) -> Any:
    """Declares a function's job resources: ``@zenith.job(gpus=4, memory="8GB")``.

    Options are checked now (``ValidationError``); the rest of the rules apply at submit.
    ``memory`` is a string like ``"512MB"``, ``"8GB"``, ``"1.5GiB"`` or a byte count; ``cpus`` defaults
    to 1; ``backend`` is ``"local"``, ``"slurm"`` or None (``$ZENITH_BACKEND``, else local).
    """
    options = make_options(gpus, memory, cpus, name, priority, backend)

    def decorate(f: Callable[..., Any]) -> JobFunction:
        if not callable(f):
            raise TypeError(f"@zenith.job decorates a function, got {f!r}")
        return JobFunction(f, options)

    return decorate(fn) if fn is not None else decorate


def _default_name(candidate: str) -> str:
    cleaned = "".join(c if (c.isascii() and (c.isalnum() or c in "-_")) else "_" for c in candidate)
    return (cleaned or "job")[:256]


def _resolve_backend(options: JobOptions) -> str:
    backend = options.backend or os.environ.get("ZENITH_BACKEND") or "local"
    if backend not in BACKENDS:
        raise _invalid("backend", f"{backend!r} is not \"local\" or \"slurm\"")
    return backend


def _write_payload(root: Path, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Path:
    """Pickles the call with cloudpickle into ``$ZENITH_HOME/payloads``; raises JobError if it cannot."""
    import cloudpickle

    try:
        call = cloudpickle.dumps((fn, args, kwargs))
        # sys.path travels with the call so that functions defined in scripts and test modules import
        # in the worker as they did here.
        blob = cloudpickle.dumps({"sys_path": list(sys.path), "call": call})
    except Exception as exc:  # cloudpickle raises many types (PicklingError, TypeError, ...)
        raise JobError(
            f"cannot submit {getattr(fn, '__qualname__', fn)!r}: the function or its arguments "
            f"cannot be pickled with cloudpickle ({type(exc).__name__}: {exc})"
        ) from exc
    path = _layout.new_payload(root)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.rename(path)
    return path


def submit(
    fn_or_argv: Callable[..., Any] | Sequence[str],
    *args: Any,
    **kwargs: Any,
) -> int:
    """Submits a job and returns its id.

    ``submit(fn, *args, **kwargs)`` runs ``fn(*args, **kwargs)`` in a fresh Python process (resources
    from ``@zenith.job``, if any); ``submit(["cmd", "arg"])`` runs a command as argv, never through a
    shell. Invalid input raises ``ValidationError`` before anything is stored.
    """
    root = home()
    if isinstance(fn_or_argv, (str, bytes)):
        raise _invalid(
            "command",
            "give a list of arguments like [\"echo\", \"hi\"], not a string "
            "(commands never run through a shell)",
        )
    if callable(fn_or_argv):
        options = fn_or_argv.options if isinstance(fn_or_argv, JobFunction) else JobOptions()
        fn = fn_or_argv.fn if isinstance(fn_or_argv, JobFunction) else fn_or_argv
        return _submit(root, options, fn=fn, args=args, kwargs=kwargs)
    if args or kwargs:
        raise TypeError("submit(argv) takes no further arguments; put them in the list")
    argv = list(fn_or_argv)
    if not all(isinstance(a, str) for a in argv):
        raise _invalid("command", f"every argument must be a string, got {argv!r}")
    return _submit(root, JobOptions(), argv=argv)


def submit_with(
    options: JobOptions,
    fn_or_argv: Callable[..., Any] | Sequence[str],
    *args: Any,
    **kwargs: Any,
) -> int:
    """Like :func:`submit` with explicit :class:`JobOptions` (used by the CLI)."""
    root = home()
    if callable(fn_or_argv):
        return _submit(root, options, fn=fn_or_argv, args=args, kwargs=kwargs)
    return _submit(root, options, argv=list(fn_or_argv))


class _Placement(TypedDict):
    """The fields of a stored job that function and command jobs set alike."""

    cwd: str
    env: list[tuple[str, str]]
    gpus: int
    memory: int | None
    cpus: int
    priority: int
    backend: str


def _submit(
    root: Path,
    options: JobOptions,
    *,
    fn: Callable[..., Any] | None = None,
    args: tuple = (),
    kwargs: dict | None = None,
    argv: list[str] | None = None,
) -> int:
    backend = _resolve_backend(options)
    common: _Placement = {
        "cwd": os.getcwd(),
        "env": list(os.environ.items()),
        "gpus": options.gpus,
        "memory": options.memory,
        "cpus": 1 if options.cpus is None else options.cpus,
        "priority": options.priority,
        "backend": backend,
    }
    jobs_store = store(root)
    if fn is not None:
        name = options.name or _default_name(getattr(fn, "__name__", "function"))
        payload = _write_payload(root, fn, args, kwargs or {})
        try:
            job_id = jobs_store.submit(
                name=name, kind="function", argv=[sys.executable, str(payload)], **common
            )
        except BaseException:
            payload.unlink(missing_ok=True)
            raise
    else:
        assert argv is not None
        name = options.name or _default_name(os.path.basename(argv[0]) if argv else "")
        job_id = jobs_store.submit(name=name, kind="command", argv=argv, **common)
    if backend == "slurm":
        _slurm.submit(jobs_store, jobs_store.get(job_id), job_dir(job_id, root))
    else:
        ensure_runner(root)
    return job_id


# ---------------------------------------------------------------------------------- local runner


def poke_runner(root: Path) -> bool:
    """Wakes the runner; returns False when no runner is listening."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.sendto(b"!", str(_layout.runner_socket(root)))
        return True
    except BlockingIOError:
        return True  # its queue is full of wake-ups already
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise
    finally:
        sock.close()


def ensure_runner(root: Path | None = None) -> None:
    """Wakes the local runner of ``root``, starting one if none is running."""
    root = root or home()
    if poke_runner(root):
        return
    # The runner checks its environment, daemonizes and returns; a duplicate started by a racing
    # submitter exits when it cannot take the lock.
    started = subprocess.run(
        [sys.executable, "-m", "zenith._runner", "--home", str(root), "--daemon"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    if started.returncode != 0:
        raise JobError(started.stderr.strip() or f"the local runner exited with {started.returncode}")


def runner_pid(root: Path | None = None) -> int | None:
    """Pid of the live runner of ``root``, or None."""
    root = root or home()
    try:
        pid = int(_layout.runner_pid(root).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if poke_runner(root) else None


# ---------------------------------------------------------------------------------- queries


def _refresh(info: JobInfo, root: Path) -> JobInfo:
    if info.backend == "slurm" and info.state not in FINAL_STATES:
        return _slurm.refresh(store(root), info, job_dir(info.id, root))
    return info


def get(job_id: int) -> JobInfo:
    """The job's full record (refreshed from Slurm for Slurm jobs); ``JobError`` for unknown ids."""
    root = home()
    return _refresh(store(root).get(_int_field("job id", job_id)), root)


def status(job_id: int) -> str:
    """The job's state: ``QUEUED``, ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or ``CANCELLED``.

    Asking about an unfinished local job also makes sure a runner serves it.
    """
    info = get(job_id)
    if info.backend == "local" and info.state not in FINAL_STATES:
        ensure_runner()
    return info.state


def jobs(state: str | None = None) -> list[JobInfo]:
    """All jobs, oldest first (optionally only those in ``state``)."""
    root = home()
    found = [_refresh(j, root) for j in store(root).list(None, None)]
    if any(j.backend == "local" and j.state not in FINAL_STATES for j in found):
        ensure_runner(root)
    return [j for j in found if state is None or j.state == state]


def wait(job_id: int, timeout: float | None = None) -> str:
    """Blocks until the job is final and returns its state; ``TimeoutError`` after ``timeout`` s.

    For local jobs, a runner that died is restarted while waiting, so no job is left behind.
    """
    root = home()
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    last_check = time.monotonic()
    while True:
        info = get(job_id)
        if info.state in FINAL_STATES:
            return info.state
        now = time.monotonic()
        if info.backend == "local" and now - last_check > 1.0:
            ensure_runner(root)
            last_check = now
        if deadline is not None and now >= deadline:
            raise TimeoutError(f"job {job_id} is still {info.state} after {timeout} s")
        sleep = delay if deadline is None else min(delay, max(0.0, deadline - now))
        time.sleep(sleep)
        delay = min(delay * 1.5, 0.25 if info.backend == "local" else 1.0)


def result(job_id: int, timeout: float | None = None) -> Any:
    """Waits for the job and returns the function's return value (None for a command).

    Raises ``JobError`` with the exit code and traceback if the job failed or was cancelled.
    """
    state = wait(job_id, timeout)
    info = get(job_id)
    if state != "SUCCEEDED":
        detail = info.error or f"exit code {info.exit_code}"
        raise JobError(f"job {job_id} {state}: {detail}")
    if info.kind != "function":
        return None
    import cloudpickle

    path = _layout.result_path(job_dir(job_id))
    try:
        with path.open("rb") as f:
            return cloudpickle.load(f)
    except FileNotFoundError as exc:
        raise JobError(f"job {job_id} succeeded but its result file {path} is missing") from exc


def cancel(job_id: int, timeout: float = 30.0) -> str:
    """Cancels a queued or running job and returns its final state.

    A queued job is cancelled at once; a running one has its process group killed (local) or is
    ``scancel``-ed (Slurm). A job that already finished keeps its state, which is returned.
    """
    root = home()
    jobs_store = store(root)
    info = jobs_store.get(_int_field("job id", job_id))
    if info.backend == "slurm":
        return _slurm.cancel(jobs_store, info, job_dir(info.id, root), timeout)
    outcome = jobs_store.cancel(job_id)
    if outcome == "cancelled" and info.kind == "function":
        Path(info.argv[1]).unlink(missing_ok=True)  # it will never run: drop the pickled call
    if outcome == "requested":
        ensure_runner(root)
        try:
            return wait(job_id, timeout)
        except TimeoutError:
            return status(job_id)
    return jobs_store.get(job_id).state


def logs(job_id: int, stream: str = "all") -> str:
    """The job's captured output: ``"stdout"``, ``"stderr"`` or ``"all"`` (stdout then stderr)."""
    if stream not in (*_layout.STREAMS, "all"):
        raise ValueError(f"stream must be 'stdout', 'stderr' or 'all', got {stream!r}")
    info = get(job_id)
    directory = job_dir(info.id)
    names = _layout.STREAMS if stream == "all" else (stream,)
    parts = []
    for name in names:
        try:
            parts.append(_layout.log_path(directory, name).read_text(errors="replace"))
        except FileNotFoundError:
            parts.append("")
    return "".join(parts)
