"""Scheduling overhead of the local executor: trivial command jobs (``true``) through a real runner.

    python bench/jobs_benchmark.py [--jobs 1000] [--latency-jobs 200] [--cpus N]

Two measurements, in a fresh ZENITH_HOME:

* latency: jobs submitted one at a time, each once the previous one has started, so nothing queues:
  submit -> start (both timestamps taken by the job store) is the executor's reaction time;
* throughput: ``--jobs`` jobs submitted at once; jobs/s from the first submit to the last finish, and
  the amortized executor cost per job (elapsed / jobs). With trivial jobs the executor is the
  bottleneck, so this is the scheduling overhead per job under load. Submit -> start here also
  includes queueing behind the CPU slots (``--cpus``, default: this machine's CPUs).

Target: under 20 ms per job. Prints a table and, with ``--json``, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=None, help="CPU slots of the executor")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="zenith-jobs-bench-"))
    os.environ["ZENITH_HOME"] = str(home)
    os.environ["ZENITH_GPUS"] = "0"
    if args.cpus:
        os.environ["ZENITH_CPUS"] = str(args.cpus)
    import zenith
    from zenith.jobs import get, runner_pid, store

    try:
        warm = zenith.submit(["true"])  # starts the runner
        zenith.wait(warm)

        latencies = []
        for _ in range(args.latency_jobs):
            job_id = zenith.submit(["true"])
            while get(job_id).started_at is None:
                time.sleep(0.0005)
            info = get(job_id)
            latencies.append((info.started_at - info.submitted_at) * 1000)
        for job_id in range(warm + 1, warm + 1 + args.latency_jobs):
            zenith.wait(job_id)

        t0 = time.time()
        ids = [zenith.submit(["true"]) for _ in range(args.jobs)]
        t_submitted = time.time()
        zenith.wait(ids[-1])
        for job_id in ids:
            zenith.wait(job_id)
        infos = [j for j in store().list(None, None) if j.id in set(ids)]
        t_end = max(j.finished_at for j in infos)
        states = {j.state for j in infos}
        elapsed = t_end - t0
        queued_ms = [(j.started_at - j.submitted_at) * 1000 for j in infos]
        cpus = int(os.environ.get("ZENITH_CPUS") or len(os.sched_getaffinity(0)))
        report = {
            "jobs": args.jobs,
            "cpus": cpus,
            "all_succeeded": states == {"SUCCEEDED"},
            "latency_jobs": args.latency_jobs,
            "latency_submit_to_start_ms_median": statistics.median(latencies),
            "latency_submit_to_start_ms_p95": percentile(latencies, 0.95),
            "throughput_jobs_per_s": args.jobs / elapsed,
            "throughput_ms_per_job": elapsed * 1000 / args.jobs,
            "submit_ms_per_job": (t_submitted - t0) * 1000 / args.jobs,
            "burst_submit_to_start_ms_median": statistics.median(queued_ms),
        }
    finally:
        pid = runner_pid(home)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(home, ignore_errors=True)

    if args.json:
        print(json.dumps(report))
    else:
        width = max(len(k) for k in report)
        for key, value in report.items():
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            print(f"{key.ljust(width)}  {shown}")
    target_ok = report["throughput_ms_per_job"] < 20 and report["latency_submit_to_start_ms_median"] < 20
    print(f"target < 20 ms/job: {'met' if target_ok else 'NOT met'}", file=sys.stderr)
    return 0 if report["all_succeeded"] else 1


if __name__ == "__main__":
    sys.exit(main())
