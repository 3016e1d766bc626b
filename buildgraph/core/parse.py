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
from typing import Any

from buildgraph.core import values as v
from buildgraph.core.forms import ARGS, Fields, Form, Key, Table, choice, whole
from buildgraph.core.graph import Graph, validate_graph
from buildgraph.core.interpolate import PARAM_NAME, Issue
from buildgraph.core.param_files import LoadParams
from buildgraph.core.spec import Spec
from buildgraph.core.stages import STAGE_TABLES, read_stages
from buildgraph.core.suggest import did_you_mean
from buildgraph.core.variables import (
    PARAM,
    PARAM_VALUE,
    override_args,
    override_params,
    read_args,
    read_params,
    stage_arg_names,
)
from buildgraph.errors import BuildfileError, Problem

__all__ = ["TOP", "Analysis", "analyse", "parse"]

EXECUTORS = ("auto", "local", "docker")
LINKS = ("auto", "hardlink", "copy")


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
    load_params: LoadParams | None = None,
    platform: Mapping[str, str] | None = None,
) -> Spec:
    """The `Spec` of a Buildfile's text; raises `BuildfileError` listing every problem.
    `load_params` reads the params files run stages name (`buildfile.py` passes one), `platform`
    gives the platform args their values (see `analyse`)."""
    analysis = analyse(text, file, args, params, load_params, platform)
    if analysis.problems:
        raise BuildfileError(analysis.problems)
    return analysis.spec


def analyse(
    text: str,
    file: str = "Buildfile.toml",
    args: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    load_params: LoadParams | None = None,
    platform: Mapping[str, str] | None = None,
) -> Analysis:
    """Like `parse`, but returns the problems next to a best-effort `Spec` instead of raising.

    `platform`: the values of the automatic platform args (`variables.platform_args`); without it,
    image stages may not use them."""
    import tomllib  # here: a Spec loaded from the cache needs no TOML parser (~4 ms to import)

    try:
        doc = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as error:
        return Analysis(Spec(name=""), [v.syntax_problem(file, text, error)])
    out = v.Problems(file)
    out.unknown_keys(doc, "", TOP.names, _top_level_hint)
    project = _read_project(doc.get("project"), out)
    arg_values = read_args(doc.get("args", {}), out)
    param_decls = read_params(doc.get("params", {}), out)
    override_args(arg_values, args or {}, out, stage_arg_names(doc.get("stages")))
    override_params(param_decls, params or {}, out)
    param_values = {p.name: p.value for p in param_decls.values()}
    stages = read_stages(
        doc.get("stages"), out, arg_values, param_values, args or {}, load_params, platform
    )
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
    if table is None:
        out.add("project", "missing [project] table", 'start the file with [project] and name = "..."')
        return {"name": ""}
    if not out.expect_table(table, "project"):
        return {"name": ""}
    assert isinstance(table, dict)
    out.unknown_keys(table, "project", PROJECT.names)
    return {"name": "", **PROJECT.read(Fields(out, "project"), "project", table, whole_value=False)}


def _name(f: Fields, where: str, value: object) -> str:
    f.check(value, where, isinstance(value, str) and v.STAGE_NAME.fullmatch(value), v.NAME_RULE)
    return str(value)


def _keep_runs(f: Fields, where: str, value: object) -> int:
    f.check(value, where, v.is_int(value) and value >= 0, "an integer ≥ 0")
    assert isinstance(value, int)
    return value


def _default(f: Fields, where: str, value: object) -> tuple[str, ...]:
    ok = isinstance(value, list) and all(isinstance(d, str) for d in value)
    f.check(value, where, ok, "a list of stage names")
    assert isinstance(value, list)
    return tuple(value)


PROJECT = Table(
    (
        Key(
            "name",
            Form({"type": "string", "pattern": whole(v.STAGE_NAME)}, _name),
            "The project's name.",
            missing=Issue("missing (every project needs a name)", 'add name = "my-project" under [project]'),
        ),
        Key(
            "executor",
            choice(EXECUTORS),
            "Where run stages run: docker (in their images), local (on the host), or auto (docker when"
            " some run stage has an image and a Docker daemon answers, else local).",
        ),
        Key(
            "link",
            choice(LINKS),
            "How cached outputs reach the workspace: auto (a copy-on-write clone, else a hardlink, else a"
            " copy), hardlink (never copy bytes) or copy.",
        ),
        Key(
            "keep_runs",
            Form({"type": "integer", "minimum": 0}, _keep_runs),
            "`bg gc` keeps the artefacts of Buildfile.lock and of the last N runs.",
        ),
        Key(
            "default",
            Form({"type": "array", "items": {"type": "string"}}, _default),
            "Stages `bg run` brings up to date when given no target (default: every stage).",
        ),
    ),
    Spec,
)


def _default_problems(spec: Spec, file: str) -> list[Problem]:
    names = list(spec.stages)
    return [
        Problem(file, f"project.default[{i}]", f"unknown stage '{name}'", "`default` lists stages to run"
                f" when `bg run` gets no target{did_you_mean(name, names)}")
        for i, name in enumerate(spec.default)
        if name not in spec.stages
    ]


# The whole file ------------------------------------------------------------------------------

TOP = Table(
    (
        Key("project", Form(PROJECT.schema()), "The project's settings.", required=True),
        Key(
            "args",
            ARGS,
            "Build args (like Dockerfile ARG), used as ${NAME}; override with --arg NAME=VALUE."
            " Numbers become strings.",
        ),
        Key(
            "params",
            Form(
                {
                    "type": "object",
                    "propertyNames": {"pattern": whole(PARAM_NAME)},
                    "additionalProperties": {"anyOf": [PARAM_VALUE, PARAM.schema()]},
                }
            ),
            "Typed run parameters, used as ${params.name}; override with --param name=value.",
        ),
        Key(
            "stages",
            Form(
                {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": {"pattern": whole(v.STAGE_NAME)},
                    "additionalProperties": {"oneOf": [{"$ref": f"#/$defs/{t.name}"} for t in STAGE_TABLES]},
                }
            ),
            "The stages, by name. A stage with `from` is an image stage; one with `command` is a run stage.",
            required=True,
        ),
    ),
    title="Buildfile.toml",
    doc="A buildgraph project: image stages (Docker images) and run stages (commands with declared inputs"
    " and outputs). Reference: docs/buildfile.md.",
)
