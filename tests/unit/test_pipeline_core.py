"""The pure side of issue 10's pipeline features: matrix expansion, params-file values in keys,
and `always` / `frozen` in the planner (the CLI tests run them for real: tests/cli/test_pipelines.py)."""

from __future__ import annotations

from buildgraph.core import values as v
from buildgraph.core.keys import key_of, run_material
from buildgraph.core.matrix import expand_matrix
from buildgraph.core.parse import parse
from buildgraph.core.plan import Observed, decide
from buildgraph.core.spec import RunStage

HEAD = '[project]\nname = "t"\n'
PARAMS = {"train": {"lr": 0.1, "epochs": {"a": 1, "b": 2}}, "notes": "x"}


def test_a_matrix_expands_in_the_order_written_with_every_string_substituted() -> None:
    out = v.Problems("Buildfile.toml")
    body = {"matrix": {"m": ["a", "b"], "s": [0, True]}, "command": "run ${matrix.m} $${matrix.m}",
            "env": {"K": "${matrix.s}"}}  # fmt: skip
    stages = expand_matrix("t", body, out)
    assert [name for name, _ in stages] == ["t-a-0", "t-a-true", "t-b-0", "t-b-true"]
    assert stages[1][1] == {"command": "run a $${matrix.m}", "env": {"K": "true"}}  # `$${` stays literal
    assert out.items == []


def test_params_file_values_are_keyed_by_file_and_key_and_nothing_else() -> None:
    text = HEAD + (
        '[stages.t]\nmatrix = { m = ["a", "b"] }\n'
        'command = "fit --epochs ${params.train.epochs.${matrix.m}}"\n'
        'params = { file = "p.yaml", keys = ["train.lr", "train.epochs.${matrix.m}"] }\n'
    )
    spec = parse(text, load_params=lambda _path: PARAMS)
    stage = spec.stages["t-b"]
    assert isinstance(stage, RunStage) and stage.command == "fit --epochs 2"
    material = run_material(stage, spec, {"host": "x"}, {})
    assert material["params"] == {"p.yaml:train.lr": 0.1, "p.yaml:train.epochs.b": 2}
    edited = parse(text, load_params=lambda _path: {**PARAMS, "notes": "y"})  # an unlisted key
    assert key_of(run_material(edited.stages["t-b"], edited, {"host": "x"}, {})) == key_of(material)  # type: ignore[arg-type]


def test_no_params_file_keeps_the_material_of_before() -> None:
    spec = parse(HEAD + '[stages.t]\ncommand = "x"\n')
    assert run_material(spec.stages["t"], spec, {"host": "x"}, {})["params"] == {}  # type: ignore[arg-type]


def test_commands_are_joined_by_newlines_for_sh_e() -> None:
    spec = parse(HEAD + '[stages.t]\ncommands = ["a 1", ["b", "two words"]]\n')
    assert spec.stages["t"].command == "a 1\nb 'two words'"  # type: ignore[union-attr]


def test_always_runs_even_when_up_to_date_and_frozen_skips_with_its_reason() -> None:
    recorded = {"key": "k", "material": {"kind": "run"}, "outputs": {"o": {"digest": "d"}}}
    up_to_date = Observed(outputs={"o": "d"})
    assert decide("s", "k", {"kind": "run"}, recorded, up_to_date).action == "skip"
    always = decide("s", "k", {"kind": "run"}, recorded, Observed(outputs={"o": "d"}, always=True))
    assert (always.action, [r.kind for r in always.reasons]) == ("run", ["always"])
    frozen = decide("s", "k", {"kind": "run"}, recorded, Observed(outputs={"o": "d"}, frozen=True))
    assert (frozen.action, [r.text() for r in frozen.reasons]) == (
        "skip", ["frozen (frozen = true: its recorded result is kept)"],
    )  # fmt: skip
