"""The engine against the fake executor: what runs, what is skipped, restored or cut off — no processes."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buildgraph.core.graph import Graph
from buildgraph.core.parse import parse
from buildgraph.engine import Engine, Options, Summary
from buildgraph.errors import EnvironmentProblem, Interrupted
from buildgraph.executors.base import Job
from buildgraph.executors.fake import Behaviour, FakeExecutor, default_behaviour
from buildgraph.lockfile import current, fold
from buildgraph.report import PlainReporter
from buildgraph.stores.fake import MemoryStore
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


# ---------------------------------------------------------------- on the fake store
# The engine on FakeExecutor + MemoryStore: no process, no cache on disk; only the workspace
# files (inputs, materialised outputs, the journal) are real.
@pytest.fixture
def workspaces() -> Iterator[list[Workspace]]:
    opened: list[Workspace] = []
    yield opened
    for ws in opened:
        ws.close()


def make_engine(root: Path, text: str, executor: FakeExecutor, store: MemoryStore, **options: Any) -> Engine:
    spec = parse(text)
    ws = Workspace(root)
    reporter = PlainReporter(io.StringIO())
    return Engine(ws, spec, Graph(spec), executor, reporter, Options(**options), store=store)


def statuses(summary: Summary) -> dict[str, str]:
    return {name: outcome.status.value for name, outcome in summary.outcomes.items()}


class Project:
    """A project folder run again and again by fresh engines sharing one memory store."""

    def __init__(self, root: Path, text: str, behaviour: Behaviour | None = None) -> None:
        self.root, self.text = root, text
        self.fake = FakeExecutor(behaviour)
        self.store = MemoryStore(root)
        self.opened: list[Workspace] = []

    def engine(self, text: str | None = None, **options: Any) -> Engine:
        engine = make_engine(self.root, text or self.text, self.fake, self.store, **options)
        self.opened.append(engine.ctx.files)  # type: ignore[arg-type]
        return engine

    def run(self, *targets: str, text: str | None = None, **options: Any) -> dict[str, str]:
        return statuses(self.engine(text, **options).run(list(targets)))

    def recorded(self) -> dict[str, Any]:
        return dict(current(self.root / "Buildfile.lock", self.root / ".bg/journal.jsonl").stages)

    def close(self) -> None:
        for ws in self.opened:
            ws.close()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    (tmp_path / "raw.txt").write_text("x\n")
    made = Project(tmp_path, BUILDFILE, constant_a)
    yield made
    made.close()


def test_an_engine_on_fakes_takes_three_lines(tmp_path: Path, workspaces: list[Workspace]) -> None:
    (tmp_path / "raw.txt").write_text("x\n")
    spec = parse(BUILDFILE)
    engine = Engine(Workspace(tmp_path), spec, Graph(spec), FakeExecutor(), PlainReporter(io.StringIO()),
                    Options(), store=MemoryStore(tmp_path))
    workspaces.append(engine.ctx.files)  # type: ignore[arg-type]
    assert statuses(engine.run([])) == {"a": "done", "b": "done"}
    assert not (tmp_path / ".bg" / "cache").exists(), "everything stored went to the memory store"


def test_run_then_skip_on_the_memory_store(project: Project) -> None:
    assert project.run() == {"a": "done", "b": "done"}
    assert (project.root / "b.txt").read_text() == "b.txt from b\n"
    assert {m["stage"] for m in project.store.manifests.values()} == {"a", "b"}
    assert project.run() == {"a": "skipped", "b": "skipped"}
    assert project.fake.stages == ["a", "b"]


def test_a_deleted_output_is_restored_from_the_store_without_running(project: Project) -> None:
    project.run()
    (project.root / "a.txt").unlink()
    assert project.run() == {"a": "cached", "b": "skipped"}
    assert (project.root / "a.txt").read_text() == "a.txt from a\n"
    assert project.fake.stages == ["a", "b"]


def test_a_lost_object_makes_the_step_run_instead_of_restoring(project: Project) -> None:
    project.run()
    (project.root / "a.txt").unlink()
    a_key = project.recorded()["a"]["key"]
    project.store.lose(project.store.manifests[a_key]["outputs"]["a.txt"]["digest"])
    assert project.run() == {"a": "done", "b": "cutoff"}
    assert project.fake.stages == ["a", "b", "a"]


def test_early_cutoff_and_restore_of_old_params_on_the_memory_store(project: Project) -> None:
    project.run()
    changed = BUILDFILE.replace("n = 1", "n = 2")
    assert project.run(text=changed) == {"a": "done", "b": "cutoff"}
    assert project.run() == {"a": "cached", "b": "skipped"}
    assert project.fake.stages == ["a", "b", "a"]


FAILING = """
[project]
name = "fails"
[stages.a]
command = "fail"
outputs = ["a.txt"]
[stages.b]
command = "b"
inputs = ["a.txt"]
outputs = ["b.txt"]
[stages.c]
command = "c"
outputs = ["c.txt"]
[stages.d]
command = "d"
inputs = ["b.txt", "c.txt"]
outputs = ["d.txt"]
"""


def fail_a(job: Job, workdir: Path) -> int:
    return 1 if job.stage == "a" else default_behaviour(job, workdir)


@pytest.mark.parametrize("keep_going", [True, False])
def test_a_failure_blocks_its_downstream_and_keep_going_runs_the_rest(
    tmp_path: Path, keep_going: bool
) -> None:
    project = Project(tmp_path, FAILING, fail_a)
    try:
        found = project.run(keep_going=keep_going)  # one job at a time: a goes first
    finally:
        project.close()
    independent = "done" if keep_going else "cancelled"
    assert found == {"a": "failed", "b": "blocked", "d": "blocked", "c": independent}
    assert project.fake.stages == (["a", "c"] if keep_going else ["a"])
    assert set(project.recorded()) == ({"c"} if keep_going else set())


def test_a_blocked_step_is_reported_with_the_upstream_that_failed(tmp_path: Path) -> None:
    project = Project(tmp_path, FAILING, fail_a)
    try:
        engine = project.engine(keep_going=True)
        summary = engine.run(["b"])
    finally:
        project.close()
    assert summary.outcomes["b"].error == "upstream a failed"
    assert summary.failed == ["a"] and summary.outcomes["a"].error == "command exited with status 1"
    assert "[b] blocked: upstream a did not complete" in engine.ctx.reporter.stream.getvalue()  # type: ignore[attr-defined]


def test_ctrl_c_stops_the_run_and_keeps_what_completed(project: Project) -> None:
    def interrupted_at_b(job: Job, workdir: Path) -> int:
        if job.stage == "b":
            raise KeyboardInterrupt  # as if Ctrl-C reached bg while b's command ran
        return constant_a(job, workdir)

    project.fake.behaviour = interrupted_at_b
    with pytest.raises(Interrupted, match="completed stages were recorded"):
        project.run()
    assert set(project.recorded()) == {"a"}
    assert not list((project.root / ".bg" / "tmp").iterdir()), "the run's scratch folders are gone"
    project.fake.behaviour = constant_a
    assert project.run() == {"a": "skipped", "b": "done"}


def test_an_exception_in_a_step_stops_the_run_and_is_raised(tmp_path: Path) -> None:
    text = FAILING.replace('command = "fail"', 'command = "boom"')

    def boom(job: Job, workdir: Path) -> int:
        if job.stage == "a":
            raise RuntimeError("a bug in a step")
        return default_behaviour(job, workdir)

    project = Project(tmp_path, text, boom)
    try:
        with pytest.raises(RuntimeError, match="a bug in a step"):
            project.run("a", "c", keep_going=True)  # stops even with --keep-going
    finally:
        project.close()
    assert project.fake.stages == ["a"]  # c never started
    assert project.recorded() == {}


GPUS = """
[project]
name = "gpus"
[stages.g1]
command = "train 1"
outputs = ["g1.txt"]
gpus = 1
[stages.g2]
command = "train 2"
outputs = ["g2.txt"]
gpus = 1
[stages.cpu]
command = "plot"
outputs = ["cpu.txt"]
"""


def test_a_gpu_step_waits_for_the_pool_while_a_free_slot_runs_other_work(tmp_path: Path) -> None:
    """Two GPU steps, one GPU, two slots: the second GPU step waits for the GPU, not for a slot
    (the CPU step runs beside the first); the first holds its GPU until the CPU step is done."""
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    cpu_done = threading.Event()

    def behaviour(job: Job, workdir: Path) -> int:
        with lock:
            first_gpu = job.gpus is not None and not any(e[1].startswith("g") for e in events)
            events.append(("start", job.stage))
        if first_gpu:
            assert cpu_done.wait(timeout=60), "the CPU step never ran beside the GPU step"
        status = default_behaviour(job, workdir)
        with lock:
            events.append(("end", job.stage))
        if job.stage == "cpu":
            cpu_done.set()
        return status

    project = Project(tmp_path, GPUS, behaviour)
    try:
        assert project.run(jobs=2, gpus=1) == dict.fromkeys(("g1", "g2", "cpu"), "done")
    finally:
        project.close()
    gpu_events = [e for e in events if e[1] != "cpu"]
    first, second = gpu_events[0][1], gpu_events[2][1]
    assert gpu_events == [("start", first), ("end", first), ("start", second), ("end", second)]
    assert events.index(("end", "cpu")) < events.index(("end", first))
    assert {job.gpus for job in project.fake.jobs} == {(0,), None}
    assert {dict(job.env).get("CUDA_VISIBLE_DEVICES") for job in project.fake.jobs if job.gpus} == {"0"}


FOUR = "[project]\nname = \"four\"\n" + "".join(
    f'[stages.{n}]\ncommand = "make {n}"\noutputs = ["{n}.txt"]\n' for n in ("a", "x", "b", "c")
)


def test_an_error_while_deciding_stops_the_run_before_a_waiting_step_starts(tmp_path: Path) -> None:
    """a and x hold both slots, b waits for one, then deciding c fails on the builder's thread:
    the run stops there — b never starts, though a and x finishing free the slots it waits for."""
    deciding = threading.Event()

    def behaviour(job: Job, workdir: Path) -> int:
        if job.stage in ("a", "x"):
            assert deciding.wait(timeout=60), "c was never decided while a and x ran"
        return default_behaviour(job, workdir)

    def broken_decide() -> Any:
        deciding.set()  # a and x may finish now: only the stop keeps b from their slots
        raise RuntimeError("a bug while deciding")

    project = Project(tmp_path, FOUR, behaviour)
    try:
        engine = project.engine(jobs=2)
        engine.step("c").decide = broken_decide  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="a bug while deciding"):
            engine.run([])
    finally:
        project.close()
    assert sorted(project.fake.stages) == ["a", "x"], "b, waiting for a slot, never started"
    assert set(project.recorded()) == {"a", "x"}, "what completed before the error is recorded"


SECRET = """
[project]
name = "secret"
[params]
n = 1
[stages.s]
command = "use ${params.n}"
outputs = ["s.txt"]
secrets = ["BG_TEST_TOKEN"]
"""


def test_secrets_reach_a_step_that_runs_as_a_private_file_and_only_it_needs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []

    def read_secret(job: Job, workdir: Path) -> int:
        path = Path(dict(job.env)["BG_SECRETS_DIR"]) / "BG_TEST_TOKEN"
        seen.append((path.read_text(), path.stat().st_mode & 0o777))
        return default_behaviour(job, workdir)

    project = Project(tmp_path, SECRET, read_secret)
    try:
        monkeypatch.setenv("BG_TEST_TOKEN", "t0ken")
        assert project.run() == {"s": "done"}
        monkeypatch.delenv("BG_TEST_TOKEN")
        assert project.run() == {"s": "skipped"}  # up to date: needs no secret
        unset = r"not set in the environment: BG_TEST_TOKEN \(stage s\)"
        with pytest.raises(EnvironmentProblem, match=unset):
            project.run(text=SECRET.replace("n = 1", "n = 2"))
    finally:
        project.close()
    assert seen == [("t0ken", 0o600)]
    assert "t0ken" not in json.dumps(project.recorded()) + json.dumps(project.store.manifests)
