"""A command's session (buildgraph/commands/session.py): the engine it builds, complete; the
journal folded on entry and exit; the executor closed; metrics lines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from buildgraph import gpus
from buildgraph.commands._common import Project
from buildgraph.commands.session import Session, metrics_line, read_metrics
from buildgraph.core.graph import Graph
from buildgraph.core.parse import parse
from buildgraph.engine import Options
from buildgraph.errors import EnvironmentProblem
from buildgraph.executors.fake import FakeExecutor
from buildgraph.lockfile import Journal, Lock

BUILDFILE = """
[project]
name = "session"
[stages.a]
command = "make a"
outputs = ["a.txt"]
"""


def project(root: Path, text: str = BUILDFILE) -> Project:
    spec = parse(text)
    return Project(root, spec, Graph(spec))


def options(**given: Any) -> argparse.Namespace:
    found = {"quiet": True, "jobs": 1, "keep_going": False, "force": [], "executor": "local", "pull": False}
    return argparse.Namespace(**{**found, **given})


class ClosingFake(FakeExecutor):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> ClosingFake:
    made = ClosingFake()
    monkeypatch.setattr("buildgraph.executors.choice.choose_executor", lambda name, spec: made)
    return made


def test_the_engine_is_built_complete_from_the_command_line(tmp_path: Path) -> None:
    ns = options(jobs=3, keep_going=True, force=["a"], pull=True)
    with Session(project(tmp_path), ns) as session:
        engine = session.engine()
        assert engine.ctx.options == Options(
            jobs=3, keep_going=True, force=frozenset({"a"}), link="auto", gpus=0, pull=True
        )
        assert engine.ctx.store is session.ws.cache and engine.ctx.files is session.ws
        assert engine.ctx.executor.name == "local"


def test_a_run_is_folded_into_the_lock_and_the_executor_closed(tmp_path: Path, fake: ClosingFake) -> None:
    with Session(project(tmp_path), options()) as session:
        summary = session.engine().run([])
        assert (tmp_path / ".bg" / "journal.jsonl").exists() and not (tmp_path / "Buildfile.lock").exists()
    assert summary.outcomes["a"].status == "done" and fake.closed == 1
    assert Lock.load(tmp_path / "Buildfile.lock").get("a") is not None
    assert not (tmp_path / ".bg" / "journal.jsonl").exists()


def test_a_killed_runs_journal_is_folded_on_entry(tmp_path: Path) -> None:
    (tmp_path / ".bg").mkdir()
    with Journal(tmp_path / ".bg" / "journal.jsonl") as journal:
        journal.record("a", {"kind": "run", "key": "1"})
    with Session(project(tmp_path), options()) as session:
        assert Lock.load(tmp_path / "Buildfile.lock").get("a") == {"kind": "run", "key": "1"}
        assert session.engine().lock.get("a") == {"kind": "run", "key": "1"}


def test_a_read_only_session_sees_the_journal_writes_no_lock_and_never_pulls(tmp_path: Path) -> None:
    (tmp_path / ".bg").mkdir()
    with Journal(tmp_path / ".bg" / "journal.jsonl") as journal:
        journal.record("a", {"kind": "run", "key": "1"})
    with Session(project(tmp_path), options(pull=True), shared=True) as session:
        engine = session.engine()
        assert engine.lock.get("a") == {"kind": "run", "key": "1"} and engine.ctx.options.read_only
    assert not (tmp_path / "Buildfile.lock").exists() and (tmp_path / ".bg" / "journal.jsonl").exists()


def test_the_gpu_pool_is_the_hosts_gpus_counted_only_when_a_stage_wants_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    wants = BUILDFILE + "gpus = 1\n"
    with Session(project(tmp_path, wants), options()) as session:
        assert session.engine().ctx.options.gpus == 2
    monkeypatch.setattr(gpus, "count", lambda: pytest.fail("counted GPUs no stage wants"))
    with Session(project(tmp_path), options()) as session:
        assert session.engine().ctx.options.gpus == 0


def test_image_stages_under_the_local_executor_need_a_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    text = BUILDFILE + '[stages.img]\nfrom = "debian:12"\n'
    with Session(project(tmp_path, text), options()) as session:
        engine = session.engine()
        assert engine.select(["a"]) == ["a"]  # a host-only selection never asks
        needs = "image stages are built and checked with Docker: no Docker socket"
        with pytest.raises(EnvironmentProblem, match=needs):
            engine.select(["img"])


def test_metrics_lines_say_how_many_more_there_are(tmp_path: Path) -> None:
    data = {"accuracy": 0.8671, "loss": 2, "flag": True, "per_class": {"cat": 0.5, "dog": 1}}
    assert metrics_line(data) == "accuracy 0.8671, loss 2 … (2 more: bg metrics)"
    assert metrics_line({"nested": {"x": 1}}) == "1 nested: bg metrics"
    (tmp_path / "m.json").write_text('{"a": {"b": 1.5}, "c": "text"}')
    assert read_metrics(tmp_path / "m.json") == {"a.b": 1.5}
    assert read_metrics(tmp_path / "missing.json") == {}
