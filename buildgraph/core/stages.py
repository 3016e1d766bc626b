"""`[stages.NAME]` tables → `ImageStage` / `RunStage`, interpolated, with every problem recorded.

A stage with `from` is an image stage (its keys: `image_stage.IMAGE_STAGE`), one with `command`
a run stage (`run_stage.RUN_STAGE`). Each key's reader returns the field's value or records a
problem and raises `Skip`; a skipped field keeps its default so that the rest of the stage, and
the graph checks after it, still run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from buildgraph.core import values as v
from buildgraph.core.forms import Fields, Skip, Table
from buildgraph.core.image_stage import (
    IMAGE_STAGE,
    mark_shell_forms,
    read_base_in_global_scope,
    read_stage_args,
    split_run_lines,
)
from buildgraph.core.interpolate import Expander
from buildgraph.core.matrix import expand_matrix
from buildgraph.core.param_files import FileParams, LoadParams, read_file_params
from buildgraph.core.run_stage import RUN_STAGE, check_always_frozen, check_metrics
from buildgraph.core.spec import ImageRef, ImageStage, ParamValue, RunStage, Stage

__all__ = ["STAGE_TABLES", "read_stages"]

STAGE_TABLES = (IMAGE_STAGE, RUN_STAGE)


def read_stages(
    table: object,
    out: v.Problems,
    args: Mapping[str, str],
    params: Mapping[str, ParamValue],
    arg_overrides: Mapping[str, str] | None = None,
    load_params: LoadParams | None = None,
    platform: Mapping[str, str] | None = None,
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
        if not out.expect_table(body, where):
            continue
        if _is_run(body):  # with its matrix and params files
            stages.update(_run_stages(out, name, body, table, stages, Expander(args, params), load_params))
        else:
            stages[name] = _image_stage(out, name, body, table, args, arg_overrides or {}, platform or {})
    return stages


def _image_stage(
    out: v.Problems,
    name: str,
    body: dict[str, Any],
    table: dict[str, Any],
    args: Mapping[str, str],
    overrides: Mapping[str, str],
    platform: Mapping[str, str],
) -> Stage:
    """An image stage; it sees the automatic platform args (TARGETARCH …) too, unless [args] sets them."""
    visible = {**platform, **args}
    templates: dict[str, str] = {}  # see ImageStage.templates
    f = Fields(out, v.at("stages", name), Expander(visible, {}, params_allowed=False), name, table, templates)
    stage = _read_stage(f, body) if "args" not in body else _with_stage_args(f, body, visible, overrides)
    if not isinstance(stage, ImageStage):
        return stage
    used = [n for n in stage.args_used if n in platform and n not in args]
    if not used:
        return stage
    kept = tuple(n for n in stage.args_used if n not in used)
    return replace(stage, args_used=kept, platform_args=tuple((n, platform[n]) for n in used))


def _with_stage_args(
    f: Fields, body: dict[str, Any], args: Mapping[str, str], overrides: Mapping[str, str]
) -> Stage:
    """An image stage with its own ARGs: read first, since every other string may use them."""
    own = read_stage_args(f, body["args"], args, overrides)
    values = dict(own.values)
    f.expander = Expander({**args, **values}, {}, params_allowed=False)
    stage = _read_stage(f, body)
    if not isinstance(stage, ImageStage):
        return stage
    # The key's `args` holds the [args] used; the stage's own are keyed whole (`stage_args`).
    used = {n for n in stage.args_used if n not in values} | own.globals_used
    try:
        found = read_base_in_global_scope(f, body, args, values)
    except Skip:
        found = None  # its problem is recorded
    if found is not None:
        stage, used = replace(stage, base=found[0]), used | found[1]
    return replace(stage, args=own.values, args_used=tuple(sorted(used)))


def _is_run(body: dict[str, Any]) -> bool:
    return "command" in body or "commands" in body


def _run_stages(
    out: v.Problems,
    name: str,
    body: dict[str, Any],
    table: dict[str, Any],
    earlier: Mapping[str, Stage],
    blank: Expander,
    load_params: LoadParams | None,
) -> dict[str, Stage]:
    """The run stages one table declares: itself, or one per combination of its `matrix`. Its
    `params` file values are read first, since every other string may name them."""
    where, found = v.at("stages", name), dict[str, Stage]()
    for stage_name, stage_body in expand_matrix(name, body, out):
        if stage_name != name and (stage_name in table or stage_name in earlier):
            out.add(v.at(where, "matrix"), f"makes a stage '{stage_name}', declared already", "rename one")
            continue
        files = FileParams()
        if "params" in stage_body:
            files = read_file_params(stage_body["params"], v.at(where, "params"), out, load_params)
        expander = blank.with_file_params(files.texts)
        stage = _read_stage(Fields(out, where, expander, stage_name, table), stage_body)
        if isinstance(stage, RunStage):
            stage = replace(stage, file_params=tuple(files.keyed.items()), params_files=tuple(files.files))
            check_always_frozen(Fields(out, where), stage)
        found[stage_name] = stage
    return found


def _read_stage(f: Fields, body: dict[str, Any]) -> Stage:
    has_from, has_command = "from" in body, _is_run(body)
    if "command" in body and "commands" in body:
        f.out.add(
            v.at(f.where, "commands"),
            "a stage has `command` (one) or `commands` (several, in turn), not both",
            "move the command into the `commands` list",
        )
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
        allowed = IMAGE_STAGE.names + (RUN_STAGE.names if has_command else ())
        f.out.unknown_keys(body, f.where, allowed, _elsewhere(RUN_STAGE.names, "run"))
        return _build(ImageStage, f, body, IMAGE_STAGE, base=ImageRef(""))
    f.out.unknown_keys(body, f.where, RUN_STAGE.names, _elsewhere(IMAGE_STAGE.names, "image"))
    stage = _build(RunStage, f, body, RUN_STAGE, command="")
    check_metrics(f, stage)
    return stage


def _elsewhere(keys: tuple[str, ...], kind: str) -> Callable[[str, object], str]:
    marker = "`command`" if kind == "run" else "`from`"
    return lambda key, _value: (
        f"'{key}' belongs to {kind} stages (those with {marker})" if key in keys else ""
    )


S = TypeVar("S", ImageStage, RunStage)


def _build(cls: type[S], f: Fields, body: dict[str, Any], table: Table, **kw: Any) -> S:
    table.read_as_written(f, body, kw)
    kw["name"] = f.name
    kw["args_used"] = tuple(sorted(f.expander.args_used))
    if cls is RunStage:
        kw["params_used"] = tuple(sorted(f.expander.params_used))
    else:
        split_run_lines(kw, f.templates)
        mark_shell_forms(kw, body)
    if f.templates:
        kw["templates"] = tuple(f.templates.items())
    return cls(**kw)
