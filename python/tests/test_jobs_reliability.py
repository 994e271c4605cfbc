"""The job runner under faults: SIGKILL of the runner again and again during a burst of 500
submissions from 4 processes loses no accepted job and runs none twice; a full disk under the
jobs' logs fails the job with a clear error while the runner goes on."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import zenith
from jobs_support import kill_everything, process_alive, wait_until, zhome  # noqa: F401
from zenith.jobs import get, runner_pid, store

JOBS_PER_SUBMITTER = int(os.environ.get("ZENITH_SOAK_JOBS", "125"))

# Each run of a job leaves a file named by its job id and its process id in ``runs``.
SUBMITTER = """
import sys, zenith
runs = sys.argv[1]
for _ in range(int(sys.argv[2])):
    print(zenith.submit(["sh", "-c", 'touch "$0/$ZENITH_JOB_ID.$$"', runs]), flush=True)
"""


def test_runner_killed_during_a_burst_loses_no_job_and_runs_none_twice(
    zhome: Path, tmp_path: Path  # noqa: F811
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", SUBMITTER, str(runs), str(JOBS_PER_SUBMITTER)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    rng = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 300
    while any(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "the submitters did not finish"
        time.sleep(rng.uniform(0.05, 0.5))
        pid = runner_pid(zhome)
        if pid is not None and process_alive(pid):
            os.kill(pid, signal.SIGKILL)
            kills += 1
    outputs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    ids = [int(i) for out, _ in outputs for i in out.split()]
    assert len(ids) == len(set(ids)) == 4 * JOBS_PER_SUBMITTER
    assert kills >= 3, kills
    # wait() starts a runner again where the last one was killed.
    states = {i: zenith.wait(i, timeout=120) for i in ids}
    listed = {info.id: info for info in store(zhome).list(None, None)}
    assert set(listed) == set(ids)  # every accepted job is in the store, and nothing else
    ran = collections.Counter(int(f.name.split(".")[0]) for f in runs.iterdir())
    assert ran == collections.Counter(ids)  # each ran exactly once
    # Jobs whose runner died while they ran were adopted, or, ended before the next runner
    # looked, marked from the exit status their process recorded: every one succeeded.
    assert collections.Counter(states.values()) == {"SUCCEEDED": len(ids)}, [
        (i, listed[i].error) for i, st in states.items() if st != "SUCCEEDED"][:5]


def test_full_disk_under_the_logs_fails_the_job_not_the_runner(zhome: Path) -> None:  # noqa: F811
    jobs = zhome / "jobs"
    jobs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "zenith-test-full", str(jobs)],
                   check=True)
    try:
        writer = "import sys\nfor _ in range(64):\n    sys.stdout.write('x' * 16384)\nsys.stdout.flush()"
        big = zenith.submit([sys.executable, "-c", writer])
        assert zenith.wait(big, timeout=60) == "FAILED"
        info = get(big)
        assert info.exit_code not in (None, 0)
        assert f"the filesystem holding its logs ({jobs / str(big)}) is full" in (info.error or ""), info.error
        runner = runner_pid(zhome)
        assert runner is not None and process_alive(runner)
        # The runner goes on: the next job runs (its empty logs still fit).
        after = zenith.submit(["true"])
        assert zenith.wait(after, timeout=60) == "SUCCEEDED"
        assert runner_pid(zhome) == runner and process_alive(runner)
    finally:
        kill_everything(zhome)
        wait_until(lambda: subprocess.run(["umount", str(jobs)]).returncode == 0, "the unmount")
