"""Buildfile.toml text → a validated, interpolated `Spec` (pure: no filesystem).

`parse` reports EVERY problem it finds, not just the first: it keeps reading past a bad
value (using the field's default) so that one run of `bg status` lists everything to fix.
`analyse` is the same walk returning the best-effort `Spec` with its problems, for
`buildfile.load`, which adds the filesystem's problems to the same report.

Reading order, which is also the order problems are reported in: TOML syntax, top-level
keys, `[project]`, `[args]`, `[params]`, command-line overrides, each stage in declaration
order, then the graph (`graph.validate_graph`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from buildgraph.core import values as v
from buildgraph.core.graph import Graph, validate_graph
from buildgraph.core.interpolate import ARG_NAME, PARAM_NAME
from buildgraph.core.spec import Param, ParamValue, Spec
from buildgraph.core.stages import read_stages
from buildgraph.core.suggest import closest, did_you_mean
from buildgraph.errors import BuildfileError, Problem

__all__ = ["Analysis", "analyse", "parse"]

TOP_KEYS = ("project", "args", "params", "stages")
PROJECT_KEYS = ("name", "executor", "link", "keep_runs", "default")
PARAM_KEYS = ("default", "type", "choices", "help")
EXECUTORS = ("auto", "local", "docker")
LINKS = ("auto", "hardlink", "copy")
PARAM_TYPES = ("bool", "int", "float", "str")


@dataclass(frozen=True)
class Analysis:
    """What a Buildfile says (best effort when invalid) and everything wrong with it."""

    spec: Spec
    problems: list[Problem]
    graph: Graph | None = None  # None when the TOML could not be read or no stage was declared


def parse(
    text: str,
    file: str = "Buildfile.toml",
    args: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Spec:
    """The `Spec` of a Buildfile's text; raises `BuildfileError` listing every problem."""
    analysis = analyse(text, file, args, params)
    if analysis.problems:
        raise BuildfileError(analysis.problems)
    return analysis.spec


def analyse(
    text: str,
    file: str = "Buildfile.toml",
    args: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Analysis:
    """Like `parse`, but returns the problems next to a best-effort `Spec` instead of raising."""
    import tomllib  # here: a Spec loaded from the cache needs no TOML parser (~4 ms to import)

    try:
        doc = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as error:
        return Analysis(Spec(name=""), [v.syntax_problem(file, text, error)])
    out = v.Problems(file)
    out.unknown_keys(doc, "", TOP_KEYS, _top_level_hint)
    project = _read_project(doc.get("project"), out)
    arg_values = _read_args(doc.get("args", {}), out)
    param_decls = _read_params(doc.get("params", {}), out)
    _override_args(arg_values, args or {}, out)
    _override_params(param_decls, params or {}, out)
    stages = read_stages(doc.get("stages"), out, arg_values, {p.name: p.value for p in param_decls.values()})
    spec = Spec(
        **project,
        args=tuple(arg_values.items()),
        params=tuple(param_decls.values()),
        stages=stages,
    )
    graph = Graph(spec) if stages else None
    if graph is not None:
        out.items.extend(validate_graph(spec, file, graph))
        out.items.extend(_default_problems(spec, file))
    return Analysis(spec, out.items, graph)


def _top_level_hint(key: str, value: object) -> str:
    if isinstance(value, dict) and ("command" in value or "from" in value):
        return f"a stage is declared as [{v.at('stages', key)}]"
    return ""


# [project] ---------------------------------------------------------------------------------


def _read_project(table: object, out: v.Problems) -> dict[str, Any]:
    project: dict[str, Any] = {"name": ""}
    if table is None:
        out.add("project", "missing [project] table", 'start the file with [project] and name = "..."')
        return project
    if not out.expect_table(table, "project"):
        return project
    assert isinstance(table, dict)
    out.unknown_keys(table, "project", PROJECT_KEYS)
    name = table.get("name")
    if name is None:
        out.add(
            "project.name", "missing (every project needs a name)", 'add name = "my-project" under [project]'
        )
    elif out.expect(
        name, "project.name", isinstance(name, str) and v.STAGE_NAME.fullmatch(name), v.NAME_RULE
    ):
        project["name"] = name
    for key, choices in (("executor", EXECUTORS), ("link", LINKS)):
        if key in table:
            value = out.choice(table[key], f"project.{key}", choices)
            project[key] = value if value is not None else "auto"
    if "keep_runs" in table:
        keep = table["keep_runs"]
        if out.expect(keep, "project.keep_runs", v.is_int(keep) and keep >= 0, "an integer ≥ 0"):
            project["keep_runs"] = keep
    if "default" in table:
        default = table["default"]
        ok = isinstance(default, list) and all(isinstance(d, str) for d in default)
        if out.expect(default, "project.default", ok, "a list of stage names"):
            project["default"] = tuple(default)
    return project


def _default_problems(spec: Spec, file: str) -> list[Problem]:
    names = list(spec.stages)
    return [
        Problem(file, f"project.default[{i}]", f"unknown stage '{name}'", "`default` lists stages to run"
                f" when `bg run` gets no target{did_you_mean(name, names)}")
        for i, name in enumerate(spec.default)
        if name not in spec.stages
    ]


# [args] ------------------------------------------------------------------------------------


def _read_args(table: object, out: v.Problems) -> dict[str, str]:
    result: dict[str, str] = {}
    if not out.expect_table(table, "args"):
        return result
    assert isinstance(table, dict)
    for name, value in table.items():
        where = v.at("args", name)
        if not ARG_NAME.fullmatch(name):
            out.add(
                where, "invalid arg name", "arg names are letters, digits and _, not starting with a digit"
            )
            continue
        result[name] = ""  # kept even if its value is invalid: references to it are not reported too
        if out.expect(value, where, v.is_scalar_text(value), "a string or a number"):
            result[name] = v.scalar_text(value)
    return result


def _override_args(values: dict[str, str], overrides: Mapping[str, str], out: v.Problems) -> None:
    for name, text in overrides.items():
        source = v.show_raw(f"--arg {name}={text}")
        if name in values:
            values[name] = text
        else:
            out.add_at(
                source, f"no arg named '{v.show_raw(name)}' in [args]", _declared_hint(name, values, "arg")
            )


# [params] ----------------------------------------------------------------------------------


def _read_params(table: object, out: v.Problems) -> dict[str, Param]:
    result: dict[str, Param] = {}
    if not out.expect_table(table, "params"):
        return result
    assert isinstance(table, dict)
    for name, value in table.items():
        where = v.at("params", name)
        if not PARAM_NAME.fullmatch(name):
            out.add(
                where,
                "invalid param name",
                "param names are letters, digits, _ and -, not starting with a digit",
            )
            continue
        param = (
            _param_table(name, value, where, out)
            if isinstance(value, dict)
            else _param_scalar(name, value, where, out)
        )
        # an invalid param keeps a placeholder so that references to it are not reported too
        result[name] = param if param is not None else Param(name, "", "str")
    return result


def _param_scalar(name: str, value: object, where: str, out: v.Problems) -> Param | None:
    kind = v.param_type(value)
    if kind is None:
        out.type_error(
            where, "a bool, int, float or string, or a table {default, type, choices, help}", value
        )
        return None
    assert isinstance(value, (bool, int, float, str))
    return Param(name, value, kind)


def _param_table(name: str, table: dict[str, Any], where: str, out: v.Problems) -> Param | None:
    out.unknown_keys(table, where, PARAM_KEYS)
    if "default" not in table:
        out.add(
            v.at(where, "default"),
            "missing (a param needs a default value)",
            f"add default = ... to params.{name}",
        )
        return None
    kind = v.param_type(table["default"])
    if "type" in table:
        declared = out.choice(table["type"], v.at(where, "type"), PARAM_TYPES)
        if declared is None:
            return None
        kind = cast(v.ParamType, declared)
    if kind is None:
        out.type_error(v.at(where, "default"), "a bool, int, float or string", table["default"])
        return None
    default = _typed(table["default"], kind, v.at(where, "default"), out)
    choices = _choices(table.get("choices", []), kind, v.at(where, "choices"), out)
    help_text = table.get("help", "")
    if not out.expect(help_text, v.at(where, "help"), isinstance(help_text, str), "a string"):
        help_text = ""
    if default is None or choices is None:
        return None
    if choices and default not in choices:
        out.add(
            v.at(where, "default"), f"{v.show(default)} is not one of the choices", _choices_hint(choices)
        )
        return None
    return Param(name, default, kind, tuple(choices), help_text)


def _typed(value: object, kind: v.ParamType, where: str, out: v.Problems) -> ParamValue | None:
    if kind == "float" and v.is_int(value):
        assert isinstance(value, int)
        return float(value)
    if v.param_type(value) != kind:
        out.type_error(where, v.TYPE_WORDS[kind], value)
        return None
    assert isinstance(value, (bool, int, float, str))
    return value


def _choices(value: object, kind: v.ParamType, where: str, out: v.Problems) -> list[ParamValue] | None:
    if not out.expect(value, where, isinstance(value, list), f"a list of {kind} values"):
        return None
    assert isinstance(value, list)
    typed = [_typed(item, kind, v.at(where, i), out) for i, item in enumerate(value)]
    return None if any(t is None for t in typed) else [t for t in typed if t is not None]


def _choices_hint(choices: list[ParamValue] | tuple[ParamValue, ...]) -> str:
    return "choose one of " + ", ".join(v.show(c) for c in choices)


def _override_params(params: dict[str, Param], overrides: Mapping[str, str], out: v.Problems) -> None:
    for name, text in overrides.items():
        source = v.show_raw(f"--param {name}={text}")
        param = params.get(name)
        if param is None:
            out.add_at(
                source,
                f"no param named '{v.show_raw(name)}' in [params]",
                _declared_hint(name, params, "param"),
            )
            continue
        value, message = v.coerce(text, param.type)
        if value is None:
            out.add_at(source, message, f"params.{name} is declared as {v.TYPE_WORDS[param.type]}")
        elif param.choices and value not in param.choices:
            out.add_at(source, f"{v.show(value)} is not one of the choices", _choices_hint(param.choices))
        else:
            params[name] = Param(name, value, param.type, param.choices, param.help)


def _declared_hint(name: str, declared: Mapping[str, object], what: str) -> str:
    match = closest(name, declared)
    if match is not None:
        return f"did you mean '{match}'?"
    if declared:
        return f"declared {what}s: " + ", ".join(sorted(declared))
    return f"declare it under [{what}s] in the Buildfile"
