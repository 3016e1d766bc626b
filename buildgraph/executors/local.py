"""Run a job on the host: `sh -e -c COMMAND` in a scratch directory holding only its inputs.

The command
  * runs through POSIX `sh -e -c` (not bash: portable, and what docker's shell form uses;
    `-e`: a multi-line command stops at its first failing line, see `base.shell_argv`),
    with cwd = `<scratch>/work`, which holds the declared inputs (see `workdir.py`) and the
    parent directories of the declared outputs — not the outputs themselves;
  * inherits the host environment (users expect their venv's `python`, `HOME`, `LANG`),
    then `PYTHONUNBUFFERED=1` (so Python progress shows live), then `Job.env`, then
    `BG_STAGE` (the stage name) and `BG_RUN_ID`, which a stage cannot override. There is
    no `BG_OUTPUTS`: the command line already names its outputs;
  * reads stdin from /dev/null and writes stdout and stderr, merged, to `Job.log_path`
    (the exact bytes) and, split into lines, to `on_line`; a carriage return also ends a
    line there, so a tqdm bar updates live instead of arriving in one piece at the end.
    A command that succeeds silently leaves no new log file (an old one is emptied);
    a failed one always leaves its log;
  * runs in its own session and process group. A timeout or `Cancel` sends SIGTERM to the
    group, then SIGKILL after `kill_grace` seconds. Whatever is left of the group when the
    command exits (a forgotten `server &`) is SIGKILLed: a stage leaves no orphans.

Command failures come back in the `Result`, never as exceptions; only misuse (a scratch
directory already holding `work/`, an input path escaping the project) raises.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from buildgraph.diskfull import NoSpace, writing
from buildgraph.executors.base import Cancel, Job, Result, not_admitted, shell_argv
from buildgraph.executors.workdir import (
    LINK_MODES,
    NOT_STARTED,
    LinkMode,
    StagingError,
    modified_inputs_problem,
    output_problems,
    stage_inputs,
    work_dir,
)
from buildgraph.lines import LineSink

if TYPE_CHECKING:
    import subprocess

    from buildgraph.executors.fingerprint import HostProbe
    from buildgraph.executors.guardian import Guardian

_MAX_LINE = 64 * 1024  # a longer run of bytes without a newline is passed on in pieces
_DRAIN_GRACE = 2.0  # seconds to wait for EOF from a process that escaped the group


class LocalExecutor:
    name = "local"

    def __init__(self, link: str = "auto", *, kill_grace: float = 5.0, poll_interval: float = 0.05) -> None:
        if link not in LINK_MODES:
            raise ValueError(f"link must be one of {', '.join(LINK_MODES)}, not {link!r}")
        self.link: LinkMode = link  # type: ignore[assignment]
        self.kill_grace = kill_grace
        self.poll_interval = poll_interval
        self._guardian: Guardian | None = None  # made with the first job (a null run needs none)
        self._guardian_lock = threading.Lock()
        self._logs: dict[str, set[str]] = {}  # log folder → the names of logs that may exist there
        self._logs_lock = threading.Lock()
        self._devnull: int | None = None  # every job's stdin, opened once
        self._host: HostProbe | None = None  # started with the first job (fingerprint.py)
        self._host_lock = threading.Lock()

    def close(self) -> None:
        if self._guardian is not None:
            self._guardian.close()
        if self._devnull is not None:
            os.close(self._devnull)
            self._devnull = None
        if self._host is not None:
            self._host.close()

    @property
    def guardian(self) -> Guardian:
        """Kills our jobs' groups if bg is SIGKILLed (it starts subprocess: imported here)."""
        with self._guardian_lock:
            if self._guardian is None:
                from buildgraph.executors.guardian import Guardian

                self._guardian = Guardian(_memory_folder())
            return self._guardian

    def run(self, job: Job, on_line: LineSink | None = None, cancel: Cancel | None = None) -> Result:
        started = time.monotonic()
        workdir = work_dir(job.scratch)
        logs = self._logs_in(os.path.dirname(job.log_path))
        old_log = job.log_path.name in logs  # a log of an earlier run, to empty
        logs.add(job.log_path.name)  # from here on it may exist
        host = self._host_probe()  # started now, read once a command has run
        if cancel is not None and cancel.is_set():  # Ctrl-C came while this job was queued
            job.log_path.write_bytes(b"")
            return Result(NOT_STARTED, workdir, 0.0, job.log_path, interrupted=True)
        try:
            snapshot = stage_inputs(workdir, job.inputs, job.outputs, self.link)
        except StagingError as exc:
            job.log_path.write_bytes(b"")
            return Result(NOT_STARTED, workdir, time.monotonic() - started, job.log_path, error=str(exc))
        if not job.admit():  # inputs staged: wait for a slot, then start at once
            return not_admitted(job, workdir)
        with _LazyLog(job.log_path, job.stage, old=old_log) as log:
            outcome = _Supervisor(self, job, log, on_line or _ignore, cancel).run(workdir)
        problems = [modified_inputs_problem(snapshot), outcome.error]
        if outcome.exit_status == 0 and not outcome.error and not outcome.interrupted:
            problems.append(output_problems(workdir, job.outputs))
        if any(problems) or outcome.exit_status != 0 or outcome.interrupted:
            os.close(os.open(job.log_path, os.O_WRONLY | os.O_CREAT, 0o644))  # a failure names its log
        result = Result(
            exit_status=outcome.exit_status,
            output_root=workdir,
            duration=time.monotonic() - started,
            log_path=job.log_path,
            error="; ".join(p for p in problems if p),
            interrupted=outcome.interrupted,
        )
        if host.done():
            result.environment = self._environment(job, host)
        else:  # read once the next command has its slot: the probe must not hold that up
            result.environment_later = partial(self._environment, job, host)
        return result

    def environment(self, job: Job) -> dict[str, Any]:
        """Where `job` runs: the host, probed once per executor (a null run probes nothing)."""
        return self._environment(job, self._host_probe())

    def _environment(self, job: Job, host: HostProbe) -> dict[str, Any]:
        from buildgraph.executors import fingerprint

        env = job_environment(job)
        return fingerprint.for_job(host.result(), self.name, env, fingerprint.sees_gpus(env))

    def _host_probe(self) -> HostProbe:
        with self._host_lock:
            if self._host is None:
                from buildgraph.executors.fingerprint import HostProbe

                self._host = HostProbe()
            return self._host

    @property
    def devnull(self) -> int:
        """/dev/null, read-only: a job's stdin (subprocess would open it once per job)."""
        with self._logs_lock:
            if self._devnull is None:
                self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            return self._devnull

    def _logs_in(self, folder: str) -> set[str]:
        """The logs that may exist in `folder`, listed once (made if missing): a first build's
        jobs then truncate no log that is not there (a syscall a job, slow beside a short one)."""
        with self._logs_lock:
            names = self._logs.get(folder)
            if names is None:
                os.makedirs(folder, exist_ok=True)
                names = self._logs[folder] = set(os.listdir(folder))
            return names


def _memory_folder() -> Path | None:
    """/dev/shm where it is a writable folder: the guardian's list of groups is rewritten twice
    per job, and a rename over a file on a disk filesystem (ext4) waits for the disk."""
    shm = Path("/dev/shm")
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


class _LazyLog:
    """The job's log file, made on the first output. A silent command makes no new file (an
    old log is emptied): on some filesystems (ext4 without a journal) making a file costs more
    than a short command. A full disk raises NoSpace from `write` (which stops the job); the
    output after it is dropped, so draining the pipe still ends."""

    def __init__(self, path: Path, stage: str, old: bool = True) -> None:
        self.path, self.stage, self.old = path, stage, old  # old: a log may be there already
        self._file: BinaryIO | None = None
        self._full = False

    def __enter__(self) -> _LazyLog:
        if self.old:
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self.path, 0)  # the previous run's log is gone at once; no new inode
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError) if self._full else contextlib.nullcontext():
                self._file.close()  # after a full disk, flushing the rest fails again: reported already

    def write(self, chunk: bytes) -> None:
        if self._full:
            return
        try:
            with writing(f"the log of stage '{self.stage}'", self.path):
                self.create()
                assert self._file is not None
                self._file.write(chunk)
                self._file.flush()  # a killed `bg` still leaves the whole log behind
        except NoSpace:
            self._full = True
            raise

    def create(self) -> None:
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in __exit__


def job_environment(job: Job, host: Mapping[str, str] = os.environ) -> dict[str, str]:
    env = dict(host)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(job.env)
    env.update(BG_STAGE=job.stage, BG_RUN_ID=job.run_id)
    return env


def _ignore(line: str) -> None:
    pass


@dataclass
class _Outcome:
    exit_status: int
    error: str = ""
    interrupted: bool = False


class _Supervisor:
    """One command's life: start, pump output, enforce timeout/cancel, reap the whole group.

    A single thread multiplexes the output pipe and the process state with `select`, so
    log writes and `on_line` calls are never concurrent. The leader is observed with
    `waitid(WNOWAIT)` and reaped only after its group is killed: until then its pid (the
    group id) cannot be reused, so `killpg` can never hit an unrelated process.
    """

    def __init__(
        self, executor: LocalExecutor, job: Job, log: _LazyLog, on_line: LineSink, cancel: Cancel | None
    ) -> None:
        self.job, self.log, self.cancel = job, log, cancel
        self.grace, self.poll = executor.kill_grace, executor.poll_interval
        self.guardian, self.stdin = executor.guardian, executor.devnull
        self.lines = _LineSplitter(on_line)
        self.fd: int | None = None  # read end of the output pipe; None once closed
        self.pidfd: int | None = None  # readable once the leader exits: no polling lag

    def run(self, workdir: Path) -> _Outcome:
        try:
            proc = self._start(workdir)
        except OSError as exc:  # no `sh` on PATH, cwd vanished …
            return _Outcome(NOT_STARTED, error=f"could not start the command: {exc.strerror or exc}")
        try:
            self.pidfd = _pidfd(proc.pid)
            self.guardian.add(proc.pid)
            outcome = self._supervise(proc)
        finally:  # also on KeyboardInterrupt or a raising on_line: leave nothing running
            _signal_group(proc.pid, signal.SIGKILL)
            self.guardian.discard(proc.pid)  # before reaping: the group id stays ours until then
            proc.wait()
            if self.pidfd is not None:
                os.close(self.pidfd)
                self.pidfd = None
            self._drain()
        outcome.exit_status = proc.returncode
        return outcome

    def _start(self, workdir: Path) -> subprocess.Popen[bytes]:
        import subprocess

        env = job_environment(self.job)
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                shell_argv(self.job.command),
                cwd=workdir,
                env=env,
                stdin=self.stdin,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the child holds its own copy; EOF comes when the group is gone
        self.fd = read_fd
        return proc

    def _supervise(self, proc: subprocess.Popen[bytes]) -> _Outcome:
        """Pump output until the leader exits; on timeout/cancel, TERM then KILL the group."""
        started = time.monotonic()
        deadline = started + self.job.timeout if self.job.timeout > 0 else math.inf
        outcome, kill_at = _Outcome(0), math.inf
        while not _has_exited(proc.pid):
            self._pump(self.poll)
            now = time.monotonic()
            if kill_at == math.inf and (stop := self._stop_reason(now, deadline)):
                outcome.error, outcome.interrupted = stop
                _signal_group(proc.pid, signal.SIGTERM)
                kill_at = now + self.grace
            elif now >= kill_at:
                _signal_group(proc.pid, signal.SIGKILL)
        return outcome

    def _stop_reason(self, now: float, deadline: float) -> tuple[str, bool] | None:
        if self.cancel is not None and self.cancel.is_set():
            return "", True
        if now >= deadline:
            return f"timed out after {self.job.timeout:g}s", False
        return None

    def _pump(self, timeout: float) -> None:
        """Pass on what output is available, waiting for some up to `timeout` seconds."""
        watched = [fd for fd in (self.fd, self.pidfd) if fd is not None]
        if not watched:  # output closed, no pidfd: wait for the leader by polling
            if self.cancel is not None:
                self.cancel.event.wait(timeout)
            else:
                time.sleep(timeout)
            return
        ready, _, _ = select.select(watched, [], [], timeout)
        if self.fd is None or self.fd not in ready:
            return
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self._close_output()
            return
        self.log.write(chunk)  # and flushed: a killed `bg` still leaves the whole log behind
        self.lines.feed(chunk)

    def _drain(self) -> None:
        """Read the remaining output; give up on a process that escaped the group and holds the pipe."""
        give_up = time.monotonic() + _DRAIN_GRACE
        while self.fd is not None and time.monotonic() < give_up:
            self._pump(0.05)
        self._close_output()

    def _close_output(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.lines.close()


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux ≥ 5.3: fall back to polling
        return None


def _has_exited(pid: int) -> bool:
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None and info.si_pid == pid


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already empty
        os.killpg(pgid, sig)


_LINE_END = re.compile(rb"\r\n|\n|\r")


class _LineSplitter:
    """Bytes in, lines out: splits on \\n, \\r\\n and \\r; decodes UTF-8 leniently."""

    def __init__(self, sink: LineSink) -> None:
        self.sink = sink
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        data, held = self.pending + chunk, b""
        if data.endswith(b"\r"):  # maybe the first half of \r\n: decide with the next chunk
            data, held = data[:-1], b"\r"
        start = 0
        for match in _LINE_END.finditer(data):
            self._emit(data[start : match.start()], ended_by_cr=match.group() == b"\r")
            start = match.end()
        self.pending = data[start:] + held
        while len(self.pending) >= _MAX_LINE:  # binary junk or a huge line: bound the memory
            self._emit(self.pending[:_MAX_LINE], ended_by_cr=True)
            self.pending = self.pending[_MAX_LINE:]

    def close(self) -> None:
        self._emit(self.pending, ended_by_cr=True)
        self.pending = b""

    def _emit(self, raw: bytes, ended_by_cr: bool) -> None:
        raw = raw.removesuffix(b"\r")
        if ended_by_cr and not raw:
            return  # a bare carriage return (or nothing) is not a line
        self.sink(raw.decode("utf-8", errors="replace"))
