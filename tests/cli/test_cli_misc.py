"""The command line itself: usage errors (exit 2, one line + hint, never a traceback),
`bg graph` in every format, `bg metrics`, `--version`, and `bg` with no command."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

import buildgraph

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Done, Project

# argv → (exit status, the exact first stderr line, a second line that must follow, if any)
USAGE_ERRORS: dict[tuple[str, ...], tuple[int, str, str]] = {
    ("run", "trian"): (2, "bg: error: unknown stage 'trian' (did you mean 'train'?)", "bg: hint: "),
    ("status", "prepp"): (2, "bg: error: unknown stage 'prepp' (did you mean 'prep'?)", "bg: hint: "),
    ("run", "--force", "fet"): (2, "bg: error: unknown stage 'fet' (did you mean 'feat'?)", ""),
    ("run", "--param", "scale"): (2, "bg: error: --param 'scale': expected NAME=VALUE", "bg: hint: "),
    ("run", "--param", "scale=abc"): (2, 'bg: error: --param scale=abc: expected an int, got "abc"', ""),
    ("run", "--param", "nosuch=1"): (
        2,
        "bg: error: --param nosuch=1: no param named 'nosuch' in [params]",
        "",
    ),
    ("run", "-j", "0"): (2, "bg: error: -j 0: expected at least 1", ""),
    ("explain", "nope"): (2, "bg: error: unknown stage 'nope'", "bg: hint: "),
    ("-C", "/nonexistent/dir", "status"): (2, "bg: error: -C /nonexistent/dir: no such directory", ""),
    ("run", "--no-such-option"): (2, "usage: bg [-h]", ""),
}


@pytest.fixture(scope="module")
def usage_results(shared_pipeline: Project) -> dict[tuple[str, ...], Done]:
    # a dozen interpreter start-ups: side by side, the module takes a second, not five
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(USAGE_ERRORS, pool.map(lambda a: shared_pipeline.bg(*a), USAGE_ERRORS), strict=True))


@pytest.mark.parametrize("argv", list(USAGE_ERRORS), ids=" ".join)
def test_usage_errors_exit_2_with_one_line_and_no_traceback(
    argv: tuple[str, ...], usage_results: dict[tuple[str, ...], Done], shared_pipeline: Project
) -> None:
    done = usage_results[argv]
    status, first, second = USAGE_ERRORS[argv]
    lines = done.err.splitlines()
    assert done.rc == status, done.err
    assert lines[0] == first or (first.startswith("usage:") and lines[0].startswith(first))
    if second:
        assert lines[1].startswith(second)
    assert done.out == "" and shared_pipeline.executed() == []


def test_no_command_prints_help_and_exits_2(shared_pipeline: Project) -> None:
    rc, out, err = shared_pipeline.bg()
    assert rc == 2 and out == ""
    assert err.startswith("usage: bg") and "run " in err and "status " in err


def test_version(shared_pipeline: Project) -> None:
    assert shared_pipeline.bg("--version", check=0).out == f"bg {buildgraph.__version__}\n"


def test_a_damaged_lock_is_an_environment_problem(project: Project) -> None:
    project.stages('[stages.a]\ncommand = "echo a > a.txt"\noutputs = ["a.txt"]\n')
    project.write("Buildfile.lock", '{"version": 1, "stages": {')
    rc, _, err = project.bg("status")
    assert rc == 3
    assert err.splitlines()[0].startswith("bg: error: Buildfile.lock:1:")
    assert err.splitlines()[1].startswith("bg: hint: ")


# ---------------------------------------------------------------- graph
EDGES = [["prep", "feat"], ["feat", "train"], ["train", "report"]]


def test_graph_text(shared_pipeline: Project) -> None:
    lines = shared_pipeline.bg("graph", check=0).out.splitlines()
    assert lines[0].split() == ["prep", "[run", "on", "host]", "→", "clean.txt"]
    assert lines[1].split() == ["feat", "[run", "on", "host]", "←", "prep", "→", "feat.txt"]
    assert lines[3].split()[-1] == "rep/"


def test_graph_dot_mermaid_json_agree(shared_pipeline: Project) -> None:
    dot = shared_pipeline.bg("graph", "--format", "dot", check=0).out
    assert dot.startswith("digraph buildgraph {") and dot.rstrip().endswith("}")
    assert [line.strip() for line in dot.splitlines() if "->" in line] == [
        f'"{u}" -> "{d}";' for u, d in EDGES
    ]

    mermaid = shared_pipeline.bg("graph", "--format", "mermaid", check=0).out.splitlines()
    assert mermaid[0] == "flowchart LR"
    ids = {line.split("[")[0].strip(): line.split('"')[1] for line in mermaid[1:] if "[" in line}
    arrows = [line.split("-->") for line in mermaid if "-->" in line]
    assert [[ids[u.strip()], ids[d.strip()]] for u, d in arrows] == EDGES

    graph = json.loads(shared_pipeline.bg("graph", "--format", "json", check=0).out)
    assert graph["nodes"] == [{"name": n, "kind": "run"} for n in ("prep", "feat", "train", "report")]
    assert graph["edges"] == EDGES


def test_graph_of_a_target_shows_only_what_it_needs(shared_pipeline: Project) -> None:
    graph = json.loads(shared_pipeline.bg("graph", "train", "--format", "json", check=0).out)
    assert [n["name"] for n in graph["nodes"]] == ["prep", "feat", "train"]


# ---------------------------------------------------------------- metrics
def test_metrics_before_and_after_the_stage_ran(project: Project) -> None:
    project.stages("""
[stages.score]
command = "echo '{\\"acc\\": 0.75, \\"loss\\": {\\"train\\": 2}, \\"note\\": \\"x\\"}' > m.json"
outputs = ["m.json"]
metrics = "m.json"
""")
    assert "no metrics yet" in project.bg("metrics", check=0).out
    run = project.bg("run", check=0)
    assert "[score] metrics: acc 0.75 … (1 more: bg metrics)\n" in run.out  # top level, then a count
    assert json.loads(project.bg("metrics", "--json", check=0).out) == {
        "score": {"acc": 0.75, "loss.train": 2}
    }
    assert project.bg("metrics", check=0).out.splitlines() == ["score  acc  0.75", "score  loss.train  2"]
