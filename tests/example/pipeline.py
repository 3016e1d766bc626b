"""Run the example's run stages without `bg`, the way the local executor does.

Each stage runs `sh -c <command>` (params interpolated) in a fresh directory that
holds only its declared inputs, so a script that reads an undeclared file fails
here too. Used to test the scripts and the Buildfile independently of the engine.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from .conftest import ROOT

RUN_STAGES = ("data", "train", "evaluate", "plot")
SMALL = {"synthetic_train": 200, "synthetic_test": 100, "epochs": 1, "batch_size": 8, "threads": 1}


def buildfile() -> dict[str, Any]:
    with (ROOT / "Buildfile.toml").open("rb") as f:
        return tomllib.load(f)


def param_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v["default"] if isinstance(v, dict) else v for k, v in spec["params"].items()}


def params_used(command: str) -> set[str]:
    return set(re.findall(r"\$\{params\.(\w+)\}", command))


def interpolate(command: str, params: dict[str, Any]) -> str:
    return re.sub(r"\$\{params\.(\w+)\}", lambda m: str(params[m.group(1)]), command)


def _place(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, dest)
    else:
        shutil.copyfile(source, dest)


def run_stage(name: str, workspace: Path, scratch: Path, params: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Start stage `name` in `scratch` holding only its inputs (from `workspace`, else the repository)."""
    stage = buildfile()["stages"][name]
    for path in stage["inputs"]:
        path = path.rstrip("/")
        source = workspace / path if (workspace / path).exists() else ROOT / path
        _place(source, scratch / path)
    command = interpolate(stage["command"], params).replace("python3 ", f"{sys.executable} ", 1)
    with (scratch.parent / f"{scratch.name}.log").open("wb") as log:  # the child keeps its own copy
        return subprocess.Popen(["sh", "-c", command], cwd=scratch, stdout=log, stderr=subprocess.STDOUT)


def collect_outputs(name: str, scratch: Path, workspace: Path) -> list[str]:
    """Move the stage's declared outputs into `workspace`; return the files it wrote undeclared."""
    stage = buildfile()["stages"][name]
    declared = [p.rstrip("/") for p in stage["outputs"]]
    for path in declared:
        target = workspace / path
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        _place(scratch / path, target)
    inputs = [p.rstrip("/") for p in stage["inputs"]]
    written = [
        str(p.relative_to(scratch))
        for p in scratch.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    return [p for p in written if not any(p == d or p.startswith(d + "/") for d in declared + inputs)]


def run_pipelines(workspaces: list[Path], params: dict[str, Any], timeout: float = 300) -> None:
    """Run every stage in each workspace, the workspaces in parallel, stage after stage."""
    for name in RUN_STAGES:
        scratches = [ws.parent / f"{ws.name}-{name}" for ws in workspaces]
        processes = [
            run_stage(name, ws, scratch, params) for ws, scratch in zip(workspaces, scratches, strict=True)
        ]
        for process, scratch in zip(processes, scratches, strict=True):
            status = process.wait(timeout=timeout)
            log = (scratch.parent / f"{scratch.name}.log").read_text()
            assert status == 0, f"stage {name} failed:\n{log}"
        for ws, scratch in zip(workspaces, scratches, strict=True):
            undeclared = collect_outputs(name, scratch, ws)
            assert not undeclared, f"stage {name} wrote undeclared files {undeclared}"


def sha256_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
