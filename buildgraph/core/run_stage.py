"""Run stages (`[stages.NAME]` with `command`): their keys, declared in `RUN_STAGE`, and the
readers of the values peculiar to them (command, inputs and outputs, GPUs, durations, sizes)."""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

from buildgraph.core import values as v
from buildgraph.core.forms import (
    BOOLEAN,
    DESCRIPTION_KEY,
    ENV_KEY,
    PATH,
    PATH_ITEMS,
    SECRETS_KEY,
    TEXT,
    Fields,
    Form,
    Key,
    Table,
    interpolated,
)
from buildgraph.core.interpolate import Issue
from buildgraph.core.spec import Output, RunStage

__all__ = ["RUN_STAGE", "check_always_frozen", "check_metrics"]

# The schema's patterns are made from these: they are written for JSON Schema too (no flags).
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+|[0-9]+(?:\.[0-9]+)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[bkmgBKMG]|[kmgKMG][iI]?[bB])?")
_GPUS = '"all", an integer or a list of integers'


def _command(f: Fields, where: str, value: object) -> str:
    if isinstance(value, list) and value and isinstance(value[0], str) and any(c.isspace() for c in value[0]):
        # A list is one argv: `["python a.py", "python b.py"]` would run a program named "python a.py".
        raise f.fail(
            where,
            Issue(
                f"a command list is one program and its arguments, and {v.show(value[0])} is not a program",
                "for commands run one after the other write commands = [...]; for one program, split its"
                ' arguments: ["python", "a.py"]',
            ),
        )
    command = shlex.join(f.texts(where, value)) if isinstance(value, list) else f.text(where, value)
    if not command.strip():
        raise f.fail(where, Issue("empty command", "write the shell command this stage runs"))
    return command


def _commands(f: Fields, where: str, value: object) -> str:
    """Shell commands run in turn: joined by newlines under `sh -e`, the first failure stops them."""
    commands = f.each(where, value, lambda at, item: _command(f, at, item), "a list of shell commands")
    if not commands:
        raise f.fail(where, Issue("empty list", "write the shell commands this stage runs, in order"))
    return "\n".join(commands)


def _inputs(f: Fields, where: str, value: object) -> tuple[str, ...]:
    return tuple(dict.fromkeys(path for path, _ in f.each(where, value, f.path, "a list of paths")))


def _outputs(f: Fields, where: str, value: object) -> tuple[Output, ...]:
    outputs = f.each(where, value, f.path, "a list of paths")
    return tuple(dict.fromkeys(Output(path, is_dir) for path, is_dir in outputs))


def _gpus(f: Fields, where: str, value: object) -> str | int | tuple[int, ...] | None:
    if value == "all":
        return "all"
    if v.is_int(value):
        f.check(value, where, value >= 0, "a number of GPUs ≥ 0")
        return value or None  # 0 and "not set" are the same request, and the same key
    f.check(value, where, isinstance(value, list), _GPUS)
    ids: tuple[int, ...] = f.each(where, value, lambda at, item: _gpu_id(f, at, item))
    f.check(value, where, len(set(ids)) == len(ids), "a list of distinct GPU ids")
    return ids or None


def _gpu_id(f: Fields, where: str, value: object) -> int:
    f.check(value, where, v.is_int(value) and value >= 0, "a GPU id ≥ 0")
    assert isinstance(value, int)
    return value


def _timeout(f: Fields, where: str, value: object) -> float:
    if v.is_number(value):
        f.check(value, where, 0 <= value < math.inf, "a number of seconds ≥ 0 (0 = no timeout)")
        return float(value)
    f.check(value, where, isinstance(value, str), 'a number of seconds or a duration such as "90m"')
    text = f.text(where, value)
    if not _DURATION.fullmatch(text):
        raise f.fail(
            where,
            Issue(f"invalid duration {v.show(text)}", 'write seconds (3600) or "30s", "90m", "2h", "1h30m"'),
        )
    parts = _DURATION_PART.findall(text)
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in parts) if parts else float(text)


def _shm_size(f: Fields, where: str, value: object) -> str:
    if v.is_int(value):
        f.check(value, where, value > 0, "a size > 0")
        return str(value)
    return f.pattern(where, value, _SIZE, 'a size such as "2g" or "512m"').lower()


def check_metrics(f: Fields, stage: RunStage) -> None:
    """`metrics` is an output file, or a file inside an output directory (`eval/metrics.json`)."""
    inside = any(o.is_dir and stage.metrics.startswith(o.path + "/") for o in stage.outputs)
    if stage.metrics and Output(stage.metrics) not in stage.outputs and not inside:
        declared = ", ".join(v.show(o.path + "/" if o.is_dir else o.path) for o in stage.outputs) or "none"
        f.out.add(
            v.at(f.where, "metrics"),
            f"{v.show(stage.metrics)} is not one of the outputs (a file)",
            f"add it to outputs, or put it inside an output directory; declared outputs: {declared}",
        )


def check_always_frozen(f: Fields, stage: RunStage) -> None:
    if stage.always and stage.frozen:
        f.out.add(
            v.at(f.where, "frozen"),
            "a stage cannot be both `always` (run every time) and `frozen` (never rerun)",
            "remove one of them",
        )


_COMMAND: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ]
}
_GPUS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"const": "all"},
        {"type": "integer", "minimum": 0},
        {"type": "array", "items": {"type": "integer", "minimum": 0}, "uniqueItems": True},
    ]
}
_TIMEOUT: dict[str, Any] = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": interpolated(_DURATION)}]
}
_SHM_SIZE: dict[str, Any] = {
    "anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "string", "pattern": interpolated(_SIZE)}]
}
_PARAMS_FILE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "file": {"type": "string", "description": "A YAML (.yaml, .yml), JSON or TOML file of the project."},
        "keys": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "description": "Dotted names of the values the stage reads (train.lr): its key holds only these.",
        },
    },
    "required": ["file", "keys"],
    "additionalProperties": False,
}
_PARAMS_FILES: dict[str, Any] = {"anyOf": [_PARAMS_FILE, {"type": "array", "items": _PARAMS_FILE}]}
_MATRIX: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
    "additionalProperties": {
        "type": "array",
        "minItems": 1,
        "items": {"type": ["string", "integer", "boolean"], "pattern": "^[A-Za-z0-9_.-]+$"},
    },
}
RUN_STAGE = Table(
    (
        Key(
            "image",
            Form({"type": "string", "pattern": interpolated(v.STAGE_NAME)}, TEXT.read),
            "The image stage to run in; leave it out to run on the host.",
        ),
        Key(
            "command",
            Form(_COMMAND, _command),
            "The command, run with `sh -e -c` (stops at the first failing line) in the project root."
            " A list is ONE program and its arguments, shell-quoted and joined.",
        ),
        Key(
            "inputs",
            Form(PATH_ITEMS, _inputs),
            "Files and directories the command reads. A path equal to, inside or around another stage's"
            " output makes that stage an upstream of this one.",
        ),
        Key(
            "outputs",
            Form(PATH_ITEMS, _outputs),
            "Files and directories (trailing '/') the command writes. A path belongs to one stage's"
            " outputs only.",
        ),
        ENV_KEY,
        Key(
            "gpus",
            Form(_GPUS_SCHEMA, _gpus),
            'GPUs the stage needs: 0 (default), "all", a number, or a list of device ids.',
        ),
        Key("network", BOOLEAN, "Whether the command may use the network (containers only)."),
        Key(
            "timeout",
            Form(_TIMEOUT, _timeout),
            'Seconds, or a duration such as "30s", "90m", "2h", "1h30m". 0 = none.',
        ),
        Key(
            "metrics",
            PATH,
            "A JSON file of numbers shown by `bg metrics`: one of `outputs`, or inside an output directory.",
        ),
        Key(
            "shm_size",
            Form(_SHM_SIZE, _shm_size),
            'Shared memory size for the container, e.g. "2g" (PyTorch data loaders need it).',
        ),
        SECRETS_KEY,
        DESCRIPTION_KEY,
        Key(
            "commands",
            Form({"type": "array", "items": _COMMAND, "minItems": 1}, _commands),
            "Shell commands run one after the other, stopping at the first that fails (DVC's `cmd` list);"
            " instead of `command`.",
            field="command",
        ),
        Key(
            "params",
            Form(_PARAMS_FILES),  # read before the other keys (stages.py): their strings may name its values
            "Values read from a YAML, JSON or TOML file by dotted key, used as ${params.train.lr}. The key"
            " holds only these values: editing another key of the file reruns nothing. The command sees the"
            " file.",
        ),
        Key(
            "matrix",
            Form(_MATRIX),  # expanded before the stage is read (core/matrix.py)
            'One stage per combination of values: matrix = { model = ["lenet", "resnet"] } makes'
            " train-lenet and train-resnet; ${matrix.model} is replaced in every string of the stage.",
        ),
        Key(
            "always",
            BOOLEAN,
            "Run at every `bg run`, even when nothing changed (e.g. fetching the latest data).",
        ),
        Key(
            "frozen",
            BOOLEAN,
            "Never rerun once recorded: its recorded outputs stay (restored if missing), whatever changed.",
        ),
    ),
    RunStage,
    one_of=("command", "commands"),
    name="run_stage",
    title="run stage",
    doc="A run stage (it has `command`): a command that reads its declared inputs and writes its declared"
    " outputs, in an image stage's image or on the host.",
)
