"""`[stages.NAME]` tables → `ImageStage` / `RunStage`, interpolated, with every problem recorded.

A stage with `from` is an image stage (its keys: `image_stage.IMAGE_STAGE`), one with `command`
a run stage (`run_stage.RUN_STAGE`). Each key's reader returns the field's value or records a
problem and raises `Skip`; a skipped field keeps its default so that the rest of the stage, and
the graph checks after it, still run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from buildgraph.core import values as v
from buildgraph.core.forms import Fields, Table
from buildgraph.core.image_stage import IMAGE_STAGE
from buildgraph.core.interpolate import Expander
from buildgraph.core.run_stage import RUN_STAGE, check_metrics
from buildgraph.core.spec import ImageRef, ImageStage, ParamValue, RunStage, Stage

__all__ = ["STAGE_TABLES", "read_stages"]

STAGE_TABLES = (IMAGE_STAGE, RUN_STAGE)


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
            is_run = "command" in body
            expander = Expander(args, params, params_allowed=is_run)
            templates: dict[str, str] | None = None if is_run else {}  # see ImageStage.templates
            stages[name] = _read_stage(Fields(out, where, expander, name, table, templates), body)
    return stages


def _read_stage(f: Fields, body: dict[str, Any]) -> Stage:
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
    if f.templates:
        kw["templates"] = tuple(f.templates.items())
    if cls is RunStage:
        kw["params_used"] = tuple(sorted(f.expander.params_used))
    return cls(**kw)
