"""Kill and resume: a training-like loop saves the loader's ``state_dict()`` every few batches
(atomically: a temporary file, fsync, rename) and is killed with SIGKILL at random points,
then started again from its last saved state, until it finishes two epochs. The batches each
run delivered up to the point the next run resumed from, followed by the last run's, must be
the uninterrupted run's batches exactly: every sample once per epoch, in the same batches and
order, none twice after its checkpoint. A batch delivered again after a kill (it came after
the last checkpoint) must equal the one delivered before.

Local Parquet files, and Parquet from a real S3-compatible server behind a proxy that answers
503s, resets connections and stalls bodies past the client's timeout. ``ZENITH_SOAK_SEEDS``
runs more seeds (``make soak``)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zenith
from s3_fault_proxy import FaultProxy, Request
from s3_server import S3Server

ROWS, BATCH, EPOCHS, EVERY = 6_000, 100, 2, 7
SEEDS = range(int(os.environ.get("ZENITH_SOAK_SEEDS", "2")))
COMMON = {"batch_size": BATCH, "shuffle": True, "seed": 11, "num_workers": 2, "shuffle_window": 1_500}
RETRY = {"retry_init_backoff": "5ms", "retry_max_backoff": "50ms", "max_retries": "10",
         "timeout": "1s"}

TRAIN = textwrap.dedent(
    """
    import json, os, sys, time
    import zenith

    source, state_path, log_path = sys.argv[1:4]
    options = json.loads(sys.argv[4])
    epochs, every = int(sys.argv[5]), int(sys.argv[6])
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def say(line):
        os.write(log, (line + "\\n").encode())  # one write: a kill never cuts a line

    def save(payload):
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, state_path)

    dl = zenith.DataLoader(source, **options)
    done = 0
    if os.path.exists(state_path):
        with open(state_path) as f:
            payload = json.load(f)
        dl.load_state_dict(payload["state"])
        done = payload["done"]
    say(f"resume {done}")
    while dl.epoch < epochs:
        for batch in dl:
            say("batch " + " ".join(map(str, batch["id"].tolist())))
            done += 1
            time.sleep(0.025)  # the training step
            if done % every == 0:
                save({"done": done, "state": dl.state_dict()})
    say("end")
    """
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kill")
    ids = np.arange(ROWS, dtype=np.int64)
    table = pa.table({"id": ids, "x": (ids % 97).astype(np.float32)})
    (root / "pq").mkdir()
    for k in range(3):
        pq.write_table(table.slice(k * ROWS // 3, ROWS // 3), root / "pq" / f"p{k}.parquet",
                       row_group_size=500)
    return root / "pq"


@pytest.fixture(scope="module")
def remote(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, FaultProxy]]:
    root = tmp_path_factory.mktemp("kill-s3")
    (root / "train").mkdir()
    for f in data.iterdir():
        (root / "train" / f.name).write_bytes(f.read_bytes())
    server = S3Server.start(root)
    proxy = FaultProxy.start(server.port)
    try:
        yield server, proxy
    finally:
        proxy.close()
        server.stop()


def uninterrupted(source: str, options: dict) -> list[list[int]]:
    dl = zenith.DataLoader(source, **options)
    out = []
    while dl.epoch < EPOCHS:
        out += [b["id"].tolist() for b in dl]
    return out


def parse_runs(log: Path) -> list[tuple[int, list[list[int]], bool]]:
    """Per run: the batch count it resumed at, the batches it delivered, whether it ended."""
    runs: list[tuple[int, list[list[int]], bool]] = []
    for line in log.read_text().splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "resume":
            runs.append((int(rest), [], False))
        elif kind == "batch":
            runs[-1][1].append([int(v) for v in rest.split()])
        else:
            assert kind == "end", line
            runs[-1] = (runs[-1][0], runs[-1][1], True)
    return runs


def log_lines(log: Path, kind: str) -> int:
    """Lines of ``kind`` in the log so far."""
    try:
        return sum(1 for line in log.read_text().splitlines() if line.startswith(kind + " "))
    except FileNotFoundError:
        return 0


def kill_until_done(source: str, options: dict, tmp: Path, seed: int) -> tuple[list[list[int]], int]:
    """Runs the loop, killing it at random points, until a run finishes; returns the batches
    as the runs delivered them up to each resume point, and the number of kills."""
    rng = random.Random(seed)
    state, log = tmp / "state.json", tmp / "log.txt"
    kills = 0
    for _ in range(40):
        child = subprocess.Popen(
            [sys.executable, "-c", TRAIN, str(source), str(state), str(log), json.dumps(options),
             str(EPOCHS), str(EVERY)],
            stderr=subprocess.PIPE, text=True,
        )
        # The kill comes at a random point after the loop started (its "resume" line), so a
        # slow interpreter start on a loaded machine does not eat every run.
        deadline = time.monotonic() + 120
        while (child.poll() is None and log_lines(log, "resume") <= kills
               and time.monotonic() < deadline):
            time.sleep(0.01)
        try:
            child.wait(timeout=rng.uniform(0.05, 1.0))
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
            if parse_runs(log)[-1][2]:
                break  # killed on its way out, after the last batch
            kills += 1
            continue
        assert child.returncode == 0, child.stderr.read() if child.stderr else ""
        break
    else:
        pytest.fail("the loop never finished")
    runs = parse_runs(log)
    assert runs[-1][2] and not any(ended for _, _, ended in runs[:-1])
    assert len(runs) == kills + 1
    delivered: list[list[int]] = []
    for (start, batches, _), nxt in zip(runs, [*runs[1:], None], strict=True):
        # A run resumes at its own start; what it delivered up to the next run's start counts.
        assert start <= len(delivered), "a run resumed past what was delivered"
        again = delivered[start:]
        assert batches[: len(again)] == again[: len(batches)], "a re-delivered batch differs"
        del delivered[start:]
        end = None if nxt is None else nxt[0] - start
        delivered += batches if end is None else batches[:end]
        if nxt is not None:
            # The next run starts at this run's last checkpoint (or an earlier one, had the
            # kill come before this run saved anything).
            assert nxt[0] <= start + len(batches)
    return delivered, kills


def check(delivered: list[list[int]], want: list[list[int]], kills: int) -> None:
    assert kills >= 1, "no kill happened: the test proved nothing"
    assert len(delivered) == len(want)
    assert delivered == want
    per_epoch = len(want) // EPOCHS
    for e in range(EPOCHS):
        ids = sorted(i for b in delivered[e * per_epoch:(e + 1) * per_epoch] for i in b)
        assert ids == list(range(ROWS))


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_and_resume_local(data: Path, tmp_path: Path, seed: int) -> None:
    delivered, kills = kill_until_done(str(data), COMMON, tmp_path, seed)
    check(delivered, uninterrupted(str(data), COMMON), kills)


def is_data_get(r: Request) -> bool:
    rng = r.range or ""
    return r.method == "GET" and rng.startswith("bytes=") and not rng.startswith("bytes=-")


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_and_resume_from_s3_under_faults(
    remote: tuple[S3Server, FaultProxy], tmp_path: Path, seed: int
) -> None:
    server, proxy = remote
    proxy.clear()
    rng = random.Random(1000 + seed)
    # Faults at random on about one data request in six, for the whole test.
    pick = lambda action: lambda r: is_data_get(r) and rng.random() < 0.06  # noqa: E731
    rules = [proxy.fail("503", pick("503"), times=None),
             proxy.fail("drop", pick("drop"), times=None),
             proxy.fail("cut", pick("cut"), times=None),
             proxy.fail("stall", pick("stall"), times=None, stall_s=1.5)]
    options = {**COMMON, "storage_options": server.options(proxy.endpoint, **RETRY)}
    started = time.monotonic()
    delivered, kills = kill_until_done("s3://train", options, tmp_path, seed)
    proxy.clear()
    assert all(r.hits > 0 for r in rules), [(r.action, r.hits) for r in rules]
    check(delivered, uninterrupted("s3://train", options), kills)
    assert time.monotonic() - started < 240
