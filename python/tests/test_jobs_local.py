"""The local executor, for real: a runner process, job processes, a SQLite file in a temporary
ZENITH_HOME, fake GPUs (ZENITH_GPUS=4). No assertion depends on how long anything takes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zenith
from conftest import interrupt_python
from jobs_support import process_alive, python_argv, wait_until, zhome  # noqa: F401
from zenith import _runner
from zenith.jobs import ensure_runner, get, runner_pid

# ------------------------------------------------------------------ job bodies (run in workers)


def add(a: int, b: int, *, scale: int = 1) -> dict:
    return {"sum": (a + b) * scale, "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}


def fail_deep(x: int) -> float:
    return 1 / x


def wait_for_file(path: str, value: object = None) -> object:
    while not os.path.exists(path):
        time.sleep(0.02)
    return value


def hold_gpus(lockdir: str, release: str) -> list[str]:
    """Takes an exclusive lock file per visible GPU: a second holder of any GPU id fails here."""
    ids = os.environ["CUDA_VISIBLE_DEVICES"].split(",")
    for gpu in ids:
        fd = os.open(os.path.join(lockdir, f"gpu{gpu}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
    open(os.path.join(lockdir, f"started-{os.environ['ZENITH_JOB_ID']}"), "w").close()
    wait_for_file(release)
    for gpu in ids:
        os.unlink(os.path.join(lockdir, f"gpu{gpu}"))
    return ids


def record_start(order_file: str, name: str) -> str:
    with open(order_file, "a") as f:
        f.write(name + "\n")
    return name


def spawn_grandchild_and_sleep(pidfile: str) -> None:
    child = subprocess.Popen(["sleep", "300"])
    with open(pidfile + ".tmp", "w") as f:
        f.write(str(child.pid))
    os.replace(pidfile + ".tmp", pidfile)
    time.sleep(300)


@zenith.job(gpus=1, name="decorated", priority=5)
def decorated(x: int) -> int:
    return x + int(os.environ["CUDA_VISIBLE_DEVICES"]) + 100


# ------------------------------------------------------------------ tests


def test_command_job_runs_as_argv_and_captures_output(zhome: Path) -> None:  # noqa: F811
    script = "import sys\nprint('out', sys.argv[1:])\nprint('err', file=sys.stderr)"
    job_id = zenith.submit([*python_argv(script), "a b", "*"])
    assert isinstance(job_id, int)
    assert zenith.wait(job_id, timeout=60) == "SUCCEEDED"
    info = get(job_id)
    assert (info.exit_code, info.error, info.kind, info.gpu_ids) == (0, None, "command", [])
    assert zenith.logs(job_id, "stdout") == "out ['a b', '*']\n"
    assert zenith.logs(job_id, "stderr") == "err\n"
    assert zenith.logs(job_id) == "out ['a b', '*']\nerr\n"
    assert zenith.result(job_id) is None
    assert info.started_at is not None and info.finished_at is not None
    assert info.submitted_at <= info.started_at <= info.finished_at
    assert [j.id for j in zenith.jobs()] == [job_id]


def test_function_job_returns_its_value(zhome: Path) -> None:  # noqa: F811
    train = zenith.job(gpus=2, memory="1GiB", name="train-add", priority=3)(add)
    assert train(1, 2)["sum"] == 3  # calling it runs it here
    job_id = zenith.submit(train, 2, 3, scale=10)
    assert zenith.result(job_id, timeout=60) == {"sum": 50, "gpus": "0,1"}
    info = get(job_id)
    assert (info.name, info.state, info.gpus, info.memory, info.priority, info.gpu_ids) == (
        "train-add", "SUCCEEDED", 2, 1 << 30, 3, [0, 1]
    )
    # A plain function, no decorator: CPU only, CUDA_VISIBLE_DEVICES empty.
    plain = zenith.submit(add, 1, 1)
    assert zenith.result(plain, timeout=60) == {"sum": 2, "gpus": ""}
    assert get(plain).name == "add"
    # Decorated at module level: pickled by value, options from the decorator.
    by_method = decorated.submit(1)
    assert zenith.result(by_method, timeout=60) == 101
    assert (get(by_method).name, get(by_method).priority, get(by_method).gpu_ids) == ("decorated", 5, [0])


def test_failing_function_reports_exit_code_and_traceback(zhome: Path) -> None:  # noqa: F811
    job_id = zenith.submit(fail_deep, 0)
    assert zenith.wait(job_id, timeout=60) == "FAILED"
    info = get(job_id)
    assert info.exit_code == 1
    assert info.error is not None
    assert info.error.startswith("exited with code 1\nTraceback (most recent call last):")
    assert "in fail_deep" in info.error
    assert info.error.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "ZeroDivisionError: division by zero" in zenith.logs(job_id, "stderr")
    with pytest.raises(zenith.JobError, match=r"(?s)^job \d+ FAILED: exited with code 1\nTraceback.*ZeroDivisionError"):
        zenith.result(job_id)


def test_failing_command_reports_exit_code(zhome: Path) -> None:  # noqa: F811
    job_id = zenith.submit(python_argv("import sys\nprint('bad input', file=sys.stderr)\nsys.exit(3)"))
    assert zenith.wait(job_id, timeout=60) == "FAILED"
    info = get(job_id)
    assert (info.exit_code, info.error) == (3, "exited with code 3\nbad input")
    missing = zenith.submit(["/nonexistent/program"])
    assert zenith.wait(missing, timeout=60) == "FAILED"
    assert get(missing).error.startswith("cannot start '/nonexistent/program': ")


def test_four_two_gpu_jobs_never_share_a_gpu(zhome: Path, tmp_path: Path) -> None:  # noqa: F811
    locks = tmp_path / "locks"
    locks.mkdir()
    release = tmp_path / "release"
    two = zenith.job(gpus=2)(hold_gpus)
    ids = [zenith.submit(two, str(locks), str(release)) for _ in range(4)]
    # Two fit on four GPUs; the other two wait for GPUs, not for CPUs (8 CPUs).
    wait_until(lambda: len(list(locks.glob("started-*"))) == 2, "two jobs holding GPUs")
    states = sorted(zenith.status(i) for i in ids)
    assert states == ["QUEUED", "QUEUED", "RUNNING", "RUNNING"]
    running = [get(i).gpu_ids for i in ids if get(i).state == "RUNNING"]
    assert sorted(running) == [[0, 1], [2, 3]]
    release.touch()
    results = [zenith.result(i, timeout=120) for i in ids]
    for job_id, gpus in zip(ids, results, strict=True):
        assert len(gpus) == 2 and set(gpus) <= {"0", "1", "2", "3"}
        assert [int(g) for g in gpus] == get(job_id).gpu_ids
    assert sorted(int(g) for gpus in results for g in gpus) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_priorities_order_starts(zhome: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("ZENITH_GPUS", "1")
    release = tmp_path / "release"
    order = tmp_path / "order"
    blocker = zenith.submit(zenith.job(gpus=1)(wait_for_file), str(release))
    wait_until(lambda: zenith.status(blocker) == "RUNNING", "the blocker to run")
    submitted = []
    for name, priority in [("low", -5), ("mid", 0), ("high", 10), ("mid2", 0), ("top", 1000)]:
        fn = zenith.job(gpus=1, priority=priority, name=name)(record_start)
        submitted.append(zenith.submit(fn, str(order), name))
    assert [zenith.status(i) for i in submitted] == ["QUEUED"] * 5
    release.touch()
    for job_id in submitted:
        assert zenith.wait(job_id, timeout=120) == "SUCCEEDED"
    assert order.read_text().split() == ["top", "high", "mid", "mid2", "low"]
    starts = sorted(submitted, key=lambda i: get(i).started_at)
    assert [get(i).name for i in starts] == ["top", "high", "mid", "mid2", "low"]


def test_cancel_queued_and_running(zhome: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("ZENITH_GPUS", "1")
    pidfile = tmp_path / "grandchild.pid"
    running = zenith.submit(zenith.job(gpus=1)(spawn_grandchild_and_sleep), str(pidfile))
    queued = zenith.submit(zenith.job(gpus=1)(add), 1, 2)
    wait_until(pidfile.exists, "the running job's grandchild")
    grandchild = int(pidfile.read_text())
    job_pid = get(running).pid
    assert job_pid is not None and process_alive(job_pid) and process_alive(grandchild)
    assert zenith.status(queued) == "QUEUED"

    assert zenith.cancel(queued) == "CANCELLED"
    assert get(queued).error == "cancelled while queued"
    assert zenith.cancel(running) == "CANCELLED"
    info = get(running)
    assert (info.exit_code, info.error) == (-signal.SIGTERM, "cancelled while running")
    # The whole process group is gone, grandchild included.
    wait_until(lambda: not process_alive(job_pid) and not process_alive(grandchild), "the group to die")
    # Cancelling a finished job changes nothing.
    assert zenith.cancel(running) == "CANCELLED"
    with pytest.raises(zenith.JobError, match="CANCELLED"):
        zenith.result(queued)


def test_runner_killed_and_restarted_mid_job(zhome: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("ZENITH_GPUS", "1")
    release = tmp_path / "release"
    func = zenith.submit(zenith.job(gpus=1)(wait_for_file), str(release), 42)
    waiter = f"import os, sys, time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.02)\nsys.exit(3)"
    cmd = zenith.submit(python_argv(waiter))
    killed = zenith.submit(python_argv(waiter))
    queued = zenith.submit(zenith.job(gpus=1)(add), 20, 22)
    # RUNNING comes with the claim, the pid a moment later, when the process is started.
    wait_until(lambda: all(get(i).pid is not None for i in (func, cmd, killed)), "three jobs to run")
    first = runner_pid(zhome)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not process_alive(first), "the runner to die")
    # Jobs outlive their runner; the queued one waits.
    assert [zenith.status(i) for i in (func, cmd, killed, queued)] == ["RUNNING"] * 3 + ["QUEUED"]
    assert process_alive(get(func).pid or -1)

    # A new runner adopts the function job while it still runs ...
    # (ensure_runner again while waiting: a killed runner's socket may still accept a wake-up for a
    # moment after the process is gone, and then nothing is started.)
    wait_until(lambda: ensure_runner(zhome) or runner_pid(zhome) not in (None, first), "a second runner")
    second = runner_pid(zhome)
    assert second is not None
    # ... and that runner dies too before they end: the command job's process records its exit
    # status itself; a job whose whole process group is killed meanwhile records none.
    os.kill(second, signal.SIGKILL)
    wait_until(lambda: not process_alive(second), "the second runner to die")
    _runner.killpg(get(killed).pid or -1, signal.SIGKILL)
    release.touch()
    for job in (func, cmd, killed):
        wait_until(lambda: not process_alive(get(job).pid or -1), f"job {job} to end")  # noqa: B023

    # wait() restarts the runner; it marks the orphans from what they left and runs the queued job.
    assert zenith.result(func, timeout=60) == 42
    assert zenith.wait(cmd, timeout=60) == "FAILED"
    assert (get(cmd).exit_code, get(cmd).error) == (3, "exited with code 3")
    assert zenith.wait(killed, timeout=60) == "FAILED"
    info = get(killed)
    assert info.exit_code is None
    assert info.error == (
        f"the runner stopped while this job ran (pid {info.pid}); its exit status is unknown"
    )
    assert zenith.result(queued, timeout=60) == {"sum": 42, "gpus": "0"}
    assert runner_pid(zhome) not in (None, first, second)


def test_job_larger_than_the_machine_fails_with_reason(zhome: Path) -> None:  # noqa: F811
    job_id = zenith.submit(zenith.job(gpus=8)(add), 1, 2)
    assert zenith.wait(job_id, timeout=60) == "FAILED"
    assert get(job_id).error == "cannot run on this machine: requests 8 GPUs but this machine has 4"


def test_state_survives_the_submitting_process(zhome: Path) -> None:  # noqa: F811
    code = (
        "import zenith\n"
        "print(zenith.submit(['true']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    job_id = int(out.stdout)
    assert zenith.wait(job_id, timeout=60) == "SUCCEEDED"
    assert [j.id for j in zenith.jobs(state="SUCCEEDED")] == [job_id]


def test_idle_runner_exits_and_the_next_submit_starts_one(
    zhome: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("ZENITH_RUNNER_IDLE_TIMEOUT", "0.3")
    first = zenith.submit(["true"])
    assert zenith.wait(first, timeout=60) == "SUCCEEDED"
    wait_until(lambda: runner_pid(zhome) is None, "the idle runner to exit")
    assert not (zhome / "runner.sock").exists()
    second = zenith.submit(["true"])
    assert zenith.wait(second, timeout=60) == "SUCCEEDED"


def test_concurrent_submitters_share_one_runner(zhome: Path) -> None:  # noqa: F811
    code = "import zenith\nprint(*[zenith.submit(['true']) for _ in range(5)])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    ids = [int(i) for p in procs for i in p.communicate(timeout=120)[0].split()]
    assert sorted(ids) == list(range(1, 21))
    assert [zenith.wait(i, timeout=60) for i in ids] == ["SUCCEEDED"] * 20
    log = (zhome / "runner.log").read_text()
    assert log.count(" serving ") == 1, log


def test_bad_runner_environment_is_reported(zhome: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("ZENITH_MEMORY", "lots")
    with pytest.raises(zenith.JobError, match="cannot start the local runner: invalid memory: "):
        zenith.submit(["true"])
    monkeypatch.delenv("ZENITH_MEMORY")
    # The job was stored before the runner failed; a runner started later runs it.
    assert zenith.wait(1, timeout=60) == "SUCCEEDED"


def test_recovery_of_claims_whose_pid_was_never_recorded(zhome: Path, tmp_path: Path) -> None:  # noqa: F811
    """A runner killed between claiming a job and recording its pid: the next runner finds the
    process by its ZENITH_JOB_DIR and adopts it, or puts a claim that never spawned back in the queue."""
    from zenith import _runner
    from zenith.jobs import job_dir, store

    release = tmp_path / "release"
    jobs_store = store(zhome)
    waiter = python_argv(f"import os, time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.02)")
    common = {"cwd": str(tmp_path), "env": list(os.environ.items()), "gpus": 0, "memory": None,
              "cpus": 1, "priority": 0, "backend": "local"}
    spawned_id = jobs_store.submit(name="spawned", kind="command", argv=waiter, **common)
    unspawned_id = jobs_store.submit(name="unspawned", kind="command", argv=["true"], **common)
    claimed = jobs_store.claim_startable(4, 1 << 30, 8)
    assert [j.id for j in claimed] == [spawned_id, unspawned_id]
    jobdir = job_dir(spawned_id, zhome)
    jobdir.mkdir(parents=True)
    env = dict(os.environ, ZENITH_JOB_DIR=str(jobdir))
    proc = subprocess.Popen(waiter, env=env, start_new_session=True)
    try:
        # The child has just been forked: wait until its environment shows the job dir.
        wait_until(lambda: _runner.find_job_process(jobdir) == proc.pid, "the job process to be found")
        assert [get(i).pid for i in (spawned_id, unspawned_id)] == [None, None]

        ensure_runner(zhome)
        assert zenith.wait(unspawned_id, timeout=60) == "SUCCEEDED"  # requeued, then run
        wait_until(lambda: get(spawned_id).pid == proc.pid, "the spawned job to be adopted")
        assert zenith.status(spawned_id) == "RUNNING"
        release.touch()
        assert proc.wait(timeout=60) == 0
        assert zenith.wait(spawned_id, timeout=60) == "FAILED"
        assert get(spawned_id).error == (
            f"the runner stopped while this job ran (pid {proc.pid}); its exit status is unknown"
        )
    finally:
        proc.kill()
        proc.wait()


def test_ctrl_c_interrupts_wait(zhome: Path) -> None:  # noqa: F811
    """``zenith.wait`` on a job that runs for minutes raises KeyboardInterrupt on Ctrl-C; the job
    itself keeps running (only the waiting was interrupted)."""
    job = zenith.submit(python_argv("import time\ntime.sleep(120)"))
    code = f"import zenith\nprint('started', flush=True)\nzenith.wait({job})\n"
    err = interrupt_python(code, ready=lambda: wait_until(lambda: get(job).state == "RUNNING", "the job"))
    assert "KeyboardInterrupt" in err, err
    assert get(job).state == "RUNNING"
    zenith.cancel(job)
    assert zenith.wait(job, timeout=60) == "CANCELLED"
