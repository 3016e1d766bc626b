"""`[stages.NAME]` tables → `ImageStage` / `RunStage`, interpolated, with every problem recorded.

A stage with `from` is an image stage, one with `command` a run stage. Each key has a reader
that returns the field's value or records a problem and raises `_Skip`; a skipped field keeps
its default so that the rest of the stage, and the graph checks after it, still run.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from buildgraph.core import values as v
from buildgraph.core.interpolate import ARG_NAME, Expander, Issue
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
from buildgraph.core.suggest import closest

# fmt: off
IMAGE_KEYS = ("from", "env", "run", "copy", "ignore", "workdir", "user", "entrypoint", "cmd", "labels",
              "secrets", "description")
RUN_KEYS = ("image", "command", "inputs", "outputs", "env", "gpus", "network", "timeout", "metrics",
            "shm_size", "secrets", "description")
# fmt: on
COPY_KEYS = ("src", "dest", "chown")
DEBIAN_KEYS = ("debian", "packages", "mirror")

_DOMAIN = (
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::\w[\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?")
_SUITE = re.compile(r"[a-z][a-z0-9.-]*")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*(?:=\S+)?")
_MIRROR = re.compile(r"(?:https?|file)://\S+")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+|[0-9]+(?:\.[0-9]+)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[bkmg]|[kmg]i?b)?", re.I)
_GPUS = '"all", an integer or a list of integers'


class _Skip(Exception):
    """A field's value is invalid; its problem is already recorded."""


def read_stages(
    table: object, out: v.Problems, args: Mapping[str, str], params: Mapping[str, ParamValue]
) -> dict[str, Stage]:
    if table is None or table == {}:
        out.add(
            "stages", "no stages declared", 'add a [stages.NAME] table with command = "..." or from = "..."'
        )
        return {}
    if not out.expect_table(table, "stages"):
        return {}
    assert isinstance(table, dict)
    stages: dict[str, Stage] = {}
    for name, body in table.items():
        where = v.at("stages", name)
        if not v.STAGE_NAME.fullmatch(name):
            out.add(where, "invalid stage name", f"use {v.NAME_RULE}")
        if out.expect_table(body, where):
            stages[name] = _read_stage(
                _Fields(out, where, name, table, args, params, "command" in body), body
            )
    return stages


class _Fields:
    """Typed, interpolated access to one stage's values; problems go to `out`."""

    def __init__(
        self,
        out: v.Problems,
        where: str,
        name: str,
        all_stages: Mapping[str, object],
        args: Mapping[str, str],
        params: Mapping[str, ParamValue],
        is_run: bool,
    ) -> None:
        self.out, self.where, self.name, self.all_stages = out, where, name, all_stages
        self.expander = Expander(args, params, params_allowed=is_run)
        self.templates: dict[str, str] | None = None if is_run else {}  # see ImageStage.templates

    def fail(self, where: str, issue: Issue) -> _Skip:
        self.out.add_issue(where, issue)
        return _Skip()

    def check(self, value: object, where: str, ok: object, expected: str, hint: str = "") -> None:
        """Record a type error and skip the field unless `ok`."""
        if not self.out.expect(value, where, ok, expected, hint):
            raise _Skip()

    def text(self, where: str, value: object, numbers: bool = False) -> str:
        if isinstance(value, str):
            if "$" not in value:  # fast path: most strings hold no reference
                return value
        else:
            expected = "a string or a number" if numbers else "a string"
            self.check(value, where, numbers and v.is_number(value), expected)
        expanded, issues = self.expander.expand(v.scalar_text(value))
        for issue in issues:
            self.out.add_issue(where, issue)
        if issues:
            raise _Skip()
        if self.templates is not None and isinstance(value, str):
            self.templates[where.removeprefix(self.where + ".")] = value
        return expanded

    def each(
        self,
        where: str,
        value: object,
        read: Callable[[str, object], Any],
        what: str = "a list",
        single: bool = False,
    ) -> tuple[Any, ...]:
        """A list (`what`) read item by item, every item checked; with `single`, a string is
        accepted in place of a one-item list."""
        if single and not isinstance(value, list):
            self.check(value, where, isinstance(value, str), f"a string or {what}")
            return (read(where, value),)
        example = f"write [{v.show(value)}]" if isinstance(value, str) else ""
        self.check(value, where, isinstance(value, list), what, example)
        assert isinstance(value, list)
        results, failed = [], False
        for index, item in enumerate(value):
            try:
                results.append(read(f"{where}[{index}]", item))
            except _Skip:
                failed = True
        if failed:
            raise _Skip()
        return tuple(results)

    def texts(self, where: str, value: object, single: bool = False) -> tuple[str, ...]:
        return self.each(where, value, self.text, "a list of strings", single)

    def mapping(
        self, where: str, value: object, key_rule: re.Pattern[str] | None
    ) -> tuple[tuple[str, str], ...]:
        self.check(value, where, isinstance(value, dict), "a table", 'e.g. { NAME = "value" }')
        assert isinstance(value, dict)
        failed, result = False, []
        for key, item in value.items():
            try:
                if key_rule is not None and not key_rule.fullmatch(key):
                    raise self.fail(v.at(where, key), Issue("invalid name", "use letters, digits and _"))
                result.append((key, self.text(v.at(where, key), item, numbers=True)))
            except _Skip:
                failed = True
        if failed:
            raise _Skip()
        return tuple(result)

    def names(self, where: str, value: object) -> tuple[str, ...]:
        def name(at: str, item: object) -> str:
            self.check(
                item, at, isinstance(item, str) and ARG_NAME.fullmatch(item), "a name (letters, digits, _)"
            )
            return str(item)

        return tuple(dict.fromkeys(self.each(where, value, name, "a list of names")))

    def path(self, where: str, value: object, globs: bool = False) -> tuple[str, bool]:
        result = v.project_path(self.text(where, value), globs)
        if isinstance(result, Issue):
            raise self.fail(where, result)
        return result

    def container_path(self, where: str, value: object) -> str:
        result = v.container_path(self.text(where, value))
        if isinstance(result, Issue):
            raise self.fail(where, result)
        return result

    def pattern(self, where: str, value: object, rule: re.Pattern[str], expected: str) -> str:
        text = self.text(where, value)
        self.check(text, where, rule.fullmatch(text), expected)
        return text


def _read_stage(f: _Fields, body: dict[str, Any]) -> Stage:
    has_from, has_command = "from" in body, "command" in body
    if has_from and has_command:
        f.out.add(
            f.where,
            "has both `from` (an image stage) and `command` (a run stage)",
            f'split it in two: an image stage with `from`, and a run stage with image = "{f.name}"',
        )
    elif not has_from and not has_command:
        f.out.add(
            f.where,
            "has neither `from` (an image stage) nor `command` (a run stage)",
            'add from = "base-image" to build an image, or command = "..." to run something',
        )
    if has_from:
        f.out.unknown_keys(
            body, f.where, IMAGE_KEYS + (RUN_KEYS if has_command else ()), _elsewhere(RUN_KEYS, "run")
        )
        return _build(ImageStage, f, body, _IMAGE_READERS, name=f.name, base=ImageRef(""))
    f.out.unknown_keys(body, f.where, RUN_KEYS, _elsewhere(IMAGE_KEYS, "image"))
    stage = _build(RunStage, f, body, _RUN_READERS, name=f.name, command="")
    _check_metrics(f, stage)
    return stage


def _elsewhere(keys: tuple[str, ...], kind: str) -> Callable[[str, object], str]:
    marker = "`command`" if kind == "run" else "`from`"
    return lambda key, _value: (
        f"'{key}' belongs to {kind} stages (those with {marker})" if key in keys else ""
    )


Reader = Callable[[_Fields, str, object], Any]
S = TypeVar("S", ImageStage, RunStage)


def _build(
    cls: type[S], f: _Fields, body: dict[str, Any], readers: dict[str, tuple[str, Reader]], **kw: Any
) -> S:
    for key, value in body.items():
        reader = readers.get(key)
        if reader is None:
            continue  # an unknown key, already reported
        field_name, read = reader
        try:
            kw[field_name] = read(f, f"{f.where}.{key}", value)  # known keys are bare: no quoting
        except _Skip:
            continue  # recorded; the field keeps its default
    kw["args_used"] = tuple(sorted(f.expander.args_used))
    if f.templates:
        kw["templates"] = tuple(f.templates.items())
    if cls is RunStage:
        kw["params_used"] = tuple(sorted(f.expander.params_used))
    return cls(**kw)


# Image stages ---------------------------------------------------------------------------------


def _base(f: _Fields, where: str, value: object) -> object:
    if isinstance(value, dict):
        return _debian(f, where, value)
    f.check(
        value, where, isinstance(value, str), "an image reference, a stage name or a table {debian, packages}"
    )
    ref = f.text(where, value)
    if ref in f.all_stages:  # like Dockerfile `FROM x AS y`: a declared stage name wins
        return StageRef(ref)
    if not ref:
        raise f.fail(where, Issue("empty `from`", 'name a base image ("python:3.12-slim") or an image stage'))
    if not IMAGE_REF.fullmatch(ref):
        if IMAGE_REF.fullmatch(ref.lower()):
            raise f.fail(
                where, Issue(f"{v.show(ref)}: image names are lowercase", f"write {v.show(ref.lower())}")
            )
        match = closest(ref, f.all_stages)
        hint = (
            f"did you mean the stage '{match}'?"
            if match
            else "e.g. python:3.12-slim or ghcr.io/org/image:tag"
        )
        raise f.fail(
            where, Issue(f"{v.show(ref)} is neither a stage of this Buildfile nor an image reference", hint)
        )
    return ImageRef(ref)


def _debian(f: _Fields, where: str, table: dict[str, Any]) -> DebianBase:
    f.out.unknown_keys(table, where, DEBIAN_KEYS)
    if "debian" not in table:
        raise f.fail(v.at(where, "debian"), Issue("missing (the Debian suite)", 'e.g. debian = "bookworm"'))
    suite = f.pattern(v.at(where, "debian"), table["debian"], _SUITE, 'a Debian suite such as "bookworm"')
    packages = f.each(
        v.at(where, "packages"),
        table.get("packages", []),
        lambda at, item: f.pattern(at, item, _PACKAGE, "a Debian package name"),
        "a list of package names",
    )
    mirror = f.pattern(v.at(where, "mirror"), table["mirror"], _MIRROR, "a URL") if "mirror" in table else ""
    return DebianBase(suite, packages, mirror)


def _copy_entry(f: _Fields, where: str, value: object) -> Copy:
    f.check(value, where, isinstance(value, dict), 'a table { src = ..., dest = "/..." }')
    assert isinstance(value, dict)
    f.out.unknown_keys(value, where, COPY_KEYS)
    for key in ("src", "dest"):
        if key not in value:
            raise f.fail(v.at(where, key), Issue("missing", 'e.g. { src = ["stages/"], dest = "/opt/app/" }'))
    sources = f.each(
        v.at(where, "src"),
        value["src"],
        lambda at, item: f.path(at, item, globs=True)[0],
        "a list of paths",
        single=True,
    )
    if not sources:
        raise f.fail(v.at(where, "src"), Issue("no sources", "list the files or directories to copy"))
    dest = f.container_path(v.at(where, "dest"), value["dest"])
    chown = f.pattern(v.at(where, "chown"), value["chown"], _USER, "user[:group]") if "chown" in value else ""
    return Copy(sources, dest, chown)


_IMAGE_READERS: dict[str, tuple[str, Reader]] = {
    "from": ("base", _base),
    "env": ("env", lambda f, at, x: f.mapping(at, x, ARG_NAME)),
    "run": ("run", lambda f, at, x: f.texts(at, x, single=True)),
    "copy": (
        "copy",
        lambda f, at, x: f.each(at, x, lambda a, item: _copy_entry(f, a, item), "a list of tables"),
    ),
    "ignore": ("ignore", lambda f, at, x: f.path(at, x)[0]),
    "workdir": ("workdir", lambda f, at, x: f.container_path(at, x)),
    "user": ("user", lambda f, at, x: f.pattern(at, x, _USER, "user[:group] (names or ids)")),
    "entrypoint": ("entrypoint", lambda f, at, x: f.texts(at, x, single=True)),
    "cmd": ("cmd", lambda f, at, x: f.texts(at, x, single=True)),
    "labels": ("labels", lambda f, at, x: f.mapping(at, x, None)),
    "secrets": ("secrets", lambda f, at, x: f.names(at, x)),
    "description": ("description", lambda f, at, x: f.text(at, x)),
}


# Run stages -----------------------------------------------------------------------------------


def _command(f: _Fields, where: str, value: object) -> str:
    command = shlex.join(f.texts(where, value)) if isinstance(value, list) else f.text(where, value)
    if not command.strip():
        raise f.fail(where, Issue("empty command", "write the shell command this stage runs"))
    return command


def _outputs(f: _Fields, where: str, value: object) -> tuple[Output, ...]:
    outputs = f.each(where, value, f.path, "a list of paths")
    return tuple(dict.fromkeys(Output(path, is_dir) for path, is_dir in outputs))


def _gpus(f: _Fields, where: str, value: object) -> str | int | tuple[int, ...] | None:
    if value == "all":
        return "all"
    if v.is_int(value):
        f.check(value, where, value >= 0, "a number of GPUs ≥ 0")
        return value or None  # 0 and "not set" are the same request, and the same key
    f.check(value, where, isinstance(value, list), _GPUS)
    ids: tuple[int, ...] = f.each(where, value, lambda at, item: _gpu_id(f, at, item))
    f.check(value, where, len(set(ids)) == len(ids), "a list of distinct GPU ids")
    return ids or None


def _gpu_id(f: _Fields, where: str, value: object) -> int:
    f.check(value, where, v.is_int(value) and value >= 0, "a GPU id ≥ 0")
    assert isinstance(value, int)
    return value


def _boolean(f: _Fields, where: str, value: object) -> bool:
    f.check(value, where, isinstance(value, bool), "true or false")
    return bool(value)


def _timeout(f: _Fields, where: str, value: object) -> float:
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


def _shm_size(f: _Fields, where: str, value: object) -> str:
    if v.is_int(value):
        f.check(value, where, value > 0, "a size > 0")
        return str(value)
    return f.pattern(where, value, _SIZE, 'a size such as "2g" or "512m"').lower()


def _check_metrics(f: _Fields, stage: RunStage) -> None:
    if stage.metrics and Output(stage.metrics) not in stage.outputs:
        declared = ", ".join(v.show(o.path + "/" if o.is_dir else o.path) for o in stage.outputs) or "none"
        f.out.add(
            v.at(f.where, "metrics"),
            f"{v.show(stage.metrics)} is not one of the outputs (a file)",
            f"add it to outputs; declared outputs: {declared}",
        )


_RUN_READERS: dict[str, tuple[str, Reader]] = {
    "image": ("image", lambda f, at, x: f.text(at, x)),
    "command": ("command", _command),
    "inputs": (
        "inputs",
        lambda f, at, x: tuple(dict.fromkeys(p for p, _ in f.each(at, x, f.path, "a list of paths"))),
    ),
    "outputs": ("outputs", _outputs),
    "env": ("env", lambda f, at, x: f.mapping(at, x, ARG_NAME)),
    "gpus": ("gpus", _gpus),
    "network": ("network", _boolean),
    "timeout": ("timeout", _timeout),
    "metrics": ("metrics", lambda f, at, x: f.path(at, x)[0]),
    "shm_size": ("shm_size", _shm_size),
    "secrets": ("secrets", lambda f, at, x: f.names(at, x)),
    "description": ("description", lambda f, at, x: f.text(at, x)),
}
