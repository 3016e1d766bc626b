"""Pipeline features a DVC user expects (issue 10): params files, matrix stages, metrics inside
output directories, command sequences, `always` and `frozen` — run for real with `bg`.

Whether a command executed is read from `ran.log` (outside the project, see conftest).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; only its types are needed here
    from conftest import Project

# params files -------------------------------------------------------------------------------

PARAMS_FILES = {
    "params.yaml": "train:\n  lr: 0.1\n  epochs: 2\nevaluate:\n  split: 0.2\n",
    "params.json": '{"train": {"lr": 0.1, "epochs": 2}, "evaluate": {"split": 0.2}}\n',
    "params.toml": "[train]\nlr = 0.1\nepochs = 2\n[evaluate]\nsplit = 0.2\n",
}
TRAIN = """
[stages.train]
command = "echo train >> {ran}; echo lr=${params.train.lr} > model.txt; cat {file} >> model.txt"
params = { file = "{file}", keys = ["train.lr", "train.epochs"] }
outputs = ["model.txt"]
"""


@pytest.mark.parametrize("file", sorted(PARAMS_FILES))
def test_a_params_file_keys_only_the_values_a_stage_lists(project: Project, file: str) -> None:
    project.write(file, PARAMS_FILES[file])
    project.stages(TRAIN, file=file)
    project.run_json()
    assert project.executed() == ["train"]
    model = project.read("model.txt")
    assert model.startswith("lr=0.1\n") and "split" in model  # the value, and the file itself
    keyed = project.lock()["train"]["material"]["params"]
    assert keyed == {f"{file}:train.epochs": 2, f"{file}:train.lr": 0.1}

    project.write(file, PARAMS_FILES[file].replace("0.2", "0.3"))  # evaluate.split: not listed
    assert project.run_json().statuses == {"train": "skipped"}
    assert project.executed() == []

    project.write(file, PARAMS_FILES[file].replace("0.1", "0.5"))
    reasons = project.status()["train"]["reasons"]
    # the command holds the value too, so it changed as well (as with [params])
    assert [r["text"] for r in reasons] == ["command changed", f"param {file}:train.lr 0.1 → 0.5"]
    project.run_json()
    assert project.executed() == ["train"]
    assert project.read("model.txt").startswith("lr=0.5\n")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            '{ file = "params.yaml", keys = ["train.lrr"] }',
            "bg: error: Buildfile.toml: stages.train.params.keys[0]: no key 'train.lrr' in \"params.yaml\"\n"
            "bg: hint: dotted names reach into tables (did you mean 'train.lr'?)\n",
        ),
        (
            '{ file = "other.yaml", keys = ["train.lr"] }',
            'bg: error: Buildfile.toml: stages.train.params.file: cannot read "other.yaml": no such file\n'
            "bg: hint: params files are YAML (.yaml, .yml), JSON (.json) or TOML (.toml)\n",
        ),
        (
            '{ file = "params.yaml" }',
            "bg: error: Buildfile.toml: stages.train.params.keys: missing (which values of the file does the"
            " stage read?)\n"
            'bg: hint: write params = { file = "params.yaml", keys = ["train.lr", "train.epochs"] }\n',
        ),
    ],
    ids=["unknown-key", "missing-file", "no-keys"],
)
def test_params_file_mistakes_are_located(project: Project, params: str, expected: str) -> None:
    project.write("params.yaml", PARAMS_FILES["params.yaml"])
    project.stages(f'[stages.train]\ncommand = "true"\nparams = {params}\n')
    done = project.bg("status", check=2)
    assert done.err.startswith(expected.splitlines()[0])
    if "hint" in expected:
        assert done.err == expected


def test_a_value_not_listed_in_params_keys_cannot_be_referenced(project: Project) -> None:
    project.write("params.yaml", PARAMS_FILES["params.yaml"])
    project.stages(
        '[stages.train]\ncommand = "echo ${params.evaluate.split}"\n'
        'params = { file = "params.yaml", keys = ["train.lr"] }\n'
    )
    done = project.bg("status", check=2)
    assert done.err == (
        "bg: error: Buildfile.toml: stages.train.command: undefined param '${params.evaluate.split}'\n"
        "bg: hint: list 'evaluate.split' in the stage's params = { file = ..., keys = [...] }\n"
    )


def test_an_invalid_params_file_is_located(project: Project) -> None:
    project.write("params.yaml", "train: [unclosed\n")
    project.stages('[stages.train]\ncommand = "true"\nparams = { file = "params.yaml", keys = ["train"] }\n')
    done = project.bg("status", check=2)
    assert done.err.startswith(
        'bg: error: Buildfile.toml: stages.train.params.file: cannot read "params.yaml": not valid YAML ('
    )


# matrix ---------------------------------------------------------------------------------------

MATRIX = """
[stages.train]
matrix = { model = ["lenet", "resnet"] }
command = "echo train-${matrix.model} >> {ran}; mkdir -p models; cp conf/${matrix.model}.txt models/"
inputs = ["conf/${matrix.model}.txt"]
outputs = ["models/${matrix.model}.txt"]

[stages.compare]
command = "echo compare >> {ran}; cat models/lenet.txt models/resnet.txt > best.txt"
inputs = ["models/"]
outputs = ["best.txt"]
"""


def test_a_matrix_makes_one_stage_per_value_each_keyed_alone(project: Project) -> None:
    project.write("conf/lenet.txt", "small\n")
    project.write("conf/resnet.txt", "big\n")
    project.stages(MATRIX)
    done = project.run_json()
    assert done.statuses == {"train-lenet": "done", "train-resnet": "done", "compare": "done"}
    assert sorted(project.executed()) == ["compare", "train-lenet", "train-resnet"]
    assert project.read("best.txt") == "small\nbig\n"
    keys = {name: entry["key"] for name, entry in project.lock().items()}
    assert len(set(keys.values())) == 3

    project.write("conf/resnet.txt", "bigger\n")
    done = project.run_json()
    assert project.executed() == ["train-resnet", "compare"]
    assert done.statuses["train-lenet"] == "skipped"
    assert project.read("best.txt") == "small\nbigger\n"


def test_a_matrix_over_two_variables_names_stages_by_both(project: Project) -> None:
    project.stages(
        '[stages.fit]\nmatrix = { model = ["a", "b"], seed = [0, 1] }\n'
        'command = "echo ${matrix.model}${matrix.seed} > out-${matrix.model}-${matrix.seed}.txt"\n'
        'outputs = ["out-${matrix.model}-${matrix.seed}.txt"]\n'
    )
    assert list(project.status()) == ["fit-a-0", "fit-a-1", "fit-b-0", "fit-b-1"]
    project.run_json()
    assert project.read("out-b-1.txt") == "b1\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'matrix = { model = ["a"] }\ncommand = "echo ${matrix.modle}"\n',
            "bg: error: Buildfile.toml: stages.train.command: undefined matrix variable '${matrix.modle}'\n"
            "bg: hint: the matrix declares model\n",
        ),
        (
            'matrix = { model = ["a b"] }\ncommand = "true"\n',
            'bg: error: Buildfile.toml: stages.train.matrix.model[0]: "a b" cannot be part of a stage name\n',
        ),
        (
            'matrix = { model = ["x"] }\ncommand = "true"\n\n[stages.train-x]\ncommand = "true"\n',
            "bg: error: Buildfile.toml: stages.train.matrix: makes a stage 'train-x', declared already\n",
        ),
        (
            "matrix = { model = [] }\ncommand = \"true\"\n",
            "bg: error: Buildfile.toml: stages.train.matrix.model: must be a non-empty list of values\n",
        ),
    ],
    ids=["undefined-variable", "unsafe-value", "name-taken", "empty"],
)
def test_matrix_mistakes_are_located(project: Project, body: str, expected: str) -> None:
    project.stages("[stages.train]\n" + body)
    done = project.bg("status", check=2)
    assert done.err.startswith(expected)


# metrics inside an output directory -----------------------------------------------------------


def test_metrics_inside_an_output_directory_are_shown(project: Project) -> None:
    project.stages(
        '[stages.evaluate]\ncommand = "mkdir -p eval; echo \'{\\"accuracy\\": 0.5}\' > eval/metrics.json"\n'
        'outputs = ["eval/"]\nmetrics = "eval/metrics.json"\n'
    )
    project.run_json()
    done = project.bg("metrics", "--json", check=0)
    assert json.loads(done.out)["evaluate"] == {"accuracy": 0.5}


# command sequences ---------------------------------------------------------------------------


def test_commands_run_in_turn_and_stop_at_the_first_failure(project: Project) -> None:
    project.stages(
        '[stages.ok]\ncommands = ["echo one >> {ran}", "echo two >> {ran}", "echo done > ok.txt"]\n'
        'outputs = ["ok.txt"]\n'
        '[stages.bad]\ncommands = ["echo first >> {ran}", "exit 3", "echo never >> {ran}"]\n'
    )
    assert project.run_json("ok").statuses == {"ok": "done"}
    assert project.executed() == ["one", "two"]
    done = project.run_json("bad", check=1)
    assert done.statuses == {"bad": "failed"}
    assert project.executed() == ["first"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'command = ["python3 a.py", "python3 b.py"]\n',
            "bg: error: Buildfile.toml: stages.s.command: a command list is one program and its arguments,"
            ' and "python3 a.py" is not a program\n'
            "bg: hint: for commands run one after the other write commands = [...]; for one program, split"
            ' its arguments: ["python", "a.py"]\n',
        ),
        (
            'command = "true"\ncommands = ["true"]\n',
            "bg: error: Buildfile.toml: stages.s.commands: a stage has `command` (one) or `commands`"
            " (several, in turn), not both\n"
            "bg: hint: move the command into the `commands` list\n",
        ),
    ],
    ids=["argv-with-spaces", "both"],
)
def test_command_list_mistakes_say_how_to_write_a_sequence(
    project: Project, body: str, expected: str
) -> None:
    project.stages("[stages.s]\n" + body)
    assert project.bg("status", check=2).err == expected


# always and frozen -----------------------------------------------------------------------------


def test_an_always_stage_runs_every_time(project: Project) -> None:
    project.stages(
        '[stages.fetch]\ncommand = "echo fetch >> {ran}; date +%N > latest.txt"\noutputs = ["latest.txt"]\n'
        "always = true\n"
        '[stages.use]\ncommand = "echo use >> {ran}; cat latest.txt > used.txt"\ninputs = ["latest.txt"]\n'
        'outputs = ["used.txt"]\n'
    )
    project.run_json()
    assert project.executed() == ["fetch", "use"]
    decision = project.status()["fetch"]
    assert decision["action"] == "run"
    assert decision["reasons"] == [{"kind": "always", "text": "always runs (always = true)"}]
    project.run_json()
    assert project.executed()[0] == "fetch"


def test_a_frozen_stage_keeps_its_recorded_result(project: Project) -> None:
    stage = '[stages.data]\ncommand = "echo {word} >> {ran}; echo {word} > data.txt"\n'
    stage += 'outputs = ["data.txt"]\n'
    project.stages(stage, word="old")
    project.run_json()
    assert project.executed() == ["old"]
    project.stages(stage + "frozen = true\n", word="new")  # a changed command: frozen, so kept
    decision = project.status()["data"]
    assert decision["action"] == "skip"
    assert [r["kind"] for r in decision["reasons"]] == ["frozen"]
    first = project.bg("status", check=0).out.splitlines()[0]
    assert re.fullmatch(r"data\s+up to date\s+frozen \(frozen = true: its recorded result is kept\)", first)
    assert project.run_json().statuses == {"data": "skipped"}
    assert project.executed() == []

    (project.root / "data.txt").unlink()
    assert project.run_json().statuses == {"data": "cached"}  # restored, never rerun
    assert project.executed() == []
    assert project.read("data.txt") == "old\n"

    assert project.bg("status", check=0).out.splitlines()[0].split()[:4] == ["data", "up", "to", "date"]
    project.stages(stage, word="new")  # thawed: the changed command runs
    project.run_json()
    assert project.executed() == ["new"]


def test_always_and_frozen_together_are_refused(project: Project) -> None:
    project.stages('[stages.s]\ncommand = "true"\nalways = true\nfrozen = true\n')
    assert project.bg("status", check=2).err == (
        "bg: error: Buildfile.toml: stages.s.frozen: a stage cannot be both `always` (run every time) and"
        " `frozen` (never rerun)\nbg: hint: remove one of them\n"
    )


# audits ----------------------------------------------------------------------------------------

AUDITED = """
[stages.reads-its-key]
command = "python3 -c 'import json; print(json.load(open(\\"p.json\\"))[\\"train\\"][\\"lr\\"])' > lr.txt"
params = { file = "p.json", keys = ["train.lr"] }
outputs = ["lr.txt"]

[stages.copies-the-file]
command = "cp p.json copy.json"
params = { file = "p.json", keys = ["train.lr"] }
outputs = ["copy.json"]
"""


def test_an_audit_gives_a_stage_only_the_params_values_it_recorded(project: Project) -> None:
    project.write("p.json", '{"train": {"lr": 0.1}, "other": 1}\n')
    project.stages(AUDITED)
    project.run_json()
    project.write("p.json", '{"train": {"lr": 0.1}, "other": 2}\n')  # an unlisted key: nothing reruns
    found = json.loads(project.bg("audit", "--json", check=1).out)
    results = {s["stage"]: s["result"] for s in found["stages"]}
    # reading its listed key reproduces; copying the whole file depended on unlisted values
    assert results == {"reads-its-key": "reproduced", "copies-the-file": "differs"}
