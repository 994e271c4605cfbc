"""The Slurm backend against a real slurmctld + slurmd on 127.0.0.1, started (and installed with
apt-get if missing) by ``scripts/slurm-loopback.sh``. Skipped, with the script's reason, only when the
daemons cannot start."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zenith
from jobs_support import wait_until, zhome  # noqa: F401
from zenith import _slurm
from zenith.jobs import get, store

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm-loopback.sh"
PORT = "6917"  # not Slurm's default, so a developer's own test cluster does not collide


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    """A running one-node cluster; yields its SLURM_CONF. Stopped at the end of the session."""
    # munged wants its socket's directories searchable by all, which pytest's tmp dirs are not.
    directory = Path(tempfile.mkdtemp(prefix="zenith-slurm-", dir="/tmp"))
    directory.chmod(0o755)
    env = dict(os.environ, SLURM_LOOPBACK_PORT=PORT, SLURM_LOOPBACK_GPUS="4", SLURM_LOOPBACK_CPUS="4")
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", str(directory)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        subprocess.run([str(SCRIPT), "stop", str(directory)], env=env, timeout=120, check=False)
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip("Slurm daemons did not start within 600 s (install or start hung)")
    if started.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip(f"Slurm daemons could not start: {started.stderr.strip()[-2000:]}")
    conf = started.stdout.strip().split("=", 1)[1]
    try:
        yield conf
    finally:
        subprocess.run([str(SCRIPT), "stop", str(directory)], env=env, timeout=120, check=False)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def slurm(slurm_cluster: str, zhome: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A private ZENITH_HOME whose jobs go to the loopback cluster."""
    monkeypatch.setenv("SLURM_CONF", slurm_cluster)
    monkeypatch.setenv("ZENITH_BACKEND", "slurm")
    return zhome


def train(x: int) -> tuple:
    print(f"training on {os.environ.get('CUDA_VISIBLE_DEVICES')}")
    return x * 2, os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("SLURM_MEM_PER_NODE")


def broken() -> None:
    raise RuntimeError("bad batch")


def sleep_long() -> None:
    time.sleep(300)


SPEC = {"gpus": 2, "memory": "100MB", "cpus": 1, "name": "train-slurm", "priority": -3}


def test_sbatch_arguments_map_the_spec(zhome: Path) -> None:  # noqa: F811
    # Stored but not sent: build the arguments a Slurm submission would use.
    jobs_store = store(zhome)
    job_id = jobs_store.submit(
        name="train", kind="command", argv=["echo", "hi"], cwd="/tmp", env=[], gpus=2,
        memory=1_610_612_736, cpus=3, priority=-7, backend="slurm",
    )
    jobdir = zhome / "jobs" / str(job_id)
    assert _slurm.sbatch_args(jobs_store.get(job_id), jobdir) == [
        "--parsable",
        "--job-name=train",
        f"--output={jobdir}/stdout.log",
        f"--error={jobdir}/stderr.log",
        "--cpus-per-task=3",
        "--chdir=/tmp",
        "--export=ALL",
        "--gres=gpu:2",
        "--mem=1536M",
        "--nice=7",
    ]


def test_same_spec_through_slurm_succeeds_with_result(slurm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = zenith.submit(zenith.job(**SPEC)(train), 21)
    info = get(job_id)
    assert info.backend == "slurm" and info.backend_id is not None and info.backend_id.isdigit()
    # 100 MB is 95.4 MiB: Slurm gets --mem=96M and the job sees SLURM_MEM_PER_NODE=96.
    assert zenith.result(job_id, timeout=120) == (42, "0,1", "96")
    info = get(job_id)
    assert (info.state, info.exit_code, info.error) == ("SUCCEEDED", 0, None)
    assert zenith.logs(job_id, "stdout") == "training on 0,1\n"
    assert info.started_at is not None and info.finished_at is not None
    # The same decorated function with backend="slurm" (not the environment) goes the same way.
    explicit = zenith.job(**SPEC, backend="slurm")(train)
    monkeypatch.delenv("ZENITH_BACKEND")
    second = zenith.submit(explicit, 1)
    assert zenith.result(second, timeout=120) == (2, "0,1", "96")
    assert get(second).backend == "slurm"


def test_failures_through_slurm_report_exit_code_and_traceback(slurm: Path) -> None:
    job_id = zenith.submit(broken)
    assert zenith.wait(job_id, timeout=120) == "FAILED"
    info = get(job_id)
    assert info.exit_code == 1
    assert info.error is not None and info.error.startswith("exited with code 1\nTraceback")
    assert info.error.endswith("RuntimeError: bad batch")
    command = zenith.submit(["python3", "-c", "import sys\nsys.exit(3)"])
    assert zenith.wait(command, timeout=120) == "FAILED"
    assert (get(command).exit_code, get(command).error) == (3, "exited with code 3")


def test_cancel_through_slurm(slurm: Path) -> None:
    job_id = zenith.submit(sleep_long)
    wait_until(lambda: zenith.status(job_id) == "RUNNING", "the Slurm job to run", timeout=120)
    assert zenith.cancel(job_id) == "CANCELLED"
    info = get(job_id)
    assert (info.state, info.error) == ("CANCELLED", "cancelled (scancel)")
    assert [j.state for j in zenith.jobs()] == ["CANCELLED"]
