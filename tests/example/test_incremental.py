"""The example through `bg` itself: each edit reruns exactly the stages it should.

A copy of the repository's Buildfile.toml and stages/ is built once with tiny
params (local executor); each test edits its own copy of that built project, asks
`bg status --json` what would run, runs `bg run --json`, and reads which steps
started (`start` events) and which were cut off (`finish` with status `cutoff`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

RUN_STAGES = ("data", "train", "evaluate", "plot")
TINY = {"synthetic_train": 200, "synthetic_test": 100, "epochs": 1, "batch_size": 8, "threads": 1}


def bg(project: Path, *args: str, params: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    flags = [f"--param={k}={v}" for k, v in {**TINY, **(params or {})}.items()]
    command = [sys.executable, "-m", "buildgraph", "-C", str(project), *args, *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def status(project: Path, **params: Any) -> dict[str, dict[str, Any]]:
    """{stage: {"action": …, "reasons": [...]}} for the run stages, from `bg status --json`."""
    decisions = json.loads(bg(project, "status", "--executor", "local", "--json", params=params).stdout)
    return {d["stage"]: d for d in decisions if d["stage"] in RUN_STAGES}


def run(project: Path, **params: Any) -> tuple[set[str], set[str]]:
    """`bg run`; returns (stages that ran, stages cut off because their inputs came out identical)."""
    out = bg(project, "run", "--executor", "local", "--json", params=params).stdout
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    ran = {e["stage"] for e in events if e["event"] == "start" and e["action"] == "run"}
    cut = {e["stage"] for e in events if e["event"] == "finish" and e["status"] == "cutoff"}
    return ran, cut


def actions(decisions: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {stage: d["action"] for stage, d in decisions.items()}


def reason_subjects(decision: dict[str, Any]) -> set[str]:
    return {r.get("subject", "") for r in decision["reasons"]}


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("built") / "cifar10"
    project.mkdir()
    shutil.copy(ROOT / "Buildfile.toml", project)
    shutil.copytree(ROOT / "stages", project / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    ran, _ = run(project)
    assert ran == set(RUN_STAGES)
    return project


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cifar10"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def test_a_built_project_is_up_to_date(project: Path) -> None:
    assert set(actions(status(project)).values()) == {"skip"}
    for output in (
        "data/cifar-10-batches-py/test_batch",
        "model.pt",
        "metrics.json",
        "figure.png",
        "loss.png",
    ):
        assert (project / output).is_file()


def test_editing_plot_py_reruns_only_plot(project: Path) -> None:
    append(project / "stages" / "plot.py", "# a new comment\n")
    decisions = status(project)
    assert actions(decisions) == {"data": "skip", "train": "skip", "evaluate": "skip", "plot": "run"}
    assert "stages/plot.py" in reason_subjects(decisions["plot"])
    model = (project / "model.pt").stat().st_mtime_ns
    assert run(project)[0] == {"plot"}
    assert (project / "model.pt").stat().st_mtime_ns == model


def test_editing_train_py_reruns_train_and_cuts_off_identical_weights(project: Path) -> None:
    append(project / "stages" / "train.py", "# a comment: the weights come out identical\n")
    decisions = status(project)
    assert actions(decisions)["data"] == "skip" and actions(decisions)["train"] == "run"
    assert "stages/train.py" in reason_subjects(decisions["train"])
    ran, cut = run(project)
    assert ran == {"train"} and cut == {"evaluate", "plot"}


def test_changing_epochs_reruns_train_evaluate_and_plot(project: Path) -> None:
    decisions = status(project, epochs=2)
    assert actions(decisions)["data"] == "skip" and actions(decisions)["train"] == "run"
    assert any(
        r["kind"] == "param-changed" and r.get("subject") == "epochs" for r in decisions["train"]["reasons"]
    )
    assert run(project, epochs=2)[0] == {"train", "evaluate", "plot"}  # loss.json always changes with epochs
    assert json.loads((project / "loss.json").read_text())["config"]["epochs"] == 2
    assert set(actions(status(project, epochs=2)).values()) == {"skip"}


def test_whitespace_edit_of_evaluate_py_stops_before_plot(project: Path) -> None:
    metrics = (project / "metrics.json").read_bytes()
    figure = (project / "figure.png").stat().st_mtime_ns
    append(project / "stages" / "evaluate.py", "\n\n")
    decisions = status(project)
    assert actions(decisions)["evaluate"] == "run"
    assert (actions(decisions)["data"], actions(decisions)["train"]) == ("skip", "skip")
    ran, cut = run(project)
    assert ran == {"evaluate"} and cut == {"plot"}
    assert (project / "metrics.json").read_bytes() == metrics  # byte-identical: the cutoff is earned
    assert (project / "figure.png").stat().st_mtime_ns == figure


def test_editing_the_shared_module_reruns_train_and_evaluate_not_data(project: Path) -> None:
    append(project / "stages" / "cifar.py", "# shared by train and evaluate\n")
    decisions = status(project)
    assert actions(decisions)["data"] == "skip"
    assert actions(decisions)["train"] == "run" and actions(decisions)["evaluate"] == "run"
    ran, _ = run(project)
    assert ran == {"train", "evaluate"}  # weights and metrics identical: plot is cut off
