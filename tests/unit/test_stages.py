"""`[stages.NAME]` tables → image and run stages (`core.stages` and the stage tables), read from
plain dicts as tomllib returns them: the kinds, each value's forms, and the problems recorded."""

from __future__ import annotations

from typing import Any

import pytest

from buildgraph.core import values as v
from buildgraph.core.spec import (
    Copy,
    DebianBase,
    ImageRef,
    ImageStage,
    Output,
    ParamValue,
    RunStage,
    Stage,
    StageRef,
)
from buildgraph.core.stages import read_stages

ARGS = {"PY": "3.12", "UID": "1000"}
PARAMS: dict[str, ParamValue] = {"epochs": 2, "t": "90m", "fast": True}


def read(stages: object) -> tuple[dict[str, Stage], list[str]]:
    out = v.Problems("Buildfile.toml")
    found = read_stages(stages, out, ARGS, PARAMS)
    return found, [f"{p.where}: {p.message}" + (f" | {p.hint}" if p.hint else "") for p in out.items]


def run(**body: Any) -> RunStage:
    found, problems = read({"s": {"command": "x", **body}})
    assert problems == []
    stage = found["s"]
    assert isinstance(stage, RunStage)
    return stage


def image(**body: Any) -> ImageStage:
    found, problems = read({"deps": {"from": "python:3"}, "s": {"from": "deps", **body}})
    assert problems == []
    stage = found["s"]
    assert isinstance(stage, ImageStage)
    return stage


def problems_of(**body: Any) -> list[str]:
    return read({"deps": {"from": "python:3"}, "s": body})[1]


# Kinds ------------------------------------------------------------------------------------------


def test_from_makes_an_image_stage_and_command_a_run_stage() -> None:
    found, problems = read({"img": {"from": "python:3"}, "job": {"command": "make"}})
    assert problems == [] and isinstance(found["img"], ImageStage) and isinstance(found["job"], RunStage)
    assert found["img"] == ImageStage("img", ImageRef("python:3"))
    assert found["job"] == RunStage("job", "make")


def test_a_stage_with_both_is_reported_and_read_as_an_image_stage() -> None:
    found, problems = read({"a": {"from": "python:3", "command": "make", "inputs": ["x"]}})
    assert problems == [
        "stages.a: has both `from` (an image stage) and `command` (a run stage) | split it in two: an image"
        ' stage with `from`, and a run stage with image = "a"'
    ]
    assert isinstance(found["a"], ImageStage)  # its run keys are allowed (no second problem), not read


def test_a_stage_with_neither_is_reported_once() -> None:
    found, problems = read({"a": {"inputs": ["x"]}})
    assert [p.split(" | ")[0] for p in problems] == [
        "stages.a: has neither `from` (an image stage) nor `command` (a run stage)"
    ]
    assert found["a"] == RunStage("a", "", inputs=("x",))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"from": "python:3", "outputs": ["x"]}, "'outputs' belongs to run stages (those with `command`)"),
        ({"command": "x", "workdir": "/x"}, "'workdir' belongs to image stages (those with `from`)"),
        ({"command": "x", "ouputs": ["x"]}, "did you mean 'outputs'?"),
        ({"command": "x", "colour": "red"}, "allowed keys: image, command, inputs, outputs, env, gpus"),
    ],
)
def test_unknown_keys_say_where_they_belong(body: dict[str, Any], problem: str) -> None:
    found, problems = read({"a": body})
    assert len(problems) == 1 and problems[0].split(" | ")[1].startswith(problem)


@pytest.mark.parametrize("stages", [None, {}])
def test_no_stages_is_a_problem(stages: object) -> None:
    assert read(stages) == ({}, ['stages: no stages declared | add a [stages.NAME] table with command = "..."'
                                 ' or from = "..."'])  # fmt: skip


def test_a_bad_stage_name_is_reported_and_the_stage_still_read() -> None:
    found, problems = read({"a b": {"command": "x"}, "c": "make"})
    assert problems[0].startswith('stages."a b": invalid stage name')
    assert problems[1] == 'stages.c: expected a table, got a string "make"'
    assert list(found) == ["a b"]


def test_every_problem_is_recorded_in_the_order_written_and_bad_fields_keep_defaults() -> None:
    body = {"command": "x", "timeout": "soon", "outputs": ["a"], "gpus": -1, "network": "yes"}
    found, problems = read({"s": body})
    assert [p.split(":")[0] for p in problems] == ["stages.s.timeout", "stages.s.gpus", "stages.s.network"]
    assert found["s"] == RunStage("s", "x", outputs=(Output("a"),))
    reordered = read({"s": dict(reversed(body.items()))})[1]
    assert [p.split(":")[0] for p in reordered] == ["stages.s.network", "stages.s.gpus", "stages.s.timeout"]


# Run stage values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [
        (90, 90.0),
        (0, 0.0),
        (1.5, 1.5),
        ("45", 45.0),
        ("30s", 30.0),
        ("90m", 5400.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
        ("${params.t}", 5400.0),  # a duration may come from a param
    ],
)
def test_timeouts_are_seconds_or_durations(timeout: object, seconds: float) -> None:
    assert run(timeout=timeout).timeout == seconds


@pytest.mark.parametrize(
    ("timeout", "problem"),
    [
        ("soon", 'invalid duration "soon" | write seconds (3600) or "30s", "90m", "2h", "1h30m"'),
        ("1h 30m", 'invalid duration "1h 30m"'),
        ("-5m", 'invalid duration "-5m"'),
        ("m", 'invalid duration "m"'),
        (-1, "expected a number of seconds ≥ 0 (0 = no timeout), got an integer -1"),
        (float("inf"), "expected a number of seconds ≥ 0 (0 = no timeout), got a float inf"),
        (True, 'expected a number of seconds or a duration such as "90m", got a boolean true'),
    ],
)
def test_bad_timeouts(timeout: object, problem: str) -> None:
    problems = problems_of(command="x", timeout=timeout)
    assert len(problems) == 1 and problems[0].startswith(f"stages.s.timeout: {problem}")


@pytest.mark.parametrize(
    ("gpus", "stored", "count"),
    [("all", "all", None), (0, None, 0), (2, 2, 2), ([0, 3], (0, 3), 2), ([], None, 0)],
)
def test_gpus_forms(gpus: object, stored: object, count: int | None) -> None:
    """0 and [] ask for no GPU: the same request, so the same key, as leaving `gpus` out."""
    stage = run(gpus=gpus)
    assert (stage.gpus, stage.gpu_count) == (stored, count)


@pytest.mark.parametrize(
    ("gpus", "problem"),
    [
        ("two", 'stages.s.gpus: expected "all", an integer or a list of integers, got a string "two"'),
        ("ALL", 'stages.s.gpus: expected "all", an integer or a list of integers, got a string "ALL"'),
        (-1, "stages.s.gpus: expected a number of GPUs ≥ 0, got an integer -1"),
        ([0, -1], "stages.s.gpus[1]: expected a GPU id ≥ 0, got an integer -1"),
        ([1, 1], "stages.s.gpus: expected a list of distinct GPU ids, got a list"),
        (True, 'stages.s.gpus: expected "all", an integer or a list of integers, got a boolean true'),
    ],
)
def test_bad_gpus(gpus: object, problem: str) -> None:
    assert problems_of(command="x", gpus=gpus) == [problem]


@pytest.mark.parametrize(("size", "stored"), [(2, "2"), ("2G", "2g"), ("512MiB", "512mib"), ("1.5g", "1.5g")])
def test_shm_sizes_are_lowercased(size: object, stored: str) -> None:
    assert run(shm_size=size).shm_size == stored


@pytest.mark.parametrize("size", [0, "2 GB", "lots", "2t"])
def test_bad_shm_sizes(size: object) -> None:
    assert [p.split(":")[0] for p in problems_of(command="x", shm_size=size)] == ["stages.s.shm_size"]


def test_a_command_list_is_shell_quoted_after_interpolation() -> None:
    stage = run(command=["python3", "train.py", "--name", "my run", "--epochs", "${params.epochs}", "$HOME"])
    assert stage.command == "python3 train.py --name 'my run' --epochs 2 '$HOME'"
    assert stage.params_used == ("epochs",)


@pytest.mark.parametrize("command", ["", "   ", []])
def test_an_empty_command_is_refused(command: object) -> None:
    assert problems_of(command=command) == [
        "stages.s.command: empty command | write the shell command this stage runs"
    ]


def test_inputs_and_outputs_are_normalised_and_deduplicated() -> None:
    stage = run(inputs=["./data/", "data", "a//b.py"], outputs=["out/", "./out/", "m.json"])
    assert stage.inputs == ("data", "a/b.py")
    assert stage.outputs == (Output("out", is_dir=True), Output("m.json"))


def test_metrics_must_be_a_file_among_the_outputs() -> None:
    assert problems_of(command="x", outputs=["curves/", "m.json"], metrics="curves") == [
        'stages.s.metrics: "curves" is not one of the outputs (a file)'
        ' | add it to outputs, or put it inside an output directory; declared outputs: "curves/", "m.json"'
    ]
    assert run(outputs=["m.json"], metrics="./m.json").metrics == "m.json"


def test_env_values_may_be_numbers_and_names_are_checked() -> None:
    assert run(env={"THREADS": 2, "RATE": 0.5, "HOME_DIR": "${PY}"}).env == (
        ("THREADS", "2"),
        ("RATE", "0.5"),
        ("HOME_DIR", "3.12"),
    )
    assert problems_of(command="x", env={"A-B": "1", "C": True}) == [
        'stages.s.env.A-B: invalid name | use letters, digits and _',
        "stages.s.env.C: expected a string or a number, got a boolean true",
    ]


def test_secrets_are_names_kept_once_in_order() -> None:
    assert run(secrets=["B", "A", "B"]).secrets == ("B", "A")
    assert problems_of(command="x", secrets="TOKEN") == [
        'stages.s.secrets: expected a list of names, got a string "TOKEN" | write ["TOKEN"]'
    ]


def test_params_and_args_used_are_recorded_per_stage() -> None:
    found, _ = read(
        {
            "a": {"command": "echo ${params.epochs} ${PY}", "env": {"F": "${params.fast}"}},
            "b": {"command": "echo $${params.epochs}"},
        }
    )
    a, b = found["a"], found["b"]
    assert isinstance(a, RunStage) and isinstance(b, RunStage)
    assert (a.params_used, a.args_used) == (("epochs", "fast"), ("PY",))
    assert (a.command, a.env) == ("echo 2 3.12", (("F", "true"),))
    assert (b.params_used, b.command) == ((), "echo ${params.epochs}")


# Image stage values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "resolved"),
    [
        ("deps", StageRef("deps")),
        ("python:${PY}-slim", ImageRef("python:3.12-slim")),
        ("ghcr.io/org/img:1.0", ImageRef("ghcr.io/org/img:1.0")),
        ("localhost:5000/x@sha256:" + "a" * 64, ImageRef("localhost:5000/x@sha256:" + "a" * 64)),
        ({"debian": "bookworm"}, DebianBase("bookworm")),
        ({"debian": "bookworm", "packages": ["git", "python3-torch=2.1.2-1"], "mirror": "http://m/debian"},
         DebianBase("bookworm", ("git", "python3-torch=2.1.2-1"), "http://m/debian")),
    ],
)  # fmt: skip
def test_from_names_a_stage_an_image_or_a_debian_suite(base: object, resolved: object) -> None:
    assert image(**{"from": base}).base == resolved


def test_a_declared_stage_wins_over_a_registry_image_of_the_same_name() -> None:
    found, _ = read({"ubuntu": {"from": "ubuntu:24.04"}, "app": {"from": "ubuntu"}})
    assert found["app"].base == StageRef("ubuntu")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("base", "problem"),
    [
        ("", "stages.s.from: empty `from`"),
        ("Python:3", 'stages.s.from: "Python:3": image names are lowercase | write "python:3"'),
        ("dep$", "stages.s.from: \"dep$\" is neither a stage of this Buildfile nor an image reference"
                 " | did you mean the stage 'deps'?"),
        ({"packages": ["git"]}, "stages.s.from.debian: missing (the Debian suite)"),
        ({"debian": "Bookworm"}, 'stages.s.from.debian: expected a Debian suite such as "bookworm"'),
        ({"debian": "bookworm", "packages": ["Git"]}, "stages.s.from.packages[0]: expected a Debian package"),
        ({"debian": "bookworm", "mirror": "ftp://x"}, 'stages.s.from.mirror: expected a URL, got a string "ftp://x"'),
        ({"debian": "bookworm", "suite": "x"}, "stages.s.from.suite: unknown key"),
    ],
)  # fmt: skip
def test_bad_bases(base: object, problem: str) -> None:
    problems = problems_of(**{"from": base})
    assert problems and problems[0].startswith(problem), problems


@pytest.mark.parametrize(
    ("copy", "entries"),
    [
        ({"src": "stages/", "dest": "/opt/"}, (Copy(("stages",), "/opt/"),)),
        ({"src": ["a", "./b/*.py"], "dest": "/opt/./x", "chown": "${UID}:${UID}"},
         (Copy(("a", "b/*.py"), "/opt/x", "1000:1000"),)),
    ],
)  # fmt: skip
def test_copy_entries(copy: dict[str, Any], entries: tuple[Copy, ...]) -> None:
    assert image(copy=[copy]).copy == entries


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"src": "a"}, 'stages.s.copy[0].dest: missing | e.g. { src = ["stages/"], dest = "/opt/app/" }'),
        ({"src": [], "dest": "/o"}, "stages.s.copy[0].src: no sources | list the files or directories"),
        ({"src": "a", "dest": "opt"}, 'stages.s.copy[0].dest: "opt" is not absolute'),
        ({"src": "../a", "dest": "/o"}, 'stages.s.copy[0].src: "../a" points outside the project'),
        ({"src": "a", "dest": "/o", "chown": "me:"}, "stages.s.copy[0].chown: expected user[:group], got"),
        ("a", 'stages.s.copy[0]: expected a table { src = ..., dest = "/..." }, got a string "a"'),
    ],
)  # fmt: skip
def test_bad_copy_entries(entry: object, problem: str) -> None:
    problems = problems_of(**{"from": "deps", "copy": [entry]})
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_a_copy_entry_reports_its_first_problem_only_and_the_others_are_still_read() -> None:
    problems = problems_of(**{"from": "deps", "copy": [{"dest": "rel"}, {"src": "/abs", "dest": "rel"}]})
    assert [p.split(":")[0] for p in problems] == ["stages.s.copy[0].src", "stages.s.copy[1].src"]


def test_string_or_list_keys_and_container_paths() -> None:
    stage = image(run="make", entrypoint="python3 -u", cmd=["train.py", "--help"], workdir="/opt/./bg/")
    assert (stage.run, stage.entrypoint, stage.cmd, stage.workdir) == (
        ("make",),
        ("python3 -u",),  # a string is shell form: one element
        ("train.py", "--help"),
        "/opt/bg/",
    )


def test_image_stages_take_args_but_not_params() -> None:
    assert image(env={"V": "${PY}"}).args_used == ("PY",)
    assert problems_of(**{"from": "deps", "run": ["echo ${params.epochs}"]}) == [
        "stages.s.run[0]: '${params.epochs}': params are for run stages"
        " | an image stage is configured by [args]: use ${NAME}"
    ]


def test_image_stages_keep_their_strings_with_references_as_written() -> None:
    """`bg dockerfile` turns them back into ARG references."""
    stage = image(run=["pip install torch==${PY}", "make"], env={"A": "${UID}", "B": "plain"}, user="${UID}")
    assert stage.templates == (
        ("run[0]", "pip install torch==${PY}"),
        ("env.A", "${UID}"),
        ("user", "${UID}"),
    )
    assert run(command="echo ${PY}").args_used == ("PY",)  # run stages keep no templates
