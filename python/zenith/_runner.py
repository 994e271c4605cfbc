"""The local executor: ``python -m zenith._runner --home DIR`` (or ``zenith jobs serve``).

One runner per job home, guaranteed by an exclusive ``flock`` on ``runner.lock``. It sleeps in
``select`` on a wake-up socket (poked by every submit and cancel) and on SIGCHLD, so starting a job
costs one store transaction and one ``fork/exec``. Which jobs start, and on which GPU ids, is decided
by the Rust scheduler inside the store's transaction (``JobStore.claim_startable``); this process only
spawns, reaps and kills.

Crash safety: every state lives in SQLite, and a job's command runs at most once. The runner starts
the job's process as a shell waiting at a start gate (a line on its standard input), records its
pid, and only then opens the gate; the shell creates ``started`` in the job directory, runs the
command and records its exit code in ``status.json``. A runner killed before recording the pid or
opening the gate leaves a process that exits without running anything (the gate reads end of
input). When a runner starts it inspects the jobs still marked RUNNING: claims whose command never
started go back to the queue; live processes are adopted and watched; dead ones are marked from
their ``status.json``, or as FAILED with "exit status unknown" when the job's process was killed
before writing it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from zenith import _layout
from zenith._zenith import JobInfo, JobStore, ValidationError, parse_memory

KILL_GRACE_S = float(os.environ.get("ZENITH_KILL_GRACE", "3"))
STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class Machine:
    """What the runner may hand out."""

    gpus: int
    memory: int
    cpus: int


def detect_gpus() -> int:
    """``$ZENITH_GPUS`` if set, else the number of ``GPU n:`` lines of ``nvidia-smi -L``, else 0."""
    forced = os.environ.get("ZENITH_GPUS")
    if forced is not None and forced.strip() != "":
        return int(forced)
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def detect_machine() -> Machine:
    """GPUs (see :func:`detect_gpus`), memory (``$ZENITH_MEMORY`` or MemTotal), CPUs (``$ZENITH_CPUS``
    or the CPUs this process may run on)."""
    mem_env = os.environ.get("ZENITH_MEMORY")
    if mem_env:
        memory = parse_memory(mem_env)
    else:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpus_env = os.environ.get("ZENITH_CPUS")
    cpus = int(cpus_env) if cpus_env else len(os.sched_getaffinity(0))
    return Machine(gpus=detect_gpus(), memory=memory, cpus=cpus)


def _proc_start_time(pid: int) -> float | None:
    """Start time (epoch seconds) of a live, non-zombie process, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    ticks = int(fields[19])
    with open("/proc/stat", "rb") as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def is_job_process(info: JobInfo) -> bool:
    """True if the job's pid is alive and is the process started for the job, not a reused pid: it
    was created between the job's submission and the runner recording its start."""
    if info.pid is None:
        return False
    start = _proc_start_time(info.pid)
    if start is None:
        return False
    # /proc's boot time has whole-second resolution (and may be adjusted): allow two seconds.
    latest = info.started_at if info.started_at is not None else time.time()
    return info.submitted_at - 2.0 <= start <= latest + 2.0


def find_job_process(jobdir: Path) -> int | None:
    """Pid of the live process group leader started for the job in ``jobdir``, found by the
    ``ZENITH_JOB_DIR`` its runner put in its environment; for claims whose pid was never recorded
    by a runner of an earlier version (one without the start gate)."""
    marker = f"ZENITH_JOB_DIR={jobdir}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker not in f.read().split(b"\0"):
                    continue
            if os.getpgid(pid) != pid:
                continue  # a child of the job, not its leader
        except OSError:
            continue
        if _proc_start_time(pid) is not None:
            return pid
    return None


def command_started(jobdir: Path) -> bool:
    """Whether the job's process got through the start gate (see the module doc)."""
    return _layout.started_path(jobdir).exists()


def killpg(pid: int, sig: int) -> None:
    """Signals the job's process group, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


# The job's process is this shell ($0 is the job directory). At the start gate it waits until
# the runner has recorded its pid and writes a line to its standard input; at end of input (the
# runner died first) it exits without running anything. Then it creates ``started``, runs the
# command, and records its exit code in ``status.json`` (negative for a signal, as the shell
# reports one; unless a function's worker did) before exiting the same way, so that a runner
# that died meanwhile leaves the outcome behind.
GATE = """read -r go || exit 0
exec </dev/null
: >"$0/started"
"$@"
code=$?
status=$code
if [ "$code" -gt 128 ] && [ "$code" -lt 160 ]; then status=$((128 - code)); fi
if [ ! -e "$0/status.json" ]; then
  printf '{"exit_code": %d}\\n' "$status" >"$0/status.tmp" && mv -f "$0/status.tmp" "$0/status.json"
fi
if [ "$status" -lt 0 ]; then kill -"$((code - 128))" "$$"; fi
exit "$code"
"""


def _check_runnable(argv0: str, env: dict[str, str], cwd: str) -> None:
    """Raises the error the command's ``exec`` would meet (missing program or directory), so
    that it is reported as a start failure rather than as the gate's exit code 127."""
    if not os.path.isdir(cwd):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cwd)
    if os.sep in argv0:
        path = argv0 if os.path.isabs(argv0) else os.path.join(cwd, argv0)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv0)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), argv0)
    elif shutil.which(argv0, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv0)


@dataclass
class Running:
    """A job this runner watches: its own child (``proc``) or one adopted after a restart."""

    info: JobInfo
    proc: subprocess.Popen | None
    kill_sent_at: float | None = None
    cancelled: bool = False


def _full_filesystem(jobdir: Path) -> str:
    """Why a failed job's logs may be cut short: the filesystem of its directory is full (the
    job's writes to them failed with "No space left on device"); empty when it is not."""
    try:
        fs = os.statvfs(jobdir)
    except OSError:
        return ""
    # Some filesystems keep no inode count (f_files 0): only blocks tell there.
    if fs.f_bavail > 0 and (fs.f_files == 0 or fs.f_favail > 0):
        return ""
    return (
        f"the filesystem holding its logs ({jobdir}) is full (No space left on device); "
        "its output was cut where the disk filled"
    )


def _tail(path: Path, lines: int) -> str:
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


class Runner:
    """Starts, watches and finishes the local jobs of one job home."""

    def __init__(self, root: Path, machine: Machine, idle_timeout: float | None) -> None:
        self.root = root
        self.machine = machine
        self.idle_timeout = idle_timeout
        self.store = JobStore(_layout.store_db(root))
        self.running: dict[int, Running] = {}
        self.stop = False

    # -------------------------------------------------------------- outcomes

    def _finish(self, run: Running, exit_code: int | None) -> None:
        info = run.info
        jobdir = _layout.job_dir(self.root, info.id)
        if exit_code is None:
            exit_code = _layout.read_status(jobdir)
        if run.cancelled:
            self.store.transition(info.id, "CANCELLED", exit_code, "cancelled while running")
        elif exit_code == 0:
            self.store.transition(info.id, "SUCCEEDED", 0, None)
        elif exit_code is None:
            self.store.transition(
                info.id,
                "FAILED",
                None,
                f"the runner stopped while this job ran (pid {info.pid}); its exit status is unknown",
            )
        else:
            if exit_code < 0:
                what = f"killed by signal {signal.Signals(-exit_code).name}"
            else:
                what = f"exited with code {exit_code}"
            full = _full_filesystem(jobdir)
            if full:
                what = f"{what}: {full}"
            detail = _layout.read_error(jobdir) if info.kind == "function" else ""
            if not detail:
                detail = _tail(_layout.log_path(jobdir, "stderr"), STDERR_TAIL_LINES)
            error = f"{what}\n{detail}".rstrip()
            self.store.transition(info.id, "FAILED", exit_code, error)
        if info.kind == "function" and len(info.argv) == 2:
            Path(info.argv[1]).unlink(missing_ok=True)  # the payload is not needed any more
        self.running.pop(info.id, None)

    # -------------------------------------------------------------- recovery

    def recover(self) -> None:
        """Inspects jobs left RUNNING by an earlier runner (see the module doc)."""
        for info in self.store.list("RUNNING", "local"):
            jobdir = _layout.job_dir(self.root, info.id)
            if info.pid is None:
                # Claimed, but the runner died before recording a pid: with the start gate the
                # command never ran. A process started by an older runner is found by its
                # environment and adopted.
                pid = find_job_process(jobdir)
                if pid is not None:
                    _layout.started_path(jobdir).touch()  # it runs the command
                    self.store.mark_started(info.id, pid)
                    self.running[info.id] = Running(info=self.store.get(info.id), proc=None)
                elif command_started(jobdir):
                    self._finish(Running(info=info, proc=None), None)
                else:
                    self.store.requeue(info.id)
            elif is_job_process(info):
                self.running[info.id] = Running(info=info, proc=None)
            else:
                self._gone(Running(info=info, proc=None))

    def _gone(self, run: Running) -> None:
        """An adopted job's process is gone: finished, or (no ``started``) stopped at the gate."""
        if command_started(_layout.job_dir(self.root, run.info.id)) or run.cancelled:
            self._finish(run, None)
        else:
            self.store.requeue(run.info.id)
            self.running.pop(run.info.id, None)

    # -------------------------------------------------------------- one pass

    def _spawn(self, info: JobInfo) -> None:
        jobdir = _layout.job_dir(self.root, info.id)
        env = dict(info.env)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in info.gpu_ids)
        env["ZENITH_JOB_ID"] = str(info.id)
        env["ZENITH_JOB_DIR"] = str(jobdir)
        if info.kind == "function":
            argv = [info.argv[0], "-m", "zenith._worker", info.argv[1], str(jobdir)]
        else:
            argv = list(info.argv)
        try:
            jobdir.mkdir(parents=True, exist_ok=True)
            _layout.started_path(jobdir).unlink(missing_ok=True)
            _layout.status_path(jobdir).unlink(missing_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            logs = (
                os.open(_layout.log_path(jobdir, "stdout"), flags, 0o600),
                os.open(_layout.log_path(jobdir, "stderr"), flags, 0o600),
            )
        except OSError as exc:
            self.store.transition(
                info.id, "FAILED", None, f"cannot create the job's logs in {jobdir}: {exc}"
            )
            return
        gate_r, gate_w = os.pipe()
        try:
            _check_runnable(argv[0], env, info.cwd)
            proc = subprocess.Popen(
                ["/bin/sh", "-c", GATE, str(jobdir), *argv],
                cwd=info.cwd,
                env=env,
                stdin=gate_r,
                stdout=logs[0],
                stderr=logs[1],
                start_new_session=True,  # its own process group: cancel kills the whole tree
                close_fds=True,
            )
        except OSError as exc:
            os.close(gate_w)
            self.store.transition(info.id, "FAILED", None, f"cannot start {argv[0]!r}: {exc}")
            return
        finally:
            for fd in (*logs, gate_r):
                os.close(fd)
        try:
            # Recorded before the gate opens: a runner killed from here on leaves a pid to find,
            # and one killed before, a process that exits without running the command.
            self.store.mark_started(info.id, proc.pid)
            os.write(gate_w, b"go\n")
        finally:
            os.close(gate_w)
        self.running[info.id] = Running(info=info, proc=proc)

    def _handle_cancels(self) -> None:
        if not self.running:
            return
        now = time.monotonic()
        flagged = set(self.store.cancel_requested())
        for job_id, run in list(self.running.items()):
            pid = run.proc.pid if run.proc else run.info.pid
            if pid is None:
                continue
            if job_id in flagged and run.kill_sent_at is None:
                run.cancelled = True
                run.kill_sent_at = now
                killpg(pid, signal.SIGTERM)
            elif run.kill_sent_at is not None and now - run.kill_sent_at > KILL_GRACE_S:
                killpg(pid, signal.SIGKILL)

    def _reap(self) -> None:
        for run in list(self.running.values()):
            if run.proc is not None:
                code = run.proc.poll()
                if code is None:
                    continue
                killpg(run.proc.pid, signal.SIGKILL)  # leftovers of the job's process group
                self._finish(run, code)
            elif not is_job_process(run.info):
                self._gone(run)

    def _start_ready(self) -> None:
        m = self.machine
        for info in self.store.claim_startable(m.gpus, m.memory, m.cpus):
            self._spawn(info)

    def step(self) -> None:
        """One scheduling pass: cancels, reaping, then starts."""
        self._handle_cancels()
        self._reap()
        self._start_ready()

    # -------------------------------------------------------------- loop

    def serve(self, wake: socket.socket, sigfd: int) -> None:
        """Runs passes until stopped, or idle for ``idle_timeout`` seconds."""
        idle_since = time.monotonic()
        watched: list[socket.socket | int] = [wake, sigfd]
        while not self.stop:
            self.step()
            busy = bool(self.running) or self.store.local_active_count() > 0
            now = time.monotonic()
            if busy:
                idle_since = now
            elif self.idle_timeout is not None and now - idle_since >= self.idle_timeout:
                return
            adopted = any(r.proc is None or r.kill_sent_at is not None for r in self.running.values())
            timeout = 0.2 if adopted else 1.0
            try:
                ready, _, _ = select.select(watched, [], [], timeout)
            except InterruptedError:
                continue
            if wake in ready:
                _drain_socket(wake)
            if sigfd in ready:
                _drain_fd(sigfd)


def _drain_socket(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(64)
        except (BlockingIOError, InterruptedError):
            return


def _drain_fd(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 512):
                return
        except (BlockingIOError, InterruptedError):
            return


def _try_lock(lock: IO[str]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _bind(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    wake = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    wake.bind(str(path))
    wake.setblocking(False)
    return wake


def run(root: Path, idle_timeout: float | None, machine: Machine) -> int:
    """Serves ``root`` with ``machine``'s resources in this process; returns 0 (also when another
    runner already serves it)."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(_layout.runner_lock(root), "a+") as lock:
        if not _try_lock(lock):
            print(f"zenith: a runner already serves {root}", file=sys.stderr)
            return 0
        sock_path = _layout.runner_socket(root)
        wake = _bind(sock_path)
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        runner = Runner(root, machine, idle_timeout)

        def stop(*_: object) -> None:
            runner.stop = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        _layout.runner_pid(root).write_text(f"{os.getpid()}\n")
        m = runner.machine
        print(
            f"zenith runner {os.getpid()} serving {root}: "
            f"{m.gpus} GPUs, {m.memory} bytes, {m.cpus} CPUs",
            flush=True,
        )
        runner.recover()
        while True:
            try:
                runner.serve(wake, r)
            finally:
                # Jobs keep running; the next runner adopts them. Unbind first: from now on
                # submitters start a new runner instead of poking this one.
                sock_path.unlink(missing_ok=True)
                wake.close()
            if runner.stop:
                return 0
            # Idle exit. A submit may have poked just before the unbind: release the lock, look
            # again, and keep serving only if there is work and no new runner took over.
            fcntl.flock(lock, fcntl.LOCK_UN)
            if runner.store.local_active_count() == 0 or not _try_lock(lock):
                return 0
            wake = _bind(sock_path)


def main(argv: list[str] | None = None) -> int:
    """``python -m zenith._runner --home DIR [--idle-timeout S] [--daemon]``."""
    parser = argparse.ArgumentParser(prog="python -m zenith._runner")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=float(os.environ.get("ZENITH_RUNNER_IDLE_TIMEOUT", "300")),
        help="exit after this many seconds without jobs (negative: never)",
    )
    parser.add_argument("--daemon", action="store_true", help="detach and return at once")
    args = parser.parse_args(argv)
    idle = None if args.idle_timeout < 0 else args.idle_timeout
    root = args.home.absolute()
    try:
        # Before detaching, so that a bad ZENITH_GPUS/CPUS/MEMORY reaches the submitter.
        machine = detect_machine()
    except (ValueError, ValidationError) as exc:
        print(f"zenith: cannot start the local runner: {exc}", file=sys.stderr)
        return 2
    if args.daemon:
        if os.fork() != 0:
            return 0
        os.setsid()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        log = os.open(_layout.runner_log(root), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
    return run(root, idle, machine)


if __name__ == "__main__":
    sys.exit(main())
