"""Checks of the benchmark's own workload generator and helpers: `python -m pytest bench -q`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import count_rewritten, format_table, output_signatures  # noqa: E402
from dag import buildfile_toml, make_dag, makefile, write_data, write_workspace  # noqa: E402


def test_same_seed_gives_same_graph_and_inputs_precede_their_stage() -> None:
    dag = make_dag(300, seed=7)
    assert dag == make_dag(300, seed=7)
    assert dag != make_dag(300, seed=8)
    produced: set[str] = set()
    for stage in dag.stages:
        assert 1 <= len(stage.inputs) <= 3
        assert all(i in produced or i in dag.files for i in stage.inputs)
        produced.add(stage.output)


def test_downstream_follows_outputs_transitively() -> None:
    dag = make_dag(200)
    path = dag.median_fanout_file()
    hit = dag.downstream_of(path)
    assert hit, "the chosen file must feed at least one stage"
    by_name = {s.name: s for s in dag.stages}
    dirty = {path} | {by_name[n].output for n in hit}
    for stage in dag.stages:
        assert (stage.name in hit) == bool(dirty.intersection(stage.inputs))


def test_buildfile_declares_every_stage_with_the_make_command() -> None:
    dag = make_dag(50)
    spec = tomllib.loads(buildfile_toml(dag))
    assert spec["project"]["executor"] == "local"
    assert list(spec["stages"]) == [s.name for s in dag.stages]
    text = makefile(dag)
    for s in dag.stages:
        assert spec["stages"][s.name] == {
            "command": s.command,
            "inputs": list(s.inputs),
            "outputs": [s.output],
        }
        assert f"\t{s.command}\n" in text


@pytest.mark.parametrize(
    "tool, argv", [("make", ["make", "-s", "-j2"]), ("doit", [sys.executable, "-m", "doit"])]
)
def test_make_and_doit_build_the_same_outputs(tmp_path: Path, tool: str, argv: list[str]) -> None:
    dag = make_dag(20)
    write_data(tmp_path / "template", dag, 1000)
    ws = write_workspace(tmp_path, dag, tool, tmp_path / "template")
    subprocess.run(argv, cwd=ws, check=True, capture_output=True)
    first = output_signatures(ws / "out")
    assert sorted(first) == sorted(s.output.removeprefix("out/") for s in dag.stages)
    subprocess.run(argv, cwd=ws, check=True, capture_output=True)
    assert count_rewritten(first, output_signatures(ws / "out")) == 0


def test_format_table_aligns_columns() -> None:
    text = format_table(["tool", "s"], [["bg", 0.5], ["make", None]])
    assert text.splitlines() == ["tool      s", "----  -----", "bg    0.500", "make      -"]


def test_parse_time_scales_linearly() -> None:
    """Timed, so here (run by hand) and not in tests/: tests/unit/test_parse.py counts calls instead."""
    import time

    from buildgraph.core.parse import parse

    def text(n: int) -> str:
        stages = "".join(
            f'[stages.s{i}]\ncommand = "python3 s{i}.py ${{params.e}}"\n'
            f'inputs = ["s{i}.py"{f", {chr(34)}o{i - 1}/{chr(34)}" if i else ""}]\noutputs = ["o{i}/"]\n'
            for i in range(n)
        )
        return f'[project]\nname = "demo"\n[params]\ne = 1\n{stages}'

    def best(source: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            parse(source)
            times.append(time.perf_counter() - start)
        return min(times)

    small, large = best(text(250)), best(text(1000))
    assert large < 8 * small, (small, large)  # linear is 4×; quadratic would be 16×
