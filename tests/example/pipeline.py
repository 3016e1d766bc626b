"""Run the example's run stages without `bg`, the way the local executor does.

Each stage runs `sh -c <command>`, as bg's own parser expands it (matrix, [params] and
params.yaml values interpolated), in a fresh directory that holds only its declared inputs
(and the params files it reads), so a script that reads an undeclared file fails here too.
Used to test the scripts and the Buildfile independently of the engine.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from buildgraph.core.parse import parse
from buildgraph.core.spec import RunStage, Spec

from .conftest import ROOT

# The run stages as bg expands them (`train` and `evaluate` are a matrix over the two nets).
RUN_STAGES = ("data", "train-lenet", "train-resnet", "evaluate-lenet", "evaluate-resnet", "compare", "plot")
NETS = ("lenet", "resnet")
SMALL = {"synthetic_train": 200, "synthetic_test": 100, "threads": 1}  # [params] overrides
SMALL_TRAIN = {"epochs": {"lenet": 1, "resnet": 1}, "batch_size": 8}  # params.yaml's train.*, overridden


def buildfile() -> dict[str, Any]:
    with (ROOT / "Buildfile.toml").open("rb") as f:
        return tomllib.load(f)


def params_file(**train: Any) -> dict[str, Any]:
    """params.yaml as committed, with `train` keys replaced."""
    doc: dict[str, Any] = yaml.safe_load((ROOT / "params.yaml").read_text())
    doc["train"].update(train)
    return doc


def spec(params: dict[str, Any] | None = None, train: dict[str, Any] | None = None) -> Spec:
    """The example's Buildfile read by bg's own parser: stages expanded, strings interpolated."""
    doc = params_file(**(train or {}))
    overrides = {name: str(value) for name, value in (params or {}).items()}
    return parse((ROOT / "Buildfile.toml").read_text(), params=overrides, load_params=lambda _path: doc)


def run_stage_of(built: Spec, name: str) -> RunStage:
    stage = built.stages[name]
    assert isinstance(stage, RunStage)
    return stage


def _place(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, dest)
    else:
        shutil.copyfile(source, dest)


def run_stage(name: str, workspace: Path, scratch: Path, built: Spec) -> subprocess.Popen[bytes]:
    """Start stage `name` in `scratch` holding only its inputs (from `workspace`, else the repository)."""
    stage = run_stage_of(built, name)
    for path in (*stage.inputs, *stage.params_files):
        source = workspace / path if (workspace / path).exists() else ROOT / path
        _place(source, scratch / path)
    command = stage.command.replace("python3 ", f"{sys.executable} ", 1)
    with (scratch.parent / f"{scratch.name}.log").open("wb") as log:  # the child keeps its own copy
        return subprocess.Popen(["sh", "-c", command], cwd=scratch, stdout=log, stderr=subprocess.STDOUT)


def collect_outputs(name: str, scratch: Path, workspace: Path, built: Spec) -> list[str]:
    """Move the stage's declared outputs into `workspace`; return the files it wrote undeclared."""
    stage = run_stage_of(built, name)
    declared = [o.path for o in stage.outputs]
    for path in declared:
        target = workspace / path
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        _place(scratch / path, target)
    read = [*stage.inputs, *stage.params_files]
    written = [
        str(p.relative_to(scratch))
        for p in scratch.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    return [p for p in written if not any(p == d or p.startswith(d + "/") for d in declared + read)]


def run_pipelines(workspaces: list[Path], built: Spec, timeout: float = 300) -> None:
    """Run every stage in each workspace, the workspaces in parallel, stage after stage."""
    for name in RUN_STAGES:
        scratches = [ws.parent / f"{ws.name}-{name}" for ws in workspaces]
        processes = [
            run_stage(name, ws, scratch, built) for ws, scratch in zip(workspaces, scratches, strict=True)
        ]
        for process, scratch in zip(processes, scratches, strict=True):
            status = process.wait(timeout=timeout)
            log = (scratch.parent / f"{scratch.name}.log").read_text()
            assert status == 0, f"stage {name} failed:\n{log}"
        for ws, scratch in zip(workspaces, scratches, strict=True):
            undeclared = collect_outputs(name, scratch, ws, built)
            assert not undeclared, f"stage {name} wrote undeclared files {undeclared}"


def sha256_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
