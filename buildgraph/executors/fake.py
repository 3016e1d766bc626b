"""An executor that runs no process: it records jobs and lets a callback write the outputs.

For the engine's tests (ninja's `FakeCommandRunner`): fast, deterministic, and
thread-safe, so parallel scheduling can be tested too. The working directory is
staged exactly as the local executor stages it (inputs linked in, output parents
created), and missing outputs are reported with the same messages.

The default behaviour writes every declared output with content derived from the
command and the inputs' bytes only, so identical inputs give identical outputs —
which is what early-cutoff tests need.

    fake = FakeExecutor()
    engine.run(..., executor=fake)
    assert fake.stages == ["prepare", "train"]

    def fail_train(job: Job, workdir: Path) -> int:
        return 1 if job.stage == "train" else default_behaviour(job, workdir)
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildgraph.executors.base import Cancel, Job, Result, not_admitted
from buildgraph.executors.fingerprint import for_job
from buildgraph.executors.workdir import (
    NOT_STARTED,
    StagingError,
    modified_inputs_problem,
    output_problems,
    safe_relpath,
    stage_inputs,
    work_dir,
)
from buildgraph.lines import LineSink

Behaviour = Callable[[Job, Path], int]  # (job, working directory) -> exit status

# where every fake job "ran" (executors/fingerprint.py's shape), the job's thread settings added
ENVIRONMENT: dict[str, Any] = {
    "executor": "fake",
    "python": "3.11.0",
    "torch": None,
    "cuda": None,
    "gpu": None,
    "driver": None,
    "cpus": 1,
    "threads": {},
    "os": "Fake OS 1",
    "machine": "fake",
    "kernel": "fake",
}


def inputs_digest(job: Job) -> str:
    """sha256 over the command and every input file's path and bytes (directories walked, sorted)."""
    h = hashlib.sha256(job.command.encode())
    for relpath, source in sorted(job.inputs):
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for file in files:
            name = relpath if file == source else f"{relpath.rstrip('/')}/{file.relative_to(source)}"
            h.update(f"\0{name}\0".encode())
            h.update(file.read_bytes())
    return h.hexdigest()


def default_behaviour(job: Job, workdir: Path) -> int:
    """Write each declared output (a directory output gets one file, `part-0`); exit 0."""
    digest = inputs_digest(job)
    for output in job.outputs:
        path = workdir / safe_relpath(output)
        if output.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            path = path / "part-0"
        path.write_text(f"{safe_relpath(output)} {digest}\n")
    return 0


class FakeExecutor:
    name = "fake"

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or default_behaviour
        self.jobs: list[Job] = []
        self._lock = threading.Lock()

    @property
    def stages(self) -> list[str]:
        """Stage names of the recorded jobs, in the order they started."""
        with self._lock:
            return [job.stage for job in self.jobs]

    def close(self) -> None:
        pass  # holds nothing

    def run(self, job: Job, on_line: LineSink | None = None, cancel: Cancel | None = None) -> Result:
        started = time.monotonic()
        workdir = work_dir(job.scratch)
        if not job.admit():
            return not_admitted(job, workdir)
        with self._lock:
            self.jobs.append(job)
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        line = f"fake: {job.stage}"
        job.log_path.write_text(line + "\n")
        if on_line is not None:
            on_line(line)

        def result(status: int, error: str = "", interrupted: bool = False) -> Result:
            duration = time.monotonic() - started
            found = for_job(ENVIRONMENT, self.name, dict(job.env), sees_gpus=True)
            return Result(status, workdir, duration, job.log_path, error, interrupted, found)

        try:
            snapshot = stage_inputs(workdir, job.inputs, job.outputs)
        except StagingError as exc:
            return result(NOT_STARTED, str(exc))
        if cancel is not None and cancel.is_set():
            return result(-2, interrupted=True)  # as if killed by SIGINT before doing anything
        status = self.behaviour(job, workdir)
        problems = [modified_inputs_problem(snapshot)]
        if status == 0:
            problems.append(output_problems(workdir, job.outputs))
        return result(status, "; ".join(p for p in problems if p))
