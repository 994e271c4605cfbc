"""Shared fixtures and helpers of the job tests: a private ZENITH_HOME per test, and cleanup of every
process a test started (the runner and the jobs' process groups), also when the test fails."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from zenith import _runner
from zenith.jobs import runner_pid, store


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Polls ``predicate`` until true; fails the test (naming ``what``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def process_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    return _runner._proc_start_time(pid) is not None


def kill_everything(root: Path) -> None:
    """SIGKILLs the runner of ``root`` and the process group of every job it knows."""
    pid = runner_pid(root)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    for info in store(root).list(None, None):
        if info.pid is not None and _runner.is_job_process(info):
            _runner.killpg(info.pid, signal.SIGKILL)
        elif info.state == "RUNNING":
            leader = _runner.find_job_process(root / "jobs" / str(info.id))
            if leader is not None:
                _runner.killpg(leader, signal.SIGKILL)


@pytest.fixture
def zhome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ZENITH_HOME with 4 fake GPUs and 8 CPUs for the local executor."""
    root = tmp_path / "zenith-home"
    monkeypatch.setenv("ZENITH_HOME", str(root))
    monkeypatch.setenv("ZENITH_GPUS", "4")
    monkeypatch.setenv("ZENITH_CPUS", "8")
    monkeypatch.setenv("ZENITH_RUNNER_IDLE_TIMEOUT", "120")
    monkeypatch.setenv("ZENITH_KILL_GRACE", "3")
    monkeypatch.delenv("ZENITH_BACKEND", raising=False)
    monkeypatch.delenv("ZENITH_MEMORY", raising=False)
    # Functions defined in test modules are importable in the worker (sys.path travels with them).
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    root.mkdir()
    try:
        yield root
    finally:
        kill_everything(root)


def python_argv(code: str) -> list[str]:
    """A command running ``code`` with this interpreter (code may not use ``;``: use newlines)."""
    return [sys.executable, "-c", code]
