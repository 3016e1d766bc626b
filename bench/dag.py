"""Seeded random build graphs, written out as the same workload for every tool benchmarked.

Two workloads (`WORKLOADS`), both 10 MB of seeded random input bytes:

  per-stage (default, issue 11)  one data file per stage (n files of 10 MB / n for n stages);
                                 stage i reads its own file plus 0-2 outputs of uniformly chosen
                                 earlier stages, and runs `cksum INPUTS > out/sNNNNN.txt`
  shared (the older one)         100 data files x 100 KB; stage i reads 1-3 inputs, each a data
                                 file or (probability 1/2) an earlier stage's output, and runs
                                 `cat INPUTS | sha256sum > out/sNNNNN`

Either way the graph is a random DAG of depth O(log n). The command string is identical for
every tool, so the tools differ only in how they decide and launch, which is what we measure.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DATA_BYTES = 10_000_000  # 10 MB of input in all, whatever the number of stages
UPSTREAM_PROBABILITY = 0.5  # shared workload: chance that an input is an earlier stage's output


@dataclass(frozen=True)
class StageDef:
    name: str
    inputs: tuple[str, ...]
    output: str
    command: str


@dataclass(frozen=True)
class Dag:
    files: tuple[str, ...]
    stages: tuple[StageDef, ...]
    file_size: int  # bytes of each data file
    command_template: str  # `{inputs}` / `{output}` placeholders: the shell command of every stage

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


# A generator gives the data files and each stage's inputs, `@k` standing for stage k's output.
Generator = Callable[[int, random.Random], tuple[tuple[str, ...], list[tuple[str, ...]]]]


@dataclass(frozen=True)
class Workload:
    name: str
    command_template: str
    output_suffix: str
    generate: Generator
    file_size: Callable[[int], int]


def _per_stage_inputs(n_stages: int, rng: random.Random) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    files = tuple(f"data/f{i:05d}.bin" for i in range(n_stages))
    inputs: list[tuple[str, ...]] = []
    for i in range(n_stages):
        picks = [files[i]]
        for _ in range(rng.randint(0, 2) if i else 0):
            upstream = f"@{rng.randrange(i)}"
            if upstream not in picks:
                picks.append(upstream)
        inputs.append(tuple(picks))
    return files, inputs


def _shared_inputs(n_stages: int, rng: random.Random) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    n_files = 100
    files = tuple(f"data/f{i:03d}.bin" for i in range(n_files))
    inputs: list[tuple[str, ...]] = []
    for i in range(n_stages):
        picks: list[str] = []
        for _ in range(rng.randint(1, 3)):
            if i and rng.random() < UPSTREAM_PROBABILITY:
                pick = f"@{rng.randrange(i)}"
            else:
                pick = files[rng.randrange(n_files)]
            if pick not in picks:
                picks.append(pick)
        inputs.append(tuple(picks))
    return files, inputs


WORKLOADS = {
    "per-stage": Workload(
        "per-stage", "cksum {inputs} > {output}", ".txt", _per_stage_inputs, lambda n: DATA_BYTES // max(n, 1)
    ),
    "shared": Workload(
        "shared", "cat {inputs} | sha256sum > {output}", "", _shared_inputs, lambda n: DATA_BYTES // 100
    ),
}
DEFAULT_WORKLOAD = "per-stage"


def make_dag(n_stages: int, workload: str = DEFAULT_WORKLOAD, seed: int = 0) -> Dag:
    w = WORKLOADS[workload]
    files, inputs = w.generate(n_stages, random.Random(seed))
    outputs = [f"out/s{i:05d}{w.output_suffix}" for i in range(n_stages)]
    stages = []
    for i, picks in enumerate(inputs):
        ins = tuple(outputs[int(p[1:])] if p.startswith("@") else p for p in picks)
        command = w.command_template.format(inputs=" ".join(ins), output=outputs[i])
        stages.append(StageDef(f"s{i:05d}", ins, outputs[i], command))
    return Dag(files, tuple(stages), w.file_size(n_stages), w.command_template)


def write_data(root: Path, dag: Dag, seed: int = 0) -> None:
    """The input files: `dag.file_size` random bytes each (seeded: every run hashes the same bytes)."""
    rng = random.Random(seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    for path in dag.files:
        (root / path).write_bytes(rng.randbytes(dag.file_size))


# ---- each tool's build file ---------------------------------------------------------------------------


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
    # No built-in rules: else make searches its implicit rules (RCS, SCCS, %.o …) for each of the
    # n data files and outputs, 0.2 s of a 1,000-stage null run; bg and doit search nothing.
    lines = ["MAKEFLAGS += --no-builtin-rules", ".SUFFIXES:", ".PHONY: all"]
    lines += ["all: " + " ".join(s.output for s in dag.stages), ""]
    for s in dag.stages:
        lines += [f"{s.output}: {' '.join(s.inputs)}", f"\t{s.command}"]
    return "\n".join(lines) + "\n"


# doit and Snakemake read the graph from graph.json: a dodo.py or Snakefile with 10,000 literal
# tasks or rules would measure Python's compiler rather than the tool. doit: MD5 checker (its
# default). Snakemake: one rule whose wildcard is the stage name, its inputs looked up.
DODO = """\
import json

DOIT_CONFIG = {"verbosity": 0}

def task_stage():
    with open("graph.json") as f:
        stages = json.load(f)
    for name, inputs, output, command in stages:
        yield {"basename": name, "actions": [command], "file_dep": inputs, "targets": [output]}
"""

SNAKEFILE = """\
import json

with open("graph.json") as f:
    STAGES = {{output: inputs for name, inputs, output, command in json.load(f)}}

rule all:
    input: list(STAGES)

rule stage:
    input: lambda wildcards: STAGES[f"out/{{wildcards.name}}{suffix}"]
    output: "out/{{name}}{suffix}"
    wildcard_constraints: name="s[0-9]+"
    shell: {shell!r}
"""


def snakefile(dag: Dag) -> str:
    suffix = dag.stages[0].output.removeprefix(f"out/{dag.stages[0].name}") if dag.stages else ""
    shell = dag.command_template.format(inputs="{input}", output="{output}")
    return SNAKEFILE.format(suffix=suffix, shell=shell)


def dvc_yaml(dag: Dag) -> str:
    """JSON is YAML: DVC reads it as is, and it is quicker to write than to pretty-print."""
    stages = {s.name: {"cmd": s.command, "deps": list(s.inputs), "outs": [s.output]} for s in dag.stages}
    return json.dumps({"stages": stages}, indent=1) + "\n"


def write_tool_files(root: Path, dag: Dag, tool: str) -> None:
    graph = [[s.name, list(s.inputs), s.output, s.command] for s in dag.stages]
    if tool == "bg":
        (root / "Buildfile.toml").write_text(buildfile_toml(dag))
    elif tool == "make":
        (root / "Makefile").write_text(makefile(dag))
    elif tool == "doit":
        (root / "graph.json").write_text(json.dumps(graph))
        (root / "dodo.py").write_text(DODO)
    elif tool == "snakemake":
        (root / "graph.json").write_text(json.dumps(graph))
        (root / "Snakefile").write_text(snakefile(dag))
    elif tool == "dvc":
        (root / "dvc.yaml").write_text(dvc_yaml(dag))
    else:
        raise ValueError(f"unknown tool {tool!r}")


def write_workspace(root: Path, dag: Dag, tool: str, data_template: Path) -> Path:
    """A fresh project for `tool` at root/tool: a copy of the data plus the tool's build file."""
    ws = root / tool
    shutil.copytree(data_template / "data", ws / "data")
    (ws / "out").mkdir()
    write_tool_files(ws, dag, tool)
    return ws
