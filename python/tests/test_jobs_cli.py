"""The ``zenith`` command line, run as a real subprocess: output and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import zenith
from jobs_support import zhome  # noqa: F401
from zenith.jobs import get


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zenith.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_submit_wait_status_logs(zhome: Path) -> None:  # noqa: F811
    done = cli("submit", "--gpus", "2", "--memory", "1.5GiB", "--name", "greet", "--", "echo", "hello", "world")
    assert (done.returncode, done.stderr) == (0, "")
    job_id = int(done.stdout)
    assert cli("wait", str(job_id)).stdout == "SUCCEEDED\n"
    info = get(job_id)
    assert (info.name, info.argv, info.gpus, info.memory, info.gpu_ids) == (
        "greet", ["echo", "hello", "world"], 2, 1_610_612_736, [0, 1]
    )
    logs = cli("logs", str(job_id))
    assert (logs.returncode, logs.stdout, logs.stderr) == (0, "hello world\n", "")
    status = cli("status", str(job_id))
    assert status.returncode == 0
    skipped = ("gpu ids", "job dir", "exit code")
    lines = dict(line.split(None, 1) for line in status.stdout.splitlines() if not line.startswith(skipped))
    assert lines["state"] == "SUCCEEDED"
    assert lines["command"] == "echo hello world"
    assert lines["resources"] == "gpus=2 memory=1.5GiB cpus=1 priority=0"
    assert "exit code  0\n" in status.stdout and "gpu ids    0,1\n" in status.stdout
    table = cli("jobs").stdout.splitlines()
    assert table[0].split() == [
        "ID", "NAME", "STATE", "BACKEND", "GPUS", "MEM", "CPUS", "PRIO", "SUBMITTED", "RUNTIME", "EXIT"
    ]
    row = table[1].split()
    assert row[:8] == [str(job_id), "greet", "SUCCEEDED", "local", "2", "1.5GiB", "1", "0"]
    assert row[-1] == "0"


def test_exit_codes(zhome: Path) -> None:  # noqa: F811
    bad = cli("submit", "--", "cat", "../secret")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == (
        'zenith: invalid command: must not contain ".." (commands run as argv, never through a shell)\n'
    )
    assert cli("submit", "--memory", "8 GB", "--", "true").returncode == 2
    assert cli("submit").returncode == 2
    assert cli().returncode == 2
    assert zenith.jobs() == []

    missing = cli("status", "7")
    assert missing.returncode == 1
    assert missing.stderr.startswith("zenith: no job with id 7 in ")
    assert cli("logs", "7").returncode == 1
    assert cli("cancel", "7").returncode == 1

    failing = int(cli("submit", "--", sys.executable, "-c", "import sys\nsys.exit(4)").stdout)
    waited = cli("wait", str(failing))
    assert (waited.returncode, waited.stdout) == (1, "FAILED\n")
    assert get(failing).exit_code == 4
    finished = cli("cancel", str(failing))
    assert (finished.returncode, finished.stderr) == (1, f"zenith: job {failing} already finished (FAILED)\n")

    sleeper = int(cli("submit", "--", "sleep", "300").stdout)
    cancelled = cli("cancel", str(sleeper))
    assert (cancelled.returncode, cancelled.stdout) == (0, "CANCELLED\n")
    assert zenith.status(sleeper) == "CANCELLED"
    cancelled = cli("jobs", "--state", "CANCELLED").stdout.splitlines()
    assert cancelled[1].split()[:3] == [str(sleeper), "sleep", "CANCELLED"]


def test_logs_follow_until_the_job_ends(zhome: Path) -> None:  # noqa: F811
    code = (
        "import sys, time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)\n"
        "print('done', file=sys.stderr)"
    )
    job_id = int(cli("submit", "--", sys.executable, "-c", code).stdout)
    followed = cli("logs", "-f", str(job_id))
    assert (followed.returncode, followed.stdout, followed.stderr) == (0, "0\n1\n2\n", "done\n")
    assert zenith.status(job_id) == "SUCCEEDED"
