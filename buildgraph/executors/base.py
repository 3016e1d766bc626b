"""The executor interface: `Executor.run(job) -> Result`, nothing more.

Executors know only jobs; they never import `buildgraph.core`. A job is fully
resolved by the engine: absolute paths, interpolated command, environment.

Layout contract shared by every executor: the command runs with its working
directory holding the job's inputs at their project-relative paths (read-only
where the executor can enforce it) and writes its outputs at their
project-relative paths there. After `run` returns, the engine reads the outputs
from `Result.output_root`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from buildgraph.lines import LineSink


def shell_argv(command: str) -> list[str]:
    """How every executor runs a command: POSIX `sh` with `-e`, as CI systems run scripts, so a
    multi-line command stops at its first failing line instead of "succeeding" past it.
    (`set +e` on a command's first line opts out; `-e` ignores failures inside `if`, `&&`,
    `||` and all but the last command of a pipe, as POSIX says.)"""
    return ["sh", "-e", "-c", command]


@dataclass(frozen=True)
class Job:
    stage: str
    run_id: str  # unique per `bg run` invocation; labels containers, names scratch dirs
    command: str  # run by `shell_argv`
    inputs: tuple[tuple[str, Path], ...]  # (project-relative path, absolute source path)
    outputs: tuple[str, ...]  # project-relative output paths the command must create
    scratch: Path  # an empty directory the executor may use (engine removes it)
    log_path: Path  # the executor writes the combined stdout/stderr here
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = 0.0  # seconds, 0 = none
    image: str = ""  # docker image reference/id ("" for local)
    gpus: None | str | int | tuple[int, ...] = None
    network: bool = False
    shm_size: str = ""
    secrets: tuple[tuple[str, Path], ...] = ()  # (name, file holding the value)
    workdir: str = "/work"  # container-side project root (docker only)
    hostname: str = ""  # the container's hostname ("" = the engine's choice; docker only)
    # called by the executor right before it starts the command, once the job is prepared: waits
    # for a command slot (engine/slots.py); False: the run stopped, return `not_admitted`
    admit: Callable[[], bool] = field(default=lambda: True, compare=False, repr=False)


@dataclass
class Result:
    exit_status: int  # 0 ok; the command's status; -N killed by signal N
    output_root: Path  # directory holding the outputs at their relative paths
    duration: float  # seconds
    log_path: Path
    error: str = ""  # executor-level failure (timeout, undeclared input, missing output …)
    interrupted: bool = False
    # where the command ran (executors/fingerprint.py): python, torch, cuda, gpu, os …; {} when
    # it did not start
    environment: dict[str, Any] = field(default_factory=dict)
    # or not known yet (the host probe of a first command may still run): `settle` fills it,
    # which the engine calls once the job's slot is free for the next command
    environment_later: Callable[[], dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def settle(self) -> Result:
        """Fill `environment` if it was left for later; returns the result."""
        if self.environment_later is not None:
            self.environment, self.environment_later = self.environment_later(), None
        return self

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.error and not self.interrupted


def not_admitted(job: Job, output_root: Path) -> Result:
    """The result of a job whose command never started: the run stopped while it waited for a
    slot (`Job.admit` said no). Nothing of it is recorded; its log is left as it was."""
    from buildgraph.executors.workdir import NOT_STARTED

    return Result(NOT_STARTED, output_root, 0.0, job.log_path, interrupted=True)


@dataclass
class Cancel:
    """Set by the engine on Ctrl-C; executors poll it and kill what they started."""

    event: threading.Event = field(default_factory=threading.Event)

    def is_set(self) -> bool:
        return self.event.is_set()

    def set(self) -> None:
        self.event.set()


class Executor(Protocol):
    """What the engine and a command's session use of an executor."""

    name: str  # "local", "docker", "fake" …: recorded in each run manifest

    def run(self, job: Job, on_line: LineSink | None = None, cancel: Cancel | None = None) -> Result: ...

    def close(self) -> None:
        """Release what the executor holds (its guardian, a client it opened); once done with it."""
        ...


class DockerBacked(Executor, Protocol):
    """The docker executor (`name == "docker"`) also offers its SDK client, made on first use:
    image steps share it rather than open a second connection."""

    @property
    def client(self) -> Any: ...
