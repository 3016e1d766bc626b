"""Checks of the benchmark's own workload generator and helpers: `python -m pytest bench -q`."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CommandTimedOut,
    bg_interpreter,
    count_rewritten,
    format_table,
    output_signatures,
    run_timed,
    verdict,
)
from dag import (  # noqa: E402
    DATA_BYTES,
    buildfile_toml,
    dvc_yaml,
    make_dag,
    makefile,
    snakefile,
    write_data,
    write_workspace,
)
from peers import group  # noqa: E402
from profile_split import split  # noqa: E402
from tools import PeerLimits, locate, make_tool  # noqa: E402


@pytest.mark.parametrize("workload", ["per-stage", "shared"])
def test_same_seed_gives_same_graph_and_inputs_precede_their_stage(workload: str) -> None:
    dag = make_dag(300, workload, seed=7)
    assert dag == make_dag(300, workload, seed=7)
    assert dag != make_dag(300, workload, seed=8)
    produced: set[str] = set()
    for stage in dag.stages:
        assert 1 <= len(stage.inputs) <= 3
        assert len(set(stage.inputs)) == len(stage.inputs)
        assert all(i in produced or i in dag.files for i in stage.inputs)
        produced.add(stage.output)


def test_per_stage_workload_has_one_data_file_per_stage_and_10_mb_in_all() -> None:
    dag = make_dag(400)
    assert len(dag.files) == 400 and dag.file_size * 400 == DATA_BYTES
    for i, stage in enumerate(dag.stages):
        assert stage.inputs[0] == dag.files[i]  # its own file, then only upstream outputs
        assert all(x.startswith("out/") for x in stage.inputs[1:])
        assert stage.output == f"out/s{i:05d}.txt"
        assert stage.command == f"cksum {' '.join(stage.inputs)} > {stage.output}"
    assert sum(len(s.inputs) > 1 for s in dag.stages) > 200  # a graph, not 400 independent stages


def test_shared_workload_is_the_older_one() -> None:
    dag = make_dag(50, "shared")
    assert len(dag.files) == 100 and dag.file_size == 100_000
    assert dag.stages[3].command == f"cat {' '.join(dag.stages[3].inputs)} | sha256sum > out/s00003"


def test_downstream_follows_outputs_transitively() -> None:
    dag = make_dag(200)
    path = dag.median_fanout_file()
    hit = dag.downstream_of(path)
    assert hit, "the chosen file must feed at least one stage"
    by_name = {s.name: s for s in dag.stages}
    dirty = {path} | {by_name[n].output for n in hit}
    for stage in dag.stages:
        assert (stage.name in hit) == bool(dirty.intersection(stage.inputs))


def test_write_data_writes_every_file_at_its_size(tmp_path: Path) -> None:
    dag = make_dag(20)
    write_data(tmp_path, dag)
    assert {(tmp_path / f).stat().st_size for f in dag.files} == {DATA_BYTES // 20}


def test_buildfile_makefile_and_dvc_yaml_declare_every_stage_with_the_same_command() -> None:
    dag = make_dag(50)
    spec = tomllib.loads(buildfile_toml(dag))
    assert spec["project"]["executor"] == "local"
    assert list(spec["stages"]) == [s.name for s in dag.stages]
    text = makefile(dag)
    assert text.startswith("MAKEFLAGS += --no-builtin-rules\n")  # no implicit-rule search per file
    dvc = json.loads(dvc_yaml(dag))["stages"]  # JSON is YAML
    for s in dag.stages:
        assert spec["stages"][s.name] == {
            "command": s.command,
            "inputs": list(s.inputs),
            "outputs": [s.output],
        }
        assert f"\t{s.command}\n" in text
        assert dvc[s.name] == {"cmd": s.command, "deps": list(s.inputs), "outs": [s.output]}


@pytest.mark.parametrize("workload, shell", [("per-stage", "cksum {input} > {output}"), ("shared", None)])
def test_snakefile_runs_the_workloads_command(workload: str, shell: str | None) -> None:
    dag = make_dag(5, workload)
    text = snakefile(dag)
    expected = shell or "cat {input} | sha256sum > {output}"
    assert f"shell: {expected!r}" in text
    suffix = ".txt" if workload == "per-stage" else ""
    assert f'output: "out/{{name}}{suffix}"' in text


@pytest.mark.parametrize(
    "tool, argv", [("make", ["make", "-s", "-j2"]), ("doit", [sys.executable, "-m", "doit"])]
)
def test_make_and_doit_build_the_same_outputs(tmp_path: Path, tool: str, argv: list[str]) -> None:
    dag = make_dag(20)
    write_data(tmp_path / "template", dag)
    ws = write_workspace(tmp_path, dag, tool, tmp_path / "template")
    subprocess.run(argv, cwd=ws, check=True, capture_output=True)
    first = output_signatures(ws / "out")
    assert sorted(first) == sorted(s.output.removeprefix("out/") for s in dag.stages)
    subprocess.run(argv, cwd=ws, check=True, capture_output=True)
    assert count_rewritten(first, output_signatures(ws / "out")) == 0


@pytest.mark.parametrize("name", ["snakemake", "dvc"])
def test_slow_peers_build_then_do_nothing(tmp_path: Path, name: str) -> None:
    command = locate(name)
    if command is None:
        pytest.skip(f"{name} not installed (set $BENCH_{name.upper()})")
    dag = make_dag(4)
    write_data(tmp_path / "template", dag)
    tool = make_tool(name, write_workspace(tmp_path, dag, name, tmp_path / "template"), command, PeerLimits())
    tool.reset()
    run_timed(tool.full["-j1"], tool.ws, tool.limit, tool.env)
    first = output_signatures(tool.ws / "out")
    assert (tool.ws / "out/s00003.txt").read_text().count("\n") == len(dag.stages[3].inputs)
    run_timed(tool.run, tool.ws, tool.limit, tool.env)
    assert count_rewritten(first, output_signatures(tool.ws / "out")) == 0


def test_run_timed_reports_peak_rss_and_kills_past_the_limit(tmp_path: Path) -> None:
    big = run_timed([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert big.rss_mb > 200
    marker = tmp_path / "late"
    with pytest.raises(CommandTimedOut):
        run_timed(["sh", "-c", f"sleep 30; touch {marker}"], limit=0.2)
    assert not marker.exists()


def test_bg_interpreter_is_the_shebang_of_the_script(tmp_path: Path) -> None:
    script = tmp_path / "bg"
    script.write_text("#!/opt/py/bin/python3.11\nimport sys\n")
    assert bg_interpreter([str(script)]) == "/opt/py/bin/python3.11"
    assert bg_interpreter(["/usr/bin/python3", "-m", "buildgraph"]) == "/usr/bin/python3"


def test_peer_cells_share_a_unit_below_a_second_and_show_a_kill() -> None:
    assert group([{"median": 0.263}, {"median": 0.155}, {"median": 0.125}]) == "263 / 155 / 125 ms"
    assert group([{"median": 1.93}, {"median": 0.015}]) == "1.93 s / 15 ms"
    killed = {"median": None, "killed": {"limit_s": 150.0, "done": 199, "of": 1000}}
    assert group([killed, None]) == "> 150 s (killed at 199 of 1,000)"
    assert group([None, None]) == "–"


def test_verdict_strict_limit() -> None:
    assert verdict(1.0, 1.0) == "meets"
    assert verdict(1.0, 1.0, strict=True) == "MISSES"
    assert verdict(0.99, 1.0, strict=True) == "meets"


class _FakeStats:
    def __init__(self, table: dict[tuple[str, int, str], tuple[object, ...]]) -> None:
        self.stats = table


def test_profile_split_gives_each_moment_to_the_innermost_claimed_function() -> None:
    manifest = ("/v/buildgraph/engine/recorded.py", 1, "run_manifest")  # store: manifest
    helper = ("/v/buildgraph/engine/recorded.py", 9, "unclaimed_helper")
    hashing = ("/v/buildgraph/stores/tree.py", 1, "hash_file")
    fsync = ("/v/buildgraph/atomic.py", 1, "fsync_file")
    fold = ("/v/buildgraph/lockfile.py", 1, "fold")
    table = {  # (cc, nc, tottime, cumtime, callers: {caller: (cc, nc, tottime, cumtime)})
        manifest: (1, 1, 0.0, 10.0, {}),
        fold: (1, 1, 0.0, 2.0, {}),
        helper: (1, 1, 0.0, 5.0, {manifest: (1, 1, 0.0, 5.0)}),
        hashing: (2, 2, 4.0, 4.0, {manifest: (1, 1, 3.0, 3.0), fold: (1, 1, 1.0, 1.0)}),
        fsync: (1, 1, 2.0, 2.0, {helper: (1, 1, 2.0, 2.0)}),
    }
    shares, missing = split(_FakeStats(table))  # type: ignore[arg-type]
    got = {(s.category, s.label): s.seconds for s in shares}
    assert got == {
        ("hashing", "sha256 of files"): 4.0,
        ("store", "manifest"): pytest.approx(10.0 - 3.0 - 2.0),
        ("durability", "fsync, syncfs"): 2.0,
        ("lock/journal", "lock file"): pytest.approx(2.0 - 1.0),
    }
    assert any("run_step.py" in m for m in missing)


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
