"""The engine against the fake executor: what runs, what is skipped, restored or cut off — no processes."""

from __future__ import annotations

import io
from pathlib import Path

from buildgraph.core.graph import Graph
from buildgraph.core.parse import parse
from buildgraph.engine import Engine, Options
from buildgraph.executors.base import Job
from buildgraph.executors.fake import FakeExecutor
from buildgraph.lockfile import fold
from buildgraph.report import PlainReporter
from buildgraph.workspace import Workspace

BUILDFILE = """
[project]
name = "fake"
[params]
n = 1
[stages.a]
command = "make a ${params.n}"
inputs = ["raw.txt"]
outputs = ["a.txt"]
[stages.b]
command = "make b"
inputs = ["a.txt"]
outputs = ["b.txt"]
"""


def constant_a(job: Job, workdir: Path) -> int:
    """`a` writes the same bytes whatever n is: a change of n must stop at a (early cutoff)."""
    for output in job.outputs:
        (workdir / output).write_text(f"{output} from {job.stage}\n")
    return 0


def run(root: Path, executor: FakeExecutor, n: int = 1) -> dict[str, str]:
    spec = parse(BUILDFILE, params={"n": str(n)})
    ws = Workspace(root)
    ws.state.mkdir(exist_ok=True)
    engine = Engine(ws, spec, Graph(spec), executor, PlainReporter(io.StringIO()), Options(jobs=2))
    try:
        summary = engine.run([])
    finally:
        ws.close()
        fold(ws.lock_path, ws.journal_path, keep=set(spec.stages))
    return {name: outcome.status for name, outcome in summary.outcomes.items()}


def test_second_run_runs_nothing(tmp_path: Path) -> None:
    (tmp_path / "raw.txt").write_text("x\n")
    fake = FakeExecutor(constant_a)
    assert run(tmp_path, fake) == {"a": "done", "b": "done"}
    assert run(tmp_path, fake) == {"a": "skipped", "b": "skipped"}
    assert fake.stages == ["a", "b"]


def test_identical_upstream_bytes_cut_the_cascade_and_old_params_restore(tmp_path: Path) -> None:
    (tmp_path / "raw.txt").write_text("x\n")
    fake = FakeExecutor(constant_a)
    run(tmp_path, fake)
    assert run(tmp_path, fake, n=2) == {"a": "done", "b": "cutoff"}
    assert run(tmp_path, fake, n=1) == {"a": "cached", "b": "skipped"}
    assert fake.stages == ["a", "b", "a"]


def test_changed_input_reruns_downstream_when_its_bytes_change(tmp_path: Path) -> None:
    (tmp_path / "raw.txt").write_text("x\n")
    fake = FakeExecutor()  # default: outputs derive from the inputs' bytes
    run(tmp_path, fake)
    (tmp_path / "raw.txt").write_text("y\n")
    assert run(tmp_path, fake) == {"a": "done", "b": "done"}
    assert (tmp_path / "b.txt").read_text() != ""
