"""Seeded random build graphs, written out as the same workload for bg, GNU make and doit.

A workload is `n_files` random input files under `data/` plus `n_stages` stages. Stage i reads
1-3 inputs, each either a data file or the output of an earlier stage (uniformly chosen, so
the graph is a random DAG of depth O(log n)), and writes one small file `out/sNNNNN` with
`cat INPUTS | sha256sum > OUTPUT`. The command string is identical for every tool, so the
tools differ only in how they decide and launch, which is what we measure.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("bg", "make", "doit")
UPSTREAM_PROBABILITY = 0.5  # chance that an input is an earlier stage's output, not a data file


@dataclass(frozen=True)
class StageDef:
    name: str
    inputs: tuple[str, ...]
    output: str

    @property
    def command(self) -> str:
        return f"cat {' '.join(self.inputs)} | sha256sum > {self.output}"


@dataclass(frozen=True)
class Dag:
    files: tuple[str, ...]
    stages: tuple[StageDef, ...]

    def downstream_of(self, path: str) -> list[str]:
        """Every stage that must rerun when `path` changes (stages are in topological order)."""
        dirty = {path}
        hit = []
        for stage in self.stages:
            if dirty.intersection(stage.inputs):
                hit.append(stage.name)
                dirty.add(stage.output)
        return hit

    def median_fanout_file(self) -> str:
        """The data file whose change reruns the median number of stages: a typical edit.

        Files no stage reads are left out, so that even a 10-stage graph has work to redo.
        """
        fanout = {f: len(self.downstream_of(f)) for f in self.files}
        ranked = sorted((f for f in self.files if fanout[f]), key=lambda f: (fanout[f], f)) or list(
            self.files
        )
        return ranked[len(ranked) // 2]


def make_dag(n_stages: int, n_files: int = 100, seed: int = 0) -> Dag:
    rng = random.Random(seed)
    files = tuple(f"data/f{i:03d}.bin" for i in range(n_files))
    stages: list[StageDef] = []
    for i in range(n_stages):
        inputs: list[str] = []
        for _ in range(rng.randint(1, 3)):
            if stages and rng.random() < UPSTREAM_PROBABILITY:
                pick = stages[rng.randrange(len(stages))].output
            else:
                pick = files[rng.randrange(n_files)]
            if pick not in inputs:
                inputs.append(pick)
        stages.append(StageDef(f"s{i:05d}", tuple(inputs), f"out/s{i:05d}"))
    return Dag(files, tuple(stages))


def write_data(root: Path, dag: Dag, file_size: int, seed: int = 0) -> None:
    """The input files: `file_size` random bytes each (seeded, so every run hashes the same bytes)."""
    rng = random.Random(seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    for path in dag.files:
        (root / path).write_bytes(rng.randbytes(file_size))


def buildfile_toml(dag: Dag) -> str:
    lines = ["[project]", 'name = "bench"', 'executor = "local"', ""]
    for s in dag.stages:
        lines += [
            f"[stages.{s.name}]",
            f"command = {json.dumps(s.command)}",
            f"inputs = {json.dumps(list(s.inputs))}",
            f"outputs = [{json.dumps(s.output)}]",
            "",
        ]
    return "\n".join(lines)


def makefile(dag: Dag) -> str:
    lines = [".PHONY: all", "all: " + " ".join(s.output for s in dag.stages), ""]
    for s in dag.stages:
        lines += [f"{s.output}: {' '.join(s.inputs)}", f"\t{s.command}"]
    return "\n".join(lines) + "\n"


# doit reads the graph from graph.json: a dodo.py with 10,000 literal dicts would measure
# Python's compiler rather than doit. `clean`-free, MD5 checker (doit's default).
DODO = """\
import json

DOIT_CONFIG = {"verbosity": 0}

def task_stage():
    with open("graph.json") as f:
        stages = json.load(f)
    for name, inputs, output, command in stages:
        yield {"basename": name, "actions": [command], "file_dep": inputs, "targets": [output]}
"""


def write_tool_files(root: Path, dag: Dag, tool: str) -> None:
    if tool == "bg":
        (root / "Buildfile.toml").write_text(buildfile_toml(dag))
    elif tool == "make":
        (root / "Makefile").write_text(makefile(dag))
    elif tool == "doit":
        rows = [[s.name, list(s.inputs), s.output, s.command] for s in dag.stages]
        (root / "graph.json").write_text(json.dumps(rows))
        (root / "dodo.py").write_text(DODO)
    else:
        raise ValueError(f"unknown tool {tool!r}")


def write_workspace(root: Path, dag: Dag, tool: str, data_template: Path) -> Path:
    """A fresh project for `tool` at root/tool: a copy of the data plus the tool's build file."""
    ws = root / tool
    shutil.copytree(data_template / "data", ws / "data")
    (ws / "out").mkdir()
    write_tool_files(ws, dag, tool)
    return ws
