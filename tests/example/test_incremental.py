"""The example through `bg` itself: each edit reruns exactly the stages it should.

A copy of the repository's Buildfile.toml, params.yaml and stages/ is built once with tiny
params (local executor; a tiny params.yaml); each test edits its own copy of that built project, asks
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
import yaml

from .conftest import ROOT
from .pipeline import NETS, RUN_STAGES, SMALL, SMALL_TRAIN, params_file

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytestmark = [pytest.mark.torch, pytest.mark.slow]



def bg(project: Path, *args: str, params: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    flags = [f"--param={k}={v}" for k, v in {**SMALL, **(params or {})}.items()]
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


def write_params(project: Path, **train: Any) -> None:
    (project / "params.yaml").write_text(yaml.safe_dump(params_file(**{**SMALL_TRAIN, **train})))


def unchanged_but(*stages: str) -> dict[str, str]:
    return {name: "run" if name in stages else "skip" for name in RUN_STAGES}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("built") / "cifar10"
    project.mkdir()
    shutil.copy(ROOT / "Buildfile.toml", project)
    write_params(project)
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
        *(f"models/{net}/model.pt" for net in NETS),
        *(f"eval/{net}/metrics.json" for net in NETS),
        "comparison.json",
        "figure.png",
        "loss.png",
    ):
        assert (project / output).is_file()


def test_editing_plot_py_reruns_only_plot(project: Path) -> None:
    append(project / "stages" / "plot.py", "# a new comment\n")
    decisions = status(project)
    assert actions(decisions) == unchanged_but("plot")
    assert "stages/plot.py" in reason_subjects(decisions["plot"])
    model = (project / "models/lenet/model.pt").stat().st_mtime_ns
    assert run(project)[0] == {"plot"}
    assert (project / "models/lenet/model.pt").stat().st_mtime_ns == model


def test_editing_train_py_reruns_both_nets_and_cuts_off_identical_weights(project: Path) -> None:
    append(project / "stages" / "train.py", "# a comment: the weights come out identical\n")
    decisions = status(project)
    assert actions(decisions)["data"] == "skip"
    assert {actions(decisions)[f"train-{net}"] for net in NETS} == {"run"}
    assert "stages/train.py" in reason_subjects(decisions["train-lenet"])
    ran, cut = run(project)
    assert ran == {"train-lenet", "train-resnet"}  # compare, two steps down, is simply up to date
    assert cut == {"evaluate-lenet", "evaluate-resnet", "plot"}


def test_changing_one_nets_epochs_in_params_yaml_reruns_that_net_alone(project: Path) -> None:
    write_params(project, epochs={"lenet": 1, "resnet": 2})
    decisions = status(project)
    assert actions(decisions) == unchanged_but("train-resnet", "evaluate-resnet", "compare")
    assert any(
        r["kind"] == "param-changed" and r.get("subject") == "params.yaml:train.epochs.resnet"
        for r in decisions["train-resnet"]["reasons"]
    )
    assert run(project)[0] == {"train-resnet", "evaluate-resnet", "compare"}
    assert json.loads((project / "models/resnet/loss.json").read_text())["config"]["epochs"] == 2
    assert set(actions(status(project)).values()) == {"skip"}


def test_editing_a_key_no_stage_lists_reruns_nothing(project: Path) -> None:
    append(project / "params.yaml", "notes: tried a larger batch on Tuesday\n")
    assert set(actions(status(project)).values()) == {"skip"}
    assert run(project)[0] == set()


def test_whitespace_edit_of_evaluate_py_stops_before_compare_and_plot(project: Path) -> None:
    metrics = (project / "eval/lenet/metrics.json").read_bytes()
    figure = (project / "figure.png").stat().st_mtime_ns
    append(project / "stages" / "evaluate.py", "\n\n")
    decisions = status(project)
    assert actions(decisions) == unchanged_but("evaluate-lenet", "evaluate-resnet", "compare", "plot")
    ran, cut = run(project)
    assert ran == {"evaluate-lenet", "evaluate-resnet"} and cut == {"compare", "plot"}
    assert (project / "eval/lenet/metrics.json").read_bytes() == metrics  # byte-identical: cutoff earned
    assert (project / "figure.png").stat().st_mtime_ns == figure


def test_editing_the_shared_module_reruns_train_and_evaluate_not_data(project: Path) -> None:
    append(project / "stages" / "cifar.py", "# shared by train and evaluate\n")
    decisions = status(project)
    assert actions(decisions)["data"] == "skip"
    assert {actions(decisions)[f"{kind}-{net}"] for kind in ("train", "evaluate") for net in NETS} == {"run"}
    ran, _ = run(project)
    # weights and metrics identical: compare and plot are cut off
    assert ran == {f"{kind}-{net}" for kind in ("train", "evaluate") for net in NETS}
