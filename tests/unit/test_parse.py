"""Buildfile.toml → Spec: the format, interpolation, params, paths, and every error fixture."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from buildgraph.buildfile import load
from buildgraph.core.parse import analyse, parse
from buildgraph.core.spec import Copy, DebianBase, ImageRef, ImageStage, Output, Param, RunStage, StageRef
from buildgraph.errors import BgError, BuildfileError, UsageError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "errors"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.txt").exists())
HEAD = '[project]\nname = "demo"\n'


def overrides(case: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The `--arg K=V` / `--param k=v` words of a fixture's optional `argv` file."""
    argv = case / "argv"
    words = shlex.split(argv.read_text()) if argv.exists() else []
    args: dict[str, str] = {}
    params: dict[str, str] = {}
    for option, pair in zip(words[::2], words[1::2], strict=True):
        name, _, value = pair.partition("=")
        (params if option == "--param" else args)[name] = value
    return args, params


def stderr_of(case: Path) -> str:
    """What `bg status` prints for a fixture: `bg: error:` / `bg: hint:` lines."""
    args, params = overrides(case)
    try:
        load(case, args=args, params=params)
    except BuildfileError as error:
        return "".join(
            f"bg: error: {p.render()}\n" + (f"bg: hint: {p.hint}\n" if p.hint else "") for p in error.problems
        )
    except BgError as error:
        return f"bg: error: {error.message}\n" + (f"bg: hint: {error.hint}\n" if error.hint else "")
    return ""


def problems(text: str, **kw: dict[str, str]) -> list[str]:
    return [p.render() for p in analyse(text, **kw).problems]  # type: ignore[arg-type]


def test_there_are_enough_error_fixtures() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES)
def test_error_fixture(case: str) -> None:
    expected = (FIXTURES / case / "expected.txt").read_text()
    assert expected, "a fixture must expect at least one problem"
    assert stderr_of(FIXTURES / case) == expected


# A complete, valid Buildfile --------------------------------------------------------------------

FULL = """
[project]
name = "cifar10"
executor = "docker"
link = "copy"
keep_runs = 3

[args]
PYTORCH = "2.5.1"
CUDA = 12.4

[params]
epochs = 2
lr = 0.01
fast = false
model = { default = "lenet", choices = ["lenet", "resnet"], help = "network" }
batch = { default = 64, type = "float" }

[stages.base]
from = "pytorch/pytorch:${PYTORCH}-cuda${CUDA}-cudnn9-runtime"
description = "the framework"

[stages.deps]
from = "base"
env = { DEBIAN_FRONTEND = "noninteractive", THREADS = 2 }
run = "pip install matplotlib"
copy = [{ src = ["./requirements.txt", "conf//*.yaml"], dest = "/opt/bg/", chown = "1000:1000" }]
ignore = ".dockerignore"
workdir = "/opt/bg/./x/.."
user = "1000:1000"
entrypoint = "python3 -u"
cmd = ["stages/train.py", "--help"]
labels = { "org.opencontainers.image.title" = "cifar10" }
secrets = ["PIP_TOKEN"]

[stages.offline]
from = { debian = "bookworm", packages = ["python3-numpy", "python3-torch=2.1.2-1"] }

[stages.train]
image = "deps"
command = ["python3", "stages/train.py", "--name", "my run",
           "--epochs", "${params.epochs}", "--lr", "${params.lr}"]
inputs = ["stages/train.py", "./data//", "data/"]
outputs = ["model.pt", "curves/", "metrics.json"]
env = { OMP_NUM_THREADS = "2", LITERAL = "$${HOME}" }
gpus = "all"
network = true
timeout = "1h30m"
metrics = "metrics.json"
shm_size = "2G"
secrets = ["WANDB_API_KEY"]
description = "Train the network"

[stages.report]
command = "python3 -c 'print(1)' > report.md # ${params.fast} $HOME"
inputs = ["model.pt", "curves/loss.png"]
outputs = ["report.md"]
"""


def full_spec() -> object:
    return parse(FULL)


def test_project_fields() -> None:
    spec = parse(FULL)
    assert (spec.name, spec.executor, spec.link, spec.keep_runs) == ("cifar10", "docker", "copy", 3)
    assert list(spec.stages) == ["base", "deps", "offline", "train", "report"]


def test_args_are_strings_and_numbers_become_strings() -> None:
    assert parse(FULL).args == (("PYTORCH", "2.5.1"), ("CUDA", "12.4"))


def test_param_types_come_from_values_or_declarations() -> None:
    spec = parse(FULL)
    assert spec.param("epochs") == Param("epochs", 2, "int")
    assert spec.param("lr") == Param("lr", 0.01, "float")
    assert spec.param("fast") == Param("fast", False, "bool")
    assert spec.param("model") == Param("model", "lenet", "str", ("lenet", "resnet"), "network")
    assert spec.param("batch") == Param("batch", 64.0, "float")


def test_image_stage_fields() -> None:
    spec = parse(FULL)
    base, deps, offline = spec.stages["base"], spec.stages["deps"], spec.stages["offline"]
    assert isinstance(base, ImageStage) and isinstance(deps, ImageStage) and isinstance(offline, ImageStage)
    assert base.base == ImageRef("pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime")
    assert base.args_used == ("CUDA", "PYTORCH") and base.description == "the framework"
    assert deps.base == StageRef("base")
    assert deps.env == (("DEBIAN_FRONTEND", "noninteractive"), ("THREADS", "2"))
    assert deps.run == ("pip install matplotlib",)
    assert deps.copy == (Copy(("requirements.txt", "conf/*.yaml"), "/opt/bg/", "1000:1000"),)
    assert (deps.ignore, deps.workdir, deps.user) == (".dockerignore", "/opt/bg", "1000:1000")
    assert deps.entrypoint == ("python3 -u",)  # a string is shell form: one element
    assert deps.cmd == ("stages/train.py", "--help")  # a list is exec form
    assert deps.labels == (("org.opencontainers.image.title", "cifar10"),)
    assert deps.secrets == ("PIP_TOKEN",) and deps.args_used == ()
    assert offline.base == DebianBase("bookworm", ("python3-numpy", "python3-torch=2.1.2-1"))


def test_run_stage_fields() -> None:
    train = parse(FULL).stages["train"]
    assert isinstance(train, RunStage)
    assert train.command == "python3 stages/train.py --name 'my run' --epochs 2 --lr 0.01"
    assert train.inputs == ("stages/train.py", "data")  # normalised, duplicates dropped
    assert train.outputs == (Output("model.pt"), Output("curves", is_dir=True), Output("metrics.json"))
    assert train.env == (("OMP_NUM_THREADS", "2"), ("LITERAL", "${HOME}"))
    assert (train.gpus, train.network, train.timeout, train.metrics) == ("all", True, 5400.0, "metrics.json")
    assert (train.shm_size, train.secrets, train.description) == (
        "2g",
        ("WANDB_API_KEY",),
        "Train the network",
    )
    assert train.params_used == ("epochs", "lr") and train.args_used == ()
    assert train.image == "deps"


def test_params_used_are_recorded_per_stage_and_shell_variables_survive() -> None:
    report = parse(FULL).stages["report"]
    assert isinstance(report, RunStage)
    assert report.params_used == ("fast",) and report.image == ""
    assert report.command.endswith("# false $HOME")


# Params and args from the command line ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("epochs", "3", 3),
        ("lr", "1e-3", 0.001),
        ("lr", "2", 2.0),
        ("fast", "TRUE", True),
        ("model", "resnet", "resnet"),
    ],
)
def test_param_overrides_are_coerced(name: str, text: str, value: object) -> None:
    spec = parse(FULL, params={name: text})
    assert spec.param(name).value == value and type(spec.param(name).value) is type(value)


def test_param_override_reaches_the_command() -> None:
    train = parse(FULL, params={"epochs": "7"}).stages["train"]
    assert isinstance(train, RunStage) and "--epochs 7" in train.command


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epochs": "abc"}, '--param epochs=abc: expected an int, got "abc"'),
        ({"epochs": "2.5"}, '--param epochs=2.5: expected an int, got "2.5"'),
        ({"fast": "yes"}, '--param fast=yes: expected true or false, got "yes"'),
        ({"lr": "x"}, '--param lr=x: expected a float, got "x"'),
        ({"model": "vgg"}, '--param model=vgg: "vgg" is not one of the choices'),
        ({"epoch": "1"}, "--param epoch=1: no param named 'epoch' in [params]"),
    ],
)
def test_bad_param_overrides(params: dict[str, str], message: str) -> None:
    assert problems(FULL, params=params) == [message]


def test_arg_override_changes_the_base_and_unknown_args_are_reported() -> None:
    base = parse(FULL, args={"PYTORCH": "2.6.0"}).stages["base"]
    assert isinstance(base, ImageStage) and base.base == ImageRef(
        "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"
    )
    assert problems(FULL, args={"PYTORC": "1"}) == ["--arg PYTORC=1: no arg named 'PYTORC' in [args]"]


# Interpolation --------------------------------------------------------------------------------


def run_stage(body: str, params: str = "", args: str = "") -> RunStage:
    stage = parse(f"{HEAD}[args]\n{args}\n[params]\n{params}\n[stages.s]\n{body}").stages["s"]
    assert isinstance(stage, RunStage)
    return stage


def test_interpolation_everywhere_and_literal_dollar_brace() -> None:
    stage = run_stage(
        'command = "echo $${X} ${A}"\ninputs = ["in/${A}.csv"]\noutputs = ["out/${params.p}/"]\n'
        'env = { K = "${params.f}" }',
        params="p = 1.5\nf = true",
        args='A = "v"',
    )
    assert stage.command == "echo ${X} v"
    assert stage.inputs == ("in/v.csv",) and stage.outputs == (Output("out/1.5", is_dir=True),)
    assert stage.env == (("K", "true"),)
    assert (stage.args_used, stage.params_used) == (("A",), ("f", "p"))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ('"${NOPE}"', "undefined arg '${NOPE}'"),
        ('"${params.nope}"', "undefined param '${params.nope}'"),
        ('"${a b}"', "invalid reference '${a b}'"),
        ('"${open"', "unterminated reference '${open'"),
    ],
)
def test_bad_references_are_located_at_the_field(command: str, message: str) -> None:
    assert problems(f"{HEAD}[stages.s]\ncommand = {command}") == [
        f"Buildfile.toml: stages.s.command: {message}"
    ]


# Paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path", "is_dir"),
    [
        ("./a//b/", "a/b", True),
        ("a/./b", "a/b", False),
        ("a/../b", "b", False),
        (".hidden", ".hidden", False),
    ],
)
def test_paths_are_normalised(raw: str, path: str, is_dir: bool) -> None:
    assert run_stage(f'command = "x"\noutputs = ["{raw}"]').outputs == (Output(path, is_dir),)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty path"),
        ("/abs", '"/abs" is an absolute path'),
        ("~/x", "\"~/x\": '~' is not expanded"),
        ("a/../..", '"a/../.." points outside the project'),
        ("a\\\\b", '"a\\\\b" contains a backslash'),
        (".", '"." is the project root itself'),
        (".bg/cache", '".bg/cache" is inside .bg/, buildgraph\'s own state'),
        ("data/*.csv", '"data/*.csv": wildcards are not allowed here'),
        (" a", '" a" starts or ends with spaces'),
    ],
)
def test_bad_paths(raw: str, message: str) -> None:
    assert problems(f'{HEAD}[stages.s]\ncommand = "x"\ninputs = ["{raw}"]') == [
        f"Buildfile.toml: stages.s.inputs[0]: {message}"
    ]


# Values of run stages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "gpus"), [("0", None), ("2", 2), ('"all"', "all"), ("[0, 3]", (0, 3)), ("[]", None)]
)
def test_gpus(toml: str, gpus: object) -> None:
    assert run_stage(f'command = "x"\ngpus = {toml}').gpus == gpus


@pytest.mark.parametrize(
    ("toml", "seconds"), [("90", 90.0), ("1.5", 1.5), ('"30s"', 30.0), ('"90m"', 5400.0), ('"2h"', 7200.0),
                          ('"1h30m"', 5400.0), ('"45"', 45.0), ('"1d"', 86400.0)]
)  # fmt: skip
def test_timeouts(toml: str, seconds: float) -> None:
    assert run_stage(f'command = "x"\ntimeout = {toml}').timeout == seconds


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "gpus = true",
            'stages.s.gpus: expected "all", an integer or a list of integers, got a boolean true',
        ),
        ("gpus = [1, 1]", "stages.s.gpus: expected a list of distinct GPU ids, got a list"),
        (
            "timeout = true",
            'stages.s.timeout: expected a number of seconds or a duration such as "90m", got a boolean true',
        ),
        ('timeout = "-5m"', 'stages.s.timeout: invalid duration "-5m"'),
        ("network = 1", "stages.s.network: expected true or false, got an integer 1"),
        (
            'secrets = ["bad-name"]',
            'stages.s.secrets[0]: expected a name (letters, digits, _), got a string "bad-name"',
        ),
        ('command = ""', "stages.s.command: empty command"),
        ("command = 3", "stages.s.command: expected a string, got an integer 3"),
        ('env = { "BAD NAME" = "1" }', 'stages.s.env."BAD NAME": invalid name'),
        ("env = { A = [1] }", "stages.s.env.A: expected a string or a number, got a list"),
        ("description = 1979-05-27", "stages.s.description: expected a string, got a date/time"),
    ],
)
def test_bad_run_stage_values(toml: str, message: str) -> None:
    body = toml if toml.startswith("command") else f'command = "x"\n{toml}'
    assert problems(f"{HEAD}[stages.s]\n{body}") == [f"Buildfile.toml: {message}"]


def test_command_list_is_shell_quoted() -> None:
    assert run_stage('command = ["echo", "a b", "$x"]').command == "echo 'a b' '$x'"


def test_image_from_resolution_prefers_declared_stages() -> None:
    spec = parse(f'{HEAD}[stages.ubuntu]\nfrom = "ubuntu:24.04"\n[stages.app]\nfrom = "ubuntu"\n'
                 '[stages.reg]\nfrom = "ghcr.io/org/img@sha256:' + "a" * 64 + '"\n')  # fmt: skip
    assert spec.stages["app"].base == StageRef("ubuntu")  # type: ignore[union-attr]
    assert spec.stages["reg"].base == ImageRef("ghcr.io/org/img@sha256:" + "a" * 64)  # type: ignore[union-attr]


# Whole-file behaviour ---------------------------------------------------------------------------


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = f'{HEAD}[stages.a]\ncommand = 1\n[stages.b]\ncommand = "x"\ngpus = "x"\n[stages.c]\nfrom = ""\n'
    assert [p.split(": ")[1] for p in problems(text)] == [
        "stages.a.command",
        "stages.b.gpus",
        "stages.c.from",
    ]


def test_parse_raises_buildfile_error_with_all_problems() -> None:
    with pytest.raises(BuildfileError) as caught:
        parse(f"{HEAD}[stages.a]\ncommand = 1\n[stages.b]\ncommand = 2\n", file="other.toml")
    assert [p.where for p in caught.value.problems] == ["stages.a.command", "stages.b.command"]
    assert caught.value.problems[0].file == "other.toml" and caught.value.exit_status == 2


def test_syntax_error_located_by_line_and_column() -> None:
    assert problems('[project]\nname = "x"\n\n[stages.a]\ncommand = "x\n') == [
        "Buildfile.toml:5:13: illegal character '\\n'"
    ]


def test_syntax_error_hint_for_an_unclosed_string() -> None:
    problem = analyse('[project]\nname = "x\n').problems[0]
    assert '"""' in problem.hint


def test_duplicate_key_reported_at_end_of_document_is_located() -> None:
    assert problems('[project]\nname = "x"\nname = "y"') == ["Buildfile.toml:3:1: duplicate key 'name'"]


def test_byte_order_mark_is_accepted() -> None:
    assert parse('\ufeff[project]\nname = "x"\n[stages.a]\ncommand = "x"\n').name == "x"


def test_missing_buildfile_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        load(tmp_path)
    assert "bg init" in caught.value.hint


def test_non_utf8_buildfile_is_located(tmp_path: Path) -> None:
    (tmp_path / "Buildfile.toml").write_bytes(b'[project]\nname = "\xff"\n')
    with pytest.raises(BuildfileError) as caught:
        load(tmp_path)
    assert caught.value.problems[0].render() == "Buildfile.toml:2:9: not valid UTF-8"


def test_inputs_made_by_other_stages_need_not_exist(tmp_path: Path) -> None:
    (tmp_path / "Buildfile.toml").write_text(
        f'{HEAD}[stages.a]\ncommand = "x"\noutputs = ["out/"]\n'
        '[stages.b]\ncommand = "x"\ninputs = ["out/x.csv"]\n'
        '[stages.img]\nfrom = "python:3"\ncopy = [{ src = "out/*.csv", dest = "/d/" }]\n'
    )
    assert list(load(tmp_path).stages) == ["a", "b", "img"]


def test_parse_and_validate_scale_linearly() -> None:
    def stage(i: int) -> str:
        upstream = f', "o{i - 1}/"' if i else ""
        return f'[stages.s{i}]\ncommand = "python3 s{i}.py ${{params.e}}"\ninputs = ["s{i}.py"{upstream}]\n'

    def text(n: int) -> str:
        return f"{HEAD}[params]\ne = 1\n" + "".join(stage(i) + f'outputs = ["o{i}/"]\n' for i in range(n))

    def calls(source: str) -> int:
        """Python and builtin calls made parsing `source`: work counted, not timed (the machine's
        load cannot fail this test; bench/test_bench.py times the same workload by hand)."""
        count = 0

        def profile(frame: object, event: str, arg: object) -> None:
            nonlocal count
            count += event in ("call", "c_call")

        sys.setprofile(profile)
        try:
            parse(source)
        finally:
            sys.setprofile(None)
        return count

    small, large = calls(text(250)), calls(text(1000))
    assert large < 5 * small, (small, large)  # linear is 4×; quadratic would be 16×


def test_documented_quickstart_really_works(tmp_path: Path) -> None:
    """docs/examples/quickstart.toml: each command, run in order as `sh -c`, makes its outputs."""
    import subprocess

    from buildgraph.core.graph import Graph

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "quickstart.toml"
    spec = parse(example.read_text(), params={"epochs": "100"})
    for name in Graph(spec).order():
        stage = spec.stages[name]
        assert isinstance(stage, RunStage)
        subprocess.run(["sh", "-c", stage.command], cwd=tmp_path, check=True, timeout=60)
        assert all((tmp_path / output.path).exists() for output in stage.outputs), name
    assert "Fitted y = 3.0" in (tmp_path / "report.md").read_text()
